//! Packing of the query descriptors into k-major panels of `NR` columns, the layout the
//! micro-kernel streams. Padding columns have an infinite norm so they never win.

use crate::isa::{Isa, IsaKind};

/// The packed values, in the layout of the kernel family that will read them.
#[derive(Debug, Clone)]
pub(crate) enum Panels {
    /// `dim` rows of `nr` float32 values per panel.
    F32(Vec<f32>),
    /// `dim` rows of `nr` uint8 values widened to i32 per panel.
    I32(Vec<i32>),
    /// VNNI: `ceil(dim / 4)` rows of `nr` lanes of 4 bytes `q - 128` (as i8) per panel.
    Vnni(Vec<u32>),
    /// AMX: per panel of 32 columns, two 1 KB B tiles per 64 bytes of `dim` (`amx.rs`).
    #[cfg(target_arch = "x86_64")]
    Amx(Vec<u8>),
    /// Binary descriptors kept row-major (the Hamming kernel is not tiled).
    Binary(Vec<u64>),
}

/// Query descriptors packed for the nearest-neighbour kernel of one instruction set.
#[derive(Debug, Clone)]
pub struct PackedQuery {
    pub(crate) isa: Isa,
    /// Number of real (unpadded) descriptors.
    pub(crate) len: usize,
    /// Descriptor dimension.
    pub(crate) dim: usize,
    pub(crate) panels: Panels,
    /// Squared norms, padded to a multiple of `nr` with +inf.
    pub(crate) norms: Vec<f32>,
}

impl PackedQuery {
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Squared norm of query descriptor `i`.
    pub fn norm(&self, i: usize) -> f32 {
        self.norms[i]
    }

    /// Pack `len` float descriptors of dimension `dim` (row-major).
    pub fn from_f32(data: &[f32], len: usize, dim: usize, isa: Isa) -> Self {
        let nr = panel_width(isa);
        let (panels, norms) = pack(
            data,
            len,
            dim,
            nr,
            dim,
            f32_squared_norm,
            |row, panel, w| {
                for (k, &v) in row.iter().enumerate() {
                    panel[k * nr + w] = v;
                }
            },
        );
        Self::new(isa, len, dim, Panels::F32(panels), norms)
    }

    /// Pack `len` uint8 descriptors of dimension `dim` (row-major).
    pub fn from_u8(data: &[u8], len: usize, dim: usize, isa: Isa) -> Self {
        let nr = panel_width(isa);
        #[cfg(target_arch = "x86_64")]
        if isa.kind() == IsaKind::Avx512Amx && super::amx::supports(dim) {
            let (panels, norms) = pack(
                data,
                len,
                dim,
                nr,
                dim,
                u8_squared_norm,
                super::amx::write_column,
            );
            return Self::new(isa, len, dim, Panels::Amx(panels), norms);
        }
        if matches!(isa.kind(), IsaKind::Avx512Vnni | IsaKind::Avx512Amx) {
            let depth = dim.div_ceil(4);
            let (panels, norms) = pack(
                data,
                len,
                dim,
                nr,
                depth,
                u8_squared_norm,
                |row, panel, w| {
                    for (k4, chunk) in row.chunks(4).enumerate() {
                        let mut bytes = [0u8; 4];
                        for (b, &v) in bytes.iter_mut().zip(chunk) {
                            *b = (i16::from(v) - 128) as i8 as u8;
                        }
                        panel[k4 * nr + w] = u32::from_le_bytes(bytes);
                    }
                },
            );
            return Self::new(isa, len, dim, Panels::Vnni(panels), norms);
        }
        let (panels, norms) = pack(data, len, dim, nr, dim, u8_squared_norm, |row, panel, w| {
            for (k, &v) in row.iter().enumerate() {
                panel[k * nr + w] = i32::from(v);
            }
        });
        Self::new(isa, len, dim, Panels::I32(panels), norms)
    }

    /// Keep `len` binary descriptors of `words` 64-bit words each (row-major); their
    /// squared norm as ±1 vectors is the number of bits.
    pub fn from_binary(data: &[u64], len: usize, words: usize) -> Self {
        let bits = (64 * words) as f32;
        let rows = data[..len * words].to_vec();
        Self::new(
            Isa::detect(),
            len,
            words,
            Panels::Binary(rows),
            vec![bits; len],
        )
    }

    fn new(isa: Isa, len: usize, dim: usize, panels: Panels, norms: Vec<f32>) -> Self {
        PackedQuery {
            isa,
            len,
            dim,
            panels,
            norms,
        }
    }
}

/// Lay `len` rows of dimension `dim` out as panels of `nr` columns and `depth` rows each:
/// `write(row, panel, column)` places one row. Returns the panels and the padded norms.
fn pack<T: Copy, E: Copy + Default>(
    data: &[T],
    len: usize,
    dim: usize,
    nr: usize,
    depth: usize,
    norm: fn(&[T]) -> f32,
    write: impl Fn(&[T], &mut [E], usize),
) -> (Vec<E>, Vec<f32>) {
    let padded = len.div_ceil(nr) * nr;
    let mut panels = vec![E::default(); padded * depth];
    let mut norms = vec![f32::INFINITY; padded];
    for (i, row) in data.chunks_exact(dim.max(1)).take(len).enumerate() {
        let (p, w) = (i / nr, i % nr);
        write(row, &mut panels[p * depth * nr..(p + 1) * depth * nr], w);
        norms[i] = norm(row);
    }
    (panels, norms)
}

fn f32_squared_norm(row: &[f32]) -> f32 {
    row.iter().map(|v| v * v).sum()
}

/// Squared norm of a uint8 descriptor (exact: at most 65025 · D, below 2^24 for the
/// D <= 258 that `LocalFeaturesRef::validate` admits).
pub(super) fn u8_squared_norm(row: &[u8]) -> f32 {
    row.iter()
        .map(|&v| u32::from(v) * u32::from(v))
        .sum::<u32>() as f32
}

/// Query columns per packed panel (two vector registers wide).
fn panel_width(isa: Isa) -> usize {
    match isa.kind() {
        IsaKind::Avx512Amx | IsaKind::Avx512Vnni | IsaKind::Avx512 => 32,
        IsaKind::Avx2 | IsaKind::Portable => 16,
    }
}
