//! CEL's tokens (cel-spec's lexical grammar): numbers with their type (`1`, `1u`, `0x1F`,
//! `1.5`, `1e3`), strings with escapes (single, double, triple quotes, `r` raw, `b` bytes),
//! identifiers and operators.

use crate::ParseError;

#[derive(Clone, Debug, PartialEq)]
pub enum Token {
    Int(i64),
    Uint(u64),
    Double(f64),
    Str(String),
    /// A bytes literal's content, its escapes decoded as in a string.
    Bytes(String),
    Bool(bool),
    Null,
    Ident(String),
    Op(&'static str),
}

impl Token {
    /// How an error message names the token.
    pub fn describe(&self) -> String {
        match self {
            Token::Ident(name) => format!("identifier {name:?}"),
            Token::Op(op) => format!("{op:?}"),
            Token::Str(_) | Token::Bytes(_) => "string literal".to_string(),
            _ => "literal".to_string(),
        }
    }
}

/// Operators and punctuation, longest first so that `<=` wins over `<`.
const OPERATORS: &[&str] = &[
    "==", "!=", "<=", ">=", "&&", "||", "<", ">", "!", "+", "-", "*", "/", "%", "?", ":", ".", ",",
    "(", ")", "[", "]", "{", "}",
];

/// The tokens of `text`, or what is not a token and where.
pub fn lex(text: &str) -> Result<Vec<Token>, ParseError> {
    let chars: Vec<char> = text.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c.is_ascii_digit() {
            let (token, end) = number(&chars, i)?;
            tokens.push(token);
            i = end;
        } else if c == '"' || c == '\'' {
            let (s, end) = string(&chars, i, false)?;
            tokens.push(Token::Str(s));
            i = end;
        } else if c.is_alphabetic() || c == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            let quoted = i < chars.len() && (chars[i] == '"' || chars[i] == '\'');
            match word.as_str() {
                "r" | "R" if quoted => {
                    let (s, end) = string(&chars, i, true)?;
                    tokens.push(Token::Str(s));
                    i = end;
                }
                "b" | "B" if quoted => {
                    let (s, end) = string(&chars, i, false)?;
                    tokens.push(Token::Bytes(s));
                    i = end;
                }
                "rb" | "br" | "RB" | "BR" | "rB" | "Rb" | "bR" | "Br" if quoted => {
                    let (s, end) = string(&chars, i, true)?;
                    tokens.push(Token::Bytes(s));
                    i = end;
                }
                "true" => tokens.push(Token::Bool(true)),
                "false" => tokens.push(Token::Bool(false)),
                "null" => tokens.push(Token::Null),
                _ => tokens.push(Token::Ident(word)),
            }
        } else {
            let rest: String = chars[i..chars.len().min(i + 2)].iter().collect();
            let Some(op) = OPERATORS.iter().find(|op| rest.starts_with(**op)) else {
                return Err(ParseError::Syntax(format!(
                    "unexpected character {c:?} at column {}",
                    i + 1
                )));
            };
            tokens.push(Token::Op(op));
            i += op.len();
        }
    }
    Ok(tokens)
}

/// A number starting at `start`: decimal or hex integers, `u` for unsigned, or a double.
fn number(chars: &[char], start: usize) -> Result<(Token, usize), ParseError> {
    let mut i = start;
    let bad = |s: &str| ParseError::Syntax(format!("invalid number {s:?} at column {}", start + 1));
    if chars[i] == '0' && matches!(chars.get(i + 1), Some('x' | 'X')) {
        i += 2;
        let digits_start = i;
        while i < chars.len() && chars[i].is_ascii_hexdigit() {
            i += 1;
        }
        let digits: String = chars[digits_start..i].iter().collect();
        return int_token(chars, i, &digits, 16).ok_or_else(|| bad(&digits));
    }
    while i < chars.len() && chars[i].is_ascii_digit() {
        i += 1;
    }
    let mut is_double = false;
    // `1.5` is a double; `1.foo` would be a member access, which CEL has no use for on ints.
    if chars.get(i) == Some(&'.') && chars.get(i + 1).is_some_and(char::is_ascii_digit) {
        is_double = true;
        i += 1;
        while i < chars.len() && chars[i].is_ascii_digit() {
            i += 1;
        }
    }
    if matches!(chars.get(i), Some('e' | 'E')) {
        let mut j = i + 1;
        if matches!(chars.get(j), Some('+' | '-')) {
            j += 1;
        }
        if chars.get(j).is_some_and(char::is_ascii_digit) {
            is_double = true;
            i = j;
            while i < chars.len() && chars[i].is_ascii_digit() {
                i += 1;
            }
        }
    }
    let text: String = chars[start..i].iter().collect();
    if is_double {
        let value: f64 = text.parse().map_err(|_| bad(&text))?;
        return Ok((Token::Double(value), i));
    }
    int_token(chars, i, &text, 10).ok_or_else(|| bad(&text))
}

