//! Evaluation of a parsed expression against one [`Entry`], with CEL's semantics: numbers
//! of different types compare and equal by value, arithmetic needs one type and fails on
//! overflow, `&&`/`||` absorb an error when the other side decides, and any other error
//! (a missing header, a division by zero) is an error value. Strings borrow from the entry
//! and the expression, so a typical filter allocates nothing.

use std::borrow::Cow;
use std::cmp::Ordering;

use lateen_cel::{BinOp, Const};

use super::expr::{Expr, Func};
use crate::access_log::Entry;

/// Why evaluation failed: Envoy logs nothing then, so the reason only serves tests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct EvalError(pub(crate) &'static str);

#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Val<'a> {
    Null,
    Bool(bool),
    Int(i64),
    Uint(u64),
    Double(f64),
    Str(Cow<'a, str>),
    /// Nanoseconds.
    Duration(i64),
    List(Vec<Val<'a>>),
    Map(Vec<(Val<'a>, Val<'a>)>),
    /// `request.headers` / `response.headers`: looked up in the entry when indexed.
    RequestHeaders,
    ResponseHeaders,
}

type Res<'a> = Result<Val<'a>, EvalError>;

const NO_OVERLOAD: EvalError = EvalError("no such overload");
const OVERFLOW: EvalError = EvalError("integer overflow");

pub(super) fn eval<'a>(expr: &'a Expr, entry: &'a Entry) -> Res<'a> {
    match expr {
        Expr::Const(c) => constant(c),
        Expr::Attr(a) => a.value(entry),
        Expr::Ident(_) => Err(EvalError("undeclared reference")),
        Expr::Not(e) => match eval(e, entry)? {
            Val::Bool(b) => Ok(Val::Bool(!b)),
            _ => Err(NO_OVERLOAD),
        },
        Expr::Neg(e) => match eval(e, entry)? {
            Val::Int(n) => n.checked_neg().map(Val::Int).ok_or(OVERFLOW),
            Val::Double(n) => Ok(Val::Double(-n)),
            Val::Duration(n) => n.checked_neg().map(Val::Duration).ok_or(OVERFLOW),
            _ => Err(NO_OVERLOAD),
        },
        Expr::And(a, b) => logic(eval(a, entry), || eval(b, entry), false),
        Expr::Or(a, b) => logic(eval(a, entry), || eval(b, entry), true),
        Expr::Cond(c, then, otherwise) => match eval(c, entry)? {
            Val::Bool(true) => eval(then, entry),
            Val::Bool(false) => eval(otherwise, entry),
            _ => Err(NO_OVERLOAD),
        },
        Expr::Binary(op, a, b) => binary(*op, eval(a, entry)?, eval(b, entry)?, entry),
        Expr::List(items) => items
            .iter()
            .map(|e| eval(e, entry))
            .collect::<Result<_, _>>()
            .map(Val::List),
        Expr::Map(entries) => entries
            .iter()
            .map(|(k, v)| Ok((eval(k, entry)?, eval(v, entry)?)))
            .collect::<Result<_, _>>()
            .map(Val::Map),
        Expr::Index(target, index) => index_of(eval(target, entry)?, eval(index, entry)?, entry),
        Expr::Select(target, field) => {
            index_of(eval(target, entry)?, Val::Str(Cow::Borrowed(field)), entry)
        }
        Expr::Has(target, field) if field.is_empty() => Ok(Val::Bool(eval(target, entry).is_ok())),
        Expr::Has(target, field) => {
            let found = match eval(target, entry)? {
                Val::Map(entries) => entries
                    .iter()
                    .any(|(k, _)| matches!(k, Val::Str(s) if s == field)),
                Val::RequestHeaders => entry.request_header(&lower(field)).is_some(),
                Val::ResponseHeaders => entry.response_headers.contains_key(lower(field).as_ref()),
                _ => return Err(NO_OVERLOAD),
            };
            Ok(Val::Bool(found))
        }
        Expr::Call(func, args) => call(*func, args, entry),
        Expr::Matches(target, regex) => match eval(target, entry)? {
            Val::Str(s) => Ok(Val::Bool(regex.is_match(&s))),
            _ => Err(NO_OVERLOAD),
        },
    }
}

fn constant(c: &Const) -> Res<'_> {
    Ok(match c {
        Const::Null => Val::Null,
        Const::Bool(b) => Val::Bool(*b),
        Const::Int(n) => Val::Int(*n),
        Const::Uint(n) => Val::Uint(*n),
        Const::Double(n) => Val::Double(*n),
        Const::Str(s) => Val::Str(Cow::Borrowed(s)),
        // Refused when compiled; an error value should one ever get here.
        Const::Bytes(_) => return Err(EvalError("bytes literals are not supported")),
    })
}

