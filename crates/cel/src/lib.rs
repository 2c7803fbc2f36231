//! CEL (the Common Expression Language, cel-spec) as text to a syntax tree: the lexer
//! ([`lexer`]), the parser ([`parse`]) and the tree ([`ast::Ast`]). It knows the grammar
//! only: no attribute, function or type is resolved here, so each user decides what it
//! accepts. lateen-api checks Telemetry `accessLogging[].filter.expression` with it (Istio
//! refuses what cel-go cannot parse); lateen-proxy compiles the tree into its access-log
//! evaluator. lateen-api's Telemetry `tagOverrides` values walk the [`lexer`]'s tokens with a
//! grammar of their own (a small subset), so strings and escapes are read in one place.
//!
//! Hostile text cannot exhaust the stack: nesting and the tree's height are both bounded by
//! [`MAX_DEPTH`], the parse is one pass over the tokens, and every error names what was found
//! where parsing stopped (the lexer's with its column, counted in characters from 1).
//!
//! Owns: CEL's lexical grammar and syntax. Must not touch: evaluation, Envoy's attributes,
//! any other Lateen crate (it depends on none).
#![forbid(unsafe_code)]

pub mod ast;
pub mod lexer;
mod parser;

pub use ast::{Ast, BinOp, Const};
pub use parser::parse;

/// Deeper nesting of brackets and taller trees than this are refused: users recurse once per
/// level (an evaluator, a walk over the tree), and hostile configuration must not reach the
/// stack's end.
pub const MAX_DEPTH: usize = 100;

/// Text that is not one CEL expression.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// What was found where the grammar wanted something else.
    #[error("syntax error: {0}")]
    Syntax(String),
    #[error("the expression is nested deeper than {0} levels")]
    TooDeep(usize),
}

impl ParseError {
    /// The reason alone, without the "syntax error: " prefix.
    pub fn reason(&self) -> String {
        match self {
            ParseError::Syntax(reason) => reason.clone(),
            other => other.to_string(),
        }
    }
}

#[cfg(test)]
mod tests;
