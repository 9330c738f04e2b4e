//! The Aurora port on aws-sdk-rds (and CloudWatch for the lag): requests
//! built from the port's plain structs, answers mapped back, errors
//! classified. No decision is taken here.

use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_rds::types::{self as rds, Filter, Tag};
use k8s_openapi::jiff::Timestamp;

use crate::cloud::aurora::port::{
    AuroraPort, Cluster, CreateClusterRequest, CreateGlobalClusterRequest, CreateInstanceRequest,
    DESCRIBE_PAGE, DeleteClusterRequest, GlobalCluster, GlobalFailoverState, GlobalMember,
    Instance, ModifyClusterRequest, ModifyGlobalClusterRequest, ModifyInstanceRequest,
    RegionInstance, SubnetGroup, Tags, oldest_first,
};
use crate::cloud::{CloudError, arn_region};

use super::cloudwatch;
use super::error::{classify, missing};
use super::status::{ClusterStatus, GlobalClusterStatus, GlobalFailoverStatus, InstanceStatus};
use super::{text, timestamp};

/// The Aurora API of one region.
#[derive(Clone, Debug)]
pub struct RdsAurora {
    region: String,
    rds: aws_sdk_rds::Client,
    cloudwatch: aws_sdk_cloudwatch::Client,
}

impl RdsAurora {
    /// Both clients must be configured for `region`.
    pub fn new(
        region: &str,
        rds: aws_sdk_rds::Client,
        cloudwatch: aws_sdk_cloudwatch::Client,
    ) -> Self {
        Self {
            region: region.to_string(),
            rds,
            cloudwatch,
        }
    }
}

tag_conversions!(Tag);

/// `DBCluster.GlobalClusterIdentifier` is the identifier; accept an ARN too
/// (`…:global-cluster:<id>`), as some emulators and older answers give it.
fn global_id(value: &str) -> String {
    value
        .rsplit_once(":global-cluster:")
        .map_or(value, |(_, id)| id)
        .to_string()
}

fn global_cluster(g: &rds::GlobalCluster) -> GlobalCluster {
    GlobalCluster {
        id: text(g.global_cluster_identifier()),
        arn: text(g.global_cluster_arn()),
        status: GlobalClusterStatus::parse(g.status().unwrap_or_default()),
        engine: text(g.engine()),
        engine_version: text(g.engine_version()),
        members: g
            .global_cluster_members()
            .iter()
            .map(|m| {
                let arn = text(m.db_cluster_arn());
                GlobalMember {
                    region: arn_region(&arn).unwrap_or_default().to_string(),
                    cluster_arn: arn,
                    is_writer: m.is_writer().unwrap_or(false),
                }
            })
            .collect(),
        deletion_protection: g.deletion_protection().unwrap_or(false),
        endpoint: g.endpoint().map(str::to_string),
        failover: g.failover_state().map(|f| GlobalFailoverState {
            status: GlobalFailoverStatus::parse(f.status().map_or("", |s| s.as_str())),
            from_cluster_arn: text(f.from_db_cluster_arn()),
            to_cluster_arn: text(f.to_db_cluster_arn()),
            allow_data_loss: f.is_data_loss_allowed().unwrap_or(false),
        }),
    }
}

fn cluster(c: &rds::DbCluster) -> Cluster {
    Cluster {
        id: text(c.db_cluster_identifier()),
        arn: text(c.db_cluster_arn()),
        status: ClusterStatus::parse(c.status().unwrap_or_default()),
        engine: text(c.engine()),
        engine_version: text(c.engine_version()),
        writer_endpoint: c.endpoint().map(str::to_string),
        reader_endpoint: c.reader_endpoint().map(str::to_string),
        kms_key_id: c.kms_key_id().map(str::to_string),
        storage_encrypted: c.storage_encrypted().unwrap_or(false),
        deletion_protection: c.deletion_protection().unwrap_or(false),
        tags: from_tags(c.tag_list()),
        global_cluster_id: c
            .global_cluster_identifier()
            .filter(|g| !g.is_empty())
            .map(global_id),
        members: c
            .db_cluster_members()
            .iter()
            .filter_map(|m| m.db_instance_identifier().map(str::to_string))
            .collect(),
        writer: c
            .db_cluster_members()
            .iter()
            .find(|m| m.is_cluster_writer() == Some(true))
            .and_then(|m| m.db_instance_identifier().map(str::to_string)),
        created_at: c.cluster_create_time().and_then(timestamp),
        subnet_group: c.db_subnet_group().map(str::to_string),
        security_group_ids: {
            let mut ids: Vec<String> = c
                .vpc_security_groups()
                .iter()
                .filter_map(|g| g.vpc_security_group_id().map(str::to_string))
                .collect();
            ids.sort();
            ids
        },
        parameter_group: c.db_cluster_parameter_group().map(str::to_string),
        port: c.port(),
    }
}

