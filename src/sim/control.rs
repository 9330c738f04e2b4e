//! The simulated cloud's control endpoint (`run --cloud simulated
//! --sim-control`): what a scenario step does inside `simulate`, offered
//! over HTTP to a running operator, so that a test or a demo on a real
//! cluster can take a region down, bring it back, change the pace and see
//! what exists in the simulated AWS. Off unless asked for: it changes the
//! world the operator acts on.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Json};
use axum::routing::{get, post};
use serde_json::json;

use super::{Fault, LiveSim, SimCloud};
use crate::clock::Clock;

/// `GET /sim/state`, `GET /sim/writers`, `POST /sim/outage/{region}`,
/// `POST /sim/recover/{region}`, `POST /sim/speed/{speed}`.
pub fn router(sim: Arc<LiveSim>) -> Router {
    Router::new()
        .route("/sim/state", get(state))
        .route("/sim/writers", get(writers))
        .route("/sim/outage/{region}", post(outage))
        .route("/sim/recover/{region}", post(recover))
        .route("/sim/speed/{speed}", post(speed))
        .with_state(sim)
}

async fn state(State(sim): State<Arc<LiveSim>>) -> impl IntoResponse {
    let cloud = sim.cloud();
    let pairs = |set: std::collections::BTreeSet<(String, String)>| {
        set.into_iter()
            .map(|(region, id)| json!({"region": region, "id": id}))
            .collect::<Vec<_>>()
    };
    Json(json!({
        "now": cloud.clock().now().to_string(),
        "globalClusters": cloud.all_global_clusters(),
        "clusters": pairs(cloud.all_clusters()),
        "replicationGroups": pairs(cloud.all_replication_groups()),
        "writers": writer_list(cloud),
        "mutatingCalls": cloud.mutating_calls(),
    }))
}

/// `now` and `writers` of `/sim/state` alone. A benchmark polls who accepts
/// writes several times a second through a failover; the whole state lists
/// every cluster and replication group of the fleet, and building it that
/// often in the operator's process would be counted in the operator's
/// memory.
async fn writers(State(sim): State<Arc<LiveSim>>) -> impl IntoResponse {
    let cloud = sim.cloud();
    Json(json!({
        "now": cloud.clock().now().to_string(),
        "writers": writer_list(cloud),
    }))
}

fn writer_list(cloud: &SimCloud) -> Vec<serde_json::Value> {
    cloud
        .writers()
        .into_iter()
        .map(|(region, cluster)| json!({"region": region, "cluster": cluster}))
        .collect()
}

async fn outage(State(sim): State<Arc<LiveSim>>, Path(region): Path<String>) -> impl IntoResponse {
    sim.cloud().inject(Fault::RegionOutage {
        region: region.clone(),
    });
    tracing::warn!(%region, "simulated region outage");
    (StatusCode::OK, format!("{region} is out\n"))
}

async fn recover(State(sim): State<Arc<LiveSim>>, Path(region): Path<String>) -> impl IntoResponse {
    sim.cloud().recover_region(&region);
    tracing::info!(%region, "simulated region recovered");
    (StatusCode::OK, format!("{region} recovered\n"))
}

async fn speed(State(sim): State<Arc<LiveSim>>, Path(speed): Path<u32>) -> impl IntoResponse {
    if !(1..=3600).contains(&speed) {
        return (
            StatusCode::BAD_REQUEST,
            "speed must be between 1 and 3600\n".to_string(),
        );
    }
    sim.set_speed(speed);
    (StatusCode::OK, format!("speed {speed}\n"))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use axum::body::Body;
    use http_body_util::BodyExt as _;
    use serde_json::Value;
    use tower::Service as _;

    use super::*;
    use crate::cloud::aurora::port::{CreateClusterRequest, CreateInstanceRequest};
    use crate::sim::VirtualClock;

    async fn call(app: &mut Router, method: &str, path: &str) -> Value {
        let request = axum::http::Request::builder()
            .method(method)
            .uri(path)
            .body(Body::empty())
            .unwrap();
        let response = app.call(request).await.unwrap();
        assert!(response.status().is_success(), "{method} {path}");
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        serde_json::from_slice(&bytes).unwrap_or(Value::Null)
    }

    /// A standalone cluster `w` in us-east-1 with an available writer.
    async fn one_writer() -> SimCloud {
        let sim = SimCloud::new(VirtualClock::default());
        let us = sim.aurora("us-east-1");
        us.create_cluster(&CreateClusterRequest {
            cluster_id: "w".into(),
            engine: "aurora-postgresql".into(),
            engine_version: "16.6".into(),
            storage_encrypted: true,
            master_username: Some("admin_user".into()),
            master_user_password: Some(crate::cloud::aurora::port::MasterPassword::new(
                "sim-password-0123456789",
            )),
            ..Default::default()
        })
        .await
        .unwrap();
        sim.clock().advance(Duration::from_secs(600));
        us.create_instance(&CreateInstanceRequest {
            instance_id: "w-0".into(),
            cluster_id: "w".into(),
            class: "db.r6g.large".into(),
            engine: "aurora-postgresql".into(),
            ..Default::default()
        })
        .await
        .unwrap();
        sim.clock().advance(Duration::from_secs(1200));
        sim
    }

    #[tokio::test(start_paused = true)]
    async fn the_writers_endpoint_names_who_accepts_writes_as_the_state_does_and_nobody_in_a_lost_region()
     {
        let sim = Arc::new(LiveSim::start(one_writer().await, 1));
        let mut app = router(sim);

        let writers = call(&mut app, "GET", "/sim/writers").await;
        let state = call(&mut app, "GET", "/sim/state").await;
        assert_eq!(
            writers["writers"],
            serde_json::json!([{"region": "us-east-1", "cluster": "w"}])
        );
        assert_eq!(writers["writers"], state["writers"]);
        assert!(writers["now"].as_str().is_some_and(|now| !now.is_empty()));
        assert!(writers.get("clusters").is_none(), "{writers}");

        call(&mut app, "POST", "/sim/outage/us-east-1").await;
        let writers = call(&mut app, "GET", "/sim/writers").await;
        assert_eq!(writers["writers"], serde_json::json!([]));
    }
}
