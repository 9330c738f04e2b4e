//! The cache concern: this region's ElastiCache (Redis OSS) replication
//! group inside the shop's Global Datastore.
//!
//! [`reconcile_from`] and [`cleanup`] are the thin executors the controller
//! calls: observe through the [`ElastiCachePort`] → [`plan::plan`] (pure) →
//! carry out the planned step → re-observe → report. They never wait for
//! AWS: a long operation is started, reported, and polled on the next
//! requeue.
//!
//! The Redis AUTH token arrives as a [`CacheAuth`] (the controller reads the
//! Secret) and leaves only inside a create request; it never reaches the
//! status, a condition, an Event or a log line.

pub mod auth;
pub mod cleanup;
pub mod names;
pub mod plan;
pub mod port;

#[cfg(all(test, feature = "simulation"))]
mod tests;

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::jiff::Timestamp;

use crate::api::conditions::{Desired, Status, types};
use crate::api::{CacheStatus, DeletionPolicy, ShopRegionSpec, SpecError};
use crate::cloud::{CleanupOutcome, CloudError, Note, TransientKind};

pub use auth::{CacheAuth, auth_from_secret, check_auth_token};
pub use cleanup::{CacheCleanupAction, CacheCleanupInput, CacheCleanupPlan};
pub use plan::{CacheAction, CachePlan, CachePlanInput, reason};
pub use port::{
    AuthToken, AutomaticFailoverStatus, CreateGlobalReplicationGroupRequest,
    CreateReplicationGroupRequest, DeleteReplicationGroupRequest, ElastiCachePort, Endpoint,
    GlobalMemberStatus, GlobalReplicationGroup, GlobalReplicationGroupInfo,
    GlobalReplicationGroupMember, GlobalReplicationGroupStatus, ModifyReplicationGroupRequest,
    NodeGroup, NodeGroupMember, NodeRole, ReplicationGroup, ReplicationGroupStatus, Tags,
};

/// The ElastiCache handle of any region: the cache concern reads the
/// primary's endpoint in the primary's region.
pub type Ports<'a> = &'a (dyn Fn(&str) -> Arc<dyn ElastiCachePort> + Send + Sync);

/// Requeue intervals. ElastiCache operations take minutes; polling faster
/// only spends API quota (shared with every other client in the account).
pub mod requeue {
    use std::time::Duration;

    /// Soon after a step was issued, to report its effect.
    pub const AFTER_ACTION: Duration = Duration::from_secs(10);
    /// While a replication group or the Global Datastore is created or joined.
    pub const LONG_OPERATION: Duration = Duration::from_secs(60);
    /// While replicas change or a group is briefly busy.
    pub const SHORT_OPERATION: Duration = Duration::from_secs(30);
    /// Converged: refresh lag and endpoints, notice drift.
    pub const STEADY: Duration = Duration::from_secs(120);
    /// Until the AUTH Secret appears or is fixed.
    pub const AUTH_UNAVAILABLE: Duration = Duration::from_secs(30);
    /// Throttled: back off harder than for other transient errors.
    pub const THROTTLED: Duration = Duration::from_secs(30);
    pub const TRANSIENT: Duration = Duration::from_secs(15);
    pub const REGION_UNAVAILABLE: Duration = Duration::from_secs(30);
    /// A state that needs a human or AWS (quota, failed group).
    pub const NEEDS_ATTENTION: Duration = Duration::from_secs(300);
}

/// What one reconcile of the cache concern found and did.
#[derive(Clone, Debug, PartialEq)]
pub struct CacheOutcome {
    pub status: CacheStatus,
    /// The `CacheReady` condition.
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
    global: Option<GlobalReplicationGroup>,
    group: Option<ReplicationGroup>,
    tags: Tags,
}

