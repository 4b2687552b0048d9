//! The functions `ilias_rerank._core` exports. Each one: borrow and check the arrays,
//! parse the config, run the core with the GIL released (panics caught), build numpy
//! results.

use std::panic::{catch_unwind, AssertUnwindSafe};

use ilias_rerank_core as core;
use ilias_rerank_core::kernels::Isa;
use ilias_rerank_core::{Frames, LocalFeaturesRef, Verification};
use numpy::{PyArray1, PyArray2, PyArrayMethods, PyReadonlyArray1, PyUntypedArrayMethods};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};

use crate::arrays::{describe, f32_2d, held_features};
use crate::config::parse;
use crate::errors::{internal, raise, to_py};

/// Run `work` without the GIL; a panic becomes `InternalError`, a core error its class.
pub(crate) fn run_detached<T: Send>(
    py: Python<'_>,
    work: impl FnOnce() -> core::Result<T> + Send,
) -> PyResult<T> {
    match py.detach(|| catch_unwind(AssertUnwindSafe(work))) {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(to_py(py, e)),
        Err(payload) => Err(internal(py, payload)),
    }
}

fn model_name(v: &Verification) -> Option<&'static str> {
    v.model.map(|m| m.name())
}

/// Borrowed candidates (each checked as it is borrowed).
fn held_candidates<'py>(
    candidates: &Bound<'py, PyAny>,
) -> PyResult<Vec<crate::arrays::HeldFeatures<'py>>> {
    let mut held = Vec::new();
    for (j, item) in candidates.try_iter()?.enumerate() {
        held.push(held_features(&item?, &format!("candidate {j}"))?);
    }
    Ok(held)
}

/// The optional `(M,)` float32 global scores, borrowed.
fn held_global<'py>(
    py: Python<'py>,
    global_scores: Option<&Bound<'py, PyAny>>,
) -> PyResult<Option<PyReadonlyArray1<'py, f32>>> {
    match global_scores {
        None => Ok(None),
        Some(g) if g.is_none() => Ok(None),
        Some(g) => Ok(Some(g.extract().map_err(|_| {
            raise(
                py,
                "DTypeError",
                format!("global_scores: expected (M,) float32, got {}", describe(g)),
            )
        })?)),
    }
}

fn global_slice<'a>(
    py: Python<'_>,
    global: &'a Option<PyReadonlyArray1<'_, f32>>,
) -> PyResult<Option<&'a [f32]>> {
    match global {
        Some(g) => Ok(Some(g.as_slice().map_err(|_| {
            raise(
                py,
                "ShapeError",
                "global_scores: expected a C-contiguous array".into(),
            )
        })?)),
        None => Ok(None),
    }
}

/// Re-rank `candidates` (a sequence of LocalFeatures) for `query`.
#[pyfunction]
#[pyo3(signature = (query, candidates, global_scores=None, config=None))]
pub fn rerank<'py>(
    py: Python<'py>,
    query: &Bound<'py, PyAny>,
    candidates: &Bound<'py, PyAny>,
    global_scores: Option<&Bound<'py, PyAny>>,
    config: Option<&Bound<'py, PyDict>>,
) -> PyResult<Bound<'py, PyDict>> {
    let cfg = parse(py, config)?;
    let held_query = held_features(query, "query")?;
    let held = held_candidates(candidates)?;
    let global = held_global(py, global_scores)?;
    let global = global_slice(py, &global)?;
    let query_view = held_query.view(py)?;
    let views: Vec<LocalFeaturesRef<'_>> =
        held.iter().map(|h| h.view(py)).collect::<PyResult<_>>()?;
    let out = run_detached(py, || core::rerank(&query_view, &views, global, &cfg))?;
    rerank_dict(py, out)
}

