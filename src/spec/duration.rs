//! Durations as task specs write them: `"500ms"`, `"10s"`, `"5m"`, `"1h"`, or several of those in
//! descending order (`"1m30s"`, `"2h15m"`). Parsing is pure and gives messages a person can act on;
//! the serde helper stores durations as whole milliseconds so the persisted spec (and its hash) never
//! depends on how `std::time::Duration` chooses to serialize itself.
//!
//! This is the crate's one duration parser: the command line ([`parse_long_duration`], which also
//! takes days and weeks for the failover timeout) and the dev cluster's virtual-task labels use it
//! too, so every duration a person writes has the same syntax and the same messages.
//!
//! Why not `humantime`: `shared/task-spec.md` promises the units `ms`, `s`, `m` and `h`, and
//! humantime reads much more (`1M` is a month next to `1m` a minute; `10sec`, `2days`, `1y`; units
//! in any order and repeated, summed), each of which this grammar rejects with a hint instead of
//! guessing; the spec validation tests hold it to that.

use std::time::Duration;

/// Why a duration string was rejected. The message is lowercase and names the offending text; the
/// caller adds file, line and field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct DurationError {
    /// What is wrong, e.g. "unknown unit `sec` in \"10sec\"".
    pub message: String,
    /// A concrete fix when there is an obvious one.
    pub hint: Option<String>,
}

/// Units in the only order they may appear in, largest first, with their length in milliseconds.
/// Specs use the last four ([`SPEC_UNITS`]); the command line all of them.
const UNITS: [(&str, u64); 6] = [
    ("w", 7 * 86_400_000),
    ("d", 86_400_000),
    ("h", 3_600_000),
    ("m", 60_000),
    ("s", 1_000),
    ("ms", 1),
];

/// The units of a task spec (and of the dev cluster's labels): `h`, `m`, `s`, `ms`.
const SPEC_UNITS: &[(&str, u64)] = UNITS.split_at(2).1;

/// Parses `"1m30s"`-style durations. Every number needs a unit; units appear at most once each and
/// from largest to smallest, so `"30s1m"` and `"1s1s"` are rejected rather than guessed at.
pub fn parse_duration(text: &str) -> Result<Duration, DurationError> {
    parse_with_units(text, SPEC_UNITS)
}

/// [`parse_duration`] with days and weeks as well (`"1w"`, `"2d12h"`), for command-line timeouts
/// that are naturally that long.
pub fn parse_long_duration(text: &str) -> Result<Duration, DurationError> {
    parse_with_units(text, &UNITS)
}

fn parse_with_units(text: &str, units: &[(&str, u64)]) -> Result<Duration, DurationError> {
    let fail = |message: String, hint: Option<String>| Err(DurationError { message, hint });
    if text.trim().is_empty() {
        return fail(
            "empty duration".to_owned(),
            Some("write a number with a unit, e.g. \"10s\"".to_owned()),
        );
    }
    if text.trim() != text {
        return fail(
            format!("duration {text:?} has surrounding spaces"),
            Some(format!("write {:?}", text.trim())),
        );
    }
    let mut rest = text;
    let mut total_ms: u64 = 0;
    // Index into UNITS of the last unit seen; the next one must be strictly smaller.
    let mut last_rank: Option<usize> = None;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return fail(
                format!("expected a number at {rest:?} in duration {text:?}"),
                Some(
                    "durations look like \"500ms\", \"10s\", \"5m\", \"1h\" or \"1m30s\""
                        .to_owned(),
                ),
            );
        }
        let (number, after) = rest.split_at(digits);
        let letters = after.bytes().take_while(u8::is_ascii_alphabetic).count();
        let (unit, after) = after.split_at(letters);
        if unit.is_empty() {
            let hint = if after.starts_with('.') {
                "fractions are not supported; use a smaller unit, e.g. \"1500ms\" for 1.5s"
            } else {
                "add a unit: ms, s, m or h, e.g. \"30s\""
            };
            return fail(
                format!("number {number} has no unit in duration {text:?}"),
                Some(hint.to_owned()),
            );
        }
        let Some(rank) = units.iter().position(|(name, _)| *name == unit) else {
            let has = |name: &str| units.iter().any(|(n, _)| *n == name);
            let hint = match unit.to_ascii_lowercase().as_str() {
                "sec" | "secs" | "second" | "seconds" => Some("use `s`"),
                "min" | "mins" | "minute" | "minutes" => Some("use `m`"),
                "hr" | "hrs" | "hour" | "hours" => Some("use `h`"),
                "msec" | "millis" | "milliseconds" => Some("use `ms`"),
                "day" | "days" if has("d") => Some("use `d`"),
                "week" | "weeks" if has("w") => Some("use `w`"),
                "d" | "day" | "days" | "w" | "week" | "weeks" => {
                    Some("days and weeks are not units here; use hours, e.g. \"24h\"")
                }
                _ => None,
            };
            let names: Vec<&str> = units.iter().rev().map(|(name, _)| *name).collect();
            let (last, rest) = names.split_last().expect("a grammar has units");
            return fail(
                format!(
                    "unknown unit `{unit}` in duration {text:?}; units are {} and {last}",
                    rest.join(", ")
                ),
                hint.map(str::to_owned),
            );
        };
        if last_rank.is_some_and(|last| rank <= last) {
            return fail(
                format!("units in duration {text:?} must go from largest to smallest, each once"),
                Some("e.g. \"1h30m\" or \"1m30s\"".to_owned()),
            );
        }
        last_rank = Some(rank);
        let too_long = || DurationError {
            message: format!("duration {text:?} is too long"),
            hint: None,
        };
        let value: u64 = number.parse().map_err(|_| too_long())?;
        total_ms = value
            .checked_mul(units[rank].1)
            .and_then(|ms| total_ms.checked_add(ms))
            .ok_or_else(too_long)?;
        rest = after;
    }
    Ok(Duration::from_millis(total_ms))
}

