//! Logging as istiod's flags ask for it: `--log_output_level` (Istio's `scope:level` list),
//! `--log_as_json`, `--log_target`. lateend has one scope, Istio's `default`: its level is the
//! level of every lateend log line; other scopes (`ads`, `model`, ...) name parts of istiod
//! and are accepted without effect. Without `--log_output_level`, RUST_LOG decides (then
//! `info`).

use super::IstiodFlags;

/// Where log lines go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogTarget {
    Stdout,
    Stderr,
}

/// The tracing settings the flags ask for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogSettings {
    /// An `EnvFilter` directive (`info`, `off`, ...), or None for RUST_LOG's.
    pub filter: Option<String>,
    pub json: bool,
    pub target: LogTarget,
    /// Scopes named in `--log_output_level` that lateend does not have.
    pub ignored_scopes: Vec<String>,
}

/// Istio's level name as a tracing level directive.
fn level(name: &str) -> Option<&'static str> {
    match name.trim().to_ascii_lowercase().as_str() {
        "debug" => Some("debug"),
        "info" => Some("info"),
        "warn" | "warning" => Some("warn"),
        "error" | "fatal" => Some("error"),
        "none" => Some("off"),
        _ => None,
    }
}

/// Reads the logging flags; an unknown level or target is an error naming it.
pub fn settings(flags: &IstiodFlags) -> Result<LogSettings, String> {
    let mut filter = None;
    let mut ignored_scopes = Vec::new();
    if let Some(spec) = &flags.log_output_level {
        for item in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            // Istio accepts a bare level too: it applies to the default scope.
            let (scope, name) = item.split_once(':').unwrap_or(("default", item));
            let directive = level(name).ok_or_else(|| {
                format!(
                    "--log_output_level {spec:?}: unknown level {name:?} (debug, info, warn, error, fatal or none)"
                )
            })?;
            if scope.trim() == "default" {
                filter = Some(directive.to_string());
            } else {
                ignored_scopes.push(scope.trim().to_string());
            }
        }
    }
    let target = match flags.log_target.as_deref().map(str::trim) {
        None | Some("stderr") => LogTarget::Stderr,
        Some("stdout") => LogTarget::Stdout,
        Some(other) => {
            return Err(format!(
                "--log_target {other:?}: lateend logs to stdout or stderr only"
            ));
        }
    };
    Ok(LogSettings {
        filter,
        json: flags.log_as_json.unwrap_or(false),
        target,
        ignored_scopes,
    })
}

/// Installs the global tracing subscriber for `settings`.
pub fn init(settings: &LogSettings) {
    use tracing_subscriber::EnvFilter;
    let filter = match &settings.filter {
        Some(directive) => EnvFilter::new(directive),
        None => EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
    };
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    match (settings.json, settings.target) {
        (true, LogTarget::Stdout) => builder.json().with_writer(std::io::stdout).init(),
        (true, LogTarget::Stderr) => builder.json().with_writer(std::io::stderr).init(),
        (false, LogTarget::Stdout) => builder
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
            .with_writer(std::io::stdout)
            .init(),
        (false, LogTarget::Stderr) => builder
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .with_writer(std::io::stderr)
            .init(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cmdline::istiod::Probe;
    use clap::Parser;

    fn parse(args: &[&str]) -> Result<LogSettings, String> {
        let mut argv = vec!["lateend"];
        argv.extend_from_slice(args);
        settings(
            &Probe::try_parse_from(argv)
                .map_err(|e| e.to_string())?
                .istiod,
        )
    }

    #[test]
    fn istio_levels_become_tracing_filters() {
        let s = parse(&["--log_output_level=default:info"]).unwrap();
        assert_eq!(s.filter.as_deref(), Some("info"));
        assert_eq!(s.target, LogTarget::Stderr);
        let s = parse(&["--log_output_level=ads:debug,default:none"]).unwrap();
        assert_eq!(s.filter.as_deref(), Some("off"));
        assert_eq!(s.ignored_scopes, ["ads"]);
        let s = parse(&["--log_output_level", "warn", "--log_target", "stdout"]).unwrap();
        assert_eq!(s.filter.as_deref(), Some("warn"));
        assert_eq!(s.target, LogTarget::Stdout);
        assert_eq!(parse(&[]).unwrap().filter, None);
    }

    #[test]
    fn bad_levels_and_targets_name_the_value() {
        let err = parse(&["--log_output_level=default:loud"]).unwrap_err();
        assert!(err.contains("\"loud\""), "{err}");
        let err = parse(&["--log_target=/var/log/istiod.log"]).unwrap_err();
        assert!(err.contains("/var/log/istiod.log"), "{err}");
    }
}
