//! Access logs from both data planes configured by one lateend: real Envoy 1.40 and
//! `lateen-proxy sidecar`, each the sidecar of its own client workload, each given two
//! `envoyFileAccessLog` providers (Istio's default text format and its default JSON labels)
//! by a workload-level Telemetry. The same request through each gives lines that agree field
//! by field except timings and the addresses that differ by construction; a Telemetry naming
//! an unknown provider is refused and the last good version stays; `disabled: true` turns
//! one workload's logs off while the other's go on; a Telemetry `filter.expression` (CEL, on
//! the response code and a request header) makes both planes log exactly the same requests.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

mod common;
#[path = "common/dataplane.rs"]
mod dataplane;
#[path = "common/matrix_config.rs"]
mod matrix_config;

use std::path::{Path, PathBuf};

use common::backend::Backend;
use common::client::{Request, fetch};
use common::lateend::start_lateend;
use common::{envoy_or_skip, free_port, wait_until, write_config};
use dataplane::DataPlane;
use matrix_config::Workload;

/// JSON keys whose values differ between two runs of the same request (time, the client's
/// port, the plane's own address, Envoy's upstream connection's local port).
const VARYING_KEYS: &[&str] = &[
    "start_time",
    "duration",
    "upstream_service_time",
    "downstream_remote_address",
    "downstream_local_address",
    "upstream_local_address",
];

fn log_path(work: &Path, plane: DataPlane, kind: &str) -> PathBuf {
    work.join(format!("{}.{kind}.log", plane.workload()))
}

fn mesh_yaml(work: &Path) -> String {
    let mut out = String::from("extensionProviders:\n");
    for plane in DataPlane::ALL {
        let w = plane.workload();
        out.push_str(&format!(
            "- name: {w}-text\n  envoyFileAccessLog: {{path: {}}}\n- name: {w}-json\n  envoyFileAccessLog: {{path: {}, logFormat: {{labels: {{}}}}}}\n",
            log_path(work, plane, "text").display(),
            log_path(work, plane, "json").display(),
        ));
    }
    out
}

fn telemetry_yaml(plane: DataPlane, providers: &[String]) -> String {
    let w = plane.workload();
    let names = providers
        .iter()
        .map(|p| format!("{{name: {p}}}"))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "apiVersion: telemetry.istio.io/v1\nkind: Telemetry\nmetadata: {{name: logs-{w}, namespace: default}}\nspec:\n  selector: {{matchLabels: {{app: {w}}}}}\n  accessLogging:\n  - providers: [{names}]\n"
    )
}

fn read_lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

