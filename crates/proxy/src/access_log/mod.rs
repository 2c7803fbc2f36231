//! Envoy's file access log (`envoy.access_loggers.file`) in lateen-proxy: the format (text
//! with command operators, or JSON) is parsed when the configuration is compiled
//! ([`format`]), each finished request or connection becomes an [`Entry`], and its line goes
//! to the file's writer thread through a bounded queue ([`writer`]).

pub mod entry;
pub mod format;
mod tcp;
pub mod writer;

use std::sync::Arc;

pub use entry::{Entry, RequestSide};
pub use format::{Format, FormatError};
pub use tcp::TcpLog;

/// One configured access log of a listener.
#[derive(Debug)]
pub struct AccessLogger {
    pub format: Format,
    pub writer: Arc<writer::Writer>,
    /// The request and response headers the format reads: only these are kept per request.
    pub request_headers: Vec<http::HeaderName>,
    pub response_headers: Vec<http::HeaderName>,
}

impl AccessLogger {
    pub fn new(path: &str, format: Format) -> Self {
        let (request_headers, response_headers) = format.headers();
        AccessLogger {
            format,
            writer: writer::writer_for(path),
            request_headers,
            response_headers,
        }
    }

    /// Renders and queues the line of `entry`.
    pub fn log(&self, entry: &Entry) {
        self.writer.push(self.format.render(entry));
    }
}

/// Logs `entry` to each of `loggers`.
pub fn log_all(loggers: &[Arc<AccessLogger>], entry: &Entry) {
    for logger in loggers {
        logger.log(entry);
    }
}

/// Envoy's own default format, for a file access log that sets none.
pub const ENVOY_DEFAULT_FORMAT: &str = concat!(
    "[%START_TIME%] \"%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL%\" ",
    "%RESPONSE_CODE% %RESPONSE_FLAGS% %BYTES_RECEIVED% %BYTES_SENT% %DURATION% ",
    "%RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)% \"%REQ(X-FORWARDED-FOR)%\" \"%REQ(USER-AGENT)%\" ",
    "\"%REQ(X-REQUEST-ID)%\" \"%REQ(:AUTHORITY)%\" \"%UPSTREAM_HOST%\"\n"
);

/// The format of one configured log.
pub fn format_of(config: &crate::config::model::AccessLog) -> Result<Format, FormatError> {
    match (&config.json, &config.text) {
        (Some(labels), _) => Format::json(labels),
        (None, Some(text)) => Format::text(text),
        (None, None) => Format::text(ENVOY_DEFAULT_FORMAT),
    }
}

/// The loggers of a listener's `access_log`, and a (field, problem) for each one refused.
pub fn loggers(
    configs: &[crate::config::model::AccessLog],
    listener_path: &str,
) -> (Vec<Arc<AccessLogger>>, Vec<(String, String)>) {
    let mut loggers = Vec::new();
    let mut problems = Vec::new();
    for (i, config) in configs.iter().enumerate() {
        let path = format!("{listener_path}.access_log[{i}]");
        if config.path.is_empty() {
            problems.push((format!("{path}.path"), "must not be empty".to_string()));
            continue;
        }
        match format_of(config) {
            Ok(format) => loggers.push(Arc::new(AccessLogger::new(&config.path, format))),
            Err(e) => {
                let field = if config.json.is_some() {
                    "json"
                } else {
                    "text"
                };
                problems.push((format!("{path}.{field}"), e.to_string()));
            }
        }
    }
    (loggers, problems)
}
