//! The account's network, checked before anything of a region is created.
//!
//! A subnet group that the region does not hold would fail one create
//! while the other service's create goes through: a region half-created in
//! the account. So both subnet groups a spec names are looked up first,
//! together, for as long as either resource does not exist yet (its status
//! says so); a missing one stalls the ShopRegion with the field and the
//! group named, and nothing is created. Once both exist, each reports its
//! own subnet group and the lookup costs nothing.

use crate::api::{ShopRegionSpec, ShopRegionStatus, SpecError};

use super::Cloud;

pub mod reason {
    pub const SUBNET_GROUP_NOT_FOUND: &str = "SubnetGroupNotFound";
}

/// What the lookups found: `None` where nothing was looked up (no network
/// named, the resource exists already, or AWS could not be read: the
/// concerns then report the failed read themselves).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NetworkFound {
    pub database: Option<bool>,
    pub cache: Option<bool>,
}

/// Pure: the spec errors the lookups imply.
pub fn network_errors(spec: &ShopRegionSpec, found: NetworkFound) -> Vec<SpecError> {
    let mut errors = Vec::new();
    if let (Some(network), Some(false)) = (&spec.database.network, found.database) {
        errors.push(SpecError {
            reason: reason::SUBNET_GROUP_NOT_FOUND,
            field: "spec.database.network.subnetGroupName".into(),
            message: format!(
                "DB subnet group {:?} does not exist in {}; create it from the shop's VPC subnets in this region, or name an existing one. Nothing was created",
                network.subnet_group_name, spec.region
            ),
        });
    }
    if let (Some(network), Some(false)) = (&spec.cache.network, found.cache) {
        errors.push(SpecError {
            reason: reason::SUBNET_GROUP_NOT_FOUND,
            field: "spec.cache.network.subnetGroupName".into(),
            message: format!(
                "cache subnet group {:?} does not exist in {}; create it from the shop's VPC subnets in this region, or name an existing one. Nothing was created",
                network.subnet_group_name, spec.region
            ),
        });
    }
    errors
}

/// Looks up the subnet groups of what is still to be created.
pub async fn look_up(
    cloud: &dyn Cloud,
    spec: &ShopRegionSpec,
    status: Option<&ShopRegionStatus>,
) -> NetworkFound {
    let cluster_exists = status
        .and_then(|s| s.database.as_ref())
        .is_some_and(|d| d.cluster_status.is_some());
    let group_exists = status
        .and_then(|s| s.cache.as_ref())
        .is_some_and(|c| c.replication_group_status.is_some());
    let mut found = NetworkFound::default();
    if let Some(network) = spec.database.network.as_ref().filter(|_| !cluster_exists) {
        found.database = cloud
            .aurora(&spec.region)
            .describe_subnet_group(&network.subnet_group_name)
            .await
            .ok()
            .map(|group| group.is_some());
    }
    if let Some(network) = spec.cache.network.as_ref().filter(|_| !group_exists) {
        found.cache = cloud
            .elasticache(&spec.region)
            .cache_subnet_group_exists(&network.subnet_group_name)
            .await
            .ok();
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::fixtures::acme;
    use crate::api::{CacheNetwork, DatabaseNetwork};

    fn networked() -> ShopRegionSpec {
        let mut spec = acme("us-east-1");
        spec.database.network = Some(DatabaseNetwork {
            subnet_group_name: "acme-db".into(),
            security_group_ids: vec![],
            port: None,
        });
        spec.cache.network = Some(CacheNetwork {
            subnet_group_name: "acme-cache".into(),
            security_group_ids: vec![],
        });
        spec
    }

    #[test]
    fn each_missing_subnet_group_is_an_error_naming_its_field_group_and_region() {
        let errors = network_errors(
            &networked(),
            NetworkFound {
                database: Some(false),
                cache: Some(false),
            },
        );
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "spec.database.network.subnetGroupName",
                "spec.cache.network.subnetGroupName"
            ]
        );
        assert!(
            errors[0].message.contains("\"acme-db\"") && errors[0].message.contains("us-east-1")
        );
        assert!(errors[1].message.contains("\"acme-cache\""));
    }

    #[test]
    fn found_or_not_looked_up_is_no_error() {
        let spec = networked();
        for found in [
            NetworkFound::default(),
            NetworkFound {
                database: Some(true),
                cache: Some(true),
            },
        ] {
            assert!(network_errors(&spec, found).is_empty());
        }
    }
}
