//! The cache concern (ElastiCache Global Datastore) through the real
//! controller, on the simulated cloud running at high speed.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use common::{Harness, condition, sample};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use k8s_openapi::api::events::v1::Event as K8sEvent;
use kube::ResourceExt;
use kube::api::{Api, ListParams, PostParams};
use shopfleet::api::conditions::types;
use shopfleet::api::{DeletionPolicy, SecretKeyRef, ShopRegion};
use shopfleet::controller::FINALIZER;
use shopfleet::sim::{Fault, LiveSim, SimCloud, VirtualClock};

const REGIONS: [&str; 3] = ["us-east-1", "eu-west-1", "ap-northeast-1"];
const TOKEN: &str = "acme-Redis-AUTH-2025-0123456789";

fn live_sim() -> Arc<LiveSim> {
    Arc::new(LiveSim::start(SimCloud::new(VirtualClock::default()), 1200))
}

fn fleet(policy: DeletionPolicy) -> Vec<ShopRegion> {
    REGIONS
        .iter()
        .map(|region| {
            let mut sr = sample(&format!("samples/acme-{region}.yaml"));
            sr.spec.cache.deletion_policy = policy;
            sr
        })
        .collect()
}

fn is_true(region: &ShopRegion, type_: &str) -> bool {
    condition(region, type_).is_some_and(|c| c.status == "True")
}

async fn cache_ready(h: &Harness, region: &str) -> ShopRegion {
    h.wait_for(
        &format!("acme-{region}"),
        "CacheReady=True and Ready=True",
        |r| is_true(r, types::CACHE_READY) && is_true(r, types::READY),
    )
    .await
}

async fn create_fleet(h: &Harness, policy: DeletionPolicy) -> Vec<ShopRegion> {
    for sr in fleet(policy) {
        h.create(&sr).await.unwrap();
    }
    let mut ready = Vec::new();
    for region in REGIONS {
        ready.push(cache_ready(h, region).await);
    }
    ready
}

async fn events(h: &Harness) -> Vec<K8sEvent> {
    Api::<K8sEvent>::namespaced(h.client.clone(), &h.namespace)
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
}

