//! `lateen analyze [-k] FILES|DIRS...`: analysis of Istio configuration files and, with
//! `--use-kube`, of a live cluster ([`super::analyze_kube`]), with istioctl's flags, messages
//! and exit codes. Every file
//! is parsed and validated by `lateen-api`, then the cross-resource checks of
//! `lateen_api::analyze_messages` run over all documents together, so a VirtualService in one
//! file sees the DestinationRule of another.
//!
//! As istioctl does:
//! - output is one line per message, `Error [IST0101] (VirtualService default/reviews
//!   vs.yaml:11) Referenced host+subset in destinationrule not found: "reviews+v1"`, or
//!   `--output json|yaml` (a list of `code`, `level`, `origin`, `reference`, `message`,
//!   `documentationUrl`); validation problems are IST0106/IST0133; lateen-only notes have
//!   `LTN` codes (see `lateen_api::diag`);
//! - resources without a namespace are in `--namespace` (default `default`, or the kubeconfig
//!   context's namespace with `--use-kube`); only messages of
//!   that namespace are reported unless `-A`; `--suppress CODE=RESOURCE` (glob, resource as
//!   `Kind namespace/name`) drops messages; `--output-threshold` filters what is printed;
//! - folders are walked recursively; files without a `.json`, `.yaml` or `.yml` extension are
//!   skipped with a note;
//! - exit 79 when a message is at or above `--failure-threshold` (default Error), else 65
//!   when a file could not be parsed or is not UTF-8 text (unless `--ignore-unknown`; the
//!   other files are still analysed), else 0; with
//!   `--output json|yaml` istioctl always exits 0, and so does lateen.
//!
//! `--analyzer NAME` keeps the messages of the named analyzers (Istio's names, see
//! `Message::analyzer`).
//!
//! `--use-kube` (`-k`) adds the Istio resources of the cluster `--kubeconfig`/`--context`
//! name; files override cluster objects of the same kind, namespace and name. Its default is
//! false, unlike istioctl's: `lateen analyze FILES` never reads whatever cluster `$KUBECONFIG`
//! happens to point at. A cluster that cannot be read is an error (exit 1, istioctl's
//! `ExitUnknownError`).

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use lateen_api::diag::{self, Classified, Level, Message};
use lateen_api::error::ConfigError;
use lateen_api::{DEFAULT_NAMESPACE, Document};

use super::analyze_kube;

/// istioctl's `ExitAnalyzerFoundIssues`.
const EXIT_ANALYZER_FOUND_ISSUES: i32 = 79;
/// istioctl's `ExitDataError` (a file it could not parse).
const EXIT_DATA_ERROR: i32 = 65;
/// File extensions istioctl reads.
const FILE_EXTENSIONS: &[&str] = &["json", "yaml", "yml"];
/// Where Istio documents each of its message codes.
const ISTIO_DOCS: &str = "https://istio.io/latest/docs/reference/config/analysis";

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum OutputFormat {
    Log,
    Json,
    Yaml,
}

