//! Cloud ports, the pure plans that drive them, and their thin executors.
//!
//! A port is one trait per AWS service, with one handle per region (as one
//! SDK client per region). The simulated cloud (`src/sim/cloud`) and the
//! aws-sdk adapters implement them; plans and executors never know which.

pub mod aurora;
pub mod aws;
pub mod budget;
pub mod elasticache;
mod error;
pub mod executor;
pub mod lag;
pub mod network;
mod tag_map;
pub mod view;

pub use error::{CloudError, TransientKind};

use std::sync::Arc;
use std::time::Duration;

use crate::clock::Clock;
use crate::probe::{NetworkProbe, Probe};

/// The condition reasons every cloud concern shares; each concern's own
/// `reason` module adds its specific ones.
pub mod reason {
    pub const AVAILABLE: &str = "Available";
    pub const CREATING: &str = "Creating";
    pub const WAITING_FOR_PRIMARY: &str = "WaitingForPrimary";
    pub const JOINING: &str = "Joining";
    pub const ADOPTING: &str = "Adopting";
    pub const DELETING: &str = "Deleting";
    pub const AWS_THROTTLED: &str = "AwsThrottled";
    pub const TRANSIENT: &str = "Transient";
    pub const AWS_CONFLICT: &str = "AwsConflict";
    pub const REGION_UNAVAILABLE: &str = "RegionUnavailable";
    pub const DELETION_BLOCKED: &str = "DeletionBlocked";
    pub const DELETION_REFUSED: &str = "DeletionRefused";

    // Terminal: the spec (or a resource in the way) must change.
    pub const ADOPTION_REQUIRED: &str = "AdoptionRequired";
    pub const REFUSED_BY_AWS: &str = "RefusedByAws";
}

/// Requeue intervals of the cloud concerns. AWS operations take minutes;
/// polling faster only spends API quota (shared with every other client in
/// the account).
pub mod requeue {
    use std::time::Duration;

    /// Soon after a step was issued, to report its effect.
    pub const AFTER_ACTION: Duration = Duration::from_secs(10);
    /// While a resource is created, joined or upgraded (minutes).
    pub const LONG_OPERATION: Duration = Duration::from_secs(60);
    /// While members are added or removed, or a resource is briefly busy.
    pub const SHORT_OPERATION: Duration = Duration::from_secs(30);
    /// Converged: refresh lag and endpoints, notice drift.
    pub const STEADY: Duration = Duration::from_secs(120);
    /// Until the user's Secret appears or is fixed.
    pub const AUTH_UNAVAILABLE: Duration = Duration::from_secs(30);
    /// Throttled: back off harder than for other transient errors.
    pub const THROTTLED: Duration = Duration::from_secs(30);
    pub const TRANSIENT: Duration = Duration::from_secs(15);
    pub const REGION_UNAVAILABLE: Duration = Duration::from_secs(30);
    /// A region still unreachable at the next poll: its return is a health
    /// verdict change, which reconciles the shop's ShopRegions at once, so
    /// polling it faster than at rest only adds reconciles to an outage.
    pub const REGION_STILL_UNAVAILABLE: Duration = STEADY;
    /// A state that needs a human or AWS (quota, failed resource).
    pub const NEEDS_ATTENTION: Duration = Duration::from_secs(300);
}

pub use tag_map::Tags;

/// Everything the controller needs from a cloud: one port handle per region
/// and service, the clock the cloud's state runs on, and how many cloud
/// seconds pass per real second (1 for AWS, more for an accelerated
/// simulation), so that "check again in 5 minutes" means 5 cloud minutes.
pub trait Cloud: Send + Sync {
    fn aurora(&self, region: &str) -> Arc<dyn aurora::AuroraPort>;
    fn elasticache(&self, region: &str) -> Arc<dyn elasticache::ElastiCachePort>;
    fn clock(&self) -> Arc<dyn Clock>;
    fn speed(&self) -> u32 {
        1
    }
    /// The data-plane probes of this cloud's regions (TCP to the database
    /// endpoints, the health URLs): the real network for AWS; a simulated
    /// cloud answers them itself, so that its outages are seen.
    fn probe(&self) -> Arc<dyn Probe> {
        Arc::new(NetworkProbe::default())
    }
}

/// A cloud delay expressed in real time, never shorter than `floor` so that an
/// accelerated simulation does not spin.
pub fn real_delay(cloud_delay: Duration, speed: u32, floor: Duration) -> Duration {
    (cloud_delay / speed.max(1)).max(floor)
}

