//! `lateen analyze` against Istio's own expectations (`shared/fixtures/istio/corpus`):
//! - the command-line runs of Istio's tests (`analyze/EXPECTED.md` Part B, files-only) give
//!   istioctl's exit codes and message codes;
//! - every file of the validation corpus gets Istio's verdict: an Istio reject is reported as
//!   IST0106 SchemaValidationError (exit 79) or as a file that cannot be parsed (exit 65,
//!   where istioctl cannot decode it either); an Istio accept gets neither;
//! - istioctl's flags: `--suppress`, `--output json|yaml`, `--failure-threshold`,
//!   `--output-threshold`, `-A`/`--namespace`, `--analyzer`.
//!
//! Run: `cargo test -p lateen-cli --test analyze_istio -- --nocapture` (a few seconds: about
//! 100 runs of the binary).
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

use std::path::PathBuf;
use std::process::{Command, Output};

use lateen_test_support::istio_corpus::{self, Verdict};

fn lateen() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_lateen"))
}

fn cli_dir() -> PathBuf {
    istio_corpus::istio_fixtures().join("corpus/analyze/cli")
}

fn analyze(args: &[&str]) -> Output {
    Command::new(lateen())
        .arg("analyze")
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("run lateen: {e}"))
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Message codes in log output, in order.
fn codes(o: &Output) -> Vec<String> {
    stdout(o)
        .lines()
        .filter_map(|l| Some(l.split_once('[')?.1.split_once(']')?.0.to_string()))
        .collect()
}

/// The namespace Istio's integration tests pick (any valid name).
const NS: &str = "analyze-ns";

/// The suppressions Istio's integration tests always pass.
const IT_SUPPRESS: &[&str] = &[
    "--suppress=IST0139=*",
    "--suppress=IST0002=CustomResourceDefinition *",
];

struct CliRun {
    name: &'static str,
    args: Vec<String>,
    exit: i32,
    /// Message codes expected, exactly; `None` where Istio asserts only the exit code.
    codes: Option<Vec<&'static str>>,
}

fn cli_runs() -> Vec<CliRun> {
    let file = |rel: &str| cli_dir().join(rel).display().to_string();
    let it = |extra: &[&str], rel: &str| {
        let mut args: Vec<String> = ["--use-kube=false", "--namespace", NS]
            .iter()
            .map(ToString::to_string)
            .collect();
        args.extend(IT_SUPPRESS.iter().map(ToString::to_string));
        args.extend(extra.iter().map(ToString::to_string));
        args.push(file(rel));
        args
    };
    let unit = |extra: &[&str], rel: &str| {
        let mut args = vec!["--use-kube=false".to_string()];
        args.extend(extra.iter().map(ToString::to_string));
        args.push(file(rel));
        args
    };
    vec![
        CliRun {
            name: "cli-1 TestFileOnly virtualservice.yaml",
            args: it(&[], "integration/virtualservice.yaml"),
            exit: 79,
            codes: Some(vec!["IST0101"]),
        },
        CliRun {
            name: "cli-2 TestFileOnly destinationrule.yaml",
            args: it(&[], "integration/destinationrule.yaml"),
            exit: 0,
            codes: Some(vec![]),
        },
        CliRun {
            name: "cli-3 TestDirectory some-dir/",
            args: it(&[], "integration/some-dir/"),
            exit: 79,
            codes: Some(vec!["IST0106"]),
        },
        CliRun {
            name: "cli-4 TestInvalidFileError invalid.md",
            args: it(&[], "integration/invalid.md"),
            exit: 0,
            codes: Some(vec![]),
        },
        CliRun {
            name: "cli-5 TestInvalidFileError invalid.yaml",
            args: it(&[], "integration/invalid.yaml"),
            exit: 65,
            codes: Some(vec![]),
        },
        CliRun {
            name: "cli-6 TestInvalidFileError invalid.yaml --ignore-unknown",
            args: it(&["--ignore-unknown=true"], "integration/invalid.yaml"),
            exit: 0,
            codes: Some(vec![]),
        },
        CliRun {
            name: "cli-7 TestSkipPodsInFiles",
            args: unit(
                &["-A", "--failure-threshold", "ERROR"],
                "istioctl-unit/public-gateway.yaml",
            ),
            exit: 0,
            codes: None,
        },
        CliRun {
            name: "cli-8 failed-with-all-analyzers",
            args: unit(&[], "istioctl-unit/specific-analyzer.yaml"),
            exit: 79,
            codes: None,
        },
        CliRun {
            name: "cli-9 failed-with-specific-analyzer",
            args: unit(
                &["--analyzer", "schema.ValidationAnalyzer.Gateway"],
                "istioctl-unit/specific-analyzer.yaml",
            ),
            exit: 79,
            codes: None,
        },
        CliRun {
            name: "cli-10 passed-with-specific-analyzer",
            args: unit(
                &["--analyzer", "gateway.ConflictingGatewayAnalyzer"],
                "istioctl-unit/specific-analyzer.yaml",
            ),
            exit: 0,
            codes: None,
        },
    ]
}

