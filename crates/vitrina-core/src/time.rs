//! Time helpers: the accepted range of event timestamps and the wire format.

use chrono::{DateTime, SecondsFormat, TimeZone, Utc};

use crate::ValidationError;

/// Earliest accepted event time (1990-01-01); anything older is a client bug.
pub const MIN_EVENT_MS: i64 = 631_152_000_000;
/// How far into the future an event may claim to be (clock skew allowance).
pub const MAX_FUTURE_MS: i64 = 24 * 3600 * 1000;

/// Formats a time the way the API does: `2024-01-15T10:30:00.000Z`.
pub fn format_ts(ts: DateTime<Utc>) -> String {
    ts.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Unix milliseconds to a UTC time (saturating on absurd values).
pub fn from_millis(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms).single().unwrap_or(DateTime::<Utc>::MIN_UTC)
}

/// Latest accepted event time as written (9999-12-31T23:59:59.999Z).
pub const MAX_EVENT_MS: i64 = 253_402_300_799_999;

/// The time an event is recorded at: refused before 1990 or after year 9999; a time more than
/// [`MAX_FUTURE_MS`] ahead of `now` (a client clock far off) is recorded as `now`.
pub fn event_time(
    field: &str,
    ts: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<DateTime<Utc>, ValidationError> {
    let ms = ts.timestamp_millis();
    if ms < MIN_EVENT_MS {
        return Err(ValidationError::new(field, "must not be before 1990-01-01"));
    }
    if ms > MAX_EVENT_MS {
        return Err(ValidationError::new(field, "must not be after the year 9999"));
    }
    if ms > now.timestamp_millis() + MAX_FUTURE_MS {
        return Ok(now);
    }
    Ok(ts)
}

/// Parses an API timestamp: RFC 3339 text or unix epoch milliseconds.
pub fn parse_ts(field: &str, raw: &serde_json::Value) -> Result<DateTime<Utc>, ValidationError> {
    match raw {
        serde_json::Value::String(s) => DateTime::parse_from_rfc3339(s)
            .map(|t| t.with_timezone(&Utc))
            .map_err(|e| ValidationError::new(field, format!("is not an RFC 3339 time ({e})"))),
        // JSON does not tell 1700000000000 from 1700000000000.0: both are whole milliseconds.
        serde_json::Value::Number(n) => n
            .as_i64()
            .or_else(|| n.as_f64().filter(|f| f.fract() == 0.0 && f.abs() < 9.0e15).map(|f| f as i64))
            .and_then(|ms| Utc.timestamp_millis_opt(ms).single())
            .ok_or_else(|| ValidationError::new(field, "is not a valid epoch-milliseconds time")),
        _ => Err(ValidationError::new(field, "must be an RFC 3339 string or epoch milliseconds")),
    }
}

/// [`parse_ts`] and [`event_time`] together: the rule for every event time the API takes.
pub fn parse_event_time(
    field: &str,
    raw: &serde_json::Value,
    now: DateTime<Utc>,
) -> Result<DateTime<Utc>, ValidationError> {
    parse_ts(field, raw).and_then(|t| event_time(field, t, now))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_with_millis_and_z() {
        assert_eq!(format_ts(from_millis(1_705_314_600_000)), "2024-01-15T10:30:00.000Z");
    }

    #[test]
    fn parses_both_forms_and_rejects_others() {
        let a = parse_ts("t", &serde_json::json!("2024-01-15T10:30:00Z")).unwrap();
        let b = parse_ts("t", &serde_json::json!(1_705_314_600_000_i64)).unwrap();
        assert_eq!(a, b);
        assert_eq!(
            parse_ts("t", &serde_json::json!(1_705_314_600_000.0_f64)).unwrap(),
            b,
            "a whole float is fine"
        );
        assert!(parse_ts("t", &serde_json::json!(1_705_314_600_000.5_f64)).is_err());
        assert!(parse_ts("t", &serde_json::json!("yesterday")).is_err());
        assert!(parse_ts("t", &serde_json::json!(true)).is_err());
    }

    #[test]
    fn refuses_absurd_times_and_records_far_future_ones_at_now() {
        let now = from_millis(1_705_314_600_000);
        assert!(event_time("t", from_millis(0), now).is_err());
        assert!(event_time("t", from_millis(MAX_EVENT_MS + 1), now).is_err());
        assert_eq!(event_time("t", from_millis(1_705_314_600_000 + 2 * MAX_FUTURE_MS), now).unwrap(), now);
        let skewed = from_millis(1_705_314_600_000 + MAX_FUTURE_MS);
        assert_eq!(event_time("t", skewed, now).unwrap(), skewed, "clock skew within a day is kept");
        assert_eq!(event_time("t", now, now).unwrap(), now);
    }
}
