//! Finalizers, deletionTimestamp, owner-reference garbage collection and
//! namespace deletion, plus kube-runtime's finalizer helper.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::Action;
use kube::runtime::finalizer::{Event as FinalizerEvent, finalizer};
use kube::{Resource, ResourceExt};
use serde_json::json;

use crate::support::{Widget, api_error, env, eventually, eventually_within, widget};

fn cm(name: &str, finalizers: &[&str]) -> ConfigMap {
    serde_json::from_value(json!({"metadata": {"name": name, "finalizers": finalizers}})).unwrap()
}

#[tokio::test]
async fn delete_with_finalizers_sets_deletion_timestamp_until_they_are_removed() {
    let env = env().await;
    let api: Api<ConfigMap> = env.api();
    api.create(&PostParams::default(), &cm("a", &["x.dev/hold"]))
        .await
        .unwrap();
    let deleted = api.delete("a", &DeleteParams::default()).await.unwrap();
    let obj = deleted
        .left()
        .expect("object returned while finalizers remain");
    assert!(obj.metadata.deletion_timestamp.is_some());
    assert_eq!(obj.metadata.deletion_grace_period_seconds, Some(0));
    assert!(
        api.get("a")
            .await
            .unwrap()
            .metadata
            .deletion_timestamp
            .is_some()
    );
    api.patch(
        "a",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": null}})),
    )
    .await
    .unwrap();
    eventually("object gone", || async {
        api.get_opt("a").await.unwrap().is_none()
    })
    .await;
}

