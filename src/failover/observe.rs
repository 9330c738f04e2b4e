//! The fleet as one controller sees it, in one plain struct: the input of
//! [`super::decide`]. Pure.
//!
//! Where each piece comes from, and why every region reaches the same answer
//! without depending on another region being reachable:
//!
//! - **The writer and any failover in progress** come from AWS
//!   (`DescribeGlobalClusters` through the local region's endpoint). AWS is
//!   the one source every region shares, and the one that serialises writer
//!   changes.
//! - **Health** comes from this controller's own probes of *every* region
//!   ([`super::health`]): the regional AWS APIs, TCP to each region's
//!   database endpoint, each region's health URL. No region reads another
//!   region's verdicts, so a lost region's status, frozen at whatever it said
//!   last, can never hold the others back or push them forward. Controllers
//!   that probe the same regions reach the same verdicts; where their views
//!   differ (a partition between two survivors), AWS's serialisation of
//!   writer changes is the fence (see `docs/failover.md`).
//! - **Replication lag** of a region: the freshest of this controller's own
//!   reads and the last known lag any visible ShopRegion recorded.
//! - **Failover records** (`status.lastFailover`) of this region and of the
//!   ShopRegions this controller can see. With one operator per cluster only
//!   the local record is visible; what another region did is still visible
//!   in AWS (a writer change, recorded locally as `writerChangedAt`).
//! - **Policy agreement**: the visible ShopRegions' `failover` policies are
//!   compared with the local one; a disagreement stops automatic action.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;

use super::health::Health;
use crate::api::{
    FailoverKind, FailoverMode, FailoverRecord, FailoverRefusal, FailoverResult, FailoverSpec,
    FailoverStatus, FailoverStep, LagReading, ShopRegion,
};
use crate::cloud::arn_region;
use crate::cloud::aurora::{GlobalCluster, GlobalClusterStatus, GlobalFailoverStatus};

/// After the first healthy region in the order has had this long to act on a
/// lost writer, the next one takes over (it may have lost its own cluster, or
/// its operator, while its AWS region looks fine).
pub const TAKEOVER_GRACE: Duration = Duration::from_secs(30);

/// How long another region's recorded, unfinished promotion holds this
/// region back when AWS shows no trace of it: longer than a promotion takes,
/// short enough that a region that recorded its intent and then died does
/// not block the fleet.
pub const INTENT_TIMEOUT: Duration = Duration::from_secs(5 * 60);

/// A lag reading older than this before the writer began to look unhealthy
/// says nothing about the writes a promotion would lose. Matches the
/// CloudWatch window the lag is read from.
pub const LAG_MAX_AGE: Duration = Duration::from_secs(5 * 60);

/// The failover policy as the engine applies it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Policy {
    pub order: Vec<String>,
    pub mode: FailoverMode,
    pub unhealthy_after: Duration,
    pub confirmed_loss_after: Duration,
    pub max_replication_lag: Duration,
    pub allow_data_loss: bool,
    pub cooldown: Duration,
    pub takeover_grace: Duration,
    pub intent_timeout: Duration,
    pub lag_max_age: Duration,
}

impl Policy {
    pub fn from_spec(spec: &FailoverSpec) -> Self {
        Self {
            order: spec.order.clone(),
            mode: spec.mode,
            unhealthy_after: spec.unhealthy_after.as_duration(),
            confirmed_loss_after: spec.confirmed_loss_after.as_duration(),
            max_replication_lag: spec.max_replication_lag.as_duration(),
            allow_data_loss: spec.allow_data_loss,
            cooldown: spec.cooldown.as_duration(),
            takeover_grace: TAKEOVER_GRACE,
            intent_timeout: INTENT_TIMEOUT,
            lag_max_age: LAG_MAX_AGE,
        }
    }

    /// The region `failover.order` names first: the preferred writer.
    pub fn first(&self) -> Option<&str> {
        self.order.first().map(String::as_str)
    }
}

