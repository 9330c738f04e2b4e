//! The shipped samples against the in-process API server and the operator.

mod common;

#[tokio::test]
async fn samples_apply_and_every_invalid_sample_is_rejected_or_stalled_as_its_comment_says() {
    let h = common::Harness::in_process().await;
    common::check_samples(&h).await;
    h.stop().await;
}