#[tokio::test]
async fn finalizers_cannot_be_added_while_deleting() {
    let env = env().await;
    let api: Api<ConfigMap> = env.api();
    api.create(&PostParams::default(), &cm("a", &["x.dev/hold"]))
        .await
        .unwrap();
    api.delete("a", &DeleteParams::default()).await.unwrap();
    let err = api_error(
        api.patch(
            "a",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"finalizers": ["x.dev/hold", "x.dev/new"]}})),
        )
        .await,
    );
    assert_eq!((err.code, err.reason.as_str()), (422, "Invalid"));
    assert!(
        err.message
            .contains("no new finalizers can be added if the object is being deleted"),
        "{}",
        err.message
    );
    api.patch(
        "a",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": null}})),
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn deleting_an_owner_garbage_collects_dependents_in_cascade() {
    let env = env().await;
    let cms: Api<ConfigMap> = env.api();
    let secrets: Api<Secret> = env.api();
    let owner = cms
        .create(&PostParams::default(), &cm("owner", &[]))
        .await
        .unwrap();
    let mut child = cm("child", &[]);
    child.metadata.owner_references = Some(vec![owner.controller_owner_ref(&()).unwrap()]);
    let child = cms.create(&PostParams::default(), &child).await.unwrap();
    let mut grandchild: Secret =
        serde_json::from_value(json!({"metadata": {"name": "grandchild"}})).unwrap();
    grandchild.metadata.owner_references = Some(vec![child.controller_owner_ref(&()).unwrap()]);
    secrets
        .create(&PostParams::default(), &grandchild)
        .await
        .unwrap();
    let mut survivor: Secret =
        serde_json::from_value(json!({"metadata": {"name": "survivor"}})).unwrap();
    survivor.metadata.owner_references = Some(vec![
        owner.owner_ref(&()).unwrap(),
        child.owner_ref(&()).unwrap(),
    ]);
    let unrelated_owner = cms
        .create(&PostParams::default(), &cm("unrelated", &[]))
        .await
        .unwrap();
    survivor.metadata.owner_references.as_mut().unwrap()[1] =
        unrelated_owner.owner_ref(&()).unwrap();
    secrets
        .create(&PostParams::default(), &survivor)
        .await
        .unwrap();

    cms.delete("owner", &DeleteParams::background())
        .await
        .unwrap();
    eventually("dependents collected", || async {
        cms.get_opt("child").await.unwrap().is_none()
            && secrets.get_opt("grandchild").await.unwrap().is_none()
    })
    .await;
    let survivor = secrets.get("survivor").await.unwrap();
    assert_eq!(
        survivor.owner_references().len(),
        1,
        "the remaining owner keeps the dependent"
    );
}

#[tokio::test]
async fn orphan_propagation_keeps_dependents() {
    let env = env().await;
    let cms: Api<ConfigMap> = env.api();
    let owner = cms
        .create(&PostParams::default(), &cm("owner", &[]))
        .await
        .unwrap();
    let mut child = cm("child", &[]);
    child.metadata.owner_references = Some(vec![owner.owner_ref(&()).unwrap()]);
    cms.create(&PostParams::default(), &child).await.unwrap();
    cms.delete("owner", &DeleteParams::orphan()).await.unwrap();
    eventually("owner gone and child orphaned", || async {
        cms.get_opt("owner").await.unwrap().is_none()
            && cms
                .get_opt("child")
                .await
                .unwrap()
                .is_some_and(|c| c.owner_references().is_empty())
    })
    .await;
}

#[tokio::test]
async fn deleting_a_namespace_deletes_its_contents() {
    let env = env().await;
    let nss: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(env.client.clone());
    let ns = format!("{}-gone", env.ns);
    nss.create(
        &PostParams::default(),
        &serde_json::from_value(json!({"metadata": {"name": ns}})).unwrap(),
    )
    .await
    .unwrap();
    let cms: Api<ConfigMap> = Api::namespaced(env.client.clone(), &ns);
    cms.create(&PostParams::default(), &cm("a", &[]))
        .await
        .unwrap();
    nss.delete(&ns, &DeleteParams::default()).await.unwrap();
    let phase = nss
        .get_opt(&ns)
        .await
        .unwrap()
        .and_then(|n| n.status)
        .and_then(|s| s.phase);
    assert!(phase.is_none() || phase.as_deref() == Some("Terminating"));
    let err = api_error(cms.create(&PostParams::default(), &cm("b", &[])).await);
    assert!(
        err.code == 403 || err.code == 404,
        "creating in a terminating namespace: {}",
        err.message
    );
    // A real namespace controller takes about 5 s per namespace, 10 at a
    // time, and every test of the suite deletes its own namespace: allow for
    // the queue (kubesim deletes at once).
    eventually_within(
        "namespace contents gone",
        Duration::from_secs(90),
        || async { cms.get_opt("a").await.map(|o| o.is_none()).unwrap_or(true) },
    )
    .await;
    if env.sim.is_some() {
        assert!(nss.get_opt(&ns).await.unwrap().is_none());
    }
}

#[derive(Debug, thiserror::Error)]
#[error("reconcile failed")]
struct ReconcileError;

#[tokio::test]
async fn kube_runtime_finalizer_helper_adds_and_removes_its_finalizer() {
    let env = env().await;
    let api: Api<Widget> = env.api();
    api.create(
        &PostParams::default(),
        &serde_json::from_value(widget("w", 1, "eu")).unwrap(),
    )
    .await
    .unwrap();
    const NAME: &str = "conformance.kubesim.dev/cleanup";
    let run = |obj: Arc<Widget>| {
        let api = api.clone();
        async move {
            finalizer(&api, NAME, obj, |ev| async move {
                match ev {
                    FinalizerEvent::Apply(_) => Ok::<_, ReconcileError>(Action::await_change()),
                    FinalizerEvent::Cleanup(_) => Ok(Action::await_change()),
                }
            })
            .await
        }
    };
    run(Arc::new(api.get("w").await.unwrap())).await.unwrap();
    assert_eq!(api.get("w").await.unwrap().finalizers(), [NAME]);
    run(Arc::new(api.get("w").await.unwrap())).await.unwrap();
    api.delete("w", &DeleteParams::default()).await.unwrap();
    let deleting = api.get("w").await.unwrap();
    assert!(deleting.meta().deletion_timestamp.is_some());
    run(Arc::new(deleting)).await.unwrap();
    eventually("widget gone after cleanup", || async {
        api.get_opt("w").await.unwrap().is_none()
    })
    .await;
}
