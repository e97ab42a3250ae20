//! The state machine of one rule, as a pure function of its last status, what the metric
//! is worth now, and the time.
//!
//! `ok`/`no_data` → `pending` when the threshold is breached (straight to `firing` when
//! `for` is 0); `pending` → `firing` once breached for `for`; back to `ok` as soon as it is
//! not; `no_data` whenever the metric has no value. Entering `firing` notifies, unless the
//! rule last notified a firing less than `cooldown` ago (then the episode stays silent,
//! its resolution too); leaving `firing` notifies `resolved` if the firing was notified.

use crate::alerts_rows::AlertState;
use crate::alerts_rows::rules::{RuleSpec, RuleStatus};

/// A notification to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Notify {
    Firing,
    Resolved,
}

impl Notify {
    /// The event type of the webhook message.
    pub fn event_type(self) -> &'static str {
        match self {
            Notify::Firing => "alert.firing",
            Notify::Resolved => "alert.resolved",
        }
    }
}

/// The outcome of one evaluation.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    pub status: RuleStatus,
    /// `(from, to)` when the state changed.
    pub transition: Option<(AlertState, AlertState)>,
    pub notify: Option<Notify>,
}

/// Evaluates `rule` at `at` (Unix seconds) given its `previous` status and the metric's
/// value (`None`: no data).
pub fn step(rule: &RuleSpec, previous: &RuleStatus, value: Option<f64>, at: i64) -> Step {
    let from = previous.state();
    let to = match value {
        None => AlertState::NoData,
        Some(v) if rule.comparison.breached(v, rule.threshold) => match from {
            AlertState::Firing => AlertState::Firing,
            AlertState::Pending => {
                let since = previous.pending_since.unwrap_or(at);
                if at - since >= rule.for_secs {
                    AlertState::Firing
                } else {
                    AlertState::Pending
                }
            }
            AlertState::Ok | AlertState::NoData if rule.for_secs == 0 => AlertState::Firing,
            AlertState::Ok | AlertState::NoData => AlertState::Pending,
        },
        Some(_) => AlertState::Ok,
    };
    let mut status = RuleStatus {
        state: Some(to),
        last_value: value,
        ..*previous
    };
    status.pending_since = match to {
        AlertState::Pending if from == AlertState::Pending => previous.pending_since.or(Some(at)),
        AlertState::Pending => Some(at),
        _ => None,
    };
    if to != from || status.state_since.is_none() {
        status.state_since = Some(at);
    }
    let mut notify = None;
    if to == AlertState::Firing && from != AlertState::Firing {
        let cooled = previous
            .last_fired_at
            .is_none_or(|last| at - last >= rule.cooldown_secs);
        status.episode_notified = cooled;
        if cooled {
            status.last_fired_at = Some(at);
            notify = Some(Notify::Firing);
        }
    } else if from == AlertState::Firing && to != AlertState::Firing {
        if previous.episode_notified {
            notify = Some(Notify::Resolved);
        }
        status.episode_notified = false;
    }
    Step {
        status,
        transition: (to != from).then_some((from, to)),
        notify,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alerts_rows::{Comparison, Metric};

    fn rule(for_secs: i64, cooldown_secs: i64) -> RuleSpec {
        RuleSpec {
            name: "errors".into(),
            model: None,
            version: None,
            metric: Metric::ErrorRate,
            feature: None,
            comparison: Comparison::Above,
            threshold: 0.5,
            window_secs: 300,
            for_secs,
            cooldown_secs,
            channels: vec![],
            enabled: true,
        }
    }

    /// Runs the values through the machine, one evaluation every 10 s.
    fn run(rule: &RuleSpec, values: &[Option<f64>]) -> Vec<(AlertState, Option<Notify>)> {
        let mut status = RuleStatus::default();
        values
            .iter()
            .enumerate()
            .map(|(i, value)| {
                let step = step(rule, &status, *value, 1_000 + 10 * i as i64);
                status = step.status;
                (status.state(), step.notify)
            })
            .collect()
    }

    #[test]
    fn fires_after_for_and_resolves() {
        use AlertState::*;
        let got = run(
            &rule(20, 0),
            &[
                Some(0.1),
                Some(0.9),
                Some(0.9),
                Some(0.9),
                Some(0.9),
                Some(0.2),
            ],
        );
        assert_eq!(
            got,
            [
                (Ok, None),
                (Pending, None),
                (Pending, None),
                (Firing, Some(Notify::Firing)),
                (Firing, None),
                (Ok, Some(Notify::Resolved)),
            ]
        );
    }

    #[test]
    fn a_breach_shorter_than_for_never_fires() {
        use AlertState::*;
        let got = run(&rule(30, 0), &[Some(0.9), Some(0.9), Some(0.1), Some(0.9)]);
        assert_eq!(
            got,
            [
                (Pending, None),
                (Pending, None),
                (Ok, None),
                (Pending, None)
            ]
        );
    }

    #[test]
    fn cooldown_silences_a_refiring_and_its_resolution() {
        use AlertState::*;
        let values = [
            Some(0.9),
            Some(0.1),
            Some(0.9),
            Some(0.1),
            Some(0.1),
            Some(0.9),
        ];
        let got = run(&rule(0, 40), &values);
        assert_eq!(
            got,
            [
                (Firing, Some(Notify::Firing)), // t=1000
                (Ok, Some(Notify::Resolved)),
                (Firing, None), // t=1020: 20 s after the last notified firing
                (Ok, None),
                (Ok, None),
                (Firing, Some(Notify::Firing)), // t=1050: cooled down
            ]
        );
    }

    #[test]
    fn no_data_is_its_own_state_and_resolves_a_firing() {
        use AlertState::*;
        let got = run(&rule(0, 0), &[None, Some(0.9), None, Some(0.1)]);
        assert_eq!(
            got,
            [
                (NoData, None),
                (Firing, Some(Notify::Firing)),
                (NoData, Some(Notify::Resolved)),
                (Ok, None),
            ]
        );
    }

    #[test]
    fn comparisons_are_strict_or_not_as_written() {
        let mut r = rule(0, 0);
        r.comparison = Comparison::AtLeast;
        assert_eq!(run(&r, &[Some(0.5)])[0].0, AlertState::Firing);
        r.comparison = Comparison::Above;
        assert_eq!(run(&r, &[Some(0.5)])[0].0, AlertState::Ok);
        r.comparison = Comparison::Below;
        assert_eq!(run(&r, &[Some(0.4)])[0].0, AlertState::Firing);
    }
}
