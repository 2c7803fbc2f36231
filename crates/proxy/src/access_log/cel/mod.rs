//! A CEL evaluator for access-log filters (Envoy's `envoy.access_loggers.extension_filters.cel`,
//! which Istio's Telemetry `accessLogging[].filter.expression` becomes): an expression is
//! parsed once when the configuration is compiled ([`Program::compile`]: lateen-cel's parser,
//! then [`compile`] resolves Envoy's attributes and functions, and what lateen-proxy cannot
//! evaluate is refused then, by name) and evaluated per finished request or connection
//! ([`Program::matches`]) over the resolved tree, so evaluation parses and allocates nothing
//! more than before. As in Envoy, only a `true` result logs: `false`, a
//! non-boolean result and an evaluation error (a header that was not sent) do not.

mod attributes;
mod compile;
mod eval;
mod expr;
#[cfg(test)]
mod tests;

use expr::Expr;
use lateen_cel::{BinOp, Const, ParseError};

use super::Entry;
use attributes::Attribute;

/// Longer expressions are refused: filters are one line of a Telemetry resource.
pub const MAX_LENGTH: usize = 8 * 1024;

/// An expression lateen-proxy refuses to evaluate.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum CelError {
    #[error("syntax error: {0}")]
    Syntax(String),
    #[error("{0} is not supported by lateen-proxy")]
    Unsupported(String),
    #[error("undeclared reference to {0:?}")]
    Undeclared(String),
    #[error("{0}() takes {1} operand(s), counting its receiver")]
    Arity(String, usize),
    #[error("invalid regular expression {0:?}: {1}")]
    Regex(String, String),
    #[error("the expression is {0} bytes long; at most {MAX_LENGTH} are accepted")]
    TooLong(usize),
    #[error("the expression is nested deeper than {0} levels")]
    TooDeep(usize),
}

impl From<ParseError> for CelError {
    fn from(error: ParseError) -> CelError {
        match error {
            ParseError::Syntax(reason) => CelError::Syntax(reason),
            ParseError::TooDeep(levels) => CelError::TooDeep(levels),
        }
    }
}

/// A compiled filter expression.
#[derive(Debug)]
pub struct Program {
    root: Expr,
    /// Request and response headers the expression reads (lower case); `None` when it reads
    /// the header map as a whole (`size(request.headers)`), so every header must be kept.
    request_headers: Option<Vec<http::HeaderName>>,
    response_headers: Option<Vec<http::HeaderName>>,
}

impl Program {
    pub fn compile(text: &str) -> Result<Program, CelError> {
        if text.len() > MAX_LENGTH {
            return Err(CelError::TooLong(text.len()));
        }
        let root = compile::compile(lateen_cel::parse(text)?)?;
        let mut needs = Needs {
            request: Some(Vec::new()),
            response: Some(Vec::new()),
        };
        needs.walk(&root)?;
        Ok(Program {
            root,
            request_headers: needs.request,
            response_headers: needs.response,
        })
    }

    /// Whether `entry` is logged: the expression is `true` for it.
    pub fn matches(&self, entry: &Entry) -> bool {
        matches!(eval::eval(&self.root, entry), Ok(eval::Val::Bool(true)))
    }

    pub fn request_headers(&self) -> Option<&[http::HeaderName]> {
        self.request_headers.as_deref()
    }

    pub fn response_headers(&self) -> Option<&[http::HeaderName]> {
        self.response_headers.as_deref()
    }

    #[cfg(test)]
    fn evaluate<'a>(&'a self, entry: &'a Entry) -> Result<eval::Val<'a>, eval::EvalError> {
        eval::eval(&self.root, entry)
    }
}

/// What headers an expression reads, found in one walk that also refuses identifiers that
/// are no attribute.
struct Needs {
    request: Option<Vec<http::HeaderName>>,
    response: Option<Vec<http::HeaderName>>,
}

impl Needs {
    fn add(list: &mut Option<Vec<http::HeaderName>>, name: &str) {
        let Some(names) = list else {
            return;
        };
        // A name that is no valid header is never present: nothing to keep.
        if let Ok(name) = http::HeaderName::from_bytes(name.to_ascii_lowercase().as_bytes())
            && !names.contains(&name)
        {
            names.push(name);
        }
    }

    /// A header named by a literal on a header map: kept by name; `false` when `target` is
    /// not a header map.
    fn named(&mut self, target: &Expr, name: &str) -> bool {
        match target {
            Expr::Attr(Attribute::RequestHeaders) => Self::add(&mut self.request, name),
            Expr::Attr(Attribute::ResponseHeaders) => Self::add(&mut self.response, name),
            _ => return false,
        }
        true
    }

    fn walk(&mut self, expr: &Expr) -> Result<(), CelError> {
        match expr {
            Expr::Ident(name) if Attribute::is_root(name) => {
                Err(CelError::Unsupported(format!("the attribute map {name}")))
            }
            Expr::Ident(name) => Err(CelError::Undeclared(name.clone())),
            Expr::Const(_) => Ok(()),
            Expr::Attr(attribute) => {
                match attribute {
                    Attribute::RequestHeaders => self.request = None,
                    Attribute::ResponseHeaders => self.response = None,
                    Attribute::ResponseGrpcStatus => Self::add(&mut self.response, "grpc-status"),
                    other => {
                        if let Some(name) = other.request_header() {
                            Self::add(&mut self.request, name);
                        }
                    }
                }
                Ok(())
            }
            Expr::Index(target, index) => {
                if let Expr::Const(Const::Str(name)) = index.as_ref()
                    && self.named(target, name)
                {
                    return Ok(());
                }
                self.walk(target)?;
                self.walk(index)
            }
            Expr::Select(target, field) | Expr::Has(target, field) => {
                if !field.is_empty() && self.named(target, field) {
                    return Ok(());
                }
                self.walk(target)
            }
            Expr::Binary(BinOp::In, needle, haystack) => {
                if let Expr::Const(Const::Str(name)) = needle.as_ref()
                    && self.named(haystack, name)
                {
                    return Ok(());
                }
                self.walk(needle)?;
                self.walk(haystack)
            }
            Expr::Not(e) | Expr::Neg(e) | Expr::Matches(e, _) => self.walk(e),
            Expr::And(a, b) | Expr::Or(a, b) | Expr::Binary(_, a, b) => {
                self.walk(a)?;
                self.walk(b)
            }
            Expr::Cond(c, a, b) => {
                self.walk(c)?;
                self.walk(a)?;
                self.walk(b)
            }
            Expr::List(items) | Expr::Call(_, items) => items.iter().try_for_each(|e| self.walk(e)),
            Expr::Map(entries) => entries.iter().try_for_each(|(k, v)| {
                self.walk(k)?;
                self.walk(v)
            }),
        }
    }
}
