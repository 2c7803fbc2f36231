//! Telemetry `metrics[].overrides[].tagOverrides.<tag>.value`: the expression a metric label
//! takes. Istio evaluates these as CEL over Envoy's attributes; Lateen accepts the cheap
//! subset that Istio's documentation uses, parsed here once so that lateend refuses what
//! lateen-proxy could not compute (naming the expression), and lateen-proxy compiles the same
//! tree:
//!
//! - string literals as CEL writes them: `'literal'`, `"literal"`, triple-quoted, raw
//!   (`r'...'`), with CEL's escapes;
//! - `request.host`, `request.method`, `request.path`, `request.headers['x-name']`;
//! - `response.code`;
//! - the standard labels of either peer: `source.workload`, `source.namespace`,
//!   `source.app`, `source.version`, `source.principal`, `source.cluster`,
//!   `source.canonical_service`, `source.canonical_revision`, the same under `destination.`
//!   plus `destination.service`, `destination.service_name`, `destination.service_namespace`;
//! - Istio's peer metadata: `upstream_peer.<key>` / `upstream_peer['<key>']` (the destination)
//!   and `downstream_peer.<key>` (the source), keys `workload`, `namespace`, `app`, `version`,
//!   `cluster`, `service` (the canonical service), `revision` (the canonical revision);
//! - `string(e)` (every value is already a string) and concatenation `a + b`.
//!
//! Everything else (other attributes, functions, operators, `filter_state`, numbers, bytes
//! and other literals) is refused, naming the token.
//!
//! The tokens are CEL's, from [`lateen_cel::lexer`] (the lexer lateen-proxy's access-log
//! filter uses), so a string literal means here what it means to Istio; this module holds only
//! the grammar of the subset. Parsing happens when configuration arrives; lateen-proxy
//! evaluates the resulting [`TagValue`] per request, never the text.

use lateen_cel::lexer::{Token, lex};

/// Longer expressions are refused: a label value is one short line.
pub const MAX_LENGTH: usize = 1024;
/// Nested `string(...)` deeper than this is refused.
const MAX_DEPTH: usize = 16;

/// A parsed label value.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum TagValue {
    Literal(String),
    Attribute(TagAttribute),
    /// `a + b + ...`, in order.
    Concat(Vec<TagValue>),
}

/// An attribute a label value reads.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum TagAttribute {
    RequestHost,
    RequestMethod,
    RequestPath,
    /// A request header, its name in lower case.
    RequestHeader(String),
    ResponseCode,
    Peer(PeerSide, PeerField),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PeerSide {
    Source,
    Destination,
}

/// A standard label of one side of the traffic.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PeerField {
    Workload,
    Namespace,
    App,
    Version,
    Principal,
    Cluster,
    CanonicalService,
    CanonicalRevision,
    Service,
    ServiceName,
    ServiceNamespace,
}

/// Whether `name` may name a Prometheus label (`[a-zA-Z_][a-zA-Z0-9_]*`).
pub fn is_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Why a value expression is refused; the message names what was found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct TagValueError(pub String);

impl TagValue {
    /// Parses `text`; the error says what lateen cannot evaluate.
    pub fn parse(text: &str) -> Result<TagValue, TagValueError> {
        if text.len() > MAX_LENGTH {
            return Err(TagValueError(format!(
                "the expression is {} bytes long; at most {MAX_LENGTH} are accepted",
                text.len()
            )));
        }
        let tokens = lex(text).map_err(|error| TagValueError(error.reason()))?;
        let mut parser = Parser { tokens, pos: 0 };
        let value = parser.sum(0)?;
        match parser.peek() {
            None => Ok(value),
            Some(token) => Err(unexpected(token)),
        }
    }

    /// Whether evaluating the value reads the request (its host, method, path or headers).
    pub fn reads_request(&self) -> bool {
        match self {
            TagValue::Literal(_) => false,
            TagValue::Attribute(attribute) => matches!(
                attribute,
                TagAttribute::RequestHost
                    | TagAttribute::RequestMethod
                    | TagAttribute::RequestPath
                    | TagAttribute::RequestHeader(_)
            ),
            TagValue::Concat(parts) => parts.iter().any(TagValue::reads_request),
        }
    }
}

/// How an error message names a token: identifiers and strings with their text.
fn describe(token: &Token) -> String {
    match token {
        Token::Ident(name) => format!("{name:?}"),
        Token::Str(text) => format!("string {text:?}"),
        Token::Bytes(text) => format!("bytes literal b{text:?}"),
        Token::Int(n) => format!("number {n}"),
        Token::Uint(n) => format!("number {n}u"),
        Token::Double(n) => format!("number {n}"),
        Token::Bool(b) => format!("literal {b}"),
        Token::Null => "literal null".to_string(),
        Token::Op(op) => format!("{op:?}"),
    }
}

/// The punctuation this grammar reads; CEL's other operators are refused as such.
const PUNCTUATION: &[&str] = &["+", ".", "(", ")", "[", "]"];

