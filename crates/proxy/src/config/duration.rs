//! Durations in configuration files, written as Envoy/Istio write them: `250ms`, `1.5s`, `2m`,
//! `1h`, or `0s`. Serialized back in the same form so `/config_dump` round-trips.

use serde::{Deserialize, Deserializer, Serializer};
use std::time::Duration;

/// Parses `"1.5s"`, `"250ms"`, `"3m"`, `"1h"`, `"100us"`; rejects a missing or unknown unit.
pub fn parse(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .ok_or_else(|| format!("duration {text:?} has no unit (use ms, s, m or h)"))?;
    let (number, unit) = text.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("duration {text:?} does not start with a number"))?;
    let seconds = match unit {
        "us" | "µs" => value / 1_000_000.0,
        "ms" => value / 1_000.0,
        "s" => value,
        "m" => value * 60.0,
        "h" => value * 3600.0,
        other => {
            return Err(format!(
                "duration {text:?} has unknown unit {other:?} (use ms, s, m or h)"
            ));
        }
    };
    if !seconds.is_finite() || seconds > 315_576_000_000.0 {
        return Err(format!("duration {text:?} is out of range"));
    }
    Ok(Duration::from_secs_f64(seconds))
}

/// Formats a duration the way [`parse`] reads it.
pub fn format(duration: Duration) -> String {
    let millis = duration.as_millis();
    if !duration.subsec_nanos().is_multiple_of(1_000_000) {
        format!("{}us", duration.as_micros())
    } else if !millis.is_multiple_of(1000) {
        format!("{millis}ms")
    } else {
        format!("{}s", duration.as_secs())
    }
}

pub fn serialize<S: Serializer>(value: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&format(*value))
}

pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
    let text = String::deserialize(deserializer)?;
    parse(&text).map_err(serde::de::Error::custom)
}

/// The same for `Option<Duration>` fields.
pub mod option {
    use super::*;

    pub fn serialize<S: Serializer>(
        value: &Option<Duration>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        match value {
            Some(duration) => serializer.serialize_str(&format(*duration)),
            None => serializer.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<Duration>, D::Error> {
        let text = Option::<String>::deserialize(deserializer)?;
        text.map(|text| parse(&text).map_err(serde::de::Error::custom))
            .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_units() {
        assert_eq!(parse("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse("0s"), Ok(Duration::ZERO));
        assert!(parse("10").is_err());
        assert!(parse("s").is_err());
        assert!(parse("5 parsecs").is_err());
    }

    #[test]
    fn formats_round_trip() {
        for text in ["250ms", "15s", "100us"] {
            assert_eq!(format(parse(text).unwrap_or_default()), text);
        }
    }
}
