//! lateen-cel's syntax tree to the [`Expr`] lateen-proxy evaluates: selections on Envoy's
//! attribute roots become attributes, calls become the functions lateen-proxy knows (with
//! their arity checked and `matches()` patterns compiled), and what it cannot evaluate (bytes,
//! message literals, other functions and attributes) is refused by name. The tree's height
//! is bounded by the parser, so this recursion is too.

use lateen_cel::{Ast, Const};

use super::CelError;
use super::attributes::Attribute;
use super::expr::{Expr, Func};

fn boxed(e: Expr) -> Box<Expr> {
    Box::new(e)
}

/// `ast` as lateen-proxy evaluates it.
pub(super) fn compile(ast: Ast) -> Result<Expr, CelError> {
    let sub = |ast: Box<Ast>| compile(*ast).map(boxed);
    Ok(match ast {
        Ast::Const(Const::Bytes(_)) => {
            return Err(CelError::Unsupported("bytes literals".to_string()));
        }
        Ast::Const(c) => Expr::Const(c),
        Ast::Ident(name) => Expr::Ident(name),
        Ast::Not(e) => Expr::Not(sub(e)?),
        Ast::Neg(e) => Expr::Neg(sub(e)?),
        Ast::And(a, b) => Expr::And(sub(a)?, sub(b)?),
        Ast::Or(a, b) => Expr::Or(sub(a)?, sub(b)?),
        Ast::Binary(op, a, b) => Expr::Binary(op, sub(a)?, sub(b)?),
        Ast::Cond(c, a, b) => Expr::Cond(sub(c)?, sub(a)?, sub(b)?),
        Ast::List(items) => Expr::List(compile_all(items)?),
        Ast::Map(entries) => Expr::Map(
            entries
                .into_iter()
                .map(|(k, v)| Ok((compile(k)?, compile(v)?)))
                .collect::<Result<_, CelError>>()?,
        ),
        Ast::Message(..) => {
            return Err(CelError::Unsupported("message construction".to_string()));
        }
        Ast::Index(target, index) => Expr::Index(sub(target)?, sub(index)?),
        Ast::Select(target, field) => select(compile(*target)?, field)?,
        Ast::Call {
            receiver: None,
            function,
            args,
        } if function == "has" => has(compile_all(args)?)?,
        Ast::Call {
            receiver,
            function,
            args,
        } => {
            let mut operands = Vec::with_capacity(args.len() + 1);
            if let Some(receiver) = receiver {
                operands.push(compile(*receiver)?);
            }
            for arg in args {
                operands.push(compile(arg)?);
            }
            call(&function, operands)?
        }
    })
}

fn compile_all(items: Vec<Ast>) -> Result<Vec<Expr>, CelError> {
    items.into_iter().map(compile).collect()
}

/// `target.field`: an attribute when `target` is one of Envoy's roots, else a map lookup.
fn select(target: Expr, field: String) -> Result<Expr, CelError> {
    match target {
        Expr::Ident(root) => match Attribute::resolve(&root, &field) {
            Some(attribute) => Ok(Expr::Attr(attribute)),
            None if Attribute::is_root(&root) => {
                Err(CelError::Unsupported(format!("attribute {root}.{field}")))
            }
            None => Err(CelError::Undeclared(root)),
        },
        other => Ok(Expr::Select(boxed(other), field)),
    }
}

/// The `has(x.f)` macro: whether field (or map key) `f` of `x` is present.
fn has(mut args: Vec<Expr>) -> Result<Expr, CelError> {
    let bad = || CelError::Syntax("has() takes one field selection, as in has(a.b)".into());
    if args.len() != 1 {
        return Err(bad());
    }
    match args.remove(0) {
        Expr::Select(target, field) => Ok(Expr::Has(target, field)),
        // `has(request.headers)`, `has(response.code)`: an attribute Envoy may lack.
        Expr::Attr(attribute) => Ok(Expr::Has(boxed(Expr::Attr(attribute)), String::new())),
        _ => Err(bad()),
    }
}

fn call(name: &str, mut args: Vec<Expr>) -> Result<Expr, CelError> {
    let (func, arity) = match name {
        "size" => (Func::Size, 1),
        "int" => (Func::Int, 1),
        "uint" => (Func::Uint, 1),
        "double" => (Func::Double, 1),
        "string" => (Func::String, 1),
        "duration" => (Func::Duration, 1),
        "startsWith" => (Func::StartsWith, 2),
        "endsWith" => (Func::EndsWith, 2),
        "contains" => (Func::Contains, 2),
        "matches" => {
            if args.len() != 2 {
                return Err(CelError::Arity("matches".into(), 2));
            }
            let Expr::Const(Const::Str(pattern)) = args.remove(1) else {
                return Err(CelError::Unsupported(
                    "matches() with a pattern that is not a string literal".into(),
                ));
            };
            let regex = regex::RegexBuilder::new(&pattern)
                .size_limit(1 << 20)
                .build()
                .map_err(|e| CelError::Regex(pattern.clone(), e.to_string()))?;
            return Ok(Expr::Matches(boxed(args.remove(0)), Box::new(regex)));
        }
        _ => return Err(CelError::Unsupported(format!("function {name}()"))),
    };
    if args.len() != arity {
        return Err(CelError::Arity(name.to_string(), arity));
    }
    Ok(Expr::Call(func, args))
}