/// A token where a term or the end was wanted, named with what would have been accepted.
fn unexpected(token: &Token) -> TagValueError {
    TagValueError(match token {
        Token::Op(op) if !PUNCTUATION.contains(op) => {
            format!("the operator {op:?} is not supported: only + is")
        }
        Token::Ident(_) | Token::Str(_) | Token::Op(_) => {
            format!("unexpected {}", describe(token))
        }
        _ => format!(
            "the {} is not supported: a label value is built from string literals, \
             attributes, string() and +",
            describe(token)
        ),
    })
}

struct Parser {
    tokens: Vec<Token>,
    pos: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.pos)
    }

    fn next(&mut self) -> Option<Token> {
        let token = self.tokens.get(self.pos).cloned();
        self.pos += 1;
        token
    }

    fn expect(&mut self, op: &str) -> Result<(), TagValueError> {
        match self.next() {
            Some(Token::Op(found)) if found == op => Ok(()),
            Some(other) => Err(TagValueError(format!(
                "expected {op:?}, found {}",
                describe(&other)
            ))),
            None => Err(TagValueError(format!("expected {op:?} at the end"))),
        }
    }

    /// `term ('+' term)*`
    fn sum(&mut self, depth: usize) -> Result<TagValue, TagValueError> {
        if depth > MAX_DEPTH {
            return Err(TagValueError(format!(
                "the expression is nested deeper than {MAX_DEPTH} levels"
            )));
        }
        let mut parts = vec![self.term(depth)?];
        while self.peek() == Some(&Token::Op("+")) {
            self.pos += 1;
            parts.push(self.term(depth)?);
        }
        Ok(if parts.len() == 1 {
            parts.remove(0)
        } else {
            TagValue::Concat(parts)
        })
    }

    fn term(&mut self, depth: usize) -> Result<TagValue, TagValueError> {
        match self.next() {
            Some(Token::Str(text)) => Ok(TagValue::Literal(text)),
            Some(Token::Ident(name)) if self.peek() == Some(&Token::Op("(")) => {
                if name != "string" {
                    return Err(TagValueError(format!(
                        "the function {name}() is not supported: only string() is"
                    )));
                }
                self.pos += 1;
                let inner = self.sum(depth + 1)?;
                self.expect(")")?;
                Ok(inner)
            }
            Some(Token::Ident(root)) => self.attribute(root),
            Some(Token::Op("(")) => {
                let inner = self.sum(depth + 1)?;
                self.expect(")")?;
                Ok(inner)
            }
            Some(other) => Err(unexpected(&other)),
            None => Err(TagValueError("the expression ends too early".into())),
        }
    }

    /// `root.field`, `root['key']` or `request.headers['name']`.
    fn attribute(&mut self, root: String) -> Result<TagValue, TagValueError> {
        let field = match self.next() {
            Some(Token::Op(".")) => match self.next() {
                Some(Token::Ident(field)) => field,
                _ => return Err(TagValueError(format!("{root}. must name a field"))),
            },
            Some(Token::Op("[")) => {
                let key = self.bracket_key(&root)?;
                return peer_key(&root, &key);
            }
            _ => return Err(TagValueError(unknown_attribute(&root))),
        };
        let path = format!("{root}.{field}");
        let attribute = match (root.as_str(), field.as_str()) {
            ("request", "host") => TagAttribute::RequestHost,
            ("request", "method") => TagAttribute::RequestMethod,
            ("request", "path") => TagAttribute::RequestPath,
            ("request", "headers") => {
                if self.next() != Some(Token::Op("[")) {
                    return Err(TagValueError(
                        "request.headers must be indexed by a name: request.headers['x-name']"
                            .into(),
                    ));
                }
                let name = self.bracket_key(&path)?;
                TagAttribute::RequestHeader(name.to_ascii_lowercase())
            }
            ("response", "code") => TagAttribute::ResponseCode,
            ("source", field) => TagAttribute::Peer(
                PeerSide::Source,
                label_field(PeerSide::Source, field, &path)?,
            ),
            ("destination", field) => TagAttribute::Peer(
                PeerSide::Destination,
                label_field(PeerSide::Destination, field, &path)?,
            ),
            ("upstream_peer" | "downstream_peer", key) => return peer_key(&root, key),
            _ => return Err(TagValueError(unknown_attribute(&path))),
        };
        if matches!(self.peek(), Some(Token::Op("." | "["))) {
            return Err(TagValueError(format!("{path} has no fields")));
        }
        Ok(TagValue::Attribute(attribute))
    }

    /// `'key']` after a `[`.
    fn bracket_key(&mut self, what: &str) -> Result<String, TagValueError> {
        let key = match self.next() {
            Some(Token::Str(key)) => key,
            _ => {
                return Err(TagValueError(format!(
                    "{what}[...] must be indexed by a string literal"
                )));
            }
        };
        self.expect("]")?;
        Ok(key)
    }
}

fn unknown_attribute(path: &str) -> String {
    format!(
        "the attribute {path} is not supported: request.host, request.method, request.path, \
         request.headers['...'], response.code, source.*, destination.*, upstream_peer.* and \
         downstream_peer.* are"
    )
}

