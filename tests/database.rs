//! The Aurora concern through the real controller, on the simulated cloud
//! running at high speed.

mod common;

use std::sync::Arc;

use common::{Harness, condition};
use shopfleet::api::conditions::types;
use shopfleet::sim::{LiveSim, SimCloud, VirtualClock};

const SAMPLES: [&str; 3] = [
    "samples/acme-us-east-1.yaml",
    "samples/acme-eu-west-1.yaml",
    "samples/acme-ap-northeast-1.yaml",
];

#[tokio::test]
async fn three_regions_converge_to_one_global_cluster_with_one_writer() {
    let sim = Arc::new(LiveSim::start(SimCloud::new(VirtualClock::default()), 1200));
    let h = Harness::in_process_with(Some(sim.clone())).await;
    for path in SAMPLES {
        h.create_sample(path).await;
    }
    let mut writers = Vec::new();
    for region in ["us-east-1", "eu-west-1", "ap-northeast-1"] {
        let name = format!("acme-{region}");
        let sr = h
            .wait_for(&name, "DatabaseReady=True", |r| {
                condition(r, types::DATABASE_READY).is_some_and(|c| c.status == "True")
            })
            .await;
        let db = sr.status.as_ref().unwrap().database.clone().unwrap();
        assert_eq!(db.global_cluster_identifier.as_deref(), Some("acme-global"));
        assert_eq!(db.writer_region.as_deref(), Some("us-east-1"), "{name}");
        assert_eq!(db.readers, 1, "{name}");
        assert!(
            db.writer_endpoint.is_some(),
            "{name} has no writer endpoint"
        );
        if db.writer {
            writers.push(region);
        }
    }
    assert_eq!(writers, ["us-east-1"], "exactly one writer");
    let global = sim
        .cloud()
        .global_cluster("acme-global")
        .expect("global cluster exists");
    assert_eq!(global.members.len(), 3);
    assert_eq!(global.members.iter().filter(|m| m.is_writer).count(), 1);
    h.stop().await;
}

#[tokio::test]
async fn a_converged_fleet_makes_no_mutating_cloud_call() {
    let sim = Arc::new(LiveSim::start(SimCloud::new(VirtualClock::default()), 1200));
    let h = Harness::in_process_with(Some(sim.clone())).await;
    h.create_sample("samples/acme-us-east-1.yaml").await;
    h.wait_for("acme-us-east-1", "Ready=True", |r| {
        condition(r, types::READY).is_some_and(|c| c.status == "True")
    })
    .await;
    h.settle().await;
    let mutating = sim.cloud().mutating_calls();
    let writes = h.writes();
    // Wake the controller: a converged region must cost reads only.
    let touch = serde_json::json!({"metadata": {"annotations": {"example.com/touched": "1"}}});
    let other: kube::Api<shopfleet::api::ShopRegion> =
        kube::Api::namespaced(h.server.as_ref().unwrap().client(), &h.namespace);
    other
        .patch(
            "acme-us-east-1",
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
        "mutating AWS calls on a converged region"
    );
    assert_eq!(
        h.writes(),
        writes,
        "Kubernetes writes on a converged region"
    );
    h.stop().await;
}
