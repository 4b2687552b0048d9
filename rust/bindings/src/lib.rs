//! `ilias_rerank._core`: the Python face of the core crate. Thin by design: it checks
//! arrays (dtype, shape, contiguity), parses the config, releases the GIL around the
//! work and turns core errors into the exception classes of `ilias_rerank.errors`.

mod arrays;
mod config;
mod errors;
mod extract;
mod functions;
mod throughput;

use pyo3::prelude::*;

#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(functions::rerank, m)?)?;
    m.add_function(wrap_pyfunction!(functions::rerank_consensus, m)?)?;
    m.add_function(wrap_pyfunction!(functions::verify_pair, m)?)?;
    m.add_function(wrap_pyfunction!(functions::verify_correspondences, m)?)?;
    m.add_function(wrap_pyfunction!(functions::frame_hypothesis_support, m)?)?;
    m.add_function(wrap_pyfunction!(functions::fuse, m)?)?;
    m.add_function(wrap_pyfunction!(config::default_config, m)?)?;
    m.add_function(wrap_pyfunction!(config::validate_config, m)?)?;
    m.add_function(wrap_pyfunction!(functions::cpu_features, m)?)?;
    m.add_function(wrap_pyfunction!(throughput::kernel_throughput, m)?)?;
    m.add_function(wrap_pyfunction!(extract::extract_sift, m)?)?;
    m.add_function(wrap_pyfunction!(extract::working_image, m)?)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