#[derive(clap::Args)]
pub struct Args {
    /// Files (YAML or JSON, several documents each) and folders (walked recursively); with
    /// `--use-kube` they override the cluster's objects of the same kind/namespace/name.
    #[arg(required_unless_present = "use_kube")]
    paths: Vec<PathBuf>,
    /// Accepted for compatibility: folders are always walked recursively, as by istioctl.
    #[arg(short = 'R', long, hide = true)]
    recursive: bool,
    /// Namespace for resources that name none, and whose messages are reported.
    /// Default: the kubeconfig context's namespace with `--use-kube`, else `default`.
    #[arg(short = 'n', long)]
    namespace: Option<String>,
    /// Report messages of every namespace.
    #[arg(short = 'A', long)]
    all_namespaces: bool,
    /// Suppress a message code on a resource: `CODE=Kind namespace/name` (`*` matches any
    /// text, e.g. `IST0101=VirtualService default/*`). Can be repeated.
    #[arg(short = 'S', long = "suppress", value_name = "CODE=RESOURCE")]
    suppress: Vec<String>,
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value = "log")]
    output: OutputFormat,
    /// Lowest level (Info, Warning, Error) of a message that makes the exit code 79.
    #[arg(long, default_value = "Error", value_parser = parse_level)]
    failure_threshold: Level,
    /// Lowest level (Info, Warning, Error) of a message that is printed.
    #[arg(long, default_value = "Info", value_parser = parse_level)]
    output_threshold: Level,
    /// Files that cannot be parsed do not change the exit code.
    #[arg(long, default_value_t = false, num_args = 0..=1, default_missing_value = "true",
          action = clap::ArgAction::Set)]
    ignore_unknown: bool,
    /// Run only these analyzers (Istio's names, e.g. `schema.ValidationAnalyzer.Gateway`,
    /// `virtualservice.DestinationRuleAnalyzer`); one lateen does not have reports nothing.
    #[arg(long = "analyzer", value_name = "NAME")]
    analyzers: Vec<String>,
    /// Also analyze the Istio resources of a live cluster (default false: files only).
    #[arg(short = 'k', long, default_value_t = false, num_args = 0..=1,
          default_missing_value = "true", action = clap::ArgAction::Set)]
    use_kube: bool,
    /// Kubeconfig file for --use-kube (default: $KUBECONFIG, ~/.kube/config, in-cluster).
    #[arg(short = 'c', long)]
    kubeconfig: Option<PathBuf>,
    /// Kubeconfig context for --use-kube (default: the current one).
    #[arg(long)]
    context: Option<String>,
    /// Cluster DNS suffix used to expand short host names.
    #[arg(long, default_value = "cluster.local")]
    domain: String,
}

fn parse_level(text: &str) -> Result<Level, String> {
    Level::parse(text).ok_or_else(|| "invalid level option (Info, Warning, Error)".to_string())
}

/// `--suppress CODE=RESOURCE`.
struct Suppression {
    code: String,
    resource: String,
}

fn parse_suppressions(values: &[String]) -> anyhow::Result<Vec<Suppression>> {
    let mut out = Vec::new();
    for value in values {
        let Some((code, resource)) = value.split_once('=') else {
            anyhow::bail!("{value} is not a valid suppression value. See lateen analyze --help");
        };
        if !diag::ALL.iter().any(|t| t.code == code) && !looks_like_istio_code(code) {
            eprintln!(
                "Warning: Supplied message code '{code}' is an unknown message code and will not have any effect."
            );
        }
        out.push(Suppression {
            code: code.to_string(),
            resource: resource.to_string(),
        });
    }
    Ok(out)
}

/// Istio codes lateen does not emit (`IST0139`) are still valid to suppress.
fn looks_like_istio_code(code: &str) -> bool {
    code.strip_prefix("IST")
        .is_some_and(|n| n.len() == 4 && n.bytes().all(|b| b.is_ascii_digit()))
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let suppressions = parse_suppressions(&args.suppress)?;
    let mut files = Vec::new();
    for path in &args.paths {
        collect(path, &mut files)?;
    }
    let cluster = if args.use_kube {
        let target = lateen_install::cluster::Target {
            kubeconfig: args.kubeconfig.clone(),
            context: args.context.clone(),
            server: None,
        };
        Some(analyze_kube::read(&target).context("cannot analyze the cluster (--use-kube)")?)
    } else {
        None
    };
    // As istioctl: `-n`, else the kubeconfig context's namespace, else `default`.
    let namespace = args
        .namespace
        .clone()
        .or_else(|| cluster.as_ref().map(|c| c.default_namespace.clone()))
        .unwrap_or_else(|| DEFAULT_NAMESPACE.to_string());
    let read = read_files(&files, &namespace)?;
    let mut messages = read.messages;
    let documents = match cluster {
        Some(cluster) => {
            let mut cluster_messages = cluster.messages;
            analyze_kube::drop_overridden(&mut cluster_messages, &read.documents);
            messages.extend(cluster_messages);
            analyze_kube::overlay(cluster.documents, read.documents)
        }
        None => read.documents,
    };
    let mut found = lateen_api::analyze_messages(&documents, &args.domain);
    analyze_kube::strip_cluster_places(&mut found);
    messages.extend(found);
    messages.retain(|m| {
        let in_scope = args.all_namespaces
            || m.problem
                .resource
                .as_ref()
                .is_none_or(|r| r.namespace == namespace);
        let selected = args.analyzers.is_empty() || args.analyzers.contains(&m.analyzer());
        in_scope && selected && !suppressed(m, &suppressions)
    });
    messages.sort_by(|a, b| {
        let key = |m: &Message| {
            (
                m.problem.source_name.clone(),
                m.problem.document,
                m.problem.line,
                // Cluster objects have no file or line: in the order of their names.
                m.resource_name(),
            )
        };
        key(a).cmp(&key(b))
    });

    let shown: Vec<&Message> = messages
        .iter()
        .filter(|m| m.kind.level >= args.output_threshold)
        .collect();
    print_messages(&shown, args.output)?;
    let parse_errors = read.unparsable.len();
    for problem in &read.unparsable {
        eprintln!(
            "Error(s) adding files: errors parsing content \"{}\": {problem}",
            problem.source_name
        );
    }
    let target = if args.all_namespaces {
        "all namespaces".to_string()
    } else {
        format!("namespace: {namespace}")
    };
    if shown.is_empty() {
        // istioctl names the files only when it analyzed nothing else.
        let named: &[PathBuf] = if args.use_kube { &[] } else { &files };
        print_no_issues(named, &target, parse_errors);
    }
    if args.output != OutputFormat::Log {
        // istioctl only sets an exit code in its log format.
        return Ok(());
    }
    if messages
        .iter()
        .any(|m| m.kind.level >= args.failure_threshold)
    {
        eprintln!(
            "Error: Analyzers found issues when analyzing {target}.\nSee {ISTIO_DOCS} for more information about causes and resolutions."
        );
        std::process::exit(EXIT_ANALYZER_FOUND_ISSUES);
    }
    if parse_errors > 0 && !args.ignore_unknown {
        eprintln!("Error: some files couldn't be parsed.");
        std::process::exit(EXIT_DATA_ERROR);
    }
    Ok(())
}

