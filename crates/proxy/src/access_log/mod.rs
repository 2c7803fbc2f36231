//! Envoy's file access log (`envoy.access_loggers.file`) in lateen-proxy: the format (text
//! with command operators, or JSON) is parsed when the configuration is compiled
//! ([`format`]), each finished request or connection becomes an [`Entry`], and its line goes
//! to the file's writer thread through a bounded queue ([`writer`]). A log with a CEL filter
//! ([`cel`]) writes only the entries the expression is `true` for.

pub mod cel;
pub mod entry;
pub mod format;
mod tcp;
mod text_out;
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
    /// The format's and the filter's.
    pub request_headers: Vec<http::HeaderName>,
    pub response_headers: Vec<http::HeaderName>,
    /// The filter reads a header map as a whole: every header is kept.
    pub all_request_headers: bool,
    pub all_response_headers: bool,
    pub filter: Option<cel::Program>,
}

impl AccessLogger {
    pub fn new(path: &str, format: Format, filter: Option<cel::Program>) -> Self {
        let (mut request_headers, mut response_headers) = format.headers();
        let mut all_request_headers = false;
        let mut all_response_headers = false;
        if let Some(program) = &filter {
            merge(
                &mut request_headers,
                &mut all_request_headers,
                program.request_headers(),
            );
            merge(
                &mut response_headers,
                &mut all_response_headers,
                program.response_headers(),
            );
        }
        AccessLogger {
            format,
            writer: writer::writer_for(path),
            request_headers,
            response_headers,
            all_request_headers,
            all_response_headers,
            filter,
        }
    }

    /// Renders and queues the line of `entry`, unless the filter says otherwise.
    pub fn log(&self, entry: &Entry) {
        if let Some(filter) = &self.filter
            && !filter.matches(entry)
        {
            return;
        }
        thread_local! {
            /// Each worker renders into its own reused buffer: no allocation per line.
            static LINE: std::cell::RefCell<String> = std::cell::RefCell::new(String::with_capacity(512));
        }
        LINE.with(|line| match line.try_borrow_mut() {
            Ok(mut line) => {
                line.clear();
                self.format.render_into(entry, &mut line);
                self.writer.push(&line);
                // A huge line (long headers) does not keep its memory on the thread.
                line.shrink_to(4096);
            }
            Err(_) => self.writer.push(&self.format.render(entry)),
        });
    }
}

/// Adds the headers a filter reads to those the format reads (`None`: all of them).
fn merge(names: &mut Vec<http::HeaderName>, all: &mut bool, wanted: Option<&[http::HeaderName]>) {
    match wanted {
        None => *all = true,
        Some(wanted) => {
            for name in wanted {
                if !names.contains(name) {
                    names.push(name.clone());
                }
            }
        }
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
        let filter = match config
            .filter
            .as_deref()
            .map(cel::Program::compile)
            .transpose()
        {
            Ok(filter) => filter,
            Err(e) => {
                problems.push((format!("{path}.filter"), e.to_string()));
                continue;
            }
        };
        match format_of(config) {
            Ok(format) => loggers.push(Arc::new(AccessLogger::new(&config.path, format, filter))),
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
