//! Server-side apply of a ShopRegion's children. Thin I/O: every decision is
//! [`needs_apply`]'s; a converged ShopRegion costs GETs and no write.

use std::fmt::Debug;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::{DeleteParams, Patch, PatchParams};
use kube::{Api, Client, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::builders::{Children, FIELD_MANAGER, MANAGED_BY, labels};
use super::diff::needs_apply;

/// What [`apply_children`] did.
#[derive(Clone, Debug, Default)]
pub struct ApplyReport {
    /// `Kind/name` of every child applied, in order.
    pub applied: Vec<String>,
    /// `Kind/name` of every child deleted.
    pub deleted: Vec<String>,
    /// The Deployment as it stands after the apply, for the status.
    pub deployment: Option<Deployment>,
}

/// Applies every child that needs it (server-side apply, field manager
/// `shopfleet`, forced) and deletes a PodDisruptionBudget that is no longer
/// wanted. The ConfigMap goes first so that new pods find it.
pub async fn apply_children(
    client: &Client,
    ns: &str,
    children: &Children,
) -> Result<ApplyReport, kube::Error> {
    let mut report = ApplyReport::default();
    apply_one(client, ns, &children.configmap, &mut report).await?;
    apply_one(client, ns, &children.service, &mut report).await?;
    report.deployment = Some(apply_one(client, ns, &children.deployment, &mut report).await?);
    match &children.pdb {
        Some(pdb) => {
            apply_one(client, ns, pdb, &mut report).await?;
        }
        None => delete_stale_pdb(client, ns, children, &mut report).await?,
    }
    apply_one(client, ns, &children.hpa, &mut report).await?;
    Ok(report)
}

/// GETs the child and applies it only when [`needs_apply`] says so. Returns
/// the object as the server holds it afterwards.
async fn apply_one<K>(
    client: &Client,
    ns: &str,
    desired: &K,
    report: &mut ApplyReport,
) -> Result<K, kube::Error>
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + Debug
        + Serialize
        + DeserializeOwned,
{
    let api: Api<K> = Api::namespaced(client.clone(), ns);
    let name = desired.name_any();
    let observed = api.get_opt(&name).await?;
    let desired_json = serde_json::to_value(desired).map_err(kube::Error::SerdeError)?;
    let observed_json = observed
        .as_ref()
        .map(serde_json::to_value)
        .transpose()
        .map_err(kube::Error::SerdeError)?;
    match observed {
        Some(current) if !needs_apply(&desired_json, observed_json.as_ref()) => Ok(current),
        _ => {
            let params = PatchParams::apply(FIELD_MANAGER).force();
            let applied = api.patch(&name, &params, &Patch::Apply(desired)).await?;
            report.applied.push(format!("{}/{name}", K::kind(&())));
            Ok(applied)
        }
    }
}

/// Deletes the `<name>-orders` PodDisruptionBudget when the spec no longer
/// wants one, but only if it is ours: labelled managed-by shopfleet and
/// controlled by the same ShopRegion as the Deployment.
async fn delete_stale_pdb(
    client: &Client,
    ns: &str,
    children: &Children,
    report: &mut ApplyReport,
) -> Result<(), kube::Error> {
    let api: Api<PodDisruptionBudget> = Api::namespaced(client.clone(), ns);
    let name = children.deployment.name_any();
    let Some(existing) = api.get_opt(&name).await? else {
        return Ok(());
    };
    let owner_uid = children
        .deployment
        .owner_references()
        .iter()
        .find(|o| o.controller == Some(true))
        .map(|o| o.uid.as_str());
    let managed = existing
        .labels()
        .get(labels::MANAGED_BY)
        .map(String::as_str)
        == Some(MANAGED_BY);
    let owned = owner_uid.is_some_and(|uid| {
        existing
            .owner_references()
            .iter()
            .any(|o| o.controller == Some(true) && o.uid == uid)
    });
    if managed && owned {
        api.delete(&name, &DeleteParams::default()).await?;
        report.deleted.push(format!("PodDisruptionBudget/{name}"));
    }
    Ok(())
}
