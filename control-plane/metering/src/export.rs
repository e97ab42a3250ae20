//! Exports of hourly usage: CSV rows, and meter events in the shape of Stripe's billing
//! meter API, whose identifiers (`org:meter:hour`) are deterministic so that sending an
//! hour again replaces it instead of adding to it.

use serde::Serialize;
use utoipa::ToSchema;

use super::period::hour_label;
use super::store::Totals;

/// One hour of one model and caller.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct UsageRow {
    /// Start of the hour, RFC 3339.
    pub hour: String,
    pub model: String,
    /// `key:<id>` or `user:<id>`.
    pub caller: String,
    #[serde(flatten)]
    pub totals: Totals,
}

const CSV_HEADER: &str = "hour,model,caller,calls,billed_calls,failed_calls,cache_hits,\
compute_units,fuel,wall_us,inference_us,bytes_in,bytes_out\n";

/// The rows as CSV (RFC 4180), with a header line.
pub fn csv(rows: &[UsageRow]) -> String {
    let mut out = String::from(CSV_HEADER);
    for row in rows {
        let t = &row.totals;
        out.push_str(&format!(
            "{},{},{},{},{},{},{},{},{},{},{},{},{}\n",
            csv_field(&row.hour),
            csv_field(&row.model),
            csv_field(&row.caller),
            t.calls,
            t.billed_calls,
            t.failed_calls,
            t.cache_hits,
            t.compute_units,
            t.fuel,
            t.wall_us,
            t.inference_us,
            t.bytes_in,
            t.bytes_out
        ));
    }
    out
}

fn csv_field(value: &str) -> String {
    if value.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", value.replace('"', "\"\""))
    } else {
        value.to_owned()
    }
}

/// A meter event as Stripe's `POST /v1/billing/meter_events` takes it.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct MeterEvent {
    /// `<org id>:<meter>:<YYYY-MM-DDTHH>`: the same hour always has the same identifier.
    pub identifier: String,
    /// `wisp_calls` or `wisp_compute_units`.
    pub event_name: String,
    /// Start of the hour, Unix seconds.
    pub timestamp: i64,
    pub payload: MeterPayload,
}

/// The payload of a meter event.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct MeterPayload {
    /// The organisation's id, to be mapped to its Stripe customer.
    pub stripe_customer_id: String,
    /// The billed quantity, as Stripe wants it: a string.
    pub value: String,
}

/// Meter events for hourly billed totals `(hour start, totals)` of one organisation:
/// billed calls and billed compute units, each hour with usage.
pub fn meter_events(org_id: &str, hours: &[(i64, Totals)]) -> Vec<MeterEvent> {
    let mut events = Vec::new();
    for &(hour, totals) in hours {
        for (meter, value) in [
            ("calls", totals.billed_calls),
            ("compute_units", totals.compute_units),
        ] {
            if value == 0 {
                continue;
            }
            events.push(MeterEvent {
                identifier: format!("{org_id}:{meter}:{}", hour_label(hour)),
                event_name: format!("wisp_{meter}"),
                timestamp: hour,
                payload: MeterPayload {
                    stripe_customer_id: org_id.to_owned(),
                    value: value.to_string(),
                },
            });
        }
    }
    events
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meter_identifiers_are_deterministic_per_org_meter_and_hour() {
        let totals = Totals {
            billed_calls: 3,
            compute_units: 1_200,
            calls: 4,
            ..Totals::default()
        };
        let hour = 1_795_784_400; // 2026-11-27T13:00Z
        let events = meter_events(
            "org-1",
            &[(hour, totals), (hour + 3_600, Totals::default())],
        );
        let ids: Vec<_> = events.iter().map(|e| e.identifier.as_str()).collect();
        assert_eq!(
            ids,
            [
                "org-1:calls:2026-11-27T13",
                "org-1:compute_units:2026-11-27T13"
            ]
        );
        assert_eq!(events[0].payload.value, "3");
        assert_eq!(meter_events("org-1", &[(hour, totals)]), events);
    }

    #[test]
    fn csv_quotes_what_needs_quoting() {
        let row = UsageRow {
            hour: "2026-11-27T13:00:00Z".into(),
            model: "a,\"b\"".into(),
            caller: "key:1".into(),
            totals: Totals {
                calls: 2,
                ..Totals::default()
            },
        };
        let text = csv(&[row]);
        let line = text.lines().nth(1).unwrap();
        assert!(line.starts_with("2026-11-27T13:00:00Z,\"a,\"\"b\"\"\",key:1,2,0,"));
    }
}
