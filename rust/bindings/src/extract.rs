//! `extract_sift` (the batch entry: sources in, features out, the GIL released, images
//! spread over the core's threads) and `working_image` (the decode + resize alone, for
//! tests and benches).

use std::path::PathBuf;

use ilias_rerank_core::image::pipeline::{
    extract_batch, working as core_working, ExtractSettings, Source,
};
use ilias_rerank_core::image::{Limits, WorkingSize};
use ilias_rerank_core::sift::SiftConfig;
use numpy::{PyArray1, PyArrayMethods, PyReadonlyArray2, PyUntypedArrayMethods};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PyString, PyTuple};

use crate::arrays::describe;
use crate::errors::{raise, to_py};

/// A source borrowed from Python for the length of the call.
enum Held<'py> {
    Bytes(Bound<'py, PyBytes>),
    Path(PathBuf),
    Gray(PyReadonlyArray2<'py, u8>),
    /// A source that cannot be read as one: that item's error, never the batch's.
    Failed(String),
}

fn hold<'py>(item: &Bound<'py, PyAny>, index: usize) -> PyResult<Held<'py>> {
    if let Ok(b) = item.cast::<PyBytes>() {
        return Ok(Held::Bytes(b.clone()));
    }
    if item.cast::<PyString>().is_ok() {
        // `os.fsencode`'s bytes: a name that is not UTF-8 (surrogate-escaped) reads too.
        return Ok(match item.extract::<PathBuf>() {
            Ok(p) => Held::Path(p),
            Err(e) => Held::Failed(format!("cannot use this path ({e})")),
        });
    }
    if let Ok(a) = item.extract::<PyReadonlyArray2<'py, u8>>() {
        if !a.is_c_contiguous() {
            return Err(raise(
                item.py(),
                "ShapeError",
                format!("source {index}: expected a C-contiguous (H, W) uint8 array"),
            ));
        }
        return Ok(Held::Gray(a));
    }
    Err(raise(
        item.py(),
        "DTypeError",
        format!(
            "source {index}: expected bytes, a path (str) or an (H, W) uint8 array, got {}",
            describe(item)
        ),
    ))
}

fn source<'a>(held: &'a Held<'_>) -> PyResult<Source<'a>> {
    Ok(match held {
        Held::Failed(why) => return Err(pyo3::exceptions::PyValueError::new_err(why.clone())),
        Held::Bytes(b) => Source::Encoded(b.as_bytes()),
        Held::Path(p) => Source::Path(p.as_path()),
        Held::Gray(a) => {
            let shape = a.shape();
            Source::Gray {
                width: shape[1],
                height: shape[0],
                pixels: a.as_slice()?,
            }
        }
    })
}

fn settings(
    py: Python<'_>,
    num_features: usize,
    max_side: usize,
    upsample: bool,
    contrast_threshold: f32,
) -> PyResult<ExtractSettings> {
    if !(16..=16384).contains(&max_side) {
        return Err(raise(
            py,
            "ConfigError",
            format!("max_side: expected an int in 16..=16384, got {max_side}"),
        ));
    }
    let sift = SiftConfig {
        max_features: num_features,
        contrast_threshold,
        ..SiftConfig::default()
    };
    sift.validate().map_err(|e| to_py(py, e))?;
    Ok(ExtractSettings {
        size: WorkingSize { max_side, upsample },
        sift,
        limits: Limits::default(),
    })
}

