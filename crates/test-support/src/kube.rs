//! [`TestCluster`]: a real Kubernetes control plane on loopback for tests — etcd, kube-apiserver
//! (RBAC on, admission webhooks on, service-account tokens) and kube-controller-manager (every
//! default controller but node-lifecycle), built from Go modules by `scripts/kube-test-bins.sh`.
//! There is no kubelet and no scheduler: [`kubelet`] has what a test needs to act as one, and
//! `container_command` runs a stored Pod's container as a process the way a kubelet would
//! ([`container`] resolves its arguments and environment). `set_host` decides where the API
//! server's calls to `NAME.NAMESPACE.svc` (webhooks by `service:` reference) land.
//! `docs/test-cluster.md` is the guide.
//!
//! ```ignore
//! let Some(cluster) = TestCluster::start_or_skip("my_test") else { return };
//! cluster.kubectl(&["create", "namespace", "demo"], None);
//! let client = cluster.client().await;
//! ```
//!
//! Everything lives in one temp dir (logs `etcd.log`, `kube-apiserver.log`,
//! `kube-controller-manager.log`, `host-proxy.log`; their tails are printed when a start fails);
//! every process dies when the cluster is dropped or the test binary exits.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

mod bins;
pub mod container;
mod etcd;
mod flags;
mod host_proxy;
mod identity;
pub mod kubelet;
mod pki;
mod pod_process;
pub use pod_process::{PodRun, VolumeSource, pod_container_command, prefixed};
mod procs;

use flags::{apiserver_args, apiserver_env, controller_manager_args, etcd_args};
use host_proxy::HostProxy;
use procs::{Keeper, Proc};

/// The API server's `--service-account-issuer` (what in-cluster tokens carry as `iss`).
pub const SERVICE_ACCOUNT_ISSUER: &str = "https://kubernetes.default.svc.cluster.local";
/// The API server's `--service-cluster-ip-range`: an allocation range only — no traffic may go
/// there (there is no kube-proxy; see `set_host` for reaching Services).
pub const SERVICE_CLUSTER_IP_RANGE: &str = "10.96.0.0/16";

const ETCD_START: Duration = Duration::from_secs(30);
const APISERVER_START: Duration = Duration::from_secs(120);
const CONTROLLERS_START: Duration = Duration::from_secs(60);

/// A running control plane; dropping it kills every process and removes its files.
pub struct TestCluster {
    bin: PathBuf,
    pki: pki::Pki,
    etcd_port: u16,
    api_port: u16,
    admin_kubeconfig: PathBuf,
    host_proxy: HostProxy,
    apiserver: Mutex<Proc>,
    controller_manager: Mutex<Proc>,
    etcd: Mutex<Proc>,
    files: AtomicU64,
    // Dropped after the processes (fields drop in order), so nothing outlives its keeper.
    keeper: Keeper,
    dir: tempfile::TempDir,
}

impl TestCluster {
    /// A fresh cluster, or `None` (with a NOTICE naming `test`) when the Kubernetes binaries are
    /// not built; under CI (`LATEEN_REQUIRE_TOOLS`) missing binaries fail instead. Panics with
    /// the components' log tails when they are there but the cluster does not come up.
    pub fn start_or_skip(test: &str) -> Option<TestCluster> {
        let bin = bin_or_skip(test)?;
        match TestCluster::start_from(bin) {
            Ok(cluster) => Some(cluster),
            Err(e) => panic!("the test cluster for {test} did not start: {e:#}"),
        }
    }

