//! Install and uninstall with a record ([`crate::inventory`]): an install applies what it
//! renders, then deletes what the previous install of the same namespace and revision recorded
//! but is no longer rendered (a disabled gateway's Deployment, Service, ...), then records what
//! is installed now. Uninstall deletes what the record lists.
//!
//! CRDs and namespaces are never pruned (deleting them deletes users' configs and workloads);
//! they stay in the record so `uninstall --purge` still finds them. Objects that another
//! revision's record in the same namespace lists (the shared reader ServiceAccount) are neither
//! pruned nor uninstalled, except by a purge.

use std::collections::BTreeSet;

use kube::Client;

use crate::cluster::{self, is_kept_unless_purged};
use crate::error::Result;
use crate::inventory::{self, ObjectRef};
use crate::render::{InstallScope, RenderedObject, kind_rank};

/// What [`install`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InstallOutcome {
    /// Objects applied, as `Kind/namespace/name`, in order.
    pub applied: Vec<String>,
    /// Objects of the previous install deleted because they are no longer rendered.
    pub pruned: Vec<String>,
}

/// What the previous install recorded that `objects` no longer contains, in deletion order
/// (reverse apply order), without CRDs and namespaces.
pub fn prunable(previous: &[ObjectRef], objects: &[RenderedObject]) -> Vec<ObjectRef> {
    let wanted: BTreeSet<ObjectRef> = objects.iter().map(|o| ObjectRef::of(&o.object)).collect();
    let mut stale: Vec<ObjectRef> = previous
        .iter()
        .filter(|object| !wanted.contains(object) && !is_kept_unless_purged(&object.kind))
        .cloned()
        .collect();
    stale.sort_by_key(|object| std::cmp::Reverse(kind_rank(&object.kind)));
    stale
}

/// What the previous install would prune if `objects` were installed now (for `--dry-run`).
pub async fn plan_prune(
    client: &Client,
    scope: &InstallScope,
    objects: &[RenderedObject],
) -> Result<Vec<ObjectRef>> {
    let previous = inventory::read(client, scope).await?.unwrap_or_default();
    Ok(prunable(&previous, objects))
}

/// Applies `objects`, prunes what the previous install in `scope` left and records the install.
/// `owner` says who installed (`lateen install`, `IstioOperator ns/name`).
pub async fn install(
    client: &Client,
    scope: &InstallScope,
    owner: &str,
    objects: &[RenderedObject],
) -> Result<InstallOutcome> {
    let previous = inventory::read(client, scope).await?;
    let applied = cluster::apply(client, objects).await?;
    let current: Vec<ObjectRef> = objects.iter().map(|o| ObjectRef::of(&o.object)).collect();
    let previous = previous.unwrap_or_default();
    let shared = if previous.is_empty() {
        Vec::new()
    } else {
        inventory::read_others(client, scope).await?
    };
    let stale: Vec<ObjectRef> = prunable(&previous, objects)
        .into_iter()
        .filter(|object| !shared.contains(object))
        .collect();
    // CRDs and namespaces recorded before stay recorded, so a purge can find them.
    let mut record = current.clone();
    for kept in previous.iter().filter(|o| is_kept_unless_purged(&o.kind)) {
        if !record.contains(kept) {
            record.push(kept.clone());
        }
    }
    let has_namespace = objects
        .iter()
        .any(|o| o.kind() == "Namespace" && o.name() == scope.namespace)
        || !previous.is_empty();
    if !has_namespace {
        // Nothing installed here now or before (the empty profile): no record to keep.
        return Ok(InstallOutcome {
            applied,
            pruned: Vec::new(),
        });
    }
    // Record the union first: if pruning fails halfway, the next install still knows the rest.
    let mut union = record.clone();
    union.extend(stale.iter().cloned());
    if !stale.is_empty() {
        inventory::write(client, scope, owner, &union).await?;
    }
    let pruned = cluster::delete_all(client, &stale).await?;
    inventory::write(client, scope, owner, &record).await?;
    Ok(InstallOutcome { applied, pruned })
}

/// Deletes what the install in `scope` recorded (or, without a record, `rendered`), in reverse
/// apply order; CRDs and namespaces only with `purge`. Returns the deleted objects.
pub async fn uninstall(
    client: &Client,
    scope: &InstallScope,
    rendered: &[RenderedObject],
    purge: bool,
) -> Result<Vec<String>> {
    let recorded = inventory::read(client, scope).await?;
    let mut objects: Vec<ObjectRef> = match &recorded {
        Some(list) => list.clone(),
        None => rendered.iter().map(|o| ObjectRef::of(&o.object)).collect(),
    };
    objects.sort_by_key(|object| std::cmp::Reverse(kind_rank(&object.kind)));
    // What another revision's install also lists stays unless purging.
    let shared = if purge {
        Vec::new()
    } else {
        inventory::read_others(client, scope).await?
    };
    // Shared objects stay but leave this record: the other install's record owns them now.
    let (kept, doomed): (Vec<ObjectRef>, Vec<ObjectRef>) = objects
        .into_iter()
        .filter(|object| purge || !shared.contains(object))
        .partition(|object| !purge && is_kept_unless_purged(&object.kind));
    // Namespaces go last: deleting one deletes the record inside it.
    let (namespaces, others): (Vec<ObjectRef>, Vec<ObjectRef>) = doomed
        .into_iter()
        .partition(|object| object.kind == "Namespace");
    let mut deleted = cluster::delete_all(client, &others).await?;
    if recorded.is_some() {
        if kept.is_empty() {
            inventory::remove(client, scope).await?;
        } else {
            inventory::write(client, scope, "lateen uninstall", &kept).await?;
        }
    }
    deleted.extend(cluster::delete_all(client, &namespaces).await?);
    Ok(deleted)
}
