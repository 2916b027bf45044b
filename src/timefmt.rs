//! Times for people, on `jiff`: milliseconds since the Unix epoch as RFC 3339 UTC text, and the
//! distance between two such times as "3m 5s ago" / "in 2h 10m".

use jiff::fmt::friendly::SpanPrinter;
use jiff::{SignedDuration, Span, SpanRound, Timestamp, Unit};

/// A time as UTC text, `2024-05-01T12:00:03Z` (whole seconds): enough for a person reading a
/// pending reason. A time past jiff's range reads as its last second, `9999-12-30T22:00:00Z`.
pub fn utc(ms: u64) -> String {
    let seconds = i64::try_from(ms / 1000).unwrap_or(i64::MAX);
    Timestamp::from_second(seconds.min(Timestamp::MAX.as_second()))
        .unwrap_or(Timestamp::MAX)
        .to_string()
}

/// How far `at_ms` is from `now_ms`, both ms since the Unix epoch: `12s ago`, `1m ago`,
/// `in 3m 5s`, `2d 4h ago`, or `now` within half a second. `at_ms` 0 means "never" and reads `-`.
///
/// Only the two largest units are shown (a page refreshed every few seconds needs no more), by
/// rounding to the unit below the largest: seconds under an hour, minutes under a day, hours past.
pub fn relative(at_ms: u64, now_ms: u64) -> String {
    if at_ms == 0 {
        return "-".to_owned();
    }
    let ms = |t: u64| i64::try_from(t).unwrap_or(i64::MAX);
    let delta = SignedDuration::from_millis(ms(at_ms))
        .saturating_sub(SignedDuration::from_millis(ms(now_ms)));
    let smallest = match delta.unsigned_abs().as_secs() {
        0..3_600 => Unit::Second,
        3_600..86_400 => Unit::Minute,
        _ => Unit::Hour,
    };
    let rounded = Span::try_from(delta).and_then(|span| {
        span.round(
            SpanRound::new()
                .largest(Unit::Day)
                .smallest(smallest)
                .days_are_24_hours(),
        )
    });
    let Ok(span) = rounded else {
        // Beyond what a span holds (thousands of years): no page shows such a time meaningfully.
        return utc(at_ms);
    };
    if span.is_zero() {
        return "now".to_owned();
    }
    // The printer writes a past span as `12s ago`; a future one has no suffix of its own.
    let text = SpanPrinter::new().span_to_string(&span);
    if span.is_negative() {
        text
    } else {
        format!("in {text}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_formats_known_instants() {
        assert_eq!(utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(utc(951_782_400_000), "2000-02-29T00:00:00Z");
        assert_eq!(utc(951_782_400_000 + 3_723_000), "2000-02-29T01:02:03Z");
        assert_eq!(utc(1_700_000_003_500), "2023-11-14T22:13:23Z");
        assert_eq!(utc(4_102_444_799_000), "2099-12-31T23:59:59Z");
        assert_eq!(utc(u64::MAX), "9999-12-30T22:00:00Z");
    }

    #[test]
    fn relative_reads_both_ways() {
        let now = 1_700_000_000_000;
        assert_eq!(relative(0, now), "-");
        assert_eq!(relative(now - 60_000, now), "1m ago");
        assert_eq!(relative(now - 12_000, now), "12s ago");
        assert_eq!(relative(now + 5_000, now), "in 5s");
        assert_eq!(relative(now + 185_000, now), "in 3m 5s");
        assert_eq!(relative(now + 400, now), "now");
        assert_eq!(relative(now - 400, now), "now");
        // Two units at most: seconds are dropped past an hour, minutes past a day.
        assert_eq!(relative(now - 3_723_000, now), "1h 2m ago");
        assert_eq!(
            relative(now - (2 * 86_400 + 4 * 3_600 + 59) * 1000, now),
            "2d 4h ago"
        );
        assert_eq!(relative(now + 90 * 86_400_000, now), "in 90d");
        assert_eq!(relative(1, u64::MAX), "1970-01-01T00:00:00Z");
    }
}
