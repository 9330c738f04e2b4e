//! The Aurora deletion plan, per `deletionPolicy`: a pure function, one
//! pass at a time, safe to resume after a crash at any point.
//!
//! Safety rules: `Retain` touches nothing; a resource that shopfleet neither
//! created nor adopted is never deleted; a primary that still has
//! secondaries is never deleted (that would take the shop's writer away
//! from the surviving regions).

use crate::api::{DeletionPolicy, ShopRegionSpec};
use crate::cloud::executor::DeletionPlan;

use super::names::{Ownership, cluster_id, final_snapshot_id, global_cluster_id, ownership};
use super::plan::reason;
use super::port::{
    Cluster, ClusterStatus, DeleteClusterRequest, GlobalCluster, GlobalClusterStatus, Instance,
    InstanceStatus,
};

#[derive(Clone, Copy, Debug)]
pub struct CleanupInput<'a> {
    pub spec: &'a ShopRegionSpec,
    pub global: Option<&'a GlobalCluster>,
    pub cluster: Option<&'a Cluster>,
    pub instances: &'a [Instance],
}

/// What deleting this region's cluster takes now.
pub type CleanupPlan = DeletionPlan<CleanupAction>;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CleanupAction {
    RemoveFromGlobalCluster {
        global_cluster_id: String,
        cluster_arn: String,
    },
    DisableGlobalDeletionProtection {
        global_cluster_id: String,
    },
    DeleteGlobalCluster {
        global_cluster_id: String,
    },
    DeleteInstance {
        instance_id: String,
    },
    DisableDeletionProtection {
        cluster_id: String,
    },
    DeleteCluster {
        request: DeleteClusterRequest,
    },
}

impl std::fmt::Display for CleanupAction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let text = match self {
            Self::RemoveFromGlobalCluster {
                global_cluster_id,
                cluster_arn,
            } => format!("removing {cluster_arn} from global cluster {global_cluster_id}"),
            Self::DisableGlobalDeletionProtection { global_cluster_id } => {
                format!("turning off deletion protection of global cluster {global_cluster_id}")
            }
            Self::DeleteGlobalCluster { global_cluster_id } => {
                format!("deleting global cluster {global_cluster_id}")
            }
            Self::DeleteInstance { instance_id } => format!("deleting instance {instance_id}"),
            Self::DisableDeletionProtection { cluster_id } => {
                format!("turning off deletion protection of cluster {cluster_id}")
            }
            Self::DeleteCluster { request } => match &request.final_snapshot_id {
                Some(snapshot) => format!(
                    "deleting cluster {} after final snapshot {snapshot}",
                    request.cluster_id
                ),
                None => format!(
                    "deleting cluster {} without a final snapshot",
                    request.cluster_id
                ),
            },
        };
        f.write_str(&text)
    }
}

fn wait(message: impl Into<String>) -> CleanupPlan {
    CleanupPlan::Wait {
        reason: reason::DELETING,
        message: message.into(),
    }
}