/// Re-rank `candidates` without a query: the top `pseudo_queries` of the global ranking
/// act as queries.
#[pyfunction]
#[pyo3(signature = (candidates, global_scores=None, pseudo_queries=5, config=None))]
pub fn rerank_consensus<'py>(
    py: Python<'py>,
    candidates: &Bound<'py, PyAny>,
    global_scores: Option<&Bound<'py, PyAny>>,
    pseudo_queries: usize,
    config: Option<&Bound<'py, PyDict>>,
) -> PyResult<Bound<'py, PyDict>> {
    let cfg = parse(py, config)?;
    let held = held_candidates(candidates)?;
    let global = held_global(py, global_scores)?;
    let global = global_slice(py, &global)?;
    let views: Vec<LocalFeaturesRef<'_>> =
        held.iter().map(|h| h.view(py)).collect::<PyResult<_>>()?;
    let out = run_detached(py, || {
        core::rerank_consensus(&views, global, pseudo_queries, &cfg)
    })?;
    rerank_dict(py, out)
}

/// A `RerankOutput` as the dict `ilias_rerank.api` turns into a `RerankResult`.
fn rerank_dict(py: Python<'_>, out: core::RerankOutput) -> PyResult<Bound<'_, PyDict>> {
    let m = out.candidates.len();
    let order: Vec<i64> = out.order.iter().map(|&j| j as i64).collect();
    let inliers: Vec<i64> = out
        .candidates
        .iter()
        .map(|c| i64::from(c.verification.inliers))
        .collect();
    let matches: Vec<i64> = out
        .candidates
        .iter()
        .map(|c| i64::from(c.matches))
        .collect();
    let mut transforms = Vec::with_capacity(m * 9);
    for c in &out.candidates {
        transforms.extend_from_slice(&c.verification.transform.0);
    }
    let models = PyList::new(
        py,
        out.candidates.iter().map(|c| model_name(&c.verification)),
    )?;
    let support: Vec<i64> = out.support.iter().map(|&s| i64::from(s)).collect();
    let expansion: Vec<i64> = out.expansion.iter().map(|&j| j as i64).collect();
    let refined: Vec<i64> = out.refined.iter().map(|&j| j as i64).collect();
    let d = PyDict::new(py);
    d.set_item("order", PyArray1::from_vec(py, order))?;
    d.set_item("scores", PyArray1::from_vec(py, out.scores))?;
    d.set_item("inliers", PyArray1::from_vec(py, inliers))?;
    d.set_item("num_matches", PyArray1::from_vec(py, matches))?;
    d.set_item(
        "transforms",
        PyArray1::from_vec(py, transforms).reshape([m, 3, 3])?,
    )?;
    d.set_item("models", models)?;
    d.set_item("support", PyArray1::from_vec(py, support))?;
    d.set_item("expansion", PyArray1::from_vec(py, expansion))?;
    d.set_item("refined", PyArray1::from_vec(py, refined))?;
    Ok(d)
}

fn transform_array<'py>(
    py: Python<'py>,
    v: &Verification,
) -> PyResult<Option<Bound<'py, PyArray2<f64>>>> {
    if v.model.is_none() {
        return Ok(None);
    }
    Ok(Some(
        PyArray1::from_vec(py, v.transform.0.to_vec()).reshape([3, 3])?,
    ))
}

/// Match and verify one pair.
#[pyfunction]
#[pyo3(signature = (query, candidate, config=None))]
pub fn verify_pair<'py>(
    py: Python<'py>,
    query: &Bound<'py, PyAny>,
    candidate: &Bound<'py, PyAny>,
    config: Option<&Bound<'py, PyDict>>,
) -> PyResult<Bound<'py, PyDict>> {
    let cfg = parse(py, config)?;
    let hq = held_features(query, "query")?;
    let hc = held_features(candidate, "candidate")?;
    let (qv, cv) = (hq.view(py)?, hc.view(py)?);
    let out = run_detached(py, || core::verify_pair(&qv, &cv, &cfg))?;
    let k = out.matches.len();
    let mut pairs = Vec::with_capacity(2 * k);
    let mut distances = Vec::with_capacity(k);
    for m in &out.matches {
        pairs.push(i64::from(m.query));
        pairs.push(i64::from(m.candidate));
        distances.push(m.distance);
    }
    let d = PyDict::new(py);
    d.set_item("matches", PyArray1::from_vec(py, pairs).reshape([k, 2])?)?;
    d.set_item("distances", PyArray1::from_vec(py, distances))?;
    d.set_item("inlier_mask", PyArray1::from_vec(py, out.inlier_mask))?;
    d.set_item("transform", transform_array(py, &out.verification)?)?;
    d.set_item("model", model_name(&out.verification))?;
    d.set_item("num_inliers", out.verification.inliers)?;
    Ok(d)
}

