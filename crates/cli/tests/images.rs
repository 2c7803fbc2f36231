//! The container images agree with what is rendered to run them. This machine cannot pull
//! base images, so the Dockerfiles are read instead of built: for each `docker/NAME.Dockerfile`
//! the build stage's `cargo build -p PACKAGE --bin BIN` must name a binary of that package,
//! the final stage must copy it from the build stage to the ENTRYPOINT's path and run as
//! UID/GID 1337. Then every Lateen container that `lateen manifest generate` (default and
//! demo profiles), `lateen operator dump` and `lateen kube-inject` render must name an image
//! `docker.io/lateen/NAME:VERSION` with such a Dockerfile, and its command (the entrypoint
//! when it gives none) and arguments must be accepted by the binary itself: it is run with
//! them and `--help` appended (clap stops at the first argument it does not accept).
//!
//! Needs lateend and lateen-proxy built beside `lateen` (`cargo build --bins -p
//! lateen-discovery -p lateen-proxy`).
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

const HUB: &str = "docker.io/lateen";
const VERSION: &str = env!("CARGO_PKG_VERSION");
const PROXY_UID: &str = "1337:1337";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// What a Dockerfile says about its image.
#[derive(Debug)]
struct Image {
    /// `-p` of the build stage's `cargo build`.
    package: String,
    /// `--bin` of the same command.
    binary: String,
    /// The ENTRYPOINT's one element (exec form).
    entrypoint: String,
    /// Paths the final stage copies from the build stage, as (from, to).
    copied: Vec<(String, String)>,
    user: Option<String>,
    build_stage: String,
}

/// Joins continuation lines and drops comments.
fn instructions(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('#') || (line.is_empty() && current.is_empty()) {
            continue;
        }
        if let Some(head) = line.strip_suffix('\\') {
            current.push_str(head);
            current.push(' ');
        } else {
            current.push_str(line);
            out.push(std::mem::take(&mut current));
        }
    }
    out
}

fn word_after<'a>(words: &[&'a str], flag: &str) -> Option<&'a str> {
    words
        .iter()
        .position(|w| *w == flag)
        .and_then(|i| words.get(i + 1).copied())
}

fn parse_dockerfile(path: &Path) -> Image {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let lines = instructions(&text);
    let stages: Vec<usize> = lines
        .iter()
        .enumerate()
        .filter(|(_, l)| l.starts_with("FROM "))
        .map(|(i, _)| i)
        .collect();
    assert!(stages.len() >= 2, "{}: not multi-stage", path.display());
    let build_line = &lines[stages[0]];
    let build_stage = build_line
        .split_whitespace()
        .skip_while(|w| !w.eq_ignore_ascii_case("AS"))
        .nth(1)
        .unwrap_or_else(|| panic!("{}: first stage has no name: {build_line}", path.display()))
        .to_string();
    let build = &lines[stages[0]..stages[stages.len() - 1]];
    let last = &lines[stages[stages.len() - 1]..];
    let cargo = build
        .iter()
        .find_map(|l| l.find("cargo build").map(|at| &l[at..]))
        .unwrap_or_else(|| panic!("{}: no cargo build", path.display()));
    let words: Vec<&str> = cargo.split_whitespace().collect();
    assert!(words.contains(&"--locked"), "{}: {cargo}", path.display());
    let package = word_after(&words, "-p")
        .expect("cargo build -p")
        .to_string();
    let binary = word_after(&words, "--bin")
        .expect("cargo build --bin")
        .to_string();
    let entrypoint = last
        .iter()
        .find_map(|l| l.strip_prefix("ENTRYPOINT "))
        .unwrap_or_else(|| panic!("{}: no ENTRYPOINT in the final stage", path.display()));
    let entrypoint: Vec<String> = serde_json::from_str(entrypoint)
        .unwrap_or_else(|e| panic!("{}: ENTRYPOINT not in exec form: {e}", path.display()));
    assert_eq!(entrypoint.len(), 1, "{}: {entrypoint:?}", path.display());
    let copied = last
        .iter()
        .filter_map(|l| l.strip_prefix(&format!("COPY --from={build_stage} ")))
        .filter_map(|rest| {
            let words: Vec<&str> = rest.split_whitespace().collect();
            (words.len() == 2).then(|| (words[0].to_string(), words[1].to_string()))
        })
        .collect();
    Image {
        package,
        binary,
        entrypoint: entrypoint[0].clone(),
        copied,
        user: last
            .iter()
            .rev()
            .find_map(|l| l.strip_prefix("USER "))
            .map(str::to_string),
        build_stage,
    }
}

