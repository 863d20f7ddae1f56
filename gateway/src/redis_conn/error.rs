//! What a state backend operation (Redis or memory) can fail with.

use std::fmt;

/// Why a state operation failed; the admin API maps these to 404 / 409 / 503.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StateError {
    NotFound(String),
    Conflict(String),
    /// The backend cannot be reached (Redis down): writes fail, nothing is guessed.
    Unavailable(String),
    /// Redis answered with an error or an answer of the wrong shape: a bug or bad
    /// input, not an outage (Redis is not marked unreachable for it).
    Rejected(String),
}

impl fmt::Display for StateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StateError::NotFound(w) => write!(f, "{w} not found"),
            StateError::Conflict(w) => write!(f, "conflict: {w}"),
            StateError::Unavailable(w) => write!(f, "state backend unavailable: {w}"),
            StateError::Rejected(w) => write!(f, "state backend refused the call: {w}"),
        }
    }
}

impl std::error::Error for StateError {}

pub type Result<T> = std::result::Result<T, StateError>;
