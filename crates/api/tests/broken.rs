//! Deliberately broken configs under tests/broken/ must be rejected with the expected messages.
//!
//! Each file states what it expects in leading comments (for JSON, in `<file>.expect`):
//! `# expect: <substring of one reported problem>` (one line each; all must appear) and
//! optionally `# line: N` (some reported problem is on line N). Files named `mesh-*` are
//! MeshConfig documents.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

use std::path::{Path, PathBuf};

use lateen_api::{ConfigError, load, load_mesh_config};

fn broken_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/broken")
}

struct Expectations {
    messages: Vec<String>,
    lines: Vec<u64>,
}

fn expectations(path: &Path, text: &str) -> Expectations {
    let sidecar = PathBuf::from(format!("{}.expect", path.display()));
    let source = std::fs::read_to_string(&sidecar).unwrap_or_else(|_| text.to_string());
    let mut out = Expectations {
        messages: Vec::new(),
        lines: Vec::new(),
    };
    for line in source.lines() {
        if let Some(m) = line.strip_prefix("# expect: ") {
            out.messages.push(m.to_string());
        } else if let Some(n) = line.strip_prefix("# line: ") {
            out.lines.push(
                n.trim()
                    .parse()
                    .unwrap_or_else(|e| panic!("{}: bad line {n:?}: {e}", path.display())),
            );
        }
    }
    out
}

/// All problems (errors and warnings) reported for a file; panics if it was accepted.
fn problems(name: &str, text: &str) -> Vec<ConfigError> {
    let result = if name.starts_with("mesh-") {
        load_mesh_config(text, name).map(|_| ())
    } else {
        load(text, name).map(|_| ())
    };
    match result {
        Ok(()) => panic!("{name}: accepted, but it is broken"),
        Err(e) => e.errors,
    }
}

#[test]
fn every_broken_file_is_rejected_with_its_messages() {
    let mut files: Vec<PathBuf> = std::fs::read_dir(broken_dir())
        .unwrap_or_else(|e| panic!("{e}"))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "json"))
        .collect();
    files.sort();
    assert!(
        files.len() >= 20,
        "expected at least 20 broken files, found {}",
        files.len()
    );
    let mut failures = Vec::new();
    for path in &files {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{name}: {e}"));
        let expected = expectations(path, &text);
        assert!(
            !expected.messages.is_empty(),
            "{name}: no `# expect:` lines"
        );
        let found = problems(&name, &text);
        let rendered: Vec<String> = found.iter().map(ToString::to_string).collect();
        eprintln!("{}", rendered.join("\n"));
        for message in &expected.messages {
            if !rendered.iter().any(|r| r.contains(message.as_str())) {
                failures.push(format!(
                    "{name}: no problem contains {message:?}; got:\n  {}",
                    rendered.join("\n  ")
                ));
            }
        }
        for line in &expected.lines {
            if !found.iter().any(|p| p.line == Some(*line)) {
                failures.push(format!(
                    "{name}: no problem on line {line}; got:\n  {}",
                    rendered.join("\n  ")
                ));
            }
        }
        for r in &rendered {
            assert!(
                r.starts_with(&name),
                "{name}: message does not name the source: {r}"
            );
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn hostile_inputs_are_refused_cleanly() {
    let deep = format!("a: {}{}", "[".repeat(10_000), "]".repeat(10_000));
    let nested: String = (0..2000)
        .map(|i| format!("{}k:\n", "  ".repeat(i)))
        .collect();
    let bomb = "a: &a [x,x,x,x,x,x,x,x,x]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\nd: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\ne: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]\nf: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]\ng: [*f,*f,*f,*f,*f,*f,*f,*f,*f]\n";
    let duplicate = "apiVersion: networking.istio.io/v1\nkind: VirtualService\nkind: VirtualService\nmetadata: {name: a}\nspec: {}\n";
    for (name, text, expected) in [
        ("deep.yaml", deep.as_str(), "invalid YAML"),
        ("nested.yaml", nested.as_str(), "invalid YAML"),
        ("bomb.yaml", bomb, "invalid YAML"),
        ("dup.yaml", duplicate, "duplicate mapping key: kind"),
        ("seq.yaml", "- a\n- b\n", "document is not a mapping"),
        ("scalar.yaml", "just text\n", "document is not a mapping"),
    ] {
        let errors = problems(name, text);
        assert!(
            errors.iter().any(|e| e.to_string().contains(expected)),
            "{name}: {errors:?}"
        );
    }
}

#[test]
fn a_file_of_more_documents_than_the_limit_is_refused_in_words() {
    let one = "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: x}\nspec: {hosts: [a.example.com], resolution: NONE, location: MESH_EXTERNAL, ports: [{number: 80, name: http, protocol: HTTP}]}\n";
    let text = vec![one; lateen_api::parse::MAX_DOCUMENTS + 1].join("---\n");
    let errors = problems("many.yaml", &text);
    let message = errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n");
    assert!(
        message.contains("more than 1024 documents, the most one file may hold"),
        "{message}"
    );
    assert!(!message.contains("Documents {"), "{message}");
}
