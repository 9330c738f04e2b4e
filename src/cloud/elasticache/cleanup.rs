//! The cache deletion plan, per `spec.cache.deletionPolicy`: a pure
//! function, one pass at a time, safe to resume after a crash at any point.
//!
//! Safety rules: `Retain` touches nothing; a replication group that
//! shopfleet neither created nor adopted is never deleted; a primary that
//! still has secondaries is never deleted (that would take the shop's cache
//! writer away from the surviving regions). A secondary leaves the Global
//! Datastore before it is deleted; the last primary deletes the (then empty)
//! Global Datastore, which AWS does while keeping the primary, and then
//! deletes the primary.

use crate::api::{DeletionPolicy, ShopRegionSpec};
use crate::cloud::executor::DeletionPlan;

use super::names::{Ownership, final_snapshot_id, ownership};
use super::plan::reason;
use super::port::{
    DeleteReplicationGroupRequest, GlobalMemberStatus, GlobalReplicationGroup,
    GlobalReplicationGroupStatus, ReplicationGroup, ReplicationGroupStatus, Tags,
};

#[derive(Clone, Copy, Debug)]
pub struct CacheCleanupInput<'a> {
    pub spec: &'a ShopRegionSpec,
    pub global: Option<&'a GlobalReplicationGroup>,
    pub replication_group: Option<&'a ReplicationGroup>,
    pub tags: &'a Tags,
}

/// What deleting this region's replication group takes now.
pub type CacheCleanupPlan = DeletionPlan<CacheCleanupAction>;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CacheCleanupAction {
    Disassociate {
        global_replication_group_id: String,
        replication_group_id: String,
        region: String,
    },
    DeleteGlobalDatastore {
        global_replication_group_id: String,
    },
    DeleteReplicationGroup {
        request: DeleteReplicationGroupRequest,
    },
}

impl std::fmt::Display for CacheCleanupAction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let text = match self {
            Self::Disassociate {
                global_replication_group_id,
                replication_group_id,
                ..
            } => format!(
                "disassociating {replication_group_id} from Global Datastore {global_replication_group_id}"
            ),
            Self::DeleteGlobalDatastore {
                global_replication_group_id,
            } => format!(
                "deleting Global Datastore {global_replication_group_id} (its primary stays)"
            ),
            Self::DeleteReplicationGroup { request } => match &request.final_snapshot_id {
                Some(snapshot) => format!(
                    "deleting replication group {} after final snapshot {snapshot}",
                    request.replication_group_id
                ),
                None => format!(
                    "deleting replication group {} without a final snapshot",
                    request.replication_group_id
                ),
            },
        };
        f.write_str(&text)
    }
}

fn wait(message: impl Into<String>) -> CacheCleanupPlan {
    CacheCleanupPlan::Wait {
        reason: reason::DELETING,
        message: message.into(),
    }
}

fn settled(global: &GlobalReplicationGroup) -> bool {
    global.status.is_settled()
}

