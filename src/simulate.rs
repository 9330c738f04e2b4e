//! `shopfleet simulate`: the real controller, the in-process Kubernetes API
//! server and the simulated cloud in one process, on accelerated time. This
//! first version brings up the default fleet (the three acme samples) and
//! reports how it converged; scenarios with faults come with the failover work.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Namespace;
use kube::ResourceExt;
use kube::api::{Api, PostParams};
use tokio::sync::oneshot;

use crate::api::ShopRegion;
use crate::api::conditions::{find, types};
use crate::clock::Clock;
use crate::controller::{self, Context, Scope};
use crate::sim::{LiveSim, SimCloud, VirtualClock};
use crate::telemetry::{self, Metrics};

const NAMESPACE: &str = "shop";

/// The default fleet, embedded so that `simulate` works from any directory.
pub const DEFAULT_FLEET: [(&str, &str); 3] = [
    (
        "samples/acme-us-east-1.yaml",
        include_str!("../samples/acme-us-east-1.yaml"),
    ),
    (
        "samples/acme-eu-west-1.yaml",
        include_str!("../samples/acme-eu-west-1.yaml"),
    ),
    (
        "samples/acme-ap-northeast-1.yaml",
        include_str!("../samples/acme-ap-northeast-1.yaml"),
    ),
];

pub struct Options {
    /// Simulated seconds per real second.
    pub speed: u32,
    /// Give up after this much simulated time.
    pub budget: Duration,
}

/// What a run measured.
#[derive(Debug)]
pub struct Report {
    pub timeline: Vec<String>,
    pub summary: String,
    pub fleet_ready_after: Option<Duration>,
    pub kube_writes: u64,
    pub aws_mutating_calls: usize,
    pub aws_read_calls: usize,
    pub writers: Vec<String>,
}

impl Report {
    /// Exactly one writer and every region Ready.
    pub fn succeeded(&self) -> bool {
        self.fleet_ready_after.is_some() && self.writers.len() == 1
    }
}