    /// One cluster for every test of this test binary that asks (started by the first), or
    /// `None` to skip as [`start_or_skip`](Self::start_or_skip). Give each test its own
    /// namespaces. Its processes end when the test binary exits.
    pub fn shared(test: &str) -> Option<&'static TestCluster> {
        static SHARED: OnceLock<Result<TestCluster, String>> = OnceLock::new();
        let bin = bin_or_skip(test)?;
        match SHARED.get_or_init(|| TestCluster::start_from(bin).map_err(|e| format!("{e:#}"))) {
            Ok(cluster) => Some(cluster),
            Err(e) => panic!("the shared test cluster (asked for by {test}) did not start: {e}"),
        }
    }

    /// Starts a cluster from the binaries in `bin` (see `scripts/kube-test-bins.sh`).
    pub fn start_from(bin: PathBuf) -> anyhow::Result<TestCluster> {
        let mut last = None;
        // Ports are chosen at random; another test may take one between choice and bind.
        for _ in 0..3 {
            match TestCluster::try_start(bin.clone()) {
                Ok(cluster) => return Ok(cluster),
                Err(e)
                    if format!("{e:#}")
                        .to_ascii_lowercase()
                        .contains("address already in use") =>
                {
                    last = Some(e)
                }
                Err(e) => return Err(e),
            }
        }
        Err(last.unwrap_or_else(|| anyhow::anyhow!("no start attempt")))
    }

    fn try_start(bin: PathBuf) -> anyhow::Result<TestCluster> {
        let started = Instant::now();
        remove_stale_dirs();
        let dir = tempfile::Builder::new()
            .prefix(DIR_PREFIX)
            .tempdir()
            .context("creating the test cluster's temp dir")?;
        std::fs::write(dir.path().join(OWNER_FILE), std::process::id().to_string())
            .context("writing the test cluster's owner file")?;
        let pki = pki::generate(dir.path())?;
        let keeper = Keeper::new().context("starting the process keeper thread")?;
        let host_proxy = HostProxy::start(crate::free_port(), &dir.path().join("host-proxy.log"))
            .context("starting the API server's service-name proxy")?;
        // Distinct: free_port never hands out a port twice.
        let (etcd_port, etcd_peer_port, api_port) =
            (crate::free_port(), crate::free_port(), crate::free_port());
        let admin_kubeconfig = dir.path().join("admin.kubeconfig");
        let server = format!("https://127.0.0.1:{api_port}");
        std::fs::write(
            &admin_kubeconfig,
            pki::kubeconfig_text(&server, &pki.ca_cert, "lateen-test-admin", &pki.admin_token),
        )
        .context("writing the admin kubeconfig")?;

        let etcd = Proc::start(
            &keeper,
            "etcd",
            &bin.join("etcd"),
            &etcd_args(dir.path(), etcd_port, etcd_peer_port),
            &[],
            &dir.path().join("etcd.log"),
        )?;
        let mut etcd = Mutex::new(etcd);
        wait_for(&mut etcd, "etcd healthy", ETCD_START, || {
            etcd::healthy(etcd_port)
        })?;

        let apiserver = Mutex::new(Proc::start(
            &keeper,
            "kube-apiserver",
            &bin.join("kube-apiserver"),
            &apiserver_args(&pki, etcd_port, api_port),
            &apiserver_env(host_proxy.port()),
            &dir.path().join("kube-apiserver.log"),
        )?);
        let controller_manager = Mutex::new(Proc::start(
            &keeper,
            "kube-controller-manager",
            &bin.join("kube-controller-manager"),
            &controller_manager_args(&pki, &admin_kubeconfig),
            &[],
            &dir.path().join("kube-controller-manager.log"),
        )?);
        let cluster = TestCluster {
            bin,
            pki,
            etcd_port,
            api_port,
            admin_kubeconfig,
            host_proxy,
            apiserver,
            controller_manager,
            etcd,
            files: AtomicU64::new(0),
            keeper,
            dir,
        };
        cluster.wait_apiserver_ready()?;
        // kube-controller-manager works once the `default` namespace has its `default`
        // ServiceAccount (which every namespace needs before it can hold a Pod).
        cluster.wait_controllers()?;
        eprintln!(
            "test cluster up in {:.1}s at {} (files in {})",
            started.elapsed().as_secs_f64(),
            cluster.server_url(),
            cluster.dir.path().display()
        );
        Ok(cluster)
    }

    fn wait_apiserver_ready(&self) -> anyhow::Result<()> {
        let mut apiserver = self
            .apiserver
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        wait_for_proc(
            &mut apiserver,
            "kube-apiserver /readyz",
            APISERVER_START,
            || self.kubectl_quiet(&["get", "--raw", "/readyz"]),
        )
    }

    fn wait_controllers(&self) -> anyhow::Result<()> {
        let mut kcm = self
            .controller_manager
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        wait_for_proc(
            &mut kcm,
            "the default ServiceAccount of namespace default",
            CONTROLLERS_START,
            || self.kubectl_quiet(&["get", "serviceaccount", "default", "-n", "default"]),
        )
    }

    /// Whether a kubectl call succeeds; each call bounded (a wedged server cannot stall a wait).
    fn kubectl_quiet(&self, args: &[&str]) -> bool {
        self.kubectl_command(args)
            .arg("--request-timeout=5s")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    /// The admin (`system:masters`) kubeconfig.
    pub fn kubeconfig(&self) -> &Path {
        &self.admin_kubeconfig
    }

    /// `https://127.0.0.1:PORT`.
    pub fn server_url(&self) -> String {
        format!("https://127.0.0.1:{}", self.api_port)
    }

    /// The API server's port on 127.0.0.1.
    pub fn api_port(&self) -> u16 {
        self.api_port
    }

    /// The CA (PEM) that signed the API server's certificate; kube-controller-manager publishes
    /// it as `kube-root-ca.crt` in every namespace.
    pub fn ca_pem(&self) -> &str {
        &self.pki.ca_pem
    }

    /// The CA's certificate file.
    pub fn ca_file(&self) -> &Path {
        &self.pki.ca_cert
    }

    /// The bearer token of the admin.
    pub fn admin_token(&self) -> &str {
        &self.pki.admin_token
    }

    /// The folder of the Kubernetes binaries (kubectl is `bin_dir().join("kubectl")`).
    pub fn bin_dir(&self) -> &Path {
        &self.bin
    }

    /// The cluster's temp dir (logs, certificates, kubeconfigs).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// A `kube::Client` as the admin.
    pub async fn client(&self) -> ::kube::Client {
        client_for(&self.admin_kubeconfig)
            .await
            .unwrap_or_else(|e| panic!("admin client for the test cluster: {e:#}"))
    }

    /// kubectl with the admin kubeconfig, not yet run.
    pub fn kubectl_command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(self.bin.join("kubectl"));
        // Its discovery cache in the cluster's dir: not in ~/.kube, where every random port
        // would leave a folder behind.
        command
            .arg("--kubeconfig")
            .arg(&self.admin_kubeconfig)
            .arg("--cache-dir")
            .arg(self.dir.path().join("kubectl-cache"))
            .args(args);
        command
    }

    /// Runs kubectl as the admin with `stdin` (if any) and returns its output; never panics on
    /// kubectl's own failure (check `status`).
    pub fn kubectl(&self, args: &[&str], stdin: Option<&[u8]>) -> Output {
        run_with_stdin(self.kubectl_command(args), stdin).unwrap_or_else(|e| {
            panic!("running kubectl {args:?}: {e}");
        })
    }

    /// Runs kubectl as the admin; its stdout, or an error holding its stderr.
    pub fn kubectl_ok(&self, args: &[&str], stdin: Option<&[u8]>) -> anyhow::Result<String> {
        let out = self.kubectl(args, stdin);
        if !out.status.success() {
            bail!(
                "kubectl {} failed ({}): {}",
                args.join(" "),
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// `kubectl apply -f -` of `yaml` as the admin (server-side validation, as a user would).
    pub fn apply(&self, yaml: &str) -> anyhow::Result<String> {
        self.kubectl_ok(&["apply", "-f", "-"], Some(yaml.as_bytes()))
    }

    /// Waits (up to a minute) until every CustomResourceDefinition is `Established`, so that
    /// resources of the kinds just applied can be created.
    pub fn wait_crds_established(&self) -> anyhow::Result<()> {
        self.kubectl_ok(
            &[
                "wait",
                "--for=condition=Established",
                "--timeout=60s",
                "crd",
                "--all",
            ],
            None,
        )
        .map(drop)
    }

    /// Creates namespace `name` with `labels` (e.g. `istio-injection=enabled`) and waits until
    /// kube-controller-manager has given it its `default` ServiceAccount, without which no Pod
    /// can be created there, and its `kube-root-ca.crt` ConfigMap, which every pod mounts.
    pub async fn create_namespace(
        &self,
        name: &str,
        labels: &[(&str, &str)],
    ) -> anyhow::Result<()> {
        use ::kube::api::{Api, PostParams};
        use k8s_openapi::api::core::v1::{ConfigMap, Namespace, ServiceAccount};
        let client = self.client().await;
        let labels: serde_json::Map<String, serde_json::Value> = labels
            .iter()
            .map(|(k, v)| (k.to_string(), serde_json::Value::from(*v)))
            .collect();
        let namespace: Namespace = serde_json::from_value(serde_json::json!({
            "metadata": { "name": name, "labels": labels }
        }))?;
        Api::<Namespace>::all(client.clone())
            .create(&PostParams::default(), &namespace)
            .await
            .with_context(|| format!("creating namespace {name}"))?;
        let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), name);
        let config_maps: Api<ConfigMap> = Api::namespaced(client, name);
        let deadline = Instant::now() + CONTROLLERS_START;
        while accounts.get_opt("default").await?.is_none()
            || config_maps.get_opt("kube-root-ca.crt").await?.is_none()
        {
            if Instant::now() > deadline {
                bail!(
                    "namespace {name} got no default ServiceAccount or kube-root-ca.crt in \
                     {CONTROLLERS_START:?}"
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(())
    }

    /// From now on the API server (and only it) reaches `name` (e.g. `lateend.istio-system.svc`,
    /// as a webhook's `service:` reference is called) at `ip`, on the port it asked for.
    pub fn set_host(&self, name: &str, ip: IpAddr) {
        self.host_proxy.set_host(name, ip);
    }

    /// From now on the API server reaches `name:port` at `to` — like a Service port mapped to its
    /// targetPort (e.g. `istiod.istio-system.svc`, 443 → 127.0.0.7:15017). Wins over `set_host`.
    pub fn set_host_port(&self, name: &str, port: u16, to: SocketAddr) {
        self.host_proxy.set_host_port(name, port, to);
    }

    /// Kills the API server and starts it again on the same port over the same etcd: every
    /// watch is cut; a client resuming from its last resourceVersion continues. Returns when it
    /// is ready again.
    pub fn restart_apiserver(&self) -> anyhow::Result<()> {
        self.stop_apiserver();
        self.start_apiserver()
    }

    /// Kills the API server (SIGKILL: connections reset, as in a crash); clients see it down
    /// until [`start_apiserver`](Self::start_apiserver). etcd and the controllers keep running.
    pub fn stop_apiserver(&self) {
        self.apiserver
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .kill();
    }

    /// Starts the API server again after [`stop_apiserver`](Self::stop_apiserver) (same port,
    /// same etcd); returns when it is ready. Starting one that runs kills it first.
    pub fn start_apiserver(&self) -> anyhow::Result<()> {
        {
            let mut apiserver = self
                .apiserver
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            apiserver.kill();
            *apiserver = Proc::start(
                &self.keeper,
                "kube-apiserver",
                &self.bin.join("kube-apiserver"),
                &apiserver_args(&self.pki, self.etcd_port, self.api_port),
                &apiserver_env(self.host_proxy.port()),
                &self.dir.path().join("kube-apiserver.log"),
            )?;
        }
        self.wait_apiserver_ready()
    }

    /// Makes every resumed watch fail with `410 Gone`, as after a long disconnection: compacts
    /// etcd at its current revision and restarts the API server (cutting every watch). A watch
    /// from a resourceVersion older than this call is refused with `410 Gone` ("The
    /// resourceVersion for the provided watch is too old."), so a client must relist. Returns
    /// the compacted revision.
    pub fn expire_watches(&self) -> anyhow::Result<i64> {
        let revision = etcd::compact(self.etcd_port).context("compacting etcd")?;
        self.restart_apiserver()?;
        Ok(revision)
    }

    /// etcd's current revision: the newest resourceVersion any object can have.
    pub fn etcd_revision(&self) -> anyhow::Result<i64> {
        etcd::revision(self.etcd_port)
    }

    /// A file name in the cluster's dir that no other call returned.
    fn unique_path(&self, stem: &str) -> PathBuf {
        let n = self.files.fetch_add(1, Ordering::Relaxed);
        self.dir.path().join(format!("{stem}-{n}"))
    }

    /// The tail of each component's log, for a failure message.
    pub fn log_tails(&self, lines: usize) -> String {
        let mut out = String::new();
        for proc in [&self.etcd, &self.apiserver, &self.controller_manager] {
            let proc = proc.lock().unwrap_or_else(PoisonError::into_inner);
            out.push_str(&format!(
                "--- {} ({}):\n{}\n",
                proc.name,
                proc.log().display(),
                proc.log_tail(lines)
            ));
        }
        out
    }
}

impl Drop for TestCluster {
    fn drop(&mut self) {
        // Controllers first, so nothing logs a storm of errors about a vanished API server.
        for proc in [&self.controller_manager, &self.apiserver, &self.etcd] {
            proc.lock().unwrap_or_else(PoisonError::into_inner).kill();
        }
    }
}

/// The temp dirs of test clusters are `$TMPDIR/lateen-kube-*`.
const DIR_PREFIX: &str = "lateen-kube-";
/// The pid of the test process that made a cluster dir.
const OWNER_FILE: &str = "owner.pid";

/// Removes the dirs of clusters whose test process is gone: a shared cluster lives in a
/// `static`, which is never dropped, so its dir outlives the test binary.
fn remove_stale_dirs() {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let ours = path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with(DIR_PREFIX));
        let Ok(owner) = std::fs::read_to_string(path.join(OWNER_FILE)) else {
            continue;
        };
        if ours && !Path::new("/proc").join(owner.trim()).exists() {
            let _ = std::fs::remove_dir_all(&path);
        }
    }
}

/// The folder of the Kubernetes binaries (never builds them), or why there is none.
pub fn bin_dir() -> Result<PathBuf, String> {
    bins::find()
}

/// The binaries' folder, or `None` after a NOTICE (a panic under CI).
fn bin_or_skip(test: &str) -> Option<PathBuf> {
    match bins::find() {
        Ok(bin) => Some(bin),
        Err(why) if crate::tools_required() => panic!("{test}: {why}"),
        Err(why) => {
            eprintln!("NOTICE: {why}; skipping {test}");
            None
        }
    }
}

/// A kube client from a kubeconfig file.
pub async fn client_for(kubeconfig: &Path) -> anyhow::Result<::kube::Client> {
    let file = ::kube::config::Kubeconfig::read_from(kubeconfig)
        .with_context(|| format!("reading {}", kubeconfig.display()))?;
    let config = ::kube::Config::from_custom_kubeconfig(file, &Default::default())
        .await
        .with_context(|| format!("loading {}", kubeconfig.display()))?;
    ::kube::Client::try_from(config).context("building the kube client")
}

/// Polls `ready` every 200 ms until it holds, `timeout` passes, or the process exits.
fn wait_for(
    proc: &mut Mutex<Proc>,
    what: &str,
    timeout: Duration,
    ready: impl FnMut() -> bool,
) -> anyhow::Result<()> {
    let proc = proc.get_mut().unwrap_or_else(PoisonError::into_inner);
    wait_for_proc(proc, what, timeout, ready)
}

fn wait_for_proc(
    proc: &mut Proc,
    what: &str,
    timeout: Duration,
    mut ready: impl FnMut() -> bool,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        if ready() {
            return Ok(());
        }
        if let Some(status) = proc.exited() {
            bail!(
                "{} exited ({status}) while waiting for {what}; {}:\n{}",
                proc.name,
                proc.log().display(),
                proc.log_tail(40)
            );
        }
        if Instant::now() > deadline {
            bail!(
                "no {what} after {timeout:?}; {}:\n{}",
                proc.log().display(),
                proc.log_tail(40)
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Runs `command`, feeding `stdin` from a thread so a large input cannot deadlock the pipes.
fn run_with_stdin(mut command: Command, stdin: Option<&[u8]>) -> std::io::Result<Output> {
    command
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command.spawn()?;
    let feeder = match (stdin, child.stdin.take()) {
        (Some(bytes), Some(mut pipe)) => {
            let bytes = bytes.to_vec();
            Some(std::thread::spawn(move || {
                use std::io::Write;
                let _ = pipe.write_all(&bytes);
            }))
        }
        _ => None,
    };
    let out = child.wait_with_output();
    if let Some(feeder) = feeder {
        let _ = feeder.join();
    }
    out
}
