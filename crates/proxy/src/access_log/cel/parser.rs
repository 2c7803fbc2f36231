//! CEL's grammar (cel-spec) to an [`Expr`] tree, with Envoy's attributes (`request.headers`,
//! `response.code`, ...) and the functions lateen-proxy evaluates resolved here, so that what
//! it cannot evaluate is refused with the configuration rather than met per request.

use regex::Regex;

use super::CelError;
use super::attributes::Attribute;
use super::lexer::Token;

/// Deeper trees (and deeper nesting of brackets) than this are refused: evaluation recurses
/// once per level, and hostile configuration must not reach the stack's end.
pub(super) const MAX_DEPTH: usize = 100;

/// A literal of the expression.
#[derive(Clone, Debug, PartialEq)]
pub(super) enum Const {
    Null,
    Bool(bool),
    Int(i64),
    Uint(u64),
    Double(f64),
    Str(String),
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) enum BinOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    In,
    Add,
    Sub,
    Mul,
    Div,
    Rem,
}

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
    /// A bare identifier, only while parsing: it must become an attribute.
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

/// A parsed subtree and its height.
type Parsed = Result<(Expr, usize), CelError>;

pub(super) fn parse(tokens: Vec<Token>) -> Result<Expr, CelError> {
    let mut parser = Parser {
        tokens,
        pos: 0,
        nesting: 0,
    };
    let (expr, _) = parser.expr()?;
    match parser.peek() {
        None => Ok(expr),
        Some(t) => Err(CelError::Syntax(format!("unexpected {}", t.describe()))),
    }
}

struct Parser {
    tokens: Vec<Token>,
    pos: usize,
    nesting: usize,
}

fn height(h: usize) -> Result<usize, CelError> {
    if h > MAX_DEPTH {
        return Err(CelError::TooDeep(MAX_DEPTH));
    }
    Ok(h)
}

