//! Deterministic identifiers, ownership tags and engine-version comparison.
//!
//! Identifiers derive from shop and region only, so a restarted operator, a
//! second replica or a crash between "create" and "record" all find the same
//! resources again instead of creating duplicates.
//!
//! Instances are named `<cluster>-<n>` with n = 0, 1, 2… in creation order:
//! instance 0 is created first and becomes the writer of a primary cluster,
//! the others are readers. Aurora can move the writer role to any instance
//! (in-region failover), so the name records the creation slot, not the role.

use crate::api::ShopRegionSpec;

pub use crate::cloud::tags::{Ownership, ownership, resource_tags};

/// `<shop>-<region>`, e.g. `acme-us-east-1`.
pub fn cluster_id(spec: &ShopRegionSpec) -> String {
    cluster_id_in(spec, &spec.region)
}

/// The cluster of the shop in another `region` (the failover concern
/// watches every region of the shop).
pub fn cluster_id_in(spec: &ShopRegionSpec, region: &str) -> String {
    cluster_id_of(&spec.shop, region)
}

/// The cluster of `shop` in `region`.
pub fn cluster_id_of(shop: &str, region: &str) -> String {
    format!("{shop}-{region}")
}

/// `spec.database.globalClusterIdentifier`, else `<shop>-global`.
pub fn global_cluster_id(spec: &ShopRegionSpec) -> String {
    spec.database
        .global_cluster_identifier
        .clone()
        .unwrap_or_else(|| format!("{}-global", spec.shop))
}

/// The Kubernetes Secret (in the ShopRegion's namespace) that holds the
/// shop's database master user: keys `username` and `password`. One per
/// shop, shared by its regions: a secondary's cluster replicates the
/// primary's users, so the same credentials work wherever the writer is.
pub fn master_secret_name(spec: &ShopRegionSpec) -> String {
    format!("{}-database-master", spec.shop)
}

/// Whether `version` must be resolved to a full version before a create.
/// AWS documents a major-only `EngineVersion` in `CreateDBCluster` for
/// Aurora MySQL alone (`5.7`, `8.0`); for Aurora PostgreSQL a major such as
/// `16` is resolved to the region's default minor.
pub fn needs_resolution(engine: crate::api::AuroraEngine, version: &str) -> bool {
    engine == crate::api::AuroraEngine::AuroraPostgresql && !version.contains('.')
}

/// `<cluster>-<slot>`.
pub fn instance_id(cluster_id: &str, slot: u32) -> String {
    format!("{cluster_id}-{slot}")
}

/// The slot of an instance named by [`instance_id`], `None` for an instance
/// that someone else named (an adopted cluster's).
pub fn instance_slot(cluster_id: &str, instance_id: &str) -> Option<u32> {
    let rest = instance_id.strip_prefix(cluster_id)?.strip_prefix('-')?;
    if rest.is_empty() || (rest.len() > 1 && rest.starts_with('0')) {
        return None;
    }
    rest.parse().ok()
}

/// `<cluster>-final`, the final snapshot taken by `deletionPolicy: Snapshot`,
/// suffixed with the cluster's creation time when known so that a shop
/// deleted, recreated and deleted again does not collide with its own
/// earlier snapshot.
pub fn final_snapshot_id(
    cluster_id: &str,
    created_at: Option<k8s_openapi::jiff::Timestamp>,
) -> String {
    match created_at {
        Some(t) => format!("{cluster_id}-final-{}", t.strftime("%Y%m%d%H%M%S")),
        None => format!("{cluster_id}-final"),
    }
}

/// How the running engine version compares with the one the user asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VersionMatch {
    /// The user's version is a prefix of the running one on component
    /// boundaries: `16` or `16.4` against `16.4`, `8.0` against
    /// `8.0.mysql_aurora.3.08.0`.
    Satisfied,
    /// Same major, the user named a newer full version: a minor upgrade.
    UpgradeMinor,
    /// Same major, AWS runs a newer minor than the one named (for example
    /// after an automatic minor upgrade). AWS cannot downgrade, so this is
    /// accepted, not a diff.
    NewerThanRequested,
    /// A different major version.
    OtherMajor,
}