/// The tags put on every resource shopfleet creates, and who a resource
/// belongs to judged from them.
pub mod tags {
    use super::Tags;
    use crate::api::ShopRegionSpec;

    pub const SHOP: &str = "shopfleet.io/shop";
    pub const REGION: &str = "shopfleet.io/region";
    pub const MANAGED_BY: &str = "shopfleet.io/managed-by";
    pub const MANAGER: &str = "shopfleet";

    /// The tags put on everything created for this region: the user's
    /// `spec.tags`, then the ownership tags over them (validation refuses a
    /// user tag under `shopfleet.io/`; this keeps the ownership tags right
    /// even for a spec that skipped validation).
    pub fn resource_tags(spec: &ShopRegionSpec) -> Tags {
        let mut tags = Tags::from(spec.tags.clone());
        tags.extend([
            (SHOP.to_string(), spec.shop.clone()),
            (REGION.to_string(), spec.region.clone()),
            (MANAGED_BY.to_string(), MANAGER.to_string()),
        ]);
        tags
    }

    /// The tags a resource lacks or holds with another value: what an
    /// `AddTagsToResource` must send to bring it to the spec. A tag the user
    /// removed from the spec stays on the resource: another tool or a human
    /// may have set the same key, and the operator cannot tell them apart.
    pub fn tags_to_add(spec: &ShopRegionSpec, resource: &Tags) -> Tags {
        resource_tags(spec)
            .into_iter()
            .filter(|(key, value)| resource.get(key) != Some(value))
            .collect()
    }

    /// Who a resource belongs to, judged from its tags.
    #[derive(Clone, Debug, PartialEq, Eq)]
    pub enum Ownership {
        Ours,
        /// No shopfleet tags: created by hand or by another tool.
        Untagged,
        /// Tagged by shopfleet for another shop.
        OtherShop(String),
    }

    pub fn ownership(resource_tags: &Tags, spec: &ShopRegionSpec) -> Ownership {
        let managed = resource_tags.get(MANAGED_BY) == Some(MANAGER);
        match resource_tags.get(SHOP) {
            Some(shop) if shop == spec.shop && managed => Ownership::Ours,
            Some(shop) if shop != spec.shop => Ownership::OtherShop(shop.to_string()),
            _ => Ownership::Untagged,
        }
    }
}

/// One pass of a cloud concern's deletion.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CleanupOutcome {
    /// Nothing left to delete: the finalizer may be removed.
    Done,
    InProgress {
        requeue: Duration,
    },
    Blocked {
        reason: String,
        message: String,
    },
}

/// The region of a regional ARN (`arn:aws:rds:<region>:<account>:…`); `None`
/// for a global ARN (empty region field) or anything that is not an ARN.
pub fn arn_region(arn: &str) -> Option<&str> {
    let mut parts = arn.splitn(6, ':');
    if parts.next()? != "arn" {
        return None;
    }
    let _partition = parts.next()?;
    let _service = parts.next()?;
    let region = parts.next()?;
    (!region.is_empty()).then_some(region)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cloud_delays_shrink_with_the_simulation_speed_down_to_a_floor() {
        let floor = Duration::from_millis(50);
        assert_eq!(
            real_delay(Duration::from_secs(60), 1, floor),
            Duration::from_secs(60)
        );
        assert_eq!(
            real_delay(Duration::from_secs(60), 60, floor),
            Duration::from_secs(1)
        );
        assert_eq!(real_delay(Duration::from_secs(1), 1000, floor), floor);
        assert_eq!(
            real_delay(Duration::from_secs(6), 0, floor),
            Duration::from_secs(6)
        );
    }

    #[test]
    fn ownership_reads_the_tags() {
        use tags::{Ownership, ownership, resource_tags};
        let spec = crate::api::fixtures::acme("us-east-1");
        assert_eq!(ownership(&resource_tags(&spec), &spec), Ownership::Ours);
        assert_eq!(ownership(&Tags::new(), &spec), Ownership::Untagged);
        let mut other = resource_tags(&spec);
        other.insert(tags::SHOP.into(), "globex".into());
        assert_eq!(
            ownership(&other, &spec),
            Ownership::OtherShop("globex".into())
        );
    }

    #[test]
    fn arn_region_reads_the_fourth_field() {
        assert_eq!(
            arn_region("arn:aws:rds:eu-west-1:123456789012:cluster:acme-eu-west-1"),
            Some("eu-west-1")
        );
        assert_eq!(
            arn_region("arn:aws:rds::123456789012:global-cluster:acme-global"),
            None
        );
        assert_eq!(arn_region("alias/acme"), None);
    }
}
