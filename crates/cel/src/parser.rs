//! CEL's grammar (cel-spec) to an [`Ast`], by recursive descent with one function per
//! precedence level: `?:`, `||`, `&&`, relations (and `in`), `+ -`, `* / %`, unary `! -`,
//! member suffixes (`.field`, `.method(args)`, `[index]`, `Type{field: value}`) and
//! primaries. Each subtree's height is tracked so that both deep nesting and tall trees (a
//! left-deep chain of 150 `||`) are refused with [`ParseError::TooDeep`].

use crate::ast::{Ast, BinOp, Const};
use crate::lexer::{Token, lex};
use crate::{MAX_DEPTH, ParseError};

/// A parsed subtree and its height.
type Parsed = Result<(Ast, usize), ParseError>;

/// Parses `text` as one CEL expression.
pub fn parse(text: &str) -> Result<Ast, ParseError> {
    let mut parser = Parser {
        tokens: lex(text)?,
        pos: 0,
        nesting: 0,
    };
    let (ast, _) = parser.expr()?;
    match parser.peek() {
        None => Ok(ast),
        Some(t) => Err(syntax(format!("unexpected {}", t.describe()))),
    }
}

struct Parser {
    tokens: Vec<Token>,
    pos: usize,
    nesting: usize,
}

fn syntax(reason: impl Into<String>) -> ParseError {
    ParseError::Syntax(reason.into())
}

fn height(h: usize) -> Result<usize, ParseError> {
    if h > MAX_DEPTH {
        return Err(ParseError::TooDeep(MAX_DEPTH));
    }
    Ok(h)
}