pub async fn run(options: Options, mut progress: impl FnMut(&str)) -> anyhow::Result<Report> {
    let server = kubesim::ApiServer::start().await?;
    server.install_crd_yaml(&crate::api::crd_yaml())?;
    let metrics = Arc::new(Metrics::default());
    let client = telemetry::counting_client(server.config(), metrics.clone())?;
    let mut ns = Namespace::default();
    ns.metadata.name = Some(NAMESPACE.into());
    Api::<Namespace>::all(server.client())
        .create(&PostParams::default(), &ns)
        .await?;

    let clock = VirtualClock::default();
    let start = clock.now();
    let sim = Arc::new(LiveSim::start(SimCloud::new(clock.clone()), options.speed));
    let ctx = Arc::new(
        Context::new(client, metrics.clone(), Some("simulate".into())).with_cloud(sim.clone()),
    );
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let controller = tokio::spawn(controller::run(
        ctx,
        Scope {
            namespace: Some(NAMESPACE.into()),
        },
        async {
            let _ = stop_rx.await;
        },
    ));

    // The user's own client applies the manifests, as kubectl would.
    let regions: Api<ShopRegion> = Api::namespaced(server.client(), NAMESPACE);
    let mut timeline = Vec::new();
    for (path, text) in DEFAULT_FLEET {
        let region: ShopRegion = serde_saphyr::from_str(text)?;
        regions.create(&PostParams::default(), &region).await?;
        let line = format!("{:>8}  {:<15} applied {path}", "0:00", region.spec.region);
        progress(&line);
        timeline.push(line);
    }

    let mut seen: BTreeMap<(String, String), String> = BTreeMap::new();
    let mut fleet_ready_after = None;
    let last = loop {
        let elapsed = elapsed(&clock, start);
        let last = regions.list(&Default::default()).await?.items;
        for region in &last {
            let conditions = region
                .status
                .as_ref()
                .map(|s| s.conditions.as_slice())
                .unwrap_or_default();
            for condition in conditions {
                let key = (region.spec.region.clone(), condition.type_.clone());
                let state = format!(
                    "{}={} ({})",
                    condition.type_, condition.status, condition.reason
                );
                if seen.get(&key) != Some(&state) {
                    let line = format!(
                        "{:>8}  {:<15} {state}",
                        clock_text(elapsed),
                        region.spec.region
                    );
                    progress(&line);
                    timeline.push(line);
                    seen.insert(key, state);
                }
            }
        }
        let all_ready = last.len() == DEFAULT_FLEET.len()
            && last.iter().all(|r| {
                r.status
                    .as_ref()
                    .and_then(|s| find(&s.conditions, types::READY))
                    .is_some_and(|c| c.status == "True")
            });
        if all_ready {
            fleet_ready_after = Some(elapsed);
            break last;
        }
        if elapsed > options.budget {
            break last;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };

    let _ = stop_tx.send(());
    let _ = tokio::time::timeout(Duration::from_secs(10), controller).await;
    let writers = last
        .iter()
        .filter(|r| {
            r.status
                .as_ref()
                .and_then(|s| s.database.as_ref())
                .is_some_and(|d| d.writer)
        })
        .map(|r| r.spec.region.clone())
        .collect();
    let report = Report {
        summary: summary_table(&last),
        timeline,
        fleet_ready_after,
        kube_writes: ["create", "update", "patch", "delete"]
            .iter()
            .map(|v| metrics.kube_writes_by(v))
            .sum(),
        aws_mutating_calls: sim.cloud().mutating_calls(),
        aws_read_calls: sim.cloud().read_calls(),
        writers,
    };
    server.shutdown().await;
    Ok(report)
}

fn elapsed(clock: &VirtualClock, start: k8s_openapi::jiff::Timestamp) -> Duration {
    let d = clock.now().duration_since(start);
    Duration::try_from(d).unwrap_or_default()
}

fn clock_text(d: Duration) -> String {
    let secs = d.as_secs();
    format!("{}:{:02}", secs / 60, secs % 60)
}

/// One row per region, like `kubectl get shopregions` with more columns.
pub fn summary_table(regions: &[ShopRegion]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<16} {:<10} {:<10} {:<6} {:<9} {:<8} {:<13} {:<9}",
        "REGION", "ROLE", "WRITER", "READY", "DATABASE", "READERS", "REPLICAS", "LAG"
    );
    let mut sorted: Vec<&ShopRegion> = regions.iter().collect();
    sorted.sort_by_key(|r| r.name_any());
    for region in sorted {
        let status = region.status.clone().unwrap_or_default();
        let ready = find(&status.conditions, types::READY)
            .map_or("-", |c| c.status.as_str())
            .to_string();
        let db = status.database.clone().unwrap_or_default();
        let orders = status.orders.clone().unwrap_or_default();
        let _ = writeln!(
            out,
            "{:<16} {:<10} {:<10} {:<6} {:<9} {:<8} {:<13} {:<9}",
            region.spec.region,
            status.role.map_or("-", |r| r.as_topology_value()),
            status.writer_region.as_deref().unwrap_or("-"),
            ready,
            if db.writer { "writer" } else { "reader" },
            db.readers,
            format!(
                "{} ({}-{})",
                orders.ready_replicas, orders.min_replicas, orders.max_replicas
            ),
            db.replication_lag_seconds
                .map_or("-".to_string(), |l| format!("{l:.2}s")),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_default_fleet_comes_up_with_exactly_one_writer() {
        let report = run(
            Options {
                speed: 1800,
                budget: Duration::from_secs(3 * 3600),
            },
            |_| {},
        )
        .await
        .unwrap();
        assert!(
            report.fleet_ready_after.is_some(),
            "fleet never Ready:\n{}",
            report.timeline.join("\n")
        );
        assert_eq!(report.writers, ["us-east-1"]);
        assert!(report.summary.contains("ap-northeast-1"));
        assert!(report.aws_mutating_calls > 0);
    }
}