/// `&&` (`decides` false) and `||` (`decides` true): the deciding value wins over an error
/// on either side; otherwise an error is the result.
fn logic<'a>(lhs: Res<'a>, rhs: impl FnOnce() -> Res<'a>, decides: bool) -> Res<'a> {
    let lhs = match lhs {
        Ok(Val::Bool(b)) if b == decides => return Ok(Val::Bool(decides)),
        Ok(Val::Bool(_)) => None,
        Ok(_) => Some(NO_OVERLOAD),
        Err(e) => Some(e),
    };
    match rhs() {
        Ok(Val::Bool(b)) if b == decides => Ok(Val::Bool(decides)),
        Ok(Val::Bool(b)) => lhs.map_or(Ok(Val::Bool(b)), Err),
        Ok(_) => Err(lhs.unwrap_or(NO_OVERLOAD)),
        Err(e) => Err(lhs.unwrap_or(e)),
    }
}

fn lower(name: &str) -> Cow<'_, str> {
    if name.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Owned(name.to_ascii_lowercase())
    } else {
        Cow::Borrowed(name)
    }
}

fn header<'a>(target: &Val<'a>, name: &str, entry: &'a Entry) -> Option<Cow<'a, str>> {
    let name = lower(name);
    match target {
        Val::RequestHeaders => entry.request_header(&name),
        Val::ResponseHeaders => entry
            .response_headers
            .get(name.as_ref())
            .and_then(|v| v.to_str().ok())
            .map(Cow::Borrowed),
        _ => None,
    }
}

fn index_of<'a>(target: Val<'a>, index: Val<'a>, entry: &'a Entry) -> Res<'a> {
    let no_key = EvalError("no such key");
    match (target, index) {
        (t @ (Val::RequestHeaders | Val::ResponseHeaders), Val::Str(name)) => {
            header(&t, &name, entry).map(Val::Str).ok_or(no_key)
        }
        (Val::List(items), i) => {
            let i = match i {
                Val::Int(n) => usize::try_from(n).ok(),
                Val::Uint(n) => usize::try_from(n).ok(),
                _ => return Err(NO_OVERLOAD),
            };
            let mut items = items;
            match i {
                Some(i) if i < items.len() => Ok(items.swap_remove(i)),
                _ => Err(EvalError("index out of range")),
            }
        }
        (Val::Map(entries), key) => {
            for (k, v) in entries {
                if equals(&k, &key)? {
                    return Ok(v);
                }
            }
            Err(no_key)
        }
        _ => Err(NO_OVERLOAD),
    }
}

