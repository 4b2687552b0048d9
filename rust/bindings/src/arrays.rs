//! Borrowing numpy arrays as core views, with every dtype / shape / contiguity check in
//! one place and "expected … got …" messages.

use ilias_rerank_core::{Descriptors, Frames, LocalFeaturesRef};
use numpy::{PyReadonlyArray2, PyReadonlyArrayDyn, PyUntypedArrayMethods};
use pyo3::prelude::*;

use crate::errors::raise;

/// `"(N, D) float64"` for arrays, the type name otherwise.
pub fn describe(obj: &Bound<'_, PyAny>) -> String {
    let shape = obj
        .getattr("shape")
        .and_then(|s| s.str().map(|s| s.to_string()));
    let dtype = obj
        .getattr("dtype")
        .and_then(|d| d.str().map(|s| s.to_string()));
    match (shape, dtype) {
        (Ok(s), Ok(d)) => format!("{s} {d}"),
        _ => obj
            .get_type()
            .name()
            .map(|n| n.to_string())
            .unwrap_or_else(|_| "an unknown object".into()),
    }
}

fn shape_error(obj: &Bound<'_, PyAny>, what: &str, expected: &str) -> PyErr {
    raise(
        obj.py(),
        "ShapeError",
        format!("{what}: expected {expected}, got {}", describe(obj)),
    )
}

fn dtype_error(obj: &Bound<'_, PyAny>, what: &str, expected: &str) -> PyErr {
    raise(
        obj.py(),
        "DTypeError",
        format!("{what}: expected {expected}, got {}", describe(obj)),
    )
}

fn ndim(obj: &Bound<'_, PyAny>) -> Option<usize> {
    obj.getattr("ndim").ok()?.extract::<usize>().ok()
}

fn contiguous<'a, T: numpy::Element>(
    obj: &Bound<'_, PyAny>,
    arr: &'a PyReadonlyArray2<'_, T>,
    what: &str,
) -> PyResult<&'a [T]> {
    arr.as_slice()
        .map_err(|_| shape_error(obj, what, "a C-contiguous array"))
}

/// A 2-D float32 array with `cols` columns (any number when `None`).
pub fn f32_2d<'py>(
    obj: &Bound<'py, PyAny>,
    what: &str,
    cols: Option<usize>,
) -> PyResult<PyReadonlyArray2<'py, f32>> {
    let expected = match cols {
        Some(c) => format!("(N, {c}) float32"),
        None => "(N, D) float32".into(),
    };
    if ndim(obj) != Some(2) {
        return Err(shape_error(obj, what, &expected));
    }
    let arr: PyReadonlyArray2<'py, f32> = obj
        .extract()
        .map_err(|_| dtype_error(obj, what, &expected))?;
    if let Some(c) = cols {
        if arr.shape()[1] != c {
            return Err(shape_error(obj, what, &expected));
        }
    }
    contiguous(obj, &arr, what)?;
    Ok(arr)
}

enum DescriptorArray<'py> {
    F32(PyReadonlyArray2<'py, f32>),
    U8(PyReadonlyArray2<'py, u8>),
    Binary(PyReadonlyArray2<'py, u64>),
    Codes {
        words: PyReadonlyArray2<'py, u32>,
        signatures: PyReadonlyArray2<'py, u64>,
        vocabulary: u64,
    },
}

/// The 2-D C-contiguous array `obj.<name>` of element type `T`.
fn attribute_2d<'py, T: numpy::Element>(
    obj: &Bound<'py, PyAny>,
    name: &str,
    place: &str,
    expected: &str,
) -> PyResult<PyReadonlyArray2<'py, T>> {
    let a = obj.getattr(name)?;
    let what = format!("{place} {name}");
    if ndim(&a) != Some(2) {
        return Err(shape_error(&a, &what, expected));
    }
    let arr: PyReadonlyArray2<'py, T> =
        a.extract().map_err(|_| dtype_error(&a, &what, expected))?;
    contiguous(&a, &arr, &what)?;
    Ok(arr)
}

/// The codes of `obj` (an `ilias_rerank.codes.QuantisedFeatures`): `words` `(N, K)`
/// uint32, `signatures` `(N, W)` uint64, `vocabulary_id` an int below 2**64.
fn codes_arrays<'py>(obj: &Bound<'py, PyAny>, place: &str) -> PyResult<DescriptorArray<'py>> {
    let words = attribute_2d(obj, "words", place, "(N, K) uint32")?;
    let signatures = attribute_2d(obj, "signatures", place, "(N, W) uint64")?;
    let vocabulary: u64 = obj.getattr("vocabulary_id")?.extract().map_err(|_| {
        raise(
            obj.py(),
            "DTypeError",
            format!("{place} vocabulary_id: expected an int in 0..2**64"),
        )
    })?;
    Ok(DescriptorArray::Codes {
        words,
        signatures,
        vocabulary,
    })
}

enum FrameArray<'py> {
    ScaleOrientation(PyReadonlyArrayDyn<'py, f32>),
    Affine(PyReadonlyArrayDyn<'py, f32>),
}

/// One image's arrays, borrowed from Python for the duration of a call.
pub struct HeldFeatures<'py> {
    keypoints: PyReadonlyArray2<'py, f32>,
    descriptors: DescriptorArray<'py>,
    frames: Option<FrameArray<'py>>,
    image_size: Option<(u32, u32)>,
}