/// The most given correspondences (`K`) that `verify_correspondences` and
/// `frame_hypothesis_support` take: every correspondence's hypothesis is scored against
/// all of them, O(K^2) work (32768^2 ~ 10^9 checks, about a second).
pub const MAX_GIVEN_CORRESPONDENCES: usize = 1 << 15;

/// Point arrays of given correspondences and the frames of both sides (when given).
struct GivenCorrespondences<'py> {
    query: numpy::PyReadonlyArray2<'py, f32>,
    candidate: numpy::PyReadonlyArray2<'py, f32>,
    frames: Option<(
        numpy::PyReadonlyArray2<'py, f32>,
        numpy::PyReadonlyArray2<'py, f32>,
    )>,
}

impl<'py> GivenCorrespondences<'py> {
    fn borrow(
        py: Python<'py>,
        query_points: &Bound<'py, PyAny>,
        candidate_points: &Bound<'py, PyAny>,
        query_frames: Option<&Bound<'py, PyAny>>,
        candidate_frames: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Self> {
        let query = f32_2d(query_points, "query_points", Some(2))?;
        let candidate = f32_2d(candidate_points, "candidate_points", Some(2))?;
        if query.shape()[0] != candidate.shape()[0] {
            return Err(raise(
                py,
                "ShapeError",
                format!(
                    "candidate_points: expected ({}, 2) to match query_points, got {}",
                    query.shape()[0],
                    describe(candidate_points)
                ),
            ));
        }
        let k = query.shape()[0];
        if k > MAX_GIVEN_CORRESPONDENCES {
            return Err(raise(
                py,
                "ShapeError",
                format!(
                    "query_points: expected at most {MAX_GIVEN_CORRESPONDENCES} given \
                     correspondences (K; the work grows as K * K), got {k}"
                ),
            ));
        }
        let frames = match (query_frames, candidate_frames) {
            (Some(a), Some(b)) if !a.is_none() && !b.is_none() => Some((
                f32_2d(a, "query_frames", None)?,
                f32_2d(b, "candidate_frames", None)?,
            )),
            _ => None,
        };
        Ok(GivenCorrespondences {
            query,
            candidate,
            frames,
        })
    }

    fn points(&self) -> PyResult<(&[f32], &[f32])> {
        Ok((self.query.as_slice()?, self.candidate.as_slice()?))
    }

    fn frames(&self, py: Python<'_>) -> PyResult<Option<(Frames<'_>, Frames<'_>)>> {
        match &self.frames {
            Some((fa, fb)) => Ok(Some((frame_view(py, fa)?, frame_view(py, fb)?))),
            None => Ok(None),
        }
    }
}

/// Verify given correspondences (`K x 2` points on each side, optional frames).
#[pyfunction]
#[pyo3(signature = (query_points, candidate_points, query_frames=None, candidate_frames=None, candidate_size=None, config=None))]
pub fn verify_correspondences<'py>(
    py: Python<'py>,
    query_points: &Bound<'py, PyAny>,
    candidate_points: &Bound<'py, PyAny>,
    query_frames: Option<&Bound<'py, PyAny>>,
    candidate_frames: Option<&Bound<'py, PyAny>>,
    candidate_size: Option<(u32, u32)>,
    config: Option<&Bound<'py, PyDict>>,
) -> PyResult<Bound<'py, PyDict>> {
    let cfg = parse(py, config)?;
    let given = GivenCorrespondences::borrow(
        py,
        query_points,
        candidate_points,
        query_frames,
        candidate_frames,
    )?;
    let (qs, cs) = given.points()?;
    let frame_views = given.frames(py)?;
    let (v, mask) = run_detached(py, || {
        core::verify_correspondences(qs, cs, frame_views, candidate_size, &cfg)
    })?;
    let d = PyDict::new(py);
    d.set_item("inlier_mask", PyArray1::from_vec(py, mask))?;
    d.set_item("transform", transform_array(py, &v)?)?;
    d.set_item("model", model_name(&v))?;
    d.set_item("num_inliers", v.inliers)?;
    Ok(d)
}

