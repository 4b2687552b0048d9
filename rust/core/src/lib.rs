//! # ilias-rerank core
//!
//! Local-descriptor re-ranking for instance-level image retrieval, in pure Rust:
//! mutual-nearest-neighbour matching ([`matching`]) on SIMD kernels ([`kernels`]),
//! spatial verification ([`verify`]) of affine / homography models ([`geometry`]),
//! fusion with global scores ([`fusion`]), and the whole shortlist in parallel
//! ([`rerank()`]). No Python here: the bindings live in `rust/bindings`.

// `!(x > limit)` is used on purpose throughout: unlike `x <= limit` it also rejects NaN.
#![allow(clippy::neg_cmp_op_on_partial_ord)]

mod cascade;
pub mod codes;
pub mod config;
pub mod error;
pub mod expansion;
pub mod features;
pub mod fusion;
pub mod geometry;
pub mod image;
pub mod isa;
pub mod kernels;
pub mod matching;
mod pair;
pub mod rerank;
pub mod sift;
pub mod threads;
pub mod verify;

pub use config::{Fusion, Model, RerankConfig};
pub use error::{RerankError, Result};
pub use expansion::rerank_consensus;
pub use features::{Descriptors, Frames, LocalFeaturesRef};
pub use matching::Match;
pub use rerank::{
    frame_hypothesis_support, pixel_threshold, rerank, rerank_query, verify_correspondences,
    verify_pair, CandidateOutcome, PairOutcome, RerankOutput,
};
pub use verify::Verification;
