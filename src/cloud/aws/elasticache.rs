//! The ElastiCache port on aws-sdk-elasticache (and CloudWatch for the
//! lag): requests built from the port's plain structs, answers mapped back,
//! errors classified. No decision is taken here.
//!
//! The Redis AUTH token leaves the port's
//! [`AuthToken`](crate::cloud::elasticache::AuthToken) only as the
//! `AuthToken` parameter of CreateReplicationGroup. Nothing here logs, and
//! AWS never echoes the token, so it cannot come back in an error either.
//! The SDK itself prints whole request bodies in its `trace` events; the
//! operator's logging drops those events
//! ([`crate::telemetry::without_request_bodies`]).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_elasticache::types::{self as ec, AuthTokenUpdateStrategyType, ClusterMode, Tag};
use k8s_openapi::jiff::Timestamp;

use crate::cloud::CloudError;
use crate::cloud::elasticache::port::{
    AuthTokenUpdateStrategy, CreateGlobalReplicationGroupRequest, CreateReplicationGroupRequest,
    DeleteReplicationGroupRequest, ElastiCachePort, Endpoint, GlobalReplicationGroup,
    GlobalReplicationGroupInfo, GlobalReplicationGroupMember, ModifyReplicationGroupRequest,
    NodeGroup, NodeGroupMember, ReplicationGroup, Tags,
};

use super::cloudwatch;
use super::error::{classify, missing};
use super::status::{
    AutomaticFailoverStatus, GlobalMemberStatus, GlobalReplicationGroupStatus, NodeRole,
    ReplicationGroupStatus,
};
use super::{text, timestamp};

/// The ElastiCache API of one region.
#[derive(Clone, Debug)]
pub struct AwsElastiCache {
    region: String,
    elasticache: aws_sdk_elasticache::Client,
    cloudwatch: aws_sdk_cloudwatch::Client,
}

impl AwsElastiCache {
    /// Both clients must be configured for `region`.
    pub fn new(
        region: &str,
        elasticache: aws_sdk_elasticache::Client,
        cloudwatch: aws_sdk_cloudwatch::Client,
    ) -> Self {
        Self {
            region: region.to_string(),
            elasticache,
            cloudwatch,
        }
    }
}

tag_conversions!(Tag);

/// AWS writes roles `PRIMARY`/`SECONDARY` in Global Datastore members and
/// `primary`/`secondary` in a replication group's
/// `GlobalReplicationGroupInfo`.
fn is_primary_role(role: Option<&str>) -> bool {
    role.is_some_and(|r| r.eq_ignore_ascii_case("primary"))
}

fn endpoint(e: &ec::Endpoint) -> Option<Endpoint> {
    Some(Endpoint {
        address: e.address().filter(|a| !a.is_empty())?.to_string(),
        port: u16::try_from(e.port()?).ok()?,
    })
}

fn global_replication_group(g: &ec::GlobalReplicationGroup) -> GlobalReplicationGroup {
    GlobalReplicationGroup {
        id: text(g.global_replication_group_id()),
        arn: text(g.arn()),
        description: g.global_replication_group_description().map(str::to_string),
        status: GlobalReplicationGroupStatus::parse(g.status().unwrap_or_default()),
        cache_node_type: text(g.cache_node_type()),
        engine: text(g.engine()),
        engine_version: text(g.engine_version()),
        cluster_enabled: g.cluster_enabled().unwrap_or(false),
        // A Global Datastore has at least one shard, listed or not.
        num_node_groups: u16::try_from(g.global_node_groups().len().max(1)).unwrap_or(u16::MAX),
        auth_token_enabled: g.auth_token_enabled().unwrap_or(false),
        transit_encryption_enabled: g.transit_encryption_enabled().unwrap_or(false),
        at_rest_encryption_enabled: g.at_rest_encryption_enabled().unwrap_or(false),
        members: g
            .members()
            .iter()
            .map(|m| GlobalReplicationGroupMember {
                replication_group_id: text(m.replication_group_id()),
                region: text(m.replication_group_region()),
                is_primary: is_primary_role(m.role()),
                status: GlobalMemberStatus::parse(m.status().unwrap_or_default()),
                automatic_failover: AutomaticFailoverStatus::parse(
                    m.automatic_failover().map_or("", |a| a.as_str()),
                ),
            })
            .collect(),
    }
}