pub fn plan(input: &CleanupInput) -> CleanupPlan {
    let spec = input.spec;
    let policy = spec.database.deletion_policy;
    if policy == DeletionPolicy::Retain {
        return CleanupPlan::Done;
    }
    let gid = global_cluster_id(spec);

    let Some(cluster) = input.cluster else {
        return delete_empty_global(input.global).unwrap_or(CleanupPlan::Done);
    };
    if ownership(&cluster.tags, spec) != Ownership::Ours {
        // Neither created nor adopted by shopfleet: not ours to delete.
        return CleanupPlan::Done;
    }
    if cluster.status == ClusterStatus::Deleting {
        return wait(format!("cluster {} is deleting", cluster.id));
    }

    if let Some(global) = input.global
        && let Some(member) = global.member(&cluster.arn)
    {
        if member.is_writer && global.members.len() > 1 {
            let others: Vec<&str> = global
                .members
                .iter()
                .filter(|m| !m.is_writer)
                .map(|m| m.region.as_str())
                .collect();
            return CleanupPlan::Blocked {
                reason: reason::DELETION_BLOCKED,
                message: format!(
                    "cluster {} is the writer of global cluster {gid} and {} still replicate from it; \
                     switch the writer to another region or delete those regions first",
                    cluster.id,
                    others.join(", ")
                ),
            };
        }
        if global.status != GlobalClusterStatus::Available
            || cluster.status != ClusterStatus::Available
        {
            return wait(format!(
                "removal from global cluster {gid} waits for it ({}) and cluster {} ({})",
                global.status, cluster.id, cluster.status
            ));
        }
        return CleanupPlan::Steps(vec![CleanupAction::RemoveFromGlobalCluster {
            global_cluster_id: gid,
            cluster_arn: cluster.arn.clone(),
        }]);
    }
    if cluster.global_cluster_id.as_deref() == Some(gid.as_str()) {
        return wait(format!(
            "cluster {} is leaving global cluster {gid}",
            cluster.id
        ));
    }
    if let Some(plan) = delete_empty_global(input.global) {
        return plan;
    }

    if let Some(busy) = input.instances.iter().find(|i| {
        !matches!(
            i.status,
            InstanceStatus::Available
                | InstanceStatus::Deleting
                | InstanceStatus::Stopped
                | InstanceStatus::Failed
        )
    }) {
        return wait(format!("instance {} is {}", busy.id, busy.status));
    }
    let deletable: Vec<CleanupAction> = input
        .instances
        .iter()
        .filter(|i| i.status != InstanceStatus::Deleting)
        .map(|i| CleanupAction::DeleteInstance {
            instance_id: i.id.clone(),
        })
        .collect();
    if !deletable.is_empty() {
        // Instances go together: the cluster is on its way out, so there is
        // no capacity to keep.
        return CleanupPlan::Steps(deletable);
    }
    if !input.instances.is_empty() {
        return wait(format!(
            "the instances of cluster {} are deleting",
            cluster.id
        ));
    }
    if cluster.status != ClusterStatus::Available {
        return wait(format!("cluster {} is {}", cluster.id, cluster.status));
    }
    if cluster.deletion_protection {
        return CleanupPlan::Steps(vec![CleanupAction::DisableDeletionProtection {
            cluster_id: cluster.id.clone(),
        }]);
    }
    let snapshot = policy == DeletionPolicy::Snapshot;
    CleanupPlan::Steps(vec![CleanupAction::DeleteCluster {
        request: DeleteClusterRequest {
            cluster_id: cluster_id(spec),
            skip_final_snapshot: !snapshot,
            final_snapshot_id: snapshot.then(|| final_snapshot_id(&cluster.id, cluster.created_at)),
        },
    }])
}

