//! Durations as Istio accepts them in YAML/JSON: protobuf JSON strings (`"1s"`, `"0.5s"`,
//! `"1.000340012s"`) and, like Istio's own parser, Go `time.ParseDuration` strings made of
//! number+unit parts (`"100ms"`, `"1m30s"`, `"1h"`; units ns, us, µs, ms, s, m, h). A bare `"0"`
//! is zero. Negative durations and values above protobuf's limit (315,576,000,000 s) are refused.
//!
//! Fields hold `std::time::Duration`; serde goes through [`opt`] (for `Option<Duration>`).

use std::time::Duration;

/// Protobuf's maximum Duration (10,000 years).
pub const MAX_SECONDS: u64 = 315_576_000_000;

/// Why a duration string was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid duration {input:?}: {reason}")]
pub struct DurationError {
    pub input: String,
    pub reason: String,
}

fn fail(input: &str, reason: &str) -> DurationError {
    DurationError {
        input: input.to_string(),
        reason: reason.to_string(),
    }
}

/// Nanoseconds per unit, longest suffixes first so "ms" is not read as "m".
const UNITS: &[(&str, u128)] = &[
    ("ns", 1),
    ("us", 1_000),
    ("µs", 1_000),
    ("μs", 1_000),
    ("ms", 1_000_000),
    ("s", 1_000_000_000),
    ("m", 60_000_000_000),
    ("h", 3_600_000_000_000),
];

/// Parses a duration string (see the module doc for the accepted forms).
pub fn parse_duration(input: &str) -> Result<Duration, DurationError> {
    let mut rest = input.trim();
    if rest.is_empty() {
        return Err(fail(input, "empty string"));
    }
    if rest.starts_with('-') {
        return Err(fail(input, "negative durations are not allowed"));
    }
    rest = rest.strip_prefix('+').unwrap_or(rest);
    if rest == "0" {
        return Ok(Duration::ZERO);
    }
    let mut total_nanos: u128 = 0;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let number = &rest[..number_len];
        rest = &rest[number_len..];
        let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
        if whole.is_empty() && fraction.is_empty() || fraction.contains('.') {
            return Err(fail(
                input,
                "expected a number such as 1, 0.5 or 1.5 before the unit",
            ));
        }
        let Some((unit, unit_nanos)) = UNITS.iter().find(|(u, _)| rest.starts_with(u)) else {
            return Err(fail(
                input,
                "missing or unknown unit (use ns, us, ms, s, m or h, e.g. \"1s\" or \"100ms\")",
            ));
        };
        rest = &rest[unit.len()..];
        let whole_value: u128 = if whole.is_empty() {
            0
        } else {
            whole
                .parse()
                .map_err(|_| fail(input, "number is too large"))?
        };
        let mut part = whole_value
            .checked_mul(*unit_nanos)
            .ok_or_else(|| fail(input, "duration is too large"))?;
        // Fractional digits beyond nanosecond precision are dropped, as Go does.
        let mut scale = *unit_nanos;
        for digit in fraction.bytes() {
            scale /= 10;
            if scale == 0 {
                break;
            }
            part += u128::from(digit - b'0') * scale;
        }
        total_nanos = total_nanos
            .checked_add(part)
            .ok_or_else(|| fail(input, "duration is too large"))?;
    }
    let secs = total_nanos / 1_000_000_000;
    if secs > u128::from(MAX_SECONDS) {
        return Err(fail(
            input,
            "duration exceeds the protobuf maximum of 315576000000s",
        ));
    }
    // Both casts are in range: secs <= MAX_SECONDS and the remainder < 1e9.
    Ok(Duration::new(
        secs as u64,
        (total_nanos % 1_000_000_000) as u32,
    ))
}

/// Formats a duration the way protobuf JSON does: seconds with 0, 3, 6 or 9 fraction digits
/// and an `s` suffix (`"7s"`, `"0.500s"`, `"0.000001s"`).
pub fn format_duration(duration: Duration) -> String {
    let secs = duration.as_secs();
    let nanos = duration.subsec_nanos();
    if nanos == 0 {
        format!("{secs}s")
    } else if nanos.is_multiple_of(1_000_000) {
        format!("{secs}.{:03}s", nanos / 1_000_000)
    } else if nanos.is_multiple_of(1_000) {
        format!("{secs}.{:06}s", nanos / 1_000)
    } else {
        format!("{secs}.{nanos:09}s")
    }
}

/// Serde adapter for `Option<Duration>` fields: `#[serde(default, with = "crate::duration::opt")]`.
pub mod opt {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(value: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match value {
            Some(d) => s.serialize_str(&super::format_duration(*d)),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        let text: Option<String> = Option::deserialize(d)?;
        match text {
            None => Ok(None),
            Some(t) => super::parse_duration(&t)
                .map(Some)
                .map_err(serde::de::Error::custom),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn accepts_protobuf_and_go_forms() {
        assert_eq!(parse_duration("1s"), Ok(ms(1000)));
        assert_eq!(parse_duration("0.5s"), Ok(ms(500)));
        assert_eq!(parse_duration(".5s"), Ok(ms(500)));
        assert_eq!(parse_duration("100ms"), Ok(ms(100)));
        assert_eq!(parse_duration("7s"), Ok(ms(7000)));
        assert_eq!(parse_duration("1m30s"), Ok(ms(90_000)));
        assert_eq!(parse_duration("1h"), Ok(ms(3_600_000)));
        assert_eq!(
            parse_duration("1.000340012s"),
            Ok(Duration::new(1, 340_012))
        );
        assert_eq!(parse_duration("10us"), Ok(Duration::from_micros(10)));
        assert_eq!(parse_duration("10µs"), Ok(Duration::from_micros(10)));
        assert_eq!(parse_duration("3ns"), Ok(Duration::from_nanos(3)));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
        assert_eq!(parse_duration("+2s"), Ok(ms(2000)));
        assert_eq!(parse_duration("1.5h"), Ok(ms(5_400_000)));
    }

    #[test]
    fn refuses_bad_forms() {
        for bad in [
            "",
            "5",
            "s",
            "1x",
            "-1s",
            "1..5s",
            "1.2.3s",
            "abc",
            "1 s",
            "99999999999999999999h",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad:?} should fail");
        }
        let err = parse_duration("5").unwrap_err();
        assert!(err.to_string().contains("unit"), "{err}");
        assert!(
            parse_duration("-1s")
                .unwrap_err()
                .to_string()
                .contains("negative")
        );
    }

    #[test]
    fn limit_is_protobuf_maximum() {
        assert!(parse_duration("315576000000s").is_ok());
        assert!(parse_duration("315576000001s").is_err());
    }

    #[test]
    fn formats_like_protobuf_json() {
        assert_eq!(format_duration(ms(7000)), "7s");
        assert_eq!(format_duration(ms(500)), "0.500s");
        assert_eq!(format_duration(Duration::from_micros(1)), "0.000001s");
        assert_eq!(format_duration(Duration::new(1, 5)), "1.000000005s");
        for text in ["0.500s", "7s", "1.000000005s"] {
            let d = parse_duration(text).unwrap();
            assert_eq!(format_duration(d), text);
        }
    }
}