fn label_field(side: PeerSide, field: &str, path: &str) -> Result<PeerField, TagValueError> {
    Ok(match field {
        "workload" => PeerField::Workload,
        "namespace" => PeerField::Namespace,
        "app" => PeerField::App,
        "version" => PeerField::Version,
        "principal" => PeerField::Principal,
        "cluster" => PeerField::Cluster,
        "canonical_service" => PeerField::CanonicalService,
        "canonical_revision" => PeerField::CanonicalRevision,
        "service" if side == PeerSide::Destination => PeerField::Service,
        "service_name" if side == PeerSide::Destination => PeerField::ServiceName,
        "service_namespace" if side == PeerSide::Destination => PeerField::ServiceNamespace,
        _ => return Err(TagValueError(unknown_attribute(path))),
    })
}

/// Istio's peer metadata keys.
fn peer_key(root: &str, key: &str) -> Result<TagValue, TagValueError> {
    let side = match root {
        "upstream_peer" => PeerSide::Destination,
        "downstream_peer" => PeerSide::Source,
        _ => return Err(TagValueError(unknown_attribute(&format!("{root}[...]")))),
    };
    let field = match key {
        "workload" => PeerField::Workload,
        "namespace" => PeerField::Namespace,
        "app" => PeerField::App,
        "version" => PeerField::Version,
        "cluster" => PeerField::Cluster,
        "service" => PeerField::CanonicalService,
        "revision" => PeerField::CanonicalRevision,
        _ => {
            return Err(TagValueError(format!(
                "the peer key {root}.{key} is not supported: workload, namespace, app, \
                 version, cluster, service and revision are"
            )));
        }
    };
    Ok(TagValue::Attribute(TagAttribute::Peer(side, field)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(text: &str) -> TagValue {
        TagValue::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    fn refused(text: &str) -> String {
        match TagValue::parse(text) {
            Ok(value) => panic!("{text} was accepted as {value:?}"),
            Err(e) => e.0,
        }
    }

    #[test]
    fn accepts_istios_documented_values() {
        assert_eq!(ok("'literal'"), TagValue::Literal("literal".into()));
        assert_eq!(ok("\"a\\'b\""), TagValue::Literal("a'b".into()));
        assert_eq!(
            ok("request.headers['X-User']"),
            TagValue::Attribute(TagAttribute::RequestHeader("x-user".into()))
        );
        assert_eq!(
            ok("string(response.code)"),
            TagValue::Attribute(TagAttribute::ResponseCode)
        );
        assert_eq!(
            ok("upstream_peer['app']"),
            ok("destination.app"),
            "upstream_peer is the destination"
        );
        assert_eq!(
            ok("request.method + '-' + request.host"),
            TagValue::Concat(vec![
                TagValue::Attribute(TagAttribute::RequestMethod),
                TagValue::Literal("-".into()),
                TagValue::Attribute(TagAttribute::RequestHost),
            ])
        );
        assert!(ok("request.path").reads_request());
        assert!(!ok("'x' + source.workload").reads_request());
    }

    #[test]
    fn refuses_what_lateen_cannot_compute_naming_it() {
        assert!(refused("request.time").contains("request.time"));
        assert!(refused("filter_state['x']").contains("filter_state"));
        assert!(refused("size(request.path)").contains("size()"));
        assert!(refused("response.code == 200").contains("operator \"==\""));
        assert!(refused("source.service").contains("source.service"));
        assert!(refused("upstream_peer.labels").contains("upstream_peer.labels"));
        assert!(refused("request.headers").contains("indexed"));
        assert!(refused("'open").contains("unterminated"));
        assert!(refused("request.host.x").contains("no fields"));
        assert!(refused("").contains("ends too early"));
        assert!(refused(&"string(".repeat(40)).contains("deeper"));
    }

    #[test]
    fn string_literals_mean_what_they_mean_in_cel() {
        assert_eq!(ok(r"'a\nb\t\\'"), TagValue::Literal("a\nb\t\\".into()));
        assert_eq!(ok("'''x'''"), TagValue::Literal("x".into()));
        assert_eq!(ok(r"r'a\d'"), TagValue::Literal(r"a\d".into()));
        assert_eq!(ok(r"'\x41\u00e9'"), TagValue::Literal("A\u{e9}".into()));
        // cel-go refuses a line break inside a single-quoted string, and so does lateen.
        assert!(refused("'a\nb'").contains("unterminated"));
    }

    #[test]
    fn what_cels_lexer_reads_beyond_the_subset_is_refused_naming_the_token() {
        let cases = [
            ("request.host - 'x'", "the operator \"-\" is not supported"),
            ("'a' + 1", "the number 1 is not supported"),
            ("200u", "the number 200u is not supported"),
            ("true", "the literal true is not supported"),
            ("b'x'", "bytes literal b\"x\""),
            ("request.host # x", "unexpected character '#' at column 14"),
            (r"'a\q'", r"invalid escape sequence \q at column 3"),
            ("größe", "the attribute größe is not supported"),
            ("string(request.host", "expected \")\" at the end"),
            ("request.headers[1]", "must be indexed by a string literal"),
        ];
        for (text, reason) in cases {
            let found = refused(text);
            assert!(found.contains(reason), "{text}: {found}");
        }
    }
}