async fn observe(
    port: &dyn ElastiCachePort,
    spec: &ShopRegionSpec,
) -> Result<Observed, CloudError> {
    // AWS chose the Global Datastore's prefix: list and match the suffix.
    let globals = port.describe_global_replication_groups(None).await?;
    let global = names::find_global(&globals, &names::global_suffix(spec)).cloned();
    let group = port
        .describe_replication_group(&names::replication_group_id(spec))
        .await?;
    let tags = match &group {
        Some(g) => port.list_tags(&g.arn).await?,
        None => Tags::new(),
    };
    Ok(Observed {
        global,
        group,
        tags,
    })
}

/// Reconciles this region's replication group once. A converged region
/// costs read calls only.
pub async fn reconcile(
    ports: Ports<'_>,
    spec: &ShopRegionSpec,
    auth: &CacheAuth,
    now: Timestamp,
) -> CacheOutcome {
    reconcile_from(ports, spec, auth, None, now).await
}

/// [`reconcile`], given the status reported last time, so that a change of
/// role (after a failover) is reported as an event and a region that cannot
/// be read keeps what was last known.
pub async fn reconcile_from(
    ports: Ports<'_>,
    spec: &ShopRegionSpec,
    auth: &CacheAuth,
    previous: Option<&CacheStatus>,
    now: Timestamp,
) -> CacheOutcome {
    let port = ports(&spec.region);
    let observed = match observe(port.as_ref(), spec).await {
        Ok(observed) => observed,
        Err(error) => return error_outcome(spec, previous, &error),
    };
    let planned = plan::plan(&CachePlanInput {
        spec,
        auth,
        global: observed.global.as_ref(),
        replication_group: observed.group.as_ref(),
        tags: &observed.tags,
    });
    match planned {
        CachePlan::Terminal(error) => {
            let mut status = status_of(spec, &observed, None, None);
            status.last_error = Some(error.to_string());
            CacheOutcome {
                status,
                condition: Desired::new(
                    types::CACHE_READY,
                    Status::False,
                    error.reason,
                    error.to_string(),
                ),
                events: vec![Note::warning(error.reason, error.to_string())],
                requeue_after: None,
                terminal: Some(error),
            }
        }
        CachePlan::Converged { notes } => {
            let lag = read_lag(port.as_ref(), spec, &observed, now).await;
            let endpoint = primary_endpoint(ports, spec, &observed, previous).await;
            let status = status_of(spec, &observed, endpoint, lag);
            let mut message = format!(
                "replication group {} is available as {} of Global Datastore {}; primary in {}",
                status.replication_group_id.as_deref().unwrap_or("?"),
                if status.primary {
                    "primary"
                } else {
                    "secondary"
                },
                status.global_replication_group_id.as_deref().unwrap_or("?"),
                status.primary_region.as_deref().unwrap_or("?"),
            );
            for note in &notes {
                message.push_str("; ");
                message.push_str(note);
            }
            CacheOutcome {
                events: role_change(previous, &status),
                condition: Desired::new(
                    types::CACHE_READY,
                    Status::True,
                    reason::AVAILABLE,
                    message,
                ),
                status,
                requeue_after: Some(requeue::STEADY),
                terminal: None,
            }
        }
        CachePlan::Steps(actions) => {
            act(ports, port.as_ref(), spec, previous, observed, actions).await
        }
    }
}

