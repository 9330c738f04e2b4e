//! One observation of each region per sampling round, shared by every
//! shop's health sampler.
//!
//! A sampler asks, every round, for the status of its shop's cluster and
//! replication group in each region. Asked one resource at a time, the AWS
//! reads grow with shops × regions: a thousand shops would send hundreds of
//! describes a second to each region, far beyond what RDS and ElastiCache
//! allow before they throttle. Here the first sampler of a round that asks
//! about a region describes every cluster and every replication group of
//! that region (paginated, [`super::aurora::port::DESCRIBE_PAGE`] a call)
//! and every other sampler of the round reads the same answer: the reads
//! per region depend on the number of resources there divided by a page,
//! not on the number of shops that ask.
//!
//! The replication lags the samplers need are read the same way: one
//! CloudWatch `GetMetricData` (500 clusters a call) for every secondary of
//! the region that any shop samples, shared by the shops whose reading is
//! due in that round.
//!
//! A region that cannot be read (throttled, unreachable) is an error for
//! every resource of it in that round: the samplers turn it into "no data",
//! never into "down" (see `failover::health::database_signal`).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::jiff::Timestamp;

use super::aurora::port::Cluster;
use super::elasticache::port::ReplicationGroup;
use super::{Cloud, CloudError};

/// What one round read of one region.
#[derive(Debug)]
pub struct RegionObservation {
    /// The round it belongs to.
    pub round: Timestamp,
    clusters: Result<HashMap<String, Cluster>, CloudError>,
    groups: Result<HashMap<String, ReplicationGroup>, CloudError>,
}

impl RegionObservation {
    pub fn new(
        round: Timestamp,
        clusters: Result<Vec<Cluster>, CloudError>,
        groups: Result<Vec<ReplicationGroup>, CloudError>,
    ) -> Self {
        Self {
            round,
            clusters: clusters.map(|list| list.into_iter().map(|c| (c.id.clone(), c)).collect()),
            groups: groups.map(|list| list.into_iter().map(|g| (g.id.clone(), g)).collect()),
        }
    }

    /// The cluster `id` as a describe of it would have answered: `None`
    /// when the region has no such cluster.
    pub fn cluster(&self, id: &str) -> Result<Option<&Cluster>, &CloudError> {
        self.clusters.as_ref().map(|all| all.get(id))
    }

    /// The replication group `id`, as [`Self::cluster`].
    pub fn group(&self, id: &str) -> Result<Option<&ReplicationGroup>, &CloudError> {
        self.groups.as_ref().map(|all| all.get(id))
    }
}

/// The replication lags of a region's secondaries, read in one round.
#[derive(Debug)]
pub struct LagObservation {
    pub round: Timestamp,
    lags: Result<BTreeMap<String, Option<Duration>>, CloudError>,
}

impl LagObservation {
    /// The lag of `cluster_id`; `None` without a data point.
    pub fn lag(&self, cluster_id: &str) -> Result<Option<Duration>, &CloudError> {
        self.lags
            .as_ref()
            .map(|all| all.get(cluster_id).copied().flatten())
    }

    /// Whether it answers for `cluster_id` (a failed read answers for all).
    fn covers(&self, cluster_id: &str) -> bool {
        self.lags
            .as_ref()
            .map_or(true, |all| all.contains_key(cluster_id))
    }
}

/// A region's latest observation; locked while it is read, so that the
/// samplers asking meanwhile wait for that read instead of making their own.
type Slot<T> = Arc<tokio::sync::Mutex<Option<Arc<T>>>>;

/// The observations of the current round, per region.
pub struct SharedObservations {
    cloud: Arc<dyn Cloud>,
    regions: Mutex<HashMap<String, Slot<RegionObservation>>>,
    lags: Mutex<HashMap<String, Slot<LagObservation>>>,
}

fn slot<T>(slots: &Mutex<HashMap<String, Slot<T>>>, region: &str) -> Slot<T> {
    slots
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .entry(region.to_string())
        .or_default()
        .clone()
}

impl SharedObservations {
    pub fn new(cloud: Arc<dyn Cloud>) -> Self {
        Self {
            cloud,
            regions: Mutex::new(HashMap::new()),
            lags: Mutex::new(HashMap::new()),
        }
    }

