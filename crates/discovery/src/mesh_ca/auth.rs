//! Who is asking for a certificate: the bearer token of a `CreateCertificate` call mapped to
//! the one identity it may have. On Kubernetes a service-account token checked with a
//! TokenReview (audience `istio-ca`, as istiod's `KubeJWTAuthenticator`); on one machine a
//! bootstrap token lateend issued ([`BootstrapTokens`]).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec};
use kube::Api;
use kube::api::PostParams;
use lateen_identity::Identity;

/// The audience istiod requires of the tokens proxies send (`istio-ca`).
pub const TOKEN_AUDIENCE: &str = "istio-ca";
/// The name of a bootstrap token file, as Istio's projected token
/// (`/var/run/secrets/tokens/istio-token`).
pub const TOKEN_FILE_NAME: &str = "istio-token";

/// Why a caller is not authenticated (the gRPC answer is UNAUTHENTICATED with this text).
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("no bearer token in the authorization metadata")]
    NoToken,
    #[error("the token is not one lateend issued")]
    UnknownToken,
    #[error("TokenReview refused the token: {0}")]
    Refused(String),
    #[error("TokenReview user {0:?} is not a service account")]
    NotServiceAccount(String),
    #[error("TokenReview failed: {0}")]
    Review(String),
    #[error("no authenticator accepts tokens here")]
    NoAuthenticator,
}

/// How callers are authenticated: bootstrap tokens and/or the cluster's TokenReview.
pub struct Authenticator {
    pub bootstrap: Option<BootstrapTokens>,
    pub cluster: Option<kube::Client>,
    pub trust_domain: String,
}

impl Authenticator {
    /// Whether any token can be accepted (bootstrap tokens or a cluster to ask).
    pub fn can_authenticate(&self) -> bool {
        self.cluster.is_some() || self.bootstrap.is_some()
    }

    /// The identity `token` proves.
    pub async fn authenticate(&self, token: &str) -> Result<Identity, AuthError> {
        if let Some(bootstrap) = &self.bootstrap
            && let Some(identity) = bootstrap.identity_of(token)
        {
            return Ok(identity.clone());
        }
        match &self.cluster {
            Some(client) => token_review(client, token, &self.trust_domain).await,
            None if self.bootstrap.is_some() => Err(AuthError::UnknownToken),
            None => Err(AuthError::NoAuthenticator),
        }
    }
}

/// Asks the API server who `token` is; a service account `system:serviceaccount:NS:SA`
/// becomes `spiffe://TD/ns/NS/sa/SA`.
async fn token_review(
    client: &kube::Client,
    token: &str,
    trust_domain: &str,
) -> Result<Identity, AuthError> {
    let api: Api<TokenReview> = Api::all(client.clone());
    let review = TokenReview {
        spec: TokenReviewSpec {
            token: token.to_string(),
            audiences: Some(vec![TOKEN_AUDIENCE.to_string()]),
        },
        ..Default::default()
    };
    let answer = api
        .create(&PostParams::default(), &review)
        .await
        .map_err(|e| AuthError::Review(e.to_string()))?;
    let status = answer.status.unwrap_or_default();
    if status.authenticated != Some(true) {
        return Err(AuthError::Refused(
            status.error.unwrap_or_else(|| "not authenticated".into()),
        ));
    }
    // A token bound to other audiences is not authenticated for ours; one without any
    // (legacy) comes back without audiences, which istiod accepts too.
    if let Some(audiences) = &status.audiences
        && !audiences.iter().any(|a| a == TOKEN_AUDIENCE)
    {
        return Err(AuthError::Refused(format!(
            "token audiences {audiences:?} do not include {TOKEN_AUDIENCE}"
        )));
    }
    let username = status.user.and_then(|u| u.username).unwrap_or_default();
    let parts: Vec<&str> = username.split(':').collect();
    match parts.as_slice() {
        ["system", "serviceaccount", ns, sa] if !ns.is_empty() && !sa.is_empty() => {
            Ok(Identity::new(trust_domain, *ns, *sa))
        }
        _ => Err(AuthError::NotServiceAccount(username)),
    }
}

/// The token of an `authorization` value `Bearer TOKEN` (`None` for another scheme or an
/// empty token).
pub fn bearer_token(value: &str) -> Option<&str> {
    let token = value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("bearer "))?
        .trim();
    (!token.is_empty()).then_some(token)
}

/// Bootstrap tokens for workloads on one machine: for each identity `NS/SA` lateend keeps a
/// random token in `DIR/NS/SA/istio-token` (0600; kept across restarts, made when missing).
/// A workload started with that file as its token (`--token-file`, Istio's
/// `/var/run/secrets/tokens/istio-token`) gets certificates for `NS/SA` and no other.
pub struct BootstrapTokens {
    by_token: HashMap<String, Identity>,
}