fn binary<'a>(op: BinOp, a: Val<'a>, b: Val<'a>, entry: &'a Entry) -> Res<'a> {
    let ordered = |test: fn(Ordering) -> bool| -> Res<'a> {
        Ok(Val::Bool(compare(&a, &b)?.is_some_and(test)))
    };
    match op {
        BinOp::Eq => Ok(Val::Bool(equals(&a, &b)?)),
        BinOp::Ne => Ok(Val::Bool(!equals(&a, &b)?)),
        BinOp::Lt => ordered(Ordering::is_lt),
        BinOp::Le => ordered(Ordering::is_le),
        BinOp::Gt => ordered(Ordering::is_gt),
        BinOp::Ge => ordered(Ordering::is_ge),
        BinOp::In => contains(&b, &a, entry).map(Val::Bool),
        BinOp::Add => add(a, b),
        BinOp::Sub => match (a, b) {
            (Val::Int(x), Val::Int(y)) => x.checked_sub(y).map(Val::Int).ok_or(OVERFLOW),
            (Val::Uint(x), Val::Uint(y)) => x.checked_sub(y).map(Val::Uint).ok_or(OVERFLOW),
            (Val::Double(x), Val::Double(y)) => Ok(Val::Double(x - y)),
            (Val::Duration(x), Val::Duration(y)) => {
                x.checked_sub(y).map(Val::Duration).ok_or(OVERFLOW)
            }
            _ => Err(NO_OVERLOAD),
        },
        BinOp::Mul => match (a, b) {
            (Val::Int(x), Val::Int(y)) => x.checked_mul(y).map(Val::Int).ok_or(OVERFLOW),
            (Val::Uint(x), Val::Uint(y)) => x.checked_mul(y).map(Val::Uint).ok_or(OVERFLOW),
            (Val::Double(x), Val::Double(y)) => Ok(Val::Double(x * y)),
            _ => Err(NO_OVERLOAD),
        },
        BinOp::Div | BinOp::Rem => divide(op == BinOp::Rem, a, b),
    }
}

fn add<'a>(a: Val<'a>, b: Val<'a>) -> Res<'a> {
    match (a, b) {
        (Val::Int(x), Val::Int(y)) => x.checked_add(y).map(Val::Int).ok_or(OVERFLOW),
        (Val::Uint(x), Val::Uint(y)) => x.checked_add(y).map(Val::Uint).ok_or(OVERFLOW),
        (Val::Double(x), Val::Double(y)) => Ok(Val::Double(x + y)),
        (Val::Duration(x), Val::Duration(y)) => x.checked_add(y).map(Val::Duration).ok_or(OVERFLOW),
        (Val::Str(x), Val::Str(y)) => Ok(Val::Str(Cow::Owned(format!("{x}{y}")))),
        (Val::List(mut x), Val::List(y)) => {
            x.extend(y);
            Ok(Val::List(x))
        }
        _ => Err(NO_OVERLOAD),
    }
}

fn divide<'a>(remainder: bool, a: Val<'a>, b: Val<'a>) -> Res<'a> {
    let by_zero = EvalError("division by zero");
    match (a, b) {
        (Val::Int(_), Val::Int(0)) | (Val::Uint(_), Val::Uint(0)) => Err(by_zero),
        (Val::Int(x), Val::Int(y)) if remainder => x.checked_rem(y).map(Val::Int).ok_or(OVERFLOW),
        (Val::Int(x), Val::Int(y)) => x.checked_div(y).map(Val::Int).ok_or(OVERFLOW),
        (Val::Uint(x), Val::Uint(y)) if remainder => Ok(Val::Uint(x % y)),
        (Val::Uint(x), Val::Uint(y)) => Ok(Val::Uint(x / y)),
        (Val::Double(x), Val::Double(y)) if !remainder => Ok(Val::Double(x / y)),
        _ => Err(NO_OVERLOAD),
    }
}

/// `needle in haystack`.
fn contains(haystack: &Val<'_>, needle: &Val<'_>, entry: &Entry) -> Result<bool, EvalError> {
    match haystack {
        Val::List(items) => {
            for item in items {
                if equals(item, needle)? {
                    return Ok(true);
                }
            }
            Ok(false)
        }
        Val::Map(entries) => {
            for (k, _) in entries {
                if equals(k, needle)? {
                    return Ok(true);
                }
            }
            Ok(false)
        }
        Val::RequestHeaders | Val::ResponseHeaders => match needle {
            Val::Str(name) => Ok(header(haystack, name, entry).is_some()),
            _ => Ok(false),
        },
        _ => Err(NO_OVERLOAD),
    }
}

