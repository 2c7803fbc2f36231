//! istiod's (`pilot-discovery discovery`) flags that have no lateend twin, and the environment
//! variables Istio's chart gives istiod's container.
//!
//! Flags with a meaning here: `--domain` (the Kubernetes DNS suffix; only `cluster.local` is
//! supported so far and another value is refused at start rather than half-applied),
//! `--namespace`/`POD_NAMESPACE` (the system namespace), `--clusterID`/`CLUSTER_ID`,
//! `--keepaliveInterval`, `--keepaliveTimeout`, `--keepaliveMaxServerConnectionAge` (xDS
//! connections), `--caCertFile` (the CA of `--tlsCertFile`, published as the webhooks'
//! `caBundle` and in `istio-ca-root-cert`), the logging flags ([`super::logging`]).
//! Accepted with no effect, and reported once at start: ControlZ, profiling, log rotation and
//! caller/stack-trace decoration, registries, plugins, the Kubernetes client's QPS and burst,
//! resync, shutdown duration, cluster aliases, TLS cipher suites, `--cniNamespace`.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

const HEADING: &str = "istiod compatibility (pilot-discovery discovery flags)";

fn go_duration(s: &str) -> Result<Duration, String> {
    lateen_api::duration::parse_duration(s).map_err(|e| e.to_string())
}

/// The DNS suffix lateend's registry and routes use (`lateen_api::host::DEFAULT_DOMAIN_SUFFIX`).
pub const SUPPORTED_DOMAIN: &str = lateen_api::host::DEFAULT_DOMAIN_SUFFIX;

/// istiod's flags, flattened into lateend's arguments.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = HEADING)]
pub struct IstiodFlags {
    /// Kubernetes DNS domain suffix (istiod's `--domain`).
    #[arg(long = "domain", value_name = "SUFFIX", default_value = SUPPORTED_DOMAIN)]
    pub domain: String,

    /// The namespace lateend runs in and keeps its own objects in (Leases, the mesh's
    /// ConfigMaps). Defaults to $POD_NAMESPACE, else istio-system.
    #[arg(
        long = "namespace",
        short = 'n',
        value_name = "NAMESPACE",
        env = "POD_NAMESPACE",
        default_value = "istio-system"
    )]
    pub namespace: String,

    /// ID of the cluster lateend runs in (istiod's `--clusterID`, $CLUSTER_ID).
    #[arg(
        long = "clusterID",
        value_name = "ID",
        env = "CLUSTER_ID",
        default_value = "Kubernetes"
    )]
    pub cluster_id: String,

    /// HTTP/2 keepalive ping interval on xDS connections.
    #[arg(long = "keepaliveInterval", value_name = "DURATION", value_parser = go_duration)]
    pub keepalive_interval: Option<Duration>,

    /// How long a keepalive ping may go unanswered before the connection is closed.
    #[arg(long = "keepaliveTimeout", value_name = "DURATION", value_parser = go_duration)]
    pub keepalive_timeout: Option<Duration>,

    /// Longest life of an xDS connection: proxies then reconnect, which spreads them over
    /// new replicas (istiod's chart passes 30m).
    #[arg(long = "keepaliveMaxServerConnectionAge", value_name = "DURATION", value_parser = go_duration)]
    pub keepalive_max_server_connection_age: Option<Duration>,

    /// The CA certificate (PEM) of --tlsCertFile: the webhooks' caBundle and the root that
    /// proxies trust for xDS over TLS. Without it, the last certificate of the chain.
    #[arg(long = "caCertFile", value_name = "FILE")]
    pub ca_cert_file: Option<PathBuf>,

    /// Istio's log levels by scope, e.g. `default:info` or `default:debug,ads:info`
    /// (levels: debug, info, warn, error, fatal, none). Overrides RUST_LOG.
    #[arg(long = "log_output_level", value_name = "SCOPE:LEVEL,...")]
    pub log_output_level: Option<String>,

    /// Log as JSON lines.
    #[arg(long = "log_as_json", num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    pub log_as_json: Option<bool>,

    /// Where logs go: stdout or stderr (lateend's default: stderr).
    #[arg(long = "log_target", value_name = "stdout|stderr")]
    pub log_target: Option<String>,

    #[command(flatten)]
    pub no_effect: NoEffectFlags,
}

