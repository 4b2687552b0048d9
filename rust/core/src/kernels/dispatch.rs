//! The entry points compiled for each instruction set, and the run-time dispatch to them.

use super::nn_body::{nn_body, reset_outputs, F32Plain, U8Exact};
use super::packing::Panels;
use super::{NnScratch, PackedQuery};
use crate::isa::IsaKind;

/// Candidate descriptors of one image, by element type.
#[derive(Debug, Clone, Copy)]
pub enum CandidateRows<'a> {
    F32(&'a [f32]),
    U8(&'a [u8]),
    /// Binary descriptors, 64-bit words, row-major.
    Binary(&'a [u64]),
}

/// Nearest neighbours in both directions between a packed query and `cand_len`
/// candidate rows; the results are left in `scratch`. The candidate rows must have the
/// query's element type and dimension (checked at the API boundary, see `features.rs`).
pub fn nearest_neighbours(
    query: &PackedQuery,
    cand: CandidateRows<'_>,
    cand_len: usize,
    scratch: &mut NnScratch,
) {
    let dim = query.dim;
    // Every kernel entry point takes the same arguments but the panels and rows.
    macro_rules! run {
        ($kernel:path, $panels:expr, $rows:expr) => {
            $kernel($panels, &query.norms, dim, $rows, cand_len, scratch)
        };
    }
    match (query.isa.kind(), &query.panels, cand) {
        #[cfg(target_arch = "x86_64")]
        (
            IsaKind::Avx512Amx | IsaKind::Avx512Vnni | IsaKind::Avx512,
            Panels::F32(p),
            CandidateRows::F32(rows),
        ) => {
            // SAFETY: an `Isa` holding these kinds is only made by `Isa::detect`, after checking
            // the CPU features (its field is private, so safe code cannot forge one).
            unsafe { run!(x86::f32_avx512, p, rows) }
        }
        #[cfg(target_arch = "x86_64")]
        (IsaKind::Avx512Amx, Panels::Amx(p), CandidateRows::U8(rows)) => {
            // SAFETY: `IsaKind::Avx512Amx` only comes from `Isa::detect` after the CPU
            // features were checked and the kernel granted this process the tile state;
            // `Panels::Amx` is only made by `PackedQuery::from_u8` for a supported `dim`.
            unsafe { run!(super::amx::nn_amx, p, rows) }
        }
        #[cfg(target_arch = "x86_64")]
        (IsaKind::Avx512Amx | IsaKind::Avx512Vnni, Panels::Vnni(p), CandidateRows::U8(rows)) => {
            // SAFETY: as above (VNNI checked too).
            unsafe { run!(x86::u8_vnni, p, rows) }
        }
        #[cfg(target_arch = "x86_64")]
        (IsaKind::Avx512, Panels::I32(p), CandidateRows::U8(rows)) => {
            // SAFETY: as above.
            unsafe { run!(x86::u8_avx512, p, rows) }
        }
        #[cfg(target_arch = "x86_64")]
        (IsaKind::Avx2, Panels::F32(p), CandidateRows::F32(rows)) => {
            // SAFETY: as above: `IsaKind::Avx2` only comes from `Isa::detect`.
            unsafe { run!(x86::f32_avx2, p, rows) }
        }
        #[cfg(target_arch = "x86_64")]
        (IsaKind::Avx2, Panels::I32(p), CandidateRows::U8(rows)) => {
            // SAFETY: as above.
            unsafe { run!(x86::u8_avx2, p, rows) }
        }
        (_, Panels::Binary(p), CandidateRows::Binary(rows)) => {
            let rows = super::hamming::BinaryRows {
                query: p,
                query_len: query.len,
                cand: rows,
                cand_len,
                words: dim,
            };
            super::hamming::nn_hamming(rows, scratch)
        }
        (_, Panels::F32(p), CandidateRows::F32(rows)) => run!(nn_body::<F32Plain, 4, 16>, p, rows),
        (_, Panels::I32(p), CandidateRows::U8(rows)) => run!(nn_body::<U8Exact, 4, 16>, p, rows),
        // Descriptor types that differ are refused at the API boundary; should a caller of
        // this low-level function mix them anyway, nothing matches.
        _ => reset_outputs(scratch, query.norms.len(), cand_len),
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::super::avx512::{F32Avx512, U8Vnni};
    use super::super::nn_body::F32Fused;
    use super::*;

    /// One `#[target_feature]` entry point per (tile, instruction set): the generic loop is
    /// inlined into each and compiled for exactly those features.
    macro_rules! entry_point {
        ($name:ident, $tile:ty, $mr:literal, $nr:literal, $elem:ty, $input:ty, $features:literal) => {
            #[target_feature(enable = $features)]
            pub(super) unsafe fn $name(
                panels: &[$elem],
                norms: &[f32],
                dim: usize,
                cand: &[$input],
                cand_len: usize,
                scratch: &mut NnScratch,
            ) {
                nn_body::<$tile, $mr, $nr>(panels, norms, dim, cand, cand_len, scratch)
            }
        };
    }

    entry_point!(
        f32_avx512,
        F32Avx512,
        8,
        32,
        f32,
        f32,
        "avx512f,avx512bw,avx512vl,avx2,fma"
    );
    entry_point!(
        u8_vnni,
        U8Vnni,
        8,
        32,
        u32,
        u8,
        "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma"
    );
    entry_point!(
        u8_avx512,
        U8Exact,
        8,
        32,
        i32,
        u8,
        "avx512f,avx512bw,avx512vl,avx2,fma"
    );
    entry_point!(f32_avx2, F32Fused, 4, 16, f32, f32, "avx2,fma");
    entry_point!(u8_avx2, U8Exact, 4, 16, i32, u8, "avx2,fma");
}
