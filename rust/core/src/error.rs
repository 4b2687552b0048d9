//! Typed errors of the core. Every fallible public function returns [`RerankError`];
//! the Python bindings map each variant to a specific exception class.

use thiserror::Error;

/// Everything that can go wrong in the core: the caller's input, or (`Threads`) the
/// machine refusing to start worker threads.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum RerankError {
    /// An array has the wrong length or shape.
    #[error("{what}: expected {expected}, got {got}")]
    Shape {
        what: String,
        expected: String,
        got: String,
    },
    /// Two inputs that must agree on a dimension do not.
    #[error("{what}: expected descriptor dimension {expected}, got {got}")]
    DimensionMismatch {
        what: String,
        expected: usize,
        got: usize,
    },
    /// Two inputs that must share a descriptor type do not.
    #[error("{what}: expected {expected} descriptors, got {got}")]
    DescriptorTypeMismatch {
        what: String,
        expected: &'static str,
        got: &'static str,
    },
    /// A NaN or infinity where only finite numbers make sense.
    #[error("{what}: expected finite values, got {value} at row {row}")]
    NonFinite {
        what: String,
        row: usize,
        value: f32,
    },
    /// A configuration value out of its range.
    #[error("config.{field}: expected {expected}, got {got}")]
    Config {
        field: &'static str,
        expected: &'static str,
        got: String,
    },
    /// The worker threads could not be started (the process is out of threads).
    #[error("worker threads: expected to start {threads}, got an error: {reason}")]
    Threads { threads: usize, reason: String },
    /// A request larger than the documented resource bounds.
    #[error("{what}: expected at most {limit}, got {got}")]
    TooLarge {
        what: String,
        limit: usize,
        got: usize,
    },
}

impl RerankError {
    /// Prefix the `what` of a located error with the place it came from (e.g. `candidate 3`).
    pub fn within(self, place: &str) -> Self {
        match self {
            RerankError::Shape {
                what,
                expected,
                got,
            } => RerankError::Shape {
                what: format!("{place} {what}"),
                expected,
                got,
            },
            RerankError::DimensionMismatch {
                what,
                expected,
                got,
            } => RerankError::DimensionMismatch {
                what: format!("{place} {what}"),
                expected,
                got,
            },
            RerankError::DescriptorTypeMismatch {
                what,
                expected,
                got,
            } => RerankError::DescriptorTypeMismatch {
                what: format!("{place} {what}"),
                expected,
                got,
            },
            RerankError::NonFinite { what, row, value } => RerankError::NonFinite {
                what: format!("{place} {what}"),
                row,
                value,
            },
            RerankError::TooLarge { what, limit, got } => RerankError::TooLarge {
                what: format!("{place} {what}"),
                limit,
                got,
            },
            other => other,
        }
    }
}

pub type Result<T> = std::result::Result<T, RerankError>;
