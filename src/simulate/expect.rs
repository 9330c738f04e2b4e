//! Expectations checked against a recorded run: a pure function from the
//! record and its figures to verdicts.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;

use super::figures::Figures;
use super::record::{EntryKind, Record};
use super::scenario::{Expectation, format_duration};
use crate::api::conditions::types;

/// One expectation's outcome, with what was measured.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Verdict {
    pub expectation: String,
    pub passed: bool,
    pub detail: String,
}

pub fn evaluate(expectations: &[Expectation], record: &Record, figures: &Figures) -> Vec<Verdict> {
    expectations
        .iter()
        .map(|e| {
            let (passed, detail) = check(e, record, figures);
            Verdict {
                expectation: e.to_string(),
                passed,
                detail,
            }
        })
        .collect()
}

fn below(name: &str, measured: Option<Duration>, limit: Duration, missing: &str) -> (bool, String) {
    match measured {
        Some(d) => (
            d < limit,
            format!(
                "{name} {} (limit {})",
                format_duration(d),
                format_duration(limit)
            ),
        ),
        None => (false, missing.to_string()),
    }
}

fn check(expectation: &Expectation, record: &Record, figures: &Figures) -> (bool, String) {
    match expectation {
        Expectation::FleetReadyWithin(limit) => match figures.fleet_ready {
            Some(d) => (
                d <= limit.as_duration(),
                format!("fleet Ready after {}", format_duration(d)),
            ),
            None => (false, "the fleet was never Ready".into()),
        },
        Expectation::RtoBelow(limit) => below(
            "RTO",
            figures.rto,
            limit.as_duration(),
            &match figures.writer_lost_at {
                Some(at) => format!(
                    "the writer was lost at {} and no cluster accepted writes again",
                    format_duration(at)
                ),
                None => "the writer was never lost".into(),
            },
        ),
        Expectation::RpoBelow(limit) => below(
            "data at risk",
            figures.rpo,
            limit.as_duration(),
            "no promotion completed after the writer was lost",
        ),
        Expectation::DetectionBelow(limit) => below(
            "detection",
            figures.detection,
            limit.as_duration(),
            &match figures.writer_lost_at {
                Some(_) => "the operator posted no FailoverStarted Event after the writer was lost"
                    .to_string(),
                None => "the writer was never lost".into(),
            },
        ),
        Expectation::OperatorAddedBelow(limit) => below(
            "operator-added",
            figures.operator_added,
            limit.as_duration(),
            &match figures.writer_lost_at {
                Some(_) => "no promotion ended the outage".to_string(),
                None => "the writer was never lost".into(),
            },
        ),
        Expectation::NoRolloutAfterReady => {
            let rollouts: Vec<String> = record
                .pod_templates
                .iter()
                .flat_map(|(name, h)| h.iter().skip(1).map(move |t| (name, t)))
                .filter(|(_, t)| record.fleet_ready_at.is_some_and(|ready| t.at > ready))
                .map(|(name, t)| format!("{name} at {}", super::scenario::format_duration(t.at)))
                .collect();
            match record.fleet_ready_at {
                None => (false, "the fleet was never Ready".into()),
                Some(_) if rollouts.is_empty() => (
                    true,
                    format!(
                        "{} order Deployment(s), no new pod template after the fleet was Ready",
                        record.pod_templates.len()
                    ),
                ),
                Some(_) => (false, format!("new pod templates: {}", rollouts.join("; "))),
            }
        }
        Expectation::SingleWriter => {
            let at_end = record.aws.writers.len();
            let most = figures.max_concurrent_writers;
            let passed = most <= 1 && at_end == 1;
            let detail = if most > 1 {
                let when = record
                    .writer_history
                    .iter()
                    .find(|w| w.regions.len() > 1)
                    .map(|w| {
                        format!(
                            " ({} at {})",
                            w.regions.join(" and "),
                            format_duration(w.at)
                        )
                    })
                    .unwrap_or_default();
                format!("{most} clusters accepted writes at once{when}")
            } else {
                format!("never two writers; {at_end} writer(s) at the end")
            };
            (passed, detail)
        }
        Expectation::WriterAtEnd(region) => (
            record.aws.writers == [region.clone()],
            format!(
                "writer at the end: {}",
                if record.aws.writers.is_empty() {
                    "none".to_string()
                } else {
                    record.aws.writers.join(", ")
                }
            ),
        ),
        Expectation::NoWriterChange => (
            record.writer_changes.is_empty(),
            match record.writer_changes.first() {
                None => "no failover, no switchover".into(),
                Some(c) => format!(
                    "a {} {} → {} was requested at {}",
                    c.kind,
                    c.from,
                    c.to,
                    format_duration(c.requested_at)
                ),
            },
        ),
        Expectation::NoFailback => {
            let mut lost: Vec<&str> = Vec::new();
            for change in &record.writer_changes {
                if lost.contains(&change.to.as_str()) {
                    return (
                        false,
                        format!(
                            "the writer went back to {} at {}",
                            change.to,
                            format_duration(change.requested_at)
                        ),
                    );
                }
                if change.kind == "failover" {
                    lost.push(&change.from);
                }
            }
            (
                true,
                format!(
                    "{} writer change(s), none back",
                    record.writer_changes.len()
                ),
            )
        }
        Expectation::NoDataLoss => {
            let lossy: Vec<String> = record
                .writer_changes
                .iter()
                .filter(|c| !c.data_loss.is_zero())
                .map(|c| {
                    format!(
                        "{} → {} lost {}",
                        c.from,
                        c.to,
                        format_duration(c.data_loss)
                    )
                })
                .collect();
            (
                lossy.is_empty(),
                if lossy.is_empty() {
                    format!(
                        "{} writer change(s), no data lost",
                        record.writer_changes.len()
                    )
                } else {
                    lossy.join("; ")
                },
            )
        }
        Expectation::Refused(reason) => {
            let first = record
                .entries_with_reason(reason)
                .find(|e| matches!(e.kind, EntryKind::Event | EntryKind::Condition));
            match first {
                None => (false, format!("the operator never reported {reason}")),
                Some(entry) => {
                    let after = record
                        .writer_changes
                        .iter()
                        .find(|c| c.requested_at >= entry.at);
                    match after {
                        None => (
                            true,
                            format!(
                                "{reason} reported at {} and nothing promoted",
                                format_duration(entry.at)
                            ),
                        ),
                        Some(c) => (
                            false,
                            format!(
                                "{reason} reported at {}, yet a {} to {} started at {}",
                                format_duration(entry.at),
                                c.kind,
                                c.to,
                                format_duration(c.requested_at)
                            ),
                        ),
                    }
                }
            }
        }
        Expectation::Stalled(s) => {
            let region = record
                .regions
                .iter()
                .find(|r| r.shop_region == s.shop_region);
            match region.and_then(|r| r.condition(types::STALLED)) {
                Some(c) => (
                    c.status == "True" && c.reason == s.reason,
                    format!("Stalled={} ({})", c.status, c.reason),
                ),
                None => (
                    false,
                    format!("{} reports no Stalled condition", s.shop_region),
                ),
            }
        }
        Expectation::Rejected(r) => {
            match record
                .rejections
                .iter()
                .find(|x| x.shop_region == r.shop_region)
            {
                Some(x) => (x.message.contains(&r.field), x.message.clone()),
                None => (false, format!("the API server accepted {}", r.shop_region)),
            }
        }
        Expectation::NothingCreatedInAws => {
            let aws = &record.aws;
            let nothing = aws.global_clusters.is_empty()
                && aws.clusters.is_empty()
                && aws.successful_creates == 0;
            (
                nothing,
                format!(
                    "{} global cluster(s), {} cluster(s), {} successful create call(s)",
                    aws.global_clusters.len(),
                    aws.clusters.len(),
                    aws.successful_creates
                ),
            )
        }
        Expectation::NoDuplicateResources => duplicates(record),
        Expectation::Event(e) => {
            let found = record.timeline.iter().find(|entry| {
                entry.kind == EntryKind::Event
                    && entry.reason == e.reason
                    && e.shop_region
                        .as_ref()
                        .is_none_or(|name| entry.shop_region.as_ref() == Some(name))
            });
            match found {
                Some(entry) => (
                    true,
                    format!(
                        "posted at {} on {}",
                        format_duration(entry.at),
                        entry.shop_region.as_deref().unwrap_or("-")
                    ),
                ),
                None => (false, format!("no {} Event", e.reason)),
            }
        }
        Expectation::CapacityRaised(regions) => {
            let mut details = Vec::new();
            let mut passed = true;
            for region in regions {
                match record.capacity.get(region) {
                    Some(t) => {
                        passed &= t.highest_min_replicas > t.first_min_replicas;
                        details.push(format!(
                            "{region} min {} → {}",
                            t.first_min_replicas, t.highest_min_replicas
                        ));
                    }
                    None => {
                        passed = false;
                        details.push(format!("{region} never reported capacity"));
                    }
                }
            }
            (passed, details.join("; "))
        }
        Expectation::CapacityNeverRaised => {
            let raised: Vec<String> = record
                .capacity
                .iter()
                .filter(|(_, t)| t.highest_min_replicas > t.first_min_replicas)
                .map(|(region, t)| {
                    format!(
                        "{region} min {} → {}",
                        t.first_min_replicas, t.highest_min_replicas
                    )
                })
                .collect();
            let detail = if raised.is_empty() {
                format!(
                    "{} region(s), none raised its minimum",
                    record.capacity.len()
                )
            } else {
                format!("raised: {}", raised.join("; "))
            };
            (raised.is_empty(), detail)
        }
        Expectation::AtEnd(a) => {
            let Some(region) = record
                .regions
                .iter()
                .find(|r| r.shop_region == a.shop_region)
            else {
                return (
                    false,
                    format!("{} does not exist at the end", a.shop_region),
                );
            };
            let role = region.role.clone().unwrap_or_else(|| "-".into());
            let ready = region
                .condition(types::READY)
                .is_some_and(|c| c.status == "True");
            let role_ok = a.role.is_none_or(|want| format!("{want:?}") == role);
            let ready_ok = a.ready.is_none_or(|want| want == ready);
            (
                role_ok && ready_ok,
                format!(
                    "role {role}, Ready {}",
                    if ready { "True" } else { "False" }
                ),
            )
        }
    }
}

