//! The cache concern: this region's ElastiCache (Redis OSS) replication
//! group inside the shop's Global Datastore.
//!
//! [`ElastiCache`] is the concern as the cloud executor
//! ([`crate::cloud::executor`]) runs it: its reads through the
//! [`ElastiCachePort`], its pure plan ([`plan::plan`]), its calls and its
//! status. [`cleanup()`] runs the deletion plan the same way.
//!
//! The Redis AUTH token arrives as a [`CacheAuth`] (the controller reads the
//! Secret) and leaves only inside a create request; it never reaches the
//! status, a condition, an Event or a log line.

pub mod auth;
pub mod cleanup;
pub mod names;
pub mod plan;
pub mod port;

use std::sync::Arc;

use k8s_openapi::jiff::Timestamp;

use crate::api::conditions::types;
use crate::api::{AuthTokenStatus, CacheStatus, DeletionPolicy, ShopRegionSpec};
use crate::cloud::executor::{self, CloudOutcome, DeletionStep, Depth, Role, RoleWords, Service};
use crate::cloud::lag::LagRead;
use crate::cloud::{CleanupOutcome, CloudError};
use crate::concern::Note;

pub use auth::{CacheAuth, auth_from_secret, check_auth_token};
pub use cleanup::{CacheCleanupAction, CacheCleanupInput, CacheCleanupPlan};
pub use plan::{CacheAction, CachePlan, CachePlanInput, reason};
pub use port::{
    AuthToken, AuthTokenUpdateStrategy, AutomaticFailoverStatus,
    CreateGlobalReplicationGroupRequest, CreateReplicationGroupRequest,
    DeleteReplicationGroupRequest, ElastiCachePort, Endpoint, GlobalMemberStatus,
    GlobalReplicationGroup, GlobalReplicationGroupInfo, GlobalReplicationGroupMember,
    GlobalReplicationGroupStatus, ModifyReplicationGroupRequest, NodeGroup, NodeGroupMember,
    NodeRole, ReplicationGroup, ReplicationGroupStatus, Tags,
};

/// The ElastiCache handle of any region: the cache concern reads the
/// primary's endpoint in the primary's region.
pub type Ports<'a> = &'a (dyn Fn(&str) -> Arc<dyn ElastiCachePort> + Send + Sync);

/// What one reconcile of the cache concern found and did.
pub type CacheOutcome = CloudOutcome<CacheStatus>;

/// What the port showed of this region.
#[derive(Clone, Debug, Default)]
pub struct Observed {
    global: Option<GlobalReplicationGroup>,
    group: Option<ReplicationGroup>,
    tags: Tags,
    /// The nodes' security groups, read only when the spec names some and
    /// the group is available to be changed.
    security_groups: Option<Vec<String>>,
}

/// `known_groups`: the security groups status recorded; the nodes are read
/// (`DescribeCacheClusters`, which no shared view serves) only when the
/// spec names others. `None`: never (a deletion does not need them).
async fn observe(
    port: &dyn ElastiCachePort,
    spec: &ShopRegionSpec,
    known_groups: Option<&[String]>,
) -> Result<Observed, CloudError> {
    // AWS chose the Global Datastore's prefix: list and match the suffix.
    let global = port
        .global_replication_group(&names::global_suffix(spec))
        .await?;
    let group = port
        .describe_replication_group(&names::replication_group_id(spec))
        .await?;
    let tags = match &group {
        Some(g) => port.list_tags(&g.arn).await?,
        None => Tags::new(),
    };
    let wants_groups = match (known_groups, spec.cache.network.as_ref()) {
        (Some(known), Some(network)) => {
            let mut wanted = network.security_group_ids.clone();
            wanted.sort();
            wanted.dedup();
            !wanted.is_empty() && wanted != known
        }
        _ => false,
    };
    let node = group
        .as_ref()
        .filter(|g| g.status == ReplicationGroupStatus::Available)
        .and_then(|g| g.node_groups.first())
        .and_then(|n| n.members.first())
        .map(|m| m.cache_cluster_id.clone());
    let security_groups = match node.filter(|_| wants_groups) {
        Some(node) => Some(port.node_security_groups(&node).await?),
        None => None,
    };
    Ok(Observed {
        global,
        group,
        tags,
        security_groups,
    })
}

