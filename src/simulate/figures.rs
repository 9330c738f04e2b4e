//! The measured figures of a run, computed from its record alone.
//!
//! Definitions (`docs/simulation.md` explains them with an example):
//! - *writer lost*: the first instant after a writer existed at which no
//!   cluster accepts writes;
//! - *writer back*: writer lost → a cluster accepts writes again (a
//!   promoted one or the old one back);
//! - *RTO*: writer lost → the order pods of every surviving region reach
//!   that writer: at once when their database writer is the global writer
//!   endpoint (AWS re-points it as part of the promotion), else only once
//!   a new pod template names the new writer (a rollout);
//! - *cache primary reached*: writer lost → every surviving region's cache
//!   primary name points at the new primary, plus the cluster DNS's TTL;
//! - *detection*: writer lost → the operator's first `FailoverStarted` Event;
//! - *AWS promotion*: the first failover or switchover requested after the
//!   writer was lost, from its request to its completion;
//! - *operator-added*: RTO minus AWS promotion, when that promotion is what
//!   ended the outage: the time the operator adds to what AWS takes;
//! - *RPO* (data at risk): the replication lag of the promoted region when it
//!   was promoted, as the simulated AWS recorded it.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;

use super::record::{AwsCalls, AwsWriterChange, NamedHost, Record, serialize_optional_seconds};

/// The Event reason the failover executor posts when it starts a failover.
pub const FAILOVER_STARTED: &str = "FailoverStarted";

#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Figures {
    #[serde(
        rename = "fleetReadySeconds",
        serialize_with = "serialize_optional_seconds"
    )]
    pub fleet_ready: Option<Duration>,
    #[serde(
        rename = "writerLostAtSeconds",
        serialize_with = "serialize_optional_seconds"
    )]
    pub writer_lost_at: Option<Duration>,
    #[serde(
        rename = "detectionSeconds",
        serialize_with = "serialize_optional_seconds"
    )]
    pub detection: Option<Duration>,
    #[serde(
        rename = "operatorAddedSeconds",
        serialize_with = "serialize_optional_seconds"
    )]
    pub operator_added: Option<Duration>,
    #[serde(
        rename = "awsPromotionSeconds",
        serialize_with = "serialize_optional_seconds"
    )]
    pub aws_promotion: Option<Duration>,
    #[serde(
        rename = "writerBackSeconds",
        serialize_with = "serialize_optional_seconds"
    )]
    pub writer_back: Option<Duration>,
    #[serde(rename = "rtoSeconds", serialize_with = "serialize_optional_seconds")]
    pub rto: Option<Duration>,
    #[serde(
        rename = "cachePrimaryReachedSeconds",
        serialize_with = "serialize_optional_seconds"
    )]
    pub cache_primary_reached: Option<Duration>,
    /// Pod template changes of the order Deployments after the fleet was
    /// first Ready: each is a new ReplicaSet and a rollout.
    pub rollouts_after_ready: usize,
    #[serde(rename = "rpoSeconds", serialize_with = "serialize_optional_seconds")]
    pub rpo: Option<Duration>,
    /// The most clusters that accepted writes at one instant.
    pub max_concurrent_writers: usize,
    pub writer_changes: Vec<AwsWriterChange>,
    pub kubernetes_writes: KubeWrites,
    pub aws_calls: AwsCalls,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct KubeWrites {
    pub total: u64,
    pub by_verb: BTreeMap<String, u64>,
}

/// How long the cluster DNS keeps an answer (CoreDNS's `kubernetes` plugin
/// default): a re-pointed ExternalName is resolved anew after it.
pub const CLUSTER_DNS_TTL: Duration = Duration::from_secs(5);

/// AWS's global writer endpoint (`<name>.global-<id>.global.rds.amazonaws.com`)
/// follows the writer by itself.
pub fn is_global_writer_endpoint(host: &str) -> bool {
    host.contains(".global-") && host.ends_with(".global.rds.amazonaws.com")
}

/// When the order pods of every region but `lost` reach the writer that
/// came back at `back`; `None` while one of them has not.
fn pods_reach_writer(record: &Record, lost: Option<&str>, back: Duration) -> Option<Duration> {
    record
        .pod_templates
        .values()
        .filter(|history| history.first().and_then(|t| t.region.as_deref()) != lost)
        .map(|history| {
            let in_force = history.iter().rev().find(|t| t.at <= back)?;
            if in_force
                .database_writer
                .as_deref()
                .is_some_and(is_global_writer_endpoint)
            {
                return Some(back);
            }
            history.iter().find(|t| t.at > back).map(|t| t.at)
        })
        .try_fold(back, |latest, reach| reach.map(|r| r.max(latest)))
}