fn images() -> BTreeMap<String, Image> {
    let dir = repo().join("docker");
    let mut images = BTreeMap::new();
    for entry in std::fs::read_dir(&dir).expect("docker/") {
        let path = entry.expect("entry").path();
        if let Some(name) = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(".Dockerfile"))
        {
            images.insert(name.to_string(), parse_dockerfile(&path));
        }
    }
    images
}

/// The `[[bin]]` names of the workspace package `package` (a package without `[[bin]]`
/// sections has none).
fn binaries_of(package: &str) -> Vec<String> {
    let mut manifests = vec![repo().join("bench/loadgen/Cargo.toml")];
    for entry in std::fs::read_dir(repo().join("crates")).expect("crates/") {
        manifests.push(entry.expect("entry").path().join("Cargo.toml"));
    }
    for manifest in manifests {
        let Ok(text) = std::fs::read_to_string(&manifest) else {
            continue;
        };
        if !text.contains(&format!("name = \"{package}\"")) {
            continue;
        }
        return text
            .split("[[bin]]")
            .skip(1)
            .filter_map(|section| {
                section
                    .lines()
                    .find_map(|l| l.trim().strip_prefix("name = "))
                    .map(|n| n.trim_matches('"').to_string())
            })
            .collect();
    }
    panic!("no workspace package {package}")
}

#[test]
fn every_dockerfile_builds_and_runs_a_workspace_binary_as_1337() {
    let images = images();
    assert_eq!(
        images.keys().collect::<Vec<_>>(),
        ["lateen-cli", "lateend", "proxy"],
        "one Dockerfile per rendered image"
    );
    for (name, image) in &images {
        assert!(
            binaries_of(&image.package).contains(&image.binary),
            "{name}: package {} has no binary {}",
            image.package,
            image.binary
        );
        let built = format!("/out/{}", image.binary);
        assert!(
            image
                .copied
                .iter()
                .any(|(from, to)| *from == built && *to == image.entrypoint),
            "{name}: the ENTRYPOINT {} is not {built} copied from stage {}: {:?}",
            image.entrypoint,
            image.build_stage,
            image.copied
        );
        assert!(
            image.entrypoint.ends_with(&format!("/{}", image.binary)),
            "{name}: {image:?}"
        );
        assert_eq!(image.user.as_deref(), Some(PROXY_UID), "{name}: USER");
    }
}

fn lateen() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_lateen"))
}