/// istiod flags lateend accepts so Istio-shaped argument lists start, but that change nothing
/// here (reported once at start).
#[derive(Debug, Clone, Default, Args)]
pub struct NoEffectFlags {
    #[arg(long = "log_caller", value_name = "SCOPES", hide = true)]
    log_caller: Option<String>,
    #[arg(long = "log_stacktrace_level", value_name = "SCOPE:LEVEL", hide = true)]
    log_stacktrace_level: Option<String>,
    #[arg(long = "log_rotate", value_name = "PATH", hide = true)]
    log_rotate: Option<String>,
    #[arg(long = "log_rotate_max_age", value_name = "DAYS", hide = true)]
    log_rotate_max_age: Option<u32>,
    #[arg(long = "log_rotate_max_size", value_name = "MB", hide = true)]
    log_rotate_max_size: Option<u32>,
    #[arg(long = "log_rotate_max_backups", value_name = "N", hide = true)]
    log_rotate_max_backups: Option<u32>,
    #[arg(long = "ctrlz_port", value_name = "PORT", hide = true)]
    ctrlz_port: Option<u16>,
    #[arg(long = "ctrlz_address", value_name = "ADDR", hide = true)]
    ctrlz_address: Option<String>,
    #[arg(long = "profile", num_args = 0..=1, default_missing_value = "true", value_name = "BOOL", hide = true)]
    profile: Option<bool>,
    #[arg(long = "registries", value_name = "LIST", hide = true)]
    registries: Option<String>,
    #[arg(
        long = "clusterRegistriesNamespace",
        value_name = "NAMESPACE",
        hide = true
    )]
    cluster_registries_namespace: Option<String>,
    #[arg(long = "clusterAliases", value_name = "MAP", hide = true)]
    cluster_aliases: Option<String>,
    #[arg(long = "networksConfig", value_name = "FILE", hide = true)]
    networks_config: Option<String>,
    #[arg(long = "plugins", value_name = "LIST", hide = true)]
    plugins: Option<String>,
    #[arg(long = "resync", value_name = "DURATION", value_parser = go_duration, hide = true)]
    resync: Option<Duration>,
    #[arg(long = "shutdownDuration", value_name = "DURATION", value_parser = go_duration, hide = true)]
    shutdown_duration: Option<Duration>,
    #[arg(long = "kubernetesApiQPS", value_name = "QPS", hide = true)]
    kubernetes_api_qps: Option<f32>,
    #[arg(long = "kubernetesApiBurst", value_name = "N", hide = true)]
    kubernetes_api_burst: Option<u32>,
    #[arg(long = "tls-cipher-suites", value_name = "LIST", hide = true)]
    tls_cipher_suites: Option<String>,
    #[arg(long = "cniNamespace", value_name = "NAMESPACE", hide = true)]
    cni_namespace: Option<String>,
}

impl NoEffectFlags {
    /// The flags given that lateend does not act on, as `--name`.
    pub fn given(&self) -> Vec<&'static str> {
        let flags: [(&'static str, bool); 20] = [
            ("--log_caller", self.log_caller.is_some()),
            (
                "--log_stacktrace_level",
                self.log_stacktrace_level.is_some(),
            ),
            ("--log_rotate", self.log_rotate.is_some()),
            ("--log_rotate_max_age", self.log_rotate_max_age.is_some()),
            ("--log_rotate_max_size", self.log_rotate_max_size.is_some()),
            (
                "--log_rotate_max_backups",
                self.log_rotate_max_backups.is_some(),
            ),
            ("--ctrlz_port", self.ctrlz_port.is_some()),
            ("--ctrlz_address", self.ctrlz_address.is_some()),
            ("--profile", self.profile.is_some()),
            ("--registries", self.registries.is_some()),
            (
                "--clusterRegistriesNamespace",
                self.cluster_registries_namespace.is_some(),
            ),
            ("--clusterAliases", self.cluster_aliases.is_some()),
            ("--networksConfig", self.networks_config.is_some()),
            ("--plugins", self.plugins.is_some()),
            ("--resync", self.resync.is_some()),
            ("--shutdownDuration", self.shutdown_duration.is_some()),
            ("--kubernetesApiQPS", self.kubernetes_api_qps.is_some()),
            ("--kubernetesApiBurst", self.kubernetes_api_burst.is_some()),
            ("--tls-cipher-suites", self.tls_cipher_suites.is_some()),
            ("--cniNamespace", self.cni_namespace.is_some()),
        ];
        flags
            .into_iter()
            .filter_map(|(name, given)| given.then_some(name))
            .collect()
    }
}

