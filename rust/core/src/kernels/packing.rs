//! Packing of the query descriptors into k-major panels of `NR` columns, the layout the
//! micro-kernel streams. Padding columns have an infinite norm so they never win.

use super::dispatch::Isa;

/// Query descriptors packed for the nearest-neighbour kernel of one instruction set.
#[derive(Debug, Clone)]
pub struct PackedQuery {
    pub(crate) isa: Isa,
    /// Number of real (unpadded) descriptors.
    pub(crate) len: usize,
    /// Descriptor dimension.
    pub(crate) dim: usize,
    /// Panels, each `dim` rows of `nr` values (f32 descriptors).
    pub(crate) panels_f32: Vec<f32>,
    /// Panels, each `dim` rows of `nr` values (u8 descriptors widened to i32).
    pub(crate) panels_i32: Vec<i32>,
    /// Panels for VNNI: `ceil(dim / 4)` rows of `nr` lanes of 4 bytes `q - 128` (i8).
    pub(crate) panels_u32: Vec<u32>,
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

    fn padded(len: usize, nr: usize) -> usize {
        len.div_ceil(nr) * nr
    }

    /// Pack `len` float descriptors of dimension `dim` (row-major).
    pub fn from_f32(data: &[f32], len: usize, dim: usize, isa: Isa) -> Self {
        let nr = isa.panel_width();
        let padded = Self::padded(len, nr);
        let mut panels = vec![0.0f32; padded * dim];
        let mut norms = vec![f32::INFINITY; padded];
        for (i, row) in data.chunks_exact(dim.max(1)).take(len).enumerate() {
            let (p, w) = (i / nr, i % nr);
            let panel = &mut panels[p * dim * nr..(p + 1) * dim * nr];
            for (k, &v) in row.iter().enumerate() {
                panel[k * nr + w] = v;
            }
            norms[i] = row.iter().map(|v| v * v).sum();
        }
        PackedQuery {
            isa,
            len,
            dim,
            panels_f32: panels,
            panels_i32: Vec::new(),
            panels_u32: Vec::new(),
            norms,
        }
    }

    /// Pack `len` uint8 descriptors of dimension `dim` (row-major).
    pub fn from_u8(data: &[u8], len: usize, dim: usize, isa: Isa) -> Self {
        let nr = isa.panel_width();
        let padded = Self::padded(len, nr);
        if isa == Isa::Avx512Vnni {
            return Self::from_u8_vnni(data, len, dim, isa, nr, padded);
        }
        let mut panels = vec![0i32; padded * dim];
        let mut norms = vec![f32::INFINITY; padded];
        for (i, row) in data.chunks_exact(dim.max(1)).take(len).enumerate() {
            let (p, w) = (i / nr, i % nr);
            let panel = &mut panels[p * dim * nr..(p + 1) * dim * nr];
            for (k, &v) in row.iter().enumerate() {
                panel[k * nr + w] = i32::from(v);
            }
            norms[i] = u8_squared_norm(row);
        }
        PackedQuery {
            isa,
            len,
            dim,
            panels_f32: Vec::new(),
            panels_i32: panels,
            panels_u32: Vec::new(),
            norms,
        }
    }

    fn from_u8_vnni(
        data: &[u8],
        len: usize,
        dim: usize,
        isa: Isa,
        nr: usize,
        padded: usize,
    ) -> Self {
        let depth = dim.div_ceil(4);
        let mut panels = vec![0u32; padded * depth];
        let mut norms = vec![f32::INFINITY; padded];
        for (i, row) in data.chunks_exact(dim.max(1)).take(len).enumerate() {
            let (p, w) = (i / nr, i % nr);
            let panel = &mut panels[p * depth * nr..(p + 1) * depth * nr];
            for (k4, chunk) in row.chunks(4).enumerate() {
                let mut bytes = [0u8; 4];
                for (b, &v) in bytes.iter_mut().zip(chunk) {
                    *b = (i16::from(v) - 128) as i8 as u8;
                }
                panel[k4 * nr + w] = u32::from_le_bytes(bytes);
            }
            norms[i] = u8_squared_norm(row);
        }
        PackedQuery {
            isa,
            len,
            dim,
            panels_f32: Vec::new(),
            panels_i32: Vec::new(),
            panels_u32: panels,
            norms,
        }
    }
}

/// Squared norm of a uint8 descriptor (exact: at most 65025 · D, below 2^24 for D <= 256).
fn u8_squared_norm(row: &[u8]) -> f32 {
    row.iter()
        .map(|&v| u32::from(v) * u32::from(v))
        .sum::<u32>() as f32
}
