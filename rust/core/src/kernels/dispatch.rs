//! Run-time choice of the instruction set and the entry points compiled for each.

use std::sync::OnceLock;

use super::nn_body::{nn_body, reset_outputs, F32Plain, U8Exact};
use super::packing::Panels;
use super::{NnScratch, PackedQuery};

/// The instruction sets the kernels are compiled for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum IsaKind {
    /// x86-64 with AVX-512 (F, BW, VL), VNNI and FMA.
    Avx512Vnni,
    /// x86-64 with AVX-512 (F, BW, VL) and FMA.
    Avx512,
    /// x86-64 with AVX2 and FMA.
    Avx2,
    /// Anything else, or forced by `ILIAS_RERANK_FORCE_PORTABLE=1`.
    Portable,
}

/// The instruction set the kernels run with: a token that safe code can only obtain from
/// [`Isa::detect`] (what this CPU supports) or [`Isa::portable`] (plain Rust, everywhere).
/// Its variants are private, so no caller can claim AVX-512 or VNNI on a CPU without
/// them: the `unsafe` SIMD entry points rely on this.
///
/// ```compile_fail
/// // Naming an instruction set directly does not compile: only `detect` can vouch for it.
/// let _ = ilias_rerank_core::kernels::Isa::Avx512Vnni;
/// ```
///
/// ```
/// // What safe code can do: ask the CPU, or choose the portable kernels.
/// use ilias_rerank_core::kernels::Isa;
/// assert!(["avx512-vnni", "avx512", "avx2", "portable"].contains(&Isa::detect().name()));
/// assert_eq!(Isa::portable().name(), "portable");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Isa(IsaKind);

impl Isa {
    /// The best instruction set of this CPU, detected once per process.
    pub fn detect() -> Isa {
        static DETECTED: OnceLock<Isa> = OnceLock::new();
        *DETECTED.get_or_init(|| {
            let forced = std::env::var("ILIAS_RERANK_FORCE_PORTABLE")
                .map(|v| !v.is_empty() && v != "0")
                .unwrap_or(false);
            if forced {
                Isa::portable()
            } else {
                Isa(Self::detect_cpu())
            }
        })
    }

    /// The portable kernels (plain Rust): valid on every CPU.
    pub fn portable() -> Isa {
        Isa(IsaKind::Portable)
    }

    #[cfg(target_arch = "x86_64")]
    fn detect_cpu() -> IsaKind {
        if std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx512bw")
            && std::arch::is_x86_feature_detected!("avx512vl")
            && std::arch::is_x86_feature_detected!("fma")
        {
            if std::arch::is_x86_feature_detected!("avx512vnni") {
                IsaKind::Avx512Vnni
            } else {
                IsaKind::Avx512
            }
        } else if std::arch::is_x86_feature_detected!("avx2")
            && std::arch::is_x86_feature_detected!("fma")
        {
            IsaKind::Avx2
        } else {
            IsaKind::Portable
        }
    }

    #[cfg(not(target_arch = "x86_64"))]
    fn detect_cpu() -> IsaKind {
        IsaKind::Portable
    }

    pub(crate) fn kind(self) -> IsaKind {
        self.0
    }

    pub fn name(self) -> &'static str {
        match self.0 {
            IsaKind::Avx512Vnni => "avx512-vnni",
            IsaKind::Avx512 => "avx512",
            IsaKind::Avx2 => "avx2",
            IsaKind::Portable => "portable",
        }
    }

    /// Query columns per packed panel (two vector registers wide).
    pub(crate) fn panel_width(self) -> usize {
        match self.0 {
            IsaKind::Avx512Vnni | IsaKind::Avx512 => 32,
            IsaKind::Avx2 | IsaKind::Portable => 16,
        }
    }
}

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
        (IsaKind::Avx512Vnni | IsaKind::Avx512, Panels::F32(p), CandidateRows::F32(rows)) => {
            // SAFETY: an `Isa` holding these kinds is only made by `Isa::detect`, after checking
            // the CPU features (its field is private, so safe code cannot forge one).
            unsafe { run!(x86::f32_avx512, p, rows) }
        }
        #[cfg(target_arch = "x86_64")]
        (IsaKind::Avx512Vnni, Panels::Vnni(p), CandidateRows::U8(rows)) => {
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
