//! The grammar against expressions Istio users write, broken ones, the tree's shape and its
//! limits.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

use crate::{Ast, BinOp, Const, MAX_DEPTH, ParseError, parse};

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
        "google.protobuf.Duration{seconds: 5} == duration('5s')",
        "b'\\xff' == b\"\\xff\" && r'\\d' != '''x''' && .request.path == 1e3",
        "[1, 2,].exists(x, x > 0x1F)",
    ] {
        assert!(parse(ok).is_ok(), "{ok}: {:?}", parse(ok));
    }
}

#[test]
fn refuses_broken_ones_saying_why() {
    for (bad, reason) in [
        ("", "unexpected end of the expression"),
        ("response.code >=", "unexpected end of the expression"),
        ("(a", "expected \")\" at the end of the expression"),
        ("a b", "unexpected identifier \"b\""),
        ("'open", "unterminated string literal opened at column 1"),
        (
            "'a\\",
            "unterminated string literal: the text ends in a backslash at column 3",
        ),
        ("'\\q'", "invalid escape sequence \\q at column 2"),
        ("'\\x4g'", "invalid escape sequence \\x4g at column 2"),
        ("a ? b", "expected \":\" at the end of the expression"),
        ("a.", "expected a field name after \".\""),
        ("a # b", "unexpected character '#' at column 3"),
        ("in", "unexpected keyword \"in\""),
        ("T{1: 2}", "expected a field name, found literal"),
        (
            "99999999999999999999",
            "invalid number \"99999999999999999999\" at column 1",
        ),
    ] {
        assert_eq!(
            parse(bad),
            Err(ParseError::Syntax(reason.to_string())),
            "{bad}"
        );
    }
}

#[test]
fn builds_the_tree_with_cel_precedence() {
    let ast = parse("a.b(1) + -2 * c[0] == 3u || !d").unwrap();
    let call = Ast::Call {
        receiver: Some(Box::new(Ast::Ident("a".into()))),
        function: "b".into(),
        args: vec![Ast::Const(Const::Int(1))],
    };
    let product = Ast::Binary(
        BinOp::Mul,
        Box::new(Ast::Const(Const::Int(-2))),
        Box::new(Ast::Index(
            Box::new(Ast::Ident("c".into())),
            Box::new(Ast::Const(Const::Int(0))),
        )),
    );
    let sum = Ast::Binary(BinOp::Add, Box::new(call), Box::new(product));
    let equal = Ast::Binary(
        BinOp::Eq,
        Box::new(sum),
        Box::new(Ast::Const(Const::Uint(3))),
    );
    let expected = Ast::Or(
        Box::new(equal),
        Box::new(Ast::Not(Box::new(Ast::Ident("d".into())))),
    );
    assert_eq!(ast, expected);
}

#[test]
fn deep_expressions_are_refused_and_shallow_long_ones_are_not() {
    let too_deep = Err(ParseError::TooDeep(MAX_DEPTH));
    let nested = format!("{}true{}", "(".repeat(150), ")".repeat(150));
    assert_eq!(parse(&nested), too_deep);
    let negations = format!("{}true", "!".repeat(150));
    assert_eq!(parse(&negations), too_deep);
    // A left-deep chain of 150 `||` is 150 levels high, so it is refused too.
    let chain = vec!["false"; 150].join(" || ");
    assert_eq!(parse(&chain), too_deep);
    let fine = vec!["response.code == 1"; 60].join(" || ");
    assert!(parse(&fine).is_ok());
}
