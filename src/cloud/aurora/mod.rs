//! The Aurora concern: this region's cluster inside the shop's Aurora Global
//! Database.
//!
//! [`reconcile`] and [`cleanup`] are the thin executors the controller calls:
//! observe through the [`AuroraPort`] → [`plan::plan`] (pure) → carry out
//! the planned step → re-observe → report. They never wait for AWS: a long
//! operation is started, reported, and polled on the next requeue.

pub mod cleanup;
pub mod names;
pub mod plan;
pub mod port;

#[cfg(all(test, feature = "simulation"))]
mod tests;

use std::time::Duration;

use k8s_openapi::jiff::Timestamp;

use crate::api::conditions::{Desired, Status, types};
use crate::api::{DatabaseStatus, DeletionPolicy, ShopRegionSpec, SpecError};
pub use crate::cloud::{CleanupOutcome, Note};
use crate::cloud::{CloudError, TransientKind};

pub use cleanup::{CleanupAction, CleanupInput, CleanupPlan};
pub use plan::{AuroraAction, AuroraPlan, AuroraPlanInput, reason};
pub use port::{
    AuroraPort, Cluster, ClusterStatus, CreateClusterRequest, CreateGlobalClusterRequest,
    CreateInstanceRequest, DeleteClusterRequest, GlobalCluster, GlobalClusterStatus,
    GlobalFailoverState, GlobalFailoverStatus, GlobalMember, Instance, InstanceStatus,
    ModifyClusterRequest, ModifyGlobalClusterRequest, Tags,
};

/// Requeue intervals. AWS operations take minutes; polling faster only
/// spends API quota (which is shared with every other client in the account).
pub mod requeue {
    use std::time::Duration;

    /// Soon after a step was issued, to report its effect.
    pub const AFTER_ACTION: Duration = Duration::from_secs(10);
    /// While a cluster or instance is created, joined or upgraded (minutes).
    pub const LONG_OPERATION: Duration = Duration::from_secs(60);
    /// While readers are added or removed, or a cluster is briefly busy.
    pub const SHORT_OPERATION: Duration = Duration::from_secs(30);
    /// Converged: refresh lag and notice drift.
    pub const STEADY: Duration = Duration::from_secs(120);
    /// Throttled: back off harder than for other transient errors.
    pub const THROTTLED: Duration = Duration::from_secs(30);
    pub const TRANSIENT: Duration = Duration::from_secs(15);
    pub const REGION_UNAVAILABLE: Duration = Duration::from_secs(30);
    /// A state that needs a human or AWS (quota, failed cluster).
    pub const NEEDS_ATTENTION: Duration = Duration::from_secs(300);
}

/// What one reconcile of the Aurora concern found and did.
#[derive(Clone, Debug, PartialEq)]
pub struct AuroraOutcome {
    pub status: DatabaseStatus,
    /// The `DatabaseReady` condition.
    pub condition: Desired,
    pub events: Vec<Note>,
    pub requeue_after: Option<Duration>,
    /// Set when the spec cannot be satisfied: the controller reports
    /// `Stalled` and stops requeueing until the spec changes.
    pub terminal: Option<SpecError>,
}

/// What the port showed of this region.
#[derive(Clone, Debug, Default)]
struct Observed {
    global: Option<GlobalCluster>,
    cluster: Option<Cluster>,
    instances: Vec<Instance>,
}

async fn observe(port: &dyn AuroraPort, spec: &ShopRegionSpec) -> Result<Observed, CloudError> {
    let global = port
        .describe_global_cluster(&names::global_cluster_id(spec))
        .await?;
    let cluster = port.describe_cluster(&names::cluster_id(spec)).await?;
    let instances = match &cluster {
        Some(c) => port.list_instances(&c.id).await?,
        None => Vec::new(),
    };
    Ok(Observed {
        global,
        cluster,
        instances,
    })
}

/// Reconciles this region's Aurora cluster once. A converged region costs
/// read calls only.
pub async fn reconcile(
    port: &dyn AuroraPort,
    spec: &ShopRegionSpec,
    now: Timestamp,
) -> AuroraOutcome {
    reconcile_from(port, spec, None, now).await
}

