//! Principal and namespace rules against a peer identity, in process (the end-to-end table
//! in lateen-discovery's `authz_matrix` runs on plaintext until mutual TLS gives peers an
//! identity), and the JWT filter's refusals. The matchers are the ones lateend generates
//! for `principals`, `notPrincipals` and `namespaces` (see its `authz_rules.rs`).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

use super::jwt::{Jwks, JwtAuthn, Provider};
use super::matcher::{Pattern, Permission, Principal, StringMatch};
use super::rbac::{Action, Policy, Rbac, Rules};
use super::{ConnAuthz, HttpAuthz, NetworkAuthz, Refusal};

fn regex(text: &str) -> StringMatch {
    StringMatch::Regex(Pattern::new(text).unwrap_or_else(|e| panic!("{e}")))
}

fn exact(text: &str) -> StringMatch {
    StringMatch::Exact {
        value: text.to_string(),
        ignore_case: false,
    }
}

fn allow(principal: Principal) -> Rbac {
    Rbac {
        rules: Some(Rules {
            action: Action::Allow,
            policies: vec![Policy {
                name: "ns[default]-policy[p]-rule[0]".to_string(),
                permissions: vec![Permission::Any],
                principals: vec![Principal::And(vec![principal])],
            }],
        }),
        shadow_rules: None,
    }
}

fn conn(peer: Option<&str>) -> ConnAuthz {
    ConnAuthz {
        destination: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 9080),
        peer_principal: peer.map(Arc::from),
        sni: None,
    }
}

fn request() -> http::request::Parts {
    let (parts, ()) = http::Request::builder()
        .uri("/x")
        .header("host", "server")
        .body(())
        .unwrap_or_else(|e| panic!("{e}"))
        .into_parts();
    parts
}

fn verdict(rbac: Rbac, peer: Option<&str>) -> Result<(), Refusal> {
    let authz = HttpAuthz {
        jwt: None,
        rbac: vec![rbac],
    };
    authz.check(&mut request(), IpAddr::V4(Ipv4Addr::LOCALHOST), &conn(peer))
}

const CLIENT: &str = "spiffe://cluster.local/ns/default/sa/client";
const OTHER: &str = "spiffe://cluster.local/ns/other/sa/intruder";

fn authenticated(m: StringMatch) -> Principal {
    Principal::Authenticated(Some(m))
}

#[test]
fn principals_exact_allow_only_that_identity() {
    let rule = || allow(Principal::Or(vec![authenticated(exact(CLIENT))]));
    assert_eq!(verdict(rule(), Some(CLIENT)), Ok(()));
    assert_eq!(verdict(rule(), Some(OTHER)), Err(Refusal::Denied));
    assert_eq!(verdict(rule(), None), Err(Refusal::Denied));
}

#[test]
fn principals_prefix_suffix_and_any() {
    let prefix = || {
        allow(authenticated(StringMatch::Prefix {
            value: "spiffe://cluster.local/ns/default/".to_string(),
            ignore_case: false,
        }))
    };
    assert_eq!(verdict(prefix(), Some(CLIENT)), Ok(()));
    assert_eq!(verdict(prefix(), Some(OTHER)), Err(Refusal::Denied));
    let suffix = || allow(authenticated(regex(r"spiffe://.*/sa/client")));
    assert_eq!(verdict(suffix(), Some(CLIENT)), Ok(()));
    assert_eq!(verdict(suffix(), Some(OTHER)), Err(Refusal::Denied));
    let any = || allow(authenticated(regex(".+")));
    assert_eq!(verdict(any(), Some(OTHER)), Ok(()));
    assert_eq!(verdict(any(), None), Err(Refusal::Denied));
}

#[test]
fn not_principals_deny_the_listed_identity_and_allow_plaintext() {
    let rule = || {
        allow(Principal::Not(Box::new(Principal::Or(vec![
            authenticated(exact(OTHER)),
        ]))))
    };
    assert_eq!(verdict(rule(), Some(CLIENT)), Ok(()));
    assert_eq!(verdict(rule(), Some(OTHER)), Err(Refusal::Denied));
    assert_eq!(verdict(rule(), None), Ok(()));
}

