//! Envoy's access-log format strings: `%COMMAND(arg)%` operators in text, or a JSON object
//! whose string values are such strings. Parsed once per configuration (an unknown operator
//! is an error naming it), rendered per request into one line.

use std::collections::BTreeMap;

use super::entry::Entry;

/// A parsed format.
#[derive(Clone, Debug, PartialEq)]
pub enum Format {
    Text(Vec<Segment>),
    /// Keys in order, each a text format; a value that is exactly one operator keeps its type
    /// (numbers stay numbers, absent values are `null`), as Envoy's typed JSON does.
    Json(Vec<(String, JsonValue)>),
}

#[derive(Clone, Debug, PartialEq)]
pub enum JsonValue {
    Format(Vec<Segment>),
    /// A non-string value of the configuration, written as configured.
    Literal(serde_json::Value),
}

#[derive(Clone, Debug, PartialEq)]
pub enum Segment {
    Literal(String),
    Op(Operator, Option<usize>),
}

/// The command operators lateen-proxy renders.
#[derive(Clone, Debug, PartialEq)]
pub enum Operator {
    StartTime,
    /// `REQ(X?Y)`: header X, else Y (`:path`, `:method`, `:authority` are pseudo-headers).
    Req(String, Option<String>),
    Resp(String, Option<String>),
    ResponseCode,
    ResponseFlags,
    ResponseCodeDetails,
    ConnectionTerminationDetails,
    UpstreamTransportFailureReason,
    BytesReceived,
    BytesSent,
    Duration,
    UpstreamHost,
    UpstreamCluster,
    UpstreamLocalAddress,
    DownstreamLocalAddress,
    DownstreamRemoteAddress,
    DownstreamRemoteAddressWithoutPort,
    RequestedServerName,
    RouteName,
    Protocol,
    Hostname,
}

/// A format string the parser refused.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum FormatError {
    #[error("unknown command operator %{0}%")]
    Unknown(String),
    #[error("command operator %{0}% needs an argument in parentheses")]
    MissingArgument(String),
    #[error("unterminated command operator starting at {0:?}")]
    Unterminated(String),
}

impl Format {
    pub fn text(format: &str) -> Result<Format, FormatError> {
        Ok(Format::Text(parse(format)?))
    }

    pub fn json(labels: &BTreeMap<String, serde_json::Value>) -> Result<Format, FormatError> {
        let mut fields = Vec::with_capacity(labels.len());
        for (key, value) in labels {
            let value = match value {
                serde_json::Value::String(s) => JsonValue::Format(parse(s)?),
                other => JsonValue::Literal(other.clone()),
            };
            fields.push((key.clone(), value));
        }
        Ok(Format::Json(fields))
    }

    /// The request and response header names the operators read (pseudo-headers such as
    /// `:path` are not headers and are left out).
    pub fn headers(&self) -> (Vec<http::HeaderName>, Vec<http::HeaderName>) {
        let segments: Vec<&Segment> = match self {
            Format::Text(segments) => segments.iter().collect(),
            Format::Json(fields) => fields
                .iter()
                .filter_map(|(_, v)| match v {
                    JsonValue::Format(segments) => Some(segments),
                    JsonValue::Literal(_) => None,
                })
                .flatten()
                .collect(),
        };
        let (mut request, mut response) = (Vec::new(), Vec::new());
        for segment in segments {
            let (list, main, alt) = match segment {
                Segment::Op(Operator::Req(main, alt), _) => (&mut request, main, alt),
                Segment::Op(Operator::Resp(main, alt), _) => (&mut response, main, alt),
                _ => continue,
            };
            for name in std::iter::once(main).chain(alt) {
                if let Ok(header) = http::HeaderName::from_bytes(name.as_bytes())
                    && !list.contains(&header)
                {
                    list.push(header);
                }
            }
        }
        (request, response)
    }

    /// The line for `entry`, ending in a newline.
    pub fn render(&self, entry: &Entry) -> String {
        let mut out = String::with_capacity(256);
        self.render_into(entry, &mut out);
        out
    }

    /// Appends the line for `entry` to `out`. The text form writes each value in place (no
    /// allocation per operator): logging is on the request path.
    pub fn render_into(&self, entry: &Entry, out: &mut String) {
        match self {
            Format::Text(segments) => {
                for segment in segments {
                    match segment {
                        Segment::Literal(text) => out.push_str(text),
                        Segment::Op(op, max) => {
                            let start = out.len();
                            entry.write_text(op, out);
                            if let Some(max) = max {
                                let kept = truncate(&out[start..], Some(*max)).len();
                                out.truncate(start + kept);
                            }
                        }
                    }
                }
                if !out.ends_with('\n') {
                    out.push('\n');
                }
            }
            Format::Json(fields) => {
                let mut map = serde_json::Map::with_capacity(fields.len());
                for (key, value) in fields {
                    let json = match value {
                        JsonValue::Literal(v) => v.clone(),
                        JsonValue::Format(segments) => match segments.as_slice() {
                            [Segment::Op(op, max)] => entry.value(op).as_json(*max),
                            _ => {
                                let mut text = String::new();
                                for segment in segments {
                                    match segment {
                                        Segment::Literal(t) => text.push_str(t),
                                        Segment::Op(op, max) => {
                                            let value = entry.value(op);
                                            text.push_str(truncate(&value.as_text(), *max));
                                        }
                                    }
                                }
                                serde_json::Value::String(text)
                            }
                        },
                    };
                    map.insert(key.clone(), json);
                }
                out.push_str(&serde_json::Value::Object(map).to_string());
                out.push('\n');
            }
        }
    }
}

