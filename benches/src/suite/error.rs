//! The suite's errors: a fixture that could not be built, or a case whose
//! host call failed (which would make its figure meaningless).

/// Why a benchmark run stopped.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// A file operation failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A case could not be set up or run.
    #[error("{case}: {message}")]
    Case {
        /// The case (or fixture) that failed.
        case: String,
        /// What went wrong.
        message: String,
    },
    /// The stored baseline cannot be read, written or compared.
    #[error("baseline {path}: {message}")]
    Baseline {
        /// The baseline file.
        path: String,
        /// What is wrong with it, and what to do.
        message: String,
    },
}

impl BenchError {
    pub(crate) fn io(what: impl Into<String>, source: std::io::Error) -> BenchError {
        BenchError::Io { what: what.into(), source }
    }
}

/// Attach the case's name to any displayable error.
pub(crate) trait CaseContext<T> {
    /// On error, a [`BenchError::Case`] naming `case`.
    fn case(self, case: &str) -> Result<T, BenchError>;
}

impl<T, E: std::fmt::Display> CaseContext<T> for Result<T, E> {
    fn case(self, case: &str) -> Result<T, BenchError> {
        self.map_err(|e| BenchError::Case { case: case.to_string(), message: e.to_string() })
    }
}
