//! `wisp analytics`: the query string of a model's analytics request, and its table.

use anyhow::{Context, bail};
use serde_json::{Value, json};

use super::output;
use crate::cli::AnalyticsArgs;

/// `90m`, `24h`, `7d`, `30s` as milliseconds.
fn span_ms(text: &str) -> anyhow::Result<i64> {
    let unit = text.chars().last().context("--since is empty")?;
    let number: i64 = text[..text.len() - unit.len_utf8()]
        .parse()
        .with_context(|| format!("--since must be a number and s, m, h or d, got {text:?}"))?;
    let seconds = match unit {
        's' => 1,
        'm' => 60,
        'h' => 3_600,
        'd' => 86_400,
        _ => bail!("--since must end in s, m, h or d, got {text:?}"),
    };
    number
        .checked_mul(seconds * 1_000)
        .filter(|ms| *ms > 0)
        .with_context(|| format!("--since is out of range: {text:?}"))
}

/// Percent-encodes a query value (RFC 3339 times carry `:` and `+`).
fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// The query string of the request `args` describe; `--since` counts back from `now_ms`.
pub fn query_string(args: &AnalyticsArgs, now_ms: i64) -> anyhow::Result<String> {
    let mut query = vec![format!("step={}", encode(&args.step))];
    if let Some(since) = &args.since {
        query.push(format!("from={}", now_ms - span_ms(since)?));
    }
    if let Some(from) = &args.from {
        query.push(format!("from={}", encode(from)));
    }
    if let Some(to) = &args.to {
        query.push(format!("to={}", encode(to)));
    }
    if let Some(version) = args.version {
        query.push(format!("version={version}"));
    }
    Ok(query.join("&"))
}

fn fixed(value: &Value, digits: usize) -> Value {
    value
        .as_f64()
        .map_or(Value::Null, |v| json!(format!("{v:.digits$}")))
}

fn percent(value: &Value) -> Value {
    value
        .as_f64()
        .map_or(Value::Null, |v| json!(format!("{:.1}%", v * 100.0)))
}

/// A row of the table from a point, a version's total or the total.
fn row(start: Value, version: Value, stats: &Value) -> Value {
    json!({
        "start": start,
        "version": version,
        "calls": stats["calls"],
        "errors": stats["errors"],
        "error_rate": percent(&stats["error_rate"]),
        "p50": fixed(&stats["latency_ms"]["p50"], 2),
        "p95": fixed(&stats["latency_ms"]["p95"], 2),
        "p99": fixed(&stats["latency_ms"]["p99"], 2),
        "inference_p50": fixed(&stats["inference_ms"]["p50"], 2),
        "inference_p99": fixed(&stats["inference_ms"]["p99"], 2),
        "compute_units": stats["compute_units"],
        "cache_hit_rate": percent(&stats["cache_hit_rate"]),
        "cold_starts": stats["cold_starts"],
    })
}

/// Prints a model's analytics: one line per step and version, then each version's total
/// and the total, then the errors by code.
pub fn print(report: &Value) {
    println!(
        "{} from {} to {} by {}",
        output::cell(&report["model"]),
        output::cell(&report["from"]),
        output::cell(&report["to"]),
        output::cell(&report["step"])
    );
    let mut rows: Vec<Value> = report["points"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| row(p["start"].clone(), p["version"].clone(), p))
        .collect();
    let versions = report["versions"].as_array().map_or(0, Vec::len);
    if versions > 1 {
        rows.extend(
            report["versions"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|v| row(json!("total"), v["version"].clone(), v)),
        );
    }
    rows.push(row(json!("total"), json!("all"), &report["total"]));
    output::table(
        &Value::Array(rows),
        &[
            ("start", "start"),
            ("version", "version"),
            ("calls", "calls"),
            ("errors", "errors"),
            ("err%", "error_rate"),
            ("p50 ms", "p50"),
            ("p95 ms", "p95"),
            ("p99 ms", "p99"),
            ("inf p50", "inference_p50"),
            ("inf p99", "inference_p99"),
            ("cu", "compute_units"),
            ("cache%", "cache_hit_rate"),
            ("cold", "cold_starts"),
        ],
    );
    let codes: Vec<String> = report["total"]["errors_by_code"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(code, count)| format!("{code} {count}"))
        .collect();
    if !codes.is_empty() {
        println!("errors: {}", codes.join(", "));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(since: Option<&str>, from: Option<&str>) -> AnalyticsArgs {
        AnalyticsArgs {
            model: "iris".into(),
            since: since.map(str::to_owned),
            from: from.map(str::to_owned),
            to: None,
            step: "hour".into(),
            version: Some(2),
        }
    }

    #[test]
    fn since_counts_back_from_now_and_times_are_encoded() {
        let now = 1_796_464_800_000;
        assert_eq!(
            query_string(&args(Some("24h"), None), now).unwrap(),
            format!("step=hour&from={}&version=2", now - 86_400_000)
        );
        assert_eq!(
            query_string(&args(None, Some("2026-12-05T10:00:00+01:00")), now).unwrap(),
            "step=hour&from=2026-12-05T10%3A00%3A00%2B01%3A00&version=2"
        );
        assert!(query_string(&args(Some("3w"), None), now).is_err());
        assert!(query_string(&args(Some("h"), None), now).is_err());
        assert!(query_string(&args(Some("0d"), None), now).is_err());
    }
}
