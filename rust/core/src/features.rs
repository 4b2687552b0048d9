//! Borrowed views of one image's local features, and their validation.
//!
//! Layouts (all row-major, C order):
//! - keypoints: `N x 2` float32 pixel `x, y` in the original image;
//! - descriptors: `N x D` float32 or uint8;
//! - frames (optional): `N x 2` `(scale, orientation in degrees)` exactly as kornia's
//!   `laf_from_center_scale_ori` builds a frame from them (OpenCV keypoints: `(size,
//!   -angle)`; both proved on a rotated photo by `tests/test_frames.py`), or `N x 6` local affine frames `[a11 a12 x a21 a22 y]`
//!   (kornia's LAF `2 x 3`), of which the `2 x 2` shape part is used;
//! - image size (optional): `(height, width)` in pixels.

use crate::error::{RerankError, Result};
use crate::kernels::CandidateRows;

/// Descriptors of one image.
#[derive(Debug, Clone, Copy)]
pub enum Descriptors<'a> {
    F32 {
        data: &'a [f32],
        dim: usize,
    },
    U8 {
        data: &'a [u8],
        dim: usize,
    },
    /// Binary descriptors, `dim` 64-bit words per row (`64 * dim` bits), compared by
    /// Hamming distance: as ±1 vectors, so that the squared L2 distance is `4 * hamming`,
    /// the squared norm is the number of bits and the Lowe ratio and cosine floor keep
    /// their meaning.
    Binary {
        data: &'a [u64],
        dim: usize,
    },
    /// Quantised features (see [`crate::codes`]): per feature `per` visual words (the first
    /// is its own cell; the others, the next nearest cells, are read when the image is the
    /// query) and a binary signature of `dim` 64-bit words, all from the vocabulary whose
    /// identifier is `vocabulary`. Matched by a join on words, never exhaustively.
    Codes {
        words: &'a [u32],
        per: usize,
        signatures: &'a [u64],
        dim: usize,
        vocabulary: u64,
    },
}

impl<'a> Descriptors<'a> {
    pub fn dim(&self) -> usize {
        match self {
            Descriptors::F32 { dim, .. }
            | Descriptors::U8 { dim, .. }
            | Descriptors::Binary { dim, .. }
            | Descriptors::Codes { dim, .. } => *dim,
        }
    }

    pub fn type_name(&self) -> &'static str {
        match self {
            Descriptors::F32 { .. } => "float32",
            Descriptors::U8 { .. } => "uint8",
            Descriptors::Binary { .. } => "binary (uint64 words)",
            Descriptors::Codes { .. } => "codes (visual words + signatures)",
        }
    }

    fn data_len(&self) -> usize {
        match self {
            Descriptors::F32 { data, .. } => data.len(),
            Descriptors::U8 { data, .. } => data.len(),
            Descriptors::Binary { data, .. } => data.len(),
            Descriptors::Codes { signatures, .. } => signatures.len(),
        }
    }

    /// The rows for the exact kernels; `None` for codes (matched by [`crate::codes`]).
    pub(crate) fn rows(&self) -> Option<CandidateRows<'a>> {
        match *self {
            Descriptors::F32 { data, .. } => Some(CandidateRows::F32(data)),
            Descriptors::U8 { data, .. } => Some(CandidateRows::U8(data)),
            Descriptors::Binary { data, .. } => Some(CandidateRows::Binary(data)),
            Descriptors::Codes { .. } => None,
        }
    }
}