/// This region's replication group in one reconcile: the ports of every
/// region (a secondary reads the primary's endpoint in the primary's
/// region), the spec, the AUTH token the spec asks for, the status reported
/// last time (a change of role is an Event; a region that cannot be read
/// keeps what was last known) and the cloud's time.
pub struct ElastiCache<'a> {
    pub ports: Ports<'a>,
    pub spec: &'a ShopRegionSpec,
    pub auth: &'a CacheAuth,
    pub previous: Option<&'a CacheStatus>,
    /// The AUTH token fingerprint every order pod runs with
    /// (`status.orders.cacheAuthToken`).
    pub rolled_auth: Option<&'a str>,
    pub now: Timestamp,
}

impl ElastiCache<'_> {
    fn port(&self) -> Arc<dyn ElastiCachePort> {
        (self.ports)(&self.spec.region)
    }

    /// What status records of the AUTH token before this pass's calls: the
    /// rotation as recorded, or, for a group seen first, the Secret's
    /// token. A call's effect is recorded by [`Service::after_steps`]
    /// once AWS took it.
    fn auth_token_state(&self, observed: &Observed) -> Option<AuthTokenStatus> {
        let recorded = self.previous.and_then(|p| p.auth_token.as_ref());
        let (Some(group), CacheAuth::Token(token)) = (&observed.group, self.auth) else {
            return recorded.cloned();
        };
        if !group.auth_token_enabled {
            return None;
        }
        let desired = auth::fingerprint(&group.id, token);
        Some(
            match auth::next_rotation(&desired, recorded, self.rolled_auth) {
                auth::Rotation::Settled(state) | auth::Rotation::WaitingForPods(state) => state,
                auth::Rotation::Call { .. } => recorded.cloned().unwrap_or_default(),
            },
        )
    }
}

impl Service for ElastiCache<'_> {
    type Observed = Observed;
    type Step = CacheAction;
    type Status = CacheStatus;
    const CONDITION: &'static str = types::CACHE_READY;

    async fn observe(&self) -> Result<Observed, CloudError> {
        let known = self
            .previous
            .map_or(&[][..], |p| p.security_group_ids.as_slice());
        observe(self.port().as_ref(), self.spec, Some(known)).await
    }

    fn plan(&self, observed: &Observed) -> CachePlan {
        plan::plan(&CachePlanInput {
            spec: self.spec,
            auth: self.auth,
            global: observed.global.as_ref(),
            replication_group: observed.group.as_ref(),
            tags: &observed.tags,
            security_groups: observed.security_groups.as_deref(),
            recorded_auth: self.previous.and_then(|p| p.auth_token.as_ref()),
            rolled_auth: self.rolled_auth,
        })
    }

    async fn execute(&self, step: &CacheAction) -> Result<(), CloudError> {
        execute(self.port().as_ref(), step).await
    }

    async fn status(&self, observed: &Observed, depth: Depth) -> CacheStatus {
        let lag = match depth {
            Depth::Converged => read_lag(self.port().as_ref(), self.spec, observed, self.now)
                .await
                .shown(self.previous.and_then(|p| p.replication_lag_seconds)),
            Depth::Observed | Depth::Progress => None,
        };
        let endpoint = match depth {
            Depth::Observed => None,
            Depth::Progress | Depth::Converged => {
                primary_endpoint(self.ports, self.spec, observed, self.previous).await
            }
        };
        CacheStatus {
            auth_token: self.auth_token_state(observed),
            security_group_ids: observed.security_groups.clone().unwrap_or_else(|| {
                self.previous
                    .map(|p| p.security_group_ids.clone())
                    .unwrap_or_default()
            }),
            ..status_of(self.spec, observed, endpoint, lag)
        }
    }

    fn last_known(&self) -> CacheStatus {
        self.previous.cloned().unwrap_or_else(|| CacheStatus {
            replication_group_id: Some(names::replication_group_id(self.spec)),
            ..CacheStatus::default()
        })
    }

    fn converged_message(&self, status: &CacheStatus) -> String {
        format!(
            "replication group {} is available as {} of Global Datastore {}; primary in {}",
            status.replication_group_id.as_deref().unwrap_or("?"),
            if status.primary {
                "primary"
            } else {
                "secondary"
            },
            status.global_replication_group_id.as_deref().unwrap_or("?"),
            status.primary_region.as_deref().unwrap_or("?"),
        )
    }

    fn role_change(&self, status: &CacheStatus) -> Vec<Note> {
        role_change(self.previous, status)
    }

    /// The AUTH Secret is the user's to fix: the status says what is wrong,
    /// and an Event says it once per new problem, not on every poll.
    fn after_steps(&self, first: &CacheAction, status: &mut CacheStatus) -> Option<Note> {
        // Only reached once AWS took the call.
        match first {
            CacheAction::UpdateAuthToken { then, .. } => {
                status.auth_token = Some(then.clone());
                return None;
            }
            CacheAction::ReconfigureSecurityGroups { request } => {
                status.security_group_ids = request.security_group_ids.clone().unwrap_or_default();
                return None;
            }
            _ => {}
        }
        let CacheAction::Wait {
            reason, message, ..
        } = first
        else {
            return None;
        };
        if !is_auth_reason(reason) {
            return None;
        }
        status.last_error = Some(message.clone());
        let new_problem = self.previous.and_then(|p| p.last_error.as_deref()) != Some(message);
        new_problem.then(|| Note::warning(reason, message.clone()))
    }
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