/// Formats a duration in the same syntax [`parse_duration`] reads, largest units first
/// (`90s` -> `"1m30s"`, zero -> `"0s"`). Sub-millisecond parts are dropped: specs cannot express them.
pub fn format_duration(duration: Duration) -> String {
    let mut ms = u64::try_from(duration.as_millis()).unwrap_or(u64::MAX);
    if ms == 0 {
        return "0s".to_owned();
    }
    let mut out = String::new();
    for &(name, unit_ms) in SPEC_UNITS {
        let count = ms / unit_ms;
        if count > 0 {
            out.push_str(&format!("{count}{name}"));
            ms -= count * unit_ms;
        }
    }
    out
}

/// Serde helper: a `Duration` as whole milliseconds (`u64`). Used with `#[serde(with = ...)]` on the
/// model's duration fields so that JSON in the store reads `"kill_grace": 5000`.
pub mod millis {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    /// Writes the duration as milliseconds, saturating at `u64::MAX` (centuries; never reached by a
    /// parsed spec).
    pub fn serialize<S: Serializer>(duration: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_u64(u64::try_from(duration.as_millis()).unwrap_or(u64::MAX))
    }

    /// Reads milliseconds back into a `Duration`.
    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
        u64::deserialize(deserializer).map(Duration::from_millis)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(text: &str) -> u64 {
        u64::try_from(parse_duration(text).unwrap().as_millis()).unwrap()
    }

    #[test]
    fn single_units() {
        assert_eq!(ms("500ms"), 500);
        assert_eq!(ms("10s"), 10_000);
        assert_eq!(ms("5m"), 300_000);
        assert_eq!(ms("1h"), 3_600_000);
        assert_eq!(ms("0s"), 0);
        assert_eq!(ms("0ms"), 0);
    }

    #[test]
    fn compound_in_descending_order() {
        assert_eq!(ms("1m30s"), 90_000);
        assert_eq!(ms("2h15m"), 8_100_000);
        assert_eq!(ms("1h1m1s1ms"), 3_661_001);
        assert_eq!(ms("1s500ms"), 1_500);
    }

    #[test]
    fn rejects_bad_syntax_with_hints() {
        let err = parse_duration("30").unwrap_err();
        assert!(err.message.contains("no unit"), "{err}");
        assert!(err.hint.unwrap().contains("\"30s\""));

        let err = parse_duration("1.5s").unwrap_err();
        assert!(err.hint.unwrap().contains("1500ms"));

        let err = parse_duration("10sec").unwrap_err();
        assert!(err.message.contains("unknown unit `sec`"), "{err}");
        assert_eq!(err.hint.as_deref(), Some("use `s`"));

        assert!(parse_duration("").is_err());
        assert!(parse_duration(" 5s").is_err());
        assert!(parse_duration("s").is_err());
        assert!(parse_duration("-5s").is_err());
        assert!(parse_duration("5s ").is_err());
        let err = parse_duration("1d").unwrap_err();
        assert_eq!(
            err.message,
            "unknown unit `d` in duration \"1d\"; units are ms, s, m and h"
        );
        assert!(err.hint.unwrap().contains("24h"));
    }

    #[test]
    fn long_durations_add_days_and_weeks() {
        let long = |text: &str| parse_long_duration(text).unwrap().as_secs();
        assert_eq!(long("1w"), 7 * 86_400);
        assert_eq!(long("2d"), 2 * 86_400);
        assert_eq!(long("1w2d12h"), 9 * 86_400 + 12 * 3_600);
        assert_eq!(long("90s"), 90);
        let err = parse_long_duration("2days").unwrap_err();
        assert_eq!(
            err.message,
            "unknown unit `days` in duration \"2days\"; units are ms, s, m, h, d and w"
        );
        assert_eq!(err.hint.as_deref(), Some("use `d`"));
        assert!(parse_long_duration("1d1w").is_err());
        assert!(parse_long_duration("soon").is_err());
        assert!(
            parse_long_duration("99999999999w")
                .unwrap_err()
                .message
                .contains("too long")
        );
    }

    #[test]
    fn rejects_repeated_or_ascending_units() {
        assert!(parse_duration("30s1m").is_err());
        assert!(parse_duration("1s1s").is_err());
        assert!(parse_duration("1ms1s").is_err());
    }

    #[test]
    fn rejects_overflow_instead_of_wrapping() {
        let err = parse_duration("99999999999999999999s").unwrap_err();
        assert!(err.message.contains("too long"), "{err}");
        let err = parse_duration("9999999999999999h").unwrap_err();
        assert!(err.message.contains("too long"), "{err}");
    }

    #[test]
    fn format_round_trips() {
        for text in ["0s", "500ms", "10s", "1m30s", "2h15m", "1h1m1s1ms"] {
            assert_eq!(format_duration(parse_duration(text).unwrap()), text);
        }
        assert_eq!(format_duration(Duration::from_secs(90)), "1m30s");
    }
}
