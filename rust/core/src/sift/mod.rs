//! SIFT (Lowe 2004) in pure Rust, with OpenCV's conventions: a doubled first octave, the
//! same scale space, extrema, refinement, orientations and descriptors, RootSIFT uint8
//! output as the package stores it.

mod blur;
mod config;
mod descriptor;
mod extrema;
mod math;
mod orientation;
mod pyramid;
mod simd;

pub use blur::reference_blur;
pub use config::{SiftConfig, MAX_OCTAVE_LAYERS, MAX_SIFT_FEATURES};
pub use extrema::reference_extrema;
pub use pyramid::{gaussian_blur_plane, scan_extrema_plane, SiftProfile};

use crate::error::{RerankError, Result};
use crate::isa::Isa;

/// Largest image side accepted (pixels of the given image, before doubling).
pub const MAX_SIFT_SIDE: usize = 16384;

/// A grey image borrowed from the caller: `width * height` values, row-major, in [0, 1]
/// (a uint8 image divided by 255).
#[derive(Debug, Clone, Copy)]
pub struct GrayImage<'a> {
    pub width: usize,
    pub height: usize,
    pub pixels: &'a [f32],
}

/// One keypoint in OpenCV's convention: `(x, y)` in pixels of the given image (pixel
/// centres at integers), `size` the diameter OpenCV reports, `angle` in degrees in
/// [0, 360) exactly as `cv2.KeyPoint.angle` (the package's frame is `(size, -angle)`),
/// `response` the |interpolated DoG contrast| and `octave` packed as OpenCV packs it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SiftKeypoint {
    pub x: f32,
    pub y: f32,
    pub size: f32,
    pub angle: f32,
    pub response: f32,
    pub octave: i32,
}

/// The features of one image: keypoints strongest first (ties by y, then x) and their
/// descriptors, `keypoints.len() x 128` RootSIFT bytes (`round(sqrt(d / sum d) * 512)`
/// clipped to 255, as the package stores OpenCV's).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SiftFeatures {
    pub keypoints: Vec<SiftKeypoint>,
    pub descriptors: Vec<u8>,
}

/// Descriptor length.
pub const SIFT_DIM: usize = 128;

impl GrayImage<'_> {
    /// Shape and value checks: a clear error for any image the extractor cannot take.
    pub fn validate(&self) -> Result<()> {
        if self.width == 0 || self.height == 0 {
            return Err(RerankError::Shape {
                what: "image".into(),
                expected: "width and height of at least 1".into(),
                got: format!("{} x {}", self.width, self.height),
            });
        }
        let side = self.width.max(self.height);
        if side > MAX_SIFT_SIDE {
            return Err(RerankError::TooLarge {
                what: "image side".into(),
                limit: MAX_SIFT_SIDE,
                got: side,
            });
        }
        if self.pixels.len() != self.width * self.height {
            return Err(RerankError::Shape {
                what: "image pixels".into(),
                expected: format!("{} (width x height)", self.width * self.height),
                got: self.pixels.len().to_string(),
            });
        }
        if let Some(row) = self.pixels.iter().position(|v| !v.is_finite()) {
            return Err(RerankError::NonFinite {
                what: "image pixels".into(),
                row: row / self.width,
                value: self.pixels[row],
            });
        }
        Ok(())
    }
}

/// SIFT keypoints and RootSIFT descriptors of one grey image, on the best instruction set
/// of this CPU ([`Isa::detect`]).
pub fn extract_sift(image: &GrayImage, config: &SiftConfig) -> Result<SiftFeatures> {
    extract_sift_with(image, config, Isa::detect())
}

/// [`extract_sift`] on a given instruction set (every ISA gives the same bits).
pub fn extract_sift_with(image: &GrayImage, config: &SiftConfig, isa: Isa) -> Result<SiftFeatures> {
    Ok(extract_sift_profiled(image, config, isa)?.0)
}

/// [`extract_sift_with`] and where its time went, stage by stage (for benches).
pub fn extract_sift_profiled(
    image: &GrayImage,
    config: &SiftConfig,
    isa: Isa,
) -> Result<(SiftFeatures, SiftProfile)> {
    config.validate()?;
    image.validate()?;
    let mut profile = SiftProfile::default();
    let features = pyramid::extract(image, config, isa, &mut profile);
    Ok((features, profile))
}
