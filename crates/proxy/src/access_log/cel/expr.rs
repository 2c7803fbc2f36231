//! The expression lateen-proxy evaluates: lateen-cel's syntax tree with Envoy's attributes
//! (`request.headers`, `response.code`, ...) and the functions lateen-proxy evaluates
//! resolved ([`super::compile`]), so that what it cannot evaluate was refused with the
//! configuration rather than met per request.

use lateen_cel::{BinOp, Const};
use regex::Regex;

use super::attributes::Attribute;

/// The functions lateen-proxy evaluates; a receiver (`s.startsWith(x)`) is the first argument.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) enum Func {
    Size,
    Int,
    Uint,
    Double,
    String,
    Duration,
    StartsWith,
    EndsWith,
    Contains,
}

#[derive(Clone, Debug)]
pub(super) enum Expr {
    Const(Const),
    Attr(Attribute),
    /// A bare identifier: compiling refuses it (it is no attribute).
    Ident(String),
    Not(Box<Expr>),
    Neg(Box<Expr>),
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
    Binary(BinOp, Box<Expr>, Box<Expr>),
    Cond(Box<Expr>, Box<Expr>, Box<Expr>),
    List(Vec<Expr>),
    Map(Vec<(Expr, Expr)>),
    Index(Box<Expr>, Box<Expr>),
    Select(Box<Expr>, String),
    Has(Box<Expr>, String),
    Call(Func, Vec<Expr>),
    /// `s.matches('re')` / `matches(s, 're')`: the pattern is compiled with the configuration.
    Matches(Box<Expr>, Box<Regex>),
}
