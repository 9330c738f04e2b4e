//! Deterministic identifiers, and the rules AWS sets for what may join a
//! Global Datastore.
//!
//! The replication group identifier derives from shop and region only, so a
//! restarted operator, a second replica or a crash between "create" and
//! "record" all find the same group again instead of creating a duplicate.
//!
//! The Global Datastore is different: AWS names it `<prefix>-<suffix>`, where
//! the prefix belongs to the region it was created in (`ldgnf` for
//! us-east-1, `gxeiz` for eu-west-1, …) and only the suffix is ours. Every
//! region therefore finds it by suffix, never by a name it would have to
//! guess.

use crate::api::ShopRegionSpec;

pub use crate::cloud::tags::{Ownership, ownership, resource_tags};

use super::port::{GlobalReplicationGroup, GlobalReplicationGroupStatus};

/// `<shop>-<region>`, e.g. `acme-us-east-1` (at most 24 + 1 + 14 characters,
/// within ElastiCache's 40).
pub fn replication_group_id(spec: &ShopRegionSpec) -> String {
    replication_group_id_in(spec, &spec.region)
}

/// The replication group of the shop in another `region`.
pub fn replication_group_id_in(spec: &ShopRegionSpec, region: &str) -> String {
    replication_group_id_of(&spec.shop, region)
}

/// The replication group of `shop` in `region`.
pub fn replication_group_id_of(shop: &str, region: &str) -> String {
    format!("{shop}-{region}")
}

/// `spec.cache.globalReplicationGroupSuffix`, else the shop.
pub fn global_suffix(spec: &ShopRegionSpec) -> String {
    spec.cache
        .global_replication_group_suffix
        .clone()
        .unwrap_or_else(|| spec.shop.clone())
}

/// The suffix of a Global Datastore id: what follows the region prefix
/// (AWS's prefixes contain no dash).
pub fn suffix_of(global_replication_group_id: &str) -> Option<&str> {
    global_replication_group_id
        .split_once('-')
        .map(|(_, suffix)| suffix)
        .filter(|s| !s.is_empty())
}

/// The shop's Global Datastore among every one the account has: the one
/// whose suffix is ours. AWS keeps suffixes unique; should two ever show
/// (one still being deleted), the live one wins.
pub fn find_global<'a>(
    globals: &'a [GlobalReplicationGroup],
    suffix: &str,
) -> Option<&'a GlobalReplicationGroup> {
    globals
        .iter()
        .filter(|g| suffix_of(&g.id) == Some(suffix))
        .min_by_key(|g| {
            (
                g.status == GlobalReplicationGroupStatus::Deleting,
                g.id.clone(),
            )
        })
}

/// `<group>-final-<creation time>`, the final snapshot taken by
/// `deletionPolicy: Snapshot`; the creation time keeps a shop that is
/// deleted, recreated and deleted again from colliding with its own earlier
/// snapshot.
pub fn final_snapshot_id(
    replication_group_id: &str,
    created_at: Option<k8s_openapi::jiff::Timestamp>,
) -> String {
    match created_at {
        Some(t) => format!(
            "{replication_group_id}-final-{}",
            t.strftime("%Y%m%d%H%M%S")
        ),
        None => format!("{replication_group_id}-final"),
    }
}

/// Node families AWS lists for Global Datastores. Older generations (m4,
/// r4) and burstable ones (t2, t3, t4g) are not supported.
const GLOBAL_NODE_FAMILIES: [&str; 7] = ["m5", "m6g", "m7g", "r5", "r6g", "r6gd", "r7g"];

/// Whether a Global Datastore can hold nodes of this type: a listed family,
/// size `large` or bigger. `Err` says why not, for the user.
pub fn check_global_node_type(node_type: &str) -> Result<(), String> {
    let normalised = normalise_node_type(node_type);
    let Some((family, size)) = normalised
        .strip_prefix("cache.")
        .and_then(|rest| rest.split_once('.'))
    else {
        return Err(format!(
            "{node_type} is not a node type (expected cache.<family>.<size>)"
        ));
    };
    if !GLOBAL_NODE_FAMILIES.contains(&family) {
        return Err(format!(
            "Global Datastores do not support the {family} family; use one of {}",
            GLOBAL_NODE_FAMILIES.join(", ")
        ));
    }
    let large_or_bigger = size == "large"
        || size
            .strip_suffix("xlarge")
            .is_some_and(|n| n.is_empty() || n.chars().all(|c| c.is_ascii_digit()));
    if !large_or_bigger {
        return Err(format!(
            "Global Datastores need nodes of size large or bigger, not {size}"
        ));
    }
    Ok(())
}