fn lateen_stdout(args: &[&str]) -> String {
    let output = Command::new(lateen())
        .args(args)
        .current_dir(repo())
        .output()
        .expect("run lateen");
    assert!(
        output.status.success(),
        "lateen {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("UTF-8")
}

/// Every container (and init container) of the Deployments, DaemonSets and Pods in `yaml`.
fn containers(yaml: &str) -> Vec<(String, Value)> {
    let docs: Vec<Value> = serde_saphyr::from_multiple(yaml).expect("YAML");
    let mut out = Vec::new();
    for doc in docs.iter().filter(|d| !d.is_null()) {
        let kind = doc["kind"].as_str().unwrap_or_default();
        let spec = match kind {
            "Pod" => &doc["spec"],
            _ => &doc["spec"]["template"]["spec"],
        };
        let owner = format!(
            "{kind}/{}",
            doc["metadata"]["name"].as_str().unwrap_or_default()
        );
        for key in ["initContainers", "containers"] {
            for container in spec[key].as_array().into_iter().flatten() {
                out.push((owner.clone(), container.clone()));
            }
        }
    }
    out
}

fn rendered_containers() -> Vec<(String, Value)> {
    let seed = repo().join("../shared/fixtures/seed/deployment-nginx.yaml");
    let mut all = Vec::new();
    for args in [
        vec!["manifest", "generate"],
        vec!["manifest", "generate", "--set", "profile=demo"],
        vec!["operator", "dump"],
        vec!["kube-inject", "-f", seed.to_str().expect("UTF-8 path")],
    ] {
        let label = args.join(" ");
        for (owner, container) in containers(&lateen_stdout(&args)) {
            all.push((format!("{label}: {owner}"), container));
        }
    }
    all
}

/// Runs `binary args --help`: clap exits 0 only when every argument before `--help` parses.
fn accepts(binary: &Path, args: &[String]) -> Result<(), String> {
    let output = Command::new(binary)
        .args(args)
        .arg("--help")
        .output()
        .map_err(|e| format!("{}: {e}", binary.display()))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&output.stderr).into_owned())
    }
}

/// `$(VAR)` as the kubelet would expand it; the value does not matter to argument parsing.
fn expanded(args: &[Value]) -> Vec<String> {
    args.iter()
        .filter_map(Value::as_str)
        .map(|a| a.replace("$(POD_NAMESPACE)", "default"))
        .collect()
}

/// Checks every rendered Lateen container whose image is `name`; returns the failures.
fn check_rendered(only: &[&str]) -> Vec<String> {
    let images = images();
    let mut failures = Vec::new();
    let mut seen = BTreeMap::<String, usize>::new();
    for (owner, container) in rendered_containers() {
        let image_ref = container["image"].as_str().unwrap_or_default();
        let Some(rest) = image_ref.strip_prefix(&format!("{HUB}/")) else {
            continue; // the user's own containers (nginx)
        };
        let (name, tag) = rest
            .split_once(':')
            .unwrap_or_else(|| panic!("{owner}: image {image_ref} has no tag"));
        if !only.contains(&name) {
            continue;
        }
        *seen.entry(name.to_string()).or_default() += 1;
        assert_eq!(tag, VERSION, "{owner}: image {image_ref}");
        let image = images.get(name).unwrap_or_else(|| {
            panic!("{owner}: image {image_ref} has no docker/{name}.Dockerfile")
        });
        let command: Vec<String> = container["command"]
            .as_array()
            .map(|c| expanded(c))
            .unwrap_or_else(|| vec![image.entrypoint.clone()]);
        let program = command[0].rsplit('/').next().unwrap_or_default();
        if program != image.binary {
            failures.push(format!(
                "{owner}: runs {program:?}, the image {image_ref} provides {}",
                image.binary
            ));
            continue;
        }
        let mut args = command[1..].to_vec();
        args.extend(expanded(
            container["args"].as_array().map_or(&[][..], |a| a),
        ));
        let binary = lateen().with_file_name(&image.binary);
        assert!(
            binary.is_file(),
            "{} is missing: run `cargo build --bins -p lateen-discovery -p lateen-proxy` first",
            binary.display()
        );
        if let Err(stderr) = accepts(&binary, &args) {
            failures.push(format!(
                "{owner}: {} {args:?} is refused: {stderr}",
                image.binary
            ));
        }
    }
    for name in only {
        assert!(
            seen.contains_key(*name),
            "nothing rendered runs image {name}: {seen:?}"
        );
    }
    failures
}

#[test]
fn rendered_proxy_and_operator_containers_run_what_their_images_provide() {
    let failures = check_rendered(&["proxy", "lateen-cli"]);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The rendered lateend Deployment passes istiod's `discovery ...` arguments: lateend takes them.
#[test]
fn rendered_lateend_container_runs_what_its_image_provides() {
    let failures = check_rendered(&["lateend"]);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
