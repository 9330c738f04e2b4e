//! The executor: carries a promotion out through the cloud ports. Thin:
//! every step is chosen by [`super::steps::plan`] from a fresh read of AWS,
//! and nothing here waits for AWS to finish.
//!
//! The intent is recorded in status by the caller **before**
//! [`carry_out`] is called; a call AWS refuses is never retried blindly:
//! AWS is read again and the plan decides (someone else's change under way
//! supersedes this one).

use super::observe::GlobalView;
use super::steps::{self, CacheView, Next, Progress};
use crate::api::{FailoverKind, FailoverRecord, FailoverStep, ShopRegionSpec};
use crate::cloud::aurora::{GlobalCluster, names as aurora_names};
use crate::cloud::elasticache::{ElastiCachePort, GlobalMemberStatus, names as cache_names};
use crate::cloud::{Cloud, CloudError};

/// Reads and calls per reconcile, at most: a promotion moves on by one or
/// two calls per pass, re-reading AWS after each.
const MAX_PASSES: usize = 4;

/// The shop's global cluster through the local region's endpoint; when that
/// region cannot be reached, through the next region of the order that
/// answers (every regional endpoint serves the global API), so that a lost
/// region's controller still learns that it is no longer the writer.
/// `Ok(None)`: the global cluster does not exist (yet).
pub async fn read_global(
    cloud: &dyn Cloud,
    spec: &ShopRegionSpec,
) -> Result<Option<GlobalCluster>, CloudError> {
    let id = aurora_names::global_cluster_id(spec);
    let local = cloud
        .aurora(&spec.region)
        .describe_global_cluster(&id)
        .await;
    let Err(CloudError::RegionUnavailable { .. }) = &local else {
        return local;
    };
    for region in spec.failover.order.iter().filter(|r| **r != spec.region) {
        if let Ok(found) = cloud.aurora(region).describe_global_cluster(&id).await {
            return Ok(found);
        }
    }
    local
}

/// The shop's Global Datastore as `port` shows it, from the point of view of
/// promoting `target`.
pub async fn read_cache(
    port: &dyn ElastiCachePort,
    spec: &ShopRegionSpec,
    target: &str,
) -> CacheView {
    let suffix = cache_names::global_suffix(spec);
    let global = match port.global_replication_group(&suffix).await {
        Ok(global) => global,
        Err(error) => return CacheView::Unknown(error.to_string()),
    };
    let Some(global) = global else {
        return CacheView::NotApplicable(format!(
            "the shop has no Global Datastore <prefix>-{suffix}"
        ));
    };
    let Some(member) = global.member_in(target) else {
        return CacheView::NotApplicable(format!(
            "Global Datastore {} has no member in {target}",
            global.id
        ));
    };
    CacheView::Datastore {
        id: global.id.clone(),
        primary: global.primary().map(|m| m.region.clone()),
        settled: global.status.is_settled(),
        target_group: Some(member.replication_group_id.clone()),
        target_associated: member.status == GlobalMemberStatus::Associated,
    }
}

/// A promotion call to AWS.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Call {
    /// `FailoverGlobalCluster` with `AllowDataLoss`: the RPO guard bounded
    /// the loss before the intent was recorded, and AWS needs it to promote
    /// a secondary while the writer is unreachable.
    AuroraFailover { cluster_arn: String },
    /// `SwitchoverGlobalCluster`: planned, no data loss.
    AuroraSwitchover { cluster_arn: String },
    /// `FailoverGlobalReplicationGroup` to the target's group.
    Cache { datastore: String, group: String },
}

impl Call {
    /// The step recorded once AWS accepted the call: a Global Datastore
    /// being failed over does not say where to, so acceptance is the
    /// record.
    pub fn accepted_step(&self) -> FailoverStep {
        match self {
            Call::AuroraFailover { .. } => FailoverStep::AuroraFailoverRequested,
            Call::AuroraSwitchover { .. } => FailoverStep::AuroraSwitchoverRequested,
            Call::Cache { .. } => FailoverStep::CacheFailoverRequested,
        }
    }
}

/// Where a pass of the executor left the promotion.
#[derive(Clone, Debug, PartialEq)]
pub enum Carry {
    /// AWS is working, or something must settle; poll again.
    Waiting(String),
    /// AWS shows the writer and the cache primary in the target region.
    CloudDone,
    /// Another region's promotion won; adopt it.
    Superseded(String),
}