fn instance(i: &rds::DbInstance, is_writer: bool) -> Instance {
    Instance {
        id: text(i.db_instance_identifier()),
        arn: text(i.db_instance_arn()),
        status: InstanceStatus::parse(i.db_instance_status().unwrap_or_default()),
        class: text(i.db_instance_class()),
        is_writer,
        tags: from_tags(i.tag_list()),
        parameter_group: i
            .db_parameter_groups()
            .first()
            .and_then(|g| g.db_parameter_group_name())
            .map(str::to_string),
    }
}

impl RdsAurora {
    fn classify<E>(&self, error: aws_sdk_rds::error::SdkError<E>) -> CloudError
    where
        E: aws_sdk_rds::error::ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        classify(&self.region, error)
    }

    async fn describe_db_cluster(&self, id: &str) -> Result<Option<rds::DbCluster>, CloudError> {
        match self
            .rds
            .describe_db_clusters()
            .db_cluster_identifier(id)
            .send()
            .await
        {
            Ok(output) => Ok(output
                .db_clusters()
                .iter()
                .find(|c| c.db_cluster_identifier() == Some(id))
                .cloned()),
            Err(error) => match self.classify(error) {
                e if e.is_not_found() => Ok(None),
                e => Err(e),
            },
        }
    }
}

#[async_trait]
impl AuroraPort for RdsAurora {
    fn region(&self) -> &str {
        &self.region
    }

    async fn describe_global_cluster(&self, id: &str) -> Result<Option<GlobalCluster>, CloudError> {
        match self
            .rds
            .describe_global_clusters()
            .global_cluster_identifier(id)
            .send()
            .await
        {
            // Only the named one: an answer listing others (as some
            // emulators give) must not be taken for it.
            Ok(output) => Ok(output
                .global_clusters()
                .iter()
                .find(|g| g.global_cluster_identifier() == Some(id))
                .map(global_cluster)),
            Err(error) => match self.classify(error) {
                e if e.is_not_found() => Ok(None),
                e => Err(e),
            },
        }
    }

    async fn create_global_cluster(
        &self,
        request: &CreateGlobalClusterRequest,
    ) -> Result<GlobalCluster, CloudError> {
        let output = self
            .rds
            .create_global_cluster()
            .global_cluster_identifier(&request.global_cluster_id)
            .source_db_cluster_identifier(&request.source_cluster_arn)
            .deletion_protection(request.deletion_protection)
            .set_tags(Some(to_tags(&request.tags)))
            .send()
            .await
            .map_err(|e| self.classify(e))?;
        output
            .global_cluster()
            .map(global_cluster)
            .ok_or_else(|| missing("global cluster"))
    }

    async fn modify_global_cluster(
        &self,
        request: &ModifyGlobalClusterRequest,
    ) -> Result<GlobalCluster, CloudError> {
        let mut call = self
            .rds
            .modify_global_cluster()
            .global_cluster_identifier(&request.global_cluster_id)
            .set_deletion_protection(request.deletion_protection)
            .set_engine_version(request.engine_version.clone());
        if request.allow_major_version_upgrade {
            call = call.allow_major_version_upgrade(true);
        }
        let output = call.send().await.map_err(|e| self.classify(e))?;
        output
            .global_cluster()
            .map(global_cluster)
            .ok_or_else(|| missing("global cluster"))
    }

    async fn delete_global_cluster(&self, id: &str) -> Result<(), CloudError> {
        self.rds
            .delete_global_cluster()
            .global_cluster_identifier(id)
            .send()
            .await
            .map(drop)
            .map_err(|e| self.classify(e))
    }

    async fn remove_from_global_cluster(
        &self,
        global_cluster_id: &str,
        cluster_arn: &str,
    ) -> Result<(), CloudError> {
        self.rds
            .remove_from_global_cluster()
            .global_cluster_identifier(global_cluster_id)
            .db_cluster_identifier(cluster_arn)
            .send()
            .await
            .map(drop)
            .map_err(|e| self.classify(e))
    }

    async fn failover_global_cluster(
        &self,
        global_cluster_id: &str,
        target_cluster_arn: &str,
        allow_data_loss: bool,
    ) -> Result<(), CloudError> {
        let call = self
            .rds
            .failover_global_cluster()
            .global_cluster_identifier(global_cluster_id)
            .target_db_cluster_identifier(target_cluster_arn);
        // AWS takes exactly one of the two; saying which is clearer than
        // relying on the default (a switchover).
        let call = if allow_data_loss {
            call.allow_data_loss(true)
        } else {
            call.switchover(true)
        };
        call.send().await.map(drop).map_err(|e| self.classify(e))
    }