fn boxed(e: Expr) -> Box<Expr> {
    Box::new(e)
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.pos)
    }

    fn eat(&mut self, op: &str) -> bool {
        if matches!(self.peek(), Some(Token::Op(o)) if *o == op) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn expect(&mut self, op: &str) -> Result<(), CelError> {
        if self.eat(op) {
            return Ok(());
        }
        Err(CelError::Syntax(match self.peek() {
            Some(t) => format!("expected {op:?}, found {}", t.describe()),
            None => format!("expected {op:?} at the end of the expression"),
        }))
    }

    /// `cond ? a : b`, the lowest precedence.
    fn expr(&mut self) -> Parsed {
        self.nesting += 1;
        if self.nesting > MAX_DEPTH {
            return Err(CelError::TooDeep(MAX_DEPTH));
        }
        let result = self.conditional();
        self.nesting -= 1;
        result
    }

    fn conditional(&mut self) -> Parsed {
        let (cond, hc) = self.or()?;
        if !self.eat("?") {
            return Ok((cond, hc));
        }
        let (then, ht) = self.or()?;
        self.expect(":")?;
        let (otherwise, ho) = self.expr()?;
        let h = height(hc.max(ht).max(ho) + 1)?;
        Ok((Expr::Cond(boxed(cond), boxed(then), boxed(otherwise)), h))
    }

    fn or(&mut self) -> Parsed {
        let (mut lhs, mut h) = self.and()?;
        while self.eat("||") {
            let (rhs, hr) = self.and()?;
            h = height(h.max(hr) + 1)?;
            lhs = Expr::Or(boxed(lhs), boxed(rhs));
        }
        Ok((lhs, h))
    }

    fn and(&mut self) -> Parsed {
        let (mut lhs, mut h) = self.relation()?;
        while self.eat("&&") {
            let (rhs, hr) = self.relation()?;
            h = height(h.max(hr) + 1)?;
            lhs = Expr::And(boxed(lhs), boxed(rhs));
        }
        Ok((lhs, h))
    }

    /// Left-associative binary operators of one precedence level.
    fn binary_level(&mut self, ops: &[(&str, BinOp)], next: fn(&mut Parser) -> Parsed) -> Parsed {
        let (mut lhs, mut h) = next(self)?;
        loop {
            let op = match self.peek() {
                Some(Token::Op(o)) => ops.iter().find(|(text, _)| text == o).map(|(_, op)| *op),
                Some(Token::Ident(word)) if word == "in" => ops
                    .iter()
                    .find(|(text, _)| *text == "in")
                    .map(|(_, op)| *op),
                _ => None,
            };
            let Some(op) = op else {
                return Ok((lhs, h));
            };
            self.pos += 1;
            let (rhs, hr) = next(self)?;
            h = height(h.max(hr) + 1)?;
            lhs = Expr::Binary(op, boxed(lhs), boxed(rhs));
        }
    }

    fn relation(&mut self) -> Parsed {
        self.binary_level(
            &[
                ("==", BinOp::Eq),
                ("!=", BinOp::Ne),
                ("<", BinOp::Lt),
                ("<=", BinOp::Le),
                (">", BinOp::Gt),
                (">=", BinOp::Ge),
                ("in", BinOp::In),
            ],
            Parser::addition,
        )
    }

    fn addition(&mut self) -> Parsed {
        self.binary_level(
            &[("+", BinOp::Add), ("-", BinOp::Sub)],
            Parser::multiplication,
        )
    }

    fn multiplication(&mut self) -> Parsed {
        self.binary_level(
            &[("*", BinOp::Mul), ("/", BinOp::Div), ("%", BinOp::Rem)],
            Parser::unary,
        )
    }

    fn unary(&mut self) -> Parsed {
        if self.eat("!") {
            let (e, h) = self.unary()?;
            return Ok((Expr::Not(boxed(e)), height(h + 1)?));
        }
        if self.eat("-") {
            // `-9223372036854775808` is a literal, not the negation of one out of range.
            if let Some(Token::Int(_) | Token::Double(_)) = self.peek() {
                let (e, h) = self.member()?;
                return match e {
                    Expr::Const(Const::Int(n)) => Ok((Expr::Const(Const::Int(-n)), h)),
                    Expr::Const(Const::Double(n)) => Ok((Expr::Const(Const::Double(-n)), h)),
                    other => Ok((Expr::Neg(boxed(other)), height(h + 1)?)),
                };
            }
            let (e, h) = self.unary()?;
            return Ok((Expr::Neg(boxed(e)), height(h + 1)?));
        }
        self.member()
    }

    /// An operand and its `.field`, `.method(args)` and `[index]` suffixes.
    fn member(&mut self) -> Parsed {
        let (mut e, mut h) = self.primary()?;
        loop {
            if self.eat(".") {
                let field = match self.peek().cloned() {
                    Some(Token::Ident(name)) => name,
                    Some(t) => {
                        return Err(CelError::Syntax(format!(
                            "expected a field name, found {}",
                            t.describe()
                        )));
                    }
                    None => {
                        return Err(CelError::Syntax("expected a field name after \".\"".into()));
                    }
                };
                self.pos += 1;
                if self.eat("(") {
                    let (mut args, ha) = self.list(")")?;
                    args.insert(0, e);
                    h = height(h.max(ha) + 1)?;
                    e = call(&field, args)?;
                } else {
                    h = height(h + 1)?;
                    e = select(e, field)?;
                }
            } else if self.eat("[") {
                let (index, hi) = self.expr()?;
                self.expect("]")?;
                h = height(h.max(hi) + 1)?;
                e = Expr::Index(boxed(e), boxed(index));
            } else if matches!(self.peek(), Some(Token::Op("{"))) {
                return Err(CelError::Unsupported("message construction".into()));
            } else {
                return Ok((e, h));
            }
        }
    }

    fn primary(&mut self) -> Parsed {
        let Some(token) = self.peek().cloned() else {
            return Err(CelError::Syntax("unexpected end of the expression".into()));
        };
        self.pos += 1;
        let constant = |c| Ok((Expr::Const(c), 1));
        match token {
            Token::Null => constant(Const::Null),
            Token::Bool(b) => constant(Const::Bool(b)),
            Token::Int(n) => constant(Const::Int(n)),
            Token::Uint(n) => constant(Const::Uint(n)),
            Token::Double(n) => constant(Const::Double(n)),
            Token::Str(s) => constant(Const::Str(s)),
            Token::Ident(word) if word == "in" => {
                Err(CelError::Syntax("unexpected keyword \"in\"".into()))
            }
            Token::Ident(word) => {
                if self.eat("(") {
                    let (args, h) = self.list(")")?;
                    if word == "has" {
                        return has(args).map(|e| (e, h + 1));
                    }
                    return Ok((call(&word, args)?, height(h + 1)?));
                }
                Ok((Expr::Ident(word), 1))
            }
            Token::Op(".") => match self.peek().cloned() {
                Some(Token::Ident(word)) => {
                    self.pos += 1;
                    Ok((Expr::Ident(word), 1))
                }
                _ => Err(CelError::Syntax(
                    "expected an identifier after a leading \".\"".into(),
                )),
            },
            Token::Op("(") => {
                let inner = self.expr()?;
                self.expect(")")?;
                Ok(inner)
            }
            Token::Op("[") => {
                let (items, h) = self.list("]")?;
                Ok((Expr::List(items), height(h + 1)?))
            }
            Token::Op("{") => self.map_entries(),
            Token::Op(op) => Err(CelError::Syntax(format!("unexpected {op:?}"))),
        }
    }

    /// Comma-separated expressions up to `close` (a trailing comma is allowed, as in CEL),
    /// and the height of the highest.
    fn list(&mut self, close: &str) -> Result<(Vec<Expr>, usize), CelError> {
        let mut items = Vec::new();
        let mut h = 0;
        while !self.eat(close) {
            let (item, hi) = self.expr()?;
            items.push(item);
            h = h.max(hi);
            if !self.eat(",") {
                self.expect(close)?;
                break;
            }
        }
        Ok((items, h))
    }

    /// `key: value` pairs up to `}`.
    fn map_entries(&mut self) -> Parsed {
        let mut entries = Vec::new();
        let mut h = 0;
        while !self.eat("}") {
            let (key, hk) = self.expr()?;
            self.expect(":")?;
            let (value, hv) = self.expr()?;
            entries.push((key, value));
            h = h.max(hk).max(hv);
            if !self.eat(",") {
                self.expect("}")?;
                break;
            }
        }
        Ok((Expr::Map(entries), height(h + 1)?))
    }
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
