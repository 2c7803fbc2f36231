//! The command lines of the test cluster's components: what makes each of them work on
//! loopback, without kubelet, kube-proxy or a scheduler, and why.

use std::ffi::OsString;
use std::path::Path;

use super::pki::Pki;
use super::{SERVICE_ACCOUNT_ISSUER, SERVICE_CLUSTER_IP_RANGE};

pub(crate) fn etcd_args(dir: &Path, client: u16, peer: u16) -> Vec<OsString> {
    let client_url = format!("http://127.0.0.1:{client}");
    let peer_url = format!("http://127.0.0.1:{peer}");
    let mut args: Vec<OsString> = vec!["--data-dir".into(), dir.join("etcd-data").into()];
    for (flag, value) in [
        ("--name", "test".to_string()),
        ("--listen-client-urls", client_url.clone()),
        ("--advertise-client-urls", client_url),
        ("--listen-peer-urls", peer_url.clone()),
        ("--initial-advertise-peer-urls", peer_url.clone()),
        ("--initial-cluster", format!("test={peer_url}")),
        ("--log-level", "warn".to_string()),
    ] {
        args.push(format!("{flag}={value}").into());
    }
    // A test cluster's data need not survive a power cut; fsync would dominate on a busy disk.
    args.push("--unsafe-no-fsync".into());
    args
}

pub(crate) fn apiserver_args(pki: &Pki, etcd_port: u16, api_port: u16) -> Vec<OsString> {
    let path = |p: &Path| p.display().to_string();
    [
        format!("--etcd-servers=http://127.0.0.1:{etcd_port}"),
        format!("--secure-port={api_port}"),
        "--bind-address=127.0.0.1".into(),
        "--advertise-address=127.0.0.1".into(),
        // The `kubernetes` Service's endpoints would name 127.0.0.1, which is invalid there.
        "--endpoint-reconciler-type=none".into(),
        format!("--tls-cert-file={}", path(&pki.serving_cert)),
        format!("--tls-private-key-file={}", path(&pki.serving_key)),
        format!("--client-ca-file={}", path(&pki.ca_cert)),
        format!("--token-auth-file={}", path(&pki.token_file)),
        format!(
            "--service-account-key-file={}",
            path(&pki.service_account_key)
        ),
        format!(
            "--service-account-signing-key-file={}",
            path(&pki.service_account_key)
        ),
        format!("--service-account-issuer={SERVICE_ACCOUNT_ISSUER}"),
        "--authorization-mode=Node,RBAC".into(),
        format!("--service-cluster-ip-range={SERVICE_CLUSTER_IP_RANGE}"),
        "--allow-privileged=true".into(),
        // Watches go straight to etcd, so that a watch cut by `restart_apiserver` resumes from
        // its resourceVersion (a watch cache would start after the restart's own writes and
        // answer 410), and `expire_watches` decides alone when history is gone: no automatic
        // compaction either.
        "--watch-cache=false".into(),
        "--etcd-compaction-interval=0".into(),
        "--profiling=false".into(),
        "--v=1".into(),
    ]
    .into_iter()
    .map(OsString::from)
    .collect()
}

/// The API server reaches `*.svc` through the host proxy (see `host_proxy`); loopback directly.
pub(crate) fn apiserver_env(proxy_port: u16) -> Vec<(&'static str, String)> {
    let proxy = format!("http://127.0.0.1:{proxy_port}");
    let direct = "127.0.0.1,localhost,::1".to_string();
    vec![
        ("HTTPS_PROXY", proxy.clone()),
        ("https_proxy", proxy),
        ("HTTP_PROXY", String::new()),
        ("http_proxy", String::new()),
        ("NO_PROXY", direct.clone()),
        ("no_proxy", direct),
    ]
}

pub(crate) fn controller_manager_args(pki: &Pki, kubeconfig: &Path) -> Vec<OsString> {
    let path = |p: &Path| p.display().to_string();
    [
        format!("--kubeconfig={}", path(kubeconfig)),
        format!(
            "--service-account-private-key-file={}",
            path(&pki.service_account_key)
        ),
        format!("--root-ca-file={}", path(&pki.ca_cert)),
        format!("--cluster-signing-cert-file={}", path(&pki.ca_cert)),
        format!("--cluster-signing-key-file={}", path(&pki.ca_key)),
        "--use-service-account-credentials=true".into(),
        // No kubelet heartbeats here: node-lifecycle would mark every Node unreachable after
        // 50 s and every Pod on it not ready, pulling endpoints from under running tests.
        "--controllers=*,-node-lifecycle-controller".into(),
        "--leader-elect=false".into(),
        "--secure-port=0".into(),
        "--v=1".into(),
    ]
    .into_iter()
    .map(OsString::from)
    .collect()
}
