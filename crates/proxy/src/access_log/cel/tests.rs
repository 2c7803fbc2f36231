//! The evaluator against a table of expressions and one request's entry, and the refusals
//! made at compile time.

use std::borrow::Cow;
use std::time::{Duration, SystemTime};

use super::eval::{EvalError, Val};
use super::{CelError, Program};
use crate::access_log::{Entry, RequestSide};

fn request() -> Entry {
    let mut entry = Entry::new(SystemTime::now());
    let mut headers = http::HeaderMap::new();
    headers.insert("x-debug", http::HeaderValue::from_static("on"));
    headers.insert("user-agent", http::HeaderValue::from_static("curl/8.0"));
    entry.request = RequestSide {
        headers,
        method: Some(http::Method::GET),
        path: Some("/api/v1/items?page=2".into()),
        authority: Some("reviews:9080".into()),
        protocol: Some("HTTP/1.1"),
    };
    entry
        .response_headers
        .insert("content-type", http::HeaderValue::from_static("text/plain"));
    entry.response_code = 503;
    entry.response_flags = "UF,URX".into();
    entry.duration = Duration::from_millis(1500);
    entry.bytes_received = 10;
    entry.bytes_sent = 42;
    entry.downstream_remote_address = Some("127.0.0.1:40000".parse().unwrap());
    entry.downstream_local_address = Some("10.0.0.2:9080".parse().unwrap());
    entry.upstream_host = Some("10.0.0.9:8080".parse().unwrap());
    entry.upstream_cluster = Some("outbound|9080||reviews.default.svc.cluster.local".into());
    entry.route_name = Some("default".into());
    entry
}

fn tcp() -> Entry {
    let mut entry = Entry::new(SystemTime::now());
    entry.downstream_remote_address = Some("127.0.0.1:40001".parse().unwrap());
    entry.upstream_cluster = Some("outbound|3306||db".into());
    entry
}

fn eval(text: &str, entry: &Entry) -> Result<Val<'static>, EvalError> {
    let program = Program::compile(text).unwrap_or_else(|e| panic!("{text}: {e}"));
    program.evaluate(entry).map(|v| owned(&v))
}

fn owned(v: &Val<'_>) -> Val<'static> {
    match v {
        Val::Null => Val::Null,
        Val::Bool(b) => Val::Bool(*b),
        Val::Int(n) => Val::Int(*n),
        Val::Uint(n) => Val::Uint(*n),
        Val::Double(n) => Val::Double(*n),
        Val::Str(s) => Val::Str(Cow::Owned(s.to_string())),
        Val::Duration(n) => Val::Duration(*n),
        Val::List(items) => Val::List(items.iter().map(owned).collect()),
        Val::Map(e) => Val::Map(e.iter().map(|(k, v)| (owned(k), owned(v))).collect()),
        Val::RequestHeaders => Val::RequestHeaders,
        Val::ResponseHeaders => Val::ResponseHeaders,
    }
}

fn s(text: &str) -> Val<'static> {
    Val::Str(Cow::Owned(text.to_string()))
}

