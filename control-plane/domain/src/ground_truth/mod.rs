//! Ground truth: what a model answered, per prediction id, and what actually happened.
//!
//! The prediction id is the call's usage event id (the `wisp-usage-id` response header).
//! The serving layer's prediction log writes a [`PredictionRecord`] per call off the
//! request path ([`rows::insert`]); a client later sends the actual outcome
//! ([`feedback::record`], audited); [`report`] turns the joined rows of a time range into
//! performance (per window and version) and fairness (per segment) with
//! `wisp_monitoring`'s accumulators.

pub mod feedback;
pub mod report;
pub mod rows;

/// What a model answered to one call.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    /// A classifier's label (integer labels as their decimal form).
    Label(String),
    /// A regressor's value.
    Value(f64),
}

/// One call's answer, as the prediction log stores it.
#[derive(Debug, Clone, PartialEq)]
pub struct PredictionRecord {
    /// The call's usage event id.
    pub id: String,
    pub org_id: String,
    pub model_id: String,
    pub version: i64,
    /// Milliseconds since the Unix epoch, when the call began.
    pub at_ms: i64,
    pub answer: Answer,
    /// A classifier's probability of its predicted label, if it returns probabilities.
    pub score: Option<f64>,
    /// The caller's segment attribute.
    pub segment: Option<String>,
}

/// The longest segment attribute kept; longer ones are refused at the edge.
pub const MAX_SEGMENT_BYTES: usize = 128;