/// When every surviving region's cache primary name points where the
/// promoted region's does, plus the cluster DNS's TTL.
fn cache_primary_reached(
    record: &Record,
    from: Duration,
    promoted: &str,
    lost: Option<&str>,
) -> Option<Duration> {
    let histories: Vec<&Vec<NamedHost>> = record.cache_primary_names.values().collect();
    let region_of = |h: &Vec<NamedHost>| h.first().and_then(|n| n.region.clone());
    let target = histories
        .iter()
        .find(|h| region_of(h).as_deref() == Some(promoted))?
        .last()?
        .host
        .clone();
    let surviving: Vec<&&Vec<NamedHost>> = histories
        .iter()
        .filter(|h| region_of(h).as_deref() != lost)
        .collect();
    let host_at = |h: &Vec<NamedHost>, at: Duration| {
        h.iter().rev().find(|n| n.at <= at).map(|n| n.host.clone())
    };
    let mut instants: Vec<Duration> = surviving
        .iter()
        .flat_map(|h| h.iter().map(|n| n.at))
        .filter(|at| *at >= from)
        .chain([from])
        .collect();
    instants.sort();
    instants
        .into_iter()
        .find(|at| {
            surviving
                .iter()
                .all(|h| host_at(h, *at).as_deref() == Some(target.as_str()))
        })
        .map(|at| at + CLUSTER_DNS_TTL)
}

pub fn figures(record: &Record) -> Figures {
    let lost = writer_lost(record);
    let writer_lost_at = lost.map(|(from, _)| from);
    let lost_region = lost_writer_region(record);
    let writer_back = lost.and_then(|(from, back)| back.map(|back| back - from));
    let rto = lost.and_then(|(from, back)| {
        pods_reach_writer(record, lost_region.as_deref(), back?).map(|reach| reach - from)
    });
    let promotion = writer_lost_at.and_then(|from| {
        record
            .writer_changes
            .iter()
            .find(|c| c.requested_at >= from)
    });
    let aws_promotion = promotion.and_then(|c| c.completed_at.map(|done| done - c.requested_at));
    let cache_reached = match (writer_lost_at, promotion) {
        (Some(from), Some(change)) => {
            cache_primary_reached(record, from, &change.to, lost_region.as_deref())
                .map(|at| at - from)
        }
        _ => None,
    };
    let ended_by_promotion = match (lost, promotion) {
        (Some((_, Some(back))), Some(change)) => change.completed_at == Some(back),
        _ => false,
    };
    let detection = writer_lost_at.and_then(|from| {
        record
            .entries_with_reason(FAILOVER_STARTED)
            .find(|e| e.at >= from)
            .map(|e| e.at - from)
    });
    let operator_added = match (rto, aws_promotion) {
        (Some(rto), Some(aws)) if ended_by_promotion => Some(rto.saturating_sub(aws)),
        _ => None,
    };
    Figures {
        fleet_ready: record.fleet_ready_at,
        writer_lost_at,
        detection,
        operator_added,
        aws_promotion,
        writer_back,
        rto,
        cache_primary_reached: cache_reached,
        rollouts_after_ready: record.fleet_ready_at.map_or(0, |ready| {
            record
                .pod_templates
                .values()
                .flat_map(|h| h.iter().skip(1))
                .filter(|t| t.at > ready)
                .count()
        }),
        rpo: promotion
            .filter(|c| c.completed_at.is_some())
            .map(|c| c.data_loss),
        max_concurrent_writers: record
            .writer_history
            .iter()
            .map(|w| w.regions.len())
            .max()
            .unwrap_or(0),
        writer_changes: record.writer_changes.clone(),
        kubernetes_writes: KubeWrites {
            total: record.kube_writes.values().sum(),
            by_verb: record.kube_writes.clone(),
        },
        aws_calls: record.aws_calls.clone(),
    }
}

