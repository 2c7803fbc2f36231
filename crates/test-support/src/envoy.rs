//! Real Envoy with a static configuration as a child process: its admin on 127.0.0.1 port 0
//! (read back from `--admin-address-path`), ready when `/ready` answers `LIVE`, killed on drop.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::process::ChildGuard;
use std::time::{Duration, Instant};

pub struct EnvoyProcess {
    child: ChildGuard,
    pub admin: SocketAddr,
    pub log: PathBuf,
}

impl EnvoyProcess {
    /// Starts `binary` on `config` (YAML whose `admin` is `127.0.0.1:0`), files in `dir`, and
    /// waits up to 20 s for it to be ready.
    pub fn start(binary: &Path, dir: &Path, config: &str) -> anyhow::Result<EnvoyProcess> {
        let config_path = dir.join("envoy.yaml");
        std::fs::write(&config_path, config)?;
        let admin_path = dir.join("envoy-admin.address");
        let log = dir.join("envoy.log");
        let child = Command::new(binary)
            .arg("-c")
            .arg(&config_path)
            .args(["--concurrency", "1", "--disable-hot-restart"])
            .args(["--log-level", "info"])
            .arg("--admin-address-path")
            .arg(&admin_path)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log)?)
            .spawn()?;
        let mut envoy = EnvoyProcess {
            child: ChildGuard::new(child),
            admin: SocketAddr::from(([127, 0, 0, 1], 0)),
            log,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = envoy.child.try_wait() {
                anyhow::bail!("envoy exited ({status}):\n{}", envoy.log_text());
            }
            if let Some(admin) = std::fs::read_to_string(&admin_path)
                .ok()
                .and_then(|text| text.trim().parse().ok())
            {
                envoy.admin = admin;
                if envoy
                    .admin_get("/ready")
                    .is_ok_and(|body| body.contains("LIVE"))
                {
                    return Ok(envoy);
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        anyhow::bail!("envoy not ready in 20 s:\n{}", envoy.log_text())
    }

    /// The body of an admin GET (`/stats`, `/ready`, ...).
    pub fn admin_get(&self, path: &str) -> std::io::Result<String> {
        let mut stream = TcpStream::connect_timeout(&self.admin, Duration::from_secs(2))?;
        stream.set_read_timeout(Some(Duration::from_secs(5)))?;
        // HTTP/1.1: Envoy answers HTTP/1.0 with 426.
        write!(
            stream,
            "GET {path} HTTP/1.1\r\nHost: admin\r\nConnection: close\r\n\r\n"
        )?;
        let mut response = String::new();
        stream.read_to_string(&mut response)?;
        Ok(response
            .split_once("\r\n\r\n")
            .map(|(_, body)| body.to_string())
            .unwrap_or_default())
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}
