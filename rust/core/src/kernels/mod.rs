//! Similarity kernels: exhaustive nearest-neighbour search between two descriptor sets,
//! computed as a blocked `C · Qᵀ` product with the nearest-neighbour reductions fused in.
//!
//! The query side is packed once ([`PackedQuery`]) and reused for every candidate of a
//! shortlist. The instruction set is chosen at run time ([`Isa::detect`], in [`crate::isa`],
//! shared with SIFT); setting the
//! environment variable `ILIAS_RERANK_FORCE_PORTABLE=1` forces the portable fallback.

#[cfg(target_arch = "x86_64")]
mod amx;
#[cfg(target_arch = "x86_64")]
mod avx512;
mod dispatch;
mod hamming;
mod nn_body;
mod packing;

pub use crate::isa::Isa;
pub use dispatch::{nearest_neighbours, CandidateRows};
pub use packing::PackedQuery;

/// Per-thread work buffers of [`nearest_neighbours`]; reused across calls so that the
/// hot loop never allocates once they reached the largest size seen.
#[derive(Debug, Default, Clone)]
pub struct NnScratch {
    /// For each query descriptor: smallest `|c|² - 2 q·c` over candidates.
    pub query_best: Vec<f32>,
    /// For each query descriptor: second smallest `|c|² - 2 q·c`.
    pub query_second: Vec<f32>,
    /// For each query descriptor: the candidate index reaching `query_best`.
    pub query_arg: Vec<u32>,
    /// For each candidate descriptor: smallest `|q|² - 2 q·c` over query descriptors.
    pub cand_best: Vec<f32>,
    /// For each candidate descriptor: the query index reaching `cand_best`.
    pub cand_arg: Vec<u32>,
    /// For each candidate descriptor: its squared norm.
    pub cand_norms: Vec<f32>,
    /// Transposed candidate block (k-major), f32 flavour.
    pub(crate) block_f32: Vec<f32>,
    /// Transposed candidate block (k-major), integer flavour.
    pub(crate) block_i32: Vec<i32>,
    /// Transposed candidate block, 4 packed bytes per element (VNNI).
    pub(crate) block_u32: Vec<u32>,
    /// Candidate rows copied to cache-line-aligned, zero-padded whole steps (AMX).
    #[cfg(target_arch = "x86_64")]
    pub(crate) block_lines: Vec<amx::Line>,
}