#[test]
fn values_of_a_table_of_expressions() {
    let entry = request();
    let t = Val::Bool(true);
    let f = Val::Bool(false);
    let table: Vec<(&str, Val<'static>)> = vec![
        // Literals and arithmetic.
        ("1 + 2 * 3 - 4 / 2", Val::Int(5)),
        ("7 % 3", Val::Int(1)),
        ("-7 / 2", Val::Int(-3)),
        ("3u + 4u", Val::Uint(7)),
        ("0x1F", Val::Int(31)),
        ("1.5 * 2.0", Val::Double(3.0)),
        ("1e3", Val::Double(1000.0)),
        ("'ab' + \"cd\"", s("abcd")),
        ("r'a\\d' + '\\x41\\n'", s("a\\dA\n")),
        ("null == null", t.clone()),
        // Comparisons, numbers across types.
        (
            "1 == 1u && 1 == 1.0 && 2u > 1 && -1 < 1u && 1.5 > 1",
            t.clone(),
        ),
        ("'a' < 'b' && 'b' >= 'b' && true > false", t.clone()),
        (
            "1 != 2 && 'x' != 'y' && [1, 'a'] == [1, 'a'] && {'a': 1} == {'a': 1u}",
            t.clone(),
        ),
        ("'1' == 1", f.clone()),
        // Logic, conditional, membership, indexing.
        ("!false && (true || false)", t.clone()),
        ("response.code >= 500 ? 'error' : 'ok'", s("error")),
        (
            "2 in [1, 2, 3] && 'k' in {'k': 1} && !(4 in [1])",
            t.clone(),
        ),
        ("[10, 20][1] + {'a': 5}['a'] + {'b': 1}.b", Val::Int(26)),
        // Functions.
        ("size('héllo') + size([1, 2]) + 'abc'.size()", Val::Int(10)),
        ("int('42') + int(2.9) + int(3u)", Val::Int(47)),
        ("uint(5) + uint('6')", Val::Uint(11)),
        ("double(1) + double('0.5')", Val::Double(1.5)),
        ("string(12) + string(true) + string(2u)", s("12true2")),
        (
            "duration('1m30s') == duration('90s') && duration('1.5s') > duration('1500ms') == false",
            t.clone(),
        ),
        (
            "'/api/v1'.startsWith('/api') && 'a.json'.endsWith('.json') && 'abc'.contains('b')",
            t.clone(),
        ),
        (
            "'v1beta3'.matches('^v[0-9]+beta') && matches('abc', 'b') && !'abc'.matches('^b')",
            t.clone(),
        ),
        ("has({'a': 1}.a) && !has({'a': 1}.b)", t.clone()),
        // Envoy's attributes.
        ("response.code", Val::Int(503)),
        ("response.code >= 400", t.clone()),
        ("response.flags", Val::Int((1 << 5) | (1 << 15))),
        ("response.grpc_status", Val::Int(14)),
        ("response.size", Val::Int(42)),
        ("response.headers['content-type']", s("text/plain")),
        ("request.headers['x-debug'] == 'on'", t.clone()),
        ("request.headers['X-Debug']", s("on")),
        ("request.headers[':method'] + request.method", s("GETGET")),
        (
            "'x-debug' in request.headers && !('x-other' in request.headers)",
            t.clone(),
        ),
        ("has(request.headers.x_other)", f.clone()),
        ("request.path", s("/api/v1/items?page=2")),
        ("request.url_path", s("/api/v1/items")),
        ("request.host", s("reviews:9080")),
        ("request.scheme", s("http")),
        ("request.protocol", s("HTTP/1.1")),
        (
            "request.duration > duration('1s') && request.duration < duration('2s')",
            t.clone(),
        ),
        ("request.size", Val::Int(10)),
        ("request.useragent", s("curl/8.0")),
        ("source.address", s("127.0.0.1:40000")),
        ("source.port", Val::Int(40000)),
        ("destination.address", s("10.0.0.2:9080")),
        ("destination.port == 9080", t.clone()),
        ("connection.mtls", f.clone()),
        ("connection.requested_server_name", s("")),
        ("upstream.address", s("10.0.0.9:8080")),
        ("upstream.port", Val::Int(8080)),
        ("xds.cluster_name.startsWith('outbound|9080')", t.clone()),
        ("xds.route_name", s("default")),
        // An error on one side of && / || is absorbed when the other side decides.
        (
            "request.headers['missing'] == 'x' || response.code == 503",
            t.clone(),
        ),
        (
            "response.code == 200 && request.headers['missing'] == 'x'",
            f.clone(),
        ),
    ];
    for (text, want) in table {
        assert_eq!(eval(text, &entry), Ok(want), "{text}");
    }
}

#[test]
fn errors_are_values_and_do_not_log() {
    let entry = request();
    for text in [
        "request.headers['missing'] == 'x'",
        "request.headers['missing'] == 'x' || false",
        "1 / 0 == 1",
        "9223372036854775807 + 1 > 0",
        "[1][5] == 1",
        "{'a': 1}['b'] == 1",
        "1 + 1u == 2",
        "'a' < 1",
        "int('x') == 0",
        "!1",
        "1 ? true : false",
        "request.id == 'x'",
    ] {
        let result = eval(text, &entry);
        assert!(result.is_err(), "{text}: {result:?}");
        let program = Program::compile(text).expect(text);
        assert!(!program.matches(&entry), "{text}");
    }
    // A result that is not a boolean does not log either.
    assert!(!Program::compile("response.code").unwrap().matches(&entry));
    assert!(
        Program::compile("response.code == 503")
            .unwrap()
            .matches(&entry)
    );
}