async fn act(
    ports: Ports<'_>,
    port: &dyn ElastiCachePort,
    spec: &ShopRegionSpec,
    previous: Option<&CacheStatus>,
    observed: Observed,
    actions: Vec<CacheAction>,
) -> CacheOutcome {
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
                    let mut status = status_of(spec, &observed, None, None);
                    status.last_error = Some(spec_error.message.clone());
                    return CacheOutcome {
                        status,
                        condition: Desired::new(
                            types::CACHE_READY,
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
                outcome.status = status_of(spec, &observed, None, None);
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
    let endpoint = primary_endpoint(ports, spec, &after, previous).await;
    let mut status = status_of(spec, &after, endpoint, None);
    let first = actions.first().expect("a plan with steps has at least one");
    if let CacheAction::Wait { reason, message } = first
        && is_auth_reason(reason)
    {
        // The Secret is the user's to fix: say so once per new problem, not
        // on every poll.
        if previous.and_then(|p| p.last_error.as_deref()) != Some(message.as_str()) {
            events.push(Note::warning(reason, message.clone()));
        }
        status.last_error = Some(message.clone());
    }
    events.extend(role_change(previous, &status));
    CacheOutcome {
        status,
        condition: Desired::new(
            types::CACHE_READY,
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

fn is_auth_reason(reason: &str) -> bool {
    matches!(
        reason,
        reason::AUTH_SECRET_MISSING | reason::AUTH_SECRET_KEY_MISSING | reason::AUTH_TOKEN_INVALID
    )
}

async fn execute(port: &dyn ElastiCachePort, action: &CacheAction) -> Result<(), CloudError> {
    match action {
        CacheAction::CreatePrimaryReplicationGroup { request }
        | CacheAction::CreateSecondaryReplicationGroup { request } => {
            port.create_replication_group(request).await.map(drop)
        }
        CacheAction::CreateGlobalDatastore { request } => port
            .create_global_replication_group(request)
            .await
            .map(drop),
        CacheAction::ChangeReplicas {
            replication_group_id,
            from,
            to,
        } => {
            if to > from {
                port.increase_replica_count(replication_group_id, *to)
                    .await
                    .map(drop)
            } else {
                port.decrease_replica_count(replication_group_id, *to)
                    .await
                    .map(drop)
            }
        }
        CacheAction::ConfigureFailover { request } => {
            port.modify_replication_group(request).await.map(drop)
        }
        CacheAction::TagForAdoption { resource_arn, tags } => {
            port.add_tags(resource_arn, tags).await
        }
        CacheAction::Wait { .. } => Ok(()),
    }
}

fn is_create(action: &CacheAction) -> bool {
    matches!(
        action,
        CacheAction::CreatePrimaryReplicationGroup { .. }
            | CacheAction::CreateSecondaryReplicationGroup { .. }
            | CacheAction::CreateGlobalDatastore { .. }
    )
}

/// The event reason of a mutating action; `None` for a wait.
fn event_reason(action: &CacheAction) -> Option<&'static str> {
    Some(match action {
        CacheAction::CreatePrimaryReplicationGroup { .. } => "CreatingPrimaryReplicationGroup",
        CacheAction::CreateGlobalDatastore { .. } => "CreatingGlobalDatastore",
        CacheAction::CreateSecondaryReplicationGroup { .. } => "JoiningGlobalDatastore",
        CacheAction::ChangeReplicas { from, to, .. } if to > from => "AddingCacheReplica",
        CacheAction::ChangeReplicas { .. } => "RemovingCacheReplica",
        CacheAction::ConfigureFailover { .. } => "ConfiguringCacheFailover",
        CacheAction::TagForAdoption { .. } => "AdoptingReplicationGroup",
        CacheAction::Wait { .. } => return None,
    })
}

/// The spec field to blame when AWS refuses an action built from it; `None`
/// when a refusal is not the spec's fault.
fn refused_field(action: &CacheAction) -> Option<&'static str> {
    match action {
        CacheAction::CreatePrimaryReplicationGroup { .. }
        | CacheAction::CreateSecondaryReplicationGroup { .. } => Some("spec.cache"),
        CacheAction::CreateGlobalDatastore { .. } => {
            Some("spec.cache.globalReplicationGroupSuffix")
        }
        CacheAction::ChangeReplicas { .. } => Some("spec.cache.replicasPerShard"),
        CacheAction::ConfigureFailover { .. }
        | CacheAction::TagForAdoption { .. }
        | CacheAction::Wait { .. } => None,
    }
}

fn wait_interval(reason: &str) -> Duration {
    match reason {
        reason::CREATING
        | reason::CREATING_GLOBAL_DATASTORE
        | reason::JOINING
        | reason::WAITING_FOR_PRIMARY => requeue::LONG_OPERATION,
        reason::AUTH_SECRET_MISSING
        | reason::AUTH_SECRET_KEY_MISSING
        | reason::AUTH_TOKEN_INVALID => requeue::AUTH_UNAVAILABLE,
        reason::REPLICATION_GROUP_UNHEALTHY => requeue::NEEDS_ATTENTION,
        _ => requeue::SHORT_OPERATION,
    }
}

/// A failed call: never terminal. The last known status is kept (AWS could
/// not be read, which says nothing about the cache) and the condition says
/// `Unknown`. A warning Event goes out when the problem is new.
fn error_outcome(
    spec: &ShopRegionSpec,
    previous: Option<&CacheStatus>,
    error: &CloudError,
) -> CacheOutcome {
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
    let mut status = previous.cloned().unwrap_or_else(|| CacheStatus {
        replication_group_id: Some(names::replication_group_id(spec)),
        ..CacheStatus::default()
    });
    let warning = matches!(
        error,
        CloudError::RegionUnavailable { .. } | CloudError::Refused { .. }
    );
    let new_problem = status.last_error.as_deref() != Some(error.to_string().as_str());
    status.last_error = Some(error.to_string());
    CacheOutcome {
        status,
        condition: Desired::new(
            types::CACHE_READY,
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

/// The member of the shop's Global Datastore that is this region's group.
fn own_member<'a>(
    spec: &ShopRegionSpec,
    observed: &'a Observed,
) -> Option<&'a GlobalReplicationGroupMember> {
    let group = observed.group.as_ref()?;
    observed
        .global
        .as_ref()?
        .members
        .iter()
        .find(|m| m.region == spec.region && m.replication_group_id == group.id)
}

/// Whether this region's group takes writes: AWS's member role, or, before
/// the Global Datastore exists, the first region's standalone group.
fn is_primary(spec: &ShopRegionSpec, observed: &Observed) -> bool {
    match (own_member(spec, observed), &observed.global) {
        (Some(m), _) => m.is_primary,
        (None, None) => {
            observed.group.is_some() && spec.failover.order.first() == Some(&spec.region)
        }
        (None, Some(_)) => false,
    }
}

async fn read_lag(
    port: &dyn ElastiCachePort,
    spec: &ShopRegionSpec,
    observed: &Observed,
    now: Timestamp,
) -> Option<Duration> {
    let member = own_member(spec, observed)?;
    if member.is_primary {
        return None;
    }
    // A failed metric read must not fail the reconcile: the lag is
    // informative here, and the failover engine reads it on its own.
    port.replication_lag(&member.replication_group_id, now)
        .await
        .ok()
        .flatten()
}

/// Where the shop's cache takes writes, as `host:port`. A secondary reads it
/// from the primary's region; when that region cannot be read, the endpoint
/// reported last time for the same primary stands.
async fn primary_endpoint(
    ports: Ports<'_>,
    spec: &ShopRegionSpec,
    observed: &Observed,
    previous: Option<&CacheStatus>,
) -> Option<String> {
    let group = observed.group.as_ref()?;
    if is_primary(spec, observed) {
        return group.write_endpoint().map(Endpoint::to_host_port);
    }
    own_member(spec, observed)?;
    let primary = observed.global.as_ref()?.primary()?;
    let remembered = || {
        previous
            .filter(|p| p.primary_region.as_deref() == Some(primary.region.as_str()))
            .and_then(|p| p.primary_endpoint.clone())
    };
    match ports(&primary.region)
        .describe_replication_group(&primary.replication_group_id)
        .await
    {
        Ok(Some(p)) => p
            .write_endpoint()
            .map(Endpoint::to_host_port)
            .or_else(remembered),
        Ok(None) | Err(_) => remembered(),
    }
}

fn status_of(
    spec: &ShopRegionSpec,
    observed: &Observed,
    primary_endpoint: Option<String>,
    lag: Option<Duration>,
) -> CacheStatus {
    let global = observed.global.as_ref();
    let group = observed.group.as_ref();
    let primary = is_primary(spec, observed);
    let primary_region = global
        .and_then(|g| g.primary().map(|m| m.region.clone()))
        .or_else(|| primary.then(|| spec.region.clone()));
    CacheStatus {
        global_replication_group_id: global.map(|g| g.id.clone()),
        replication_group_id: Some(names::replication_group_id(spec)),
        replication_group_status: group.map(|g| g.status.as_str().to_string()),
        primary,
        primary_region,
        primary_endpoint,
        reader_endpoint: group
            .and_then(ReplicationGroup::read_endpoint)
            .map(Endpoint::to_host_port),
        replication_lag_seconds: lag.map(|l| l.as_secs_f64()),
        last_error: None,
    }
}

fn role_change(previous: Option<&CacheStatus>, now: &CacheStatus) -> Vec<Note> {
    let Some(previous) = previous.filter(|p| p.replication_group_status.is_some()) else {
        return Vec::new();
    };
    if now.replication_group_status.is_none() {
        return Vec::new();
    }
    let mut notes = Vec::new();
    if previous.primary != now.primary {
        notes.push(if now.primary {
            Note::normal(
                "CacheBecamePrimary",
                "this region's replication group is now the primary of the Global Datastore",
            )
        } else {
            Note::warning(
                "CacheBecameSecondary",
                format!(
                    "this region's replication group is now a secondary; primary in {}",
                    now.primary_region.as_deref().unwrap_or("?")
                ),
            )
        });
    } else if previous.primary_region.is_some() && previous.primary_region != now.primary_region {
        notes.push(Note::normal(
            "CachePrimaryRegionChanged",
            format!(
                "the cache primary moved from {} to {}",
                previous.primary_region.as_deref().unwrap_or("?"),
                now.primary_region.as_deref().unwrap_or("?")
            ),
        ));
    }
    notes
}

/// Carries out one pass of the deletion plan for `spec.cache.deletionPolicy`.
/// `Retain` makes no call at all.
pub async fn cleanup(port: &dyn ElastiCachePort, spec: &ShopRegionSpec) -> CleanupOutcome {
    if spec.cache.deletion_policy == DeletionPolicy::Retain {
        return CleanupOutcome::Done;
    }
    let observed = match observe(port, spec).await {
        Ok(observed) => observed,
        Err(error) => return cleanup_error(&error),
    };
    let planned = cleanup::plan(&CacheCleanupInput {
        spec,
        global: observed.global.as_ref(),
        replication_group: observed.group.as_ref(),
        tags: &observed.tags,
    });
    match planned {
        CacheCleanupPlan::Done => CleanupOutcome::Done,
        CacheCleanupPlan::Wait { .. } => CleanupOutcome::InProgress {
            requeue: requeue::SHORT_OPERATION,
        },
        CacheCleanupPlan::Blocked { reason, message } => CleanupOutcome::Blocked {
            reason: reason.to_string(),
            message,
        },
        CacheCleanupPlan::Steps(actions) => {
            for action in &actions {
                let result = match action {
                    CacheCleanupAction::Disassociate {
                        global_replication_group_id,
                        replication_group_id,
                        region,
                    } => {
                        port.disassociate_global_replication_group(
                            global_replication_group_id,
                            replication_group_id,
                            region,
                        )
                        .await
                    }
                    CacheCleanupAction::DeleteGlobalDatastore {
                        global_replication_group_id,
                    } => {
                        port.delete_global_replication_group(global_replication_group_id)
                            .await
                    }
                    CacheCleanupAction::DeleteReplicationGroup { request } => {
                        port.delete_replication_group(request).await
                    }
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