fn duplicates(record: &Record) -> (bool, String) {
    let mut problems = Vec::new();
    let mut globals: BTreeMap<&str, usize> = BTreeMap::new();
    for g in &record.aws.global_clusters {
        *globals.entry(g.shop.as_deref().unwrap_or("?")).or_default() += 1;
    }
    for (shop, count) in &globals {
        if *count > 1 {
            problems.push(format!("{count} global clusters for shop {shop}"));
        }
    }
    let mut clusters: BTreeMap<(&str, &str), usize> = BTreeMap::new();
    for c in &record.aws.clusters {
        *clusters
            .entry((c.shop.as_deref().unwrap_or("?"), c.region.as_str()))
            .or_default() += 1;
    }
    for ((shop, region), count) in &clusters {
        if *count > 1 {
            problems.push(format!("{count} clusters for shop {shop} in {region}"));
        }
    }
    for summary in &record.regions {
        let Some(wanted) = record.readers_wanted.get(&summary.shop_region) else {
            continue;
        };
        let most = usize::from(*wanted) + 1;
        for c in record
            .aws
            .clusters
            .iter()
            .filter(|c| c.region == summary.region)
        {
            if c.instances > most {
                problems.push(format!(
                    "cluster {} has {} instances; the spec asks for {most}",
                    c.id, c.instances
                ));
            }
        }
    }
    if problems.is_empty() {
        (
            true,
            format!(
                "{} global cluster(s), {} cluster(s), instances within the spec",
                record.aws.global_clusters.len(),
                record.aws.clusters.len()
            ),
        )
    } else {
        (false, problems.join("; "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::KubeDuration;
    use crate::simulate::figures::figures;
    use crate::simulate::record::{
        AwsInventory, AwsWriterChange, ClusterSummary, ConditionSummary, Entry,
        GlobalClusterSummary, RegionSummary, Rejection, WriterSample,
    };
    use crate::simulate::scenario::{RejectedExpectation, StalledExpectation};

    fn d(text: &str) -> KubeDuration {
        KubeDuration::parse(text).unwrap()
    }

    fn verdict(e: Expectation, record: &Record) -> Verdict {
        evaluate(&[e], record, &figures(record)).remove(0)
    }

    fn outage_record(completed: u64) -> Record {
        Record {
            writer_history: vec![
                WriterSample {
                    at: Duration::from_secs(1140),
                    regions: vec!["us-east-1".into()],
                },
                WriterSample {
                    at: Duration::from_secs(3600),
                    regions: vec![],
                },
                WriterSample {
                    at: Duration::from_secs(completed),
                    regions: vec!["eu-west-1".into()],
                },
            ],
            writer_changes: vec![AwsWriterChange {
                kind: "failover",
                from: "us-east-1".into(),
                to: "eu-west-1".into(),
                requested_at: Duration::from_secs(3610),
                completed_at: Some(Duration::from_secs(completed)),
                data_loss: Duration::from_millis(150),
            }],
            aws: AwsInventory {
                writers: vec!["eu-west-1".into()],
                ..Default::default()
            },
            ..Default::default()
        }
    }

    #[test]
    fn rto_and_rpo_limits_compare_with_the_measured_figures() {
        let fast = outage_record(3650);
        assert!(verdict(Expectation::RtoBelow(d("60s")), &fast).passed);
        assert!(verdict(Expectation::RpoBelow(d("30s")), &fast).passed);
        let slow = outage_record(3700);
        let v = verdict(Expectation::RtoBelow(d("60s")), &slow);
        assert!(!v.passed);
        assert_eq!(v.detail, "RTO 1m40.0s (limit 1m00.0s)");
    }

    #[test]
    fn rto_fails_with_a_reason_when_the_writer_never_came_back() {
        let mut record = outage_record(3650);
        record.writer_history.pop();
        let v = verdict(Expectation::RtoBelow(d("60s")), &record);
        assert!(!v.passed);
        assert!(
            v.detail.contains("no cluster accepted writes again"),
            "{}",
            v.detail
        );
    }

    #[test]
    fn single_writer_fails_on_two_writers_at_once_and_on_none_at_the_end() {
        let fine = outage_record(3650);
        assert!(verdict(Expectation::SingleWriter, &fine).passed);
        let mut split = fine.clone();
        split.writer_history.push(WriterSample {
            at: Duration::from_secs(4000),
            regions: vec!["eu-west-1".into(), "us-east-1".into()],
        });
        let v = verdict(Expectation::SingleWriter, &split);
        assert!(!v.passed);
        assert!(v.detail.contains("eu-west-1 and us-east-1"), "{}", v.detail);
        let mut none = fine;
        none.aws.writers.clear();
        assert!(!verdict(Expectation::SingleWriter, &none).passed);
    }

    #[test]
    fn refused_needs_the_reason_and_no_promotion_after_it() {
        let reason_at = |at: u64| Entry {
            at: Duration::from_secs(at),
            region: Some("eu-west-1".into()),
            shop_region: Some("acme-eu-west-1".into()),
            kind: EntryKind::Condition,
            reason: "RPOBudgetExceeded".into(),
            message: String::new(),
            warning: true,
        };
        let mut refused = Record {
            timeline: vec![reason_at(3605)],
            ..Default::default()
        };
        assert!(verdict(Expectation::Refused("RPOBudgetExceeded".into()), &refused).passed);
        refused.writer_changes = outage_record(3700).writer_changes;
        assert!(!verdict(Expectation::Refused("RPOBudgetExceeded".into()), &refused).passed);
        assert!(!verdict(Expectation::Refused("Other".into()), &Record::default()).passed);
    }

    #[test]
    fn stalled_and_rejected_read_the_end_state_and_the_refusals() {
        let record = Record {
            regions: vec![RegionSummary {
                shop_region: "bad".into(),
                conditions: vec![ConditionSummary {
                    type_: "Stalled".into(),
                    status: "True".into(),
                    reason: "InvalidImage".into(),
                }],
                ..Default::default()
            }],
            rejections: vec![Rejection {
                shop_region: "worse".into(),
                message: "spec.database.engine: Unsupported value".into(),
            }],
            ..Default::default()
        };
        let stalled = |reason: &str| {
            Expectation::Stalled(StalledExpectation {
                shop_region: "bad".into(),
                reason: reason.into(),
            })
        };
        assert!(verdict(stalled("InvalidImage"), &record).passed);
        assert!(!verdict(stalled("Other"), &record).passed);
        let rejected = |name: &str| {
            Expectation::Rejected(RejectedExpectation {
                shop_region: name.into(),
                field: "spec.database.engine".into(),
            })
        };
        assert!(verdict(rejected("worse"), &record).passed);
        assert!(!verdict(rejected("bad"), &record).passed);
    }

    #[test]
    fn duplicates_are_found_per_shop_region_and_cluster() {
        let cluster = |region: &str, id: &str, instances: usize| ClusterSummary {
            region: region.into(),
            id: id.into(),
            shop: Some("acme".into()),
            instances,
        };
        let mut record = Record {
            aws: AwsInventory {
                global_clusters: vec![GlobalClusterSummary {
                    id: "acme-global".into(),
                    shop: Some("acme".into()),
                    writer_region: Some("us-east-1".into()),
                    members: 3,
                }],
                clusters: vec![cluster("us-east-1", "acme-us-east-1", 2)],
                ..Default::default()
            },
            regions: vec![RegionSummary {
                shop_region: "acme-us-east-1".into(),
                region: "us-east-1".into(),
                ..Default::default()
            }],
            readers_wanted: [("acme-us-east-1".to_string(), 1)].into(),
            ..Default::default()
        };
        assert!(verdict(Expectation::NoDuplicateResources, &record).passed);
        record
            .aws
            .clusters
            .push(cluster("us-east-1", "acme-us-east-1-2", 3));
        let v = verdict(Expectation::NoDuplicateResources, &record);
        assert!(!v.passed);
        assert!(
            v.detail.contains("2 clusters for shop acme in us-east-1"),
            "{}",
            v.detail
        );
        assert!(v.detail.contains("has 3 instances"), "{}", v.detail);
    }

    #[test]
    fn failback_is_a_return_to_a_region_failed_over_from() {
        let change = |from: &str, to: &str| AwsWriterChange {
            kind: "failover",
            from: from.into(),
            to: to.into(),
            requested_at: Duration::from_secs(1),
            completed_at: Some(Duration::from_secs(2)),
            data_loss: Duration::ZERO,
        };
        let mut record = Record {
            writer_changes: vec![change("us-east-1", "eu-west-1")],
            ..Default::default()
        };
        assert!(verdict(Expectation::NoFailback, &record).passed);
        record.writer_changes.push(change("eu-west-1", "us-east-1"));
        assert!(!verdict(Expectation::NoFailback, &record).passed);
    }

    #[test]
    fn nothing_created_counts_resources_and_successful_creates() {
        let mut record = Record::default();
        assert!(verdict(Expectation::NothingCreatedInAws, &record).passed);
        record.aws.successful_creates = 1;
        assert!(!verdict(Expectation::NothingCreatedInAws, &record).passed);
    }
}