/// Node types as AWS reports them: lowercase, no surrounding space.
pub fn normalise_node_type(node_type: &str) -> String {
    node_type.trim().to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::fixtures::acme;

    fn global(id: &str, status: GlobalReplicationGroupStatus) -> GlobalReplicationGroup {
        GlobalReplicationGroup {
            id: id.into(),
            arn: format!("arn:aws:elasticache::123456789012:globalreplicationgroup:{id}"),
            description: None,
            status,
            cache_node_type: "cache.r6g.large".into(),
            engine: "redis".into(),
            engine_version: "7.1".into(),
            cluster_enabled: false,
            num_node_groups: 1,
            auth_token_enabled: false,
            transit_encryption_enabled: true,
            at_rest_encryption_enabled: true,
            members: vec![],
        }
    }

    #[test]
    fn identifiers_are_deterministic() {
        let spec = acme("ap-northeast-1");
        assert_eq!(replication_group_id(&spec), "acme-ap-northeast-1");
        assert_eq!(global_suffix(&spec), "acme");
        let mut named = spec.clone();
        named.cache.global_replication_group_suffix = Some("orders-cache".into());
        assert_eq!(global_suffix(&named), "orders-cache");
    }

    #[test]
    fn the_global_datastore_is_found_by_suffix_whatever_its_region_prefix() {
        let globals = vec![
            global("ldgnf-globex", GlobalReplicationGroupStatus::Available),
            global("gxeiz-acme", GlobalReplicationGroupStatus::Available),
            global("ldgnf-acme-old", GlobalReplicationGroupStatus::Available),
        ];
        assert_eq!(
            find_global(&globals, "acme").map(|g| g.id.as_str()),
            Some("gxeiz-acme")
        );
        assert_eq!(find_global(&globals, "initech"), None);
        assert_eq!(suffix_of("ldgnf-acme-old"), Some("acme-old"));
        assert_eq!(suffix_of("acme"), None);
    }

    #[test]
    fn a_live_global_datastore_wins_over_one_being_deleted() {
        let globals = vec![
            global("ldgnf-acme", GlobalReplicationGroupStatus::Deleting),
            global("quwsw-acme", GlobalReplicationGroupStatus::PrimaryOnly),
        ];
        assert_eq!(
            find_global(&globals, "acme").map(|g| g.id.as_str()),
            Some("quwsw-acme")
        );
    }

    #[test]
    fn global_datastores_take_current_families_of_size_large_and_up() {
        for ok in [
            "cache.r6g.large",
            "cache.m5.xlarge",
            "cache.r7g.16xlarge",
            "cache.r6gd.2xlarge",
            " CACHE.R6G.LARGE ",
        ] {
            assert_eq!(check_global_node_type(ok), Ok(()), "{ok}");
        }
        for bad in [
            "cache.t3.medium",
            "cache.t4g.large",
            "cache.r4.large",
            "cache.m5.medium",
            "cache.r6g.small",
            "r6g.large",
        ] {
            assert!(check_global_node_type(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn final_snapshots_are_named_after_the_group_and_its_creation() {
        let t = k8s_openapi::jiff::Timestamp::from_second(1_735_689_600).unwrap();
        assert_eq!(
            final_snapshot_id("acme-eu-west-1", Some(t)),
            "acme-eu-west-1-final-20250101000000"
        );
        assert_eq!(
            final_snapshot_id("acme-eu-west-1", None),
            "acme-eu-west-1-final"
        );
    }
}

/// Whether Redis `running` satisfies the `wanted` version of the spec. AWS
/// takes `7.1` and may report `7.1.0`, and it upgrades minors on its own:
/// the spec's version matches when its components, trailing zeros aside,
/// lead the running one's, or the running one is newer within the major.
pub fn engine_version_satisfied(wanted: &str, running: &str) -> bool {
    fn parts(version: &str) -> Vec<u64> {
        let mut parts: Vec<u64> = version.split('.').map_while(|p| p.parse().ok()).collect();
        while parts.len() > 1 && parts.last() == Some(&0) {
            parts.pop();
        }
        parts
    }
    let (wanted, running) = (parts(wanted), parts(running));
    if wanted.is_empty() || running.is_empty() || wanted[0] != running[0] {
        return false;
    }
    running.starts_with(&wanted) || running >= wanted
}

#[cfg(test)]
mod version_tests {
    use super::engine_version_satisfied;

    #[test]
    fn what_aws_reports_back_for_a_requested_version_is_no_diff() {
        assert!(engine_version_satisfied("7.1", "7.1.0"));
        assert!(engine_version_satisfied("7.1.0", "7.1"));
        assert!(engine_version_satisfied("7", "7.1.0"));
        assert!(engine_version_satisfied("6.2", "6.2.6"));
    }

    #[test]
    fn a_newer_minor_that_aws_applied_satisfies_an_older_request() {
        assert!(engine_version_satisfied("7.0", "7.1.0"));
    }

    #[test]
    fn an_older_running_version_or_another_major_is_a_diff() {
        assert!(!engine_version_satisfied("7.1", "7.0.7"));
        assert!(!engine_version_satisfied("7.1", "6.2.6"));
        assert!(!engine_version_satisfied("6.2", "7.1.0"));
    }
}