/// AWS's view of the global cluster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GlobalView {
    /// The writer region; `None` before the global cluster has a writer.
    pub writer: Option<String>,
    /// A failover or switchover AWS is carrying out.
    pub transition: Option<WriterTransition>,
    /// The regions with a cluster in the global cluster, writer included: the
    /// regions that carry traffic and whose loss the survivors absorb.
    pub members: Vec<String>,
}

/// A writer change under way in AWS.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WriterTransition {
    pub kind: FailoverKind,
    /// The writer region before; `None` when AWS does not say.
    pub from: Option<String>,
    /// The region being promoted; `None` when AWS does not say.
    pub to: Option<String>,
}

impl GlobalView {
    /// From `DescribeGlobalClusters`. A writer change counts as under way
    /// while AWS reports a failover state or the global cluster is
    /// `failing-over` / `switching-over`.
    pub fn from_global_cluster(global: &GlobalCluster) -> Self {
        let writer = global.writer().map(|m| m.region.clone());
        let transition = global.failover.as_ref().map(|state| {
            let kind = if state.status == GlobalFailoverStatus::SwitchingOver
                || global.status == GlobalClusterStatus::SwitchingOver
                || !state.allow_data_loss
            {
                FailoverKind::Switchover
            } else {
                FailoverKind::Failover
            };
            WriterTransition {
                kind,
                from: arn_region(&state.from_cluster_arn).map(str::to_string),
                to: arn_region(&state.to_cluster_arn).map(str::to_string),
            }
        });
        let transition = transition.or_else(|| {
            matches!(
                global.status,
                GlobalClusterStatus::FailingOver | GlobalClusterStatus::SwitchingOver
            )
            .then(|| WriterTransition {
                kind: if global.status == GlobalClusterStatus::SwitchingOver {
                    FailoverKind::Switchover
                } else {
                    FailoverKind::Failover
                },
                from: writer.clone(),
                to: None,
            })
        });
        let members = global.members.iter().map(|m| m.region.clone()).collect();
        Self {
            writer,
            transition,
            members,
        }
    }
}

/// A replication lag reading.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LagSample {
    pub lag: Duration,
    pub at: Timestamp,
}

impl LagSample {
    pub(crate) fn from_reading(reading: &LagReading) -> Option<Self> {
        let lag = Duration::try_from_secs_f64(reading.seconds).ok()?;
        Some(Self {
            lag,
            at: reading.observed_at,
        })
    }

    pub fn to_reading(self) -> LagReading {
        LagReading {
            seconds: self.lag.as_secs_f64(),
            observed_at: self.at,
        }
    }
}

/// One region of the fleet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegionView {
    pub region: String,
    /// This controller's verdict.
    pub health: Health,
    /// The last known replication lag of the region's cluster.
    pub lag: Option<LagSample>,
}

/// A failover record, parsed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attempt {
    /// The region whose status holds the record.
    pub region: String,
    pub kind: FailoverKind,
    pub from: String,
    pub to: String,
    pub started_at: Timestamp,
    pub completed_at: Option<Timestamp>,
    pub result: Option<FailoverResult>,
    pub completed_steps: Vec<FailoverStep>,
}

impl Attempt {
    /// The attempt a region's record describes.
    pub fn from_record(region: &str, record: &FailoverRecord) -> Self {
        Self {
            region: region.to_string(),
            kind: record.kind,
            from: record.from.clone(),
            to: record.to.clone(),
            started_at: record.started_at,
            completed_at: record.completed_at,
            result: record.result,
            completed_steps: record.completed_steps.clone(),
        }
    }

    /// Recorded and not finished.
    pub fn in_progress(&self) -> bool {
        self.completed_at.is_none() && self.result.is_none()
    }