/// SIFT features of every source (encoded JPEG/PNG `bytes`, a path `str`, or a grey
/// `(H, W)` uint8 array in its displayed orientation), on `threads` threads (0: all).
/// Returns one entry per source, in order: `(keypoints (N, 2) float32, descriptors
/// (N, 128) uint8 RootSIFT, frames (N, 2) float32 (size, -angle), (height, width),
/// (working width, working height))` in original-image pixels, strongest first, or a `str`
/// saying why that image failed.
#[pyfunction]
#[pyo3(signature = (sources, num_features=1024, max_side=768, upsample=false, contrast_threshold=0.02, threads=0))]
pub fn extract_sift<'py>(
    py: Python<'py>,
    sources: &Bound<'py, PyAny>,
    num_features: usize,
    max_side: usize,
    upsample: bool,
    contrast_threshold: f32,
    threads: usize,
) -> PyResult<Bound<'py, PyList>> {
    let settings = settings(py, num_features, max_side, upsample, contrast_threshold)?;
    if threads > 1024 {
        return Err(raise(
            py,
            "ConfigError",
            format!("threads: expected an int in 0..=1024, got {threads}"),
        ));
    }
    // Each item's conversion error is that item's failure (a str in its place).
    let mut held = Vec::new();
    for (i, item) in sources.try_iter()?.enumerate() {
        held.push(hold(&item?, i).unwrap_or_else(|e| Held::Failed(e.to_string())));
    }
    let mut failed: Vec<Option<String>> = Vec::with_capacity(held.len());
    let mut borrowed = Vec::with_capacity(held.len());
    for h in &held {
        match h {
            Held::Failed(why) => failed.push(Some(why.clone())),
            _ => match source(h) {
                Ok(s) => {
                    borrowed.push(s);
                    failed.push(None);
                }
                Err(e) => failed.push(Some(e.to_string())),
            },
        }
    }
    let done = crate::functions::run_detached(py, || extract_batch(&borrowed, &settings, threads))?;
    let mut done = done.into_iter();
    let outcomes = failed.into_iter().map(|f| match f {
        Some(why) => Err(why),
        None => done
            .next()
            .unwrap_or_else(|| Err("internal error: no outcome".into())),
    });
    let out = PyList::empty(py);
    for outcome in outcomes {
        match outcome {
            Ok(f) => {
                let n = f.keypoints.len();
                let kp = PyArray1::from_vec(py, f.keypoints.concat()).reshape([n, 2])?;
                let frames = PyArray1::from_vec(py, f.frames.concat()).reshape([n, 2])?;
                let desc = PyArray1::from_vec(py, f.descriptors).reshape([n, 128])?;
                let size = (f.original.1, f.original.0);
                let item = PyTuple::new(
                    py,
                    [
                        kp.into_any(),
                        desc.into_any(),
                        frames.into_any(),
                        size.into_pyobject(py)?.into_any(),
                        f.working.into_pyobject(py)?.into_any(),
                    ],
                )?;
                out.append(item)?;
            }
            Err(reason) => out.append(reason)?,
        }
    }
    Ok(out)
}

/// The grey working image of one source (as [`extract_sift`] reads them: encoded bytes, a
/// path, grey pixels): EXIF applied, reduced-scale JPEG decode, Pillow's resize to
/// `max_side`. Returns `((H, W) uint8, (original width, height))`.
#[pyfunction]
#[pyo3(signature = (source, max_side=768, upsample=false))]
pub fn working_image<'py>(
    py: Python<'py>,
    source: &Bound<'py, PyAny>,
    max_side: usize,
    upsample: bool,
) -> PyResult<(Bound<'py, PyAny>, (usize, usize))> {
    let s = settings(py, 1, max_side, upsample, 0.02)?;
    let held = hold(source, 0)?;
    if let Held::Failed(why) = &held {
        return Err(raise(py, "ImageReadError", why.clone()));
    }
    let borrowed = self::source(&held)?;
    let got = py.detach(|| {
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| core_working(&borrowed, &s)))
    });
    match got.map_err(|payload| crate::errors::internal(py, payload))? {
        Ok(w) => {
            let (h, wd) = (w.image.height, w.image.width);
            let arr = PyArray1::from_vec(py, w.image.pixels).reshape([h, wd])?;
            Ok((arr.into_any(), w.original))
        }
        Err(e) => Err(raise(py, "ImageReadError", e)),
    }
}
