//! Runs external tools (iptables-restore, iptables-save, ip), optionally behind a command prefix
//! such as `ip netns exec NAME`, and turns their failures into errors that say what is missing.

use std::io::Write as _;
use std::process::{Command, Stdio};

use crate::error::CaptureError;

/// Runs commands, each behind the same prefix (empty: run directly).
#[derive(Debug, Clone, Default)]
pub struct CommandRunner {
    prefix: Vec<String>,
}

impl CommandRunner {
    /// Runs commands directly in the current network namespace.
    pub fn direct() -> Self {
        Self::default()
    }

    /// Runs every command as `prefix... program args...` (e.g. `ip netns exec NS`).
    pub fn with_prefix(prefix: Vec<String>) -> Self {
        Self { prefix }
    }

    /// Runs `program args`, feeding `stdin`, and returns its stdout.
    pub fn run(
        &self,
        program: &str,
        args: &[&str],
        stdin: Option<&str>,
    ) -> Result<String, CaptureError> {
        let (exe, rest): (&str, Vec<&str>) = match self.prefix.split_first() {
            Some((first, tail)) => {
                let mut rest: Vec<&str> = tail.iter().map(String::as_str).collect();
                rest.push(program);
                rest.extend_from_slice(args);
                (first.as_str(), rest)
            }
            None => (program, args.to_vec()),
        };
        let shown = describe(program, args);
        let mut child = Command::new(exe)
            .args(&rest)
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|source| match source.kind() {
                std::io::ErrorKind::NotFound => CaptureError::ToolMissing {
                    tool: exe.to_owned(),
                },
                std::io::ErrorKind::PermissionDenied => CaptureError::PermissionDenied {
                    command: shown.clone(),
                    detail: source.to_string(),
                },
                _ => CaptureError::Io {
                    command: shown.clone(),
                    source,
                },
            })?;
        if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
            // A tool that exits early closes the pipe; its exit status tells the real story.
            let _ = pipe.write_all(input.as_bytes());
        }
        let output = child
            .wait_with_output()
            .map_err(|source| CaptureError::Io {
                command: shown.clone(),
                source,
            })?;
        if output.status.success() {
            return Ok(String::from_utf8_lossy(&output.stdout).into_owned());
        }
        let stderr = String::from_utf8_lossy(&output.stderr).trim().to_owned();
        Err(classify(program, shown, output.status.to_string(), stderr))
    }
}

fn describe(program: &str, args: &[&str]) -> String {
    std::iter::once(program)
        .chain(args.iter().copied())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Names the cause of a failed run: missing tool (reported by a prefix like `ip netns exec`),
/// missing privileges, or anything else with the tool's own message.
fn classify(program: &str, command: String, status: String, stderr: String) -> CaptureError {
    let lower = stderr.to_ascii_lowercase();
    // `ip netns exec` says "exec of X failed", `env` says "'X': No such file or directory".
    let names_program = lower.contains("exec of") || stderr.contains(program);
    if names_program && lower.contains("no such file") {
        return CaptureError::ToolMissing {
            tool: program.to_owned(),
        };
    }
    let denied = [
        "permission denied",
        "must be root",
        "operation not permitted",
    ];
    if denied.iter().any(|d| lower.contains(d)) {
        return CaptureError::PermissionDenied {
            command,
            detail: stderr,
        };
    }
    CaptureError::CommandFailed {
        command,
        status,
        stderr,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_program_is_named() {
        let err = CommandRunner::direct()
            .run("lateen-no-such-tool", &[], None)
            .unwrap_err();
        assert!(
            matches!(err, CaptureError::ToolMissing { ref tool } if tool == "lateen-no-such-tool")
        );
        assert!(err.to_string().contains("lateen-no-such-tool"));
    }

    #[test]
    fn permission_errors_mention_net_admin() {
        let err = classify("iptables-restore", "iptables-restore".into(), "exit 4".into(),
            "iptables-restore v1.8.9 (nf_tables): Could not fetch rule set generation id: Permission denied (you must be root)".into());
        assert!(err.to_string().contains("NET_ADMIN"));
    }

    #[test]
    fn missing_program_behind_a_prefix_is_named() {
        let runner = CommandRunner::with_prefix(vec!["env".into(), "PATH=/nonexistent".into()]);
        let err = runner
            .run("iptables-restore", &["--noflush"], Some(""))
            .unwrap_err();
        assert!(
            matches!(err, CaptureError::ToolMissing { ref tool } if tool == "iptables-restore"),
            "{err:?}"
        );
    }

    #[test]
    fn prefix_is_used_and_stdout_returned() {
        let runner = CommandRunner::with_prefix(vec!["env".into()]);
        let out = runner.run("cat", &[], Some("hello")).unwrap();
        assert_eq!(out, "hello");
    }
}
