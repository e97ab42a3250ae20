//! Every way a call into the runtime can fail, as a closed set with stable codes.
//!
//! Variants carry what a tenant may see about its own call. Host internals (I/O paths,
//! backend stack traces) are logged where they happen and never put in these messages.

use std::time::Duration;

/// Why a prediction, description or validation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RuntimeError {
    /// The model version, its component or its graph does not exist for this tenant.
    #[error("model not found: {0}")]
    ModelNotFound(String),
    /// The inputs do not match the model: a missing or unknown name, a wrong dtype or shape.
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// The instance used its whole fuel budget.
    #[error("compute budget exhausted: the call used all {budget} units of fuel")]
    FuelExhausted {
        /// The fuel the call was given.
        budget: u64,
    },
    /// The instance tried to grow its linear memory past its cap.
    #[error("memory limit exceeded: the instance may use at most {limit_bytes} bytes")]
    MemoryLimitExceeded {
        /// The cap on all linear memories of one instance together.
        limit_bytes: u64,
    },
    /// The call did not finish within its wall-clock deadline.
    #[error("deadline exceeded: the call did not finish within {deadline:?}")]
    DeadlineExceeded {
        /// The deadline the call was given.
        deadline: Duration,
    },
    /// The component trapped (panic, `unreachable`, stack overflow, resource limits, …).
    #[error("model component trapped: {0}")]
    GuestTrap(String),
    /// The outputs are larger than the tenant may receive from one call.
    #[error("output too large: {got} bytes, the limit is {limit} bytes")]
    OutputTooLarge {
        /// The limit in bytes.
        limit: u64,
        /// What the component returned.
        got: u64,
    },
    /// The inference backend failed on valid inputs, or the component reported a failure.
    #[error("inference failed: {0}")]
    InferenceFailed(String),
    /// The model file cannot be loaded by the backend (corrupt, truncated, a type it has no
    /// support for).
    #[error("invalid model: {0}")]
    InvalidModel(String),
    /// The backend a deployment chose does not run some of the graph's operators (the
    /// message names them); another backend may.
    #[error("unsupported operator: {0}")]
    UnsupportedOperator(String),
    /// The component is not a valid `wisp:model` component.
    #[error("invalid component: {0}")]
    InvalidComponent(String),
    /// The host could not take the call (its bounded pool stayed full past the queue timeout).
    #[error("overloaded: {0}")]
    Overloaded(String),
    /// A fault in the host itself; details are in the host's log.
    #[error("internal error")]
    Internal,
}

impl RuntimeError {
    /// A stable, machine-readable code for the error, part of the public API.
    pub fn code(&self) -> &'static str {
        match self {
            Self::ModelNotFound(_) => "model_not_found",
            Self::InvalidInput(_) => "invalid_input",
            Self::FuelExhausted { .. } => "fuel_exhausted",
            Self::MemoryLimitExceeded { .. } => "memory_limit_exceeded",
            Self::DeadlineExceeded { .. } => "deadline_exceeded",
            Self::GuestTrap(_) => "guest_trap",
            Self::OutputTooLarge { .. } => "output_too_large",
            Self::InferenceFailed(_) => "inference_failed",
            Self::InvalidModel(_) => "invalid_model",
            Self::UnsupportedOperator(_) => "unsupported_operator",
            Self::InvalidComponent(_) => "invalid_component",
            Self::Overloaded(_) => "overloaded",
            Self::Internal => "internal",
        }
    }

    /// Logs a host-side fault with its detail and returns the opaque error a caller sees.
    pub(crate) fn internal(context: &str, error: impl std::fmt::Display) -> Self {
        tracing::error!(error.type = "internal", %error, "{context}");
        Self::Internal
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_distinct() {
        let all = [
            RuntimeError::ModelNotFound(String::new()),
            RuntimeError::InvalidInput(String::new()),
            RuntimeError::FuelExhausted { budget: 0 },
            RuntimeError::MemoryLimitExceeded { limit_bytes: 0 },
            RuntimeError::DeadlineExceeded {
                deadline: Duration::ZERO,
            },
            RuntimeError::GuestTrap(String::new()),
            RuntimeError::OutputTooLarge { limit: 0, got: 0 },
            RuntimeError::InferenceFailed(String::new()),
            RuntimeError::InvalidModel(String::new()),
            RuntimeError::UnsupportedOperator(String::new()),
            RuntimeError::InvalidComponent(String::new()),
            RuntimeError::Overloaded(String::new()),
            RuntimeError::Internal,
        ];
        let codes: std::collections::HashSet<_> = all.iter().map(RuntimeError::code).collect();
        assert_eq!(codes.len(), all.len());
    }
}