/// Numbers of any type as one ordering, for CEL's heterogeneous comparisons.
fn numeric_order(a: &Val<'_>, b: &Val<'_>) -> Option<Option<Ordering>> {
    let order = match (a, b) {
        (Val::Int(x), Val::Int(y)) => Some(x.cmp(y)),
        (Val::Uint(x), Val::Uint(y)) => Some(x.cmp(y)),
        (Val::Int(x), Val::Uint(y)) => Some(match u64::try_from(*x) {
            Ok(x) => x.cmp(y),
            Err(_) => Ordering::Less,
        }),
        (Val::Uint(_), Val::Int(_)) => {
            return numeric_order(b, a).map(|o| o.map(Ordering::reverse));
        }
        _ => {
            let as_double = |v: &Val<'_>| match v {
                Val::Int(n) => Some(*n as f64),
                Val::Uint(n) => Some(*n as f64),
                Val::Double(n) => Some(*n),
                _ => None,
            };
            return Some(as_double(a)?.partial_cmp(&as_double(b)?));
        }
    };
    Some(order)
}

/// The order of two values; `Ok(None)` for NaN; an error for types that do not compare.
fn compare(a: &Val<'_>, b: &Val<'_>) -> Result<Option<Ordering>, EvalError> {
    if let Some(order) = numeric_order(a, b) {
        return Ok(order);
    }
    match (a, b) {
        (Val::Str(x), Val::Str(y)) => Ok(Some(x.cmp(y))),
        (Val::Bool(x), Val::Bool(y)) => Ok(Some(x.cmp(y))),
        (Val::Duration(x), Val::Duration(y)) => Ok(Some(x.cmp(y))),
        _ => Err(NO_OVERLOAD),
    }
}

fn equals(a: &Val<'_>, b: &Val<'_>) -> Result<bool, EvalError> {
    if let Some(order) = numeric_order(a, b) {
        return Ok(order == Some(Ordering::Equal));
    }
    Ok(match (a, b) {
        (Val::Null, Val::Null) => true,
        (Val::Bool(x), Val::Bool(y)) => x == y,
        (Val::Str(x), Val::Str(y)) => x == y,
        (Val::Duration(x), Val::Duration(y)) => x == y,
        (Val::List(x), Val::List(y)) => {
            if x.len() != y.len() {
                return Ok(false);
            }
            for (x, y) in x.iter().zip(y) {
                if !equals(x, y)? {
                    return Ok(false);
                }
            }
            true
        }
        (Val::Map(x), Val::Map(y)) => {
            if x.len() != y.len() {
                return Ok(false);
            }
            for (k, v) in x {
                let Some((_, other)) = y.iter().find(|(k2, _)| equals(k, k2).unwrap_or(false))
                else {
                    return Ok(false);
                };
                if !equals(v, other)? {
                    return Ok(false);
                }
            }
            true
        }
        (Val::RequestHeaders | Val::ResponseHeaders, _)
        | (_, Val::RequestHeaders | Val::ResponseHeaders) => return Err(NO_OVERLOAD),
        _ => false,
    })
}