/// An empty global cluster holds no data and cannot gain a secondary; the
/// last region out deletes it (whichever region's cleanup sees it first).
fn delete_empty_global(global: Option<&GlobalCluster>) -> Option<CleanupPlan> {
    let global = global.filter(|g| g.members.is_empty())?;
    Some(match &global.status {
        GlobalClusterStatus::Deleting => wait(format!("global cluster {} is deleting", global.id)),
        GlobalClusterStatus::Available if global.deletion_protection => {
            CleanupPlan::Steps(vec![CleanupAction::DisableGlobalDeletionProtection {
                global_cluster_id: global.id.clone(),
            }])
        }
        GlobalClusterStatus::Available => {
            CleanupPlan::Steps(vec![CleanupAction::DeleteGlobalCluster {
                global_cluster_id: global.id.clone(),
            }])
        }
        other => wait(format!("global cluster {} is {other}", global.id)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::fixtures::acme;
    use crate::cloud::aurora::plan::tests::{cluster, global, instance};

    fn run(
        spec: &ShopRegionSpec,
        global: Option<&GlobalCluster>,
        cluster: Option<&Cluster>,
        instances: &[Instance],
    ) -> CleanupPlan {
        plan(&CleanupInput {
            spec,
            global,
            cluster,
            instances,
        })
    }

    fn with_policy(region: &str, policy: DeletionPolicy) -> ShopRegionSpec {
        let mut spec = acme(region);
        spec.database.deletion_policy = policy;
        spec
    }

    #[test]
    fn retain_leaves_everything() {
        let spec = acme("us-east-1");
        let g = global(GlobalClusterStatus::Available, Some("us-east-1"), &[]);
        let c = cluster(&spec, ClusterStatus::Available);
        let i = [instance(&spec, 0, InstanceStatus::Available, true)];
        assert_eq!(run(&spec, Some(&g), Some(&c), &i), CleanupPlan::Done);
    }

    #[test]
    fn a_secondary_is_removed_from_the_global_cluster_first() {
        let spec = with_policy("eu-west-1", DeletionPolicy::Snapshot);
        let g = global(
            GlobalClusterStatus::Available,
            Some("us-east-1"),
            &["eu-west-1"],
        );
        let c = cluster(&spec, ClusterStatus::Available);
        let i = [instance(&spec, 0, InstanceStatus::Available, false)];
        assert_eq!(
            run(&spec, Some(&g), Some(&c), &i),
            CleanupPlan::Steps(vec![CleanupAction::RemoveFromGlobalCluster {
                global_cluster_id: "acme-global".into(),
                cluster_arn: c.arn.clone(),
            }])
        );
    }

    #[test]
    fn a_detaching_secondary_waits() {
        let spec = with_policy("eu-west-1", DeletionPolicy::Delete);
        let g = global(GlobalClusterStatus::Available, Some("us-east-1"), &[]);
        let mut c = cluster(&spec, ClusterStatus::Modifying);
        c.global_cluster_id = Some("acme-global".into());
        assert!(matches!(
            run(&spec, Some(&g), Some(&c), &[]),
            CleanupPlan::Wait { .. }
        ));
    }

    #[test]
    fn a_detached_secondary_deletes_its_instances_together() {
        let spec = with_policy("eu-west-1", DeletionPolicy::Delete);
        let g = global(GlobalClusterStatus::Available, Some("us-east-1"), &[]);
        let c = cluster(&spec, ClusterStatus::Available);
        let i = [
            instance(&spec, 0, InstanceStatus::Available, false),
            instance(&spec, 1, InstanceStatus::Available, false),
        ];
        assert_eq!(
            run(&spec, Some(&g), Some(&c), &i),
            CleanupPlan::Steps(vec![
                CleanupAction::DeleteInstance {
                    instance_id: "acme-eu-west-1-0".into()
                },
                CleanupAction::DeleteInstance {
                    instance_id: "acme-eu-west-1-1".into()
                },
            ])
        );
    }

    #[test]
    fn cleanup_waits_while_instances_are_deleting_or_creating() {
        let spec = with_policy("eu-west-1", DeletionPolicy::Delete);
        let c = cluster(&spec, ClusterStatus::Available);
        assert!(matches!(
            run(
                &spec,
                None,
                Some(&c),
                &[instance(&spec, 0, InstanceStatus::Deleting, false)]
            ),
            CleanupPlan::Wait { .. }
        ));
        assert!(matches!(
            run(
                &spec,
                None,
                Some(&c),
                &[instance(&spec, 0, InstanceStatus::Creating, false)]
            ),
            CleanupPlan::Wait { .. }
        ));
    }

    #[test]
    fn deletion_protection_is_turned_off_before_the_cluster_is_deleted() {
        let spec = with_policy("eu-west-1", DeletionPolicy::Delete);
        let c = cluster(&spec, ClusterStatus::Available);
        assert_eq!(
            run(&spec, None, Some(&c), &[]),
            CleanupPlan::Steps(vec![CleanupAction::DisableDeletionProtection {
                cluster_id: "acme-eu-west-1".into()
            }])
        );
    }

    #[test]
    fn delete_policy_skips_the_final_snapshot() {
        let spec = with_policy("eu-west-1", DeletionPolicy::Delete);
        let mut c = cluster(&spec, ClusterStatus::Available);
        c.deletion_protection = false;
        assert_eq!(
            run(&spec, None, Some(&c), &[]),
            CleanupPlan::Steps(vec![CleanupAction::DeleteCluster {
                request: DeleteClusterRequest {
                    cluster_id: "acme-eu-west-1".into(),
                    skip_final_snapshot: true,
                    final_snapshot_id: None,
                }
            }])
        );
    }

    #[test]
    fn snapshot_policy_takes_a_deterministic_final_snapshot() {
        let spec = with_policy("eu-west-1", DeletionPolicy::Snapshot);
        let mut c = cluster(&spec, ClusterStatus::Available);
        c.deletion_protection = false;
        c.created_at = Some(k8s_openapi::jiff::Timestamp::from_second(1_735_689_600).unwrap());
        let CleanupPlan::Steps(steps) = run(&spec, None, Some(&c), &[]) else {
            panic!("expected steps");
        };
        assert_eq!(
            steps,
            vec![CleanupAction::DeleteCluster {
                request: DeleteClusterRequest {
                    cluster_id: "acme-eu-west-1".into(),
                    skip_final_snapshot: false,
                    final_snapshot_id: Some("acme-eu-west-1-final-20250101000000".into()),
                }
            }]
        );
    }

    #[test]
    fn a_primary_with_secondaries_is_never_deleted() {
        let spec = with_policy("us-east-1", DeletionPolicy::Delete);
        let g = global(
            GlobalClusterStatus::Available,
            Some("us-east-1"),
            &["eu-west-1", "ap-northeast-1"],
        );
        let c = cluster(&spec, ClusterStatus::Available);
        let CleanupPlan::Blocked { reason, message } = run(&spec, Some(&g), Some(&c), &[]) else {
            panic!("expected blocked");
        };
        assert_eq!(reason, reason::DELETION_BLOCKED);
        assert!(message.contains("eu-west-1, ap-northeast-1"), "{message}");
    }

    #[test]
    fn the_last_primary_leaves_the_global_cluster_then_deletes_it_then_itself() {
        let spec = with_policy("us-east-1", DeletionPolicy::Snapshot);
        let c = cluster(&spec, ClusterStatus::Available);
        let alone = global(GlobalClusterStatus::Available, Some("us-east-1"), &[]);
        assert_eq!(
            run(&spec, Some(&alone), Some(&c), &[]),
            CleanupPlan::Steps(vec![CleanupAction::RemoveFromGlobalCluster {
                global_cluster_id: "acme-global".into(),
                cluster_arn: c.arn.clone(),
            }])
        );
        let mut empty = global(GlobalClusterStatus::Available, None, &[]);
        let i = [instance(&spec, 0, InstanceStatus::Available, true)];
        assert_eq!(
            run(&spec, Some(&empty), Some(&c), &i),
            CleanupPlan::Steps(vec![CleanupAction::DisableGlobalDeletionProtection {
                global_cluster_id: "acme-global".into()
            }])
        );
        empty.deletion_protection = false;
        assert_eq!(
            run(&spec, Some(&empty), Some(&c), &i),
            CleanupPlan::Steps(vec![CleanupAction::DeleteGlobalCluster {
                global_cluster_id: "acme-global".into()
            }])
        );
        assert!(matches!(
            run(&spec, None, Some(&c), &[instance(&spec, 0, InstanceStatus::Available, true)]),
            CleanupPlan::Steps(ref s) if s == &[CleanupAction::DeleteInstance { instance_id: "acme-us-east-1-0".into() }]
        ));
    }

    #[test]
    fn retain_never_unprotects_an_empty_global_cluster() {
        let spec = acme("eu-west-1");
        let empty = global(GlobalClusterStatus::Available, None, &[]);
        assert_eq!(run(&spec, Some(&empty), None, &[]), CleanupPlan::Done);
    }

    #[test]
    fn a_protected_empty_global_cluster_being_modified_is_waited_for() {
        let spec = with_policy("eu-west-1", DeletionPolicy::Delete);
        let empty = global(GlobalClusterStatus::Modifying, None, &[]);
        assert!(matches!(
            run(&spec, Some(&empty), None, &[]),
            CleanupPlan::Wait { .. }
        ));
    }

    #[test]
    fn an_untagged_cluster_is_never_deleted() {
        let spec = with_policy("eu-west-1", DeletionPolicy::Delete);
        let mut c = cluster(&spec, ClusterStatus::Available);
        c.tags.clear();
        assert_eq!(run(&spec, None, Some(&c), &[]), CleanupPlan::Done);
    }

    #[test]
    fn a_deleting_cluster_is_waited_for_and_a_gone_one_is_done() {
        let spec = with_policy("eu-west-1", DeletionPolicy::Delete);
        let c = cluster(&spec, ClusterStatus::Deleting);
        assert!(matches!(
            run(&spec, None, Some(&c), &[]),
            CleanupPlan::Wait { .. }
        ));
        let g = global(GlobalClusterStatus::Available, Some("us-east-1"), &[]);
        assert_eq!(run(&spec, Some(&g), None, &[]), CleanupPlan::Done);
        assert_eq!(run(&spec, None, None, &[]), CleanupPlan::Done);
    }

    #[test]
    fn removal_waits_while_the_global_cluster_is_failing_over() {
        let spec = with_policy("eu-west-1", DeletionPolicy::Delete);
        let g = global(
            GlobalClusterStatus::FailingOver,
            Some("us-east-1"),
            &["eu-west-1"],
        );
        let c = cluster(&spec, ClusterStatus::Available);
        assert!(matches!(
            run(&spec, Some(&g), Some(&c), &[]),
            CleanupPlan::Wait { .. }
        ));
    }
}
