//! One forwarded request: endpoint choice, attempts with per-try timeouts and retries (Envoy's
//! `retry_on` semantics, a 25 ms jittered backoff, and a different host on each retry), and
//! the mapping of failures to Envoy's response flags. Circuit breakers are checked first
//! (503 `UO`), every attempt's result feeds outlier detection.

use bytes::Bytes;
use http_body::Body;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use super::body::{ProxyBody, RequestRecord};
use super::downstream_body::DownstreamBody;
use crate::config::model::UpstreamProtocol;
use crate::config::snapshot::{ClusterRt, RetryRt};
use crate::metrics::{ProxyStats, ResponseFlags};
use crate::upstream::balance::{Holds, HostOutcome};
use crate::upstream::{Pool, UpstreamError, UpstreamVersion};

/// Requests larger than this are not buffered, so they get no retries (Linkerd's limit).
pub const MAX_REPLAY_BYTES: u64 = 64 * 1024;
const RETRY_BASE_BACKOFF: Duration = Duration::from_millis(25);

pub enum Outcome {
    /// The upstream's answer and the counts held until its body ends.
    Response(http::Response<Incoming>, Holds),
    /// No response from upstream; the client gets a local reply with this status.
    Failed {
        status: http::StatusCode,
        flags: ResponseFlags,
        detail: String,
    },
}

pub struct Attempt<'a> {
    pub pool: &'a Pool,
    pub stats: &'a crate::metrics::ProxyStats,
    pub cluster: &'a Arc<ClusterRt>,
    pub version: UpstreamVersion,
    pub retry: Option<&'a RetryRt>,
    /// The request's key for consistent-hash clusters.
    pub hash: Option<u64>,
}

/// A request body as it arrives: still streaming, or already read (for a mirror).
pub enum RequestIn {
    Streaming(DownstreamBody),
    Buffered(Bytes),
}

pub fn upstream_version(cluster: &ClusterRt, downstream: http::Version) -> UpstreamVersion {
    match cluster.protocol {
        UpstreamProtocol::Http1 => UpstreamVersion::Http1,
        UpstreamProtocol::Http2 => UpstreamVersion::Http2,
        UpstreamProtocol::Downstream if downstream == http::Version::HTTP_2 => {
            UpstreamVersion::Http2
        }
        UpstreamProtocol::Downstream => UpstreamVersion::Http1,
    }
}

/// The body of a request as the attempts will send it: replayable bytes when retries are
/// possible, else the stream itself (one attempt only).
enum RequestBody {
    Replayable(Bytes),
    Stream(Option<ProxyBody>),
}

impl RequestBody {
    fn next(&mut self) -> Option<ProxyBody> {
        match self {
            RequestBody::Replayable(bytes) => Some(ProxyBody::full(bytes.clone())),
            RequestBody::Stream(body) => body.take(),
        }
    }
}

