//! Deployment rollout emulation: the status the real deployment controller
//! would write (pure functions; timers live in [`crate::store`]).

use std::time::Duration;

use serde_json::{Value, json};

/// When the simulated deployment controller reports a rollout as complete.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum RolloutPolicy {
    /// Right after the write that changed the spec (before the response returns).
    #[default]
    Immediate,
    /// After this much real time; the status shows the rollout in progress until then.
    AfterDelay(Duration),
    /// Never: the rollout stays in progress.
    Never,
    /// Only when [`crate::ApiServer::mark_deployment_available`] is called.
    Manual,
}

/// The phase of a simulated rollout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    Progressing,
    Complete,
    /// An image can never be pulled.
    Failed,
}

/// The images of all containers of a Deployment's pod template.
pub(crate) fn images(deploy: &Value) -> Vec<String> {
    ["containers", "initContainers"]
        .iter()
        .flat_map(|list| {
            deploy
                .pointer(&format!("/spec/template/spec/{list}"))
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default()
        })
        .filter_map(|c| c.get("image").and_then(Value::as_str).map(String::from))
        .collect()
}

/// The first image of `deploy` that is in `failing`.
pub(crate) fn failing_image(deploy: &Value, failing: &[String]) -> Option<String> {
    images(deploy).into_iter().find(|i| failing.contains(i))
}

fn condition(type_: &str, status: &str, reason: &str, message: &str, now: &str) -> Value {
    json!({
        "type": type_, "status": status, "reason": reason, "message": message,
        "lastUpdateTime": now, "lastTransitionTime": now,
    })
}

/// The `status` the deployment controller writes for `deploy` in `phase`.
pub(crate) fn status(deploy: &Value, phase: Phase, failing: Option<&str>, now: &str) -> Value {
    let name = deploy
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("");
    let generation = deploy
        .pointer("/metadata/generation")
        .and_then(Value::as_i64)
        .unwrap_or(1);
    let replicas = deploy
        .pointer("/spec/replicas")
        .and_then(Value::as_i64)
        .unwrap_or(1);
    let rs = format!(
        "{name}-{:x}",
        generation.wrapping_mul(0x9e37_79b9) & 0xff_ffff
    );
    let (ready, conditions) = match phase {
        Phase::Complete => (
            replicas,
            vec![
                condition(
                    "Available",
                    "True",
                    "MinimumReplicasAvailable",
                    "Deployment has minimum availability.",
                    now,
                ),
                condition(
                    "Progressing",
                    "True",
                    "NewReplicaSetAvailable",
                    &format!("ReplicaSet \"{rs}\" has successfully progressed."),
                    now,
                ),
            ],
        ),
        Phase::Progressing => (
            0,
            vec![
                condition(
                    "Available",
                    "False",
                    "MinimumReplicasUnavailable",
                    "Deployment does not have minimum availability.",
                    now,
                ),
                condition(
                    "Progressing",
                    "True",
                    "ReplicaSetUpdated",
                    &format!("ReplicaSet \"{rs}\" is progressing."),
                    now,
                ),
            ],
        ),
        Phase::Failed => (
            0,
            vec![
                condition(
                    "Available",
                    "False",
                    "MinimumReplicasUnavailable",
                    "Deployment does not have minimum availability.",
                    now,
                ),
                condition(
                    "Progressing",
                    "False",
                    "ProgressDeadlineExceeded",
                    &format!(
                        "ReplicaSet \"{rs}\" has timed out progressing. Pods are in ImagePullBackOff: Back-off pulling image \"{}\"",
                        failing.unwrap_or("")
                    ),
                    now,
                ),
            ],
        ),
    };
    let mut s = json!({
        "observedGeneration": generation,
        "replicas": replicas,
        "updatedReplicas": replicas,
        "conditions": conditions,
    });
    if ready > 0 {
        s["readyReplicas"] = json!(ready);
        s["availableReplicas"] = json!(ready);
    }
    if replicas - ready > 0 {
        s["unavailableReplicas"] = json!(replicas - ready);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deploy() -> Value {
        json!({"metadata": {"name": "web", "generation": 3},
            "spec": {"replicas": 2, "template": {"spec": {"containers": [{"name": "c", "image": "bad:1"}]}}}})
    }

    #[test]
    fn complete_status_reports_all_replicas_available() {
        let s = status(&deploy(), Phase::Complete, None, "t");
        assert_eq!(s["observedGeneration"], 3);
        assert_eq!(s["availableReplicas"], 2);
        assert_eq!(s["conditions"][0]["type"], "Available");
        assert_eq!(s["conditions"][0]["status"], "True");
    }

    #[test]
    fn failed_status_names_the_image() {
        let d = deploy();
        let img = failing_image(&d, &["bad:1".into()]);
        let s = status(&d, Phase::Failed, img.as_deref(), "t");
        assert_eq!(s["conditions"][1]["reason"], "ProgressDeadlineExceeded");
        assert!(
            s["conditions"][1]["message"]
                .as_str()
                .unwrap()
                .contains("bad:1")
        );
        assert_eq!(s["unavailableReplicas"], 2);
        assert!(s.get("availableReplicas").is_none());
    }

    #[test]
    fn replicas_default_to_one() {
        let s = status(
            &json!({"metadata": {"name": "x"}}),
            Phase::Progressing,
            None,
            "t",
        );
        assert_eq!(s["replicas"], 1);
        assert_eq!(s["unavailableReplicas"], 1);
    }
}
