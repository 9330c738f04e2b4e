//! `status.orders` and the `WorkloadReady` condition, from the observed
//! Deployment. Pure.

use k8s_openapi::api::apps::v1::{Deployment, DeploymentCondition};

use super::builders::{CACHE_AUTH_TOKEN_ANNOTATION, CONTAINER_NAME};
use super::capacity::Capacity;
use crate::api::OrdersStatus;
use crate::api::conditions::{Desired, Status, types};

pub mod reason {
    /// Enough replicas are available and the Deployment is current.
    pub const AVAILABLE: &str = "Available";
    /// The Deployment controller is still rolling out or scaling up.
    pub const PROGRESSING: &str = "Progressing";
    /// Fewer replicas than the minimum are available and no rollout is
    /// making progress.
    pub const UNAVAILABLE: &str = "Unavailable";
    /// The image cannot be pulled.
    pub const IMAGE_PULL_FAILING: &str = "ImagePullFailing";
    /// The Deployment does not exist yet.
    pub const PENDING: &str = "Pending";
}

const IMAGE_PULL_ERRORS: [&str; 4] = [
    "ImagePullBackOff",
    "ErrImagePull",
    "InvalidImageName",
    "ErrImageNeverPull",
];

/// `status.orders` and `WorkloadReady` for the observed Deployment.
///
/// WorkloadReady is True when the Deployment's observed generation is current
/// and its available replicas reach `capacity.min_replicas`. The ordinary
/// minimum, not the absorbing one: while a survivor scales up to absorb a lost
/// region it keeps serving, and must not look unready to the failover engine
/// at the moment the fleet depends on it; the message says how far the
/// scale-up is.
pub fn workload_status(
    observed: Option<&Deployment>,
    waiting_for: &[&str],
    capacity: &Capacity,
    absorbing: bool,
) -> (OrdersStatus, Desired) {
    let min = if absorbing {
        capacity.absorbing_min_replicas
    } else {
        capacity.min_replicas
    };
    let Some(deployment) = observed else {
        let status = OrdersStatus {
            min_replicas: min,
            max_replicas: capacity.max_replicas,
            absorbing,
            ..OrdersStatus::default()
        };
        let message = if waiting_for.is_empty() {
            "the order Deployment does not exist yet".to_string()
        } else {
            format!(
                "the order Deployment is created once everything its pods need is \
                 known; waiting for {}",
                waiting_for.join(", ")
            )
        };
        let condition = Desired::new(
            types::WORKLOAD_READY,
            Status::False,
            reason::PENDING,
            message,
        );
        return (status, condition);
    };

    let spec = &deployment.spec;
    let dstatus = deployment.status.clone().unwrap_or_default();
    let image = spec
        .template
        .spec
        .as_ref()
        .and_then(|p| p.containers.iter().find(|c| c.name == CONTAINER_NAME))
        .and_then(|c| c.image.clone());
    let desired = spec.replicas.unwrap_or(1);
    let ready = dstatus.ready_replicas.unwrap_or(0);
    let available = dstatus.available_replicas.unwrap_or(0);
    let updated = dstatus.updated_replicas.unwrap_or(0);
    let generation = deployment.metadata.generation.unwrap_or(0);
    let observed_generation = dstatus.observed_generation.unwrap_or(0);
    // Every pod runs the template's token once the rollout is complete.
    let rolled_out = observed_generation >= generation
        && updated >= desired
        && dstatus.replicas.unwrap_or(0) == updated
        && available >= desired;
    let cache_auth_token = spec
        .template
        .metadata
        .as_ref()
        .and_then(|m| m.annotations.as_ref())
        .and_then(|a| a.get(CACHE_AUTH_TOKEN_ANNOTATION))
        .filter(|_| rolled_out)
        .cloned();
    let status = OrdersStatus {
        image,
        desired_replicas: desired,
        ready_replicas: ready,
        available_replicas: available,
        min_replicas: min,
        max_replicas: capacity.max_replicas,
        absorbing,
        cache_auth_token,
    };

    let conditions = dstatus.conditions.as_deref().unwrap_or_default();
    let ready_min = capacity.min_replicas;

    let condition = if let Some(pull) = image_pull_failure(conditions) {
        // Checked first: even with old pods still serving, the desired image
        // will never run and someone must act.
        Desired::new(
            types::WORKLOAD_READY,
            Status::False,
            reason::IMAGE_PULL_FAILING,
            format!(
                "the order image cannot be pulled ({available} of {desired} replicas available): {pull}"
            ),
        )
    } else if observed_generation < generation {
        Desired::new(
            types::WORKLOAD_READY,
            Status::False,
            reason::PROGRESSING,
            format!(
                "waiting for the Deployment controller to observe generation {generation} (observed {observed_generation})"
            ),
        )
    } else if available >= ready_min {
        let mut message =
            format!("{available} of {desired} replicas available (minimum {ready_min})");
        if absorbing && available < min {
            message.push_str(&format!("; scaling up to {min} to absorb a lost region"));
        } else if absorbing {
            message.push_str("; absorbing a lost region");
        }
        if updated < desired {
            message.push_str(&format!("; rollout in progress, {updated} updated"));
        }
        Desired::new(
            types::WORKLOAD_READY,
            Status::True,
            reason::AVAILABLE,
            message,
        )
    } else if let Some(stuck) = stuck(conditions) {
        Desired::new(
            types::WORKLOAD_READY,
            Status::False,
            reason::UNAVAILABLE,
            format!(
                "{available} of {desired} replicas available, below the minimum {ready_min}: {stuck}"
            ),
        )
    } else if rolling_out(conditions) {
        Desired::new(
            types::WORKLOAD_READY,
            Status::False,
            reason::PROGRESSING,
            format!(
                "{available} of {desired} replicas available, waiting for the minimum {ready_min}"
            ),
        )
    } else {
        Desired::new(
            types::WORKLOAD_READY,
            Status::False,
            reason::UNAVAILABLE,
            format!(
                "{available} of {desired} replicas available, below the minimum {ready_min}, and no rollout in progress"
            ),
        )
    };
    (status, condition)
}