    async fn switchover_global_cluster(
        &self,
        global_cluster_id: &str,
        target_cluster_arn: &str,
    ) -> Result<(), CloudError> {
        self.rds
            .switchover_global_cluster()
            .global_cluster_identifier(global_cluster_id)
            .target_db_cluster_identifier(target_cluster_arn)
            .send()
            .await
            .map(drop)
            .map_err(|e| self.classify(e))
    }

    async fn describe_cluster(&self, id: &str) -> Result<Option<Cluster>, CloudError> {
        Ok(self.describe_db_cluster(id).await?.as_ref().map(cluster))
    }

    async fn describe_global_clusters(&self) -> Result<Vec<GlobalCluster>, CloudError> {
        let mut pages = self
            .rds
            .describe_global_clusters()
            .max_records(DESCRIBE_PAGE as i32)
            .into_paginator()
            .send();
        let mut globals = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| self.classify(e))?;
            globals.extend(page.global_clusters().iter().map(global_cluster));
        }
        Ok(globals)
    }

    async fn describe_clusters(&self) -> Result<Vec<Cluster>, CloudError> {
        let mut pages = self
            .rds
            .describe_db_clusters()
            .max_records(DESCRIBE_PAGE as i32)
            .into_paginator()
            .send();
        let mut clusters = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| self.classify(e))?;
            clusters.extend(page.db_clusters().iter().map(cluster));
        }
        Ok(clusters)
    }

    async fn create_cluster(&self, request: &CreateClusterRequest) -> Result<Cluster, CloudError> {
        let mut call = self
            .rds
            .create_db_cluster()
            .db_cluster_identifier(&request.cluster_id)
            .engine(&request.engine)
            .engine_version(&request.engine_version)
            .storage_encrypted(request.storage_encrypted)
            .set_kms_key_id(request.kms_key_id.clone())
            .deletion_protection(request.deletion_protection)
            .set_global_cluster_identifier(request.global_cluster_id.clone())
            .set_master_username(request.master_username.clone())
            .set_master_user_password(
                request
                    .master_user_password
                    .as_ref()
                    .map(|p| p.expose().to_string()),
            )
            .set_db_subnet_group_name(request.subnet_group_name.clone())
            .set_port(request.port)
            .set_db_cluster_parameter_group_name(request.parameter_group_name.clone())
            .set_tags(Some(to_tags(&request.tags)));
        if !request.security_group_ids.is_empty() {
            call = call.set_vpc_security_group_ids(Some(request.security_group_ids.clone()));
        }
        let output = call.send().await.map_err(|e| self.classify(e))?;
        output
            .db_cluster()
            .map(cluster)
            .ok_or_else(|| missing("DB cluster"))
    }

    async fn modify_cluster(&self, request: &ModifyClusterRequest) -> Result<Cluster, CloudError> {
        let output = self
            .rds
            .modify_db_cluster()
            .db_cluster_identifier(&request.cluster_id)
            // Otherwise AWS waits for the maintenance window and the plan
            // would see no effect for days.
            .apply_immediately(true)
            .set_engine_version(request.engine_version.clone())
            .set_deletion_protection(request.deletion_protection)
            .set_vpc_security_group_ids(request.security_group_ids.clone())
            .set_db_cluster_parameter_group_name(request.parameter_group_name.clone())
            .send()
            .await
            .map_err(|e| self.classify(e))?;
        output
            .db_cluster()
            .map(cluster)
            .ok_or_else(|| missing("DB cluster"))
    }

    async fn delete_cluster(&self, request: &DeleteClusterRequest) -> Result<(), CloudError> {
        self.rds
            .delete_db_cluster()
            .db_cluster_identifier(&request.cluster_id)
            .skip_final_snapshot(request.skip_final_snapshot)
            .set_final_db_snapshot_identifier(request.final_snapshot_id.clone())
            .send()
            .await
            .map(drop)
            .map_err(|e| self.classify(e))
    }

    async fn add_tags(&self, resource_arn: &str, tags: &Tags) -> Result<(), CloudError> {
        self.rds
            .add_tags_to_resource()
            .resource_name(resource_arn)
            .set_tags(Some(to_tags(tags)))
            .send()
            .await
            .map(drop)
            .map_err(|e| self.classify(e))
    }

    async fn list_instances(&self, cluster_id: &str) -> Result<Vec<Instance>, CloudError> {
        // The writer flag lives on the cluster (`DBClusterMembers`), not on
        // the instance.
        let Some(db_cluster) = self.describe_db_cluster(cluster_id).await? else {
            return Ok(Vec::new());
        };
        let writers: Vec<&str> = db_cluster
            .db_cluster_members()
            .iter()
            .filter(|m| m.is_cluster_writer() == Some(true))
            .filter_map(|m| m.db_instance_identifier())
            .collect();
        let found: Vec<rds::DbInstance> = self
            .rds
            .describe_db_instances()
            .filters(
                Filter::builder()
                    .name("db-cluster-id")
                    .values(cluster_id)
                    .build(),
            )
            .into_paginator()
            .items()
            .send()
            .collect::<Result<Vec<_>, _>>()
            .await
            .map_err(|e| self.classify(e))?;
        let mut instances: Vec<(Option<Timestamp>, Instance)> = found
            .iter()
            .filter(|i| i.db_cluster_identifier() == Some(cluster_id))
            .map(|i| {
                let id = i.db_instance_identifier().unwrap_or_default();
                (
                    i.instance_create_time().and_then(timestamp),
                    instance(i, writers.contains(&id)),
                )
            })
            .collect();
        oldest_first(&mut instances, |i| &i.id);
        Ok(instances.into_iter().map(|(_, i)| i).collect())
    }

    async fn describe_instances(&self) -> Result<Vec<RegionInstance>, CloudError> {
        let mut pages = self
            .rds
            .describe_db_instances()
            .max_records(DESCRIBE_PAGE as i32)
            .into_paginator()
            .send();
        let mut instances = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| self.classify(e))?;
            instances.extend(
                page.db_instances()
                    .iter()
                    // Aurora's instances only: a region also holds others.
                    .filter_map(|i| {
                        let cluster_id = i.db_cluster_identifier()?.to_string();
                        Some((
                            i.instance_create_time().and_then(timestamp),
                            RegionInstance {
                                cluster_id,
                                instance: instance(i, false),
                            },
                        ))
                    }),
            );
        }
        oldest_first(&mut instances, |i| &i.instance.id);
        Ok(instances.into_iter().map(|(_, i)| i).collect())
    }

    async fn create_instance(
        &self,
        request: &CreateInstanceRequest,
    ) -> Result<Instance, CloudError> {
        let output = self
            .rds
            .create_db_instance()
            .db_instance_identifier(&request.instance_id)
            .db_cluster_identifier(&request.cluster_id)
            .db_instance_class(&request.class)
            .engine(&request.engine)
            .set_db_parameter_group_name(request.parameter_group_name.clone())
            // Never reachable from the internet, whichever VPC it is in.
            .publicly_accessible(false)
            .set_tags(Some(to_tags(&request.tags)))
            .send()
            .await
            .map_err(|e| self.classify(e))?;
        // The writer role is known once the instance is up; the next
        // `list_instances` reports it.
        output
            .db_instance()
            .map(|i| instance(i, false))
            .ok_or_else(|| missing("DB instance"))
    }

    async fn delete_instance(&self, instance_id: &str) -> Result<(), CloudError> {
        self.rds
            .delete_db_instance()
            .db_instance_identifier(instance_id)
            .send()
            .await
            .map(drop)
            .map_err(|e| self.classify(e))
    }

    async fn modify_instance(&self, request: &ModifyInstanceRequest) -> Result<(), CloudError> {
        self.rds
            .modify_db_instance()
            .db_instance_identifier(&request.instance_id)
            .apply_immediately(true)
            .set_db_parameter_group_name(request.parameter_group_name.clone())
            .send()
            .await
            .map(drop)
            .map_err(|e| self.classify(e))
    }

    async fn describe_subnet_group(&self, name: &str) -> Result<Option<SubnetGroup>, CloudError> {
        match self
            .rds
            .describe_db_subnet_groups()
            .db_subnet_group_name(name)
            .send()
            .await
        {
            Ok(output) => Ok(output
                .db_subnet_groups()
                .iter()
                .find(|g| g.db_subnet_group_name() == Some(name))
                .map(|g| SubnetGroup {
                    name: name.to_string(),
                    vpc_id: g.vpc_id().map(str::to_string),
                })),
            // A create naming it would be the spec's fault; a lookup that
            // finds nothing is an answer.
            Err(error) => match self.classify(error) {
                e if e.code() == "DBSubnetGroupNotFoundFault" => Ok(None),
                e => Err(e),
            },
        }
    }

    async fn default_engine_version(
        &self,
        engine: &str,
        major: &str,
    ) -> Result<Option<String>, CloudError> {
        let output = self
            .rds
            .describe_db_engine_versions()
            .engine(engine)
            .engine_version(major)
            .default_only(true)
            .send()
            .await
            .map_err(|e| self.classify(e))?;
        Ok(output
            .db_engine_versions()
            .iter()
            .filter_map(|v| v.engine_version())
            .find(|v| v.split('.').next() == Some(major))
            .map(str::to_string))
    }

    async fn replication_lag(
        &self,
        cluster_id: &str,
        now: Timestamp,
    ) -> Result<Option<Duration>, CloudError> {
        cloudwatch::replication_lag(
            &self.cloudwatch,
            &self.region,
            &cloudwatch::AURORA_LAG,
            &[cluster_id.to_string()],
            now,
        )
        .await
    }

    async fn replication_lags(
        &self,
        cluster_ids: &[String],
        now: Timestamp,
    ) -> Result<std::collections::BTreeMap<String, Option<Duration>>, CloudError> {
        let lags = cloudwatch::replication_lags(
            &self.cloudwatch,
            &self.region,
            &cloudwatch::AURORA_LAG,
            cluster_ids,
            now,
        )
        .await?;
        Ok(cluster_ids.iter().cloned().zip(lags).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The IAM actions behind every call above (`docs/aws-iam.md` explains
    /// each one).
    const IAM_ACTIONS: &[&str] = &[
        "rds:DescribeGlobalClusters",
        "rds:CreateGlobalCluster",
        "rds:ModifyGlobalCluster",
        "rds:DeleteGlobalCluster",
        "rds:RemoveFromGlobalCluster",
        "rds:FailoverGlobalCluster",
        "rds:SwitchoverGlobalCluster",
        "rds:DescribeDBClusters",
        "rds:CreateDBCluster",
        "rds:ModifyDBCluster",
        "rds:DeleteDBCluster",
        "rds:CreateDBClusterSnapshot",
        "rds:AddTagsToResource",
        "rds:DescribeDBInstances",
        "rds:CreateDBInstance",
        "rds:ModifyDBInstance",
        "rds:DeleteDBInstance",
        "rds:DescribeDBSubnetGroups",
        "rds:DescribeDBEngineVersions",
        "cloudwatch:GetMetricData",
    ];

    #[test]
    fn every_rds_call_of_the_adapter_has_its_iam_action() {
        crate::cloud::aws::assert_calls_are_granted(include_str!("rds.rs"), "rds", IAM_ACTIONS);
    }

    #[test]
    fn the_documented_iam_policy_grants_exactly_the_aurora_calls() {
        let granted = crate::cloud::aws::documented_actions("AuroraRead", &["rds:", "cloudwatch:"]);
        let used: std::collections::BTreeSet<String> =
            IAM_ACTIONS.iter().map(|a| a.to_string()).collect();
        assert_eq!(granted, used, "granted vs used");
    }

    #[test]
    fn a_global_cluster_identifier_given_as_an_arn_is_read_as_the_identifier() {
        assert_eq!(global_id("acme-global"), "acme-global");
        assert_eq!(
            global_id("arn:aws:rds::123456789012:global-cluster:acme-global"),
            "acme-global"
        );
    }

    #[test]
    fn tags_round_trip_and_keyless_tags_are_dropped() {
        let tags = Tags::from([("shopfleet.io/shop".to_string(), "acme".to_string())]);
        assert_eq!(from_tags(&to_tags(&tags)), tags);
        assert_eq!(from_tags(&[Tag::builder().value("x").build()]), Tags::new());
    }

    #[test]
    fn global_members_carry_the_region_of_their_arn() {
        let g = rds::GlobalCluster::builder()
            .global_cluster_identifier("acme-global")
            .global_cluster_members(
                rds::GlobalClusterMember::builder()
                    .db_cluster_arn("arn:aws:rds:eu-west-1:123456789012:cluster:acme-eu-west-1")
                    .is_writer(true)
                    .build(),
            )
            .failover_state(
                rds::FailoverState::builder()
                    .status(rds::FailoverStatus::FailingOver)
                    .from_db_cluster_arn("a")
                    .to_db_cluster_arn("b")
                    .is_data_loss_allowed(true)
                    .build(),
            )
            .build();
        let mapped = global_cluster(&g);
        assert_eq!(mapped.members[0].region, "eu-west-1");
        assert!(mapped.members[0].is_writer);
        let failover = mapped.failover.unwrap();
        assert_eq!(failover.status, GlobalFailoverStatus::FailingOver);
        assert!(failover.allow_data_loss);
        assert!(!mapped.deletion_protection);
    }
}