/// The first writer outage: when no cluster accepted writes after one had,
/// and when one did again (`None` if never within the run).
/// The region whose writer was lost: the writer just before the gap.
fn lost_writer_region(record: &Record) -> Option<String> {
    let history = &record.writer_history;
    let gap = history
        .iter()
        .enumerate()
        .skip_while(|(_, w)| w.regions.is_empty())
        .find(|(_, w)| w.regions.is_empty())?
        .0;
    history[..gap]
        .iter()
        .rev()
        .find(|w| !w.regions.is_empty())
        .and_then(|w| w.regions.first().cloned())
}

fn writer_lost(record: &Record) -> Option<(Duration, Option<Duration>)> {
    let history = &record.writer_history;
    let first_writer = history.iter().position(|w| !w.regions.is_empty())?;
    let gap = history[first_writer..]
        .iter()
        .position(|w| w.regions.is_empty())?
        + first_writer;
    let from = history[gap].at;
    let back = history[gap..]
        .iter()
        .find(|w| !w.regions.is_empty())
        .map(|w| w.at);
    Some((from, back))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::simulate::record::{Entry, EntryKind, WriterSample};

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    fn sample(at: u64, regions: &[&str]) -> WriterSample {
        WriterSample {
            at: secs(at),
            regions: regions.iter().map(|r| r.to_string()).collect(),
        }
    }

    fn failover(requested: u64, completed: Option<u64>) -> AwsWriterChange {
        AwsWriterChange {
            kind: "failover",
            from: "us-east-1".into(),
            to: "eu-west-1".into(),
            requested_at: secs(requested),
            completed_at: completed.map(secs),
            data_loss: Duration::from_millis(150),
        }
    }

    fn started(at: u64) -> Entry {
        Entry {
            at: secs(at),
            region: Some("eu-west-1".into()),
            shop_region: Some("acme-eu-west-1".into()),
            kind: EntryKind::Event,
            reason: FAILOVER_STARTED.into(),
            message: String::new(),
            warning: false,
        }
    }

    #[test]
    fn an_outage_ended_by_a_promotion_splits_into_detection_operator_time_and_aws_time() {
        let record = Record {
            writer_history: vec![
                sample(1140, &["us-east-1"]),
                sample(3600, &[]),
                sample(3692, &["eu-west-1"]),
            ],
            writer_changes: vec![failover(3632, Some(3692))],
            timeline: vec![started(3631)],
            ..Default::default()
        };
        let f = figures(&record);
        assert_eq!(f.writer_lost_at, Some(secs(3600)));
        assert_eq!(f.rto, Some(secs(92)));
        assert_eq!(f.detection, Some(secs(31)));
        assert_eq!(f.aws_promotion, Some(secs(60)));
        assert_eq!(f.operator_added, Some(secs(32)));
        assert_eq!(f.rpo, Some(Duration::from_millis(150)));
        assert_eq!(f.max_concurrent_writers, 1);
    }

    #[test]
    fn an_outage_nobody_fails_over_lasts_until_the_region_recovers() {
        let record = Record {
            writer_history: vec![
                sample(1140, &["us-east-1"]),
                sample(3600, &[]),
                sample(4800, &["us-east-1"]),
            ],
            ..Default::default()
        };
        let f = figures(&record);
        assert_eq!(f.rto, Some(secs(1200)));
        assert_eq!(f.aws_promotion, None);
        assert_eq!(f.operator_added, None);
        assert_eq!(f.rpo, None);
        assert_eq!(f.detection, None);
    }

    #[test]
    fn no_writer_before_the_first_one_exists_is_not_an_outage() {
        let record = Record {
            writer_history: vec![sample(0, &[]), sample(1140, &["us-east-1"])],
            ..Default::default()
        };
        let f = figures(&record);
        assert_eq!(f.writer_lost_at, None);
        assert_eq!(f.rto, None);
    }

    #[test]
    fn a_writer_never_back_has_no_rto() {
        let record = Record {
            writer_history: vec![sample(1140, &["us-east-1"]), sample(3600, &[])],
            writer_changes: vec![failover(3632, None)],
            ..Default::default()
        };
        let f = figures(&record);
        assert_eq!(f.writer_lost_at, Some(secs(3600)));
        assert_eq!(f.rto, None);
        assert_eq!(f.aws_promotion, None);
        assert_eq!(f.rpo, None);
    }

    #[test]
    fn two_writers_at_once_are_counted() {
        let record = Record {
            writer_history: vec![
                sample(10, &["us-east-1"]),
                sample(20, &["eu-west-1", "us-east-1"]),
            ],
            ..Default::default()
        };
        assert_eq!(figures(&record).max_concurrent_writers, 2);
    }
}