fn condition<'a>(
    conditions: &'a [DeploymentCondition],
    type_: &str,
) -> Option<&'a DeploymentCondition> {
    conditions
        .iter()
        .find(|c| c.type_.as_deref() == Some(type_))
}

fn describe(c: &DeploymentCondition) -> String {
    let reason = c
        .reason
        .as_deref()
        .or(c.type_.as_deref())
        .unwrap_or("Unknown");
    match c.message.as_deref() {
        Some(message) if !message.is_empty() => format!("{reason}: {message}"),
        _ => reason.to_string(),
    }
}

/// A pull error as a Deployment condition tells it: in the message of a
/// failed Progressing (ProgressDeadlineExceeded) or of a ReplicaFailure.
fn image_pull_failure(conditions: &[DeploymentCondition]) -> Option<String> {
    conditions
        .iter()
        .filter(|c| has(c, "Progressing", "False") || has(c, "ReplicaFailure", "True"))
        .find(|c| {
            let text = format!(
                "{} {}",
                c.reason.as_deref().unwrap_or_default(),
                c.message.as_deref().unwrap_or_default()
            );
            IMAGE_PULL_ERRORS.iter().any(|e| text.contains(e))
        })
        .map(describe)
}

fn is(c: &DeploymentCondition, status: &str) -> bool {
    c.status.as_deref() == Some(status)
}

fn has(c: &DeploymentCondition, type_: &str, status: &str) -> bool {
    c.type_.as_deref() == Some(type_) && is(c, status)
}

/// Why the Deployment has stopped making progress, if it has.
fn stuck(conditions: &[DeploymentCondition]) -> Option<String> {
    if let Some(c) = condition(conditions, "ReplicaFailure").filter(|c| is(c, "True")) {
        return Some(describe(c));
    }
    condition(conditions, "Progressing")
        .filter(|c| is(c, "False"))
        .map(describe)
}

