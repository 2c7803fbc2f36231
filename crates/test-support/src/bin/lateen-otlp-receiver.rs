//! `lateen-otlp-receiver [ADDRESS]`: an OTLP/gRPC trace sink for the tracing rows of
//! `bench/run.sh` ([`OtlpReceiver`] keeping no span; default 127.0.0.1:14317). Answers every
//! `TraceService/Export` with success and prints how many Export calls it got when it stops
//! (SIGINT/SIGTERM).
#![forbid(unsafe_code)]

use std::net::SocketAddr;

use lateen_test_support::otlp_receiver::OtlpReceiver;

fn main() -> std::process::ExitCode {
    let address = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:14317".to_string());
    let address: SocketAddr = match address.parse() {
        Ok(address) => address,
        Err(e) => {
            eprintln!("lateen-otlp-receiver: address {address:?}: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("lateen-otlp-receiver: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    runtime.block_on(async {
        let receiver = match OtlpReceiver::start_on(address, false).await {
            Ok(receiver) => receiver,
            Err(e) => {
                eprintln!("lateen-otlp-receiver: {address}: {e:#}");
                return std::process::ExitCode::FAILURE;
            }
        };
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(term) => term,
                Err(e) => {
                    eprintln!("lateen-otlp-receiver: {e}");
                    return std::process::ExitCode::FAILURE;
                }
            };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        eprintln!(
            "lateen-otlp-receiver: {} Export calls",
            receiver.export_calls()
        );
        std::process::ExitCode::SUCCESS
    })
}
