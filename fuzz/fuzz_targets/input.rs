#![allow(dead_code)] // each target uses part of the helpers
//! Decoding fuzzer bytes into the core's inputs: sizes, descriptor types, values (any
//! bit pattern, NaN and infinities included), frames and settings. Shared by the targets.

use ilias_rerank_core::{Descriptors, Frames, LocalFeaturesRef, Model, RerankConfig};

/// A cursor over the fuzzer's bytes; reads past the end give zeros.
pub struct Bytes<'a>(pub &'a [u8]);

impl Bytes<'_> {
    pub fn u8(&mut self) -> u8 {
        match self.0.split_first() {
            Some((b, rest)) => {
                self.0 = rest;
                *b
            }
            None => 0,
        }
    }

    pub fn u32(&mut self) -> u32 {
        u32::from_le_bytes([self.u8(), self.u8(), self.u8(), self.u8()])
    }

    /// Mostly ordinary values, sometimes any bit pattern (NaN, inf, subnormal, huge).
    pub fn f32(&mut self) -> f32 {
        match self.u8() % 8 {
            0 => f32::from_bits(self.u32()),
            1 => 0.0,
            _ => (self.u32() % 100_000) as f32 / 100.0 - 100.0,
        }
    }

    pub fn f32s(&mut self, n: usize) -> Vec<f32> {
        (0..n).map(|_| self.f32()).collect()
    }
}

/// Owned arrays of one image.
pub struct Image {
    pub keypoints: Vec<f32>,
    pub f32: Vec<f32>,
    pub u8: Vec<u8>,
    pub words: Vec<u64>,
    /// Codes (kind 3): `per` visual words a feature, few distinct so that they collide.
    pub cells: Vec<u32>,
    pub per: usize,
    pub kind: u8,
    pub dim: usize,
    pub frames: Vec<f32>,
    pub frame_kind: u8,
    pub size: Option<(u32, u32)>,
}

impl Image {
    /// `n` features of dimension `dim` and descriptor `kind` (0 f32, 1 u8, 2 binary, 3
    /// codes: `dim` signature words and 1-3 visual words a feature, sometimes too few).
    pub fn new(b: &mut Bytes<'_>, n: usize, dim: usize, kind: u8) -> Image {
        let keypoints = b.f32s(2 * n);
        let (mut f32v, mut u8v, mut words) = (Vec::new(), Vec::new(), Vec::new());
        let (mut cells, mut per) = (Vec::new(), 1);
        if kind == 3 {
            per = 1 + usize::from(b.u8() % 3);
            let short = usize::from(b.u8() % 16 == 0); // a malformed word array, refused
            cells = (0..(n * per).saturating_sub(short))
                .map(|_| u32::from(b.u8() % 8))
                .collect();
        }
        match kind {
            0 => f32v = b.f32s(n * dim),
            1 => u8v = (0..n * dim).map(|_| b.u8()).collect(),
            _ => {
                words = (0..n * dim)
                    .map(|_| u64::from(b.u32()) << 32 | u64::from(b.u32()))
                    .collect()
            }
        }
        let frame_kind = b.u8() % 3;
        let frames = match frame_kind {
            1 => b.f32s(2 * n),
            2 => b.f32s(6 * n),
            _ => Vec::new(),
        };
        let size = match b.u8() % 3 {
            0 => None,
            1 => Some((u32::from(b.u8()), u32::from(b.u8()))),
            _ => Some((b.u32() % 100_000, b.u32() % 100_000)),
        };
        Image {
            keypoints,
            f32: f32v,
            u8: u8v,
            words,
            cells,
            per,
            kind,
            dim,
            frames,
            frame_kind,
            size,
        }
    }

    pub fn view(&self) -> LocalFeaturesRef<'_> {
        let descriptors = match self.kind {
            0 => Descriptors::F32 {
                data: &self.f32,
                dim: self.dim,
            },
            1 => Descriptors::U8 {
                data: &self.u8,
                dim: self.dim,
            },
            3 => Descriptors::Codes {
                words: &self.cells,
                per: self.per,
                signatures: &self.words,
                dim: self.dim,
                vocabulary: 1,
            },
            _ => Descriptors::Binary {
                data: &self.words,
                dim: self.dim,
            },
        };
        let frames = match self.frame_kind {
            1 => Some(Frames::ScaleOrientation(&self.frames)),
            2 => Some(Frames::Affine(&self.frames)),
            _ => None,
        };
        LocalFeaturesRef {
            keypoints: &self.keypoints,
            descriptors,
            frames,
            image_size: self.size,
        }
    }
}

/// Settings near the defaults, some of them out of range on purpose.
pub fn config(b: &mut Bytes<'_>) -> RerankConfig {
    let mut cfg = RerankConfig::default();
    let flags = b.u8();
    cfg.mutual = flags & 1 == 0;
    cfg.ratio = if flags & 2 == 0 { Some(b.f32()) } else { None };
    cfg.model = match b.u8() % 3 {
        0 => Model::Homography,
        1 => Model::Affine,
        _ => Model::Similarity,
    };
    if flags & 4 != 0 {
        cfg.inlier_threshold = b.f32();
    }
    if flags & 8 != 0 {
        cfg.use_frames = false;
    }
    cfg.max_hypotheses = (b.u8() as usize) * 4;
    cfg.ransac_max_iterations = u32::from(b.u8()) * 8;
    if flags & 16 != 0 {
        cfg.expansion = u32::from(b.u8() % 4);
        cfg.expansion_min_inliers = u32::from(b.u8());
        cfg.ransac_fallback_below = u32::from(b.u8() % 16);
    }
    if flags & 32 != 0 {
        cfg.cascade_features = usize::from(b.u8());
        cfg.cascade_candidates = usize::from(b.u8() % 8);
        cfg.cascade_rich_features = usize::from(b.u8()) * 2;
        cfg.cascade_certain_inliers = u32::from(b.u8() % 32);
    }
    if flags & 64 != 0 {
        cfg.codes_hamming = u32::from(b.u8()); // 0..=255, some above a 64-bit signature
        cfg.codes_ratio = Some(b.f32());
        cfg.codes_sigma = Some(b.f32());
    }
    cfg.num_threads = 1;
    cfg
}
