//! Starts the built `lateend` on a config folder with every listener on 127.0.0.1 port 0 and
//! reads the ports it bound from its log, so no other test on the machine can take a port
//! between choosing and binding it. [`local`]: lateend as the mesh CA of one machine, with
//! bootstrap tokens.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::{DEADLINE, Process, get, wait_until};

pub struct Lateend {
    pub process: Process,
    pub xds: u16,
    pub xds_tls: u16,
    pub debug: u16,
    pub webhook: u16,
}

/// lateend on `config`, logging into `work/lateend.log`, with `extra` arguments; waits
/// (bounded) until its debug port answers. Panics with the log when it does not start.
pub async fn start_lateend(config: &Path, work: &Path, extra: &[&std::ffi::OsStr]) -> Lateend {
    let mut command = Command::new(env!("CARGO_BIN_EXE_lateend"));
    command.arg("--config-dir").arg(config);
    start_lateend_with(command, work, extra).await
}

/// [`start_lateend`] from a prepared command (lateend, or a wrapper running it, with its
/// source arguments), adding the loopback addresses and `extra`.
pub async fn start_lateend_with(
    mut command: Command,
    work: &Path,
    extra: &[&std::ffi::OsStr],
) -> Lateend {
    let log = work.join("lateend.log");
    let child = command
        .args(["--xds-address", "127.0.0.1:0"])
        .args(["--xds-tls-address", "127.0.0.1:0"])
        .args(["--debug-address", "127.0.0.1:0"])
        .args(["--http-address", "127.0.0.1:0"])
        .args(["--webhook-address", "127.0.0.1:0"])
        .args(extra)
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).expect("lateend log"))
        .spawn()
        .expect("spawn lateend");
    let mut process = Process {
        child: lateen_test_support::process::ChildGuard::new(child),
        log,
        admin_path: None,
    };
    let deadline = Instant::now() + DEADLINE;
    let (xds, xds_tls, debug, webhook) = loop {
        let log = process.log();
        let bound = |what: &str| lateen_test_support::probe::logged_port(&log, what);
        let found = (
            bound("serving xDS (ADS over plaintext gRPC)"),
            bound("serving xDS (ADS over TLS)"),
            bound("serving debug endpoints and metrics"),
            bound("serving the sidecar-injection webhook"),
        );
        if let (Some(a), Some(b), Some(c), Some(d)) = found {
            break (a, b, c, d);
        }
        if Instant::now() > deadline || process.child.try_wait().ok().flatten().is_some() {
            panic!("lateend did not start:\n{}", process.log_tail());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    wait_until("lateend debug port", || async {
        get(debug, "x", "/ready", &[]).await.is_some()
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", process.log_tail()));
    Lateend {
        process,
        xds,
        xds_tls,
        debug,
        webhook,
    }
}

/// Whether /debug/syncz shows every one of `ids` with CDS/EDS/LDS/RDS SYNCED and no NACK.
pub async fn all_synced(debug: u16, ids: &[&str]) -> bool {
    let Some((200, body)) = get(debug, "x", "/debug/syncz", &[]).await else {
        return false;
    };
    let rows: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
    let rows = rows.as_array().cloned().unwrap_or_default();
    ids.iter().all(|id| {
        rows.iter().any(|r| {
            r["proxy"] == *id
                && ["cds", "eds", "lds", "rds"]
                    .iter()
                    .all(|t| r[t] == "SYNCED")
                && r["types"]
                    .as_object()
                    .is_some_and(|t| t.values().all(|v| v["last_nack"].is_null()))
        })
    })
}

/// lateend as the mesh CA of one machine.
pub struct Local {
    pub lateend: Lateend,
    /// The mesh root lateend wrote out (`--webhook-ca-out`).
    pub root: PathBuf,
    /// The bootstrap tokens' folder: `NS/SA/istio-token`.
    pub tokens: PathBuf,
    /// lateend's CA files (`--ca-dir`).
    pub ca_dir: PathBuf,
}

/// lateend on an empty folder with its CA in `work/ca` and bootstrap tokens for
/// default/reviews and default/ratings in `work/tokens`.
pub async fn local(work: &Path, extra: &[&str]) -> Local {
    let config = work.join("config");
    std::fs::create_dir_all(&config).expect("config dir");
    let root = work.join("root-cert.pem");
    let tokens = work.join("tokens");
    let ca_dir = work.join("ca");
    let mut args: Vec<std::ffi::OsString> = vec![
        "--ca-dir".into(),
        ca_dir.clone().into(),
        "--cacerts-dir".into(),
        work.join("no-cacerts").into(),
        "--webhook-ca-out".into(),
        root.clone().into(),
        "--bootstrap-token-dir".into(),
        tokens.clone().into(),
        "--bootstrap-identity".into(),
        "default/reviews".into(),
        "--bootstrap-identity".into(),
        "default/ratings".into(),
    ];
    args.extend(extra.iter().map(Into::into));
    let refs: Vec<&std::ffi::OsStr> = args.iter().map(|a| a.as_os_str()).collect();
    let lateend = start_lateend(&config, work, &refs).await;
    Local {
        lateend,
        root,
        tokens,
        ca_dir,
    }
}

impl Local {
    /// A workload certificate for `namespace/service_account` signed by lateend's own CA, as
    /// its certificate API would issue it.
    pub fn workload_certificate(
        &self,
        namespace: &str,
        service_account: &str,
    ) -> lateen_identity::WorkloadCertificate {
        use lateen_identity::{CaFiles, CertificateRequest, Identity, MeshCa, SigningPolicy};
        let files = CaFiles::read_dir(&self.ca_dir).expect("lateend's CA files");
        let ca = MeshCa::from_files(files).expect("lateend's CA");
        let identity = Identity::new("cluster.local", namespace, service_account);
        let request = CertificateRequest::generate(&identity).expect("CSR");
        let chain = ca
            .sign_csr(
                request.csr_pem.as_bytes(),
                &identity,
                None,
                &SigningPolicy::default(),
            )
            .expect("sign")
            .expect("a CSR for the caller's own identity");
        request
            .into_certificate(&chain, Vec::new())
            .expect("certificate")
    }

    /// The bootstrap token file of `NS/SA`.
    pub fn token(&self, namespace: &str, service_account: &str) -> PathBuf {
        self.tokens
            .join(namespace)
            .join(service_account)
            .join("istio-token")
    }

    /// Istio's injected environment for a sidecar of `default/SA` that reaches this lateend's
    /// CA over TLS with its bootstrap token, as `lateen-proxy agent`/`sidecar` read it.
    pub fn agent_env(&self, service_account: &str) -> std::collections::BTreeMap<String, String> {
        self.agent_env_in("default", service_account)
    }

    /// [`Local::agent_env`] for a workload of `namespace/SA`.
    pub fn agent_env_in(
        &self,
        namespace: &str,
        service_account: &str,
    ) -> std::collections::BTreeMap<String, String> {
        [
            ("XDS_ROOT_CA", self.root.display().to_string()),
            ("ISTIOD_SAN", "lateend.istio-system.svc".to_string()),
            (
                "JWT_PATH",
                self.token(namespace, service_account).display().to_string(),
            ),
            ("POD_NAMESPACE", namespace.to_string()),
            ("SERVICE_ACCOUNT", service_account.to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }

    /// The CA client configuration of `default/SA` (the one `lateen-proxy agent` builds from
    /// [`Local::agent_env`]), asking for `ttl` (`None`: lateend's `--workload-cert-ttl`).
    pub fn ca_client(
        &self,
        service_account: &str,
        ttl: Option<Duration>,
    ) -> lateen_proxy::xds::ca_client::CaClientConfig {
        self.ca_client_in("default", service_account, ttl)
    }

    /// [`Local::ca_client`] for a workload of `namespace/SA`.
    pub fn ca_client_in(
        &self,
        namespace: &str,
        service_account: &str,
        ttl: Option<Duration>,
    ) -> lateen_proxy::xds::ca_client::CaClientConfig {
        let args = lateen_proxy::xds::sds_agent::AgentArgs {
            ca_address: Some(format!("127.0.0.1:{}", self.lateend.xds_tls)),
            discovery_address: None,
            sds_socket: PathBuf::from("unused"),
            secret_ttl: ttl,
            log_level: "info".into(),
        };
        lateen_proxy::xds::sds_agent::ca_client_config(
            &args,
            &self.agent_env_in(namespace, service_account),
        )
        .expect("CA client configuration from Istio's environment")
    }
}