/// The outcome of one pass.
#[derive(Clone, Debug, PartialEq)]
pub struct Carried {
    pub completed: Vec<FailoverStep>,
    pub state: Carry,
}

/// The call the plan's next step needs, or where the pass stops. A call
/// AWS refused a moment ago is not repeated in the same pass (its state
/// does not explain why): the next pass tries again, not a loop. Pure.
pub fn next_call(
    next: Next,
    record: &FailoverRecord,
    global: &GlobalCluster,
    cache: &CacheView,
    attempted: &[Call],
    refusal: Option<&str>,
) -> Result<Call, Carry> {
    let call = match next {
        Next::Wait(message) => {
            return Err(Carry::Waiting(match refusal {
                Some(refused) => format!("{message} (AWS answered: {refused})"),
                None => message,
            }));
        }
        Next::Topology => return Err(Carry::CloudDone),
        Next::Superseded(message) => return Err(Carry::Superseded(message)),
        Next::PromoteAurora => {
            let Some(member) = global.members.iter().find(|m| m.region == record.to) else {
                return Err(Carry::Waiting(format!(
                    "{} has no cluster in global cluster {}",
                    record.to, global.id
                )));
            };
            let cluster_arn = member.cluster_arn.clone();
            match record.kind {
                FailoverKind::Failover => Call::AuroraFailover { cluster_arn },
                FailoverKind::Switchover => Call::AuroraSwitchover { cluster_arn },
                FailoverKind::CacheFollow => {
                    return Err(Carry::Superseded(
                        "the cache follows the Aurora writer; it never moves it".into(),
                    ));
                }
            }
        }
        Next::PromoteCache => match cache {
            CacheView::Datastore {
                id,
                target_group: Some(group),
                ..
            } => Call::Cache {
                datastore: id.clone(),
                group: group.clone(),
            },
            _ => {
                return Err(Carry::Waiting(format!(
                    "{} has no replication group to promote",
                    record.to
                )));
            }
        },
    };
    if attempted.contains(&call) {
        return Err(Carry::Waiting(format!(
            "AWS refused the promotion of {}: {}",
            record.to,
            refusal.unwrap_or("no reason given")
        )));
    }
    Ok(call)
}

