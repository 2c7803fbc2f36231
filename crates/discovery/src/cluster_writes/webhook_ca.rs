//! The `caBundle` of lateend's own webhook configurations, kept equal to the CA of its serving
//! certificate, as istiod's webhook patcher and validation controller keep theirs:
//!
//! - MutatingWebhookConfiguration `INJECTION_WEBHOOK_CONFIG_NAME` (what `lateen install`
//!   renders): the webhooks whose name ends in `sidecar-injector.istio.io`. istiod selects by
//!   the label `istio.io/rev`; lateend goes by name only, so it never touches an Istio
//!   installation's configurations that share the revision label.
//! - ValidatingWebhookConfigurations `VALIDATION_WEBHOOK_CONFIG_NAME` and, for the default
//!   revision, `istiod-default-validator`: every webhook. They are rendered
//!   `failurePolicy: Ignore` (so config can be applied before lateend runs); once a
//!   server-side dry run of an invalid Gateway is refused by the webhook, they become `Fail`,
//!   as istiod does. Until then the dry run is repeated with a growing pause (1 s to 60 s).
//!
//! Writes are `replace` with the read resourceVersion (istiod's RBAC has `update`, not
//! `patch`, on validating webhook configurations).

use std::time::Duration;

use k8s_openapi::ByteString;
use k8s_openapi::api::admissionregistration::v1::{
    MutatingWebhookConfiguration, ValidatingWebhookConfiguration,
};
use kube::Api;
use kube::api::{DynamicObject, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use kube::runtime::{WatchStreamExt, watcher};
use tokio_stream::StreamExt;

use super::Settings;
use crate::admission::ALWAYS_REJECT_ANNOTATION;

/// Suffix of the injection webhooks' names istiod patches.
pub const INJECTION_WEBHOOK_SUFFIX: &str = "sidecar-injector.istio.io";
const REV_LABEL: &str = "istio.io/rev";
/// How often the configurations are checked without an event.
const TICK: Duration = Duration::from_secs(5);

/// Sets `caBundle` on the injection webhooks of `config`; true when something changed.
pub fn patch_mutating(config: &mut MutatingWebhookConfiguration, ca_pem: &str) -> bool {
    let mut changed = false;
    for hook in config.webhooks.iter_mut().flatten() {
        if hook.name.ends_with(INJECTION_WEBHOOK_SUFFIX) {
            changed |= set_bundle(&mut hook.client_config.ca_bundle, ca_pem);
        }
    }
    changed
}

/// Sets `caBundle` on every webhook of `config`, and `failurePolicy: Fail` when
/// `fail_closed`; true when something changed.
pub fn patch_validating(
    config: &mut ValidatingWebhookConfiguration,
    ca_pem: &str,
    fail_closed: bool,
) -> bool {
    let mut changed = false;
    for hook in config.webhooks.iter_mut().flatten() {
        changed |= set_bundle(&mut hook.client_config.ca_bundle, ca_pem);
        if fail_closed && hook.failure_policy.as_deref() != Some("Fail") {
            hook.failure_policy = Some("Fail".into());
            changed = true;
        }
    }
    changed
}

fn set_bundle(slot: &mut Option<ByteString>, ca_pem: &str) -> bool {
    if slot.as_ref().is_some_and(|b| b.0 == ca_pem.as_bytes()) {
        return false;
    }
    *slot = Some(ByteString(ca_pem.as_bytes().to_vec()));
    true
}

/// Keeps the bundles right until cancelled (runs while this replica leads).
pub async fn run(client: kube::Client, settings: Settings) {
    let mutating: Api<MutatingWebhookConfiguration> = Api::all(client.clone());
    let validating: Api<ValidatingWebhookConfiguration> = Api::all(client.clone());
    let m_events = watcher(
        mutating.clone(),
        watcher::Config::default().fields(&format!(
            "metadata.name={}",
            settings.injection_webhook_config
        )),
    )
    .default_backoff()
    .map(|_| ());
    // Two names cannot be one field selector; validating configurations are few.
    let v_events = watcher(validating.clone(), watcher::Config::default())
        .default_backoff()
        .map(|_| ());
    let mut events = Box::pin(m_events.merge(v_events));
    let mut fail_closed = false;
    let mut next_dry_run = tokio::time::Instant::now();
    let mut dry_run_pause = Duration::from_secs(1);
    loop {
        if let Err(e) = patch_all_mutating(&mutating, &settings).await {
            tracing::warn!(error = %e, "could not patch the injection webhook's caBundle; retrying");
        }
        if !fail_closed && tokio::time::Instant::now() >= next_dry_run {
            fail_closed =
                invalid_config_rejected(&client, &settings.namespace, &settings.revision).await;
            next_dry_run = tokio::time::Instant::now() + dry_run_pause;
            dry_run_pause = (dry_run_pause * 2).min(Duration::from_secs(60));
        }
        for name in &settings.validation_webhook_configs {
            if let Err(e) =
                patch_validating_config(&validating, name, &settings.ca_pem, fail_closed).await
            {
                tracing::warn!(%name, error = %e, "could not patch the validation webhook's caBundle; retrying");
            }
        }
        let pause = if fail_closed {
            TICK
        } else {
            next_dry_run
                .saturating_duration_since(tokio::time::Instant::now())
                .min(TICK)
        };
        tokio::select! {
            e = events.next() => if e.is_none() { return; },
            () = tokio::time::sleep(pause) => {}
        }
        while let Ok(Some(_)) = tokio::time::timeout(Duration::from_millis(20), events.next()).await
        {
        }
    }
}

async fn patch_all_mutating(
    api: &Api<MutatingWebhookConfiguration>,
    settings: &Settings,
) -> Result<(), kube::Error> {
    let name = &settings.injection_webhook_config;
    let Some(mut config) = api.get_opt(name).await? else {
        return Ok(());
    };
    if !patch_mutating(&mut config, &settings.ca_pem) {
        return Ok(());
    }
    match api.replace(name, &PostParams::default(), &config).await {
        Ok(_) => {
            tracing::info!(%name, "patched MutatingWebhookConfiguration caBundle");
            Ok(())
        }
        // Changed meanwhile: the next pass reads it again.
        Err(kube::Error::Api(e)) if e.code == 409 => Ok(()),
        Err(e) => Err(e),
    }
}

async fn patch_validating_config(
    api: &Api<ValidatingWebhookConfiguration>,
    name: &str,
    ca_pem: &str,
    fail_closed: bool,
) -> Result<(), kube::Error> {
    let Some(mut config) = api.get_opt(name).await? else {
        return Ok(());
    };
    if !patch_validating(&mut config, ca_pem, fail_closed) {
        return Ok(());
    }
    match api.replace(name, &PostParams::default(), &config).await {
        Ok(_) => {
            tracing::info!(%name, fail_closed, "patched ValidatingWebhookConfiguration caBundle");
            Ok(())
        }
        Err(kube::Error::Api(e)) if e.code == 409 => Ok(()),
        Err(e) => Err(e),
    }
}

/// istiod's readiness check for fail-closed validation: a server-side dry run of a Gateway
/// with no servers, labelled with this revision (so this revision's webhook is the one asked)
/// and annotated `internal.istio.io/webhook-always-reject`, must be denied by the validation
/// webhook. A missing Gateway CRD counts as ready (nothing to validate), as in istiod.
async fn invalid_config_rejected(client: &kube::Client, namespace: &str, revision: &str) -> bool {
    let gvk = GroupVersionKind::gvk("networking.istio.io", "v1", "Gateway");
    let resource = ApiResource::from_gvk_with_plural(&gvk, "gateways");
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), namespace, &resource);
    let mut invalid = DynamicObject::new("invalid-gateway", &resource).within(namespace);
    invalid.metadata.labels = Some([(REV_LABEL.to_string(), revision.to_string())].into());
    invalid.metadata.annotations =
        Some([(ALWAYS_REJECT_ANNOTATION.to_string(), "true".to_string())].into());
    invalid.data = serde_json::json!({"spec": {}});
    let params = PostParams {
        dry_run: true,
        ..Default::default()
    };
    match api.create(&params, &invalid).await {
        Ok(_) => {
            tracing::info!(
                "validation webhook not rejecting invalid config yet; failurePolicy stays Ignore"
            );
            false
        }
        Err(kube::Error::Api(e)) if e.message.contains("denied the request") => {
            tracing::info!(
                "validation webhook rejects invalid config: switching it to failurePolicy Fail"
            );
            true
        }
        Err(kube::Error::Api(e)) if e.code == 404 => {
            tracing::warn!(
                "no Gateway CRD: cannot check the validation webhook; assuming it is ready"
            );
            true
        }
        Err(e) => {
            tracing::info!(error = %e, "invalid Gateway refused, but not by the validation webhook; failurePolicy stays Ignore");
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn only_injection_webhooks_get_the_bundle() {
        let mut config: MutatingWebhookConfiguration = serde_json::from_value(json!({
            "metadata": {"name": "istio-sidecar-injector"},
            "webhooks": [
                {"name": "namespace.sidecar-injector.istio.io", "clientConfig": {}, "sideEffects": "None", "admissionReviewVersions": ["v1"]},
                {"name": "someone.else.example", "clientConfig": {}, "sideEffects": "None", "admissionReviewVersions": ["v1"]},
            ],
        }))
        .unwrap();
        assert!(patch_mutating(&mut config, "CA"));
        let hooks = config.webhooks.as_ref().unwrap();
        assert_eq!(
            hooks[0].client_config.ca_bundle,
            Some(ByteString(b"CA".to_vec()))
        );
        assert_eq!(hooks[1].client_config.ca_bundle, None);
        assert!(
            !patch_mutating(&mut config, "CA"),
            "a second pass changes nothing"
        );
    }

    #[test]
    fn validation_goes_fail_closed_only_when_ready() {
        let mut config: ValidatingWebhookConfiguration = serde_json::from_value(json!({
            "metadata": {"name": "istio-validator-istio-system"},
            "webhooks": [{"name": "rev.validation.istio.io", "clientConfig": {}, "failurePolicy": "Ignore", "sideEffects": "None", "admissionReviewVersions": ["v1"]}],
        }))
        .unwrap();
        assert!(patch_validating(&mut config, "CA", false));
        let hook = &config.webhooks.as_ref().unwrap()[0];
        assert_eq!(hook.failure_policy.as_deref(), Some("Ignore"));
        assert!(patch_validating(&mut config, "CA", true));
        let hook = &config.webhooks.as_ref().unwrap()[0];
        assert_eq!(hook.failure_policy.as_deref(), Some("Fail"));
        assert!(!patch_validating(&mut config, "CA", true));
    }
}
