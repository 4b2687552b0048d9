//! The settings of the SIFT extractor, with OpenCV's meanings and the package's defaults.

use crate::error::{RerankError, Result};

/// Largest feature cap a caller may ask for (an image never yields more than a few tens of
/// thousands at any sensible size; the bound keeps one call's work and memory bounded).
pub const MAX_SIFT_FEATURES: usize = 1 << 20;
/// Largest number of intervals per octave (OpenCV's `nOctaveLayers`).
pub const MAX_OCTAVE_LAYERS: usize = 8;
/// Most threads one image may use ([`SiftConfig::threads`]).
pub const MAX_SIFT_THREADS: usize = 256;

/// Settings of [`extract_sift`](super::extract_sift). Defaults: the package's OpenCV
/// backend (`cv2.SIFT_create(1024, contrastThreshold=0.02)`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SiftConfig {
    /// Keep the `max_features` keypoints of highest response (every orientation of an
    /// extremum counts as one keypoint, as in OpenCV's `retainBest`), strongest first.
    pub max_features: usize,
    /// OpenCV's `contrastThreshold`: an extremum is kept when its interpolated DoG
    /// contrast (pixel values in [0, 1]) times `n_octave_layers` reaches it.
    pub contrast_threshold: f32,
    /// OpenCV's `edgeThreshold`: the largest principal-curvature ratio kept.
    pub edge_threshold: f32,
    /// Intervals per octave (OpenCV's `nOctaveLayers`).
    pub n_octave_layers: usize,
    /// Blur of the first level of each octave (OpenCV's `sigma`).
    pub sigma: f32,
    /// Detect on a doubled first octave (OpenCV's `firstOctave = -1`).
    pub upsample: bool,
    /// Threads for one image: 0 or 1 = the calling thread only (the default; a batch
    /// spreads images over threads instead); `n >= 2` = the whole extractor on the crate's
    /// pool of `n` threads (`crate::threads`): each octave's pyramid and extrema scan in
    /// `n` bands of rows (halo rows recomputed), then refinement, orientations and
    /// descriptors. The features are the same for every thread count.
    pub threads: usize,
}

impl Default for SiftConfig {
    fn default() -> Self {
        SiftConfig {
            max_features: 1024,
            contrast_threshold: 0.02,
            edge_threshold: 10.0,
            n_octave_layers: 3,
            sigma: 1.6,
            upsample: true,
            threads: 1,
        }
    }
}

fn config_error(field: &'static str, expected: &'static str, got: String) -> RerankError {
    RerankError::Config {
        field,
        expected,
        got,
    }
}

impl SiftConfig {
    /// Range checks of every field ("expected ... got ...").
    pub fn validate(&self) -> Result<()> {
        if !(1..=MAX_SIFT_FEATURES).contains(&self.max_features) {
            return Err(config_error(
                "max_features",
                "an integer in [1, 1048576]",
                self.max_features.to_string(),
            ));
        }
        if !(self.contrast_threshold > 0.0 && self.contrast_threshold <= 1.0) {
            return Err(config_error(
                "contrast_threshold",
                "a number in (0, 1]",
                self.contrast_threshold.to_string(),
            ));
        }
        if !(self.edge_threshold >= 1.0 && self.edge_threshold <= 1000.0) {
            return Err(config_error(
                "edge_threshold",
                "a number in [1, 1000]",
                self.edge_threshold.to_string(),
            ));
        }
        if !(1..=MAX_OCTAVE_LAYERS).contains(&self.n_octave_layers) {
            return Err(config_error(
                "n_octave_layers",
                "an integer in [1, 8]",
                self.n_octave_layers.to_string(),
            ));
        }
        if !(self.sigma >= 0.5 && self.sigma <= 8.0) {
            return Err(config_error(
                "sigma",
                "a number in [0.5, 8]",
                self.sigma.to_string(),
            ));
        }
        if self.threads > MAX_SIFT_THREADS {
            return Err(config_error(
                "threads",
                "an integer in [0, 256]",
                self.threads.to_string(),
            ));
        }
        Ok(())
    }
}
