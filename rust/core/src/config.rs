//! The one place where every tunable and its default lives. The Python `RerankConfig`
//! mirrors these fields one to one (a test checks that the defaults agree).

use crate::error::{RerankError, Result};
use crate::features::MAX_KEYPOINTS;

/// Upper bounds of the settings that set how much work a pair costs: whatever a caller
/// passes, one pair's verification stays bounded (no setting can hang a call).
pub const MAX_HYPOTHESES: usize = 1 << 16;
pub const MAX_RANSAC_ITERATIONS: u32 = 1_000_000;
pub const MAX_LO_ROUNDS: u32 = 32;
pub const MAX_EXPANSION: u32 = 64;
/// Largest Hamming threshold of codes: the longest signature's bits.
pub const MAX_CODES_HAMMING: u32 = 256;
/// Most candidates per query the cascade's second pass may re-verify.
pub const MAX_CASCADE_CANDIDATES: usize = 1 << 22;

/// The geometric model fitted between a query and a candidate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Model {
    /// Rotation + uniform scale + translation (4 degrees of freedom).
    Similarity,
    /// Full 2-D affine (6 degrees of freedom).
    Affine,
    /// Affine first, then refined to a homography when enough inliers support it.
    Homography,
}

impl Model {
    pub fn name(self) -> &'static str {
        match self {
            Model::Similarity => "similarity",
            Model::Affine => "affine",
            Model::Homography => "homography",
        }
    }

    pub fn parse(text: &str) -> Result<Self> {
        match text {
            "similarity" => Ok(Model::Similarity),
            "affine" => Ok(Model::Affine),
            "homography" => Ok(Model::Homography),
            other => Err(RerankError::Config {
                field: "model",
                expected: "one of 'similarity', 'affine', 'homography'",
                got: format!("{other:?}"),
            }),
        }
    }
}

/// How the verified inlier count is combined with the global (shortlist) score.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fusion {
    /// Order by inliers first, global score second (DELG).
    Lexicographic,
    /// `weight * global + (1 - weight) * inliers / (inliers + saturation)` (AMES-like).
    Weighted,
}

impl Fusion {
    pub fn name(self) -> &'static str {
        match self {
            Fusion::Lexicographic => "lexicographic",
            Fusion::Weighted => "weighted",
        }
    }

    pub fn parse(text: &str) -> Result<Self> {
        match text {
            "lexicographic" => Ok(Fusion::Lexicographic),
            "weighted" => Ok(Fusion::Weighted),
            other => Err(RerankError::Config {
                field: "fusion",
                expected: "one of 'lexicographic', 'weighted'",
                got: format!("{other:?}"),
            }),
        }
    }
}