/// Compares the user's version with what AWS runs, on normalised
/// components. Only the components the user gave are compared.
pub fn compare_version(wanted: &str, running: &str) -> VersionMatch {
    let want: Vec<&str> = components(wanted);
    let have: Vec<&str> = components(running);
    if want.is_empty() || have.is_empty() || want[0] != have[0] || mysql_major_differs(&want, &have)
    {
        return VersionMatch::OtherMajor;
    }
    if have.len() >= want.len() && have[..want.len()] == want[..] {
        return VersionMatch::Satisfied;
    }
    for (w, h) in want.iter().zip(have.iter()) {
        if w == h {
            continue;
        }
        return match (w.parse::<u64>(), h.parse::<u64>()) {
            (Ok(w), Ok(h)) if w < h => VersionMatch::NewerThanRequested,
            (Ok(_), Ok(_)) => VersionMatch::UpgradeMinor,
            // Non-numeric components (`mysql_aurora`) compare as text.
            _ if w < h => VersionMatch::NewerThanRequested,
            _ => VersionMatch::UpgradeMinor,
        };
    }
    // The user gave more components than AWS reports: treat the extra
    // precision as a request for that exact version.
    VersionMatch::UpgradeMinor
}

/// MySQL-compatible Aurora's major is two components (`8.0`); PostgreSQL's
/// is one (`16`). A one-component request against a MySQL version like
/// `8.0.mysql_aurora…` still matches its first component; this only guards
/// a `5.7` vs `8.0` style mismatch where the second component is the major.
fn mysql_major_differs(want: &[&str], have: &[&str]) -> bool {
    let mysql = have.iter().any(|c| c.starts_with("mysql_aurora"));
    mysql && want.len() >= 2 && have.len() >= 2 && want[1] != have[1]
}

fn components(version: &str) -> Vec<&str> {
    version
        .trim()
        .split(['.', '-'])
        .filter(|c| !c.is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::fixtures::acme;

    #[test]
    fn identifiers_are_deterministic() {
        let spec = acme("us-east-1");
        assert_eq!(cluster_id(&spec), "acme-us-east-1");
        assert_eq!(global_cluster_id(&spec), "acme-global");
        assert_eq!(instance_id("acme-us-east-1", 2), "acme-us-east-1-2");
        let mut named = spec.clone();
        named.database.global_cluster_identifier = Some("orders-global".into());
        assert_eq!(global_cluster_id(&named), "orders-global");
    }

    #[test]
    fn instance_slots_parse_only_our_names() {
        assert_eq!(instance_slot("acme-us-east-1", "acme-us-east-1-0"), Some(0));
        assert_eq!(
            instance_slot("acme-us-east-1", "acme-us-east-1-12"),
            Some(12)
        );
        assert_eq!(instance_slot("acme-us-east-1", "acme-us-east-1-01"), None);
        assert_eq!(
            instance_slot("acme-us-east-1", "acme-us-east-1-writer"),
            None
        );
        assert_eq!(instance_slot("acme-us-east-1", "legacy-db-1"), None);
    }

    #[test]
    fn a_major_version_matches_any_minor() {
        assert_eq!(compare_version("16", "16.4"), VersionMatch::Satisfied);
        assert_eq!(compare_version("16.4", "16.4"), VersionMatch::Satisfied);
        assert_eq!(
            compare_version("8.0", "8.0.mysql_aurora.3.08.0"),
            VersionMatch::Satisfied
        );
    }

    #[test]
    fn a_newer_full_version_is_a_minor_upgrade() {
        assert_eq!(compare_version("16.4", "16.2"), VersionMatch::UpgradeMinor);
        assert_eq!(compare_version("16.10", "16.9"), VersionMatch::UpgradeMinor);
        assert_eq!(
            compare_version("16.4.1", "16.4"),
            VersionMatch::UpgradeMinor
        );
    }

    #[test]
    fn an_older_full_version_is_accepted_not_downgraded() {
        assert_eq!(
            compare_version("16.2", "16.4"),
            VersionMatch::NewerThanRequested
        );
    }

    #[test]
    fn a_different_major_is_reported() {
        assert_eq!(compare_version("15", "16.4"), VersionMatch::OtherMajor);
        assert_eq!(
            compare_version("5.7", "8.0.mysql_aurora.3.08.0"),
            VersionMatch::OtherMajor
        );
        assert_eq!(compare_version("16", "160.1"), VersionMatch::OtherMajor);
    }

    #[test]
    fn final_snapshots_are_named_after_the_cluster_and_its_creation() {
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
