//! The Aurora concern: this region's cluster inside the shop's Aurora Global
//! Database.
//!
//! [`Aurora`] is the concern as the cloud executor
//! ([`crate::cloud::executor`]) runs it: its reads through the
//! [`AuroraPort`], its pure plan ([`plan::plan`]), its calls and its status.
//! [`cleanup()`] runs the deletion plan the same way.

pub mod capacity;
pub mod cleanup;
pub mod credentials;
pub mod names;
pub mod plan;
pub mod port;

use k8s_openapi::jiff::Timestamp;

use crate::api::conditions::types;
use crate::api::{DatabaseStatus, DeletionPolicy, ShopRegionSpec};
pub use crate::cloud::CleanupOutcome;
use crate::cloud::CloudError;
use crate::cloud::executor::{self, CloudOutcome, DeletionStep, Depth, Role, RoleWords, Service};
use crate::cloud::lag::LagRead;
use crate::concern::Note;

pub use cleanup::{CleanupAction, CleanupInput, CleanupPlan};
pub use credentials::{generate_password, master_password_in, master_secret};
pub use names::master_secret_name;
pub use plan::{AuroraAction, AuroraPlan, AuroraPlanInput, VersionLookup, reason};
pub use port::{
    AuroraPort, Cluster, ClusterStatus, CreateClusterRequest, CreateGlobalClusterRequest,
    CreateInstanceRequest, DeleteClusterRequest, GlobalCluster, GlobalClusterStatus,
    GlobalFailoverState, GlobalFailoverStatus, GlobalMember, Instance, InstanceStatus,
    MasterPassword, ModifyClusterRequest, ModifyGlobalClusterRequest, ModifyInstanceRequest,
    RegionInstance, SubnetGroup, Tags, instances_of,
};

/// What one reconcile of the Aurora concern found and did.
pub type AuroraOutcome = CloudOutcome<DatabaseStatus>;

/// What the port showed of this region.
#[derive(Clone, Debug, Default)]
pub struct Observed {
    global: Option<GlobalCluster>,
    cluster: Option<Cluster>,
    instances: Vec<Instance>,
    version: VersionLookup,
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
    let mut observed = Observed {
        global,
        cluster,
        instances,
        ..Observed::default()
    };
    if observed.cluster.is_none() {
        observe_before_create(port, spec, &mut observed).await?;
    }
    Ok(observed)
}

/// The read a create needs and a running cluster does not: the full
/// version a major version stands for (only a new primary outside a global
/// cluster takes the spec's version; everything else takes the global
/// cluster's). The subnet group was checked before any concern ran
/// ([`crate::cloud::network`]).
async fn observe_before_create(
    port: &dyn AuroraPort,
    spec: &ShopRegionSpec,
    observed: &mut Observed,
) -> Result<(), CloudError> {
    let engine = spec.database.engine;
    let version = &spec.database.engine_version;
    if observed.global.is_none()
        && spec.failover.order.first() == Some(&spec.region)
        && names::needs_resolution(engine, version)
    {
        observed.version = match port
            .default_engine_version(engine.as_str(), version)
            .await?
        {
            Some(full) => VersionLookup::Default(full),
            None => VersionLookup::NoSuchVersion,
        };
    }
    Ok(())
}

/// This region's cluster in one reconcile: the port of its region, the
/// spec, the status reported last time (so that a change of role after a
/// failover or switchover is an Event) and the cloud's time.
pub struct Aurora<'a> {
    pub port: &'a dyn AuroraPort,
    pub spec: &'a ShopRegionSpec,
    pub previous: Option<&'a DatabaseStatus>,
    pub now: Timestamp,
    /// The shop's master password, from its Secret (see
    /// [`master_secret_name`]); only a new primary uses it.
    pub master_password: Option<&'a MasterPassword>,
}