/// Carries a recorded promotion of the local region as far as AWS allows
/// now. Every call goes through the local (target) region's endpoint; each
/// pass reads AWS afresh and lets [`steps::plan`] and [`next_call`] decide.
pub async fn carry_out(
    cloud: &dyn Cloud,
    spec: &ShopRegionSpec,
    record: &FailoverRecord,
) -> Carried {
    let aurora = cloud.aurora(&spec.region);
    let cache_port = cloud.elasticache(&spec.region);
    let global_id = aurora_names::global_cluster_id(spec);
    let mut completed = record.completed_steps.clone();
    let mut attempted: Vec<Call> = Vec::new();
    let mut refusal: Option<String> = None;
    for _ in 0..MAX_PASSES {
        let global = match aurora.describe_global_cluster(&global_id).await {
            Ok(Some(global)) => global,
            Ok(None) => {
                let message = format!("global cluster {global_id} does not exist");
                return Carried {
                    completed,
                    state: Carry::Waiting(message),
                };
            }
            Err(error) => {
                let message = format!("the global cluster could not be read: {error}");
                return Carried {
                    completed,
                    state: Carry::Waiting(message),
                };
            }
        };
        let cache = read_cache(cache_port.as_ref(), spec, &record.to).await;
        let progress = Progress {
            completed: &completed,
            ..Progress::of(record)
        };
        let plan = steps::plan(progress, &GlobalView::from_global_cluster(&global), &cache);
        completed = plan.completed;
        let call = match next_call(
            plan.next,
            record,
            &global,
            &cache,
            &attempted,
            refusal.as_deref(),
        ) {
            Ok(call) => call,
            Err(state) => return Carried { completed, state },
        };
        let result = match &call {
            Call::AuroraFailover { cluster_arn } => {
                aurora
                    .failover_global_cluster(&global_id, cluster_arn, true)
                    .await
            }
            Call::AuroraSwitchover { cluster_arn } => {
                aurora
                    .switchover_global_cluster(&global_id, cluster_arn)
                    .await
            }
            Call::Cache { datastore, group } => {
                cache_port
                    .failover_global_replication_group(datastore, &record.to, group)
                    .await
            }
        };
        match result {
            Ok(()) if !completed.contains(&call.accepted_step()) => {
                completed.push(call.accepted_step());
            }
            Ok(()) => {}
            Err(error) => refusal = Some(error.to_string()),
        }
        attempted.push(call);
    }
    let message = format!("the promotion of {} is under way", record.to);
    Carried {
        completed,
        state: Carry::Waiting(message),
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::jiff::Timestamp;

    use super::*;
    use crate::api::FailoverRecord;
    use crate::cloud::aurora::GlobalMember;
    use crate::cloud::aws::status::GlobalClusterStatus;

    fn record(kind: FailoverKind) -> FailoverRecord {
        FailoverRecord {
            kind,
            from: "us-east-1".into(),
            to: "eu-west-1".into(),
            reason: "lost".into(),
            started_at: Timestamp::from_second(1_735_689_600).unwrap(),
            completed_at: None,
            result: None,
            duration_seconds: None,
            data_loss_risk_seconds: None,
            completed_steps: Vec::new(),
            detection: None,
        }
    }

    fn global() -> GlobalCluster {
        let member = |region: &str, is_writer| GlobalMember {
            cluster_arn: format!("arn:aws:rds:{region}:123456789012:cluster:acme-{region}"),
            region: region.into(),
            is_writer,
        };
        GlobalCluster {
            id: "acme-global".into(),
            arn: "arn:aws:rds::123456789012:global-cluster:acme-global".into(),
            status: GlobalClusterStatus::Available,
            engine: "aurora-postgresql".into(),
            engine_version: "16.4".into(),
            members: vec![member("us-east-1", true), member("eu-west-1", false)],
            deletion_protection: true,
            endpoint: None,
            failover: None,
        }
    }

    const EU_ARN: &str = "arn:aws:rds:eu-west-1:123456789012:cluster:acme-eu-west-1";

    #[test]
    fn a_failover_allows_data_loss_and_a_switchover_does_not() {
        let cache = CacheView::NotApplicable(String::new());
        let failover = next_call(
            Next::PromoteAurora,
            &record(FailoverKind::Failover),
            &global(),
            &cache,
            &[],
            None,
        );
        assert_eq!(
            failover,
            Ok(Call::AuroraFailover {
                cluster_arn: EU_ARN.into()
            })
        );
        let switchover = next_call(
            Next::PromoteAurora,
            &record(FailoverKind::Switchover),
            &global(),
            &cache,
            &[],
            None,
        );
        assert_eq!(
            switchover,
            Ok(Call::AuroraSwitchover {
                cluster_arn: EU_ARN.into()
            })
        );
        assert_eq!(
            switchover.unwrap().accepted_step(),
            FailoverStep::AuroraSwitchoverRequested
        );
    }

    #[test]
    fn a_call_aws_just_refused_waits_for_the_next_pass_with_aws_reason() {
        let refused = Call::AuroraFailover {
            cluster_arn: EU_ARN.into(),
        };
        let again = next_call(
            Next::PromoteAurora,
            &record(FailoverKind::Failover),
            &global(),
            &CacheView::NotApplicable(String::new()),
            &[refused],
            Some("InvalidGlobalClusterStateFault"),
        );
        let Err(Carry::Waiting(message)) = again else {
            panic!("a refused call is not repeated in the same pass: {again:?}");
        };
        assert!(
            message.contains("InvalidGlobalClusterStateFault"),
            "{message}"
        );
    }

    #[test]
    fn a_target_without_a_cluster_or_a_group_waits_and_says_which() {
        let mut elsewhere = record(FailoverKind::Failover);
        elsewhere.to = "ap-northeast-1".into();
        let cache = CacheView::NotApplicable(String::new());
        let aurora = next_call(
            Next::PromoteAurora,
            &elsewhere,
            &global(),
            &cache,
            &[],
            None,
        );
        assert!(
            matches!(aurora, Err(Carry::Waiting(m)) if m.contains("ap-northeast-1 has no cluster"))
        );
        let cache_call = next_call(Next::PromoteCache, &elsewhere, &global(), &cache, &[], None);
        assert!(matches!(cache_call, Err(Carry::Waiting(m)) if m.contains("no replication group")));
    }
}
