//! From image sources (encoded bytes, files, grey pixels) to SIFT features in the pixels
//! of the original image: decode ([`super::working_image`]), detect
//! ([`crate::sift::extract_sift`]), map back, for many images at once over the core's
//! thread pool. Each image succeeds or fails on its own: a failure (bad bytes, a bomb, a
//! panic in a kernel) is that image's error string, never the batch's.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;

use rayon::prelude::*;

use super::{resize_to_working, working_image, Gray, Limits, Working, WorkingSize};
use crate::error::{RerankError, Result};
use crate::sift::{extract_sift, GrayImage, SiftConfig, MAX_SIFT_THREADS, SIFT_DIM};

/// Largest file read from a path (an encoded image above this is refused unread).
pub const MAX_FILE_BYTES: u64 = 1 << 30;

/// One image to extract from.
#[derive(Clone, Copy, Debug)]
pub enum Source<'a> {
    /// Encoded JPEG or PNG bytes.
    Encoded(&'a [u8]),
    /// A file of JPEG or PNG bytes.
    Path(&'a Path),
    /// Grey pixels in the displayed orientation, `width x height`, row-major.
    Gray {
        width: usize,
        height: usize,
        pixels: &'a [u8],
    },
}

/// Everything that changes the features.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ExtractSettings {
    pub size: WorkingSize,
    pub sift: SiftConfig,
    pub limits: Limits,
}

/// The features of one image in its original pixels (the package's convention: keypoint
/// `(x, y)` with pixel centres at integers, frames `(size, -angle)`), strongest first.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ImageFeatures {
    pub keypoints: Vec<[f32; 2]>,
    pub frames: Vec<[f32; 2]>,
    /// `keypoints.len() x 128` RootSIFT bytes.
    pub descriptors: Vec<u8>,
    /// `(width, height)` of the original image, displayed orientation.
    pub original: (usize, usize),
    /// `(width, height)` the detector saw.
    pub working: (usize, usize),
}

/// The grey working image of one source (decoded, EXIF applied, resized), or why not.
pub fn working(
    source: &Source,
    settings: &ExtractSettings,
) -> std::result::Result<Working, String> {
    match *source {
        Source::Encoded(bytes) => {
            working_image(bytes, &settings.size, &settings.limits).map_err(|e| e.to_string())
        }
        Source::Path(path) => {
            let bytes = read_file(path)?;
            working_image(&bytes, &settings.size, &settings.limits).map_err(|e| e.to_string())
        }
        Source::Gray {
            width,
            height,
            pixels,
        } => {
            if width == 0 || height == 0 {
                return Err(format!(
                    "empty image: expected at least 1 x 1 pixels, got {width} x {height}"
                ));
            }
            if pixels.len() != width.saturating_mul(height) {
                return Err(format!(
                    "pixels: expected {} (width x height), got {}",
                    width.saturating_mul(height),
                    pixels.len()
                ));
            }
            let image = Gray {
                width,
                height,
                pixels: pixels.to_vec(),
            };
            resize_to_working(image, (width, height), &settings.size).map_err(|e| e.to_string())
        }
    }
}

fn read_file(path: &Path) -> std::result::Result<Vec<u8>, String> {
    use std::io::Read;
    let file = std::fs::File::open(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => "no such file".to_string(),
        _ => format!("cannot read ({e})"),
    })?;
    let mut bytes = Vec::new();
    // One byte past the limit tells a file over it, without reading all of it.
    file.take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read ({e})"))?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(format!(
            "file too large: expected at most {MAX_FILE_BYTES} bytes"
        ));
    }
    Ok(bytes)
}

/// The features of one image, or why there are none.
pub fn extract_image(
    source: &Source,
    settings: &ExtractSettings,
) -> std::result::Result<ImageFeatures, String> {
    let Working { image, original } = working(source, settings)?;
    let pixels: Vec<f32> = image.pixels.iter().map(|&p| f32::from(p) / 255.0).collect();
    let gray = GrayImage {
        width: image.width,
        height: image.height,
        pixels: &pixels,
    };
    let found = extract_sift(&gray, &settings.sift).map_err(|e| e.to_string())?;
    let (sx, sy) = (
        original.0 as f32 / image.width as f32,
        original.1 as f32 / image.height as f32,
    );
    let size_scale = (sx * sy).sqrt();
    let n = found.keypoints.len();
    if found.descriptors.len() != n * SIFT_DIM {
        return Err(format!(
            "descriptors: expected {} bytes, got {}",
            n * SIFT_DIM,
            found.descriptors.len()
        ));
    }
    Ok(ImageFeatures {
        keypoints: found
            .keypoints
            .iter()
            .map(|k| [(k.x + 0.5) * sx - 0.5, (k.y + 0.5) * sy - 0.5])
            .collect(),
        frames: found
            .keypoints
            .iter()
            .map(|k| [k.size * size_scale, -k.angle])
            .collect(),
        descriptors: found.descriptors,
        original,
        working: (image.width, image.height),
    })
}

/// [`extract_image`] with a panic turned into that image's error.
fn guarded(
    source: &Source,
    settings: &ExtractSettings,
) -> std::result::Result<ImageFeatures, String> {
    catch_unwind(AssertUnwindSafe(|| extract_image(source, settings))).unwrap_or_else(|p| {
        let text = p
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| p.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".into());
        Err(format!("internal error (please report): {text}"))
    })
}

/// [`extract_image`] of every source on a pool of `threads` threads (0: the default, see
/// [`crate::threads`]), in input order; a single source gets the threads inside it
/// ([`crate::sift::SiftConfig::threads`]). The settings are checked once (a bad setting is
/// the call's error); each image's failure is its own `Err`.
pub fn extract_batch(
    sources: &[Source],
    settings: &ExtractSettings,
    threads: usize,
) -> Result<Vec<std::result::Result<ImageFeatures, String>>> {
    settings.sift.validate()?;
    if settings.size.max_side == 0 {
        return Err(RerankError::Config {
            field: "max_side",
            expected: "at least 1",
            got: "0".into(),
        });
    }
    if sources.len() <= 1 {
        // One image: its threads work inside it (the SIFT's own pool), same features.
        let mut one = *settings;
        one.sift.threads = crate::threads::effective_threads(threads).min(MAX_SIFT_THREADS);
        return Ok(sources.iter().map(|s| guarded(s, &one)).collect());
    }
    crate::threads::install(threads, || {
        sources
            .par_iter()
            .with_max_len(1)
            .map(|s| guarded(s, settings))
            .collect()
    })
}