impl IstiodFlags {
    /// Refuses settings lateend would otherwise only pretend to apply.
    pub fn check(&self) -> Result<(), String> {
        if self.domain.trim_end_matches('.') != SUPPORTED_DOMAIN {
            return Err(format!(
                "--domain {:?}: lateend supports only the DNS suffix {SUPPORTED_DOMAIN:?} so far",
                self.domain
            ));
        }
        if let Some(registries) = &self.no_effect.registries
            && let Some(other) = registries
                .split(',')
                .map(str::trim)
                .find(|r| !r.is_empty() && *r != "Kubernetes")
        {
            return Err(format!(
                "--registries: unknown service registry {other:?} (lateend reads Kubernetes)"
            ));
        }
        Ok(())
    }
}

/// The ValidatingWebhookConfiguration of the default revision tag.
pub const DEFAULT_VALIDATOR: &str = "istiod-default-validator";

/// What Istio's chart sets in istiod's environment and lateend reads (besides POD_NAMESPACE
/// and CLUSTER_ID, which are the defaults of `--namespace` and `--clusterID`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IstiodEnv {
    /// `POD_NAME`: this replica's name, the holder identity of lateend's Leases.
    pub pod_name: Option<String>,
    /// `REVISION`: the control plane's revision (`default` when unset).
    pub revision: String,
    /// `ISTIOD_ADDR`: the address proxies dial (`lateend.istio-system.svc:15012`); its host
    /// is a name of the serving certificate.
    pub istiod_addr: Option<String>,
    /// `INJECTION_WEBHOOK_CONFIG_NAME`: the MutatingWebhookConfiguration whose caBundle
    /// lateend keeps (default `istio-sidecar-injector`, `-REVISION` for a named revision).
    pub injection_webhook_config_name: String,
    /// `VALIDATION_WEBHOOK_CONFIG_NAME`: the ValidatingWebhookConfiguration (default
    /// `istio-validator[-REVISION]-NAMESPACE`).
    pub validation_webhook_config_name: String,
    /// The default revision's validator of objects without a revision label
    /// (`istiod-default-validator`, what `istioctl install` adds with the default tag).
    pub default_validator_name: Option<String>,
    /// `PILOT_ENABLE_STATUS`: write `status.validationMessages` (lateend's default: on;
    /// `false` turns it off).
    pub write_status: bool,
}

impl IstiodEnv {
    /// Reads the process environment; `namespace` is the system namespace.
    pub fn from_env(namespace: &str) -> Self {
        Self::from_lookup(namespace, |k| std::env::var(k).ok())
    }

    /// As [`Self::from_env`], from any lookup (tests).
    pub fn from_lookup(namespace: &str, get: impl Fn(&str) -> Option<String>) -> Self {
        let non_empty = |k: &str| get(k).filter(|v| !v.trim().is_empty());
        let revision = non_empty("REVISION").unwrap_or_else(|| "default".into());
        let suffix = if revision == "default" {
            String::new()
        } else {
            format!("-{revision}")
        };
        Self {
            pod_name: non_empty("POD_NAME"),
            injection_webhook_config_name: non_empty("INJECTION_WEBHOOK_CONFIG_NAME")
                .unwrap_or_else(|| format!("istio-sidecar-injector{suffix}")),
            validation_webhook_config_name: non_empty("VALIDATION_WEBHOOK_CONFIG_NAME")
                .unwrap_or_else(|| format!("istio-validator{suffix}-{namespace}")),
            istiod_addr: non_empty("ISTIOD_ADDR"),
            default_validator_name: (revision == "default").then(|| DEFAULT_VALIDATOR.to_string()),
            write_status: !non_empty("PILOT_ENABLE_STATUS")
                .is_some_and(|v| v.eq_ignore_ascii_case("false")),
            revision,
        }
    }

    /// Every ValidatingWebhookConfiguration lateend keeps the `caBundle` of.
    pub fn validation_webhook_configs(&self) -> Vec<String> {
        let mut names = vec![self.validation_webhook_config_name.clone()];
        names.extend(self.default_validator_name.clone());
        names
    }

    /// lateend's Service name for this revision (`lateend`, `lateend-REVISION`).
    pub fn service_name(&self) -> String {
        if self.revision == "default" {
            "lateend".into()
        } else {
            format!("lateend-{}", self.revision)
        }
    }

