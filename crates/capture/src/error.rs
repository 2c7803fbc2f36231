//! Errors of the capture crate. Each says what is wrong or missing, never just "failed".

use thiserror::Error;

#[derive(Debug, Error)]
pub enum CaptureError {
    /// A setting could not be parsed; `field` is the flag name.
    #[error("invalid value {value:?} for {field}: {reason}")]
    InvalidSetting {
        field: String,
        value: String,
        reason: String,
    },

    /// A required program is not installed (or not on PATH).
    #[error(
        "`{tool}` was not found: install the iptables package (Debian: `apt-get install iptables`) \
         and make sure it is on PATH"
    )]
    ToolMissing { tool: String },

    /// The kernel or the tool refused for lack of privileges.
    #[error(
        "`{command}` was refused ({detail}): changing iptables needs root or the NET_ADMIN \
         capability (and NET_RAW for some tables)"
    )]
    PermissionDenied { command: String, detail: String },

    /// A command ran but failed for another reason.
    #[error("`{command}` failed ({status}): {stderr}")]
    CommandFailed {
        command: String,
        status: String,
        stderr: String,
    },

    /// Applying failed and putting things back also failed: the message names both.
    #[error("{apply}; rolling back also failed: {rollback}")]
    RollbackFailed {
        apply: Box<CaptureError>,
        rollback: Box<CaptureError>,
    },

    /// Reading a local file (e.g. /etc/resolv.conf) failed.
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },

    /// Any other I/O failure while running a command.
    #[error("cannot run `{command}`: {source}")]
    Io {
        command: String,
        source: std::io::Error,
    },
}

impl CaptureError {
    pub(crate) fn invalid(field: &str, value: &str, reason: &str) -> Self {
        Self::InvalidSetting {
            field: field.to_owned(),
            value: value.to_owned(),
            reason: reason.to_owned(),
        }
    }
}
