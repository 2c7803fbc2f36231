//! `lateen analyze --use-kube`: the Istio resources of a live cluster, read for the analyzers
//! of [`super::analyze`] as istioctl reads them.
//!
//! Every kind `lateen-api` models ([`Kind::ALL`]) is listed in all namespaces (the analyzers
//! look across namespaces; `-n`/`-A` only choose what is printed), each object goes through
//! the same parser and validation as a file, and messages about cluster objects carry no file
//! or line: istioctl prints `(VirtualService default/reviews)`. A kind whose CRD is not
//! installed has no objects, as for istioctl. Files on the command line win over the
//! cluster's object of the same kind, namespace and name ([`overlay`]), which is how
//! istioctl previews a change before it is applied.

use std::time::Duration;

use anyhow::Context;

use kube::Client;
use kube::api::{Api, ApiResource, DynamicObject, ListParams, TypeMeta};
use lateen_api::diag::{self, Classified, Message};
use lateen_api::{Document, Kind};

/// Objects asked for per list call; larger kinds are read in pages.
const PAGE_SIZE: u32 = 500;
/// Pages read per kind at most (a bound on the loop, far above any real mesh).
const MAX_PAGES: usize = 10_000;
/// How long reading the whole cluster may take before lateen gives up.
const READ_TIMEOUT: Duration = Duration::from_secs(60);

/// What the cluster holds: documents for the analyzers and the messages of their validation.
pub struct ClusterConfig {
    /// The kubeconfig context's namespace (`default` when it names none).
    pub default_namespace: String,
    pub documents: Vec<Document>,
    pub messages: Vec<Message>,
}

impl ClusterConfig {
    fn empty(default_namespace: &str) -> Self {
        ClusterConfig {
            default_namespace: default_namespace.to_string(),
            documents: Vec::new(),
            messages: Vec::new(),
        }
    }
}

/// Reads every Istio resource of the cluster `target` names.
pub fn read(target: &lateen_install::cluster::Target) -> anyhow::Result<ClusterConfig> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let config = lateen_install::cluster::config(target).await?;
        let server = config.cluster_url.to_string();
        let client = Client::try_from(config)
            .with_context(|| format!("cannot make a client for the API server {server}"))?;
        match tokio::time::timeout(READ_TIMEOUT, read_all(&client)).await {
            Ok(result) => result.with_context(|| format!("API server {server}")),
            Err(_) => anyhow::bail!(
                "reading Istio resources from the API server {server} took longer than {}s",
                READ_TIMEOUT.as_secs()
            ),
        }
    })
}

async fn read_all(client: &Client) -> anyhow::Result<ClusterConfig> {
    let mut config = ClusterConfig::empty(client.default_namespace());
    for kind in Kind::ALL {
        for object in list_kind(client, kind).await? {
            add_object(&mut config, kind, object);
        }
    }
    Ok(config)
}

fn api_resource(kind: Kind) -> ApiResource {
    let version = kind.versions()[0];
    ApiResource {
        group: kind.group().to_string(),
        version: version.to_string(),
        api_version: format!("{}/{version}", kind.group()),
        kind: kind.as_str().to_string(),
        plural: kind.plural().to_string(),
    }
}

/// Every object of `kind` in every namespace; none when its CRD is not installed.
async fn list_kind(client: &Client, kind: Kind) -> anyhow::Result<Vec<DynamicObject>> {
    let resource = api_resource(kind);
    let api: Api<DynamicObject> = Api::all_with(client.clone(), &resource);
    let mut objects = Vec::new();
    let mut token: Option<String> = None;
    for _ in 0..MAX_PAGES {
        let mut params = ListParams::default().limit(PAGE_SIZE);
        if let Some(t) = &token {
            params = params.continue_token(t);
        }
        let page = match api.list(&params).await {
            Ok(page) => page,
            Err(kube::Error::Api(status)) if status.code == 404 => return Ok(Vec::new()),
            Err(err) => {
                return Err(anyhow::anyhow!(err).context(format!(
                    "cannot list {} ({}) in the cluster",
                    resource.plural, resource.api_version
                )));
            }
        };
        objects.extend(page.items);
        token = page.metadata.continue_.filter(|t| !t.is_empty());
        if token.is_none() {
            return Ok(objects);
        }
    }
    anyhow::bail!(
        "listing {} did not end after {MAX_PAGES} pages",
        resource.plural
    )
}

/// Parses and validates one object as a file would be, in its own namespace.
fn add_object(config: &mut ClusterConfig, kind: Kind, mut object: DynamicObject) {
    // Server bookkeeping nobody validates; list items may also lack their type.
    object.metadata.managed_fields = None;
    object.types = Some(TypeMeta {
        api_version: kind.api_version(),
        kind: kind.as_str().to_string(),
    });
    if let Some(data) = object.data.as_object_mut() {
        data.remove("status");
    }
    let namespace = object.metadata.namespace.clone().unwrap_or_default();
    let name = object.metadata.name.clone().unwrap_or_default();
    // JSON is YAML; the source name stays empty so messages name the resource only.
    let text = match serde_json::to_string(&object) {
        Ok(text) => text,
        Err(err) => {
            eprintln!("Warning: cannot encode {kind} {namespace}/{name} from the cluster: {err}");
            return;
        }
    };
    let parsed = lateen_api::parse_in_namespace(&text, "", &namespace);
    let problems = parsed
        .problems
        .into_iter()
        .chain(lateen_api::validate_documents(&parsed.documents));
    for problem in problems {
        let message = match diag::classify(problem) {
            Classified::Message(message) => message,
            // The API server stored it, so it is not a file istioctl could not read: what
            // lateen cannot decode is a schema error of that object.
            Classified::Unparsable(problem) => Message {
                kind: &diag::SCHEMA_VALIDATION_ERROR,
                problem,
            },
            Classified::Silent => continue,
        };
        config
            .messages
            .push(unlocated(message, kind, &namespace, &name));
    }
    config.documents.extend(parsed.documents);
}