#[test]
fn a_tcp_connection_has_no_request_or_response_code() {
    let entry = tcp();
    assert!(eval("response.code", &entry).is_err());
    assert!(eval("request.method", &entry).is_err());
    assert!(eval("request.headers['x'] == 'y'", &entry).is_err());
    assert_eq!(eval("xds.cluster_name", &entry), Ok(s("outbound|3306||db")));
    assert!(
        !Program::compile("response.code >= 400")
            .unwrap()
            .matches(&entry)
    );
    assert!(
        Program::compile("!has(response.code)")
            .unwrap()
            .matches(&entry)
    );
}

#[test]
fn headers_the_filter_reads_are_named() {
    let p = Program::compile(
        "request.headers['X-Debug'] == 'on' || 'x-b' in request.headers || has(response.headers.etag) || request.useragent == 'a'",
    )
    .unwrap();
    let names: Vec<&str> = p
        .request_headers()
        .unwrap()
        .iter()
        .map(|h| h.as_str())
        .collect();
    assert_eq!(names, ["x-debug", "x-b", "user-agent"]);
    let names: Vec<&str> = p
        .response_headers()
        .unwrap()
        .iter()
        .map(|h| h.as_str())
        .collect();
    assert_eq!(names, ["etag"]);
    let all = Program::compile("size(request.headers) > 0").unwrap();
    assert!(all.request_headers().is_none());
    assert!(all.response_headers().is_some());
}

#[test]
fn what_cannot_be_evaluated_is_refused_at_compile_time() {
    let refused = |text: &str| Program::compile(text).expect_err(text);
    assert!(matches!(refused("response.code >="), CelError::Syntax(_)));
    assert!(matches!(refused("(a"), CelError::Syntax(_)));
    assert!(matches!(refused("'open"), CelError::Syntax(_)));
    assert!(matches!(refused("a b"), CelError::Syntax(_)));
    assert_eq!(refused("foo == 1"), CelError::Undeclared("foo".into()));
    assert_eq!(
        refused("request.time > timestamp('2024-01-01T00:00:00Z')"),
        CelError::Unsupported("attribute request.time".into())
    );
    assert_eq!(
        refused("[1].exists(x, x > 0)"),
        CelError::Unsupported("function exists()".into())
    );
    assert_eq!(
        refused("'a'.startsWith()"),
        CelError::Arity("startsWith".into(), 2)
    );
    assert!(matches!(refused("'a'.matches('(')"), CelError::Regex(..)));
    assert!(matches!(
        refused("'a'.matches(request.path)"),
        CelError::Unsupported(_)
    ));
    assert!(matches!(refused("request == 1"), CelError::Unsupported(_)));
    assert_eq!(
        refused(&"x".repeat(super::MAX_LENGTH + 1)),
        CelError::TooLong(super::MAX_LENGTH + 1)
    );
}

#[test]
fn lateen_cels_limits_and_what_only_it_parses_are_refused_by_name() {
    // Nesting and height are bounded by lateen-cel's parser (its tests hold the details).
    let chain = vec!["false"; 150].join(" || ");
    assert_eq!(
        Program::compile(&chain).unwrap_err(),
        CelError::TooDeep(100)
    );
    assert!(Program::compile(&vec!["response.code == 1"; 60].join(" || ")).is_ok());
    // Grammar lateen-proxy does not evaluate.
    assert_eq!(
        Program::compile("b'abc' == b'abc'").unwrap_err(),
        CelError::Unsupported("bytes literals".into())
    );
    assert_eq!(
        Program::compile("google.protobuf.Duration{seconds: 5} == duration('5s')").unwrap_err(),
        CelError::Unsupported("message construction".into())
    );
}