/// Keypoint frames of one image.
#[derive(Debug, Clone, Copy)]
pub enum Frames<'a> {
    /// `N x 2`: scale (pixels) and orientation (degrees).
    ScaleOrientation(&'a [f32]),
    /// `N x 6`: kornia LAF rows `[a11 a12 x a21 a22 y]`.
    Affine(&'a [f32]),
}

impl Frames<'_> {
    fn stride(&self) -> usize {
        match self {
            Frames::ScaleOrientation(_) => 2,
            Frames::Affine(_) => 6,
        }
    }

    fn data(&self) -> &[f32] {
        match self {
            Frames::ScaleOrientation(d) | Frames::Affine(d) => d,
        }
    }

    /// The `2 x 2` shape matrix `[a11, a12, a21, a22]` of keypoint `i`.
    pub fn shape(&self, i: usize) -> [f64; 4] {
        match self {
            Frames::ScaleOrientation(d) => {
                // kornia's `laf_from_center_scale_ori`: scale times
                // `angle_to_rotation_matrix(θ)` = [[cos θ, sin θ], [-sin θ, cos θ]]
                // (and `get_laf_orientation` reads θ back as atan2(a12, a11)).
                let s = f64::from(d[2 * i]);
                let (sin, cos) = f64::from(d[2 * i + 1]).to_radians().sin_cos();
                [s * cos, s * sin, -s * sin, s * cos]
            }
            Frames::Affine(d) => {
                let r = &d[6 * i..6 * i + 6];
                [r[0], r[1], r[3], r[4]].map(f64::from)
            }
        }
    }
}

/// Local features of one image, borrowed from the caller.
#[derive(Debug, Clone, Copy)]
pub struct LocalFeaturesRef<'a> {
    pub keypoints: &'a [f32],
    pub descriptors: Descriptors<'a>,
    pub frames: Option<Frames<'a>>,
    /// `(height, width)` of the original image.
    pub image_size: Option<(u32, u32)>,
}

/// Hard bounds on one image's features; larger inputs are refused up front.
pub const MAX_KEYPOINTS: usize = 1 << 20;
pub const MAX_DIM: usize = 4096;
/// Largest uint8 descriptor dimension matched exactly. The kernels compare
/// `|c|² - 2·c·q` in float32, whose integers are exact up to 2^24; every term is at most
/// `255² · D` in magnitude, so `D <= 2^24 / 255² = 258` keeps every comparison exact
/// (ties and all). Wider uint8 descriptors are refused rather than matched approximately:
/// pass them as float32 or float16.
pub const MAX_EXACT_U8_DIM: usize = 258;

fn first_non_finite(values: &[f32], stride: usize) -> Option<(usize, f32)> {
    values
        .iter()
        .position(|v| !v.is_finite())
        .map(|p| (p / stride.max(1), values[p]))
}

impl<'a> LocalFeaturesRef<'a> {
    pub fn len(&self) -> usize {
        self.keypoints.len() / 2
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn dim(&self) -> usize {
        self.descriptors.dim()
    }

    pub fn point(&self, i: usize) -> [f64; 2] {
        [
            f64::from(self.keypoints[2 * i]),
            f64::from(self.keypoints[2 * i + 1]),
        ]
    }

    /// The first `n` features (all of them when there are fewer): with features stored
    /// strongest first, the `n` strongest. Call on validated features only.
    pub fn prefix(&self, n: usize) -> LocalFeaturesRef<'a> {
        let n = n.min(self.len());
        let dim = self.dim();
        let descriptors = match self.descriptors {
            Descriptors::F32 { data, dim } => Descriptors::F32 {
                data: &data[..n * dim],
                dim,
            },
            Descriptors::U8 { data, dim } => Descriptors::U8 {
                data: &data[..n * dim],
                dim,
            },
            Descriptors::Binary { data, dim } => Descriptors::Binary {
                data: &data[..n * dim],
                dim,
            },
            Descriptors::Codes {
                words,
                per,
                signatures,
                dim,
                vocabulary,
            } => Descriptors::Codes {
                words: &words[..n * per],
                per,
                signatures: &signatures[..n * dim],
                dim,
                vocabulary,
            },
        };
        debug_assert_eq!(descriptors.dim(), dim);
        let frames = self.frames.map(|f| match f {
            Frames::ScaleOrientation(d) => Frames::ScaleOrientation(&d[..2 * n]),
            Frames::Affine(d) => Frames::Affine(&d[..6 * n]),
        });
        LocalFeaturesRef {
            keypoints: &self.keypoints[..2 * n],
            descriptors,
            frames,
            image_size: self.image_size,
        }
    }

