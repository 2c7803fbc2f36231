//! Where the control plane is and how to talk to it, decided as Istio's agent (pilot-agent)
//! decides it for istiod, from the sidecar's flags and the environment the injector sets
//! (docs/proxy-xds.md, "Control plane connection"):
//!
//! - address: `--discovery-address`, else `PROXY_CONFIG`'s `discoveryAddress`, else
//!   `CA_ADDR` (the same port under istiod), else `lateend.istio-system.svc:15012`;
//! - TLS: an `http://` or `https://` scheme says so; else `PROXY_CONFIG`'s
//!   `controlPlaneAuthPolicy` (`NONE` plaintext, `MUTUAL_TLS` TLS); else port 15010 is
//!   plaintext and 15012 TLS; any other port is TLS when a root certificate for xDS is
//!   configured or mounted, plaintext otherwise (a proxy run by hand beside a local lateend);
//! - root certificate, in Istio's `FindRootCAForXDS` order: `XDS_ROOT_CA`,
//!   `/etc/certs/root-cert.pem` if present, the service-account CA when
//!   `PILOT_CERT_PROVIDER=kubernetes`, `$PROV_CERT/root-cert.pem`, and by default the
//!   `istio-ca-root-cert` ConfigMap as the injector mounts it,
//!   `/var/run/secrets/istio/root-cert.pem`;
//! - server name: `ISTIOD_SAN`, else the address's host;
//! - token: `JWT_PATH` (default `/var/run/secrets/tokens/istio-token`, the projected token
//!   with audience `istio-ca`), sent as `authorization: Bearer ...`; required over TLS, sent
//!   when present over plaintext; `JWT_PATH=""` sends none.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use lateen_xds::client::{TlsSettings, TokenFile, Transport};
use serde_json::Value as Json;

/// lateend's Service and TLS port, as istiod's default `istiod.istio-system.svc:15012`.
pub const DEFAULT_DISCOVERY_ADDRESS: &str = "lateend.istio-system.svc:15012";
/// istiod's plaintext xDS port.
pub const PLAINTEXT_PORT: u16 = 15010;
/// istiod's xDS-over-TLS port.
pub const TLS_PORT: u16 = 15012;
/// The `istio-ca-root-cert` ConfigMap's `root-cert.pem`, where the injector mounts it.
pub const MESH_ROOT_CERT: &str = "/var/run/secrets/istio/root-cert.pem";
/// Istio's "old style" mounted root (`./etc/certs/root-cert.pem`), used when present.
pub const MOUNTED_ROOT_CERT: &str = "/etc/certs/root-cert.pem";
/// The service account's cluster CA (`PILOT_CERT_PROVIDER=kubernetes`).
pub const KUBERNETES_CA: &str = "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt";
/// The projected service-account token the injector mounts (audience `istio-ca`).
pub const DEFAULT_TOKEN: &str = "/var/run/secrets/tokens/istio-token";

/// The resolved connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ControlPlane {
    /// `HOST:PORT` (with the scheme, if one was given).
    pub address: String,
    pub transport: Transport,
    pub token: Option<TokenFile>,
    /// Why TLS is on or off, for the start-up log.
    pub reason: String,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ControlPlaneError {
    #[error("PROXY_CONFIG: {0}")]
    ProxyConfig(String),
    #[error("PROXY_CONFIG: controlPlaneAuthPolicy {0:?} is not NONE or MUTUAL_TLS")]
    AuthPolicy(String),
    #[error("discovery address {address:?}: {reason}")]
    Address { address: String, reason: String },
    #[error(
        "xDS over TLS needs a root certificate but PILOT_CERT_PROVIDER is \"none\" and XDS_ROOT_CA is not set"
    )]
    NoRootProvider,
    #[error("XDS_ROOT_CA=SYSTEM (the system's roots) is not supported; give a PEM file")]
    SystemRoots,
}

