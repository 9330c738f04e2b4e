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

use super::{Fault, LiveSim};
use crate::clock::Clock;

/// `GET /sim/state`, `POST /sim/outage/{region}`, `POST /sim/recover/{region}`,
/// `POST /sim/speed/{speed}`.
pub fn router(sim: Arc<LiveSim>) -> Router {
    Router::new()
        .route("/sim/state", get(state))
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
        "writers": cloud
            .writers()
            .into_iter()
            .map(|(region, cluster)| json!({"region": region, "cluster": cluster}))
            .collect::<Vec<_>>(),
        "mutatingCalls": cloud.mutating_calls(),
    }))
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
