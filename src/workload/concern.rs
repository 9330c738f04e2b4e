//! The workload as a concern of the reconcile pipeline: observe the
//! children → plan the writes (pure) → apply them → report
//! `status.orders` and `WorkloadReady`.

use kube::Client;
use tracing::info;

use super::apply::{
    ApplyReport, ChildNames, ChildStores, ObservedChildren, WorkloadPlan, apply_writes,
    plan_workload,
};
use super::builders::{
    WorkloadInputs, cache_primary_name, desired_children, topology_name, workload_name,
};
use super::capacity::{Capacity, plan_capacity};
use super::status::workload_status;
use super::topology::Topology;
use crate::api::ShopRegion;
use crate::concern::{AppliedRole, Concern, Publish, Report, StatusPart, Upstream};

/// One ShopRegion's workload in one reconcile: what the pods are told (the
/// topology from the cloud concerns' findings), the capacity model, and
/// whether this region absorbs a lost one.
pub struct Workload<'a> {
    pub client: &'a Client,
    pub children: &'a ChildStores,
    pub namespace: &'a str,
    pub region: &'a ShopRegion,
    pub topology: Topology,
    pub capacity: Capacity,
    pub absorbing: bool,
    /// Whether a cloud serves the database and the cache, so that the pods'
    /// endpoints will come: without one (the workload alone) nothing is
    /// waited for.
    pub cloud: bool,
}

impl<'a> Workload<'a> {
    /// The workload as the concerns before it leave it.
    pub fn after(
        client: &'a Client,
        children: &'a ChildStores,
        namespace: &'a str,
        region: &'a ShopRegion,
        upstream: &Upstream,
        cloud: bool,
    ) -> Self {
        let spec = &region.spec;
        Self {
            client,
            children,
            namespace,
            region,
            topology: Topology::of(
                spec,
                upstream.database.as_ref(),
                upstream.cache.as_ref(),
                upstream.aws_writer.as_deref(),
            ),
            capacity: plan_capacity(&spec.orders, spec.failover.order.len()),
            absorbing: upstream.absorbing,
            cloud,
        }
    }
}

impl Concern for Workload<'_> {
    type Observed = ObservedChildren;
    type Plan = WorkloadPlan;
    type Acted = ApplyReport;

    async fn observe(&self) -> Result<ObservedChildren, kube::Error> {
        let names = (
            topology_name(self.region),
            workload_name(self.region),
            cache_primary_name(self.region),
        );
        let names = ChildNames {
            topology: &names.0,
            workload: &names.1,
            cache_primary: &names.2,
        };
        Ok(self.children.observe(self.namespace, names))
    }

    fn plan(&self, observed: &ObservedChildren) -> WorkloadPlan {
        let published = observed.configmap.as_deref().and_then(|c| c.data.as_ref());
        let topology = self.topology.clone().or_last_known(published);
        let inputs = WorkloadInputs {
            region: self.region,
            topology: &topology,
            capacity: self.capacity,
            absorbing: self.absorbing,
            observed_replicas: observed.deployment.as_ref().and_then(|d| d.spec.replicas),
        };
        let waiting_for = if self.cloud {
            topology.missing_for_pods(&self.region.spec)
        } else {
            Vec::new()
        };
        plan_workload(&desired_children(&inputs), observed, waiting_for)
    }

    async fn act(
        &self,
        observed: ObservedChildren,
        plan: WorkloadPlan,
    ) -> Result<ApplyReport, kube::Error> {
        let mut report = apply_writes(self.client, self.namespace, &plan.writes, &observed).await?;
        if !report.applied.is_empty() || !report.deleted.is_empty() {
            info!(
                shopregion = %format!("{}/{}", self.namespace, self.region.metadata.name.as_deref().unwrap_or_default()),
                applied = ?report.applied,
                deleted = ?report.deleted,
                "workload children written"
            );
        }
        report.waiting_for = plan.waiting_for;
        Ok(report)
    }

    fn hand_on(&self, _acted: &ApplyReport, upstream: &mut Upstream) {
        upstream.applied = Some(AppliedRole {
            role: self.topology.role,
            writer_region: self.topology.writer_region.clone(),
        });
    }

    fn report(&self, acted: &ApplyReport, _upstream: &Upstream) -> Report {
        let (orders, condition) = workload_status(
            acted.deployment.as_deref(),
            &acted.waiting_for,
            &self.capacity,
            self.absorbing,
        );
        Report {
            readiness: Some(condition.clone()),
            condition,
            status: StatusPart::Workload {
                orders,
                role: self.topology.role,
                writer_region: self.topology.writer_region.clone(),
            },
            notes: Vec::new(),
            publish: Publish::AsActed,
            again: None,
            terminal: None,
        }
    }
}