/// Every setting of matching, verification, fusion and execution.
#[derive(Debug, Clone, PartialEq)]
pub struct RerankConfig {
    /// Keep only mutual nearest neighbours (squared L2 distance).
    pub mutual: bool,
    /// Lowe's ratio test on L2 distances: keep a match when best <= ratio * second best.
    pub ratio: Option<f32>,
    /// Keep a match only when the cosine similarity of its descriptors is at least this.
    pub min_similarity: Option<f32>,
    /// Geometric model of the verification.
    pub model: Model,
    /// Inlier reprojection threshold in pixels of the candidate image, at `reference_side`.
    pub inlier_threshold: f32,
    /// When the candidate image size is known, the threshold is scaled by
    /// `max(height, width) / reference_side`; 0 means "always absolute pixels".
    pub reference_side: f32,
    /// Use keypoint frames (one hypothesis per correspondence) when both sides have them;
    /// otherwise seeded RANSAC.
    pub use_frames: bool,
    /// At most this many correspondences (the most distinctive by Lowe's ratio) propose
    /// a hypothesis each; every hypothesis is scored against all correspondences.
    pub max_hypotheses: usize,
    /// With frames: when the frame hypotheses verify fewer inliers than this, seeded
    /// LO-RANSAC runs over the same correspondences too and the better model is kept
    /// (0: never).
    pub ransac_fallback_below: u32,
    /// RANSAC: the most minimal samples drawn (adaptive stopping may draw fewer).
    pub ransac_max_iterations: u32,
    /// RANSAC: the confidence of the adaptive stopping rule.
    pub ransac_confidence: f64,
    /// Rounds of least-squares local optimisation with shrinking thresholds.
    pub local_optimisation_rounds: u32,
    /// A homography is fitted only from at least this many affine inliers.
    pub homography_min_inliers: u32,
    /// Largest accepted linear scale change between the images (area change squared).
    pub max_scale_change: f32,
    /// A candidate with fewer inliers counts as unverified (zero inliers in the score).
    pub min_inliers: u32,
    /// Spatially verified query expansion: after the query's pass, at most this many of
    /// the best verified candidates (each with at least `expansion_min_inliers`) join the
    /// query, and every candidate is verified against them too; its score adds the
    /// inliers it verifies with each of them. 0 turns expansion off. Cost: at most
    /// `expansion` x the shortlist more pairs.
    pub expansion: u32,
    /// Inliers a candidate needs with the query to join it as an expansion image.
    pub expansion_min_inliers: u32,
    /// Cascade, first pass: when > 0, every candidate is first matched and verified with
    /// only the first `cascade_features` features of each image (features stored strongest
    /// first make this the strongest ones), and only the candidates the first pass leaves
    /// uncertain get the second pass below. 0 turns the cascade off (one pass, all
    /// features).
    pub cascade_features: usize,
    /// Cascade, second pass: at most this many candidates per query are verified again
    /// with `cascade_rich_features` features, chosen by the first pass: those below
    /// `cascade_certain_inliers`, by first-pass inliers (uncounted, so 3 beats 0), then
    /// global score, then tentative matches, then input order. Their second-pass
    /// verification replaces the first. Cost per query: `M` pairs at `cascade_features`
    /// plus at most `cascade_candidates` pairs at `cascade_rich_features`.
    pub cascade_candidates: usize,
    /// Cascade, second pass: features per image (a prefix); 0 means all of them.
    pub cascade_rich_features: usize,
    /// Cascade: a candidate whose first pass verifies at least this many inliers is
    /// certain and keeps its first-pass verification (0: none is certain).
    pub cascade_certain_inliers: u32,
    /// How inliers and the global score are combined.
    pub fusion: Fusion,
    /// Weight of the global score in `Fusion::Weighted`, in [0, 1].
    pub fusion_weight: f32,
    /// Inlier count at which `Fusion::Weighted`'s verification term reaches one half.
    pub inlier_saturation: f32,
    /// Quantised features ([`crate::codes`]): the largest Hamming distance between two
    /// signatures of the same visual word that makes a tentative correspondence.
    pub codes_hamming: u32,
    /// Quantised features: keep a correspondence only when `(h + 1) / (h2 + 1)` is at
    /// most this, `h` its Hamming distance and `h2` the query feature's second nearest
    /// among its collisions (the signature bits when it has none): the ratio test in
    /// Hamming space. `None`: no test.
    pub codes_ratio: Option<f32>,
    /// Quantised features: score a verified candidate by the sum over its inliers of
    /// `exp(-h² / σ²)` (`h` each one's Hamming distance, `σ` this) instead of the inlier
    /// count, so that near-identical signatures count more than ones at the threshold
    /// (Hamming Embedding's weighting, Jégou, Douze & Schmid, ECCV 2008); expansion and
    /// consensus sum it likewise. The count still decides `min_inliers`, the cascade's
    /// choices and which images join expansion. `None`: the count.
    pub codes_sigma: Option<f32>,
    /// Seed of every random choice; each pair derives its own stream from
    /// `(seed, query, candidate)`, so results never depend on the number of threads.
    pub seed: u64,
    /// Worker threads; 0 means all cores (or `ILIAS_RERANK_NUM_THREADS` when set).
    pub num_threads: usize,
}

impl Default for RerankConfig {
    fn default() -> Self {
        RerankConfig {
            mutual: true,
            // Measured: mAP 0.909 vs 0.615 without it on roxford_rparis_pixel_subset,
            // SMVS top-1 unchanged (0.99).
            ratio: Some(0.9),
            min_similarity: None,
            model: Model::Homography,
            // Measured on every shared set (README "Decisions"): 16 px gains 0.007 on the
            // shuffled rOxf/rPar shortlists and one homogr pair at 1024 features, but loses
            // the pipeline protocols (rOxf/rPar 0.565 -> 0.540 mAP, top-1 0.94 -> 0.82;
            // homogr as retrieval 0.938 -> 0.896) and localisation (0.71 -> 0.31): 8 px.
            inlier_threshold: 8.0,
            reference_side: 1024.0,
            use_frames: true,
            max_hypotheses: 512,
            ransac_fallback_below: 0,
            ransac_max_iterations: 1000,
            ransac_confidence: 0.999,
            local_optimisation_rounds: 4,
            homography_min_inliers: 8,
            max_scale_change: 10.0,
            min_inliers: 4,
            expansion: 0,
            expansion_min_inliers: 20,
            cascade_features: 0,
            cascade_candidates: 0,
            cascade_rich_features: 0,
            cascade_certain_inliers: 0,
            fusion: Fusion::Lexicographic,
            fusion_weight: 0.5,
            inlier_saturation: 20.0,
            codes_hamming: 24,
            codes_ratio: None,
            codes_sigma: None,
            seed: 0,
            num_threads: 0,
        }
    }
}

fn check(ok: bool, field: &'static str, expected: &'static str, got: String) -> Result<()> {
    if ok {
        Ok(())
    } else {
        Err(RerankError::Config {
            field,
            expected,
            got,
        })
    }
}

