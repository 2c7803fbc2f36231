//! Helpers shared by the integration tests: fixture paths, temp dirs, kubernetes-validate.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/fixtures")
}

pub fn inject_dir() -> PathBuf {
    fixtures().join("istio/pkg/kube/inject/testdata/inject")
}

pub fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A fresh directory under the system temp dir, unique per test.
pub fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("lateen-inject-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The kubernetes-validate executable: on PATH, or in the repo's .venv.
pub fn kubernetes_validate() -> Option<PathBuf> {
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/kubernetes-validate");
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|d| d.join("kubernetes-validate"))
        .find(|p| p.is_file());
    on_path.or_else(|| venv.is_file().then_some(venv))
}

/// Kubernetes versions the injected YAML must validate against (strict).
pub const KUBE_VERSIONS: [&str; 2] = ["1.34.0", "1.37.0"];

/// Validates files with `kubernetes-validate --strict` for each version; skips (or fails under
/// LATEEN_REQUIRE_TOOLS) when the tool is missing.
pub fn validate_strict(files: &[PathBuf]) {
    let Some(tool) = kubernetes_validate() else {
        if std::env::var("LATEEN_REQUIRE_TOOLS").is_ok_and(|v| !v.is_empty()) {
            panic!("kubernetes-validate is required (LATEEN_REQUIRE_TOOLS) but not found");
        }
        eprintln!("NOTICE: kubernetes-validate not found; skipping schema validation");
        return;
    };
    for version in KUBE_VERSIONS {
        let out = Command::new(&tool)
            .args(["--strict", "--quiet", "--kubernetes-version", version])
            .args(files)
            .output()
            .expect("run kubernetes-validate");
        assert!(
            out.status.success(),
            "kubernetes-validate --strict {version} failed:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// The names of a list of containers (or volumes).
pub fn names(list: &Value) -> Vec<&str> {
    list.as_array()
        .map(|l| l.iter().filter_map(|c| c["name"].as_str()).collect())
        .unwrap_or_default()
}

/// The container called `name` in a list of containers.
pub fn container<'a>(list: &'a Value, name: &str) -> &'a Value {
    list.as_array()
        .and_then(|l| l.iter().find(|c| c["name"] == name))
        .unwrap_or_else(|| panic!("no container {name}"))
}

/// Every JSON pointer in `v` (depth first, the root last as "").
pub fn pointers(v: &Value, at: String, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, child) in m {
                pointers(
                    child,
                    format!("{at}/{}", k.replace('~', "~0").replace('/', "~1")),
                    out,
                );
            }
        }
        Value::Array(a) => {
            for (i, child) in a.iter().enumerate() {
                pointers(child, format!("{at}/{i}"), out);
            }
        }
        _ => {}
    }
    out.push(at);
}

/// Calls `f` with a copy of `doc` in which one field (every field in turn) has a wrong type.
pub fn for_each_wrong_type(doc: &Value, mut f: impl FnMut(&str, Value)) {
    let mut all = Vec::new();
    pointers(doc, String::new(), &mut all);
    assert!(all.len() > 10, "too few fields to mutate");
    let wrongs = [
        Value::Null,
        Value::from(1),
        Value::from("x"),
        Value::Array(vec![]),
        Value::Object(Default::default()),
        Value::Bool(true),
    ];
    for pointer in all.iter().filter(|p| !p.is_empty()) {
        for wrong in &wrongs {
            let mut mutated = doc.clone();
            if let Some(slot) = mutated.pointer_mut(pointer) {
                *slot = wrong.clone();
            }
            f(pointer, mutated);
        }
    }
}