fn node_group(g: &ec::NodeGroup) -> NodeGroup {
    NodeGroup {
        id: text(g.node_group_id()),
        status: ReplicationGroupStatus::parse(g.status().unwrap_or_default()),
        primary_endpoint: g.primary_endpoint().and_then(endpoint),
        reader_endpoint: g.reader_endpoint().and_then(endpoint),
        members: g
            .node_group_members()
            .iter()
            .map(|m| NodeGroupMember {
                cache_cluster_id: text(m.cache_cluster_id()),
                current_role: m.current_role().map(NodeRole::parse),
            })
            .collect(),
    }
}

fn replication_group(g: &ec::ReplicationGroup) -> ReplicationGroup {
    ReplicationGroup {
        id: text(g.replication_group_id()),
        arn: text(g.arn()),
        description: text(g.description()),
        status: ReplicationGroupStatus::parse(g.status().unwrap_or_default()),
        engine: text(g.engine()),
        cache_node_type: text(g.cache_node_type()),
        cluster_enabled: g.cluster_enabled().unwrap_or(false),
        node_groups: g.node_groups().iter().map(node_group).collect(),
        configuration_endpoint: g.configuration_endpoint().and_then(endpoint),
        automatic_failover: AutomaticFailoverStatus::parse(
            g.automatic_failover().map_or("", |a| a.as_str()),
        ),
        multi_az: g.multi_az() == Some(&ec::MultiAzStatus::Enabled),
        auth_token_enabled: g.auth_token_enabled().unwrap_or(false),
        transit_encryption_enabled: g.transit_encryption_enabled().unwrap_or(false),
        at_rest_encryption_enabled: g.at_rest_encryption_enabled().unwrap_or(false),
        // A standalone group may come with an empty info block.
        global_replication_group: g.global_replication_group_info().and_then(|info| {
            Some(GlobalReplicationGroupInfo {
                global_replication_group_id: info
                    .global_replication_group_id()
                    .filter(|id| !id.is_empty())?
                    .to_string(),
                is_primary: is_primary_role(info.global_replication_group_member_role()),
            })
        }),
        created_at: g.replication_group_create_time().and_then(timestamp),
    }
}

/// The cache clusters of a replication group (one per node), as CloudWatch
/// names them in the `CacheClusterId` dimension.
fn member_clusters(g: &ec::ReplicationGroup) -> Vec<String> {
    let listed = g.member_clusters().iter().map(String::as_str);
    let in_shards = g
        .node_groups()
        .iter()
        .flat_map(|n| n.node_group_members())
        .filter_map(|m| m.cache_cluster_id());
    listed
        .chain(in_shards)
        .filter(|id| !id.is_empty())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .map(str::to_string)
        .collect()
}

fn group_not_found(id: &str) -> CloudError {
    CloudError::not_found(
        "ReplicationGroupNotFoundFault",
        format!("Replication group {id} not found."),
    )
}

impl AwsElastiCache {
    fn classify<E>(&self, error: aws_sdk_elasticache::error::SdkError<E>) -> CloudError
    where
        E: aws_sdk_elasticache::error::ProvideErrorMetadata
            + std::error::Error
            + Send
            + Sync
            + 'static,
    {
        classify(&self.region, error)
    }

    async fn describe_group(&self, id: &str) -> Result<Option<ec::ReplicationGroup>, CloudError> {
        match self
            .elasticache
            .describe_replication_groups()
            .replication_group_id(id)
            .send()
            .await
        {
            // Only the named one: an answer listing others must not be
            // taken for it.
            Ok(output) => Ok(output
                .replication_groups()
                .iter()
                .find(|g| g.replication_group_id() == Some(id))
                .cloned()),
            Err(error) => match self.classify(error) {
                e if e.is_not_found() => Ok(None),
                e => Err(e),
            },
        }
    }
}

#[async_trait]
impl ElastiCachePort for AwsElastiCache {
    fn region(&self) -> &str {
        &self.region
    }

