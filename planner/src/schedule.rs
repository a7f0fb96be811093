//! Refresh schedules: `calculated`, a duration (`30s`, `5m`, `1h30m`, `2d`, bare seconds) or a
//! cron expression (5 or 6 fields, `@hourly` and friends), validated against a minimum.

use std::fmt;
use std::time::Duration;

use croner::parser::{CronParser, Seconds, Year};

use crate::error::{PlanError, Result};

/// When a stream table refreshes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Schedule {
    /// Derived from the stream tables that read this one (pg_trickle's `calculated`).
    Calculated,
    /// Every so often.
    Every(Duration),
    /// On a cron schedule; the text is the expression as given, trimmed.
    Cron(String),
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Schedule::Calculated => f.write_str("calculated"),
            Schedule::Every(d) => f.write_str(&format_duration(*d)),
            Schedule::Cron(c) => f.write_str(c),
        }
    }
}

/// Formats a whole-second duration the way it is accepted back: `1h30m`, `45s`, `2d`.
pub fn format_duration(d: Duration) -> String {
    let mut secs = d.as_secs();
    if secs == 0 {
        return "0s".into();
    }
    let mut out = String::new();
    for (unit, size) in [("d", 86_400), ("h", 3_600), ("m", 60), ("s", 1)] {
        if secs >= size {
            out.push_str(&format!("{}{unit}", secs / size));
            secs %= size;
        }
    }
    out
}

const ACCEPTED: &str = "accepted: 'calculated', a duration such as '30s', '5m', '1h30m', '2d' or \
                        a number of seconds, or a cron expression of 5 or 6 fields or @hourly, \
                        @daily, @weekly, @monthly, @yearly";

/// Parses a schedule argument. `min` is the shortest duration accepted for `Every` (pg_trickle's
/// `min_schedule_seconds`).
pub fn parse_schedule(text: &str, min: Duration) -> Result<Schedule> {
    let t = text.trim();
    if t.is_empty() {
        return Err(invalid(text, "it is empty"));
    }
    if t.eq_ignore_ascii_case("calculated") {
        return Ok(Schedule::Calculated);
    }
    if t.starts_with('@') || t.contains(char::is_whitespace) {
        return parse_cron(t);
    }
    let d = parse_duration(t).ok_or_else(|| invalid(text, "it is neither a duration nor cron"))?;
    if d < min {
        return Err(PlanError::InvalidParameterValue(format!(
            "schedule \"{t}\" is below the minimum of {} (min_schedule_seconds)",
            format_duration(min)
        )));
    }
    Ok(Schedule::Every(d))
}

fn invalid(text: &str, why: &str) -> PlanError {
    PlanError::InvalidParameterValue(format!(
        "invalid value for parameter \"schedule\": \"{text}\": {why}; {ACCEPTED}"
    ))
}

fn parse_cron(t: &str) -> Result<Schedule> {
    let fields = t.split_whitespace().count();
    if !(t.starts_with('@') || fields == 5 || fields == 6) {
        return Err(invalid(
            t,
            &format!("a cron expression has 5 or 6 fields, not {fields}"),
        ));
    }
    let parser = CronParser::builder()
        .seconds(Seconds::Optional)
        .year(Year::Disallowed)
        .build();
    match parser.parse(t) {
        Ok(_) => Ok(Schedule::Cron(t.to_string())),
        Err(e) => Err(invalid(t, &format!("bad cron expression ({e})"))),
    }
}

/// `30s`, `5m`, `1h30m`, `2d`, `1w`, or a bare number of seconds. None when malformed.
fn parse_duration(t: &str) -> Option<Duration> {
    if t.bytes().all(|b| b.is_ascii_digit()) {
        return t.parse::<u64>().ok().map(Duration::from_secs);
    }
    let mut total: u64 = 0;
    let mut num: Option<u64> = None;
    let mut last_unit = u64::MAX;
    for c in t.chars() {
        if let Some(d) = c.to_digit(10) {
            num = Some(
                num.unwrap_or(0)
                    .checked_mul(10)?
                    .checked_add(u64::from(d))?,
            );
            continue;
        }
        let size = match c.to_ascii_lowercase() {
            'w' => 604_800,
            'd' => 86_400,
            'h' => 3_600,
            'm' => 60,
            's' => 1,
            _ => return None,
        };
        // Each unit once, largest first: `1h30m`, not `30m1h` or `1m1m`.
        if size >= last_unit {
            return None;
        }
        last_unit = size;
        total = total.checked_add(num.take()?.checked_mul(size)?)?;
    }
    if num.is_some() {
        return None;
    }
    Some(Duration::from_secs(total))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: Duration = Duration::from_secs(1);

    fn every(s: u64) -> Schedule {
        Schedule::Every(Duration::from_secs(s))
    }

    #[test]
    fn durations() {
        assert_eq!(parse_schedule("30s", MIN), Ok(every(30)));
        assert_eq!(parse_schedule("5m", MIN), Ok(every(300)));
        assert_eq!(parse_schedule("1h30m", MIN), Ok(every(5400)));
        assert_eq!(parse_schedule("2d", MIN), Ok(every(172_800)));
        assert_eq!(parse_schedule("1w", MIN), Ok(every(604_800)));
        assert_eq!(parse_schedule("90", MIN), Ok(every(90)));
        assert_eq!(parse_schedule(" 10S ", MIN), Ok(every(10)));
        assert_eq!(parse_schedule("1d2h3m4s", MIN), Ok(every(93_784)));
    }

    #[test]
    fn calculated_and_cron() {
        assert_eq!(parse_schedule("calculated", MIN), Ok(Schedule::Calculated));
        assert_eq!(parse_schedule("CALCULATED", MIN), Ok(Schedule::Calculated));
        for c in [
            "*/5 * * * *",
            "0 */2 * * * *",
            "@hourly",
            "@daily",
            "@weekly",
            "@monthly",
            "@yearly",
            "0 9 * * MON-FRI",
        ] {
            assert_eq!(parse_schedule(c, MIN), Ok(Schedule::Cron(c.into())), "{c}");
        }
    }

    #[test]
    fn rejects_with_22023_naming_schedule() {
        for bad in [
            "",
            "abc",
            "5x",
            "m5",
            "30m1h",
            "1m1m",
            "5 m",
            "* * *",
            "61 * * * *",
            "@sometimes",
            "1 2 3 4 5 6 7",
            "5m3",
        ] {
            let e = parse_schedule(bad, MIN).unwrap_err();
            assert_eq!(e.sqlstate(), "22023", "{bad}");
            assert!(e.message().contains("schedule"), "{bad}: {e}");
        }
    }

    #[test]
    fn minimum() {
        let e = parse_schedule("5s", Duration::from_secs(10)).unwrap_err();
        assert_eq!(e.sqlstate(), "22023");
        assert!(e.message().contains("below the minimum of 10s"), "{e}");
        assert_eq!(
            parse_schedule("10s", Duration::from_secs(10)),
            Ok(every(10))
        );
        assert!(parse_schedule("0", MIN).is_err());
    }

    #[test]
    fn display_round_trips() {
        for s in ["1h30m", "45s", "2d", "1d1s"] {
            let parsed = parse_schedule(s, MIN).unwrap();
            assert_eq!(parsed.to_string(), s);
        }
    }
}