fn boxed(ast: Ast) -> Box<Ast> {
    Box::new(ast)
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

    fn expect(&mut self, op: &str) -> Result<(), ParseError> {
        if self.eat(op) {
            return Ok(());
        }
        Err(syntax(match self.peek() {
            Some(t) => format!("expected {op:?}, found {}", t.describe()),
            None => format!("expected {op:?} at the end of the expression"),
        }))
    }

    /// An identifier token, consumed: its name.
    fn identifier(&mut self) -> Option<String> {
        match self.peek() {
            Some(Token::Ident(name)) => {
                let name = name.clone();
                self.pos += 1;
                Some(name)
            }
            _ => None,
        }
    }

    /// `cond ? a : b`, the lowest precedence; every bracketed expression starts here, so the
    /// nesting is counted here.
    fn expr(&mut self) -> Parsed {
        self.nesting += 1;
        if self.nesting > MAX_DEPTH {
            return Err(ParseError::TooDeep(MAX_DEPTH));
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
        Ok((Ast::Cond(boxed(cond), boxed(then), boxed(otherwise)), h))
    }

    fn or(&mut self) -> Parsed {
        self.logical("||", Parser::and, Ast::Or)
    }

    fn and(&mut self) -> Parsed {
        self.logical("&&", Parser::relation, Ast::And)
    }

    /// A left-associative chain of `op` (`||` or `&&`) over `next`, each link made by `node`.
    fn logical(
        &mut self,
        op: &str,
        next: fn(&mut Parser) -> Parsed,
        node: fn(Box<Ast>, Box<Ast>) -> Ast,
    ) -> Parsed {
        let (mut lhs, mut h) = next(self)?;
        while self.eat(op) {
            let (rhs, hr) = next(self)?;
            h = height(h.max(hr) + 1)?;
            lhs = node(boxed(lhs), boxed(rhs));
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
            lhs = Ast::Binary(op, boxed(lhs), boxed(rhs));
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
            return Ok((Ast::Not(boxed(e)), height(h + 1)?));
        }
        if self.eat("-") {
            // `-1` is a literal, not the negation of one (it costs no level).
            if let Some(Token::Int(_) | Token::Double(_)) = self.peek() {
                let (e, h) = self.member()?;
                return match e {
                    Ast::Const(Const::Int(n)) => Ok((Ast::Const(Const::Int(-n)), h)),
                    Ast::Const(Const::Double(n)) => Ok((Ast::Const(Const::Double(-n)), h)),
                    other => Ok((Ast::Neg(boxed(other)), height(h + 1)?)),
                };
            }
            let (e, h) = self.unary()?;
            return Ok((Ast::Neg(boxed(e)), height(h + 1)?));
        }
        self.member()
    }

    /// An operand and its `.field`, `.method(args)`, `[index]` and `{field: value}` suffixes.
    fn member(&mut self) -> Parsed {
        let (mut e, mut h) = self.primary()?;
        loop {
            if self.eat(".") {
                let Some(field) = self.identifier() else {
                    return Err(syntax(match self.peek() {
                        Some(t) => format!("expected a field name, found {}", t.describe()),
                        None => "expected a field name after \".\"".to_string(),
                    }));
                };
                if self.eat("(") {
                    let (args, ha) = self.list(")")?;
                    h = height(h.max(ha) + 1)?;
                    e = Ast::Call {
                        receiver: Some(boxed(e)),
                        function: field,
                        args,
                    };
                } else {
                    h = height(h + 1)?;
                    e = Ast::Select(boxed(e), field);
                }
            } else if self.eat("[") {
                let (index, hi) = self.expr()?;
                self.expect("]")?;
                h = height(h.max(hi) + 1)?;
                e = Ast::Index(boxed(e), boxed(index));
            } else if self.eat("{") {
                let (fields, hf) = self.field_inits()?;
                h = height(h.max(hf) + 1)?;
                e = Ast::Message(boxed(e), fields);
            } else {
                return Ok((e, h));
            }
        }
    }

    fn primary(&mut self) -> Parsed {
        let Some(token) = self.peek().cloned() else {
            return Err(syntax("unexpected end of the expression"));
        };
        self.pos += 1;
        let constant = |c| Ok((Ast::Const(c), 1));
        match token {
            Token::Null => constant(Const::Null),
            Token::Bool(b) => constant(Const::Bool(b)),
            Token::Int(n) => constant(Const::Int(n)),
            Token::Uint(n) => constant(Const::Uint(n)),
            Token::Double(n) => constant(Const::Double(n)),
            Token::Str(s) => constant(Const::Str(s)),
            Token::Bytes(s) => constant(Const::Bytes(s)),
            Token::Ident(word) if word == "in" => Err(syntax("unexpected keyword \"in\"")),
            Token::Ident(function) if self.eat("(") => {
                let (args, h) = self.list(")")?;
                let call = Ast::Call {
                    receiver: None,
                    function,
                    args,
                };
                Ok((call, height(h + 1)?))
            }
            Token::Ident(word) => Ok((Ast::Ident(word), 1)),
            Token::Op(".") => match self.identifier() {
                Some(word) => Ok((Ast::Ident(word), 1)),
                None => Err(syntax("expected an identifier after a leading \".\"")),
            },
            Token::Op("(") => {
                let inner = self.expr()?;
                self.expect(")")?;
                Ok(inner)
            }
            Token::Op("[") => {
                let (items, h) = self.list("]")?;
                Ok((Ast::List(items), height(h + 1)?))
            }
            Token::Op("{") => self.map_entries(),
            Token::Op(op) => Err(syntax(format!("unexpected {op:?}"))),
        }
    }

    /// Comma-separated expressions up to `close` (a trailing comma is allowed, as in CEL),
    /// and the height of the highest.
    fn list(&mut self, close: &str) -> Result<(Vec<Ast>, usize), ParseError> {
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
        Ok((Ast::Map(entries), height(h + 1)?))
    }

    /// A message literal's `field: value` initialisers up to `}`, and the highest value.
    fn field_inits(&mut self) -> Result<(Vec<(String, Ast)>, usize), ParseError> {
        let mut fields = Vec::new();
        let mut h = 0;
        while !self.eat("}") {
            let Some(field) = self.identifier() else {
                return Err(syntax(match self.peek() {
                    Some(t) => format!("expected a field name, found {}", t.describe()),
                    None => "expected a field name at the end of the expression".to_string(),
                }));
            };
            self.expect(":")?;
            let (value, hv) = self.expr()?;
            fields.push((field, value));
            h = h.max(hv);
            if !self.eat(",") {
                self.expect("}")?;
                break;
            }
        }
        Ok((fields, h))
    }
}