    async fn describe_global_replication_groups(
        &self,
        id: Option<&str>,
    ) -> Result<Vec<GlobalReplicationGroup>, CloudError> {
        let found: Result<Vec<ec::GlobalReplicationGroup>, _> = self
            .elasticache
            .describe_global_replication_groups()
            .set_global_replication_group_id(id.map(str::to_string))
            .show_member_info(true)
            .into_paginator()
            .items()
            .send()
            .collect()
            .await;
        match found {
            Ok(groups) => Ok(groups
                .iter()
                .filter(|g| id.is_none_or(|id| g.global_replication_group_id() == Some(id)))
                .map(global_replication_group)
                .collect()),
            Err(error) => match self.classify(error) {
                e if e.is_not_found() && id.is_some() => Ok(Vec::new()),
                e => Err(e),
            },
        }
    }

    async fn create_global_replication_group(
        &self,
        request: &CreateGlobalReplicationGroupRequest,
    ) -> Result<GlobalReplicationGroup, CloudError> {
        let output = self
            .elasticache
            .create_global_replication_group()
            .global_replication_group_id_suffix(&request.suffix)
            .global_replication_group_description(&request.description)
            .primary_replication_group_id(&request.primary_replication_group_id)
            .set_tags(Some(to_tags(&request.tags)))
            .send()
            .await
            .map_err(|e| self.classify(e))?;
        output
            .global_replication_group()
            .map(global_replication_group)
            .ok_or_else(|| missing("global replication group"))
    }

    async fn delete_global_replication_group(&self, id: &str) -> Result<(), CloudError> {
        self.elasticache
            .delete_global_replication_group()
            .global_replication_group_id(id)
            .retain_primary_replication_group(true)
            .send()
            .await
            .map(drop)
            .map_err(|e| self.classify(e))
    }

    async fn disassociate_global_replication_group(
        &self,
        global_replication_group_id: &str,
        replication_group_id: &str,
        replication_group_region: &str,
    ) -> Result<(), CloudError> {
        self.elasticache
            .disassociate_global_replication_group()
            .global_replication_group_id(global_replication_group_id)
            .replication_group_id(replication_group_id)
            .replication_group_region(replication_group_region)
            .send()
            .await
            .map(drop)
            .map_err(|e| self.classify(e))
    }

    async fn failover_global_replication_group(
        &self,
        global_replication_group_id: &str,
        primary_region: &str,
        primary_replication_group_id: &str,
    ) -> Result<(), CloudError> {
        self.elasticache
            .failover_global_replication_group()
            .global_replication_group_id(global_replication_group_id)
            .primary_region(primary_region)
            .primary_replication_group_id(primary_replication_group_id)
            .send()
            .await
            .map(drop)
            .map_err(|e| self.classify(e))
    }

    async fn node_security_groups(
        &self,
        cache_cluster_id: &str,
    ) -> Result<Vec<String>, CloudError> {
        let output = self
            .elasticache
            .describe_cache_clusters()
            .cache_cluster_id(cache_cluster_id)
            .send()
            .await
            .map_err(|e| self.classify(e))?;
        let mut ids: Vec<String> = output
            .cache_clusters()
            .iter()
            .flat_map(|c| c.security_groups())
            .filter_map(|g| g.security_group_id().map(str::to_string))
            .collect();
        ids.sort();
        ids.dedup();
        Ok(ids)
    }

    async fn cache_subnet_group_exists(&self, name: &str) -> Result<bool, CloudError> {
        match self
            .elasticache
            .describe_cache_subnet_groups()
            .cache_subnet_group_name(name)
            .send()
            .await
        {
            Ok(output) => Ok(output
                .cache_subnet_groups()
                .iter()
                .any(|g| g.cache_subnet_group_name() == Some(name))),
            // A create naming it would be the spec's fault; a lookup that
            // finds nothing is an answer.
            Err(error) => match self.classify(error) {
                e if e.code() == "CacheSubnetGroupNotFoundFault" => Ok(false),
                e => Err(e),
            },
        }
    }