/// What the files hold: documents, their messages, and the problems istioctl would report as
/// files it could not parse.
struct Read {
    documents: Vec<Document>,
    messages: Vec<Message>,
    unparsable: Vec<ConfigError>,
}

fn read_files(files: &[PathBuf], namespace: &str) -> anyhow::Result<Read> {
    let mut read = Read {
        documents: Vec::new(),
        messages: Vec::new(),
        unparsable: Vec::new(),
    };
    for file in files {
        let bytes =
            std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
        // As istioctl, a file that cannot be parsed is reported and the rest still analysed
        // (exit 65 at the end), rather than ending the run at the first binary file.
        let text = match String::from_utf8(bytes) {
            Ok(text) => text,
            Err(err) => {
                read.unparsable.push(not_utf8(file, &err));
                continue;
            }
        };
        let parsed = lateen_api::parse_in_namespace(&text, &file.display().to_string(), namespace);
        let problems = parsed
            .problems
            .into_iter()
            .chain(lateen_api::validate_documents(&parsed.documents));
        for problem in problems {
            match diag::classify(problem) {
                Classified::Message(message) => read.messages.push(message),
                Classified::Unparsable(unparsable) => read.unparsable.push(unparsable),
                Classified::Silent => {}
            }
        }
        for doc in parsed.documents {
            // Files are a set applied in order (like `kubectl apply -f`): a resource another
            // file defined again is replaced, not a conflict. The same resource twice in one
            // file stays for the analyzer to report.
            let key = doc.resource.key();
            if let Some(i) = read
                .documents
                .iter()
                .position(|d| d.resource.key() == key && d.source_name != doc.source_name)
            {
                let old = read.documents.remove(i);
                read.messages.push(replaced(&old, &doc.source_name));
            }
            read.documents.push(doc);
        }
    }
    Ok(read)
}

/// The problem of a file that is not UTF-8 text, naming the first bad byte's offset.
fn not_utf8(file: &Path, err: &std::string::FromUtf8Error) -> ConfigError {
    ConfigError {
        severity: lateen_api::Severity::Error,
        source_name: file.display().to_string(),
        document: None,
        line: None,
        resource: None,
        path: lateen_api::FieldPath::root(),
        message: format!(
            "not UTF-8 text (invalid byte at offset {})",
            err.utf8_error().valid_up_to()
        ),
    }
}