fn frames_array<'py>(obj: &Bound<'py, PyAny>, what: &str) -> PyResult<FrameArray<'py>> {
    let expected = "(N, 2) float32 (scale, orientation) or (N, 2, 3) float32 LAFs";
    let arr: PyReadonlyArrayDyn<'py, f32> = obj
        .extract()
        .map_err(|_| dtype_error(obj, what, expected))?;
    let shape = arr.shape().to_vec();
    if arr.as_slice().is_err() {
        return Err(shape_error(obj, what, "a C-contiguous array"));
    }
    match shape.as_slice() {
        [_, 2] => Ok(FrameArray::ScaleOrientation(arr)),
        [_, 2, 3] => Ok(FrameArray::Affine(arr)),
        _ => Err(shape_error(obj, what, expected)),
    }
}

fn descriptor_array<'py>(obj: &Bound<'py, PyAny>, place: &str) -> PyResult<DescriptorArray<'py>> {
    let desc = obj.getattr("descriptors")?;
    let what = format!("{place} descriptors");
    if ndim(&desc) != Some(2) {
        return Err(shape_error(
            &desc,
            &what,
            "(N, D) float32 or uint8, or (N, W) uint64 binary words",
        ));
    }
    Ok(
        if let Ok(a) = desc.extract::<PyReadonlyArray2<'py, f32>>() {
            contiguous(&desc, &a, &what)?;
            DescriptorArray::F32(a)
        } else if let Ok(a) = desc.extract::<PyReadonlyArray2<'py, u8>>() {
            contiguous(&desc, &a, &what)?;
            DescriptorArray::U8(a)
        } else if let Ok(a) = desc.extract::<PyReadonlyArray2<'py, u64>>() {
            contiguous(&desc, &a, &what)?;
            DescriptorArray::Binary(a)
        } else {
            return Err(dtype_error(
                &desc,
                &what,
                "(N, D) float32 or uint8, or (N, W) uint64 binary words",
            ));
        },
    )
}

/// Read `keypoints`, `descriptors`, `frames`, `image_size` attributes of `obj`
/// (an `ilias_rerank.LocalFeatures`, or anything with those attributes).
pub fn held_features<'py>(obj: &Bound<'py, PyAny>, place: &str) -> PyResult<HeldFeatures<'py>> {
    let kp = obj.getattr("keypoints")?;
    let keypoints = f32_2d(&kp, &format!("{place} keypoints"), Some(2))?;
    let descriptors = if obj.hasattr("words")? {
        codes_arrays(obj, place)?
    } else {
        descriptor_array(obj, place)?
    };
    let fr = obj.getattr("frames")?;
    let frames = if fr.is_none() {
        None
    } else {
        Some(frames_array(&fr, &format!("{place} frames"))?)
    };
    let size = obj.getattr("image_size")?;
    let image_size = if size.is_none() {
        None
    } else {
        Some(size.extract::<(u32, u32)>().map_err(|_| {
            raise(
                obj.py(),
                "ShapeError",
                format!(
                    "{place} image_size: expected (height, width) positive integers, got {}",
                    size.repr().map(|r| r.to_string()).unwrap_or_default()
                ),
            )
        })?)
    };
    Ok(HeldFeatures {
        keypoints,
        descriptors,
        frames,
        image_size,
    })
}

impl HeldFeatures<'_> {
    /// The core view; every slice was checked contiguous when the array was taken.
    pub fn view(&self, py: Python<'_>) -> PyResult<LocalFeaturesRef<'_>> {
        let not_contiguous = || raise(py, "ShapeError", "expected C-contiguous arrays".into());
        let keypoints = self.keypoints.as_slice().map_err(|_| not_contiguous())?;
        let descriptors = match &self.descriptors {
            DescriptorArray::F32(a) => Descriptors::F32 {
                data: a.as_slice().map_err(|_| not_contiguous())?,
                dim: a.shape()[1],
            },
            DescriptorArray::U8(a) => Descriptors::U8 {
                data: a.as_slice().map_err(|_| not_contiguous())?,
                dim: a.shape()[1],
            },
            DescriptorArray::Binary(a) => Descriptors::Binary {
                data: a.as_slice().map_err(|_| not_contiguous())?,
                dim: a.shape()[1],
            },
            DescriptorArray::Codes {
                words,
                signatures,
                vocabulary,
            } => Descriptors::Codes {
                words: words.as_slice().map_err(|_| not_contiguous())?,
                per: words.shape()[1],
                signatures: signatures.as_slice().map_err(|_| not_contiguous())?,
                dim: signatures.shape()[1],
                vocabulary: *vocabulary,
            },
        };
        let frames = match &self.frames {
            None => None,
            Some(FrameArray::ScaleOrientation(a)) => Some(Frames::ScaleOrientation(
                a.as_slice().map_err(|_| not_contiguous())?,
            )),
            Some(FrameArray::Affine(a)) => {
                Some(Frames::Affine(a.as_slice().map_err(|_| not_contiguous())?))
            }
        };
        Ok(LocalFeaturesRef {
            keypoints,
            descriptors,
            frames,
            image_size: self.image_size,
        })
    }
}