/// [`reconcile`], given the status reported last time, so that a change of
/// role (after a failover or switchover) is reported as an event.
pub async fn reconcile_from(
    port: &dyn AuroraPort,
    spec: &ShopRegionSpec,
    previous: Option<&DatabaseStatus>,
    now: Timestamp,
) -> AuroraOutcome {
    let observed = match observe(port, spec).await {
        Ok(observed) => observed,
        Err(error) => return error_outcome(spec, previous, &error),
    };
    let planned = plan::plan(&AuroraPlanInput {
        spec,
        global: observed.global.as_ref(),
        cluster: observed.cluster.as_ref(),
        instances: &observed.instances,
    });
    match planned {
        AuroraPlan::Terminal(error) => {
            let mut status = status_of(spec, &observed, None);
            status.last_error = Some(error.to_string());
            AuroraOutcome {
                status,
                condition: Desired::new(
                    types::DATABASE_READY,
                    Status::False,
                    error.reason,
                    error.to_string(),
                ),
                events: vec![Note::warning(error.reason, error.to_string())],
                requeue_after: None,
                terminal: Some(error),
            }
        }
        AuroraPlan::Converged { notes } => {
            let lag = read_lag(port, &observed, now).await;
            let status = status_of(spec, &observed, lag);
            let mut message = format!(
                "cluster {} is available as {} with {} reader(s); writer in {}",
                status.cluster_identifier.as_deref().unwrap_or("?"),
                if status.writer { "writer" } else { "secondary" },
                status.readers,
                status.writer_region.as_deref().unwrap_or("?"),
            );
            for note in &notes {
                message.push_str("; ");
                message.push_str(note);
            }
            AuroraOutcome {
                events: role_change(previous, &status),
                condition: Desired::new(
                    types::DATABASE_READY,
                    Status::True,
                    reason::AVAILABLE,
                    message,
                ),
                status,
                requeue_after: Some(requeue::STEADY),
                terminal: None,
            }
        }
        AuroraPlan::Steps(actions) => act(port, spec, previous, observed, actions).await,
    }
}

async fn act(
    port: &dyn AuroraPort,
    spec: &ShopRegionSpec,
    previous: Option<&DatabaseStatus>,
    observed: Observed,
    actions: Vec<AuroraAction>,
) -> AuroraOutcome {
    let mut events = Vec::new();
    let mut mutated = false;
    for action in &actions {
        match execute(port, action).await {
            Ok(()) => {
                if let Some(event) = event_reason(action) {
                    mutated = true;
                    events.push(Note::normal(event, action.describe()));
                }
            }
            // The earlier attempt of this create went through (a timeout
            // hid its answer): the resource is there, carry on.
            Err(CloudError::AlreadyExists { .. }) if is_create(action) => mutated = true,
            Err(error) => {
                if let (CloudError::Refused { .. }, Some(field)) = (&error, refused_field(action)) {
                    let spec_error = SpecError {
                        reason: reason::REFUSED_BY_AWS,
                        field: field.to_string(),
                        message: format!("AWS refused {}: {error}", action.describe()),
                    };
                    let mut status = status_of(spec, &observed, None);
                    status.last_error = Some(spec_error.message.clone());
                    return AuroraOutcome {
                        status,
                        condition: Desired::new(
                            types::DATABASE_READY,
                            Status::False,
                            reason::REFUSED_BY_AWS,
                            spec_error.message.clone(),
                        ),
                        events: vec![Note::warning(
                            reason::REFUSED_BY_AWS,
                            spec_error.message.clone(),
                        )],
                        requeue_after: None,
                        terminal: Some(spec_error),
                    };
                }
                let mut outcome = error_outcome(spec, previous, &error);
                outcome.status = status_of(spec, &observed, None);
                outcome.status.last_error = Some(error.to_string());
                outcome.events.splice(0..0, events);
                return outcome;
            }
        }
    }
    // Report what AWS shows after the step; if the re-read fails, the
    // first observation is still a truthful (if older) picture.
    let after = if mutated {
        observe(port, spec).await.unwrap_or(observed)
    } else {
        observed
    };
    let status = status_of(spec, &after, None);
    events.extend(role_change(previous, &status));
    let first = actions.first().expect("a plan with steps has at least one");
    AuroraOutcome {
        status,
        condition: Desired::new(
            types::DATABASE_READY,
            Status::False,
            first.reason(),
            first.describe(),
        ),
        events,
        requeue_after: Some(if mutated {
            requeue::AFTER_ACTION
        } else {
            wait_interval(first.reason())
        }),
        terminal: None,
    }
}