pub fn plan(input: &CacheCleanupInput) -> CacheCleanupPlan {
    let spec = input.spec;
    let policy = spec.cache.deletion_policy;
    if policy == DeletionPolicy::Retain {
        return CacheCleanupPlan::Done;
    }
    let Some(group) = input.replication_group else {
        return CacheCleanupPlan::Done;
    };
    if ownership(input.tags, spec) != Ownership::Ours {
        // Neither created nor adopted by shopfleet: not ours to delete.
        return CacheCleanupPlan::Done;
    }
    if group.status == ReplicationGroupStatus::Deleting {
        return wait(format!("replication group {} is deleting", group.id));
    }

    if let Some(global) = input.global
        && let Some(member) = global
            .members
            .iter()
            .find(|m| m.region == spec.region && m.replication_group_id == group.id)
    {
        if member.is_primary {
            let others: Vec<&str> = global.secondaries().map(|m| m.region.as_str()).collect();
            if !others.is_empty() {
                return CacheCleanupPlan::Blocked {
                    reason: reason::DELETION_BLOCKED,
                    message: format!(
                        "replication group {} is the primary of Global Datastore {} and {} still replicate from it; \
                         fail the Global Datastore over to another region or delete those regions first",
                        group.id,
                        global.id,
                        others.join(", ")
                    ),
                };
            }
            if global.status == GlobalReplicationGroupStatus::Deleting {
                return wait(format!("Global Datastore {} is deleting", global.id));
            }
            if !settled(global) || group.status != ReplicationGroupStatus::Available {
                return wait(format!(
                    "deleting Global Datastore {} waits for it ({}) and {} ({})",
                    global.id, global.status, group.id, group.status
                ));
            }
            return CacheCleanupPlan::Steps(vec![CacheCleanupAction::DeleteGlobalDatastore {
                global_replication_group_id: global.id.clone(),
            }]);
        }
        if member.status == GlobalMemberStatus::Disassociating {
            return wait(format!(
                "replication group {} is leaving Global Datastore {}",
                group.id, global.id
            ));
        }
        if !settled(global)
            || group.status != ReplicationGroupStatus::Available
            || member.status != GlobalMemberStatus::Associated
        {
            return wait(format!(
                "leaving Global Datastore {} waits for it ({}) and {} ({}, {})",
                global.id, global.status, group.id, group.status, member.status
            ));
        }
        return CacheCleanupPlan::Steps(vec![CacheCleanupAction::Disassociate {
            global_replication_group_id: global.id.clone(),
            replication_group_id: group.id.clone(),
            region: spec.region.clone(),
        }]);
    }
    if let Some(info) = &group.global_replication_group {
        // The group still names its Global Datastore (or one this region
        // cannot see): the disassociation or deletion is under way.
        return wait(format!(
            "replication group {} is leaving Global Datastore {}",
            group.id, info.global_replication_group_id
        ));
    }
    if group.status != ReplicationGroupStatus::Available {
        return wait(format!(
            "replication group {} is {}",
            group.id, group.status
        ));
    }
    let snapshot = policy == DeletionPolicy::Snapshot;
    CacheCleanupPlan::Steps(vec![CacheCleanupAction::DeleteReplicationGroup {
        request: DeleteReplicationGroupRequest {
            replication_group_id: group.id.clone(),
            final_snapshot_id: snapshot.then(|| final_snapshot_id(&group.id, group.created_at)),
        },
    }])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::fixtures::acme;
    use crate::cloud::elasticache::names::resource_tags;
    use crate::cloud::elasticache::plan::tests::{global, group, member_group};

    fn run(
        spec: &ShopRegionSpec,
        global: Option<&GlobalReplicationGroup>,
        group: Option<&ReplicationGroup>,
    ) -> CacheCleanupPlan {
        let tags = resource_tags(spec);
        plan(&CacheCleanupInput {
            spec,
            global,
            replication_group: group,
            tags: &tags,
        })
    }

    fn with_policy(region: &str, policy: DeletionPolicy) -> ShopRegionSpec {
        let mut spec = acme(region);
        spec.cache.deletion_policy = policy;
        spec
    }

    #[test]
    fn retain_leaves_everything() {
        let spec = acme("eu-west-1");
        let g = global(
            GlobalReplicationGroupStatus::Available,
            Some("us-east-1"),
            &["eu-west-1"],
        );
        let rg = member_group(&spec, ReplicationGroupStatus::Available, false);
        assert_eq!(run(&spec, Some(&g), Some(&rg)), CacheCleanupPlan::Done);
    }

    #[test]
    fn a_secondary_is_disassociated_first() {
        for policy in [DeletionPolicy::Delete, DeletionPolicy::Snapshot] {
            let spec = with_policy("eu-west-1", policy);
            let g = global(
                GlobalReplicationGroupStatus::Available,
                Some("us-east-1"),
                &["eu-west-1"],
            );
            let rg = member_group(&spec, ReplicationGroupStatus::Available, false);
            assert_eq!(
                run(&spec, Some(&g), Some(&rg)),
                CacheCleanupPlan::Steps(vec![CacheCleanupAction::Disassociate {
                    global_replication_group_id: "ldgnf-acme".into(),
                    replication_group_id: "acme-eu-west-1".into(),
                    region: "eu-west-1".into(),
                }])
            );
        }
    }

    #[test]
    fn a_disassociating_secondary_waits() {
        let spec = with_policy("eu-west-1", DeletionPolicy::Delete);
        let mut g = global(
            GlobalReplicationGroupStatus::Available,
            Some("us-east-1"),
            &["eu-west-1"],
        );
        g.members[1].status = GlobalMemberStatus::Disassociating;
        let rg = member_group(&spec, ReplicationGroupStatus::Available, false);
        assert!(matches!(
            run(&spec, Some(&g), Some(&rg)),
            CacheCleanupPlan::Wait { .. }
        ));
        // Gone from the member list, still naming it on its own side.
        let g = global(
            GlobalReplicationGroupStatus::Available,
            Some("us-east-1"),
            &[],
        );
        assert!(matches!(
            run(&spec, Some(&g), Some(&rg)),
            CacheCleanupPlan::Wait { .. }
        ));
    }

    #[test]
    fn disassociation_waits_while_the_global_datastore_is_busy() {
        let spec = with_policy("eu-west-1", DeletionPolicy::Delete);
        let g = global(
            GlobalReplicationGroupStatus::Modifying,
            Some("us-east-1"),
            &["eu-west-1"],
        );
        let rg = member_group(&spec, ReplicationGroupStatus::Available, false);
        assert!(matches!(
            run(&spec, Some(&g), Some(&rg)),
            CacheCleanupPlan::Wait { .. }
        ));
    }

    #[test]
    fn delete_policy_deletes_a_detached_group_without_a_snapshot() {
        let spec = with_policy("eu-west-1", DeletionPolicy::Delete);
        let g = global(
            GlobalReplicationGroupStatus::Available,
            Some("us-east-1"),
            &[],
        );
        let rg = group(&spec, ReplicationGroupStatus::Available);
        assert_eq!(
            run(&spec, Some(&g), Some(&rg)),
            CacheCleanupPlan::Steps(vec![CacheCleanupAction::DeleteReplicationGroup {
                request: DeleteReplicationGroupRequest {
                    replication_group_id: "acme-eu-west-1".into(),
                    final_snapshot_id: None,
                }
            }])
        );
    }

    #[test]
    fn snapshot_policy_takes_a_deterministic_final_snapshot() {
        let spec = with_policy("eu-west-1", DeletionPolicy::Snapshot);
        let mut rg = group(&spec, ReplicationGroupStatus::Available);
        rg.created_at = Some(k8s_openapi::jiff::Timestamp::from_second(1_735_689_600).unwrap());
        assert_eq!(
            run(&spec, None, Some(&rg)),
            CacheCleanupPlan::Steps(vec![CacheCleanupAction::DeleteReplicationGroup {
                request: DeleteReplicationGroupRequest {
                    replication_group_id: "acme-eu-west-1".into(),
                    final_snapshot_id: Some("acme-eu-west-1-final-20250101000000".into()),
                }
            }])
        );
    }

    #[test]
    fn a_primary_with_secondaries_is_never_deleted() {
        let spec = with_policy("us-east-1", DeletionPolicy::Delete);
        let g = global(
            GlobalReplicationGroupStatus::Available,
            Some("us-east-1"),
            &["eu-west-1", "ap-northeast-1"],
        );
        let rg = member_group(&spec, ReplicationGroupStatus::Available, true);
        let CacheCleanupPlan::Blocked { reason, message } = run(&spec, Some(&g), Some(&rg)) else {
            panic!("expected blocked");
        };
        assert_eq!(reason, reason::DELETION_BLOCKED);
        assert!(message.contains("eu-west-1, ap-northeast-1"), "{message}");
    }

    #[test]
    fn the_last_primary_deletes_the_global_datastore_then_itself() {
        let spec = with_policy("us-east-1", DeletionPolicy::Snapshot);
        let alone = global(
            GlobalReplicationGroupStatus::PrimaryOnly,
            Some("us-east-1"),
            &[],
        );
        let rg = member_group(&spec, ReplicationGroupStatus::Available, true);
        assert_eq!(
            run(&spec, Some(&alone), Some(&rg)),
            CacheCleanupPlan::Steps(vec![CacheCleanupAction::DeleteGlobalDatastore {
                global_replication_group_id: "ldgnf-acme".into()
            }])
        );
        let deleting = global(
            GlobalReplicationGroupStatus::Deleting,
            Some("us-east-1"),
            &[],
        );
        assert!(matches!(
            run(&spec, Some(&deleting), Some(&rg)),
            CacheCleanupPlan::Wait { .. }
        ));
        let standalone = group(&spec, ReplicationGroupStatus::Available);
        assert!(matches!(
            run(&spec, None, Some(&standalone)),
            CacheCleanupPlan::Steps(ref s) if matches!(
                &s[..],
                [CacheCleanupAction::DeleteReplicationGroup { request }] if request.final_snapshot_id.is_some()
            )
        ));
    }

    #[test]
    fn an_untagged_group_is_never_deleted() {
        let spec = with_policy("eu-west-1", DeletionPolicy::Delete);
        let rg = group(&spec, ReplicationGroupStatus::Available);
        assert_eq!(
            plan(&CacheCleanupInput {
                spec: &spec,
                global: None,
                replication_group: Some(&rg),
                tags: &Tags::new(),
            }),
            CacheCleanupPlan::Done
        );
    }

    #[test]
    fn a_deleting_group_is_waited_for_and_a_gone_one_is_done() {
        let spec = with_policy("eu-west-1", DeletionPolicy::Delete);
        let rg = group(&spec, ReplicationGroupStatus::Deleting);
        assert!(matches!(
            run(&spec, None, Some(&rg)),
            CacheCleanupPlan::Wait { .. }
        ));
        let g = global(
            GlobalReplicationGroupStatus::Available,
            Some("us-east-1"),
            &[],
        );
        assert_eq!(run(&spec, Some(&g), None), CacheCleanupPlan::Done);
        assert_eq!(run(&spec, None, None), CacheCleanupPlan::Done);
    }

    #[test]
    fn a_busy_standalone_group_is_waited_for() {
        let spec = with_policy("eu-west-1", DeletionPolicy::Delete);
        let rg = group(&spec, ReplicationGroupStatus::Modifying);
        assert!(matches!(
            run(&spec, None, Some(&rg)),
            CacheCleanupPlan::Wait { .. }
        ));
    }
}
