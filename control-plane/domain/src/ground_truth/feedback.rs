//! Recording ground truth: each item joins a stored prediction of the model by its id and
//! sets its actual outcome (one feedback per prediction; a second replaces the first). A
//! request is one audit entry (`model.feedback.recorded`, with how many items were
//! accepted), not one per item.

use serde::Serialize;
use serde_json::{Value, json};

use super::rows::{self, Actual, Kind};
use crate::Acting;
use crate::db::Writer;
use crate::error::{Error, ErrorCode, Result};
use crate::registry::Model;

/// The most items one request may carry.
pub const MAX_ITEMS: usize = 1000;

/// One feedback as the client sent it: `actual` is still JSON, checked against the
/// prediction's kind.
#[derive(Debug, Clone)]
pub struct Item {
    pub prediction_id: String,
    pub actual: Value,
    pub segment: Option<String>,
}

/// What became of one item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ItemResult {
    /// Stored (replacing an earlier feedback of the prediction, if any).
    Accepted,
    /// No prediction of this model in this organisation has the id (never made, pruned,
    /// another model's or another organisation's).
    UnknownPrediction,
    /// `actual` does not fit the prediction (`invalid_actual`).
    InvalidActual,
}

/// Records `items` for `model` in one transaction; one result per item, in order.
pub async fn record(
    tx: &Writer,
    acting: &Acting<'_>,
    model: &Model,
    items: &[Item],
    now_ms: i64,
) -> Result<Vec<ItemResult>> {
    if items.len() > MAX_ITEMS {
        return Err(Error::invalid(format!(
            "at most {MAX_ITEMS} feedback items per request"
        )));
    }
    let mut results = Vec::with_capacity(items.len());
    for item in items {
        let Some(stored) = rows::find(tx, acting.org_id, &model.id, &item.prediction_id).await?
        else {
            results.push(ItemResult::UnknownPrediction);
            continue;
        };
        let Ok(actual) = actual_of(stored.kind, &item.actual) else {
            results.push(ItemResult::InvalidActual);
            continue;
        };
        rows::set_feedback(
            tx,
            acting.org_id,
            &item.prediction_id,
            &actual,
            item.segment.as_deref(),
            now_ms,
        )
        .await?;
        results.push(ItemResult::Accepted);
    }
    let accepted = results
        .iter()
        .filter(|r| **r == ItemResult::Accepted)
        .count();
    if accepted > 0 {
        acting
            .audit(
                tx,
                "model.feedback.recorded",
                &format!("model:{}", model.name),
                json!({ "items": items.len(), "accepted": accepted }),
            )
            .await?;
    }
    Ok(results)
}

/// `actual` as the outcome of a prediction of `kind`: a label is a string or an integer,
/// a value a finite number.
pub fn actual_of(kind: Kind, actual: &Value) -> Result<Actual> {
    let invalid = |why: &str| Error::new(ErrorCode::InvalidActual, why.to_owned());
    match kind {
        Kind::Label => match actual {
            Value::String(s) if !s.is_empty() && s.len() <= 256 => Ok(Actual::Label(s.clone())),
            Value::Number(n) if n.is_i64() || n.is_u64() => Ok(Actual::Label(n.to_string())),
            _ => Err(invalid(
                "the model is a classifier: `actual` must be a label (a string of 1-256 bytes or an integer)",
            )),
        },
        Kind::Value => match actual.as_f64() {
            Some(v) if v.is_finite() => Ok(Actual::Value(v)),
            _ => Err(invalid(
                "the model is a regressor: `actual` must be a finite number",
            )),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actuals_fit_their_kind() {
        assert_eq!(
            actual_of(Kind::Label, &json!(1)).unwrap(),
            Actual::Label("1".into())
        );
        assert_eq!(
            actual_of(Kind::Label, &json!("setosa")).unwrap(),
            Actual::Label("setosa".into())
        );
        for bad in [json!(1.5), json!(true), json!(null), json!(""), json!([1])] {
            let e = actual_of(Kind::Label, &bad).unwrap_err();
            assert_eq!(e.code(), ErrorCode::InvalidActual, "{bad}");
        }
        assert_eq!(
            actual_of(Kind::Value, &json!(2)).unwrap(),
            Actual::Value(2.0)
        );
        for bad in [json!("2.5"), json!(null), json!({"v": 1})] {
            assert!(actual_of(Kind::Value, &bad).is_err(), "{bad}");
        }
    }
}