async fn execute(port: &dyn AuroraPort, action: &AuroraAction) -> Result<(), CloudError> {
    match action {
        AuroraAction::CreatePrimaryCluster { request }
        | AuroraAction::CreateSecondaryCluster { request } => {
            port.create_cluster(request).await.map(drop)
        }
        AuroraAction::CreateWriter { request } | AuroraAction::CreateReader { request } => {
            port.create_instance(request).await.map(drop)
        }
        AuroraAction::CreateGlobalClusterFrom { request } => {
            port.create_global_cluster(request).await.map(drop)
        }
        AuroraAction::DeleteReader { instance_id } => match port.delete_instance(instance_id).await
        {
            Err(CloudError::NotFound { .. }) => Ok(()),
            other => other,
        },
        AuroraAction::TagForAdoption { resource_arn, tags } => {
            port.add_tags(resource_arn, tags).await
        }
        AuroraAction::ModifyCluster { request } => port.modify_cluster(request).await.map(drop),
        AuroraAction::ModifyGlobalCluster { request } => {
            port.modify_global_cluster(request).await.map(drop)
        }
        AuroraAction::Wait { .. } => Ok(()),
    }
}

fn is_create(action: &AuroraAction) -> bool {
    matches!(
        action,
        AuroraAction::CreatePrimaryCluster { .. }
            | AuroraAction::CreateSecondaryCluster { .. }
            | AuroraAction::CreateWriter { .. }
            | AuroraAction::CreateReader { .. }
            | AuroraAction::CreateGlobalClusterFrom { .. }
    )
}

/// The event reason of a mutating action; `None` for a wait.
fn event_reason(action: &AuroraAction) -> Option<&'static str> {
    Some(match action {
        AuroraAction::CreatePrimaryCluster { .. } => "CreatingPrimaryCluster",
        AuroraAction::CreateWriter { .. } => "CreatingWriterInstance",
        AuroraAction::CreateGlobalClusterFrom { .. } => "CreatingGlobalCluster",
        AuroraAction::CreateSecondaryCluster { .. } => "JoiningGlobalCluster",
        AuroraAction::CreateReader { .. } => "CreatingReaderInstance",
        AuroraAction::DeleteReader { .. } => "DeletingReaderInstance",
        AuroraAction::TagForAdoption { .. } => "AdoptingCluster",
        AuroraAction::ModifyCluster { .. } => "UpgradingEngine",
        AuroraAction::ModifyGlobalCluster { .. } => "ProtectingGlobalCluster",
        AuroraAction::Wait { .. } => return None,
    })
}

/// The spec field to blame when AWS refuses an action built from it; `None`
/// when a refusal is not the spec's fault.
fn refused_field(action: &AuroraAction) -> Option<&'static str> {
    match action {
        AuroraAction::CreatePrimaryCluster { .. } | AuroraAction::CreateSecondaryCluster { .. } => {
            Some("spec.database")
        }
        AuroraAction::CreateWriter { .. } | AuroraAction::CreateReader { .. } => {
            Some("spec.database.instanceClass")
        }
        AuroraAction::ModifyCluster { .. } => Some("spec.database.engineVersion"),
        AuroraAction::CreateGlobalClusterFrom { .. } => {
            Some("spec.database.globalClusterIdentifier")
        }
        AuroraAction::DeleteReader { .. }
        | AuroraAction::TagForAdoption { .. }
        | AuroraAction::ModifyGlobalCluster { .. }
        | AuroraAction::Wait { .. } => None,
    }
}

fn wait_interval(reason: &str) -> Duration {
    match reason {
        reason::CREATING | reason::JOINING | reason::WAITING_FOR_PRIMARY | reason::UPGRADING => {
            requeue::LONG_OPERATION
        }
        reason::CLUSTER_UNHEALTHY => requeue::NEEDS_ATTENTION,
        _ => requeue::SHORT_OPERATION,
    }
}