impl Attempt<'_> {
    pub async fn run(
        self,
        head: http::request::Parts,
        body: RequestIn,
        record: &Arc<RequestRecord>,
    ) -> Outcome {
        // Only clusters with breakers or least-request balancing hold counts.
        let mut holds = Holds::default();
        if let Some(breakers) = &self.cluster.breakers {
            let Some(permit) = breakers.try_request(self.version == UpstreamVersion::Http1) else {
                ProxyStats::incr(&self.stats.upstream_rq_pending_overflow);
                return Outcome::Failed {
                    status: http::StatusCode::SERVICE_UNAVAILABLE,
                    flags: ResponseFlags::UO,
                    detail: "upstream connect error or disconnect/reset before headers. reset reason: overflow".into(),
                };
            };
            holds = Holds::new(self.cluster);
            holds.hold_request(permit);
        }
        let retry = self.retry.filter(|retry| retry.num_retries > 0);
        let body = match body {
            RequestIn::Streaming(body) => body,
            // Already counted into the record by whoever read it.
            RequestIn::Buffered(bytes) => {
                return self
                    .attempts(head, RequestBody::Replayable(bytes), retry, holds, record)
                    .await;
            }
        };
        let body = match retry {
            Some(_) if body.is_end_stream() => RequestBody::Replayable(Bytes::new()),
            Some(_)
                if body
                    .size_hint()
                    .exact()
                    .is_some_and(|len| len <= MAX_REPLAY_BYTES) =>
            {
                match body.collect().await {
                    Ok(collected) => {
                        let bytes = collected.to_bytes();
                        record
                            .request_bytes
                            .fetch_add(bytes.len() as u64, std::sync::atomic::Ordering::Relaxed);
                        RequestBody::Replayable(bytes)
                    }
                    Err(err) => {
                        let (status, flags) = err.fault().reply();
                        return Outcome::Failed {
                            status,
                            flags,
                            detail: format!("reading request body: {err}"),
                        };
                    }
                }
            }
            _ => RequestBody::Stream(Some(ProxyBody::Downstream {
                body,
                counter: Some(record.clone()),
            })),
        };
        self.attempts(head, body, retry, holds, record).await
    }

    async fn attempts(
        &self,
        mut head: http::request::Parts,
        mut body: RequestBody,
        retry: Option<&RetryRt>,
        mut holds: Holds,
        record: &RequestRecord,
    ) -> Outcome {
        let mut _retry_permit = None;
        let max_attempts = 1 + retry.map_or(0, |retry| retry.num_retries);
        let mut last_host: Option<SocketAddr> = None;
        let mut flags = ResponseFlags::NONE;
        let mut last_failure = None;
        for attempt in 0..max_attempts {
            let Some(request_body) = body.next() else {
                break;
            };
            if attempt > 0 {
                ProxyStats::incr(&self.stats.upstream_rq_retry);
                let jitter = rand::random::<u64>()
                    % (RETRY_BASE_BACKOFF.as_millis() as u64 * (1 << attempt.min(4)));
                tokio::time::sleep(Duration::from_millis(jitter)).await;
            }
            let hosts = &self.cluster.hosts;
            let Some(index) = hosts.pick(last_host, self.hash) else {
                return Outcome::Failed {
                    status: http::StatusCode::SERVICE_UNAVAILABLE,
                    flags: ResponseFlags::UH,
                    detail: "no healthy upstream".into(),
                };
            };
            let endpoint = hosts.endpoints[index];
            if hosts.begin(index) {
                if holds.is_empty() {
                    holds = Holds::new(self.cluster);
                }
                holds.hold_in_flight(Some(index));
            }
            last_host = Some(endpoint);
            record.set_upstream_host(endpoint);
            let is_last = attempt + 1 == max_attempts || matches!(body, RequestBody::Stream(None));
            let request = if is_last {
                // The last attempt takes the head itself instead of a copy.
                http::Request::from_parts(std::mem::replace(&mut head, empty_parts()), request_body)
            } else {
                build_request(&head, request_body)
            };
            let target = crate::upstream::Target::of(self.cluster, endpoint);
            // The send future is built inside each arm rather than bound to a local first: a
            // moved-from local keeps its space in this future's state, which every in-flight
            // request holds (with the connect futures in pool.rs boxed, a request's task fell
            // from 5.6 KB to 4.7 KB; 320 are in flight in bench/run.sh's h2c run).
            let (pool, version, connect_timeout) =
                (self.pool, self.version, self.cluster.connect_timeout);
            let result = match retry.and_then(|retry| retry.per_try_timeout) {
                Some(per_try) => tokio::time::timeout(
                    per_try,
                    pool.send(target, version, connect_timeout, request),
                )
                .await
                .ok(),
                None => Some(pool.send(target, version, connect_timeout, request).await),
            };
            match result {
                Some(Ok(response)) => {
                    let status = response.status().as_u16();
                    hosts.report(index, HostOutcome::Status(status));
                    if !is_last && retry.is_some_and(|retry| retry.retries_status(status)) {
                        // Past the retry budget the client gets this answer, as in Envoy.
                        let Some(permit) = self.retry_permit() else {
                            return Outcome::Response(response, holds);
                        };
                        _retry_permit = permit;
                        flags = ResponseFlags::NONE;
                        continue;
                    }
                    // On the last attempt Envoy returns the upstream's answer, retriable or not.
                    return Outcome::Response(response, holds);
                }
                Some(Err(err)) => {
                    // The client broke its own body: its fault, not the host's.
                    if let Some(fault) = record.fault() {
                        let (status, flags) = fault.reply();
                        return Outcome::Failed {
                            status,
                            flags,
                            detail: format!("bad request body: {err}"),
                        };
                    }
                    // The worker's own connection bound, not the host's fault: 503 `UO`
                    // at once, as a circuit breaker overflow.
                    if let UpstreamError::Overflow { .. } = err {
                        ProxyStats::incr(&self.stats.upstream_rq_pending_overflow);
                        return Outcome::Failed {
                            status: http::StatusCode::SERVICE_UNAVAILABLE,
                            flags: ResponseFlags::UO,
                            detail: format!(
                                "upstream connect error or disconnect/reset before headers. reset reason: overflow ({err})"
                            ),
                        };
                    }
                    hosts.report(index, HostOutcome::LocalFailure);
                    let (flag, retriable) = match &err {
                        UpstreamError::Connect { .. } => (
                            ResponseFlags::UF,
                            retry.is_some_and(|r| {
                                r.on_connect_failure || r.on_5xx || r.on_gateway_error
                            }),
                        ),
                        UpstreamError::Reset(_) => (
                            ResponseFlags::UC,
                            retry.is_some_and(|r| r.on_reset || r.on_5xx || r.on_gateway_error),
                        ),
                        UpstreamError::RefusedStream(_) => (
                            ResponseFlags::UC,
                            retry.is_some_and(|r| r.on_refused_stream || r.on_reset || r.on_5xx),
                        ),
                        UpstreamError::Overflow { .. } => (ResponseFlags::UO, false),
                    };
                    flags = flag;
                    last_failure = Some(err.to_string());
                    if !retriable || is_last {
                        break;
                    }
                    let Some(permit) = self.retry_permit() else {
                        break;
                    };
                    _retry_permit = permit;
                }
                None => {
                    hosts.report(index, HostOutcome::LocalFailure);
                    ProxyStats::incr(&self.stats.upstream_rq_timeout);
                    flags = ResponseFlags::UT;
                    last_failure = Some("upstream per-try timeout".into());
                    if !retry.is_some_and(|r| r.on_5xx || r.on_gateway_error || r.on_reset) {
                        return Outcome::Failed {
                            status: http::StatusCode::GATEWAY_TIMEOUT,
                            flags,
                            detail: "upstream request timeout".into(),
                        };
                    }
                    if !is_last {
                        let Some(permit) = self.retry_permit() else {
                            break;
                        };
                        _retry_permit = permit;
                    }
                }
            }
        }
        if retry.is_some() {
            flags = flags.with(ResponseFlags::URX);
        }
        let status = if flags.contains(ResponseFlags::UT) && !flags.contains(ResponseFlags::UF) {
            http::StatusCode::GATEWAY_TIMEOUT
        } else {
            http::StatusCode::SERVICE_UNAVAILABLE
        };
        let detail = match last_failure {
            Some(reason) if flags.contains(ResponseFlags::UF) => format!(
                "upstream connect error or disconnect/reset before headers. reset reason: connection failure, {reason}"
            ),
            Some(reason) => {
                format!("upstream connect error or disconnect/reset before headers. {reason}")
            }
            None => "upstream unavailable".into(),
        };
        Outcome::Failed {
            status,
            flags,
            detail,
        }
    }
}