impl RerankConfig {
    /// Check every field's range once, before any work starts.
    pub fn validate(&self) -> Result<()> {
        if let Some(r) = self.codes_ratio {
            check(
                r > 0.0 && r <= 1.0,
                "codes_ratio",
                "a number in (0, 1] or None",
                r.to_string(),
            )?;
        }
        if let Some(s) = self.codes_sigma {
            check(
                s.is_finite() && s > 0.0 && s <= MAX_CODES_HAMMING as f32,
                "codes_sigma",
                "a number in (0, 256] (bits) or None",
                s.to_string(),
            )?;
        }
        check(
            self.codes_hamming <= MAX_CODES_HAMMING,
            "codes_hamming",
            "an integer in 0..=256 (signature bits)",
            self.codes_hamming.to_string(),
        )?;
        if let Some(r) = self.ratio {
            check(
                r > 0.0 && r <= 1.0,
                "ratio",
                "a number in (0, 1] or None",
                r.to_string(),
            )?;
        }
        if let Some(s) = self.min_similarity {
            check(
                (-1.0..=1.0).contains(&s),
                "min_similarity",
                "a number in [-1, 1] or None",
                s.to_string(),
            )?;
        }
        let t = self.inlier_threshold;
        check(
            t.is_finite() && t > 0.0,
            "inlier_threshold",
            "a finite number > 0",
            t.to_string(),
        )?;
        let r = self.reference_side;
        check(
            r.is_finite() && r >= 0.0,
            "reference_side",
            "a finite number >= 0",
            r.to_string(),
        )?;
        check(
            (1..=MAX_HYPOTHESES).contains(&self.max_hypotheses),
            "max_hypotheses",
            "an int in 1..=65536",
            self.max_hypotheses.to_string(),
        )?;
        check(
            (1..=MAX_RANSAC_ITERATIONS).contains(&self.ransac_max_iterations),
            "ransac_max_iterations",
            "an int in 1..=1000000",
            self.ransac_max_iterations.to_string(),
        )?;
        check(
            self.local_optimisation_rounds <= MAX_LO_ROUNDS,
            "local_optimisation_rounds",
            "an int in 0..=32",
            self.local_optimisation_rounds.to_string(),
        )?;
        check(
            self.ransac_fallback_below <= MAX_KEYPOINTS as u32,
            "ransac_fallback_below",
            "an int in 0..=1048576",
            self.ransac_fallback_below.to_string(),
        )?;
        check(
            self.min_inliers <= MAX_KEYPOINTS as u32,
            "min_inliers",
            "an int in 0..=1048576 (the most keypoints an image may have)",
            self.min_inliers.to_string(),
        )?;
        let c = self.ransac_confidence;
        check(
            c > 0.0 && c < 1.0,
            "ransac_confidence",
            "a number in (0, 1)",
            c.to_string(),
        )?;
        check(
            (4..=MAX_KEYPOINTS as u32).contains(&self.homography_min_inliers),
            "homography_min_inliers",
            "an int in 4..=1048576",
            self.homography_min_inliers.to_string(),
        )?;
        check(
            self.expansion <= MAX_EXPANSION,
            "expansion",
            "an int in 0..=64",
            self.expansion.to_string(),
        )?;
        check(
            (1..=MAX_KEYPOINTS as u32).contains(&self.expansion_min_inliers),
            "expansion_min_inliers",
            "an int in 1..=1048576",
            self.expansion_min_inliers.to_string(),
        )?;
        check(
            self.cascade_features <= MAX_KEYPOINTS,
            "cascade_features",
            "an int in 0..=1048576 (0: no cascade)",
            self.cascade_features.to_string(),
        )?;
        check(
            self.cascade_candidates <= MAX_CASCADE_CANDIDATES,
            "cascade_candidates",
            "an int in 0..=4194304",
            self.cascade_candidates.to_string(),
        )?;
        check(
            self.cascade_rich_features == 0
                || (self.cascade_rich_features >= self.cascade_features
                    && self.cascade_rich_features <= MAX_KEYPOINTS),
            "cascade_rich_features",
            "0 (all features) or an int in cascade_features..=1048576",
            self.cascade_rich_features.to_string(),
        )?;
        check(
            self.cascade_certain_inliers <= MAX_KEYPOINTS as u32,
            "cascade_certain_inliers",
            "an int in 0..=1048576 (0: none is certain)",
            self.cascade_certain_inliers.to_string(),
        )?;
        let s = self.max_scale_change;
        check(
            s.is_finite() && s >= 1.0,
            "max_scale_change",
            "a finite number >= 1",
            s.to_string(),
        )?;
        let w = self.fusion_weight;
        check(
            (0.0..=1.0).contains(&w),
            "fusion_weight",
            "a number in [0, 1]",
            w.to_string(),
        )?;
        let k = self.inlier_saturation;
        check(
            k.is_finite() && k > 0.0,
            "inlier_saturation",
            "a finite number > 0",
            k.to_string(),
        )?;
        check(
            self.num_threads <= 1024,
            "num_threads",
            "0 (all cores) or at most 1024",
            self.num_threads.to_string(),
        )?;
        Ok(())
    }
}