/// [`reconcile`], given the status reported last time.
pub async fn reconcile_from(
    ports: Ports<'_>,
    spec: &ShopRegionSpec,
    auth: &CacheAuth,
    previous: Option<&CacheStatus>,
    now: Timestamp,
) -> CacheOutcome {
    executor::reconcile(&ElastiCache {
        ports,
        spec,
        auth,
        previous,
        rolled_auth: None,
        now,
    })
    .await
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
        CacheAction::ConfigureFailover { request }
        | CacheAction::UpdateAuthToken { request, .. }
        | CacheAction::ReconfigureSecurityGroups { request } => {
            port.modify_replication_group(request).await.map(drop)
        }
        CacheAction::TagForAdoption { resource_arn, tags }
        | CacheAction::UpdateTags { resource_arn, tags } => port.add_tags(resource_arn, tags).await,
        CacheAction::Wait { .. } => Ok(()),
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
) -> LagRead {
    let Some(member) = own_member(spec, observed).filter(|m| !m.is_primary) else {
        return LagRead::NotReplica;
    };
    // A failed metric read must not fail the reconcile: the lag is
    // informative here, and the failover engine reads it on its own.
    match port
        .replication_lag(&member.replication_group_id, now)
        .await
    {
        Ok(Some(lag)) => LagRead::Read(lag),
        Ok(None) | Err(_) => LagRead::NoData,
    }
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
    lag: Option<f64>,
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
        replication_lag_seconds: lag,
        auth_token: None,
        security_group_ids: Vec::new(),
        last_error: None,
    }
}

/// The Event reasons of a change of role.
pub mod role_event {
    pub const CACHE_BECAME_PRIMARY: &str = "CacheBecamePrimary";
    pub const CACHE_BECAME_SECONDARY: &str = "CacheBecameSecondary";
    pub const CACHE_PRIMARY_REGION_CHANGED: &str = "CachePrimaryRegionChanged";
}

const ROLE_WORDS: RoleWords = RoleWords {
    promoted: (
        role_event::CACHE_BECAME_PRIMARY,
        "this region's replication group is now the primary of the Global Datastore",
    ),
    demoted: (
        role_event::CACHE_BECAME_SECONDARY,
        "this region's replication group is now a secondary; primary in ",
    ),
    moved: (
        role_event::CACHE_PRIMARY_REGION_CHANGED,
        "the cache primary",
    ),
};

fn role(status: &CacheStatus) -> Role<'_> {
    Role {
        known: status.replication_group_status.is_some(),
        writer: status.primary,
        writer_region: status.primary_region.as_deref(),
    }
}

fn role_change(previous: Option<&CacheStatus>, now: &CacheStatus) -> Vec<Note> {
    let Some(previous) = previous else {
        return Vec::new();
    };
    executor::role_change(role(previous), role(now), &ROLE_WORDS)
}

/// Carries out one pass of the deletion plan for `spec.cache.deletionPolicy`.
/// `Retain` makes no call at all.
pub async fn cleanup(
    port: &(dyn ElastiCachePort + 'static),
    spec: &ShopRegionSpec,
) -> CleanupOutcome {
    if spec.cache.deletion_policy == DeletionPolicy::Retain {
        return CleanupOutcome::Done;
    }
    let observed = match observe(port, spec, None).await {
        Ok(observed) => observed,
        Err(error) => return executor::deletion_failed(&error),
    };
    let planned = cleanup::plan(&CacheCleanupInput {
        spec,
        global: observed.global.as_ref(),
        replication_group: observed.group.as_ref(),
        tags: &observed.tags,
    });
    executor::delete(planned, port).await
}

impl DeletionStep for CacheCleanupAction {
    type Port = dyn ElastiCachePort;

    async fn carry_out(&self, port: &Self::Port) -> Result<(), CloudError> {
        match self {
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
        }
    }
}