/// A failed call: never terminal. The last known status is kept (AWS could
/// not be read, which says nothing about the cluster) and the condition
/// says `Unknown`.
fn error_outcome(
    spec: &ShopRegionSpec,
    previous: Option<&DatabaseStatus>,
    error: &CloudError,
) -> AuroraOutcome {
    let (reason, requeue) = match error {
        CloudError::Transient {
            kind: TransientKind::Throttled,
            ..
        } => (reason::AWS_THROTTLED, requeue::THROTTLED),
        CloudError::Transient { .. }
        | CloudError::NotFound { .. }
        | CloudError::AlreadyExists { .. } => (reason::TRANSIENT, requeue::TRANSIENT),
        CloudError::InvalidState { .. } => (reason::AWS_CONFLICT, requeue::SHORT_OPERATION),
        CloudError::Refused { .. } => (reason::REFUSED_BY_AWS, requeue::NEEDS_ATTENTION),
        CloudError::RegionUnavailable { .. } => {
            (reason::REGION_UNAVAILABLE, requeue::REGION_UNAVAILABLE)
        }
    };
    let mut status = previous.cloned().unwrap_or_else(|| DatabaseStatus {
        global_cluster_identifier: Some(names::global_cluster_id(spec)),
        cluster_identifier: Some(names::cluster_id(spec)),
        ..DatabaseStatus::default()
    });
    // One Warning per problem, not one per poll: an outage polled every
    // 30 s would otherwise post an Event (a Kubernetes write) each time.
    let new_problem = status.last_error.as_deref() != Some(error.to_string().as_str());
    status.last_error = Some(error.to_string());
    let warning = matches!(
        error,
        CloudError::RegionUnavailable { .. } | CloudError::Refused { .. }
    );
    AuroraOutcome {
        status,
        condition: Desired::new(
            types::DATABASE_READY,
            Status::Unknown,
            reason,
            error.to_string(),
        ),
        events: if warning && new_problem {
            vec![Note::warning(reason, error.to_string())]
        } else {
            Vec::new()
        },
        requeue_after: Some(requeue),
        terminal: None,
    }
}

async fn read_lag(port: &dyn AuroraPort, observed: &Observed, now: Timestamp) -> Option<Duration> {
    let cluster = observed.cluster.as_ref()?;
    let member = observed.global.as_ref()?.member(&cluster.arn)?;
    if member.is_writer {
        return None;
    }
    // A failed metric read must not fail the reconcile: the lag is
    // informative here, and the failover engine reads it on its own.
    port.replication_lag(&cluster.id, now).await.ok().flatten()
}

fn status_of(spec: &ShopRegionSpec, observed: &Observed, lag: Option<Duration>) -> DatabaseStatus {
    let global = observed.global.as_ref();
    let cluster = observed.cluster.as_ref();
    let member = cluster.and_then(|c| global.and_then(|g| g.member(&c.arn)));
    // Before the global cluster exists the first region's standalone
    // cluster is the only writer.
    let writer = match (member, global) {
        (Some(m), _) => m.is_writer,
        (None, None) => cluster.is_some() && spec.failover.order.first() == Some(&spec.region),
        (None, Some(_)) => false,
    };
    let writer_region = global
        .and_then(|g| g.writer().map(|m| m.region.clone()))
        .or_else(|| writer.then(|| spec.region.clone()));
    let writer_endpoint = global.and_then(|g| g.endpoint.clone()).or_else(|| {
        cluster
            .filter(|_| writer)
            .and_then(|c| c.writer_endpoint.clone())
    });
    let available = observed
        .instances
        .iter()
        .filter(|i| i.status == InstanceStatus::Available);
    let readers = if observed.instances.iter().any(|i| i.is_writer) {
        available.filter(|i| !i.is_writer).count()
    } else {
        // A secondary's instances are all readers; one of them is the slot
        // that takes the writer role on promotion, as in the spec's shape.
        available.count().saturating_sub(1)
    };
    DatabaseStatus {
        global_cluster_identifier: Some(names::global_cluster_id(spec)),
        cluster_identifier: Some(names::cluster_id(spec)),
        cluster_status: cluster.map(|c| c.status.as_str().to_string()),
        writer,
        writer_region,
        writer_endpoint,
        reader_endpoint: cluster.and_then(|c| c.reader_endpoint.clone()),
        readers: i32::try_from(readers).unwrap_or(i32::MAX),
        replication_lag_seconds: lag.map(|l| l.as_secs_f64()),
        last_error: None,
    }
}