    /// The observation of `region` for the round that started at `round`:
    /// read by the first sampler that asks in that round, shared by the
    /// others.
    pub async fn of(&self, region: &str, round: Timestamp) -> Arc<RegionObservation> {
        let slot = slot(&self.regions, region);
        let mut current = slot.lock().await;
        if let Some(observation) = current.as_ref()
            && observation.round == round
        {
            return observation.clone();
        }
        let aurora = self.cloud.aurora(region);
        let cache = self.cloud.elasticache(region);
        let (clusters, groups) = tokio::join!(
            aurora.describe_clusters(),
            cache.describe_replication_groups()
        );
        let observation = Arc::new(RegionObservation::new(round, clusters, groups));
        *current = Some(observation.clone());
        observation
    }

    /// The lags of `region`'s secondaries as of `round` or later, answering
    /// for `cluster_id`: the first sampler that asks reads every cluster
    /// `secondaries` names (and `cluster_id`) at once, the others share it.
    pub async fn lags(
        &self,
        region: &str,
        round: Timestamp,
        cluster_id: &str,
        secondaries: impl FnOnce() -> Vec<String>,
    ) -> Arc<LagObservation> {
        let slot = slot(&self.lags, region);
        let mut current = slot.lock().await;
        if let Some(observation) = current.as_ref()
            && observation.round >= round
            && observation.covers(cluster_id)
        {
            return observation.clone();
        }
        let mut wanted = secondaries();
        if !wanted.iter().any(|id| id == cluster_id) {
            wanted.push(cluster_id.to_string());
        }
        wanted.sort();
        wanted.dedup();
        let now = self.cloud.clock().now();
        let lags = self
            .cloud
            .aurora(region)
            .replication_lags(&wanted, now)
            .await;
        let observation = Arc::new(LagObservation { round, lags });
        *current = Some(observation.clone());
        observation
    }
}

#[cfg(all(test, feature = "simulation"))]
mod tests {
    use super::*;
    use crate::sim::{Fault, LiveSim, Op, SimCloud, VirtualClock};

    #[tokio::test]
    async fn samplers_of_one_round_share_one_read_of_a_region() {
        let sim = SimCloud::new(VirtualClock::default());
        let live = Arc::new(LiveSim::start(sim.clone(), 1));
        let shared = SharedObservations::new(live);
        let round = Timestamp::from_second(1_700_000_000).unwrap();
        for _ in 0..50 {
            let observation = shared.of("eu-west-1", round).await;
            assert_eq!(observation.cluster("acme-eu-west-1"), Ok(None));
        }
        assert_eq!(sim.call_count(Op::DescribeDBClusters), 1);
        assert_eq!(sim.call_count(Op::DescribeReplicationGroups), 1);
        let next = Timestamp::from_second(1_700_000_005).unwrap();
        shared.of("eu-west-1", next).await;
        shared.of("us-east-1", next).await;
        assert_eq!(sim.call_count(Op::DescribeDBClusters), 3);
    }

    #[tokio::test]
    async fn the_lags_of_every_shop_in_a_region_are_one_read_a_round() {
        let sim = SimCloud::new(VirtualClock::default());
        let live = Arc::new(LiveSim::start(sim.clone(), 1));
        let shared = SharedObservations::new(live);
        let round = Timestamp::from_second(1_700_000_000).unwrap();
        let all = || (0..700).map(|n| format!("shop-{n}-eu-west-1")).collect();
        for n in 0..700 {
            let own = format!("shop-{n}-eu-west-1");
            let lags = shared.lags("eu-west-1", round, &own, all).await;
            assert_eq!(lags.lag(&own), Ok(None), "no such cluster: no data point");
        }
        // 700 clusters: two GetMetricData calls of at most 500 queries.
        assert_eq!(sim.call_count(Op::GetMetricData), 2);
        // A shop the read did not know of gets its own read, with the rest.
        shared
            .lags("eu-west-1", round, "late-eu-west-1", Vec::new)
            .await;
        assert_eq!(sim.call_count(Op::GetMetricData), 3);
    }

    #[tokio::test]
    async fn a_throttled_region_is_an_error_for_each_of_its_resources_in_that_round() {
        let sim = SimCloud::new(VirtualClock::default());
        let live = Arc::new(LiveSim::start(sim.clone(), 1));
        let shared = SharedObservations::new(live);
        sim.inject(Fault::Throttle {
            region: "eu-west-1".into(),
            calls: 2,
        });
        let round = Timestamp::from_second(1_700_000_000).unwrap();
        let observation = shared.of("eu-west-1", round).await;
        assert!(
            observation
                .cluster("acme-eu-west-1")
                .is_err_and(|e| e.metric_label() == "throttled"),
            "{observation:?}"
        );
        assert!(observation.group("acme-eu-west-1").is_err());
    }
}