/// The message without document and line (those of a JSON rendering nobody wrote), naming
/// the object even when the parser could not tell which resource it was.
fn unlocated(mut message: Message, kind: Kind, namespace: &str, name: &str) -> Message {
    let p = &mut message.problem;
    p.line = None;
    p.document = None;
    p.source_name.clear();
    if p.resource.is_none() {
        p.resource = Some(lateen_api::error::ResourceRef {
            kind: kind.as_str().to_string(),
            namespace: namespace.to_string(),
            name: name.to_string(),
        });
    }
    message
}

/// The analyzers' messages about cluster objects, without a place (see [`unlocated`]).
pub fn strip_cluster_places(messages: &mut [Message]) {
    for m in messages {
        if m.problem.source_name.is_empty() {
            m.problem.line = None;
            m.problem.document = None;
        }
    }
}

/// The cluster's documents with those a file defines again taken out, then the files'.
pub fn overlay(cluster: Vec<Document>, files: Vec<Document>) -> Vec<Document> {
    let mut out: Vec<Document> = cluster
        .into_iter()
        .filter(|c| {
            let key = c.resource.key();
            !files.iter().any(|f| f.resource.key() == key)
        })
        .collect();
    out.extend(files);
    out
}

/// Drops the cluster's messages about objects a file replaces: istioctl analyzes the file's
/// version only.
pub fn drop_overridden(messages: &mut Vec<Message>, files: &[Document]) {
    messages.retain(|m| {
        let Some(r) = &m.problem.resource else {
            return true;
        };
        !(m.problem.source_name.is_empty()
            && files.iter().any(|f| {
                f.resource.kind().as_str() == r.kind
                    && f.resource.namespace() == r.namespace
                    && f.resource.name() == r.name
            }))
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cluster_object(kind: Kind, name: &str, spec: serde_json::Value) -> DynamicObject {
        DynamicObject::new(name, &api_resource(kind))
            .within("shop")
            .data(serde_json::json!({ "spec": spec, "status": {"conditions": []} }))
    }

    #[test]
    fn cluster_messages_name_the_resource_without_a_place() {
        let mut config = ClusterConfig::empty("default");
        let spec = serde_json::json!({
            "hosts": ["reviews"],
            "http": [{"route": [{"destination": {"host": "reviews"}, "weight": -5}]}]
        });
        add_object(
            &mut config,
            Kind::VirtualService,
            cluster_object(Kind::VirtualService, "reviews", spec),
        );
        assert_eq!(config.documents.len(), 1);
        let text: Vec<String> = config.messages.iter().map(|m| m.to_string()).collect();
        assert!(
            text.iter().any(|t| t.starts_with(
                "Error [IST0106] (VirtualService shop/reviews) Schema validation error: "
            )),
            "{text:?}"
        );
    }

    #[test]
    fn an_object_lateen_cannot_decode_is_a_schema_error_not_a_parse_failure() {
        let mut config = ClusterConfig::empty("default");
        let spec =
            serde_json::json!({"host": "reviews", "trafficPolicy": {"tls": {"mode": "SOMETIMES"}}});
        add_object(
            &mut config,
            Kind::DestinationRule,
            cluster_object(Kind::DestinationRule, "reviews", spec),
        );
        let text: Vec<String> = config.messages.iter().map(|m| m.to_string()).collect();
        assert!(
            text.iter()
                .any(|t| t.starts_with("Error [IST0106] (DestinationRule shop/reviews) ")),
            "{text:?}"
        );
    }

    #[test]
    fn files_replace_cluster_objects_of_the_same_key() {
        let spec = serde_json::json!({"host": "reviews", "subsets": [{"name": "v1", "labels": {"v": "1"}}]});
        let mut config = ClusterConfig::empty("default");
        add_object(
            &mut config,
            Kind::DestinationRule,
            cluster_object(Kind::DestinationRule, "reviews", spec.clone()),
        );
        add_object(
            &mut config,
            Kind::DestinationRule,
            cluster_object(Kind::DestinationRule, "ratings", spec),
        );
        let file = lateen_api::parse_in_namespace(
            "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata:\n  name: reviews\nspec:\n  host: reviews\n",
            "dr.yaml",
            "shop",
        );
        let merged = overlay(config.documents, file.documents);
        let sources: Vec<(&str, &str)> = merged
            .iter()
            .map(|d| (d.resource.name(), d.source_name.as_str()))
            .collect();
        assert_eq!(sources, [("ratings", ""), ("reviews", "dr.yaml")]);
    }
}