fn int_token(chars: &[char], end: usize, digits: &str, radix: u32) -> Option<(Token, usize)> {
    if matches!(chars.get(end), Some('u' | 'U')) {
        let value = u64::from_str_radix(digits, radix).ok()?;
        return Some((Token::Uint(value), end + 1));
    }
    let value = i64::from_str_radix(digits, radix).ok()?;
    Some((Token::Int(value), end))
}

/// A quoted string (single, double or triple quotes) starting at `start`; returns its value
/// and the index after its closing quote.
fn string(chars: &[char], start: usize, raw: bool) -> Result<(String, usize), ParseError> {
    let quote = chars[start];
    let triple = chars.get(start + 1) == Some(&quote) && chars.get(start + 2) == Some(&quote);
    let mut i = start + if triple { 3 } else { 1 };
    let mut out = String::new();
    while i < chars.len() {
        let c = chars[i];
        if c == '\\' && !raw {
            let (decoded, next) = escape(chars, i)?;
            out.push(decoded);
            i = next;
            continue;
        }
        if c == quote {
            if !triple {
                return Ok((out, i + 1));
            }
            if chars.get(i + 1) == Some(&quote) && chars.get(i + 2) == Some(&quote) {
                return Ok((out, i + 3));
            }
        } else if c == '\n' && !triple {
            break;
        }
        out.push(c);
        i += 1;
    }
    Err(ParseError::Syntax(format!(
        "unterminated string literal opened at column {}",
        start + 1
    )))
}

/// The escape sequence at `at` (a backslash): its character and the index after it.
fn escape(chars: &[char], at: usize) -> Result<(char, usize), ParseError> {
    // Names the sequence as far as it was read: the backslash up to `end` (exclusive).
    let bad = |end: usize| {
        let found: String = chars[at + 1..chars.len().min(end)].iter().collect();
        ParseError::Syntax(format!(
            "invalid escape sequence \\{} at column {}",
            found.escape_debug(),
            at + 1
        ))
    };
    let Some(&c) = chars.get(at + 1) else {
        return Err(ParseError::Syntax(format!(
            "unterminated string literal: the text ends in a backslash at column {}",
            at + 1
        )));
    };
    let simple = match c {
        'a' => Some('\u{7}'),
        'b' => Some('\u{8}'),
        'f' => Some('\u{c}'),
        'n' => Some('\n'),
        'r' => Some('\r'),
        't' => Some('\t'),
        'v' => Some('\u{b}'),
        '\\' | '\'' | '"' | '`' | '?' => Some(c),
        _ => None,
    };
    if let Some(s) = simple {
        return Ok((s, at + 2));
    }
    let (len, radix, skip) = match c {
        'x' | 'X' => (2, 16, 2),
        'u' => (4, 16, 2),
        'U' => (8, 16, 2),
        '0'..='3' => (3, 8, 1),
        _ => return Err(bad(at + 2)),
    };
    let digits_start = at + skip;
    let end = digits_start + len;
    let digits: String = chars
        .get(digits_start..end)
        .ok_or_else(|| bad(end))?
        .iter()
        .collect();
    let code = u32::from_str_radix(&digits, radix).map_err(|_| bad(end))?;
    let decoded = char::from_u32(code).ok_or_else(|| bad(end))?;
    Ok((decoded, digits_start + len))
}