/// Why the bootstrap token folder cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("bootstrap token {}: {reason}", path.display())]
pub struct BootstrapError {
    pub path: PathBuf,
    pub reason: String,
}

impl BootstrapTokens {
    /// Reads every `DIR/NS/SA/istio-token`, first making one for each of `identities` that
    /// has none.
    pub fn open(
        dir: &Path,
        trust_domain: &str,
        identities: &[(String, String)],
    ) -> Result<BootstrapTokens, BootstrapError> {
        let error = |path: &Path, e: std::io::Error| BootstrapError {
            path: path.to_path_buf(),
            reason: e.to_string(),
        };
        for (ns, sa) in identities {
            let folder = dir.join(ns).join(sa);
            let file = folder.join(TOKEN_FILE_NAME);
            if file.is_file() {
                continue;
            }
            std::fs::create_dir_all(&folder).map_err(|e| error(&folder, e))?;
            write_token(&file, &new_token()).map_err(|e| error(&file, e))?;
        }
        let mut by_token = HashMap::new();
        let namespaces = match std::fs::read_dir(dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(BootstrapTokens { by_token });
            }
            Err(e) => return Err(error(dir, e)),
        };
        for ns in namespaces.flatten() {
            let Ok(accounts) = std::fs::read_dir(ns.path()) else {
                continue;
            };
            for sa in accounts.flatten() {
                let file = sa.path().join(TOKEN_FILE_NAME);
                let Ok(token) = std::fs::read_to_string(&file) else {
                    continue;
                };
                let token = token.trim().to_string();
                if token.is_empty() {
                    continue;
                }
                let identity = Identity::new(
                    trust_domain,
                    ns.file_name().to_string_lossy(),
                    sa.file_name().to_string_lossy(),
                );
                by_token.insert(token, identity);
            }
        }
        Ok(BootstrapTokens { by_token })
    }

    fn identity_of(&self, token: &str) -> Option<&Identity> {
        self.by_token.get(token)
    }

    /// How many identities have a token.
    pub fn len(&self) -> usize {
        self.by_token.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_token.is_empty()
    }
}

/// 256 random bits, hex.
fn new_token() -> String {
    let bytes: [u8; 32] = rand::random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn write_token(path: &Path, token: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(token.as_bytes())
}

/// `NS/SA` as given to `--bootstrap-identity`.
pub fn parse_identity(text: &str) -> Result<(String, String), String> {
    match text.split_once('/') {
        Some((ns, sa)) if !ns.is_empty() && !sa.is_empty() && !sa.contains('/') => {
            Ok((ns.to_string(), sa.to_string()))
        }
        _ => Err(format!("{text:?} is not NAMESPACE/SERVICE_ACCOUNT")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn bootstrap_tokens_are_made_once_and_map_to_their_identity() {
        let dir = tempfile::tempdir().unwrap();
        let ids = vec![("default".to_string(), "reviews".to_string())];
        let tokens = BootstrapTokens::open(dir.path(), "cluster.local", &ids).unwrap();
        let file = dir.path().join("default/reviews/istio-token");
        let token = std::fs::read_to_string(&file).unwrap();
        assert_eq!(token.len(), 64);
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
            0o600
        );
        // A restart keeps the token.
        let again = BootstrapTokens::open(dir.path(), "cluster.local", &ids).unwrap();
        assert_eq!(std::fs::read_to_string(&file).unwrap(), token);
        assert_eq!(again.len(), 1);
        let auth = Authenticator {
            bootstrap: Some(tokens),
            cluster: None,
            trust_domain: "cluster.local".into(),
        };
        assert_eq!(
            auth.authenticate(&token).await.unwrap(),
            Identity::new("cluster.local", "default", "reviews")
        );
        assert!(matches!(
            auth.authenticate("nope").await,
            Err(AuthError::UnknownToken)
        ));
    }

    #[test]
    fn only_a_bearer_scheme_with_a_token_is_a_token() {
        assert_eq!(bearer_token("Bearer abc.def"), Some("abc.def"));
        assert_eq!(bearer_token("bearer  abc "), Some("abc"));
        for none in ["Basic abc", "Bearer ", "Bearer", "abc", ""] {
            assert_eq!(bearer_token(none), None, "{none:?}");
        }
    }

    #[test]
    fn identities_parse() {
        assert_eq!(
            parse_identity("default/reviews").unwrap(),
            ("default".into(), "reviews".into())
        );
        for bad in ["default", "/x", "x/", "a/b/c"] {
            assert!(parse_identity(bad).is_err(), "{bad}");
        }
    }
}
