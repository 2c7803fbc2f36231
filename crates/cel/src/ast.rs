//! CEL's syntax tree as the parser builds it: literals, identifiers, operators, member
//! selection, indexing, calls (with their receiver, `s.startsWith(x)`), list, map and message
//! literals. Nothing is resolved: `request.headers` is a selection of `headers` on the
//! identifier `request`.

/// A literal.
#[derive(Clone, Debug, PartialEq)]
pub enum Const {
    Null,
    Bool(bool),
    Int(i64),
    Uint(u64),
    Double(f64),
    Str(String),
    /// A `b"..."` literal, its escapes decoded as in a string.
    Bytes(String),
}

/// A binary operator other than `&&` and `||` (which are [`Ast::And`] and [`Ast::Or`], since
/// they absorb errors).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BinOp {
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

#[derive(Clone, Debug, PartialEq)]
pub enum Ast {
    Const(Const),
    /// An identifier (`.name`, the root-scoped form, is the same identifier).
    Ident(String),
    Not(Box<Ast>),
    Neg(Box<Ast>),
    And(Box<Ast>, Box<Ast>),
    Or(Box<Ast>, Box<Ast>),
    Binary(BinOp, Box<Ast>, Box<Ast>),
    /// `cond ? then : otherwise`.
    Cond(Box<Ast>, Box<Ast>, Box<Ast>),
    List(Vec<Ast>),
    Map(Vec<(Ast, Ast)>),
    /// `Type{field: value, ...}`: the type expression and the field initialisers.
    Message(Box<Ast>, Vec<(String, Ast)>),
    Index(Box<Ast>, Box<Ast>),
    /// `target.field`.
    Select(Box<Ast>, String),
    /// `function(args)` or `receiver.function(args)`.
    Call {
        receiver: Option<Box<Ast>>,
        function: String,
        args: Vec<Ast>,
    },
}
