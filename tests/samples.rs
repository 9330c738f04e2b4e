//! The shipped samples against the in-process API server, the operator and
//! the simulated cloud holding the samples' account network.

mod common;

use std::sync::Arc;

use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, ListParams};
use shopfleet::sim::live::LiveSim;
use shopfleet::sim::{SimCloud, VirtualClock};

fn samples_account(sim: &SimCloud) {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/samples/accounts/samples.yaml");
    let text = std::fs::read_to_string(path).unwrap();
    sim.declare_account(serde_saphyr::from_str(&text).unwrap());
}

#[tokio::test]
async fn samples_apply_and_every_invalid_sample_is_rejected_or_stalled_as_its_comment_says() {
    let sim = SimCloud::new(VirtualClock::default());
    samples_account(&sim);
    let live = Arc::new(LiveSim::start(sim.clone(), 1200));
    let h = common::Harness::in_process_with(Some(live)).await;
    common::check_samples(&h).await;

    // The subnet group typo stalled the region before anything of it was
    // created, the cache (whose subnet group exists) included, and said so
    // once.
    let typo = |(_, id): &(String, String)| id.starts_with("typo-");
    assert!(!sim.all_clusters().iter().any(typo));
    assert!(!sim.all_replication_groups().iter().any(typo));
    let events: Api<Event> = Api::namespaced(h.client.clone(), &h.namespace);
    let warnings: Vec<Event> = events
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|e| {
            e.regarding.as_ref().and_then(|r| r.name.as_deref())
                == Some("invalid-unknown-subnet-group")
                && e.type_.as_deref() == Some("Warning")
        })
        .collect();
    assert_eq!(warnings.len(), 1, "{warnings:#?}");
    let note = warnings[0].note.as_deref().unwrap_or_default();
    assert!(
        note.contains("acme-ordrs-db") && note.contains("spec.database.network.subnetGroupName"),
        "{note}"
    );
    h.stop().await;
}
