//! Drift over time: stored windows grouped into steps, each step's merged profile against
//! the reference; and one report over a whole range.

use serde::Serialize;
use utoipa::ToSchema;
use wisp_monitoring::DriftConfig;

use super::compare::{Comparison, compare};
use super::profile::Profile;
use super::store::Window;

/// One step of a timeline.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Point {
    /// Unix seconds: the step's first second and the one after its last.
    pub start: i64,
    pub end: i64,
    /// Live windows merged into this step.
    pub windows: usize,
    #[serde(flatten)]
    pub comparison: Comparison,
}

/// Windows starting in `[from, to)`, grouped by `step` seconds from `from` (steps with no
/// window are left out), each against `reference`.
pub fn timeline(
    reference: &Profile,
    windows: &[Window],
    from: i64,
    step: i64,
    config: &DriftConfig,
) -> Vec<Point> {
    let step = step.max(1);
    let mut points = Vec::new();
    let mut rng = rand::thread_rng();
    let mut current: Option<(i64, usize, Profile)> = None;
    for window in windows {
        let bucket = from + (window.start - from).div_euclid(step) * step;
        match &mut current {
            Some((start, count, profile)) if *start == bucket => {
                profile.merge(&window.profile, &mut rng);
                *count += 1;
            }
            _ => {
                if let Some(done) = current.take() {
                    points.push(point(reference, done, step, config));
                }
                current = Some((bucket, 1, window.profile.clone()));
            }
        }
    }
    if let Some(done) = current {
        points.push(point(reference, done, step, config));
    }
    points
}

fn point(
    reference: &Profile,
    (start, windows, profile): (i64, usize, Profile),
    step: i64,
    config: &DriftConfig,
) -> Point {
    Point {
        start,
        end: start + step,
        windows,
        comparison: compare(reference, &profile, config),
    }
}

/// All `windows` merged, against `reference`.
pub fn report(reference: &Profile, windows: &[Window], config: &DriftConfig) -> Comparison {
    let mut rng = rand::thread_rng();
    let mut merged = Profile::default();
    windows
        .iter()
        .for_each(|w| merged.merge(&w.profile, &mut rng));
    compare(reference, &merged, config)
}