    /// When the writer moved because of it, if it did.
    pub fn moved_writer_at(&self) -> Option<Timestamp> {
        match (self.result, self.kind) {
            (Some(FailoverResult::Abandoned | FailoverResult::Superseded), _) => None,
            // Only the cache moved: the database writer was already there.
            (_, FailoverKind::CacheFollow) => None,
            _ => self.completed_at,
        }
    }
}

/// Everything [`super::decide`] needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FleetObservation {
    /// The region whose controller observed; it only ever promotes itself.
    pub local: String,
    /// AWS's view of the global cluster; `None` when it could not be read.
    pub global: Option<GlobalView>,
    /// Every region of `failover.order`, in order.
    pub regions: Vec<RegionView>,
    /// The failover records visible to this controller.
    pub attempts: Vec<Attempt>,
    /// When this controller saw the writer change (`status.failover`).
    pub writer_changed_at: Option<Timestamp>,
    /// The first region of the order this controller last acted on.
    pub preferred_region: Option<String>,
    /// Visible ShopRegions of the shop whose policy differs, for a human.
    pub disagreements: Vec<String>,
}

impl FleetObservation {
    pub fn region(&self, region: &str) -> Option<&RegionView> {
        self.regions.iter().find(|r| r.region == region)
    }

    pub fn writer(&self) -> Option<&str> {
        self.global.as_ref()?.writer.as_deref()
    }
}

/// What [`observe`] reads.
pub struct ObserveInput<'a> {
    /// The ShopRegion whose controller observes.
    pub local: &'a ShopRegion,
    /// Every other ShopRegion this controller can see (any shop; filtered
    /// here). Empty with one operator per cluster.
    pub visible: &'a [Arc<ShopRegion>],
    /// From AWS; `None` when the global cluster could not be read.
    pub global: Option<GlobalView>,
    /// This controller's verdicts, by region.
    pub health: &'a BTreeMap<String, Health>,
    /// Lag this controller read from AWS this round, by region.
    pub lag_reads: &'a BTreeMap<String, LagSample>,
}

/// Builds the fleet observation. Pure.
pub fn observe(input: &ObserveInput<'_>) -> FleetObservation {
    let local = input.local;
    let spec = &local.spec;
    let peers: Vec<&ShopRegion> = input
        .visible
        .iter()
        .map(AsRef::as_ref)
        .filter(|p| p.spec.shop == spec.shop && !same_object(p, local))
        .collect();

    let mut disagreements = Vec::new();
    for peer in &peers {
        if peer.spec.region == spec.region {
            disagreements.push(format!(
                "ShopRegions {} and {} both claim region {}",
                local.name_any(),
                peer.name_any(),
                spec.region
            ));
        } else if !spec.failover.order.contains(&peer.spec.region) {
            disagreements.push(format!(
                "{} ({}) is not in failover.order [{}]",
                peer.name_any(),
                peer.spec.region,
                spec.failover.order.join(", ")
            ));
        }
        let differences = policy_differences(&spec.failover, &peer.spec.failover);
        if !differences.is_empty() {
            disagreements.push(format!(
                "{} ({}) differs in failover.{}",
                peer.name_any(),
                peer.spec.region,
                differences.join(", failover.")
            ));
        }
    }

    let local_status = local.status.as_ref();
    let local_failover = local_status.and_then(|s| s.failover.as_ref());
    let regions = spec
        .failover
        .order
        .iter()
        .map(|region| {
            let recorded = std::iter::once(local)
                .chain(peers.iter().copied())
                .filter(|sr| &sr.spec.region == region)
                .filter_map(|sr| {
                    sr.status
                        .as_ref()?
                        .failover
                        .as_ref()?
                        .last_known_lag
                        .as_ref()
                })
                .filter_map(LagSample::from_reading);
            let lag = recorded
                .chain(input.lag_reads.get(region).copied())
                .max_by_key(|l| l.at);
            RegionView {
                region: region.clone(),
                health: input
                    .health
                    .get(region)
                    .cloned()
                    .unwrap_or_else(Health::unknown),
                lag,
            }
        })
        .collect();

    let attempts = std::iter::once(local)
        .chain(peers.iter().copied())
        .filter_map(|sr| {
            let record = sr.status.as_ref()?.last_failover.as_ref()?;
            Some(Attempt::from_record(&sr.spec.region, record))
        })
        .collect();

    FleetObservation {
        local: spec.region.clone(),
        global: input.global.clone(),
        regions,
        attempts,
        writer_changed_at: local_failover.and_then(|f| f.writer_changed_at),
        preferred_region: local_failover.and_then(|f| f.preferred_region.clone()),
        disagreements,
    }
}