/// Whether one more retry may be made under the cluster's `max_retries`.
enum RetryBudget<'a> {
    /// No circuit breakers: retries are not counted.
    Unlimited,
    /// Counted until the retry ends.
    Permit(crate::upstream::balance::Permit<'a>),
    /// `max_retries` retries are already running.
    Spent,
}

impl<'a> Attempt<'a> {
    /// A slot for one more retry under the cluster's `max_retries` (no limit without circuit
    /// breakers); `None` when the budget is spent (counted as a retry overflow).
    fn retry_permit(&self) -> Option<Option<crate::upstream::balance::Permit<'a>>> {
        let budget = match &self.cluster.breakers {
            None => RetryBudget::Unlimited,
            Some(breakers) => breakers
                .admit_retry()
                .map_or(RetryBudget::Spent, RetryBudget::Permit),
        };
        match budget {
            RetryBudget::Unlimited => Some(None),
            RetryBudget::Permit(permit) => Some(Some(permit)),
            RetryBudget::Spent => {
                ProxyStats::incr(&self.stats.upstream_rq_retry_overflow);
                None
            }
        }
    }
}

fn empty_parts() -> http::request::Parts {
    http::Request::new(()).into_parts().0
}

fn build_request(head: &http::request::Parts, body: ProxyBody) -> http::Request<ProxyBody> {
    let mut request = http::Request::new(body);
    *request.method_mut() = head.method.clone();
    *request.uri_mut() = head.uri.clone();
    *request.version_mut() = head.version;
    *request.headers_mut() = head.headers.clone();
    request
}