/// Is a rollout or scale-up under way? A fresh Deployment has no conditions
/// yet; `NewReplicaSetAvailable` means the last rollout finished, so missing
/// replicas after it are an outage, not progress.
fn rolling_out(conditions: &[DeploymentCondition]) -> bool {
    match condition(conditions, "Progressing") {
        None => true,
        Some(c) => is(c, "True") && c.reason.as_deref() != Some("NewReplicaSetAvailable"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::{DeploymentSpec, DeploymentStatus};
    use k8s_openapi::api::core::v1::{Container, PodSpec, PodTemplateSpec};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
    use std::collections::BTreeMap;

    const CAPACITY: Capacity = Capacity {
        min_replicas: 13,
        max_replicas: 75,
        absorbing_min_replicas: 38,
    };

    fn cond(type_: &str, status: &str, reason: &str, message: &str) -> DeploymentCondition {
        DeploymentCondition {
            type_: Some(type_.into()),
            status: Some(status.into()),
            reason: Some(reason.into()),
            message: Some(message.into()),
            ..DeploymentCondition::default()
        }
    }

    fn deployment(
        replicas: i32,
        available: i32,
        conditions: Vec<DeploymentCondition>,
    ) -> Deployment {
        Deployment {
            metadata: ObjectMeta {
                name: Some("acme-us-east-1-orders".into()),
                generation: Some(3),
                ..ObjectMeta::default()
            },
            spec: DeploymentSpec {
                replicas: Some(replicas),
                template: PodTemplateSpec {
                    spec: Some(PodSpec {
                        containers: vec![Container {
                            name: "orders".into(),
                            image: Some("registry.example.com/acme/orders:1.4.2".into()),
                            ..Container::default()
                        }],
                        ..PodSpec::default()
                    }),
                    ..PodTemplateSpec::default()
                },
                ..DeploymentSpec::default()
            },
            status: Some(DeploymentStatus {
                observed_generation: Some(3),
                replicas: Some(replicas),
                updated_replicas: Some(replicas),
                ready_replicas: Some(available),
                available_replicas: Some(available),
                conditions: Some(conditions),
                ..DeploymentStatus::default()
            }),
        }
    }

    fn complete() -> Vec<DeploymentCondition> {
        vec![
            cond(
                "Available",
                "True",
                "MinimumReplicasAvailable",
                "Deployment has minimum availability.",
            ),
            cond(
                "Progressing",
                "True",
                "NewReplicaSetAvailable",
                "ReplicaSet \"x\" has successfully progressed.",
            ),
        ]
    }

    #[test]
    fn a_deployment_held_back_says_what_its_pods_wait_for() {
        let waiting = ["the database reader endpoint", "the cache reader endpoint"];
        let (_, c) = workload_status(None, &waiting, &CAPACITY, false);
        assert_eq!(
            (c.status, c.reason.as_str()),
            (Status::False, reason::PENDING)
        );
        assert!(
            c.message
                .ends_with("waiting for the database reader endpoint, the cache reader endpoint"),
            "{}",
            c.message
        );
    }

    #[test]
    fn no_deployment_yet_is_pending() {
        let (status, c) = workload_status(None, &[], &CAPACITY, false);
        assert_eq!(
            (c.status, c.reason.as_str()),
            (Status::False, reason::PENDING)
        );
        assert_eq!(c.type_, types::WORKLOAD_READY);
        assert_eq!((status.min_replicas, status.max_replicas), (13, 75));
        assert_eq!(status.desired_replicas, 0);
    }

    #[test]
    fn available_replicas_at_the_minimum_make_the_workload_ready() {
        let d = deployment(20, 13, complete());
        let (status, c) = workload_status(Some(&d), &[], &CAPACITY, false);
        assert_eq!(
            (c.status, c.reason.as_str()),
            (Status::True, reason::AVAILABLE)
        );
        assert_eq!(
            status,
            OrdersStatus {
                image: Some("registry.example.com/acme/orders:1.4.2".into()),
                desired_replicas: 20,
                ready_replicas: 13,
                available_replicas: 13,
                min_replicas: 13,
                max_replicas: 75,
                absorbing: false,
                ..Default::default()
            }
        );
    }

    #[test]
    fn the_cache_token_counts_as_rolled_out_only_once_every_pod_runs_it() {
        let with_token = |replicas: i32, updated: i32, available: i32| {
            let mut d = deployment(replicas, available, complete());
            d.spec.template.metadata = Some(ObjectMeta {
                annotations: Some(BTreeMap::from([(
                    CACHE_AUTH_TOKEN_ANNOTATION.to_string(),
                    "00aa00aa00aa00aa".to_string(),
                )])),
                ..ObjectMeta::default()
            });
            let status = d.status.as_mut().unwrap();
            status.updated_replicas = Some(updated);
            status.replicas = Some(replicas.max(updated) + (replicas - updated));
            workload_status(Some(&d), &[], &CAPACITY, false)
                .0
                .cache_auth_token
        };
        assert_eq!(with_token(20, 20, 20).as_deref(), Some("00aa00aa00aa00aa"));
        assert_eq!(
            with_token(20, 12, 20),
            None,
            "old pods still run the old token"
        );
        assert_eq!(
            with_token(20, 20, 15),
            None,
            "new pods not all available yet"
        );
    }

    #[test]
    fn a_stale_observed_generation_is_progressing() {
        let mut d = deployment(13, 13, complete());
        d.metadata.generation = Some(4);
        let (_, c) = workload_status(Some(&d), &[], &CAPACITY, false);
        assert_eq!(
            (c.status, c.reason.as_str()),
            (Status::False, reason::PROGRESSING)
        );
        assert!(c.message.contains("generation 4"));
    }

    #[test]
    fn a_scale_up_below_the_minimum_is_progressing() {
        let d = deployment(
            13,
            4,
            vec![cond(
                "Progressing",
                "True",
                "ReplicaSetUpdated",
                "ReplicaSet \"x\" is progressing.",
            )],
        );
        let (_, c) = workload_status(Some(&d), &[], &CAPACITY, false);
        assert_eq!(
            (c.status, c.reason.as_str()),
            (Status::False, reason::PROGRESSING)
        );
    }

    #[test]
    fn a_fresh_deployment_without_conditions_is_progressing() {
        let d = deployment(13, 0, vec![]);
        let (_, c) = workload_status(Some(&d), &[], &CAPACITY, false);
        assert_eq!(c.reason, reason::PROGRESSING);
    }

    #[test]
    fn pods_lost_after_a_complete_rollout_are_unavailable() {
        let mut conditions = complete();
        conditions[0] = cond(
            "Available",
            "False",
            "MinimumReplicasUnavailable",
            "Deployment does not have minimum availability.",
        );
        let d = deployment(13, 5, conditions);
        let (_, c) = workload_status(Some(&d), &[], &CAPACITY, false);
        assert_eq!(
            (c.status, c.reason.as_str()),
            (Status::False, reason::UNAVAILABLE)
        );
    }

    #[test]
    fn a_rollout_past_its_deadline_is_unavailable() {
        let d = deployment(
            13,
            2,
            vec![cond(
                "Progressing",
                "False",
                "ProgressDeadlineExceeded",
                "ReplicaSet \"x\" has timed out progressing.",
            )],
        );
        let (_, c) = workload_status(Some(&d), &[], &CAPACITY, false);
        assert_eq!(
            (c.status, c.reason.as_str()),
            (Status::False, reason::UNAVAILABLE)
        );
        assert!(c.message.contains("ProgressDeadlineExceeded"));
    }

    #[test]
    fn a_replica_failure_is_unavailable() {
        let d = deployment(
            13,
            0,
            vec![cond(
                "ReplicaFailure",
                "True",
                "FailedCreate",
                "pods \"x\" is forbidden: exceeded quota",
            )],
        );
        let (_, c) = workload_status(Some(&d), &[], &CAPACITY, false);
        assert_eq!(c.reason, reason::UNAVAILABLE);
        assert!(c.message.contains("exceeded quota"));
    }

    #[test]
    fn an_image_that_cannot_be_pulled_is_reported_as_such() {
        let d = deployment(
            13,
            0,
            vec![cond(
                "Progressing",
                "False",
                "ProgressDeadlineExceeded",
                "ReplicaSet \"x\" has timed out progressing: Back-off pulling image: ImagePullBackOff",
            )],
        );
        let (_, c) = workload_status(Some(&d), &[], &CAPACITY, false);
        assert_eq!(
            (c.status, c.reason.as_str()),
            (Status::False, reason::IMAGE_PULL_FAILING)
        );

        let d = deployment(
            13,
            13,
            vec![cond(
                "ReplicaFailure",
                "True",
                "ErrImagePull",
                "failed to pull image",
            )],
        );
        let (_, c) = workload_status(Some(&d), &[], &CAPACITY, false);
        assert_eq!(c.reason, reason::IMAGE_PULL_FAILING);
        assert!(c.message.contains("13 of 13"));
    }

    #[test]
    fn absorbing_reports_the_raised_minimum_without_turning_unready() {
        let d = deployment(38, 20, complete());
        let (status, c) = workload_status(Some(&d), &[], &CAPACITY, true);
        assert_eq!((status.min_replicas, status.absorbing), (38, true));
        assert_eq!(c.status, Status::True);
        assert!(c.message.contains("scaling up to 38"), "{}", c.message);
    }
}