/// Splits an access-log text line into fields: `[...]` and `"..."` are one field each.
fn text_fields(line: &str) -> Vec<String> {
    let mut fields = Vec::new();
    let mut chars = line.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c == ' ' {
            chars.next();
            continue;
        }
        let close = match c {
            '[' => Some(']'),
            '"' => Some('"'),
            _ => None,
        };
        let mut field = String::new();
        if let Some(close) = close {
            chars.next();
            for c in chars.by_ref() {
                if c == close {
                    break;
                }
                field.push(c);
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c == ' ' {
                    break;
                }
                field.push(c);
                chars.next();
            }
        }
        fields.push(field);
    }
    fields
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn envoy_and_lateen_proxy_write_the_same_access_log_lines() {
    let Some(envoy) = envoy_or_skip() else {
        return;
    };
    let work = std::env::temp_dir().join(format!("lateen-access-log-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&work);
    let config = work.join("config");
    std::fs::create_dir_all(&config).expect("create the config folder");
    let backend = Backend::start("details-v1").await;
    let port = free_port();
    let services = vec![(
        "details",
        vec![Workload {
            name: "details-v1",
            version: "v1",
            port: backend.port,
            locality: None,
        }],
    )];
    write_config(&config, "mesh.yaml", &mesh_yaml(&work));
    write_config(
        &config,
        "services.yaml",
        &matrix_config::registry_yaml(port, &services),
    );
    for plane in DataPlane::ALL {
        let w = plane.workload();
        write_config(
            &config,
            &format!("sidecar-{w}.yaml"),
            &plane.sidecar_yaml(port),
        );
        write_config(
            &config,
            &format!("telemetry-{w}.yaml"),
            &telemetry_yaml(plane, &[format!("{w}-text"), format!("{w}-json")]),
        );
    }
    let lateend = start_lateend(&config, &work, &[]).await;
    let mut planes = Vec::new();
    for plane in DataPlane::ALL {
        planes.push(dataplane::start(plane, &envoy, &work, lateend.xds, port).await);
    }
    let headers = [
        ("user-agent", "access-log-test/1"),
        ("x-request-id", "7f9c-access-log"),
    ];
    for running in &planes {
        let request = Request {
            target: running.egress,
            source: None,
            host: "details",
            path: "/details/0?x=1",
            headers: &headers,
        };
        wait_until("the request through the sidecar", || async {
            fetch(&request).await.is_some_and(|r| r.status == 200)
        })
        .await
        .unwrap_or_else(|e| {
            panic!(
                "{}: {e}\n{}\n{}",
                running.plane.name(),
                running.process.log_tail(),
                lateend.process.log_tail()
            )
        });
    }
    // Each plane logged its requests (the first may have been a 404 before routes arrived), in
    // both files: each file has its own writer thread, so one may lag the other.
    for plane in DataPlane::ALL {
        wait_until("access-log lines", || async {
            read_lines(&log_path(&work, plane, "json"))
                .iter()
                .any(|l| l.contains("\"response_code\":200"))
                && read_lines(&log_path(&work, plane, "text"))
                    .iter()
                    .any(|l| l.contains("200"))
        })
        .await
        .unwrap_or_else(|e| panic!("{}: {e}", plane.name()));
    }
    let last_ok = |plane: DataPlane, kind: &str| -> String {
        read_lines(&log_path(&work, plane, kind))
            .into_iter()
            .rev()
            .find(|l| l.contains("200"))
            .unwrap_or_else(|| panic!("{} wrote no {kind} line for the 200", plane.name()))
    };
    let parse = |line: &str| -> serde_json::Map<String, serde_json::Value> {
        match serde_json::from_str(line) {
            Ok(serde_json::Value::Object(map)) => map,
            other => panic!("not one JSON object per line: {line:?} ({other:?})"),
        }
    };
    let envoy_json = parse(&last_ok(DataPlane::Envoy, "json"));
    let lateen_json = parse(&last_ok(DataPlane::LateenProxy, "json"));
    let mut differences = Vec::new();
    let keys: std::collections::BTreeSet<&String> =
        envoy_json.keys().chain(lateen_json.keys()).collect();
    for key in keys {
        if VARYING_KEYS.contains(&key.as_str()) {
            continue;
        }
        if envoy_json.get(key) != lateen_json.get(key) {
            differences.push(format!(
                "{key}: Envoy {:?}, lateen-proxy {:?}",
                envoy_json.get(key),
                lateen_json.get(key)
            ));
        }
    }
    println!("Envoy JSON:        {envoy_json:?}\nlateen-proxy JSON: {lateen_json:?}");
    assert!(
        differences.is_empty(),
        "JSON lines differ:\n{}",
        differences.join("\n")
    );
    for key in ["start_time", "duration", "downstream_remote_address"] {
        assert!(
            lateen_json.get(key).is_some_and(|v| !v.is_null()),
            "lateen-proxy left {key} out"
        );
    }

    let envoy_text = text_fields(&last_ok(DataPlane::Envoy, "text"));
    let lateen_text = text_fields(&last_ok(DataPlane::LateenProxy, "text"));
    println!("Envoy text:        {envoy_text:?}\nlateen-proxy text: {lateen_text:?}");
    assert_eq!(envoy_text.len(), lateen_text.len(), "text field count");
    // Istio's text format: 0 start, 9 duration, 10 upstream service time, 17 upstream local,
    // 18 downstream local, 19 downstream remote differ by construction.
    for (i, (e, l)) in envoy_text.iter().zip(&lateen_text).enumerate() {
        if [0, 9, 10, 17, 18, 19].contains(&i) {
            continue;
        }
        assert_eq!(e, l, "text field {i}");
    }

    // A Telemetry naming a provider MeshConfig does not declare is refused; the last good
    // version of the file stays, so lateen-proxy still logs.
    write_config(
        &config,
        "telemetry-client-lateen.yaml",
        &telemetry_yaml(DataPlane::LateenProxy, &["no-such-provider".to_string()]),
    );
    wait_until("the refusal in lateend's log", || async {
        lateend
            .process
            .log()
            .contains("unknown provider \"no-such-provider\"")
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", lateend.process.log_tail()));
    let before = read_lines(&log_path(&work, DataPlane::LateenProxy, "json")).len();
    let lateen = &planes[1];
    let request = Request {
        target: lateen.egress,
        source: None,
        host: "details",
        path: "/after-refusal",
        headers: &headers,
    };
    assert!(fetch(&request).await.is_some_and(|r| r.status == 200));
    wait_until("a line after the refusal", || async {
        read_lines(&log_path(&work, DataPlane::LateenProxy, "json")).len() > before
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"));

    // A workload-level Telemetry with `disabled: true` turns client-lateen's logs off; the
    // other workload keeps logging.
    write_config(
        &config,
        "telemetry-client-lateen.yaml",
        "apiVersion: telemetry.istio.io/v1\nkind: Telemetry\nmetadata: {name: logs-client-lateen, namespace: default}\nspec:\n  selector: {matchLabels: {app: client-lateen}}\n  accessLogging:\n  - disabled: true\n",
    );
    let lateen_json = log_path(&work, DataPlane::LateenProxy, "json");
    wait_until("client-lateen's logs turned off", || async {
        let before = read_lines(&lateen_json).len();
        let served = fetch(&request).await.is_some_and(|r| r.status == 200);
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        served && read_lines(&lateen_json).len() == before
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", lateen.process.log_tail()));
    let envoy_json = log_path(&work, DataPlane::Envoy, "json");
    let before = read_lines(&envoy_json).len();
    let through_envoy = Request {
        target: planes[0].egress,
        ..request
    };
    assert!(fetch(&through_envoy).await.is_some_and(|r| r.status == 200));
    wait_until("client-envoy still logging", || async {
        read_lines(&envoy_json).len() > before
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"));

    filtered_logs_agree(&config, &work, &planes, &backend).await;
    drop(planes);
    let _ = std::fs::remove_dir_all(&work);
}

/// The CEL filter of the phase below: errors, and requests that ask for a line.
const FILTER: &str = "response.code >= 400 || request.headers['x-log'] == 'yes'";

/// The `path` of each JSON line of `plane` from line `from` on.
fn logged_paths(work: &Path, plane: DataPlane, from: usize) -> Vec<String> {
    read_lines(&log_path(work, plane, "json"))
        .iter()
        .skip(from)
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| v.get("path")?.as_str().map(str::to_string))
        .collect()
}

/// One GET through `running`'s sidecar to details: its status, if it answered.
async fn send(running: &dataplane::Running, path: &str, headers: &[(&str, &str)]) -> Option<u16> {
    let request = Request {
        target: running.egress,
        source: None,
        host: "details",
        path,
        headers,
    };
    fetch(&request).await.map(|r| r.status)
}

/// Both workloads get a Telemetry with [`FILTER`]; the same requests through each plane
/// (a plain 200, a 200 with `x-log: yes`, one with `x-log: no`, a 500) are logged by both
/// exactly when the expression is true: CEL evaluated by Envoy and by lateen-proxy agree.
async fn filtered_logs_agree(
    config: &Path,
    work: &Path,
    planes: &[dataplane::Running],
    backend: &Backend,
) {
    for plane in DataPlane::ALL {
        let w = plane.workload();
        write_config(
            config,
            &format!("telemetry-{w}.yaml"),
            &format!(
                "{}    filter: {{expression: \"{FILTER}\"}}\n",
                telemetry_yaml(plane, &[format!("{w}-json")])
            ),
        );
    }
    let wanted = [("x-log", "yes")];
    let unwanted = [("x-log", "no")];
    // The filter is in force once a plain request is left out and a wanted one is logged.
    for running in planes {
        let plane = running.plane;
        let mut round = 0;
        wait_until("the CEL filter in force", || {
            round += 1;
            let (quiet, mark) = (
                format!("/filter-quiet-{round}"),
                format!("/filter-mark-{round}"),
            );
            async move {
                let from = read_lines(&log_path(work, plane, "json")).len();
                let _ = send(running, &quiet, &[]).await;
                let _ = send(running, &mark, &wanted).await;
                tokio::time::sleep(std::time::Duration::from_millis(300)).await;
                let paths = logged_paths(work, plane, from);
                paths.contains(&mark) && !paths.contains(&quiet)
            }
        })
        .await
        .unwrap_or_else(|e| panic!("{}: {e}\n{}", plane.name(), running.process.log_tail()));
    }
    let from: Vec<usize> = DataPlane::ALL
        .iter()
        .map(|p| read_lines(&log_path(work, *p, "json")).len())
        .collect();
    for running in planes {
        assert_eq!(send(running, "/filtered/plain", &[]).await, Some(200));
        assert_eq!(send(running, "/filtered/yes", &wanted).await, Some(200));
        assert_eq!(send(running, "/filtered/no", &unwanted).await, Some(200));
    }
    backend.set_failing(true);
    for running in planes {
        assert_eq!(send(running, "/filtered/error", &[]).await, Some(500));
    }
    backend.set_failing(false);
    for running in planes {
        assert_eq!(send(running, "/filtered/end", &wanted).await, Some(200));
    }
    let expected = ["/filtered/yes", "/filtered/error", "/filtered/end"];
    for (plane, from) in DataPlane::ALL.into_iter().zip(from) {
        wait_until("the last filtered line", || async {
            logged_paths(work, plane, from).contains(&"/filtered/end".to_string())
        })
        .await
        .unwrap_or_else(|e| panic!("{}: {e}", plane.name()));
        assert_eq!(
            logged_paths(work, plane, from),
            expected,
            "{} logged other requests than its filter selects",
            plane.name()
        );
    }
}
