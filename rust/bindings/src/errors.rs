//! Core errors to Python exceptions. The classes live in `ilias_rerank/errors.py`
//! (so that they can inherit from both our base class and `ValueError`/`TypeError`).

use ilias_rerank_core::RerankError;
use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;

/// Instantiate `ilias_rerank.errors.<class>(message)`.
pub fn raise(py: Python<'_>, class: &str, message: String) -> PyErr {
    let made = py
        .import("ilias_rerank.errors")
        .and_then(|m| m.getattr(class))
        .and_then(|c| c.call1((message.clone(),)));
    match made {
        Ok(instance) => PyErr::from_value(instance),
        Err(_) => PyValueError::new_err(message),
    }
}

pub fn to_py(py: Python<'_>, e: RerankError) -> PyErr {
    let class = match &e {
        RerankError::Shape { .. } => "ShapeError",
        RerankError::DimensionMismatch { .. } => "DimensionMismatchError",
        RerankError::DescriptorTypeMismatch { .. } => "DTypeError",
        RerankError::NonFinite { .. } => "NonFiniteError",
        RerankError::Config { .. } => "ConfigError",
        RerankError::TooLarge { .. } | RerankError::Threads { .. } => "ResourceLimitError",
    };
    raise(py, class, e.to_string())
}

/// A panic caught at the boundary (a bug): reported, never propagated as PanicException.
pub fn internal(py: Python<'_>, payload: Box<dyn std::any::Any + Send>) -> PyErr {
    let text = payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into());
    let made = py
        .import("ilias_rerank.errors")
        .and_then(|m| m.getattr("InternalError"))
        .and_then(|c| c.call1((format!("internal error (please report): {text}"),)));
    match made {
        Ok(instance) => PyErr::from_value(instance),
        Err(_) => PyRuntimeError::new_err(text),
    }
}