fn role_change(previous: Option<&DatabaseStatus>, now: &DatabaseStatus) -> Vec<Note> {
    let Some(previous) = previous.filter(|p| p.cluster_status.is_some()) else {
        return Vec::new();
    };
    let mut notes = Vec::new();
    if previous.writer != now.writer {
        notes.push(if now.writer {
            Note::normal(
                "BecameWriter",
                "this region's cluster is now the writer of the global database",
            )
        } else {
            Note::warning(
                "BecameSecondary",
                format!(
                    "this region's cluster is now a secondary; writer in {}",
                    now.writer_region.as_deref().unwrap_or("?")
                ),
            )
        });
    } else if previous.writer_region.is_some() && previous.writer_region != now.writer_region {
        notes.push(Note::normal(
            "WriterRegionChanged",
            format!(
                "writer moved from {} to {}",
                previous.writer_region.as_deref().unwrap_or("?"),
                now.writer_region.as_deref().unwrap_or("?")
            ),
        ));
    }
    notes
}

/// Carries out one pass of the deletion plan for `spec.database.deletionPolicy`.
/// `Retain` makes no call at all.
pub async fn cleanup(port: &dyn AuroraPort, spec: &ShopRegionSpec) -> CleanupOutcome {
    if spec.database.deletion_policy == DeletionPolicy::Retain {
        return CleanupOutcome::Done;
    }
    let observed = match observe(port, spec).await {
        Ok(observed) => observed,
        Err(error) => return cleanup_error(&error),
    };
    let planned = cleanup::plan(&CleanupInput {
        spec,
        global: observed.global.as_ref(),
        cluster: observed.cluster.as_ref(),
        instances: &observed.instances,
    });
    match planned {
        CleanupPlan::Done => CleanupOutcome::Done,
        CleanupPlan::Wait { .. } => CleanupOutcome::InProgress {
            requeue: requeue::SHORT_OPERATION,
        },
        CleanupPlan::Blocked { reason, message } => CleanupOutcome::Blocked {
            reason: reason.to_string(),
            message,
        },
        CleanupPlan::Steps(actions) => {
            for action in &actions {
                let result = match action {
                    CleanupAction::RemoveFromGlobalCluster {
                        global_cluster_id,
                        cluster_arn,
                    } => {
                        port.remove_from_global_cluster(global_cluster_id, cluster_arn)
                            .await
                    }
                    CleanupAction::DisableGlobalDeletionProtection { global_cluster_id } => port
                        .modify_global_cluster(&ModifyGlobalClusterRequest {
                            global_cluster_id: global_cluster_id.clone(),
                            deletion_protection: Some(false),
                            ..ModifyGlobalClusterRequest::default()
                        })
                        .await
                        .map(drop),
                    CleanupAction::DeleteGlobalCluster { global_cluster_id } => {
                        port.delete_global_cluster(global_cluster_id).await
                    }
                    CleanupAction::DeleteInstance { instance_id } => {
                        port.delete_instance(instance_id).await
                    }
                    CleanupAction::DisableDeletionProtection { cluster_id } => port
                        .modify_cluster(&ModifyClusterRequest {
                            cluster_id: cluster_id.clone(),
                            engine_version: None,
                            deletion_protection: Some(false),
                        })
                        .await
                        .map(drop),
                    CleanupAction::DeleteCluster { request } => port.delete_cluster(request).await,
                };
                match result {
                    // Already gone: a previous pass (or a human) did it.
                    Ok(()) | Err(CloudError::NotFound { .. }) => {}
                    Err(CloudError::Refused { code, message }) => {
                        return CleanupOutcome::Blocked {
                            reason: "DeletionRefused".into(),
                            message: format!(
                                "AWS refused {}: {code}: {message}",
                                action.describe()
                            ),
                        };
                    }
                    Err(error) => return cleanup_error(&error),
                }
            }
            CleanupOutcome::InProgress {
                requeue: requeue::AFTER_ACTION,
            }
        }
    }
}

fn cleanup_error(error: &CloudError) -> CleanupOutcome {
    CleanupOutcome::InProgress {
        requeue: match error {
            CloudError::Transient {
                kind: TransientKind::Throttled,
                ..
            } => requeue::THROTTLED,
            CloudError::RegionUnavailable { .. } => requeue::REGION_UNAVAILABLE,
            CloudError::Refused { .. } => requeue::NEEDS_ATTENTION,
            _ => requeue::TRANSIENT,
        },
    }
}
