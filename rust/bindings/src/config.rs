//! `RerankConfig` to and from a Python dict (the frozen dataclass `ilias_rerank.RerankConfig`
//! sends `dataclasses.asdict(config)`). Unknown keys are refused, so typos never pass silently.

use ilias_rerank_core::{Fusion, Model, RerankConfig};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict};

use crate::errors::{raise, to_py};

/// An f32 setting as the f64 a person wrote (0.9, not 0.8999999761581421).
fn decimal(v: f32) -> f64 {
    v.to_string().parse().unwrap_or(f64::from(v))
}

/// The core's defaults, as a dict (the Python dataclass's defaults are tested against it).
#[pyfunction]
pub fn default_config(py: Python<'_>) -> PyResult<Bound<'_, PyDict>> {
    let c = RerankConfig::default();
    let d = PyDict::new(py);
    d.set_item("mutual", c.mutual)?;
    d.set_item("ratio", c.ratio.map(decimal))?;
    d.set_item("min_similarity", c.min_similarity.map(decimal))?;
    d.set_item("model", c.model.name())?;
    d.set_item("inlier_threshold", decimal(c.inlier_threshold))?;
    d.set_item("reference_side", decimal(c.reference_side))?;
    d.set_item("use_frames", c.use_frames)?;
    d.set_item("max_hypotheses", c.max_hypotheses)?;
    d.set_item("ransac_fallback_below", c.ransac_fallback_below)?;
    d.set_item("ransac_max_iterations", c.ransac_max_iterations)?;
    d.set_item("ransac_confidence", c.ransac_confidence)?;
    d.set_item("local_optimisation_rounds", c.local_optimisation_rounds)?;
    d.set_item("homography_min_inliers", c.homography_min_inliers)?;
    d.set_item("max_scale_change", decimal(c.max_scale_change))?;
    d.set_item("min_inliers", c.min_inliers)?;
    d.set_item("expansion", c.expansion)?;
    d.set_item("expansion_min_inliers", c.expansion_min_inliers)?;
    d.set_item("cascade_features", c.cascade_features)?;
    d.set_item("cascade_candidates", c.cascade_candidates)?;
    d.set_item("cascade_rich_features", c.cascade_rich_features)?;
    d.set_item("cascade_certain_inliers", c.cascade_certain_inliers)?;
    d.set_item("fusion", c.fusion.name())?;
    d.set_item("fusion_weight", decimal(c.fusion_weight))?;
    d.set_item("inlier_saturation", decimal(c.inlier_saturation))?;
    d.set_item("codes_hamming", c.codes_hamming)?;
    d.set_item("codes_ratio", c.codes_ratio.map(decimal))?;
    d.set_item("codes_sigma", c.codes_sigma.map(decimal))?;
    d.set_item("seed", c.seed)?;
    d.set_item("num_threads", c.num_threads)?;
    Ok(d)
}

/// Check a config dict (every field's type and range) without running anything.
#[pyfunction]
pub fn validate_config(py: Python<'_>, config: &Bound<'_, PyDict>) -> PyResult<()> {
    parse(py, Some(config)).map(|_| ())
}

fn field<'py, T: FromPyObjectOwned<'py>>(
    value: &Bound<'py, PyAny>,
    key: &str,
    expected: &str,
) -> PyResult<T> {
    // A bool is an int to Python, never a count, a threshold or a seed here.
    let target = std::any::type_name::<T>();
    if value.is_instance_of::<PyBool>() && target != "bool" {
        let kind = if target.contains("f32") || target.contains("f64") {
            "a number"
        } else {
            "an int"
        };
        return Err(raise(
            value.py(),
            "ConfigError",
            format!("config.{key}: expected {kind}, got {}", value.repr()?),
        ));
    }
    value.extract::<T>().map_err(|_| {
        raise(
            value.py(),
            "ConfigError",
            format!(
                "config.{key}: expected {expected}, got {}",
                value.repr().map(|r| r.to_string()).unwrap_or_default()
            ),
        )
    })
}

/// Parse a config dict; missing keys keep their defaults; the result is validated.
pub fn parse(py: Python<'_>, dict: Option<&Bound<'_, PyDict>>) -> PyResult<RerankConfig> {
    let mut c = RerankConfig::default();
    if let Some(dict) = dict {
        for (k, v) in dict.iter() {
            let key: String = k.extract()?;
            match key.as_str() {
                "mutual" => c.mutual = field(&v, &key, "a bool")?,
                "ratio" => c.ratio = field(&v, &key, "a float or None")?,
                "min_similarity" => c.min_similarity = field(&v, &key, "a float or None")?,
                "model" => {
                    let s: String = field(&v, &key, "a string")?;
                    c.model = Model::parse(&s).map_err(|e| to_py(py, e))?;
                }
                "inlier_threshold" => c.inlier_threshold = field(&v, &key, "a float")?,
                "reference_side" => c.reference_side = field(&v, &key, "a float")?,
                "use_frames" => c.use_frames = field(&v, &key, "a bool")?,
                "max_hypotheses" => c.max_hypotheses = field(&v, &key, "a positive int")?,
                "ransac_fallback_below" => {
                    c.ransac_fallback_below = field(&v, &key, "a non-negative int")?
                }
                "ransac_max_iterations" => {
                    c.ransac_max_iterations = field(&v, &key, "a positive int")?
                }
                "ransac_confidence" => c.ransac_confidence = field(&v, &key, "a float")?,
                "local_optimisation_rounds" => {
                    c.local_optimisation_rounds = field(&v, &key, "a non-negative int")?
                }
                "homography_min_inliers" => {
                    c.homography_min_inliers = field(&v, &key, "a non-negative int")?
                }
                "max_scale_change" => c.max_scale_change = field(&v, &key, "a float")?,
                "min_inliers" => c.min_inliers = field(&v, &key, "a non-negative int")?,
                "expansion" => c.expansion = field(&v, &key, "a non-negative int")?,
                "expansion_min_inliers" => {
                    c.expansion_min_inliers = field(&v, &key, "a positive int")?
                }
                "cascade_features" => c.cascade_features = field(&v, &key, "a non-negative int")?,
                "cascade_candidates" => {
                    c.cascade_candidates = field(&v, &key, "a non-negative int")?
                }
                "cascade_rich_features" => {
                    c.cascade_rich_features = field(&v, &key, "a non-negative int")?
                }
                "cascade_certain_inliers" => {
                    c.cascade_certain_inliers = field(&v, &key, "a non-negative int")?
                }
                "fusion" => {
                    let s: String = field(&v, &key, "a string")?;
                    c.fusion = Fusion::parse(&s).map_err(|e| to_py(py, e))?;
                }
                "fusion_weight" => c.fusion_weight = field(&v, &key, "a float")?,
                "inlier_saturation" => c.inlier_saturation = field(&v, &key, "a float")?,
                "codes_ratio" => c.codes_ratio = field(&v, &key, "a float or None")?,
                "codes_sigma" => c.codes_sigma = field(&v, &key, "a float or None")?,
                "codes_hamming" => c.codes_hamming = field(&v, &key, "a non-negative int")?,
                "seed" => c.seed = field(&v, &key, "a non-negative int below 2**64")?,
                "num_threads" => c.num_threads = field(&v, &key, "a non-negative int")?,
                other => {
                    return Err(raise(
                        py,
                        "ConfigError",
                        format!("config: unknown field {other:?}"),
                    ))
                }
            }
        }
    }
    c.validate().map_err(|e| to_py(py, e))?;
    Ok(c)
}