    async fn describe_replication_group(
        &self,
        id: &str,
    ) -> Result<Option<ReplicationGroup>, CloudError> {
        Ok(self
            .describe_group(id)
            .await?
            .as_ref()
            .map(replication_group))
    }

    async fn describe_replication_groups(&self) -> Result<Vec<ReplicationGroup>, CloudError> {
        let mut pages = self
            .elasticache
            .describe_replication_groups()
            .max_records(crate::cloud::aurora::port::DESCRIBE_PAGE as i32)
            .into_paginator()
            .send();
        let mut groups = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| self.classify(e))?;
            groups.extend(page.replication_groups().iter().map(replication_group));
        }
        Ok(groups)
    }

    async fn create_replication_group(
        &self,
        request: &CreateReplicationGroupRequest,
    ) -> Result<ReplicationGroup, CloudError> {
        let output = self
            .elasticache
            .create_replication_group()
            .replication_group_id(&request.replication_group_id)
            .replication_group_description(&request.description)
            .set_global_replication_group_id(request.global_replication_group_id.clone())
            .set_engine(request.engine.clone())
            .set_engine_version(request.engine_version.clone())
            .set_cache_node_type(request.cache_node_type.clone())
            .set_num_node_groups(request.num_node_groups.map(i32::from))
            .set_cluster_mode(request.cluster_mode_enabled.map(|on| {
                if on {
                    ClusterMode::Enabled
                } else {
                    ClusterMode::Disabled
                }
            }))
            .replicas_per_node_group(i32::from(request.replicas_per_node_group))
            .set_automatic_failover_enabled(request.automatic_failover_enabled)
            .set_multi_az_enabled(request.multi_az_enabled)
            .set_transit_encryption_enabled(request.transit_encryption_enabled)
            .set_at_rest_encryption_enabled(request.at_rest_encryption_enabled)
            .set_auth_token(request.auth_token.as_ref().map(|t| t.expose().to_string()))
            .set_cache_subnet_group_name(request.cache_subnet_group_name.clone())
            .set_security_group_ids(
                (!request.security_group_ids.is_empty())
                    .then(|| request.security_group_ids.clone()),
            )
            .set_cache_parameter_group_name(request.cache_parameter_group_name.clone())
            .set_kms_key_id(request.kms_key_id.clone())
            .set_tags(Some(to_tags(&request.tags)))
            .send()
            .await
            .map_err(|e| self.classify(e))?;
        output
            .replication_group()
            .map(replication_group)
            .ok_or_else(|| missing("replication group"))
    }

    async fn modify_replication_group(
        &self,
        request: &ModifyReplicationGroupRequest,
    ) -> Result<ReplicationGroup, CloudError> {
        let output = self
            .elasticache
            .modify_replication_group()
            .replication_group_id(&request.replication_group_id)
            // Otherwise AWS waits for the maintenance window and the plan
            // would see no effect for days.
            .apply_immediately(true)
            .set_automatic_failover_enabled(request.automatic_failover_enabled)
            .set_multi_az_enabled(request.multi_az_enabled)
            .set_security_group_ids(request.security_group_ids.clone())
            .set_auth_token(
                request
                    .auth_token
                    .as_ref()
                    .map(|(token, _)| token.expose().to_string()),
            )
            .set_auth_token_update_strategy(request.auth_token.as_ref().map(|(_, strategy)| {
                match strategy {
                    AuthTokenUpdateStrategy::Rotate => AuthTokenUpdateStrategyType::Rotate,
                    AuthTokenUpdateStrategy::Set => AuthTokenUpdateStrategyType::Set,
                }
            }))
            .send()
            .await
            .map_err(|e| self.classify(e))?;
        output
            .replication_group()
            .map(replication_group)
            .ok_or_else(|| missing("replication group"))
    }

    async fn delete_replication_group(
        &self,
        request: &DeleteReplicationGroupRequest,
    ) -> Result<(), CloudError> {
        self.elasticache
            .delete_replication_group()
            .replication_group_id(&request.replication_group_id)
            .set_final_snapshot_identifier(request.final_snapshot_id.clone())
            .send()
            .await
            .map(drop)
            .map_err(|e| self.classify(e))
    }

    async fn increase_replica_count(
        &self,
        replication_group_id: &str,
        new_replica_count: u8,
    ) -> Result<ReplicationGroup, CloudError> {
        let output = self
            .elasticache
            .increase_replica_count()
            .replication_group_id(replication_group_id)
            .new_replica_count(i32::from(new_replica_count))
            .apply_immediately(true)
            .send()
            .await
            .map_err(|e| self.classify(e))?;
        output
            .replication_group()
            .map(replication_group)
            .ok_or_else(|| missing("replication group"))
    }

    async fn decrease_replica_count(
        &self,
        replication_group_id: &str,
        new_replica_count: u8,
    ) -> Result<ReplicationGroup, CloudError> {
        let output = self
            .elasticache
            .decrease_replica_count()
            .replication_group_id(replication_group_id)
            .new_replica_count(i32::from(new_replica_count))
            .apply_immediately(true)
            .send()
            .await
            .map_err(|e| self.classify(e))?;
        output
            .replication_group()
            .map(replication_group)
            .ok_or_else(|| missing("replication group"))
    }

    async fn list_tags(&self, resource_arn: &str) -> Result<Tags, CloudError> {
        let output = self
            .elasticache
            .list_tags_for_resource()
            .resource_name(resource_arn)
            .send()
            .await
            .map_err(|e| self.classify(e))?;
        Ok(from_tags(output.tag_list()))
    }

    async fn add_tags(&self, resource_arn: &str, tags: &Tags) -> Result<(), CloudError> {
        self.elasticache
            .add_tags_to_resource()
            .resource_name(resource_arn)
            .set_tags(Some(to_tags(tags)))
            .send()
            .await
            .map(drop)
            .map_err(|e| self.classify(e))
    }

    async fn replication_lag(
        &self,
        replication_group_id: &str,
        now: Timestamp,
    ) -> Result<Option<Duration>, CloudError> {
        // The metric is per node: find the group's nodes first.
        let group = self
            .describe_group(replication_group_id)
            .await?
            .ok_or_else(|| group_not_found(replication_group_id))?;
        let clusters = member_clusters(&group);
        if clusters.is_empty() {
            return Ok(None);
        }
        cloudwatch::replication_lag(
            &self.cloudwatch,
            &self.region,
            &cloudwatch::ELASTICACHE_LAG,
            &clusters,
            now,
        )
        .await
    }

    async fn replication_lags(
        &self,
        groups: &[ReplicationGroup],
        now: Timestamp,
    ) -> Result<BTreeMap<String, Option<Duration>>, CloudError> {
        let sources: Vec<(usize, String)> = groups
            .iter()
            .enumerate()
            .flat_map(|(owner, g)| g.nodes().into_iter().map(move |node| (owner, node)))
            .collect();
        let lags = cloudwatch::replication_lags_of_owners(
            &self.cloudwatch,
            &self.region,
            &cloudwatch::ELASTICACHE_LAG,
            &sources,
            groups.len(),
            now,
        )
        .await?;
        Ok(groups.iter().map(|g| g.id.clone()).zip(lags).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The IAM actions behind every call above (`docs/aws-iam.md` explains
    /// each one).
    const IAM_ACTIONS: &[&str] = &[
        "elasticache:DescribeGlobalReplicationGroups",
        "elasticache:CreateGlobalReplicationGroup",
        "elasticache:DeleteGlobalReplicationGroup",
        "elasticache:DisassociateGlobalReplicationGroup",
        "elasticache:FailoverGlobalReplicationGroup",
        "elasticache:DescribeReplicationGroups",
        "elasticache:DescribeCacheSubnetGroups",
        "elasticache:DescribeCacheClusters",
        "elasticache:CreateReplicationGroup",
        "elasticache:ModifyReplicationGroup",
        "elasticache:DeleteReplicationGroup",
        "elasticache:CreateSnapshot",
        "elasticache:IncreaseReplicaCount",
        "elasticache:DecreaseReplicaCount",
        "elasticache:ListTagsForResource",
        "elasticache:AddTagsToResource",
        "cloudwatch:GetMetricData",
    ];

    #[test]
    fn every_elasticache_call_of_the_adapter_has_its_iam_action() {
        crate::cloud::aws::assert_calls_are_granted(
            include_str!("elasticache.rs"),
            "elasticache",
            IAM_ACTIONS,
        );
    }

    #[test]
    fn the_documented_iam_policy_grants_exactly_the_elasticache_calls() {
        let granted = crate::cloud::aws::documented_actions(
            "ElastiCacheRead",
            &["elasticache:", "cloudwatch:"],
        );
        let used: BTreeSet<String> = IAM_ACTIONS.iter().map(|a| a.to_string()).collect();
        assert_eq!(granted, used, "granted vs used");
    }

    #[test]
    fn member_roles_are_read_whatever_their_case() {
        assert!(is_primary_role(Some("PRIMARY")));
        assert!(is_primary_role(Some("primary")));
        assert!(!is_primary_role(Some("SECONDARY")));
        assert!(!is_primary_role(None));
    }

    #[test]
    fn an_endpoint_without_address_or_with_an_impossible_port_is_none() {
        let e = |address: Option<&str>, port: Option<i32>| {
            endpoint(
                &ec::Endpoint::builder()
                    .set_address(address.map(str::to_string))
                    .set_port(port)
                    .build(),
            )
        };
        assert_eq!(
            e(Some("master.acme.cache.amazonaws.com"), Some(6379)),
            Some(Endpoint {
                address: "master.acme.cache.amazonaws.com".into(),
                port: 6379
            })
        );
        assert_eq!(e(None, Some(6379)), None);
        assert_eq!(e(Some(""), Some(6379)), None);
        assert_eq!(e(Some("a"), Some(70_000)), None);
        assert_eq!(e(Some("a"), None), None);
    }

    #[test]
    fn the_lag_is_read_from_every_node_of_the_group_once() {
        let group = ec::ReplicationGroup::builder()
            .member_clusters("acme-eu-west-1-002")
            .member_clusters("acme-eu-west-1-001")
            .node_groups(
                ec::NodeGroup::builder()
                    .node_group_members(
                        ec::NodeGroupMember::builder()
                            .cache_cluster_id("acme-eu-west-1-001")
                            .build(),
                    )
                    // A node being added shows in its shard before the
                    // member list.
                    .node_group_members(
                        ec::NodeGroupMember::builder()
                            .cache_cluster_id("acme-eu-west-1-003")
                            .build(),
                    )
                    .build(),
            )
            .build();
        assert_eq!(
            member_clusters(&group),
            [
                "acme-eu-west-1-001",
                "acme-eu-west-1-002",
                "acme-eu-west-1-003"
            ]
        );
    }

    #[test]
    fn a_standalone_group_with_an_empty_global_info_block_is_not_in_a_global_datastore() {
        let group = ec::ReplicationGroup::builder()
            .replication_group_id("acme-us-east-1")
            .global_replication_group_info(ec::GlobalReplicationGroupInfo::builder().build())
            .build();
        assert_eq!(replication_group(&group).global_replication_group, None);
        let member = ec::ReplicationGroup::builder()
            .global_replication_group_info(
                ec::GlobalReplicationGroupInfo::builder()
                    .global_replication_group_id("ldgnf-acme")
                    .global_replication_group_member_role("primary")
                    .build(),
            )
            .build();
        assert_eq!(
            replication_group(&member).global_replication_group,
            Some(GlobalReplicationGroupInfo {
                global_replication_group_id: "ldgnf-acme".into(),
                is_primary: true,
            })
        );
    }

    #[test]
    fn a_global_datastore_has_at_least_one_shard() {
        let listed = ec::GlobalReplicationGroup::builder().build();
        assert_eq!(global_replication_group(&listed).num_node_groups, 1);
        let sharded = ec::GlobalReplicationGroup::builder()
            .cluster_enabled(true)
            .global_node_groups(ec::GlobalNodeGroup::builder().build())
            .global_node_groups(ec::GlobalNodeGroup::builder().build())
            .global_node_groups(ec::GlobalNodeGroup::builder().build())
            .build();
        assert_eq!(global_replication_group(&sharded).num_node_groups, 3);
    }
}
