//! `lateen analyze FILES|DIRS...`: offline analysis of Istio configuration files (Istio:
//! `istioctl analyze --use-kube=false`). Every file is parsed and validated by `lateen-api`,
//! then the cross-resource checks of `lateen_api::analyze` run over all documents together,
//! so a VirtualService in one file sees the DestinationRule of another.
//!
//! Output follows istioctl's log format, one line per problem:
//! `Error (VirtualService default/reviews vs.yaml:12) spec.http[0]...: message`. lateen-api's
//! problems carry no IST codes, so none is printed; `Info` lines tell which resource a later
//! file replaced. Exit codes are istioctl's: 79 when an
//! error was found, 65 when a file could not be read as YAML at all, 0 otherwise (warnings
//! alone do not fail, like istioctl's default `--failure-threshold Error`).

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use lateen_api::Document;
use lateen_api::error::{ConfigError, Severity};

/// istioctl's `ExitAnalyzerFoundIssues`.
const EXIT_ANALYZER_FOUND_ISSUES: i32 = 79;
/// istioctl's `ExitDataError` (a file it could not parse).
const EXIT_DATA_ERROR: i32 = 65;

#[derive(clap::Args)]
pub struct Args {
    /// Files (YAML or JSON, several documents each) and folders (their *.yaml, *.yml, *.json).
    #[arg(required = true)]
    paths: Vec<PathBuf>,
    /// Descend into sub-folders of the folders given.
    #[arg(short = 'R', long)]
    recursive: bool,
    /// Cluster DNS suffix used to expand short host names.
    #[arg(long, default_value = "cluster.local")]
    domain: String,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let mut files = Vec::new();
    for path in &args.paths {
        collect(path, args.recursive, &mut files)?;
    }
    let mut documents: Vec<Document> = Vec::new();
    let mut problems = Vec::new();
    let mut replaced = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file)
            .with_context(|| format!("cannot read {}", file.display()))?;
        let parsed = lateen_api::parse(&text, &file.display().to_string());
        problems.extend(parsed.problems);
        problems.extend(lateen_api::validate_documents(&parsed.documents));
        for doc in parsed.documents {
            // Files are a set applied in order (istioctl reads them like `kubectl apply -f`):
            // a resource that another file defined again is replaced, not a conflict. The
            // same resource twice in one file stays for the analyzer to report as an error.
            let key = doc.resource.key();
            if let Some(i) = documents
                .iter()
                .position(|d| d.resource.key() == key && d.source_name != doc.source_name)
            {
                replaced.push((documents.remove(i), doc.source_name.clone()));
            }
            documents.push(doc);
        }
    }
    // Cross-resource checks see every document, also those with validation errors: their
    // names and hosts are still what the user meant to apply.
    problems.extend(lateen_api::analyze(&documents, &args.domain));
    problems.sort_by(|a, b| {
        (&a.source_name, a.document, a.line).cmp(&(&b.source_name, b.document, b.line))
    });

    let target = describe_targets(&args.paths);
    let mut out = std::io::stdout().lock();
    for (doc, by) in &replaced {
        let line = doc.line.map_or(String::new(), |l| format!(":{l}"));
        writeln!(
            out,
            "Info ({} {}/{} {}{line}) replaced by the same resource in {by}",
            doc.resource.kind(),
            doc.resource.namespace(),
            doc.resource.name(),
            doc.source_name,
        )?;
    }
    for p in &problems {
        writeln!(out, "{}", format_problem(p))?;
    }
    if problems.is_empty() && replaced.is_empty() {
        writeln!(
            out,
            "\u{2714} No validation issues found when analyzing {target}."
        )?;
    }
    out.flush()?;
    drop(out);

    let unparsable = problems
        .iter()
        .any(|p| p.severity == Severity::Error && p.document.is_none());
    if unparsable {
        eprintln!("Error: some files couldn't be parsed.");
        std::process::exit(EXIT_DATA_ERROR);
    }
    if lateen_api::analyze::has_errors(&problems) {
        eprintln!("Error: Analyzers found issues when analyzing {target}.");
        std::process::exit(EXIT_ANALYZER_FOUND_ISSUES);
    }
    Ok(())
}

/// Files to read: a file as given (whatever its extension, like istioctl), a folder's
/// configuration files in name order so the output is stable.
fn collect(path: &Path, recursive: bool, out: &mut Vec<PathBuf>) -> anyhow::Result<()> {
    let meta =
        std::fs::metadata(path).with_context(|| format!("cannot read {}", path.display()))?;
    if !meta.is_dir() {
        out.push(path.to_path_buf());
        return Ok(());
    }
    let mut entries: Vec<PathBuf> = std::fs::read_dir(path)
        .with_context(|| format!("cannot list {}", path.display()))?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()
        .with_context(|| format!("cannot list {}", path.display()))?;
    entries.sort();
    for entry in entries {
        if entry.is_dir() {
            if recursive {
                collect(&entry, recursive, out)?;
            }
        } else if entry
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| matches!(e, "yaml" | "yml" | "json"))
        {
            out.push(entry);
        }
    }
    Ok(())
}

/// istioctl's phrase for what was analyzed.
fn describe_targets(paths: &[PathBuf]) -> String {
    let names: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
    names.join(", ")
}

/// `Error (VirtualService default/reviews file.yaml:12) spec.http[0].route: message`.
fn format_problem(p: &ConfigError) -> String {
    let level = match p.severity {
        Severity::Error => "Error",
        Severity::Warning => "Warning",
    };
    let mut origin = String::new();
    if let Some(r) = &p.resource {
        origin.push_str(&r.to_string());
        origin.push(' ');
    }
    origin.push_str(&p.source_name);
    if let Some(line) = p.line {
        origin.push_str(&format!(":{line}"));
    }
    if p.path.is_root() {
        format!("{level} ({origin}) {}", p.message)
    } else {
        format!("{level} ({origin}) {}: {}", p.path, p.message)
    }
}
