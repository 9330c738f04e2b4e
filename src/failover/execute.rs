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
use crate::concern::Note;

/// Reads and calls per reconcile, at most: a promotion moves on by one or
/// two calls per pass, re-reading AWS after each.
const MAX_PASSES: usize = 4;

/// Event reason when the cache primary is moved to follow the Aurora writer
/// outside a recorded promotion.
pub const CACHE_FOLLOWS_WRITER: &str = "CachePrimaryFollowsWriter";

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
    let globals = match port.describe_global_replication_groups(None).await {
        Ok(globals) => globals,
        Err(error) => return CacheView::Unknown(error.to_string()),
    };
    let suffix = cache_names::global_suffix(spec);
    let Some(global) = cache_names::find_global(&globals, &suffix) else {
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
enum Call {
    Aurora { cluster_arn: String },
    Cache { datastore: String, group: String },
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

/// Carries a recorded promotion of the local region as far as AWS allows
/// now. Every call goes through the local (target) region's endpoint.
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
    let waiting = |completed: Vec<FailoverStep>, message: String| Carried {
        completed,
        state: Carry::Waiting(message),
    };
    for _ in 0..MAX_PASSES {
        let global = match aurora.describe_global_cluster(&global_id).await {
            Ok(Some(global)) => global,
            Ok(None) => {
                return waiting(
                    completed,
                    format!("global cluster {global_id} does not exist"),
                );
            }
            Err(error) => {
                return waiting(
                    completed,
                    format!("the global cluster could not be read: {error}"),
                );
            }
        };
        let view = GlobalView::from_global_cluster(&global);
        let cache = read_cache(cache_port.as_ref(), spec, &record.to).await;
        let plan = steps::plan(
            Progress {
                completed: &completed,
                ..Progress::of(record)
            },
            &view,
            &cache,
        );
        completed = plan.completed;
        let call = match plan.next {
            Next::Wait(message) => {
                let message = match &refusal {
                    Some(refused) => format!("{message} (AWS answered: {refused})"),
                    None => message,
                };
                return waiting(completed, message);
            }
            Next::Topology => {
                return Carried {
                    completed,
                    state: Carry::CloudDone,
                };
            }
            Next::Superseded(message) => {
                return Carried {
                    completed,
                    state: Carry::Superseded(message),
                };
            }
            Next::PromoteAurora => match global.members.iter().find(|m| m.region == record.to) {
                Some(member) => Call::Aurora {
                    cluster_arn: member.cluster_arn.clone(),
                },
                None => {
                    return waiting(
                        completed,
                        format!("{} has no cluster in global cluster {global_id}", record.to),
                    );
                }
            },
            Next::PromoteCache => match &cache {
                CacheView::Datastore {
                    id,
                    target_group: Some(group),
                    ..
                } => Call::Cache {
                    datastore: id.clone(),
                    group: group.clone(),
                },
                _ => {
                    return waiting(
                        completed,
                        format!("{} has no replication group to promote", record.to),
                    );
                }
            },
        };
        if attempted.contains(&call) {
            // AWS refused this very call a moment ago and its state does not
            // explain why: try again on the next pass, not in a loop.
            return waiting(
                completed,
                format!(
                    "AWS refused the promotion of {}: {}",
                    record.to,
                    refusal.as_deref().unwrap_or("no reason given")
                ),
            );
        }
        attempted.push(call.clone());
        let (result, accepted) = match &call {
            Call::Aurora { cluster_arn } => (
                match record.kind {
                    // The RPO guard bounded the loss before the intent was
                    // recorded; AWS needs AllowDataLoss to promote a
                    // secondary while the writer is unreachable.
                    FailoverKind::Failover => {
                        aurora
                            .failover_global_cluster(&global_id, cluster_arn, true)
                            .await
                    }
                    FailoverKind::Switchover => {
                        aurora
                            .switchover_global_cluster(&global_id, cluster_arn)
                            .await
                    }
                },
                FailoverStep::aurora_requested(record.kind),
            ),
            Call::Cache { datastore, group } => (
                cache_port
                    .failover_global_replication_group(datastore, &record.to, group)
                    .await,
                FailoverStep::CacheFailoverRequested,
            ),
        };
        match result {
            // AWS accepted: recorded now, since a Global Datastore being
            // failed over does not say where to.
            Ok(()) => {
                if !completed.contains(&accepted) {
                    completed.push(accepted);
                }
            }
            Err(error) => refusal = Some(error.to_string()),
        }
    }
    waiting(
        completed,
        format!("the promotion of {} is under way", record.to),
    )
}

/// Outside a promotion: when AWS shows the local region as the Aurora writer
/// and the Global Datastore's primary elsewhere, moves the cache primary
/// here (the cache follows the database writer). `None` when there is
/// nothing to do.
pub async fn follow_writer(
    cloud: &dyn Cloud,
    spec: &ShopRegionSpec,
    view: &GlobalView,
) -> Option<Note> {
    if view.writer.as_deref() != Some(spec.region.as_str()) || view.transition.is_some() {
        return None;
    }
    let port = cloud.elasticache(&spec.region);
    let cache = read_cache(port.as_ref(), spec, &spec.region).await;
    if !steps::cache_follows_writer(&spec.region, view, &cache) {
        return None;
    }
    let CacheView::Datastore {
        id,
        primary,
        target_group: Some(group),
        ..
    } = &cache
    else {
        return None;
    };
    let from = primary.clone().unwrap_or_default();
    Some(
        match port
            .failover_global_replication_group(id, &spec.region, group)
            .await
        {
            Ok(()) => Note::normal(
                CACHE_FOLLOWS_WRITER,
                format!(
                    "the Aurora writer is in {}, the cache primary was in {from}: moving Global Datastore {id}'s primary here",
                    spec.region
                ),
            ),
            Err(error) => Note::warning(
                CACHE_FOLLOWS_WRITER,
                format!(
                    "the Aurora writer is in {}, the cache primary in {from}; AWS refused to move it: {error}",
                    spec.region
                ),
            ),
        },
    )
}