/// Resolves the connection from the `--discovery-address` flag and the environment;
/// `exists` tells whether a file is there (the root's default depends on it).
pub fn resolve(
    flag: Option<&str>,
    env: &BTreeMap<String, String>,
    exists: &dyn Fn(&Path) -> bool,
) -> Result<ControlPlane, ControlPlaneError> {
    let get = |name: &str| env.get(name).map(String::as_str).filter(|v| !v.is_empty());
    let proxy_config = match get("PROXY_CONFIG") {
        Some(text) => parse_proxy_config(text)?,
        None => ProxyConfigFields::default(),
    };
    let address = flag
        .filter(|a| !a.is_empty())
        .map(str::to_string)
        .or(proxy_config.discovery_address)
        // istiod serves xDS and its CA on one port, and Lateen's gateway Deployment (which
        // mounts no mesh config) names its revision's lateend only there.
        .or_else(|| get("CA_ADDR").map(str::to_string))
        .unwrap_or_else(|| DEFAULT_DISCOVERY_ADDRESS.to_string());
    let (host, port) = host_and_port(&address)?;
    let root = || root_cert(env, exists);

    let (tls, reason) = if address.starts_with("http://") {
        (false, "the address says http://".to_string())
    } else if address.starts_with("https://") {
        (true, "the address says https://".to_string())
    } else if let Some(policy) = proxy_config.auth_policy {
        match policy.as_str() {
            "NONE" => (false, "controlPlaneAuthPolicy NONE".to_string()),
            "MUTUAL_TLS" => (true, "controlPlaneAuthPolicy MUTUAL_TLS".to_string()),
            other => return Err(ControlPlaneError::AuthPolicy(other.to_string())),
        }
    } else if port == PLAINTEXT_PORT {
        (false, format!("port {PLAINTEXT_PORT} is plaintext"))
    } else if port == TLS_PORT {
        (true, format!("port {TLS_PORT} is TLS"))
    } else if get("XDS_ROOT_CA").is_some() {
        (true, "XDS_ROOT_CA is set".to_string())
    } else {
        match root() {
            Ok(path) if exists(&path) => (
                true,
                format!("a root certificate for xDS is at {}", path.display()),
            ),
            _ => (
                false,
                format!("port {port} and no root certificate for xDS"),
            ),
        }
    };

    let transport = if tls {
        Transport::Tls(TlsSettings {
            root_cert: root()?,
            server_name: get("ISTIOD_SAN")
                .map(str::to_string)
                .unwrap_or_else(|| host.clone()),
        })
    } else {
        Transport::Plaintext
    };
    let token = match env.get("JWT_PATH") {
        Some(path) if path.is_empty() => None,
        Some(path) => Some(PathBuf::from(path)),
        None => Some(PathBuf::from(DEFAULT_TOKEN)),
    }
    .map(|path| TokenFile {
        path,
        required: tls,
    });
    Ok(ControlPlane {
        address,
        transport,
        token,
        reason,
    })
}

/// The root certificate file for xDS, in Istio's order.
fn root_cert(
    env: &BTreeMap<String, String>,
    exists: &dyn Fn(&Path) -> bool,
) -> Result<PathBuf, ControlPlaneError> {
    let get = |name: &str| env.get(name).map(String::as_str).filter(|v| !v.is_empty());
    if let Some(root) = get("XDS_ROOT_CA") {
        if root == "SYSTEM" {
            return Err(ControlPlaneError::SystemRoots);
        }
        return Ok(PathBuf::from(root));
    }
    if exists(Path::new(MOUNTED_ROOT_CERT)) {
        return Ok(PathBuf::from(MOUNTED_ROOT_CERT));
    }
    match get("PILOT_CERT_PROVIDER") {
        Some("kubernetes") => return Ok(PathBuf::from(KUBERNETES_CA)),
        Some("none") if get("PROV_CERT").is_none() => {
            return Err(ControlPlaneError::NoRootProvider);
        }
        _ => {}
    }
    if let Some(dir) = get("PROV_CERT") {
        return Ok(Path::new(dir).join("root-cert.pem"));
    }
    Ok(PathBuf::from(MESH_ROOT_CERT))
}

#[derive(Default)]
struct ProxyConfigFields {
    discovery_address: Option<String>,
    auth_policy: Option<String>,
}