fn replaced(old: &Document, by: &str) -> Message {
    let issue = lateen_api::FieldIssue::warning(
        lateen_api::FieldPath::root(),
        format!("replaced by the same resource in {by}"),
    );
    Message {
        kind: &diag::RESOURCE_REPLACED,
        problem: old.locate(issue),
    }
}

fn suppressed(message: &Message, suppressions: &[Suppression]) -> bool {
    let Some(name) = message.resource_name() else {
        return false;
    };
    suppressions
        .iter()
        .any(|s| s.code == message.kind.code && glob_match(&s.resource, &name))
}

/// `*` matches any run of characters, `?` one character; everything else itself.
fn glob_match(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    // Classic two-pointer match with backtracking to the last `*`: linear in practice.
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

fn print_messages(messages: &[&Message], format: OutputFormat) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    match format {
        OutputFormat::Log => {
            for m in messages {
                writeln!(out, "{m}")?;
            }
        }
        OutputFormat::Json | OutputFormat::Yaml => {
            let list: Vec<serde_json::Value> = messages.iter().map(|m| to_json(m)).collect();
            let text = if format == OutputFormat::Json {
                serde_json::to_string_pretty(&list)?
            } else {
                serde_saphyr::to_string(&list).context("rendering YAML")?
            };
            writeln!(out, "{}", text.trim_end())?;
        }
    }
    out.flush()?;
    Ok(())
}

/// istioctl's JSON form of a message.
fn to_json(m: &Message) -> serde_json::Value {
    let mut value = serde_json::json!({
        "code": m.kind.code,
        "level": m.kind.level.to_string(),
        "message": m.text(),
    });
    if let Some(origin) = m.resource_name() {
        value["origin"] = origin.into();
        let reference = m.reference();
        // A cluster object has no file (istioctl leaves `reference` out then).
        if !reference.is_empty() {
            value["reference"] = reference.into();
        }
    }
    if m.kind.is_istio() {
        value["documentationUrl"] = format!(
            "{ISTIO_DOCS}/{}/?ref=istioctl-analyze",
            m.kind.code.to_ascii_lowercase()
        )
        .into();
    }
    value
}

/// istioctl's note on stderr when nothing is reported.
fn print_no_issues(files: &[PathBuf], target: &str, parse_errors: usize) {
    if parse_errors > 0 {
        let noun = if parse_errors == 1 { "file" } else { "files" };
        eprintln!(
            "No validation issues found when analyzing {target} (but {parse_errors} {noun} could not be parsed)."
        );
        return;
    }
    let names: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
    match names.as_slice() {
        [] => eprintln!("\u{2714} No validation issues found when analyzing {target}."),
        [one] => eprintln!("\u{2714} No validation issues found when analyzing {one}."),
        many => eprintln!(
            "\u{2714} No validation issues found when analyzing:\n  - {}",
            many.join("\n  - ")
        ),
    }
}

/// Files to read: a file as given when its extension is one istioctl reads, a folder's such
/// files recursively in name order so the output is stable; others are skipped with a note.
fn collect(path: &Path, out: &mut Vec<PathBuf>) -> anyhow::Result<()> {
    let meta =
        std::fs::metadata(path).with_context(|| format!("cannot read {}", path.display()))?;
    if !meta.is_dir() {
        let known = path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| FILE_EXTENSIONS.contains(&e));
        if known {
            out.push(path.to_path_buf());
        } else {
            eprintln!(
                "Skipping file {}, recognized file extensions are: [.json .yaml .yml]",
                path.display()
            );
        }
        return Ok(());
    }
    let mut entries: Vec<PathBuf> = std::fs::read_dir(path)
        .with_context(|| format!("cannot list {}", path.display()))?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()
        .with_context(|| format!("cannot list {}", path.display()))?;
    entries.sort();
    for entry in entries {
        collect(&entry, out)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::glob_match;

    #[test]
    fn suppression_globs() {
        assert!(glob_match(
            "VirtualService default/*",
            "VirtualService default/reviews"
        ));
        assert!(glob_match("*", "Gateway ns/gw"));
        assert!(glob_match("Pod *.baz", "Pod a.baz"));
        assert!(!glob_match(
            "VirtualService default/r",
            "VirtualService default/reviews"
        ));
        assert!(glob_match(
            "VirtualService default/r?views",
            "VirtualService default/reviews"
        ));
    }
}
