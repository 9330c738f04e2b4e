//! Cloud ports, the pure plans that drive them, and their thin executors.
//!
//! A port is one trait per AWS service, with one handle per region (as one
//! SDK client per region). The simulated cloud (`crate::sim::cloud`) and the
//! aws-sdk adapters implement them; plans and executors never know which.

pub mod aurora;
pub mod aws;
mod error;

pub use error::{CloudError, TransientKind};

use std::sync::Arc;
use std::time::Duration;

use crate::clock::Clock;

/// Everything the controller needs from a cloud: one port handle per region
/// and service, the clock the cloud's state runs on, and how many cloud
/// seconds pass per real second (1 for AWS, more for an accelerated
/// simulation), so that "check again in 5 minutes" means 5 cloud minutes.
pub trait Cloud: Send + Sync {
    fn aurora(&self, region: &str) -> Arc<dyn aurora::AuroraPort>;
    fn clock(&self) -> Arc<dyn Clock>;
    fn speed(&self) -> u32 {
        1
    }
}

/// A cloud delay expressed in real time, never shorter than `floor` so that an
/// accelerated simulation does not spin.
pub fn real_delay(cloud_delay: Duration, speed: u32, floor: Duration) -> Duration {
    (cloud_delay / speed.max(1)).max(floor)
}

/// Tag keys put on every resource shopfleet creates.
pub mod tags {
    pub const SHOP: &str = "shopfleet.io/shop";
    pub const REGION: &str = "shopfleet.io/region";
    pub const MANAGED_BY: &str = "shopfleet.io/managed-by";
    pub const MANAGER: &str = "shopfleet";
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