/// The two fields of Istio's `PROXY_CONFIG` (JSON as the injector writes it, or YAML) that
/// matter here.
fn parse_proxy_config(text: &str) -> Result<ProxyConfigFields, ControlPlaneError> {
    let value: Json = serde_saphyr::from_str(text)
        .map_err(|e| ControlPlaneError::ProxyConfig(format!("not JSON or YAML: {e}")))?;
    let Json::Object(fields) = value else {
        return Err(ControlPlaneError::ProxyConfig("not an object".into()));
    };
    let string = |name: &str| -> Result<Option<String>, ControlPlaneError> {
        match fields.get(name) {
            None | Some(Json::Null) => Ok(None),
            Some(Json::String(text)) if text.is_empty() => Ok(None),
            Some(Json::String(text)) => Ok(Some(text.clone())),
            Some(other) => Err(ControlPlaneError::ProxyConfig(format!(
                "{name} is {other}, not a string"
            ))),
        }
    };
    Ok(ProxyConfigFields {
        discovery_address: string("discoveryAddress")?,
        auth_policy: string("controlPlaneAuthPolicy")?,
    })
}

/// Host (without IPv6 brackets) and port of `HOST:PORT`, with or without a scheme.
fn host_and_port(address: &str) -> Result<(String, u16), ControlPlaneError> {
    let error = |reason: &str| ControlPlaneError::Address {
        address: address.to_string(),
        reason: reason.to_string(),
    };
    let authority = address
        .strip_prefix("http://")
        .or_else(|| address.strip_prefix("https://"))
        .unwrap_or(address)
        .trim_end_matches('/');
    let uri: http::Uri = format!("http://{authority}")
        .parse()
        .map_err(|_| error("not HOST:PORT"))?;
    let host = uri
        .host()
        .filter(|h| !h.is_empty())
        .ok_or_else(|| error("no host"))?;
    let port = uri.port_u16().ok_or_else(|| error("no port"))?;
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    Ok((host, port))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xds::identity::tests::env;

    fn nothing(_: &Path) -> bool {
        false
    }

    fn tls(root: &str, name: &str) -> Transport {
        Transport::Tls(TlsSettings {
            root_cert: root.into(),
            server_name: name.into(),
        })
    }

    #[test]
    fn injected_sidecar_uses_tls_with_the_mounted_root_and_token() {
        let resolved = resolve(
            Some("lateend.istio-system.svc:15012"),
            &env(&[("CA_ADDR", "lateend.istio-system.svc:15012")]),
            &nothing,
        )
        .expect("resolves");
        assert_eq!(
            resolved.transport,
            tls(MESH_ROOT_CERT, "lateend.istio-system.svc")
        );
        assert_eq!(
            resolved.token,
            Some(TokenFile {
                path: DEFAULT_TOKEN.into(),
                required: true
            })
        );
    }

    #[test]
    fn port_15010_and_explicit_opt_outs_are_plaintext() {
        for (flag, vars) in [
            ("lateend.istio-system.svc:15010", vec![]),
            ("http://lateend.istio-system.svc:15012", vec![]),
            (
                "lateend.istio-system.svc:15012",
                vec![("PROXY_CONFIG", r#"{"controlPlaneAuthPolicy":"NONE"}"#)],
            ),
        ] {
            let resolved = resolve(Some(flag), &env(&vars), &nothing).expect("resolves");
            assert_eq!(resolved.transport, Transport::Plaintext, "{flag} {vars:?}");
            assert_eq!(
                resolved.token.map(|t| t.required),
                Some(false),
                "token optional over plaintext"
            );
        }
    }

    #[test]
    fn other_ports_follow_the_root_certificate() {
        let local = resolve(Some("127.0.0.1:41000"), &env(&[]), &nothing).expect("resolves");
        assert_eq!(local.transport, Transport::Plaintext);
        let mounted = |path: &Path| path == Path::new(MESH_ROOT_CERT);
        let in_pod = resolve(Some("lateend.mesh:443"), &env(&[]), &mounted).expect("resolves");
        assert_eq!(in_pod.transport, tls(MESH_ROOT_CERT, "lateend.mesh"));
        let configured = resolve(
            Some("127.0.0.1:41000"),
            &env(&[
                ("XDS_ROOT_CA", "/tmp/ca.pem"),
                ("ISTIOD_SAN", "lateend.istio-system.svc"),
            ]),
            &nothing,
        )
        .expect("resolves");
        assert_eq!(
            configured.transport,
            tls("/tmp/ca.pem", "lateend.istio-system.svc")
        );
        let forced = resolve(
            Some("127.0.0.1:41000"),
            &env(&[("PROXY_CONFIG", "controlPlaneAuthPolicy: MUTUAL_TLS\n")]),
            &nothing,
        )
        .expect("resolves");
        assert_eq!(forced.transport, tls(MESH_ROOT_CERT, "127.0.0.1"));
    }

    #[test]
    fn address_comes_from_proxy_config_then_the_default() {
        let from_config = resolve(
            None,
            &env(&[(
                "PROXY_CONFIG",
                r#"{"discoveryAddress":"lateend-canary.istio-system.svc:15012"}"#,
            )]),
            &nothing,
        )
        .expect("resolves");
        assert_eq!(from_config.address, "lateend-canary.istio-system.svc:15012");
        let gateway = resolve(
            None,
            &env(&[("CA_ADDR", "lateend-canary.istio-system.svc:15012")]),
            &nothing,
        )
        .expect("resolves");
        assert_eq!(gateway.address, "lateend-canary.istio-system.svc:15012");
        let default = resolve(None, &env(&[]), &nothing).expect("resolves");
        assert_eq!(default.address, DEFAULT_DISCOVERY_ADDRESS);
        assert_eq!(
            default.transport,
            tls(MESH_ROOT_CERT, "lateend.istio-system.svc")
        );
    }

    #[test]
    fn root_certificate_order_is_istios() {
        let old_style = |path: &Path| path == Path::new(MOUNTED_ROOT_CERT);
        let at = |vars: &[(&str, &str)], exists: &dyn Fn(&Path) -> bool| match resolve(
            Some("x.svc:15012"),
            &env(vars),
            exists,
        )
        .expect("resolves")
        .transport
        {
            Transport::Tls(tls) => tls.root_cert,
            Transport::Plaintext => panic!("expected TLS"),
        };
        assert_eq!(at(&[], &old_style), PathBuf::from(MOUNTED_ROOT_CERT));
        assert_eq!(
            at(&[("PILOT_CERT_PROVIDER", "kubernetes")], &nothing),
            PathBuf::from(KUBERNETES_CA)
        );
        assert_eq!(
            at(&[("PROV_CERT", "/etc/prov")], &nothing),
            PathBuf::from("/etc/prov/root-cert.pem")
        );
        assert_eq!(
            at(&[("PILOT_CERT_PROVIDER", "istiod")], &nothing),
            PathBuf::from(MESH_ROOT_CERT)
        );
        assert_eq!(
            resolve(
                Some("x.svc:15012"),
                &env(&[("PILOT_CERT_PROVIDER", "none")]),
                &nothing
            ),
            Err(ControlPlaneError::NoRootProvider)
        );
    }

    #[test]
    fn bad_input_is_named() {
        let error = resolve(
            Some("x.svc:15012"),
            &env(&[("PROXY_CONFIG", r#"{"controlPlaneAuthPolicy":"TLS"}"#)]),
            &nothing,
        )
        .expect_err("unknown policy");
        assert_eq!(
            error.to_string(),
            "PROXY_CONFIG: controlPlaneAuthPolicy \"TLS\" is not NONE or MUTUAL_TLS"
        );
        let error =
            resolve(Some("lateend.istio-system.svc"), &env(&[]), &nothing).expect_err("no port");
        assert_eq!(
            error.to_string(),
            "discovery address \"lateend.istio-system.svc\": no port"
        );
        let no_token =
            resolve(Some("x.svc:15012"), &env(&[("JWT_PATH", "")]), &nothing).expect("resolves");
        assert_eq!(no_token.token, None);
    }
}