    /// DNS names lateend's serving certificate needs: its Service's names in `namespace`
    /// and the host of `ISTIOD_ADDR`.
    pub fn serving_names(&self, namespace: &str) -> Vec<String> {
        let service = self.service_name();
        let mut names = vec![
            format!("{service}.{namespace}.svc"),
            format!("{service}.{namespace}.svc.{SUPPORTED_DOMAIN}"),
            format!("{service}.{namespace}"),
            service,
        ];
        if let Some(host) = self
            .istiod_addr
            .as_deref()
            .map(|a| match a.rsplit_once(':') {
                Some((h, p)) if p.parse::<u16>().is_ok() => h,
                _ => a,
            })
            && !host.is_empty()
            && !names.iter().any(|n| n == host)
        {
            names.push(host.to_string());
        }
        names
    }
}

/// A command line of only istiod's flags (tests of this module and of `logging`).
#[cfg(test)]
#[derive(Debug, clap::Parser)]
pub(crate) struct Probe {
    #[command(flatten)]
    pub istiod: IstiodFlags,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[test]
    fn the_charts_flags_parse() {
        // What Istio's istio-discovery chart passes after `discovery`.
        let p = Probe::try_parse_from([
            "lateend",
            "--monitoringAddr=:15014",
            "--log_output_level=default:info",
            "--domain",
            "cluster.local",
            "--keepaliveMaxServerConnectionAge",
            "30m",
        ]);
        // --monitoringAddr belongs to lateend's own arguments, not to this struct.
        assert!(p.is_err());
        let p = Probe::try_parse_from([
            "lateend",
            "--log_output_level=default:info",
            "--log_as_json",
            "--domain",
            "cluster.local",
            "--keepaliveMaxServerConnectionAge",
            "30m",
            "--ctrlz_port=9876",
            "--resync=60s",
        ])
        .unwrap();
        assert_eq!(
            p.istiod.keepalive_max_server_connection_age,
            Some(Duration::from_secs(1800))
        );
        assert_eq!(p.istiod.log_as_json, Some(true));
        assert_eq!(p.istiod.no_effect.given(), ["--ctrlz_port", "--resync"]);
        p.istiod.check().unwrap();
    }

    #[test]
    fn unknown_flags_and_unsupported_values_are_refused() {
        let err = Probe::try_parse_from(["lateend", "--noSuchFlag=1"]).unwrap_err();
        assert!(err.to_string().contains("--noSuchFlag"), "{err}");
        let p = Probe::try_parse_from(["lateend", "--domain", "corp.example"]).unwrap();
        assert!(p.istiod.check().unwrap_err().contains("corp.example"));
        let p = Probe::try_parse_from(["lateend", "--registries", "Kubernetes,Consul"]).unwrap();
        assert!(p.istiod.check().unwrap_err().contains("Consul"));
        let err = Probe::try_parse_from(["lateend", "--keepaliveMaxServerConnectionAge", "soon"])
            .unwrap_err();
        assert!(err.to_string().contains("soon"), "{err}");
    }

    #[test]
    fn chart_environment() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                pairs
                    .iter()
                    .find(|(name, _)| *name == k)
                    .map(|(_, v)| v.to_string())
            }
        };
        let default = IstiodEnv::from_lookup(
            "istio-system",
            env(&[
                ("POD_NAME", "lateend-7d9f-abcde"),
                ("REVISION", "default"),
                ("ISTIOD_ADDR", "lateend.istio-system.svc:15012"),
            ]),
        );
        assert_eq!(default.pod_name.as_deref(), Some("lateend-7d9f-abcde"));
        assert_eq!(
            default.injection_webhook_config_name,
            "istio-sidecar-injector"
        );
        assert_eq!(
            default.validation_webhook_config_name,
            "istio-validator-istio-system"
        );
        assert!(default.write_status);
        assert_eq!(
            default.validation_webhook_configs(),
            ["istio-validator-istio-system", "istiod-default-validator"]
        );
        assert_eq!(
            default.serving_names("istio-system"),
            [
                "lateend.istio-system.svc",
                "lateend.istio-system.svc.cluster.local",
                "lateend.istio-system",
                "lateend"
            ]
        );
        let canary = IstiodEnv::from_lookup(
            "mesh",
            env(&[("REVISION", "canary"), ("PILOT_ENABLE_STATUS", "false")]),
        );
        assert_eq!(
            canary.injection_webhook_config_name,
            "istio-sidecar-injector-canary"
        );
        assert_eq!(
            canary.validation_webhook_config_name,
            "istio-validator-canary-mesh"
        );
        assert_eq!(canary.service_name(), "lateend-canary");
        assert_eq!(
            canary.validation_webhook_configs(),
            ["istio-validator-canary-mesh"]
        );
        assert!(!canary.write_status);
    }
}
