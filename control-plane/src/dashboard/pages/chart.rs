//! Chart data for `static/charts.js`: a shared x axis (Unix seconds) and one series per
//! line, serialised into a page's `<script type="application/json">` data block.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// One chart: shared x (Unix seconds), one series per line; `null` is a gap.
#[derive(Debug, Serialize)]
pub(crate) struct Chart {
    pub title: String,
    pub unit: &'static str,
    /// The x axis spans this, whatever the points.
    pub range: (i64, i64),
    pub x: Vec<i64>,
    pub series: Vec<Series>,
}

/// One line of a chart.
#[derive(Debug, Serialize)]
pub(crate) struct Series {
    pub label: String,
    pub values: Vec<Option<f64>>,
}

/// A chart over `x` from `(time, series label) → value` points.
pub(crate) fn chart(
    title: impl Into<String>,
    unit: &'static str,
    range: (i64, i64),
    x: &[i64],
    points: &BTreeMap<(String, i64), f64>,
    labels: &BTreeSet<String>,
    missing: Option<f64>,
) -> Chart {
    Chart {
        title: title.into(),
        unit,
        range,
        x: x.to_vec(),
        series: labels
            .iter()
            .map(|label| Series {
                label: label.clone(),
                values: x
                    .iter()
                    .map(|t| points.get(&(label.clone(), *t)).copied().or(missing))
                    .collect(),
            })
            .collect(),
    }
}

/// Unix seconds of an RFC 3339 time (0 if it is not one).
pub(crate) fn seconds(rfc3339: &str) -> i64 {
    OffsetDateTime::parse(rfc3339, &Rfc3339)
        .map(OffsetDateTime::unix_timestamp)
        .unwrap_or_default()
}