fn truncate(text: &str, max: Option<usize>) -> &str {
    match max {
        Some(max) if text.len() > max => {
            let mut end = max;
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            &text[..end]
        }
        _ => text,
    }
}

/// Splits a format string into literals and operators.
pub fn parse(format: &str) -> Result<Vec<Segment>, FormatError> {
    let mut segments = Vec::new();
    let mut literal = String::new();
    let mut rest = format;
    while let Some(start) = rest.find('%') {
        literal.push_str(&rest[..start]);
        let after = &rest[start + 1..];
        // `%%` is a literal percent sign.
        if let Some(tail) = after.strip_prefix('%') {
            literal.push('%');
            rest = tail;
            continue;
        }
        let end = operator_end(after)
            .ok_or_else(|| FormatError::Unterminated(after.chars().take(40).collect::<String>()))?;
        let (op, max) = operator(&after[..end])?;
        if !literal.is_empty() {
            segments.push(Segment::Literal(std::mem::take(&mut literal)));
        }
        segments.push(Segment::Op(op, max));
        rest = &after[end + 1..];
        // `%REQ(X):10%` was cut at the `%`; the length belongs to the operator.
    }
    literal.push_str(rest);
    if !literal.is_empty() {
        segments.push(Segment::Literal(literal));
    }
    Ok(segments)
}

/// Where the operator that starts `text` ends (the closing `%`), skipping parentheses.
fn operator_end(text: &str) -> Option<usize> {
    let mut depth = 0usize;
    for (i, c) in text.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            '%' if depth == 0 => return Some(i),
            '\n' => return None,
            _ => {}
        }
    }
    None
}

/// `NAME`, `NAME(arg)` or `NAME(arg):N`.
fn operator(text: &str) -> Result<(Operator, Option<usize>), FormatError> {
    let (head, max) = match text.rsplit_once("):") {
        Some((head, n)) if n.chars().all(|c| c.is_ascii_digit()) && !n.is_empty() => {
            (format!("{head})"), n.parse().ok())
        }
        _ => (text.to_string(), None),
    };
    let (name, arg) = match head.split_once('(') {
        Some((name, rest)) => (name, rest.strip_suffix(')')),
        None => (head.as_str(), None),
    };
    let header_pair = |arg: Option<&str>| -> Result<(String, Option<String>), FormatError> {
        let arg = arg
            .filter(|a| !a.is_empty())
            .ok_or_else(|| FormatError::MissingArgument(name.to_string()))?;
        Ok(match arg.split_once('?') {
            Some((main, alt)) => (main.to_ascii_lowercase(), Some(alt.to_ascii_lowercase())),
            None => (arg.to_ascii_lowercase(), None),
        })
    };
    let op = match name {
        "START_TIME" if arg.is_none() => Operator::StartTime,
        "REQ" => {
            let (main, alt) = header_pair(arg)?;
            Operator::Req(main, alt)
        }
        "RESP" => {
            let (main, alt) = header_pair(arg)?;
            Operator::Resp(main, alt)
        }
        "RESPONSE_CODE" => Operator::ResponseCode,
        "RESPONSE_FLAGS" => Operator::ResponseFlags,
        "RESPONSE_CODE_DETAILS" => Operator::ResponseCodeDetails,
        "CONNECTION_TERMINATION_DETAILS" => Operator::ConnectionTerminationDetails,
        "UPSTREAM_TRANSPORT_FAILURE_REASON" => Operator::UpstreamTransportFailureReason,
        "BYTES_RECEIVED" => Operator::BytesReceived,
        "BYTES_SENT" => Operator::BytesSent,
        "DURATION" => Operator::Duration,
        "UPSTREAM_HOST" => Operator::UpstreamHost,
        "UPSTREAM_CLUSTER" | "UPSTREAM_CLUSTER_RAW" => Operator::UpstreamCluster,
        "UPSTREAM_LOCAL_ADDRESS" => Operator::UpstreamLocalAddress,
        "DOWNSTREAM_LOCAL_ADDRESS" => Operator::DownstreamLocalAddress,
        "DOWNSTREAM_REMOTE_ADDRESS" => Operator::DownstreamRemoteAddress,
        "DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT" => Operator::DownstreamRemoteAddressWithoutPort,
        "REQUESTED_SERVER_NAME" => Operator::RequestedServerName,
        "ROUTE_NAME" => Operator::RouteName,
        "PROTOCOL" => Operator::Protocol,
        "HOSTNAME" => Operator::Hostname,
        _ => return Err(FormatError::Unknown(text.to_string())),
    };
    Ok((op, max))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envoys_default_format_parses() {
        // Istio's default format is parsed end to end in lateen-discovery's access_log test.
        let format = crate::access_log::ENVOY_DEFAULT_FORMAT;
        let segments = parse(format).expect("Envoy's format parses");
        assert!(segments.contains(&Segment::Op(
            Operator::Req("x-envoy-original-path".into(), Some(":path".into())),
            None
        )));
    }

    #[test]
    fn unknown_operators_are_named_and_percent_escapes_work() {
        assert_eq!(
            parse("%RESPONSE_CODE% %NOT_AN_OPERATOR%"),
            Err(FormatError::Unknown("NOT_AN_OPERATOR".into()))
        );
        assert_eq!(
            parse("%REQ()%"),
            Err(FormatError::MissingArgument("REQ".into()))
        );
        assert!(matches!(
            parse("%RESPONSE_CODE"),
            Err(FormatError::Unterminated(_))
        ));
        assert_eq!(
            parse("100%% %REQ(:PATH):5%"),
            Ok(vec![
                Segment::Literal("100% ".into()),
                Segment::Op(Operator::Req(":path".into(), None), Some(5))
            ])
        );
    }
}
