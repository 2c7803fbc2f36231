//! The dashboard (`lateen dashboard`): a web page served on lateend's debug port under
//! `/dashboard/`, showing the live service graph (workloads, and edges with request rate,
//! error rate, p99 and mTLS from the proxies' Istio metrics), each service's subsets, routes,
//! policies and validation messages, and the proxies' sync status.
//!
//! - [`promtext`]: reading the Prometheus text format;
//! - [`traffic`]: per proxy a short window of scrapes, and the rates and p99 computed from it;
//! - [`scrape`]: scraping the connected proxies (only while someone looks at the graph);
//! - [`api`] and [`messages`]: the JSON the page polls (`/dashboard/api/...`);
//! - `assets/`: the page itself (HTML, CSS, JS, no build step), compiled into the binary.

pub mod api;
pub mod messages;
pub mod promtext;
pub mod scrape;
pub mod traffic;

pub use traffic::Traffic;

use hyper::StatusCode;
use serde_json::Value;

/// Where the page is, under the debug address.
pub const PATH: &str = "/dashboard/";

const INDEX_HTML: &str = include_str!("assets/index.html");
const APP_JS: &str = include_str!("assets/app.js");
const STYLE_CSS: &str = include_str!("assets/style.css");

/// A response: status, content type, body.
pub type Reply = (StatusCode, &'static str, String);

/// Answers a path under `/dashboard`; `query` is a query parameter reader.
pub fn respond(
    cp: &crate::push::ControlPlane,
    path: &str,
    query: impl Fn(&str) -> Option<String>,
) -> Reply {
    let json = |v: Value| {
        (
            StatusCode::OK,
            "application/json",
            serde_json::to_string(&v).unwrap_or_else(|_| "null".to_string()),
        )
    };
    match path {
        "/dashboard" | "/dashboard/" | "/dashboard/index.html" => (
            StatusCode::OK,
            "text/html; charset=utf-8",
            INDEX_HTML.into(),
        ),
        "/dashboard/app.js" => (
            StatusCode::OK,
            "text/javascript; charset=utf-8",
            APP_JS.into(),
        ),
        "/dashboard/style.css" => (StatusCode::OK, "text/css; charset=utf-8", STYLE_CSS.into()),
        "/dashboard/api/graph" => json(api::graph(cp)),
        "/dashboard/api/services" => json(api::services(cp)),
        "/dashboard/api/proxies" => json(api::proxies(cp)),
        "/dashboard/api/service" => match query("host") {
            None => (
                StatusCode::BAD_REQUEST,
                "text/plain",
                "missing ?host=\n".into(),
            ),
            Some(host) => match api::service(cp, &host) {
                Some(details) => json(details),
                None => (
                    StatusCode::NOT_FOUND,
                    "text/plain",
                    format!("no service with host {host}\n"),
                ),
            },
        },
        _ => (
            StatusCode::NOT_FOUND,
            "text/plain",
            "dashboard: /dashboard/ and /dashboard/api/{graph,services,service?host=,proxies}\n"
                .into(),
        ),
    }
}