fn same_object(a: &ShopRegion, b: &ShopRegion) -> bool {
    match (&a.metadata.uid, &b.metadata.uid) {
        (Some(x), Some(y)) => x == y,
        _ => a.namespace() == b.namespace() && a.name_any() == b.name_any(),
    }
}

/// The policy fields in which two ShopRegions differ. Durations compare by
/// value, so `60s` and `1m` agree. Health checks are each controller's own
/// business and are not compared.
pub fn policy_differences(a: &FailoverSpec, b: &FailoverSpec) -> Vec<&'static str> {
    let mut differences = Vec::new();
    if a.order != b.order {
        differences.push("order");
    }
    if a.mode != b.mode {
        differences.push("mode");
    }
    if a.unhealthy_after.as_duration() != b.unhealthy_after.as_duration() {
        differences.push("unhealthyAfter");
    }
    if a.confirmed_loss_after.as_duration() != b.confirmed_loss_after.as_duration() {
        differences.push("confirmedLossAfter");
    }
    if a.max_replication_lag.as_duration() != b.max_replication_lag.as_duration() {
        differences.push("maxReplicationLag");
    }
    if a.allow_data_loss != b.allow_data_loss {
        differences.push("allowDataLoss");
    }
    if a.cooldown.as_duration() != b.cooldown.as_duration() {
        differences.push("cooldown");
    }
    differences
}

/// The engine's memory for the next status, from the previous one and this
/// round's AWS reads:
///
/// - `preferredRegion` follows `failover.order`'s first region whenever the
///   writer is that region (the fleet has acted on it) or nothing was
///   remembered yet (a new ShopRegion is not a request); otherwise it holds,
///   which is what makes a later change of the first region a request and
///   keeps an automatic failover from being undone automatically;
/// - `writerChangedAt` moves when AWS reports a different writer than the
///   one seen last (`previous_writer`, from AWS too);
/// - `lastKnownLag` takes a new reading and keeps the old one when AWS has
///   none.
pub fn next_failover_status(
    previous: Option<&FailoverStatus>,
    spec_first: &str,
    previous_writer: Option<&str>,
    writer: Option<&str>,
    lag_read: Option<LagSample>,
    now: Timestamp,
) -> FailoverStatus {
    let previous_preferred = previous.and_then(|p| p.preferred_region.clone());
    let preferred_region = if writer == Some(spec_first) || previous_preferred.is_none() {
        Some(spec_first.to_string())
    } else {
        previous_preferred
    };
    let writer_changed_at = match (previous_writer, writer) {
        (Some(before), Some(after)) if before != after => Some(now),
        _ => previous.and_then(|p| p.writer_changed_at),
    };
    let last_known_lag = lag_read
        .map(LagSample::to_reading)
        .or_else(|| previous.and_then(|p| p.last_known_lag.clone()));
    FailoverStatus {
        preferred_region,
        writer_changed_at,
        last_known_lag,
        refused: None,
    }
}