/// Support of each given correspondence's own frame hypothesis (frames on both sides).
#[pyfunction]
#[pyo3(signature = (query_points, candidate_points, query_frames, candidate_frames, candidate_size=None, config=None))]
pub fn frame_hypothesis_support<'py>(
    py: Python<'py>,
    query_points: &Bound<'py, PyAny>,
    candidate_points: &Bound<'py, PyAny>,
    query_frames: &Bound<'py, PyAny>,
    candidate_frames: &Bound<'py, PyAny>,
    candidate_size: Option<(u32, u32)>,
    config: Option<&Bound<'py, PyDict>>,
) -> PyResult<Bound<'py, PyArray1<u32>>> {
    let cfg = parse(py, config)?;
    let given = GivenCorrespondences::borrow(
        py,
        query_points,
        candidate_points,
        Some(query_frames),
        Some(candidate_frames),
    )?;
    let (qs, cs) = given.points()?;
    let Some(frame_views) = given.frames(py)? else {
        return Err(raise(
            py,
            "ShapeError",
            "frames: expected frames for both sides, got None".into(),
        ));
    };
    let support = run_detached(py, || {
        core::frame_hypothesis_support(qs, cs, frame_views, candidate_size, &cfg)
    })?;
    Ok(PyArray1::from_vec(py, support))
}

fn frame_view<'a>(py: Python<'_>, a: &'a numpy::PyReadonlyArray2<'_, f32>) -> PyResult<Frames<'a>> {
    let s = a.as_slice()?;
    match a.shape()[1] {
        2 => Ok(Frames::ScaleOrientation(s)),
        6 => Ok(Frames::Affine(s)),
        c => Err(raise(
            py,
            "ShapeError",
            format!("frames: expected (K, 2) or (K, 6) float32, got (K, {c})"),
        )),
    }
}

/// `(order, scores)` as numpy arrays.
type Fused<'py> = (Bound<'py, PyArray1<i64>>, Bound<'py, PyArray1<f64>>);

/// Fuse per-candidate verified scores (inlier counts) with global scores, as `rerank`
/// does: `(order, strictly decreasing scores)`.
#[pyfunction]
#[pyo3(signature = (inliers, global_scores=None, config=None))]
pub fn fuse<'py>(
    py: Python<'py>,
    inliers: PyReadonlyArray1<'py, u32>,
    global_scores: Option<&Bound<'py, PyAny>>,
    config: Option<&Bound<'py, PyDict>>,
) -> PyResult<Fused<'py>> {
    let cfg = parse(py, config)?;
    let inliers = inliers.as_slice()?;
    if inliers.len() > core::rerank::MAX_CANDIDATES {
        return Err(raise(
            py,
            "ResourceLimitError",
            format!(
                "inliers: expected at most {} candidates, got {}",
                core::rerank::MAX_CANDIDATES,
                inliers.len()
            ),
        ));
    }
    let global = held_global(py, global_scores)?;
    let global = global_slice(py, &global)?;
    core::rerank::check_global(global, inliers.len()).map_err(|e| to_py(py, e))?;
    let (order, scores) = core::fusion::fuse(inliers, global, &cfg);
    let order: Vec<i64> = order.into_iter().map(|j| j as i64).collect();
    Ok((
        PyArray1::from_vec(py, order),
        PyArray1::from_vec(py, scores),
    ))
}

/// The instruction set the similarity kernels use on this CPU.
#[pyfunction]
pub fn cpu_features() -> &'static str {
    Isa::detect().name()
}