async fn wait_for_event(h: &Harness, object: &str, reason: &str) -> K8sEvent {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(event) = events(h).await.into_iter().find(|e| {
            e.reason.as_deref() == Some(reason)
                && e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(object)
        }) {
            return event;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no {reason} event for {object}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn wait_until_gone(h: &Harness, name: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(40);
    while h.regions().get_opt(name).await.unwrap().is_some() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "ShopRegion {name} was never deleted"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn three_regions_converge_to_one_global_datastore_with_one_primary_and_the_topology_carries_its_endpoints()
 {
    let sim = live_sim();
    let h = Harness::in_process_with(Some(sim.clone())).await;
    let ready = create_fleet(&h, DeletionPolicy::Retain).await;

    let primary_endpoint = "master.acme-us-east-1.sim.us-east-1.cache.amazonaws.com:6379";
    let mut primaries = Vec::new();
    for (sr, region) in ready.iter().zip(REGIONS) {
        let cache = sr.status.as_ref().unwrap().cache.clone().unwrap();
        assert_eq!(
            cache.global_replication_group_id.as_deref(),
            Some("ldgnf-acme"),
            "us-east-1's prefix and the shop's suffix"
        );
        assert_eq!(cache.replication_group_id, Some(format!("acme-{region}")));
        assert_eq!(cache.replication_group_status.as_deref(), Some("available"));
        assert_eq!(cache.primary_region.as_deref(), Some("us-east-1"));
        assert_eq!(cache.primary_endpoint.as_deref(), Some(primary_endpoint));
        assert_eq!(
            cache.replication_lag_seconds.is_some(),
            region != "us-east-1"
        );
        if cache.primary {
            primaries.push(region);
        }

        let topology = Api::<ConfigMap>::namespaced(h.client.clone(), &h.namespace)
            .get(&format!("acme-{region}-topology"))
            .await
            .unwrap();
        let data = topology.data.unwrap_or_default();
        assert_eq!(data["CACHE_PRIMARY_ENDPOINT"], primary_endpoint, "{region}");
        assert_eq!(
            Some(&data["CACHE_READER_ENDPOINT"]),
            cache.reader_endpoint.as_ref(),
            "{region}"
        );
        assert!(
            data["CACHE_READER_ENDPOINT"].contains(region),
            "reads stay in the region"
        );
    }
    assert_eq!(primaries, ["us-east-1"], "exactly one primary");

    let globals = sim.cloud().global_replication_groups();
    assert_eq!(globals.len(), 1);
    assert_eq!(globals[0].members.len(), 3);
    assert_eq!(
        globals[0].members.iter().filter(|m| m.is_primary).count(),
        1
    );
    assert_eq!(sim.cloud().all_replication_groups().len(), 3);
    h.stop().await;
}

#[tokio::test]
async fn a_converged_region_makes_no_mutating_aws_call_and_no_kubernetes_write() {
    let sim = live_sim();
    let h = Harness::in_process_with(Some(sim.clone())).await;
    create_fleet(&h, DeletionPolicy::Retain).await;
    h.settle().await;
    let mutating = sim.cloud().mutating_calls();
    let writes = h.writes();
    // Wake the controller: a converged secondary must cost reads only, the
    // cross-region read of the primary's endpoint included.
    let touch = serde_json::json!({"metadata": {"annotations": {"example.com/touched": "1"}}});
    let other: Api<ShopRegion> = Api::namespaced(h.server.as_ref().unwrap().client(), &h.namespace);
    other
        .patch(
            "acme-eu-west-1",
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(&touch),
        )
        .await
        .unwrap();
    h.next_reconcile().await;
    h.settle().await;
    assert_eq!(
        sim.cloud().mutating_calls(),
        mutating,
        "mutating AWS calls on a converged fleet: {:?}",
        sim.cloud().calls_by_op()
    );
    assert_eq!(h.writes(), writes, "Kubernetes writes on a converged fleet");
    h.stop().await;
}

#[tokio::test]
async fn a_missing_auth_secret_is_reported_and_the_region_converges_once_it_exists() {
    let sim = live_sim();
    let h = Harness::in_process_with(Some(sim.clone())).await;
    let mut sr = sample("samples/acme-us-east-1.yaml");
    sr.spec.cache.auth_secret_ref = Some(SecretKeyRef {
        name: "acme-redis-auth".into(),
        key: "token".into(),
    });
    h.create(&sr).await.unwrap();

    let waiting = h
        .wait_for(
            "acme-us-east-1",
            "CacheReady=False (AuthSecretMissing)",
            |r| condition(r, types::CACHE_READY).is_some_and(|c| c.reason == "AuthSecretMissing"),
        )
        .await;
    let reported = condition(&waiting, types::CACHE_READY).unwrap();
    assert_eq!(reported.status, "False");
    assert!(
        reported.message.contains("acme-redis-auth") && reported.message.contains("token"),
        "{}",
        reported.message
    );
    assert!(
        !is_true(&waiting, types::STALLED),
        "a missing Secret is not terminal"
    );
    let event = wait_for_event(&h, "acme-us-east-1", "AuthSecretMissing").await;
    assert_eq!(event.type_.as_deref(), Some("Warning"));
    assert!(
        sim.cloud().all_replication_groups().is_empty(),
        "nothing is created without the token"
    );

    let secret = Secret {
        metadata: kube::api::ObjectMeta {
            name: Some("acme-redis-auth".into()),
            ..Default::default()
        },
        data: Some(BTreeMap::from([(
            "token".to_string(),
            ByteString(TOKEN.as_bytes().to_vec()),
        )])),
        ..Default::default()
    };
    Api::<Secret>::namespaced(h.server.as_ref().unwrap().client(), &h.namespace)
        .create(&PostParams::default(), &secret)
        .await
        .unwrap();
    let ready = cache_ready(&h, "us-east-1").await;
    let group = sim
        .cloud()
        .replication_group("us-east-1", "acme-us-east-1")
        .unwrap();
    assert!(group.auth_token_enabled);
    assert!(group.transit_encryption_enabled);

    // The token is nowhere a user or a log collector could read it.
    let status = serde_json::to_string(&ready.status).unwrap();
    assert!(!status.contains(TOKEN), "token in status: {status}");
    for event in events(&h).await {
        let text = format!("{:?} {:?}", event.reason, event.note);
        assert!(!text.contains(TOKEN), "token in an event: {text}");
    }
    let topology = Api::<ConfigMap>::namespaced(h.client.clone(), &h.namespace)
        .get("acme-us-east-1-topology")
        .await
        .unwrap();
    assert!(!format!("{:?}", topology.data).contains(TOKEN));
    h.stop().await;
}

#[tokio::test]
async fn retain_leaves_the_cache_in_aws_and_makes_no_call_to_delete_it() {
    let sim = live_sim();
    let h = Harness::in_process_with(Some(sim.clone())).await;
    h.create_sample("samples/acme-us-east-1.yaml").await;
    cache_ready(&h, "us-east-1").await;
    h.settle().await;
    let mutating = sim.cloud().mutating_calls();
    h.regions()
        .delete("acme-us-east-1", &Default::default())
        .await
        .unwrap();
    wait_until_gone(&h, "acme-us-east-1").await;
    assert_eq!(sim.cloud().mutating_calls(), mutating);
    assert!(
        sim.cloud()
            .replication_group("us-east-1", "acme-us-east-1")
            .is_some()
    );
    assert_eq!(sim.cloud().global_replication_groups().len(), 1);
    h.stop().await;
}

#[tokio::test]
async fn deletion_removes_secondaries_with_a_final_snapshot_and_blocks_the_primary_until_they_are_gone()
 {
    let sim = live_sim();
    let h = Harness::in_process_with(Some(sim.clone())).await;
    create_fleet(&h, DeletionPolicy::Snapshot).await;

    h.regions()
        .delete("acme-us-east-1", &Default::default())
        .await
        .unwrap();
    let blocked = h
        .wait_for(
            "acme-us-east-1",
            "CacheReady=False (DeletionBlocked)",
            |r| condition(r, types::CACHE_READY).is_some_and(|c| c.reason == "DeletionBlocked"),
        )
        .await;
    assert!(blocked.finalizers().iter().any(|f| f == FINALIZER));
    assert!(blocked.metadata.deletion_timestamp.is_some());
    let message = &condition(&blocked, types::CACHE_READY).unwrap().message;
    assert!(
        message.contains("eu-west-1") && message.contains("ap-northeast-1"),
        "{message}"
    );
    let event = wait_for_event(&h, "acme-us-east-1", "DeletionBlocked").await;
    assert_eq!(event.type_.as_deref(), Some("Warning"));
    assert!(
        sim.cloud()
            .replication_group("us-east-1", "acme-us-east-1")
            .is_some()
    );

    for region in ["eu-west-1", "ap-northeast-1"] {
        let name = format!("acme-{region}");
        h.regions()
            .delete(&name, &Default::default())
            .await
            .unwrap();
        wait_until_gone(&h, &name).await;
        assert_eq!(sim.cloud().replication_group(region, &name), None);
    }
    // With its secondaries gone the primary goes too: the Global Datastore
    // first (AWS keeps the primary), then the group itself.
    wait_until_gone(&h, "acme-us-east-1").await;
    assert!(sim.cloud().all_replication_groups().is_empty());
    assert!(sim.cloud().global_replication_groups().is_empty());
    let snapshots = sim.cloud().cache_snapshots();
    assert_eq!(snapshots.len(), 3, "{snapshots:?}");
    assert!(
        snapshots
            .iter()
            .all(|(region, id)| id.starts_with(&format!("acme-{region}-final-")))
    );
    h.stop().await;
}

#[tokio::test]
async fn a_throttled_region_converges_without_duplicate_resources() {
    let sim = live_sim();
    let h = Harness::in_process_with(Some(sim.clone())).await;
    let cloud = sim.cloud().clone();
    let throttler = tokio::spawn(async move {
        for _ in 0..60 {
            cloud.inject(Fault::Throttle {
                region: "eu-west-1".into(),
                calls: 3,
            });
            tokio::time::sleep(Duration::from_millis(30)).await;
        }
    });
    let ready = create_fleet(&h, DeletionPolicy::Retain).await;
    throttler.await.unwrap();
    assert!(
        sim.cloud()
            .calls()
            .iter()
            .any(|c| c.region == "eu-west-1" && c.error == Some("throttled")),
        "the throttling did hit"
    );
    assert_eq!(sim.cloud().all_replication_groups().len(), 3);
    let globals = sim.cloud().global_replication_groups();
    assert_eq!(globals.len(), 1);
    assert_eq!(globals[0].members.len(), 3);
    let eu = ready[1].status.as_ref().unwrap().cache.clone().unwrap();
    assert_eq!(eu.last_error, None);
    assert!(!eu.primary);
    h.stop().await;
}
