//! Fault injection (Envoy's `envoy.filters.http.fault` per route, Istio's
//! `VirtualService.http[].fault`): a fixed delay before forwarding (flag `DI`) and an abort
//! answered by the proxy (flag `FI`), each for a share of requests.

use http::{HeaderValue, StatusCode};
use std::time::Duration;

use crate::config::model::FaultPolicy;
use crate::metrics::ResponseFlags;

/// Shares are kept per million, Envoy's finest `FractionalPercent`.
const MILLION: u32 = 1_000_000;

pub struct FaultRt {
    delay: Option<(Duration, u32)>,
    abort: Option<(Abort, u32)>,
}

#[derive(Clone, Copy)]
enum Abort {
    Http(StatusCode),
    Grpc(u32),
}

/// What the fault filter decided for one request.
pub enum Injected {
    /// Forward the request (after the delay, if any was injected).
    Continue,
    /// Answer locally: HTTP status, and the `grpc-status` for gRPC aborts.
    Abort {
        status: StatusCode,
        grpc_status: Option<HeaderValue>,
    },
}

/// Percent (0–100) → parts per million.
pub fn per_million(percent: f64) -> u32 {
    (percent.clamp(0.0, 100.0) * 10_000.0).round() as u32
}

/// True for a `share` (per million) of calls.
pub fn draw(share: u32) -> bool {
    share >= MILLION || (share > 0 && rand::random::<u32>() % MILLION < share)
}

impl FaultRt {
    /// Checks the policy; `Err` names the field and the problem.
    pub fn compile(policy: &FaultPolicy) -> Result<FaultRt, (String, String)> {
        let check_share = |field: &str, percent: f64| {
            if (0.0..=100.0).contains(&percent) {
                Ok(per_million(percent))
            } else {
                Err((
                    format!("{field}.percentage"),
                    "must be between 0 and 100".to_string(),
                ))
            }
        };
        let delay = match &policy.delay {
            Some(delay) => Some((delay.fixed_delay, check_share("delay", delay.percentage)?)),
            None => None,
        };
        let abort = match &policy.abort {
            Some(abort) => {
                let kind = match (abort.http_status, abort.grpc_status) {
                    (Some(code), None) => match StatusCode::from_u16(code) {
                        Ok(status) if (200..600).contains(&code) => Abort::Http(status),
                        _ => {
                            return Err((
                                "abort.http_status".into(),
                                format!("{code} is not an HTTP status from 200 to 599"),
                            ));
                        }
                    },
                    (None, Some(code)) if code <= 16 => Abort::Grpc(code),
                    (None, Some(code)) => {
                        return Err((
                            "abort.grpc_status".into(),
                            format!("{code} is not a gRPC status (0-16)"),
                        ));
                    }
                    _ => {
                        return Err((
                            "abort".into(),
                            "set exactly one of http_status and grpc_status".into(),
                        ));
                    }
                };
                Some((kind, check_share("abort", abort.percentage)?))
            }
            None => None,
        };
        Ok(FaultRt { delay, abort })
    }

    /// Runs the filter: waits out a drawn delay (adding `DI` to `flags`), then maybe aborts.
    pub async fn apply(&self, flags: &mut ResponseFlags) -> Injected {
        if let Some((delay, share)) = self.delay
            && draw(share)
        {
            *flags = flags.with(ResponseFlags::DI);
            tokio::time::sleep(delay).await;
        }
        match self.abort {
            Some((abort, share)) if draw(share) => {
                *flags = flags.with(ResponseFlags::FI);
                match abort {
                    Abort::Http(status) => Injected::Abort {
                        status,
                        grpc_status: None,
                    },
                    Abort::Grpc(code) => Injected::Abort {
                        status: StatusCode::OK,
                        grpc_status: Some(HeaderValue::from(code)),
                    },
                }
            }
            _ => Injected::Continue,
        }
    }
}
