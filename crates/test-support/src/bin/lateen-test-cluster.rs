//! `lateen-test-cluster`: the tests' real Kubernetes control plane ([`TestCluster`]) as a
//! command, for benchmarks and for trying things by hand. Starts etcd, kube-apiserver and
//! kube-controller-manager on loopback, prints the admin kubeconfig's path on stdout (one line),
//! and runs until stdin closes or SIGINT/SIGTERM; then every process and file goes.
//!
//! ```sh
//! exec 3< <(sleep infinity)   # or any pipe the caller holds open
//! KUBECONFIG=$(lateen-test-cluster <&3 | head -1)
//! ```
#![forbid(unsafe_code)]

use std::io::Read as _;

use lateen_test_support::kube::TestCluster;

fn main() -> std::process::ExitCode {
    let bin = match lateen_test_support::kube::bin_dir() {
        Ok(bin) => bin,
        Err(why) => {
            eprintln!("lateen-test-cluster: {why}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let cluster = match TestCluster::start_from(bin) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("lateen-test-cluster: {e:#}");
            return std::process::ExitCode::FAILURE;
        }
    };
    println!("{}", cluster.kubeconfig().display());
    eprintln!(
        "lateen-test-cluster: API server {} up; files in {}",
        cluster.server_url(),
        cluster.dir().display()
    );
    let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
    let stdin_done = done_tx.clone();
    std::thread::spawn(move || {
        let mut sink = Vec::new();
        let _ = std::io::stdin().read_to_end(&mut sink);
        let _ = stdin_done.send(());
    });
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("lateen-test-cluster: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    std::thread::spawn(move || {
        runtime.block_on(async {
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending::<()>().await } } => {}
            }
        });
        let _ = done_tx.send(());
    });
    let _ = done_rx.recv();
    drop(cluster);
    std::process::ExitCode::SUCCESS
}