impl Service for Aurora<'_> {
    type Observed = Observed;
    type Step = AuroraAction;
    type Status = DatabaseStatus;
    const CONDITION: &'static str = types::DATABASE_READY;

    async fn observe(&self) -> Result<Observed, CloudError> {
        observe(self.port, self.spec).await
    }

    fn plan(&self, observed: &Observed) -> AuroraPlan {
        plan::plan(&AuroraPlanInput {
            spec: self.spec,
            global: observed.global.as_ref(),
            cluster: observed.cluster.as_ref(),
            instances: &observed.instances,
            version: &observed.version,
            master_password: self.master_password,
        })
    }

    async fn execute(&self, step: &AuroraAction) -> Result<(), CloudError> {
        execute(self.port, step).await
    }

    async fn status(&self, observed: &Observed, depth: Depth) -> DatabaseStatus {
        let lag = match depth {
            Depth::Converged => read_lag(self.port, observed, self.now)
                .await
                .shown(self.previous.and_then(|p| p.replication_lag_seconds)),
            Depth::Observed | Depth::Progress => None,
        };
        status_of(self.spec, observed, lag)
    }

    fn last_known(&self) -> DatabaseStatus {
        self.previous.cloned().unwrap_or_else(|| DatabaseStatus {
            global_cluster_identifier: Some(names::global_cluster_id(self.spec)),
            cluster_identifier: Some(names::cluster_id(self.spec)),
            ..DatabaseStatus::default()
        })
    }

    fn converged_message(&self, status: &DatabaseStatus) -> String {
        format!(
            "cluster {} is available as {} with {} reader(s); writer in {}",
            status.cluster_identifier.as_deref().unwrap_or("?"),
            if status.writer { "writer" } else { "secondary" },
            status.readers,
            status.writer_region.as_deref().unwrap_or("?"),
        )
    }

    fn role_change(&self, status: &DatabaseStatus) -> Vec<Note> {
        role_change(self.previous, status)
    }

    /// The writer keeps its class when a Git change asks for a smaller one
    /// (only readers are replaced): say so, so that the change is not taken
    /// for done.
    fn converged_warnings(&self, observed: &Observed) -> Vec<Note> {
        let wanted = &self.spec.database.instance_class;
        observed
            .instances
            .iter()
            .filter(|i| i.is_writer && capacity::is_downgrade(wanted, &i.class))
            .map(|writer| {
                Note::warning(
                    reason::WRITER_CLASS_ABOVE_SPEC,
                    format!(
                        "writer instance {} runs {} and carries the shop's writes; the spec asks for the smaller {wanted}, which shopfleet does not apply to a writer (readers are replaced). Lower it after a switchover, or keep the class",
                        writer.id, writer.class
                    ),
                )
            })
            .collect()
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
        AuroraAction::ReconfigureCluster { request } => {
            port.modify_cluster(request).await.map(drop)
        }
        AuroraAction::ReconfigureInstance { request } => port.modify_instance(request).await,
        AuroraAction::UpdateTags { resource_arn, tags } => port.add_tags(resource_arn, tags).await,
        AuroraAction::Wait { .. } => Ok(()),
    }
}

async fn read_lag(port: &dyn AuroraPort, observed: &Observed, now: Timestamp) -> LagRead {
    let Some(cluster) = observed.cluster.as_ref() else {
        return LagRead::NotReplica;
    };
    let member = observed
        .global
        .as_ref()
        .and_then(|g| g.member(&cluster.arn));
    if member.is_none_or(|m| m.is_writer) {
        return LagRead::NotReplica;
    }
    // A failed metric read must not fail the reconcile: the lag is
    // informative here, and the failover engine reads it on its own.
    match port.replication_lag(&cluster.id, now).await {
        Ok(Some(lag)) => LagRead::Read(lag),
        Ok(None) | Err(_) => LagRead::NoData,
    }
}

fn status_of(spec: &ShopRegionSpec, observed: &Observed, lag: Option<f64>) -> DatabaseStatus {
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
        replication_lag_seconds: lag,
        engine_version: cluster.map(|c| c.engine_version.clone()),
        master_user_secret: Some(names::master_secret_name(spec)),
        last_error: None,
    }
}

/// The Event reasons of a change of role.
pub mod role_event {
    pub const BECAME_WRITER: &str = "BecameWriter";
    pub const BECAME_SECONDARY: &str = "BecameSecondary";
    pub const WRITER_REGION_CHANGED: &str = "WriterRegionChanged";
}

const ROLE_WORDS: RoleWords = RoleWords {
    promoted: (
        role_event::BECAME_WRITER,
        "this region's cluster is now the writer of the global database",
    ),
    demoted: (
        role_event::BECAME_SECONDARY,
        "this region's cluster is now a secondary; writer in ",
    ),
    moved: (role_event::WRITER_REGION_CHANGED, "writer"),
};

fn role(status: &DatabaseStatus, known: bool) -> Role<'_> {
    Role {
        known,
        writer: status.writer,
        writer_region: status.writer_region.as_deref(),
    }
}

fn role_change(previous: Option<&DatabaseStatus>, now: &DatabaseStatus) -> Vec<Note> {
    let Some(previous) = previous else {
        return Vec::new();
    };
    executor::role_change(
        role(previous, previous.cluster_status.is_some()),
        role(now, true),
        &ROLE_WORDS,
    )
}

/// Carries out one pass of the deletion plan for `spec.database.deletionPolicy`.
/// `Retain` makes no call at all.
pub async fn cleanup(port: &(dyn AuroraPort + 'static), spec: &ShopRegionSpec) -> CleanupOutcome {
    if spec.database.deletion_policy == DeletionPolicy::Retain {
        return CleanupOutcome::Done;
    }
    let observed = match observe(port, spec).await {
        Ok(observed) => observed,
        Err(error) => return executor::deletion_failed(&error),
    };
    let planned = cleanup::plan(&CleanupInput {
        spec,
        global: observed.global.as_ref(),
        cluster: observed.cluster.as_ref(),
        instances: &observed.instances,
    });
    executor::delete(planned, port).await
}

impl DeletionStep for CleanupAction {
    type Port = dyn AuroraPort;

    async fn carry_out(&self, port: &Self::Port) -> Result<(), CloudError> {
        match self {
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
                    deletion_protection: Some(false),
                    ..ModifyClusterRequest::default()
                })
                .await
                .map(drop),
            CleanupAction::DeleteCluster { request } => port.delete_cluster(request).await,
        }
    }
}
