//! End-to-end tests against a real cluster: whatever KUBECONFIG names (kind,
//! a dev cluster). Without one each test prints `SKIPPED` and returns; it
//! never pretends to have checked anything.
//!
//! Run: `KUBECONFIG=~/.kube/config cargo test --test e2e -- --test-threads 1`

#[path = "../tests/common/mod.rs"]
mod common;

#[tokio::test]
async fn samples_apply_and_invalid_samples_are_rejected_or_stalled_on_a_real_cluster() {
    let Some(h) = common::Harness::real_cluster().await else {
        return;
    };
    common::check_samples(&h).await;
    h.stop().await;
}