#[test]
fn namespaces_match_inside_the_principal() {
    let rule = || allow(authenticated(regex(".*/ns/default/.*")));
    assert_eq!(verdict(rule(), Some(CLIENT)), Ok(()));
    assert_eq!(verdict(rule(), Some(OTHER)), Err(Refusal::Denied));
    let prefixed = || allow(authenticated(regex(".*/ns/oth.*/.*")));
    assert_eq!(verdict(prefixed(), Some(OTHER)), Ok(()));
    assert_eq!(verdict(prefixed(), Some(CLIENT)), Err(Refusal::Denied));
}

#[test]
fn deny_on_a_principal_wins_over_allow() {
    let deny = Rbac {
        rules: Some(Rules {
            action: Action::Deny,
            policies: vec![Policy {
                name: "deny".to_string(),
                permissions: vec![Permission::Any],
                principals: vec![authenticated(exact(OTHER))],
            }],
        }),
        shadow_rules: None,
    };
    let authz = HttpAuthz {
        jwt: None,
        rbac: vec![deny, allow(Principal::Any)],
    };
    let ip = IpAddr::V4(Ipv4Addr::LOCALHOST);
    assert_eq!(authz.check(&mut request(), ip, &conn(Some(CLIENT))), Ok(()));
    assert_eq!(
        authz.check(&mut request(), ip, &conn(Some(OTHER))),
        Err(Refusal::Denied)
    );
}

#[test]
fn tcp_connections_are_checked_by_principal() {
    let authz = NetworkAuthz {
        rbac: vec![allow(authenticated(regex(".*/ns/default/.*")))],
    };
    let ip = IpAddr::V4(Ipv4Addr::LOCALHOST);
    assert!(authz.allows(ip, &conn(Some(CLIENT))));
    assert!(!authz.allows(ip, &conn(Some(OTHER))));
    assert!(!authz.allows(ip, &conn(None)));
}

fn provider(jwks: &str) -> Provider {
    Provider {
        name: "origins-0".to_string(),
        issuer: "https://issuer.test".to_string(),
        audiences: Vec::new(),
        forward: false,
        from_headers: Vec::new(),
        from_params: Vec::new(),
        forward_payload_header: String::new(),
        payload_in_metadata: "payload".to_string(),
        claim_to_headers: Vec::new(),
        jwks: Jwks::parse(jwks),
        remote: None,
    }
}

#[test]
fn a_jwks_that_is_not_json_fails_tokens_and_nothing_else() {
    let authz = HttpAuthz {
        jwt: Some(JwtAuthn {
            providers: vec![provider("this is not json")],
            allow_missing: true,
        }),
        rbac: Vec::new(),
    };
    let ip = IpAddr::V4(Ipv4Addr::LOCALHOST);
    // No token: Istio lets it through.
    assert_eq!(authz.check(&mut request(), ip, &conn(None)), Ok(()));
    // A well-formed token of the issuer: no key can verify it.
    let token = format!(
        "{}.{}.c2ln",
        base64_url(r#"{"alg":"ES256","kid":"k1"}"#),
        base64_url(r#"{"iss":"https://issuer.test","sub":"a"}"#)
    );
    let mut with_token = request();
    with_token.headers.insert(
        http::header::AUTHORIZATION,
        http::HeaderValue::from_str(&format!("Bearer {token}")).unwrap_or_else(|e| panic!("{e}")),
    );
    match authz.check(&mut with_token, ip, &conn(None)) {
        Err(Refusal::Unauthenticated(message)) => assert!(
            message.starts_with("Jwks") || message.starts_with("Jwt"),
            "{message}"
        ),
        other => panic!("expected 401, got {other:?}"),
    }
}

#[test]
fn a_malformed_token_gets_envoys_message() {
    let authz = HttpAuthz {
        jwt: Some(JwtAuthn {
            providers: vec![provider(r#"{"keys":[]}"#)],
            allow_missing: true,
        }),
        rbac: Vec::new(),
    };
    let mut parts = request();
    parts.headers.insert(
        http::header::AUTHORIZATION,
        http::HeaderValue::from_static("Bearer abc"),
    );
    assert_eq!(
        authz.check(&mut parts, IpAddr::V4(Ipv4Addr::LOCALHOST), &conn(None)),
        Err(Refusal::Unauthenticated(
            "Jwt is not in the form of Header.Payload.Signature with two dots and 3 sections"
                .to_string()
        ))
    );
}

fn base64_url(text: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(text)
}