/// The refusal to keep in `status.failover.refused`: the previous one while
/// its reason and lost writer hold (so a lasting refusal writes nothing),
/// a new one when they change, none when nothing is refused.
pub fn next_refusal(
    previous: Option<&FailoverRefusal>,
    refused: Option<(&str, Option<&str>, &str)>,
    now: Timestamp,
) -> Option<FailoverRefusal> {
    let (reason, lost_writer, message) = refused?;
    let since = match previous {
        Some(p) if p.reason == reason && p.lost_writer.as_deref() == lost_writer => p.since,
        _ => now,
    };
    Some(FailoverRefusal {
        reason: reason.to_string(),
        lost_writer: lost_writer.map(str::to_string),
        message: message.to_string(),
        since,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::fixtures::acme_region;
    use crate::api::{HealthVerdict, KubeDuration, ShopRegionStatus};
    use crate::cloud::aurora::{GlobalFailoverState, GlobalMember};

    fn t(seconds: i64) -> Timestamp {
        Timestamp::from_second(1_735_689_600 + seconds).unwrap()
    }

    fn with_status(mut sr: ShopRegion, status: ShopRegionStatus) -> ShopRegion {
        sr.status = Some(status);
        sr
    }

    fn lag_status(seconds: f64, at: i64) -> ShopRegionStatus {
        ShopRegionStatus {
            failover: Some(FailoverStatus {
                last_known_lag: Some(LagReading {
                    seconds,
                    observed_at: t(at),
                }),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn run(local: &ShopRegion, visible: &[ShopRegion]) -> FleetObservation {
        let visible: Vec<Arc<ShopRegion>> = visible.iter().cloned().map(Arc::new).collect();
        observe(&ObserveInput {
            local,
            visible: &visible,
            global: None,
            health: &BTreeMap::new(),
            lag_reads: &BTreeMap::new(),
        })
    }

    fn member(region: &str, writer: bool) -> GlobalMember {
        GlobalMember {
            cluster_arn: format!("arn:aws:rds:{region}:123456789012:cluster:acme-{region}"),
            region: region.into(),
            is_writer: writer,
        }
    }

    fn global(status: GlobalClusterStatus, failover: Option<GlobalFailoverState>) -> GlobalCluster {
        GlobalCluster {
            id: "acme-global".into(),
            arn: "arn:aws:rds::123456789012:global-cluster:acme-global".into(),
            status,
            engine: "aurora-postgresql".into(),
            engine_version: "16.4".into(),
            members: vec![
                member("us-east-1", true),
                member("eu-west-1", false),
                member("ap-northeast-1", false),
            ],
            deletion_protection: true,
            endpoint: None,
            failover,
        }
    }

    #[test]
    fn regions_follow_the_failover_order_and_unprobed_ones_are_unknown() {
        let local = acme_region("eu-west-1");
        let obs = run(&local, &[]);
        let regions: Vec<&str> = obs.regions.iter().map(|r| r.region.as_str()).collect();
        assert_eq!(regions, ["us-east-1", "eu-west-1", "ap-northeast-1"]);
        assert!(
            obs.regions
                .iter()
                .all(|r| r.health.verdict == HealthVerdict::Unknown)
        );
        assert_eq!(obs.local, "eu-west-1");
        assert_eq!(obs.global, None);
    }

    #[test]
    fn health_comes_from_this_controllers_verdicts_never_from_other_statuses() {
        let local = acme_region("eu-west-1");
        // us-east-1's own status claims it is healthy: irrelevant.
        let mut us = acme_region("us-east-1");
        us.status = Some(ShopRegionStatus {
            health: vec![crate::api::RegionHealth {
                region: "us-east-1".into(),
                verdict: HealthVerdict::Healthy,
                since: None,
                reason: "SignalsHealthy".into(),
                message: String::new(),
                endpoint: None,
            }],
            ..Default::default()
        });
        let mut health = BTreeMap::new();
        health.insert(
            "us-east-1".to_string(),
            Health {
                verdict: HealthVerdict::Unhealthy,
                since: Some(t(0)),
                reason: "RegionUnreachable",
                message: "x".into(),
                was_healthy: true,
                confirmed_since: None,
            },
        );
        let obs = observe(&ObserveInput {
            local: &local,
            visible: &[Arc::new(us)],
            global: None,
            health: &health,
            lag_reads: &BTreeMap::new(),
        });
        assert_eq!(
            obs.region("us-east-1").unwrap().health.verdict,
            HealthVerdict::Unhealthy
        );
    }

    #[test]
    fn the_freshest_lag_wins_between_own_reads_and_recorded_ones() {
        let local = with_status(acme_region("eu-west-1"), lag_status(0.4, 100));
        let ap = with_status(acme_region("ap-northeast-1"), lag_status(2.0, 50));
        let mut reads = BTreeMap::new();
        reads.insert(
            "ap-northeast-1".to_string(),
            LagSample {
                lag: Duration::from_millis(300),
                at: t(120),
            },
        );
        let obs = observe(&ObserveInput {
            local: &local,
            visible: &[Arc::new(ap)],
            global: None,
            health: &BTreeMap::new(),
            lag_reads: &reads,
        });
        assert_eq!(
            obs.region("eu-west-1").unwrap().lag,
            Some(LagSample {
                lag: Duration::from_millis(400),
                at: t(100)
            })
        );
        assert_eq!(
            obs.region("ap-northeast-1").unwrap().lag.unwrap().lag,
            Duration::from_millis(300)
        );
        assert_eq!(obs.region("us-east-1").unwrap().lag, None);
    }

    #[test]
    fn shopregions_of_other_shops_are_ignored() {
        let local = acme_region("eu-west-1");
        let mut other = acme_region("us-east-1");
        other.spec.shop = "globex".into();
        other.metadata.name = Some("globex-us-east-1".into());
        other.spec.failover.mode = FailoverMode::Manual;
        other.status = Some(ShopRegionStatus {
            last_failover: Some(record("us-east-1", "eu-west-1", 0, None)),
            ..Default::default()
        });
        let obs = run(&local, &[other]);
        assert!(obs.disagreements.is_empty());
        assert!(obs.attempts.is_empty());
    }

    #[test]
    fn a_peer_with_a_different_policy_is_a_disagreement_naming_the_fields() {
        let local = acme_region("eu-west-1");
        let mut peer = acme_region("us-east-1");
        peer.spec.failover.order.swap(0, 1);
        peer.spec.failover.allow_data_loss = true;
        let obs = run(&local, &[peer]);
        assert_eq!(obs.disagreements.len(), 1);
        let d = &obs.disagreements[0];
        assert!(d.contains("acme-us-east-1"), "{d}");
        assert!(d.contains("failover.order"), "{d}");
        assert!(d.contains("failover.allowDataLoss"), "{d}");
    }

    #[test]
    fn durations_spelt_differently_but_equal_agree() {
        let local = acme_region("eu-west-1");
        let mut peer = acme_region("us-east-1");
        peer.spec.failover.cooldown = KubeDuration::parse("600s").unwrap();
        peer.spec.failover.unhealthy_after = KubeDuration::parse("30000ms").unwrap();
        peer.spec.failover.health_checks = vec![crate::api::HealthCheck {
            region: "us-east-1".into(),
            url: "http://orders/healthz".into(),
        }];
        assert!(run(&local, &[peer]).disagreements.is_empty());
    }

    #[test]
    fn two_shopregions_claiming_one_region_is_a_disagreement() {
        let local = acme_region("eu-west-1");
        let mut twin = acme_region("eu-west-1");
        twin.metadata.name = Some("acme-eu-west-1-copy".into());
        twin.metadata.uid = Some("another-uid".into());
        let obs = run(&local, &[twin]);
        assert_eq!(obs.disagreements.len(), 1);
        assert!(obs.disagreements[0].contains("both claim region eu-west-1"));
    }

    #[test]
    fn the_local_shopregion_in_the_visible_list_is_not_its_own_peer() {
        let local = acme_region("eu-west-1");
        let obs = run(&local, std::slice::from_ref(&local));
        assert!(obs.disagreements.is_empty());
    }

    fn record(from: &str, to: &str, started: i64, completed: Option<i64>) -> FailoverRecord {
        FailoverRecord {
            kind: FailoverKind::Failover,
            from: from.into(),
            to: to.into(),
            reason: "test".into(),
            started_at: t(started),
            completed_at: completed.map(t),
            result: completed.map(|_| FailoverResult::Completed),
            duration_seconds: None,
            data_loss_risk_seconds: None,
            completed_steps: vec![],
            detection: None,
        }
    }

    #[test]
    fn failover_records_come_from_every_visible_shopregion_with_their_region() {
        let local = with_status(
            acme_region("eu-west-1"),
            ShopRegionStatus {
                last_failover: Some(record("us-east-1", "eu-west-1", 0, Some(60))),
                ..Default::default()
            },
        );
        let peer = with_status(
            acme_region("ap-northeast-1"),
            ShopRegionStatus {
                last_failover: Some(record("eu-west-1", "ap-northeast-1", 100, None)),
                ..Default::default()
            },
        );
        let obs = run(&local, &[peer]);
        assert_eq!(obs.attempts.len(), 2);
        assert_eq!(obs.attempts[0].region, "eu-west-1");
        assert!(!obs.attempts[0].in_progress());
        assert_eq!(obs.attempts[0].moved_writer_at(), Some(t(60)));
        assert_eq!(obs.attempts[1].region, "ap-northeast-1");
        assert!(obs.attempts[1].in_progress());
    }

    #[test]
    fn a_record_with_a_malformed_timestamp_is_ignored() {
        // A timestamp is typed: a record whose time is not RFC 3339 is
        // refused when it is read and never becomes an attempt.
        let mut bad = serde_json::to_value(record("us-east-1", "eu-west-1", 0, None)).unwrap();
        bad["startedAt"] = "yesterday".into();
        assert!(serde_json::from_value::<FailoverRecord>(bad).is_err());
    }

    #[test]
    fn abandoned_and_superseded_attempts_did_not_move_the_writer() {
        let mut r = record("us-east-1", "eu-west-1", 0, Some(10));
        r.result = Some(FailoverResult::Abandoned);
        assert_eq!(
            Attempt::from_record("eu-west-1", &r).moved_writer_at(),
            None
        );
    }

    #[test]
    fn the_writer_and_a_failover_in_progress_come_from_aws() {
        let view = GlobalView::from_global_cluster(&global(GlobalClusterStatus::Available, None));
        assert_eq!(view.writer.as_deref(), Some("us-east-1"));
        assert_eq!(view.transition, None);
        let failing = global(
            GlobalClusterStatus::FailingOver,
            Some(GlobalFailoverState {
                status: GlobalFailoverStatus::FailingOver,
                from_cluster_arn: member("us-east-1", true).cluster_arn,
                to_cluster_arn: member("eu-west-1", false).cluster_arn,
                allow_data_loss: true,
            }),
        );
        assert_eq!(
            GlobalView::from_global_cluster(&failing).transition,
            Some(WriterTransition {
                kind: FailoverKind::Failover,
                from: Some("us-east-1".into()),
                to: Some("eu-west-1".into()),
            })
        );
        let switching = global(
            GlobalClusterStatus::SwitchingOver,
            Some(GlobalFailoverState {
                status: GlobalFailoverStatus::SwitchingOver,
                from_cluster_arn: member("us-east-1", true).cluster_arn,
                to_cluster_arn: member("ap-northeast-1", false).cluster_arn,
                allow_data_loss: false,
            }),
        );
        let t = GlobalView::from_global_cluster(&switching)
            .transition
            .unwrap();
        assert_eq!(
            (t.kind, t.to.as_deref()),
            (FailoverKind::Switchover, Some("ap-northeast-1"))
        );
    }

    #[test]
    fn a_failing_over_global_cluster_without_details_still_counts_as_in_progress() {
        let view = GlobalView::from_global_cluster(&global(GlobalClusterStatus::FailingOver, None));
        assert!(view.transition.is_some());
    }

    #[test]
    fn a_new_shopregion_takes_the_first_region_as_preferred_whatever_the_writer() {
        let next = next_failover_status(None, "us-east-1", None, Some("eu-west-1"), None, t(0));
        assert_eq!(next.preferred_region.as_deref(), Some("us-east-1"));
        assert_eq!(next.writer_changed_at, None);
    }

    #[test]
    fn a_lasting_refusal_keeps_its_start_and_a_new_reason_starts_anew() {
        let rpo = ("RPOBudgetExceeded", Some("us-east-1"), "lag 45s over 30s");
        let first = next_refusal(None, Some(rpo), t(0)).unwrap();
        assert_eq!(first.since, t(0));
        let same = next_refusal(Some(&first), Some(rpo), t(30));
        assert_eq!(same.as_ref(), Some(&first));
        let other = next_refusal(
            Some(&first),
            Some(("ReplicationLagUnknown", Some("us-east-1"), "lag unknown")),
            t(60),
        );
        assert_eq!(other.unwrap().since, t(60));
        assert_eq!(next_refusal(Some(&first), None, t(90)), None);
    }

    #[test]
    fn the_preferred_region_holds_after_an_automatic_failover() {
        let before = FailoverStatus {
            preferred_region: Some("us-east-1".into()),
            ..Default::default()
        };
        let next = next_failover_status(
            Some(&before),
            "us-east-1",
            Some("us-east-1"),
            Some("eu-west-1"),
            None,
            t(100),
        );
        assert_eq!(next.preferred_region.as_deref(), Some("us-east-1"));
        assert_eq!(next.writer_changed_at, Some(t(100)));
    }

    #[test]
    fn the_preferred_region_follows_the_order_once_the_writer_matches_it() {
        let before = FailoverStatus {
            preferred_region: Some("us-east-1".into()),
            ..Default::default()
        };
        // A human put eu-west-1 first after the failover: acknowledged.
        let next = next_failover_status(
            Some(&before),
            "eu-west-1",
            Some("eu-west-1"),
            Some("eu-west-1"),
            None,
            t(100),
        );
        assert_eq!(next.preferred_region.as_deref(), Some("eu-west-1"));
        // A request while the writer is elsewhere is not acknowledged yet.
        let pending = next_failover_status(
            Some(&next),
            "ap-northeast-1",
            Some("eu-west-1"),
            Some("eu-west-1"),
            None,
            t(200),
        );
        assert_eq!(pending.preferred_region.as_deref(), Some("eu-west-1"));
    }

    #[test]
    fn the_last_known_lag_survives_aws_having_no_data() {
        let reading = LagSample {
            lag: Duration::from_millis(150),
            at: t(10),
        };
        let first = next_failover_status(None, "us-east-1", None, None, Some(reading), t(10));
        let second = next_failover_status(Some(&first), "us-east-1", None, None, None, t(20));
        assert_eq!(second.last_known_lag, Some(reading.to_reading()));
        let parsed = LagSample::from_reading(second.last_known_lag.as_ref().unwrap());
        assert_eq!(parsed, Some(reading));
    }

    #[test]
    fn an_unchanged_writer_keeps_the_recorded_change_time() {
        let before = FailoverStatus {
            writer_changed_at: Some(t(5)),
            ..Default::default()
        };
        let next = next_failover_status(
            Some(&before),
            "us-east-1",
            Some("eu-west-1"),
            Some("eu-west-1"),
            None,
            t(50),
        );
        assert_eq!(next.writer_changed_at, Some(t(5)));
        // A writer unknown this round is not a change either.
        let unknown = next_failover_status(
            Some(&before),
            "us-east-1",
            Some("eu-west-1"),
            None,
            None,
            t(60),
        );
        assert_eq!(unknown.writer_changed_at, Some(t(5)));
    }
}
