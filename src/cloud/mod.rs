//! Cloud ports, the pure plans that drive them, and their thin executors.
//!
//! A port is one trait per AWS service, with one handle per region (as one
//! SDK client per region). The simulated cloud (`crate::sim::cloud`) and the
//! aws-sdk adapters implement them; plans and executors never know which.

pub mod aurora;
mod error;

pub use error::{CloudError, TransientKind};

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