fn call<'a>(func: Func, args: &'a [Expr], entry: &'a Entry) -> Res<'a> {
    let mut values = args.iter().map(|a| eval(a, entry));
    let first = values.next().ok_or(NO_OVERLOAD)??;
    let second = values.next().transpose()?;
    let text_test = |test: fn(&str, &str) -> bool| -> Res<'a> {
        match (&first, &second) {
            (Val::Str(s), Some(Val::Str(x))) => Ok(Val::Bool(test(s, x))),
            _ => Err(NO_OVERLOAD),
        }
    };
    match func {
        Func::StartsWith => text_test(|s, x| s.starts_with(x)),
        Func::EndsWith => text_test(|s, x| s.ends_with(x)),
        Func::Contains => text_test(|s, x| s.contains(x)),
        Func::Size => {
            let n = match &first {
                Val::Str(s) => s.chars().count(),
                Val::List(items) => items.len(),
                Val::Map(entries) => entries.len(),
                _ => return Err(NO_OVERLOAD),
            };
            i64::try_from(n).map(Val::Int).map_err(|_| OVERFLOW)
        }
        Func::Int => to_int(first),
        Func::Uint => match first {
            Val::Uint(n) => Ok(Val::Uint(n)),
            Val::Int(n) => u64::try_from(n).map(Val::Uint).map_err(|_| OVERFLOW),
            Val::Double(n) if n.is_finite() && n > -1.0 && n < 18_446_744_073_709_551_616.0 => {
                Ok(Val::Uint(n as u64))
            }
            Val::Str(s) => s.parse().map(Val::Uint).map_err(|_| EvalError("bad uint")),
            _ => Err(NO_OVERLOAD),
        },
        Func::Double => match first {
            Val::Double(n) => Ok(Val::Double(n)),
            Val::Int(n) => Ok(Val::Double(n as f64)),
            Val::Uint(n) => Ok(Val::Double(n as f64)),
            Val::Str(s) => s
                .parse()
                .map(Val::Double)
                .map_err(|_| EvalError("bad double")),
            _ => Err(NO_OVERLOAD),
        },
        Func::String => Ok(Val::Str(match first {
            Val::Str(s) => s,
            Val::Int(n) => Cow::Owned(n.to_string()),
            Val::Uint(n) => Cow::Owned(n.to_string()),
            Val::Double(n) => Cow::Owned(n.to_string()),
            Val::Bool(b) => Cow::Borrowed(if b { "true" } else { "false" }),
            Val::Duration(n) => Cow::Owned(format!("{}s", n as f64 / 1e9)),
            _ => return Err(NO_OVERLOAD),
        })),
        Func::Duration => match first {
            Val::Str(s) => parse_duration(&s)
                .map(Val::Duration)
                .ok_or(EvalError("bad duration")),
            Val::Duration(n) => Ok(Val::Duration(n)),
            _ => Err(NO_OVERLOAD),
        },
    }
}

fn to_int(v: Val<'_>) -> Res<'_> {
    match v {
        Val::Int(n) => Ok(Val::Int(n)),
        Val::Uint(n) => i64::try_from(n).map(Val::Int).map_err(|_| OVERFLOW),
        // The range test excludes the ends, which do not convert exactly.
        Val::Double(n)
            if n.is_finite() && n > -9.223_372_036_854_776e18 && n < 9.223_372_036_854_776e18 =>
        {
            Ok(Val::Int(n as i64))
        }
        Val::Str(s) => s.parse().map(Val::Int).map_err(|_| EvalError("bad int")),
        Val::Duration(n) => Ok(Val::Int(n / 1_000_000_000)),
        _ => Err(NO_OVERLOAD),
    }
}

/// Go's duration syntax, as CEL's `duration()`: `1h2m3.5s`, `150ms`, `-2us`, `0`.
pub(super) fn parse_duration(text: &str) -> Option<i64> {
    let (negative, mut rest) = match text.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    if rest == "0" {
        return Some(0);
    }
    if rest.is_empty() {
        return None;
    }
    let mut total: f64 = 0.0;
    while !rest.is_empty() {
        let number_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let number: f64 = rest[..number_end].parse().ok()?;
        rest = &rest[number_end..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_end] {
            "h" => 3.6e12,
            "m" => 6e10,
            "s" => 1e9,
            "ms" => 1e6,
            "us" | "µs" => 1e3,
            "ns" => 1.0,
            _ => return None,
        };
        rest = &rest[unit_end..];
        total += number * scale;
    }
    let nanos = if negative { -total } else { total };
    (nanos.abs() < 9.2e18).then_some(nanos as i64)
}
