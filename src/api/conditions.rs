//! `metav1.Condition` bookkeeping, kstatus-compatible.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;

pub mod types {
    pub const READY: &str = "Ready";
    pub const RECONCILING: &str = "Reconciling";
    pub const STALLED: &str = "Stalled";
    pub const WORKLOAD_READY: &str = "WorkloadReady";
    pub const DATABASE_READY: &str = "DatabaseReady";
    pub const CACHE_READY: &str = "CacheReady";
    pub const FAILOVER_READY: &str = "FailoverReady";

    /// Every condition type a ShopRegion reports: the summary conditions
    /// first, then the concerns in reconcile order, so that `kubectl
    /// describe` reads top-down.
    pub const ALL: [&str; 7] = [
        READY,
        RECONCILING,
        STALLED,
        WORKLOAD_READY,
        DATABASE_READY,
        CACHE_READY,
        FAILOVER_READY,
    ];
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    True,
    False,
    Unknown,
}

impl Status {
    /// A stored condition's status; anything unexpected is `Unknown`.
    pub fn parse(text: &str) -> Self {
        match text {
            "True" => Status::True,
            "False" => Status::False,
            _ => Status::Unknown,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Status::True => "True",
            Status::False => "False",
            Status::Unknown => "Unknown",
        }
    }

    pub fn from_bool(value: bool) -> Self {
        if value { Status::True } else { Status::False }
    }
}

/// A condition as the reconciler decides it, before bookkeeping
/// (transition time, generation) is added.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Desired {
    pub type_: &'static str,
    pub status: Status,
    pub reason: String,
    pub message: String,
}

impl Desired {
    pub fn new(
        type_: &'static str,
        status: Status,
        reason: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Self {
            type_,
            status,
            reason: reason.into(),
            message: message.into(),
        }
    }
}

/// A condition whose status changed, for the Event that reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transition {
    pub type_: String,
    pub from: Option<String>,
    pub to: String,
    pub reason: String,
    pub message: String,
}

/// Merges the desired conditions into the current list. `lastTransitionTime`
/// moves only when a condition's status changes, so a reconcile that decides
/// the same thing produces the same list (and no write). Conditions not in
/// `desired` are kept, so that one concern cannot erase another's.
pub fn merge(
    current: &[Condition],
    desired: &[Desired],
    generation: Option<i64>,
    now: Timestamp,
) -> (Vec<Condition>, Vec<Transition>) {
    let mut merged: Vec<Condition> = current.to_vec();
    let mut transitions = Vec::new();
    for want in desired {
        let existing = merged.iter_mut().find(|c| c.type_ == want.type_);
        match existing {
            Some(cond) => {
                if cond.status != want.status.as_str() {
                    transitions.push(Transition {
                        type_: want.type_.to_string(),
                        from: Some(cond.status.clone()),
                        to: want.status.as_str().to_string(),
                        reason: want.reason.clone(),
                        message: want.message.clone(),
                    });
                    cond.status = want.status.as_str().to_string();
                    cond.last_transition_time = Time(now);
                }
                cond.reason = want.reason.clone();
                cond.message = want.message.clone();
                cond.observed_generation = generation;
            }
            None => {
                transitions.push(Transition {
                    type_: want.type_.to_string(),
                    from: None,
                    to: want.status.as_str().to_string(),
                    reason: want.reason.clone(),
                    message: want.message.clone(),
                });
                merged.push(Condition {
                    type_: want.type_.to_string(),
                    status: want.status.as_str().to_string(),
                    reason: want.reason.clone(),
                    message: want.message.clone(),
                    observed_generation: generation,
                    last_transition_time: Time(now),
                });
            }
        }
    }
    merged.sort_by(|a, b| {
        order_of(&a.type_)
            .cmp(&order_of(&b.type_))
            .then(a.type_.cmp(&b.type_))
    });
    (merged, transitions)
}

/// The position of a condition type in [`types::ALL`].
fn order_of(type_: &str) -> usize {
    types::ALL
        .iter()
        .position(|t| *t == type_)
        .unwrap_or(usize::MAX)
}

pub fn find<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

pub fn is_true(conditions: &[Condition], type_: &str) -> bool {
    find(conditions, type_).is_some_and(|c| c.status == "True")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(secs: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + secs).unwrap()
    }

    #[test]
    fn a_new_condition_is_a_transition_from_nothing() {
        let (merged, transitions) = merge(
            &[],
            &[Desired::new(
                types::READY,
                Status::False,
                "Reconciling",
                "starting",
            )],
            Some(1),
            t(0),
        );
        assert_eq!(merged.len(), 1);
        assert_eq!(merged[0].observed_generation, Some(1));
        assert_eq!(transitions[0].from, None);
        assert_eq!(transitions[0].to, "False");
    }

    #[test]
    fn same_status_keeps_the_transition_time_and_reports_no_transition() {
        let (first, _) = merge(
            &[],
            &[Desired::new(
                types::READY,
                Status::True,
                "Ready",
                "all good",
            )],
            Some(1),
            t(0),
        );
        let (second, transitions) = merge(
            &first,
            &[Desired::new(
                types::READY,
                Status::True,
                "Ready",
                "still good",
            )],
            Some(2),
            t(60),
        );
        assert!(transitions.is_empty());
        assert_eq!(
            second[0].last_transition_time,
            first[0].last_transition_time
        );
        assert_eq!(second[0].message, "still good");
        assert_eq!(second[0].observed_generation, Some(2));
    }

    #[test]
    fn a_status_change_moves_the_transition_time() {
        let (first, _) = merge(
            &[],
            &[Desired::new(types::READY, Status::False, "Reconciling", "")],
            Some(1),
            t(0),
        );
        let (second, transitions) = merge(
            &first,
            &[Desired::new(types::READY, Status::True, "Ready", "")],
            Some(1),
            t(30),
        );
        assert_eq!(second[0].last_transition_time, Time(t(30)));
        assert_eq!(transitions.len(), 1);
        assert_eq!(transitions[0].from.as_deref(), Some("False"));
    }

    #[test]
    fn conditions_not_decided_now_are_kept_and_the_list_is_ordered() {
        let (first, _) = merge(
            &[],
            &[Desired::new(
                types::DATABASE_READY,
                Status::True,
                "Available",
                "",
            )],
            Some(1),
            t(0),
        );
        let (second, _) = merge(
            &first,
            &[Desired::new(types::READY, Status::False, "Reconciling", "")],
            Some(1),
            t(1),
        );
        let kinds: Vec<&str> = second.iter().map(|c| c.type_.as_str()).collect();
        assert_eq!(kinds, vec![types::READY, types::DATABASE_READY]);
    }
}
