//! SIFT (Lowe 2004) in pure Rust, with OpenCV's conventions: a doubled first octave, the
//! same scale space, extrema, refinement, orientations and descriptors, RootSIFT uint8
//! output as the package stores it.
//!
//! - **Input**: a grey image as `f32` in [0, 1] (a uint8 image divided by 255; internally
//!   scaled to [0, 255] as OpenCV sees a uint8 image, so every threshold keeps OpenCV's
//!   meaning).
//! - **Same keypoints as OpenCV** (5.1, `cv2.SIFT_create(1024, contrastThreshold=0.02)`):
//!   same doubled image (OpenCV's bilinear `resize`), Gaussian kernels, DoG, 26-neighbour
//!   extrema with OpenCV's floored early threshold, Newton refinement, contrast and edge
//!   tests, 36-bin orientation histograms (OpenCV's `fastAtan2`) and 4 x 4 x 8
//!   descriptors: on the test scene and on photos every one of OpenCV's strongest 150 /
//!   1,024 keypoints is found again to 0.01 px with its size, angle and descriptor bytes.
//! - **One deliberate difference, coordinates**: OpenCV doubles with a centre-aligned
//!   resize (output pixel `x` samples the input at `x / 2 - 0.25`) but halves keypoint
//!   coordinates as if corner-aligned, so its keypoints from every octave sit 0.25 px
//!   right of and below where they are. Ours are where they are (an exact quarter turn of
//!   the image turns them exactly; `tests/sift.rs`): `ours = OpenCV's - 0.25`.
//! - **The cap** counts keypoints as OpenCV's `retainBest` (each orientation of an extremum
//!   is one keypoint; ties with the last kept response kept), then orders them strongest
//!   first (ties by y, then x) and cuts to `max_features` — what the Python OpenCV backend's
//!   `strongest_first` makes of OpenCV's output. Orientations are computed only for
//!   extrema taken in response order until the cap is full, descriptors only for the kept.
//! - **Instruction sets**: the hot loops are plain Rust compiled for AVX-512, AVX2 and
//!   portable, chosen by [`crate::isa::Isa`] (the one detection the matching kernels use);
//!   every ISA gives the same bits.
//! - **Memory**: planes of the whole pyramid, kept per thread between calls (at most
//!   256 MB a thread; about 140 MB for a 768-px image); the first octave is bounded by
//!   [`MAX_SIFT_OCTAVE_PIXELS`].

mod blur;
mod config;
mod descriptor;
mod extrema;
mod math;
mod orientation;
mod pyramid;
mod rows;
mod simd;

pub use blur::reference_blur;
pub use config::{SiftConfig, MAX_OCTAVE_LAYERS, MAX_SIFT_FEATURES, MAX_SIFT_THREADS};
pub use extrema::reference_extrema;
pub use pyramid::{gaussian_blur_plane, scan_extrema_plane, SiftProfile};

use crate::error::{RerankError, Result};
use crate::isa::Isa;

/// Largest image side accepted (pixels of the given image, before doubling).
pub const MAX_SIFT_SIDE: usize = 16384;
/// Most pixels of the first octave (the doubled image when `upsample`): 16.8 M, e.g. a
/// 2,048 x 2,048 image doubled, which keeps one call's planes under about 1 GB.
pub const MAX_SIFT_OCTAVE_PIXELS: usize = 1 << 24;

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
    let factor = if config.upsample { 4 } else { 1 };
    let pixels = image.width * image.height * factor;
    if pixels > MAX_SIFT_OCTAVE_PIXELS {
        return Err(RerankError::TooLarge {
            what: "first-octave pixels (width x height, x 4 when upsample)".into(),
            limit: MAX_SIFT_OCTAVE_PIXELS,
            got: pixels,
        });
    }
    let mut profile = SiftProfile::default();
    let features = pyramid::extract(image, config, isa, &mut profile)?;
    Ok((features, profile))
}
