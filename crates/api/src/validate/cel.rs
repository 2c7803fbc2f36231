//! A syntax check of CEL expressions (the grammar of cel-spec, without evaluating anything), for
//! Telemetry's `accessLogging[].filter.expression`: Istio refuses what cel-go cannot parse.

/// Checks that `text` parses as one CEL expression; the error says what was found where.
pub(crate) fn check_syntax(text: &str) -> Result<(), String> {
    let tokens = lex(text)?;
    let mut parser = Parser { tokens, pos: 0 };
    parser.expr(0)?;
    match parser.peek() {
        None => Ok(()),
        Some(t) => Err(format!("unexpected {}", t.describe())),
    }
}

#[derive(Clone, Debug, PartialEq)]
enum Token {
    Ident(String),
    Literal,
    Op(&'static str),
}

impl Token {
    fn describe(&self) -> String {
        match self {
            Token::Ident(name) => format!("identifier {name:?}"),
            Token::Literal => "literal".to_string(),
            Token::Op(op) => format!("{op:?}"),
        }
    }
}

/// Operators and punctuation, longest first so that `<=` wins over `<`.
const OPERATORS: &[&str] = &[
    "==", "!=", "<=", ">=", "&&", "||", "<", ">", "!", "+", "-", "*", "/", "%", "?", ":", ".", ",",
    "(", ")", "[", "]", "{", "}",
];

/// Nesting deeper than this is refused rather than risking the stack on hostile input.
const MAX_DEPTH: usize = 100;

fn lex(text: &str) -> Result<Vec<Token>, String> {
    let chars: Vec<char> = text.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c.is_ascii_digit() {
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '.') {
                // `1.5`, `0x1F`, `3u`, `1e3`; a `.` followed by a letter is a member access.
                if chars[i] == '.' && !chars.get(i + 1).is_some_and(char::is_ascii_digit) {
                    break;
                }
                i += 1;
            }
            tokens.push(Token::Literal);
        } else if c == '"' || c == '\'' {
            i = skip_string(&chars, i)?;
            tokens.push(Token::Literal);
        } else if c.is_alphabetic() || c == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            // String prefixes: r"raw", b"bytes", rb"..." / br"...".
            let prefix = matches!(word.to_ascii_lowercase().as_str(), "r" | "b" | "rb" | "br");
            if prefix && i < chars.len() && (chars[i] == '"' || chars[i] == '\'') {
                i = skip_string(&chars, i)?;
                tokens.push(Token::Literal);
            } else if matches!(word.as_str(), "true" | "false" | "null") {
                tokens.push(Token::Literal);
            } else {
                tokens.push(Token::Ident(word));
            }
        } else {
            let rest: String = chars[i..chars.len().min(i + 2)].iter().collect();
            let Some(op) = OPERATORS.iter().find(|op| rest.starts_with(**op)) else {
                return Err(format!("unexpected character {c:?}"));
            };
            tokens.push(Token::Op(op));
            i += op.chars().count();
        }
    }
    Ok(tokens)
}

/// Skips a quoted string (single, double or triple quotes) starting at `start`; returns the
/// index after its closing quote.
fn skip_string(chars: &[char], start: usize) -> Result<usize, String> {
    let quote = chars[start];
    let triple = chars.get(start + 1) == Some(&quote) && chars.get(start + 2) == Some(&quote);
    let mut i = start + if triple { 3 } else { 1 };
    while i < chars.len() {
        let c = chars[i];
        if c == '\\' {
            i += 2;
            continue;
        }
        if c == quote {
            if !triple {
                return Ok(i + 1);
            }
            if chars.get(i + 1) == Some(&quote) && chars.get(i + 2) == Some(&quote) {
                return Ok(i + 3);
            }
        } else if c == '\n' && !triple {
            break;
        }
        i += 1;
    }
    Err("unterminated string literal".to_string())
}

struct Parser {
    tokens: Vec<Token>,
    pos: usize,
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

    fn expect(&mut self, op: &str) -> Result<(), String> {
        if self.eat(op) {
            return Ok(());
        }
        Err(match self.peek() {
            Some(t) => format!("expected {op:?}, found {}", t.describe()),
            None => format!("expected {op:?} at the end of the expression"),
        })
    }

