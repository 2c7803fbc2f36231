//! The key a consistent-hash cluster balances a request by, from the route's hash policies
//! (header, cookie, source IP, query parameter). Several present keys are combined in order;
//! with none present the request has no key and goes to a random host.

use std::net::IpAddr;

use crate::config::model::HashPolicy;
use crate::upstream::balance::hash_bytes;

pub fn request_hash(
    policies: &[HashPolicy],
    head: &http::request::Parts,
    source: IpAddr,
) -> Option<u64> {
    let mut combined: Option<u64> = None;
    for policy in policies {
        let hash = match policy {
            HashPolicy::Header(name) => head
                .headers
                .get(name.as_str())
                .map(|value| hash_bytes(value.as_bytes())),
            HashPolicy::Cookie(name) => {
                cookie(&head.headers, name).map(|value| hash_bytes(value.as_bytes()))
            }
            HashPolicy::SourceIp(true) => Some(hash_bytes(source.to_string().as_bytes())),
            HashPolicy::SourceIp(false) => None,
            HashPolicy::QueryParameter(name) => head.uri.query().and_then(|query| {
                query.split('&').find_map(|pair| {
                    let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
                    (key == name).then(|| hash_bytes(value.as_bytes()))
                })
            }),
        };
        if let Some(hash) = hash {
            combined = Some(combined.map_or(hash, |previous| previous.rotate_left(1) ^ hash));
        }
    }
    combined
}

fn cookie<'a>(headers: &'a http::HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .find_map(|pair| {
            let (key, value) = pair.trim().split_once('=')?;
            (key == name).then_some(value)
        })
}