    /// Check lengths, bounds and finiteness; the error names the offending array and row.
    pub fn validate(&self) -> Result<()> {
        if !self.keypoints.len().is_multiple_of(2) {
            return Err(RerankError::Shape {
                what: "keypoints".into(),
                expected: "an even number of values (N x 2)".into(),
                got: format!("{} values", self.keypoints.len()),
            });
        }
        let n = self.len();
        if n > MAX_KEYPOINTS {
            return Err(RerankError::TooLarge {
                what: "keypoints per image".into(),
                limit: MAX_KEYPOINTS,
                got: n,
            });
        }
        let dim = self.dim();
        if dim == 0 || dim > MAX_DIM {
            return Err(RerankError::Shape {
                what: "descriptors".into(),
                expected: format!("a dimension in 1..={MAX_DIM}"),
                got: format!("dimension {dim}"),
            });
        }
        if matches!(self.descriptors, Descriptors::U8 { .. }) && dim > MAX_EXACT_U8_DIM {
            return Err(RerankError::Shape {
                what: "descriptors".into(),
                expected: format!(
                    "uint8 descriptors of dimension at most {MAX_EXACT_U8_DIM} (the widest \
                     matched exactly; pass wider ones as float32 or float16)"
                ),
                got: format!("dimension {dim}"),
            });
        }
        if let Descriptors::Codes { words, per, .. } = self.descriptors {
            crate::codes::validate_words(words, per, n)?;
        }
        if self.descriptors.data_len() != n * dim {
            return Err(RerankError::Shape {
                what: "descriptors".into(),
                expected: format!("({n}, {dim}) to match {n} keypoints"),
                got: format!(
                    "{} values ({} rows)",
                    self.descriptors.data_len(),
                    self.descriptors.data_len() / dim
                ),
            });
        }
        if let Some(frames) = &self.frames {
            let stride = frames.stride();
            if frames.data().len() != n * stride {
                return Err(RerankError::Shape {
                    what: "frames".into(),
                    expected: format!("({n}, {stride}) to match {n} keypoints"),
                    got: format!("{} values", frames.data().len()),
                });
            }
            if let Some((row, value)) = first_non_finite(frames.data(), stride) {
                return Err(RerankError::NonFinite {
                    what: "frames".into(),
                    row,
                    value,
                });
            }
        }
        if let Some((h, w)) = self.image_size {
            if h == 0 || w == 0 {
                return Err(RerankError::Shape {
                    what: "image_size".into(),
                    expected: "(height, width) both > 0".into(),
                    got: format!("({h}, {w})"),
                });
            }
        }
        if let Some((row, value)) = first_non_finite(self.keypoints, 2) {
            return Err(RerankError::NonFinite {
                what: "keypoints".into(),
                row,
                value,
            });
        }
        if let Descriptors::F32 { data, dim } = self.descriptors {
            if let Some((row, value)) = first_non_finite(data, dim) {
                return Err(RerankError::NonFinite {
                    what: "descriptors".into(),
                    row,
                    value,
                });
            }
        }
        Ok(())
    }

    /// Check that `other` can be matched against `self` (same descriptor type and dim).
    pub fn check_compatible(&self, other: &LocalFeaturesRef<'_>) -> Result<()> {
        let (a, b) = (self.descriptors.type_name(), other.descriptors.type_name());
        if a != b {
            return Err(RerankError::DescriptorTypeMismatch {
                what: "descriptors".into(),
                expected: a,
                got: b,
            });
        }
        if let (
            Descriptors::Codes { vocabulary: a, .. },
            Descriptors::Codes { vocabulary: b, .. },
        ) = (self.descriptors, other.descriptors)
        {
            if a != b {
                return Err(RerankError::Shape {
                    what: "codes".into(),
                    expected: format!("codes of vocabulary {a:016x} (the query's)"),
                    got: format!("codes of vocabulary {b:016x}"),
                });
            }
        }
        if self.dim() != other.dim() {
            return Err(RerankError::DimensionMismatch {
                what: "descriptors".into(),
                expected: self.dim(),
                got: other.dim(),
            });
        }
        Ok(())
    }
}
