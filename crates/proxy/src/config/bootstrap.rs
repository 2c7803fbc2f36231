//! Reads the static YAML bootstrap (`lateen-proxy --config FILE`) into a compiled snapshot.
//! Errors name the file, and the line and field where the YAML parser or the checks found
//! the problem.

use std::path::{Path, PathBuf};

use super::compile::{Problem, compile};
use super::model::ProxyConfig;
use super::snapshot::Snapshot;

#[derive(Debug, thiserror::Error)]
pub enum BootstrapError {
    #[error("{path}: cannot read: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: invalid configuration: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("{path}: invalid configuration:\n{}", list(.problems))]
    Invalid {
        path: PathBuf,
        problems: Vec<Problem>,
    },
}

fn list(problems: &[Problem]) -> String {
    problems
        .iter()
        .map(|problem| format!("  {problem}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Parses YAML text (named `path` in errors) into the configuration model.
pub fn parse(path: &Path, text: &str) -> Result<ProxyConfig, BootstrapError> {
    serde_saphyr::from_str::<ProxyConfig>(text).map_err(|err| BootstrapError::Parse {
        path: path.to_path_buf(),
        message: err.to_string(),
    })
}

/// Reads, parses and compiles the bootstrap file.
pub fn load(path: &Path) -> Result<Snapshot, BootstrapError> {
    let text = std::fs::read_to_string(path).map_err(|source| BootstrapError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let config = parse(path, &text)?;
    compile(config).map_err(|problems| BootstrapError::Invalid {
        path: path.to_path_buf(),
        problems,
    })
}
