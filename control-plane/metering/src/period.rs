//! Billing periods and rollup buckets: calendar months, days and hours in UTC, as Unix
//! seconds.

use time::{Date, Month, OffsetDateTime, Time};

/// Start of the hour containing `at`.
pub fn hour_start(at: i64) -> i64 {
    at - at.rem_euclid(3_600)
}

/// Start of the UTC day containing `at`.
pub fn day_start(at: i64) -> i64 {
    at - at.rem_euclid(86_400)
}

/// A billing period: a calendar month in UTC, `[start, end)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Period {
    pub start: i64,
    pub end: i64,
}

impl Period {
    /// The month containing `at`.
    pub fn containing(at: i64) -> Self {
        let date = OffsetDateTime::from_unix_timestamp(at)
            .unwrap_or(OffsetDateTime::UNIX_EPOCH)
            .date();
        let start = first_of(date.year(), date.month());
        let (year, month) = match date.month() {
            Month::December => (date.year() + 1, Month::January),
            month => (date.year(), month.next()),
        };
        Self {
            start,
            end: first_of(year, month),
        }
    }

    /// The month before this one.
    pub fn previous(self) -> Self {
        Self::containing(self.start - 1)
    }

    /// The month after this one.
    pub fn next(self) -> Self {
        Self::containing(self.end)
    }

    /// Hours in the period.
    pub fn hours(self) -> i64 {
        (self.end - self.start) / 3_600
    }

    /// The month of a `YYYY-MM` label.
    pub fn parse(label: &str) -> Option<Self> {
        let (year, month) = label.split_once('-')?;
        if year.len() != 4 || month.len() != 2 {
            return None;
        }
        let month = Month::try_from(month.parse::<u8>().ok()?).ok()?;
        let date = Date::from_calendar_date(year.parse().ok()?, month, 1).ok()?;
        Some(Self::containing(
            date.with_time(Time::MIDNIGHT).assume_utc().unix_timestamp(),
        ))
    }

    /// `YYYY-MM`.
    pub fn label(self) -> String {
        let date = OffsetDateTime::from_unix_timestamp(self.start)
            .unwrap_or(OffsetDateTime::UNIX_EPOCH)
            .date();
        format!("{:04}-{:02}", date.year(), u8::from(date.month()))
    }
}

fn first_of(year: i32, month: Month) -> i64 {
    Date::from_calendar_date(year, month, 1)
        .map(|d| d.with_time(Time::MIDNIGHT).assume_utc().unix_timestamp())
        .unwrap_or(0)
}

/// `YYYY-MM-DDTHH` of the hour starting at `at`: the hour in deterministic identifiers.
pub fn hour_label(at: i64) -> String {
    let t = OffsetDateTime::from_unix_timestamp(at).unwrap_or(OffsetDateTime::UNIX_EPOCH);
    format!(
        "{:04}-{:02}-{:02}T{:02}",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    // 2026-11-27T13:45:10Z
    const AT: i64 = 1_795_787_110;

    #[test]
    fn buckets_and_months_are_utc() {
        assert_eq!(hour_label(hour_start(AT)), "2026-11-27T13");
        assert_eq!(day_start(AT) % 86_400, 0);
        let november = Period::containing(AT);
        assert_eq!(november.label(), "2026-11");
        assert_eq!(november.hours(), 30 * 24);
        assert_eq!(november.next().label(), "2026-12");
        assert_eq!(november.next().next().label(), "2027-01");
        assert_eq!(november.previous().label(), "2026-10");
        assert_eq!(Period::containing(november.end - 1), november);
        assert_eq!(Period::containing(november.end).start, november.end);
        assert_eq!(Period::parse("2026-11"), Some(november));
        assert_eq!(Period::parse("2026-13"), None);
        assert_eq!(Period::parse("26-11"), None);
    }
}
