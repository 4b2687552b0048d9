//! Where the rows of a pyramid level live while it is made a band at a time: a whole plane,
//! a ring buffer, or (one image on several threads) a thread's own rows of a shared plane
//! with the halo rows it recomputes next to them in a private buffer.

use std::ops::{Deref, DerefMut, Range};

/// The rows of a `width`-wide plane: rows `own` in `data` (contiguous, from `own.start`);
/// any other row `y` either in the ring `extra` at row `y % ring` (`ring > 0`), or
/// (`ring == 0`) in the halo buffer `extra`, which holds the rows `halo.start..own.start`
/// and then `own.end..halo.end`. A whole plane is `own = 0..height`; a ring, `own` empty.
pub(crate) struct Rows<T> {
    width: usize,
    own: Range<usize>,
    data: T,
    ring: usize,
    halo: Range<usize>,
    extra: T,
}

impl<T: Deref<Target = [f32]> + Default> Rows<T> {
    /// Rows `0..data.len() / width` of a whole plane.
    pub(crate) fn whole(data: T, width: usize) -> Self {
        let height = data.len() / width.max(1);
        Rows {
            width,
            own: 0..height,
            data,
            ring: 0,
            halo: 0..height,
            extra: T::default(),
        }
    }

    /// A ring of `data.len() / width` rows: row `y` at row `y % ring`.
    pub(crate) fn ring(data: T, width: usize) -> Self {
        let ring = data.len() / width.max(1);
        debug_assert!(ring > 0);
        Rows {
            width,
            own: 0..0,
            data: T::default(),
            ring,
            halo: 0..0,
            extra: data,
        }
    }
}

impl<T: Deref<Target = [f32]>> Rows<T> {
    /// Rows `own` in `data` (`own.len()` rows) and the rows of `halo` outside them in
    /// `extra` (`halo.len() - own.len()` rows), `halo` containing `own`.
    pub(crate) fn split(
        data: T,
        own: Range<usize>,
        extra: T,
        halo: Range<usize>,
        width: usize,
    ) -> Self {
        debug_assert!(halo.start <= own.start && own.end <= halo.end);
        debug_assert_eq!(data.len(), own.len() * width);
        debug_assert_eq!(extra.len(), (halo.len() - own.len()) * width);
        Rows {
            width,
            own,
            data,
            ring: 0,
            halo,
            extra,
        }
    }

    /// `(in data?, offset of row y)`.
    #[inline]
    fn at(&self, y: usize) -> (bool, usize) {
        if self.own.contains(&y) {
            (true, (y - self.own.start) * self.width)
        } else if self.ring > 0 {
            (false, (y % self.ring) * self.width)
        } else {
            debug_assert!(self.halo.contains(&y), "row {y} outside {:?}", self.halo);
            let i = if y < self.own.start {
                y - self.halo.start
            } else {
                self.own.start - self.halo.start + y - self.own.end
            };
            (false, i * self.width)
        }
    }

    #[inline]
    pub(crate) fn row(&self, y: usize) -> &[f32] {
        let (own, i) = self.at(y);
        let d: &[f32] = if own { &self.data } else { &self.extra };
        &d[i..i + self.width]
    }

    /// The same rows, read-only.
    pub(crate) fn view(&self) -> Rows<&[f32]> {
        Rows {
            width: self.width,
            own: self.own.clone(),
            data: &self.data,
            ring: self.ring,
            halo: self.halo.clone(),
            extra: &self.extra,
        }
    }
}

impl<T: DerefMut<Target = [f32]>> Rows<T> {
    #[inline]
    pub(crate) fn row_mut(&mut self, y: usize) -> &mut [f32] {
        let (own, i) = self.at(y);
        let d: &mut [f32] = if own { &mut self.data } else { &mut self.extra };
        &mut d[i..i + self.width]
    }
}