    /// `cond ? a : b` over a chain of binary operators.
    fn expr(&mut self, depth: usize) -> Result<(), String> {
        if depth > MAX_DEPTH {
            return Err("expression nested too deeply".to_string());
        }
        self.binary(depth)?;
        if self.eat("?") {
            self.binary(depth)?;
            self.expect(":")?;
            self.expr(depth + 1)?;
        }
        Ok(())
    }

    /// Binary operators of every precedence: the grammar's levels only decide the tree's shape,
    /// not whether the text parses, so one loop checks operand/operator alternation.
    fn binary(&mut self, depth: usize) -> Result<(), String> {
        self.unary(depth)?;
        loop {
            let is_binary = match self.peek() {
                Some(Token::Op(op)) => matches!(
                    *op,
                    "==" | "!="
                        | "<"
                        | "<="
                        | ">"
                        | ">="
                        | "&&"
                        | "||"
                        | "+"
                        | "-"
                        | "*"
                        | "/"
                        | "%"
                ),
                Some(Token::Ident(word)) => word == "in",
                _ => false,
            };
            if !is_binary {
                return Ok(());
            }
            self.pos += 1;
            self.unary(depth)?;
        }
    }

    fn unary(&mut self, depth: usize) -> Result<(), String> {
        while self.eat("!") || self.eat("-") {}
        self.primary(depth)?;
        self.member_suffixes(depth)
    }

    fn primary(&mut self, depth: usize) -> Result<(), String> {
        let Some(token) = self.peek().cloned() else {
            return Err("unexpected end of the expression".to_string());
        };
        self.pos += 1;
        match token {
            Token::Literal => Ok(()),
            Token::Ident(word) if word == "in" => Err("unexpected keyword \"in\"".to_string()),
            Token::Ident(_) => {
                if self.eat("(") {
                    self.list(")", depth)?;
                }
                Ok(())
            }
            Token::Op(".") => match self.peek() {
                Some(Token::Ident(_)) => self.primary(depth),
                _ => Err("expected an identifier after a leading \".\"".to_string()),
            },
            Token::Op("(") => {
                self.expr(depth + 1)?;
                self.expect(")")
            }
            Token::Op("[") => self.list("]", depth),
            Token::Op("{") => self.map_entries(depth),
            Token::Op(op) => Err(format!("unexpected {op:?}")),
        }
    }

    /// `.field`, `.method(args)`, `[index]` and `Message{field: value}` after an operand.
    fn member_suffixes(&mut self, depth: usize) -> Result<(), String> {
        loop {
            if self.eat(".") {
                match self.peek() {
                    Some(Token::Ident(_)) => self.pos += 1,
                    Some(t) => {
                        return Err(format!("expected a field name, found {}", t.describe()));
                    }
                    None => return Err("expected a field name after \".\"".to_string()),
                }
                if self.eat("(") {
                    self.list(")", depth)?;
                }
            } else if self.eat("[") {
                self.expr(depth + 1)?;
                self.expect("]")?;
            } else if self.eat("{") {
                self.map_entries(depth)?;
            } else {
                return Ok(());
            }
        }
    }

    /// Comma-separated expressions up to `close` (a trailing comma is allowed, as in CEL).
    fn list(&mut self, close: &str, depth: usize) -> Result<(), String> {
        while !self.eat(close) {
            self.expr(depth + 1)?;
            if !self.eat(",") {
                return self.expect(close);
            }
        }
        Ok(())
    }

    /// `key: value` pairs up to `}`.
    fn map_entries(&mut self, depth: usize) -> Result<(), String> {
        while !self.eat("}") {
            self.expr(depth + 1)?;
            self.expect(":")?;
            self.expr(depth + 1)?;
            if !self.eat(",") {
                return self.expect("}");
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::check_syntax;

    #[test]
    fn accepts_istio_style_filters() {
        for ok in [
            "true",
            "response.code >= 400",
            "response.code >= 400 || request.headers['x-debug'] == 'on'",
            "!(request.url_path.startsWith('/health'))",
            "xds.cluster_name in ['a', 'b'] ? true : false",
            "size(request.headers) > 2u && -1 < 0.5",
            "connection.mtls && {'a': 1}['a'] == 1",
        ] {
            assert_eq!(check_syntax(ok), Ok(()), "{ok}");
        }
    }

    #[test]
    fn refuses_broken_ones() {
        for bad in [
            "",
            "response.code >=",
            "(a",
            "a b",
            "'open",
            "a ? b",
            "a.",
            "a # b",
            "in",
        ] {
            assert!(check_syntax(bad).is_err(), "{bad}");
        }
    }
}