#[test]
fn istios_command_line_runs_give_istios_exit_codes_and_messages() {
    let mut failures = Vec::new();
    for run in cli_runs() {
        let args: Vec<&str> = run.args.iter().map(String::as_str).collect();
        let out = analyze(&args);
        let got = out.status.code().unwrap_or(-1);
        let got_codes = codes(&out);
        println!(
            "{:<58} exit {got:>2} (istio {:>2}) {got_codes:?}",
            run.name, run.exit
        );
        let codes_ok = run.codes.as_ref().is_none_or(|want| *want == got_codes);
        if got != run.exit || !codes_ok {
            failures.push(format!(
                "{}: exit {got}, codes {got_codes:?}; expected exit {} codes {:?}\n{}{}",
                run.name,
                run.exit,
                run.codes,
                stdout(&out),
                stderr(&out)
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn the_missing_subset_is_istios_message_at_istios_line() {
    let file = cli_dir().join("integration/virtualservice.yaml");
    let file = file.display().to_string();
    let out = analyze(&["--namespace", NS, &file]);
    assert_eq!(
        stdout(&out),
        format!(
            "Error [IST0101] (VirtualService {NS}/reviews {file}:11) Referenced host+subset in destinationrule not found: \"reviews+v1\"\n"
        )
    );
    // Without -A only the selected namespace's messages count.
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let elsewhere = dir.path().join("elsewhere.yaml");
    let text = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{e}"));
    let text = text.replacen(
        "  name: reviews\n",
        "  name: reviews\n  namespace: elsewhere\n",
        1,
    );
    std::fs::write(&elsewhere, text).unwrap_or_else(|e| panic!("{e}"));
    let elsewhere = elsewhere.display().to_string();
    let out = analyze(&[&elsewhere]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    assert!(stdout(&out).is_empty(), "{}", stdout(&out));
    let out = analyze(&["-A", &elsewhere]);
    assert_eq!(codes(&out), ["IST0101"], "{}", stdout(&out));
    assert!(
        stdout(&out).contains("VirtualService elsewhere/reviews"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn suppress_thresholds_and_output_formats_follow_istioctl() {
    let file = cli_dir().join("integration/virtualservice.yaml");
    let file = file.display().to_string();
    let suppress = format!("IST0101=VirtualService {NS}/*");
    let out = analyze(&["-n", NS, "--suppress", &suppress, &file]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    assert!(stdout(&out).is_empty(), "{}", stdout(&out));

    // Printing less does not change the verdict; failing on less strict levels does.
    let out = analyze(&["-n", NS, "--output-threshold", "ERROR", &file]);
    assert_eq!(out.status.code(), Some(79));
    let warn_file = istio_corpus::validation_dir()
        .join("valid/istioctl-validate--warn-destination-rule.yaml")
        .display()
        .to_string();
    let out = analyze(&[&warn_file]);
    assert_eq!(codes(&out), ["IST0133"], "{}", stdout(&out));
    assert_eq!(out.status.code(), Some(0));
    let out = analyze(&["--failure-threshold", "Warning", &warn_file]);
    assert_eq!(out.status.code(), Some(79), "{}", stdout(&out));
    let out = analyze(&["--output-threshold", "error", &warn_file]);
    assert!(stdout(&out).is_empty(), "{}", stdout(&out));

    // JSON and YAML: istioctl's fields, and (as istioctl) no failing exit code.
    let out = analyze(&["-n", NS, "-o", "json", &file]);
    assert_eq!(out.status.code(), Some(0));
    let list: serde_json::Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("json: {e}"));
    assert_eq!(list[0]["code"], "IST0101");
    assert_eq!(list[0]["level"], "Error");
    assert_eq!(list[0]["origin"], format!("VirtualService {NS}/reviews"));
    assert_eq!(list[0]["reference"], format!("{file}:11"));
    assert!(
        list[0]["documentationUrl"]
            .as_str()
            .is_some_and(|u| u.ends_with("/ist0101/?ref=istioctl-analyze")),
        "{list}"
    );
    let out = analyze(&["-n", NS, "-o", "yaml", &file]);
    let text = stdout(&out);
    assert!(text.contains("code: IST0101"), "{text}");

    let out = analyze(&["--failure-threshold", "bogus", &file]);
    assert_eq!(out.status.code(), Some(2), "bad level is a usage error");
    let out = analyze(&["--suppress", "IST0101", &file]);
    assert_ne!(out.status.code(), Some(0), "suppression without =");
}

#[test]
fn every_validation_corpus_case_gets_istios_verdict() {
    let mut failures = Vec::new();
    for case in istio_corpus::cases() {
        let path = case.path.display().to_string();
        let out = analyze(&["-A", &path]);
        let exit = out.status.code().unwrap_or(-1);
        let schema_error = codes(&out).iter().any(|c| c == "IST0106");
        let got = if schema_error || exit == 65 {
            Verdict::Reject
        } else {
            Verdict::Accept
        };
        println!(
            "{:<8} {:<8} exit {exit:>2} {}/{}",
            case.expected, got, case.folder, case.name
        );
        if got != case.expected || !matches!(exit, 0 | 65 | 79) {
            failures.push(format!(
                "{}/{}: Istio {}s, lateen analyze {}s (exit {exit}):\n{}{}",
                case.folder,
                case.name,
                case.expected,
                got,
                stdout(&out),
                stderr(&out)
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn files_istioctl_cannot_decode_exit_65() {
    for name in [
        "crd-peerauth--bad-mode.yaml",
        "crd-peerauth--bad-port.yaml",
        "crd-reqauth--bad-timeout.yaml",
        "crd-reqauth--invalid-presence-value.yaml",
        "istioctl-validate--invalid-duplicate-key.yaml",
    ] {
        let path = istio_corpus::validation_dir().join("invalid").join(name);
        let out = analyze(&[&path.display().to_string()]);
        assert_eq!(out.status.code(), Some(65), "{name}: {}", stderr(&out));
        assert!(
            stderr(&out).contains(&format!("{}:", path.display())),
            "{name}: the file and line are named: {}",
            stderr(&out)
        );
    }
}

/// A VirtualService for `reviews` with the `gateways` line given (empty for none).
fn reviews_virtual_service(gateways: &str) -> String {
    format!(
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata:\n  name: reviews\nspec:\n  hosts: [reviews]\n{gateways}  http:\n  - route:\n    - destination:\n        host: reviews\n"
    )
}

/// A binary file in a folder is reported with its name (exit 65) and the other files are
/// still analysed; before, the first such file ended the run with exit 1.
#[test]
fn a_file_that_is_not_utf8_is_reported_and_the_rest_analysed() {
    let dir = tempfile::tempdir().expect("temp dir");
    let folder = dir.path().display().to_string();
    std::fs::write(dir.path().join("binary.yaml"), b"kind: \xff\xfe\n").expect("write");
    let clean = dir.path().join("clean.yaml");
    std::fs::write(&clean, reviews_virtual_service("")).expect("write");
    let out = analyze(&[&folder]);
    assert_eq!(out.status.code(), Some(65), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("binary.yaml: not UTF-8 text"),
        "{}",
        stderr(&out)
    );
    // The rest is analysed: a gateway the VirtualService names but nobody defines is found.
    std::fs::write(&clean, reviews_virtual_service("  gateways: [missing]\n")).expect("write");
    let out = analyze(&[&folder]);
    assert_eq!(out.status.code(), Some(79), "{}", stderr(&out));
    assert!(
        codes(&out).contains(&"IST0101".to_string()),
        "{}",
        stdout(&out)
    );
}
