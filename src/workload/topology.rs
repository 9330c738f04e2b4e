//! The topology a region's pods read: who they are, who writes, and where the
//! database and cache endpoints are. Serialised into the `<name>-topology`
//! ConfigMap, which the order container loads with `envFrom`.

use std::collections::BTreeMap;

use crate::api::{CacheStatus, DatabaseStatus, RegionRole, ShopRegionSpec};

pub mod keys {
    pub const SHOP: &str = "SHOP";
    pub const REGION: &str = "REGION";
    pub const ROLE: &str = "ROLE";
    pub const WRITER_REGION: &str = "WRITER_REGION";
    pub const DATABASE_WRITER_ENDPOINT: &str = "DATABASE_WRITER_ENDPOINT";
    pub const DATABASE_READER_ENDPOINT: &str = "DATABASE_READER_ENDPOINT";
    pub const CACHE_PRIMARY_ENDPOINT: &str = "CACHE_PRIMARY_ENDPOINT";
    pub const CACHE_READER_ENDPOINT: &str = "CACHE_READER_ENDPOINT";
    /// The name of the Secret with the database master user's `username`
    /// and `password` (the pods' environment takes both from it).
    pub const DATABASE_MASTER_SECRET: &str = "DATABASE_MASTER_SECRET";
    pub const DATABASE_USERNAME: &str = "DATABASE_USERNAME";
    pub const DATABASE_PASSWORD: &str = "DATABASE_PASSWORD";
    /// The Redis AUTH token, from `spec.cache.authSecretRef`.
    pub const CACHE_AUTH_TOKEN: &str = "CACHE_AUTH_TOKEN";
}

/// What the pods of one region must know about the fleet. The endpoints stay
/// `None` until the database and cache reconcilers learn them from AWS.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Topology {
    pub shop: String,
    pub region: String,
    pub role: RegionRole,
    pub writer_region: Option<String>,
    pub database_writer_endpoint: Option<String>,
    pub database_reader_endpoint: Option<String>,
    pub cache_primary_endpoint: Option<String>,
    pub cache_reader_endpoint: Option<String>,
    pub database_master_secret: Option<String>,
    /// Fingerprint of the Redis AUTH token the pods should run with: the
    /// one being rotated in, else the one applied. Not in the ConfigMap: it
    /// is the pod template's, so that a new token rolls the pods.
    pub cache_auth_token: Option<String>,
}

impl Topology {
    /// The topology the concerns before the workload found: the role and
    /// writer region ([`role_and_writer`]) and the endpoints AWS reported.
    pub fn of(
        spec: &ShopRegionSpec,
        database: Option<&DatabaseStatus>,
        cache: Option<&CacheStatus>,
        aws_writer: Option<&str>,
    ) -> Self {
        let (role, writer_region) = role_and_writer(spec, database, aws_writer);
        let mut topology = Topology::new(spec, role);
        topology.writer_region = writer_region;
        if let Some(db) = database {
            topology.database_writer_endpoint = db.writer_endpoint.clone();
            topology.database_reader_endpoint = db.reader_endpoint.clone();
            topology.database_master_secret = db.master_user_secret.clone();
        }
        if let Some(c) = cache {
            topology.cache_primary_endpoint = c.primary_endpoint.clone();
            topology.cache_reader_endpoint = c.reader_endpoint.clone();
            topology.cache_auth_token = c
                .auth_token
                .as_ref()
                .and_then(|a| a.rotating_to.clone().or_else(|| a.applied.clone()));
        }
        topology
    }

    /// A topology with only what the spec says; the role comes from the
    /// caller (status or the failover engine), endpoints are filled in later.
    pub fn new(spec: &ShopRegionSpec, role: RegionRole) -> Self {
        Self {
            shop: spec.shop.clone(),
            region: spec.region.clone(),
            role,
            writer_region: None,
            database_writer_endpoint: None,
            database_reader_endpoint: None,
            cache_primary_endpoint: None,
            cache_reader_endpoint: None,
            database_master_secret: None,
            cache_auth_token: None,
        }
    }

    /// The ConfigMap data. Every key is always present (empty when unknown) so
    /// that the pods see a stable set of variables and a missing endpoint is
    /// an empty string, not an unset variable that falls back to a default.
    /// The topology with every endpoint it does not know taken from the one
    /// last published (the topology ConfigMap's data): a read that cannot
    /// see a cluster or a replication group for a while must not hand the
    /// pods an empty endpoint, nor roll them to one. A new value always
    /// wins; role and writer region are never carried over.
    pub fn or_last_known(mut self, published: Option<&BTreeMap<String, String>>) -> Self {
        let Some(published) = published else {
            return self;
        };
        let carried = [
            (
                &mut self.database_writer_endpoint,
                keys::DATABASE_WRITER_ENDPOINT,
            ),
            (
                &mut self.database_reader_endpoint,
                keys::DATABASE_READER_ENDPOINT,
            ),
            (
                &mut self.cache_primary_endpoint,
                keys::CACHE_PRIMARY_ENDPOINT,
            ),
            (&mut self.cache_reader_endpoint, keys::CACHE_READER_ENDPOINT),
            (
                &mut self.database_master_secret,
                keys::DATABASE_MASTER_SECRET,
            ),
        ];
        for (field, key) in carried {
            if field.is_none()
                && let Some(last) = published.get(key).filter(|v| !v.is_empty())
            {
                *field = Some(last.clone());
            }
        }
        self
    }

    /// What the order pods' template needs of the cloud and does not have
    /// yet, in words for the condition's message. Each of these is in the
    /// template, so creating the Deployment before they are all known
    /// would roll its pods once per value as the cloud comes up.
    ///
    /// Not the database writer endpoint: a secondary's is the global
    /// writer endpoint, which exists before the secondary's own cluster
    /// (so before its reader endpoint) where AWS offers one, and never
    /// where it does not; waiting for it would hold such a region's pods
    /// forever.
    pub fn missing_for_pods(&self, spec: &ShopRegionSpec) -> Vec<&'static str> {
        let mut missing = Vec::new();
        let unknown = |v: &Option<String>| v.as_deref().is_none_or(str::is_empty);
        if unknown(&self.database_reader_endpoint) {
            missing.push("the database reader endpoint");
        }
        if unknown(&self.database_master_secret) {
            missing.push("the database master Secret");
        }
        if unknown(&self.cache_reader_endpoint) {
            missing.push("the cache reader endpoint");
        }
        if spec.cache.auth_secret_ref.is_some() && unknown(&self.cache_auth_token) {
            missing.push("the cache AUTH token");
        }
        missing
    }

    pub fn data(&self) -> BTreeMap<String, String> {
        let opt = |v: &Option<String>| v.clone().unwrap_or_default();
        [
            (keys::SHOP, self.shop.clone()),
            (keys::REGION, self.region.clone()),
            (keys::ROLE, self.role.as_topology_value().to_string()),
            (keys::WRITER_REGION, opt(&self.writer_region)),
            (
                keys::DATABASE_WRITER_ENDPOINT,
                opt(&self.database_writer_endpoint),
            ),
            (
                keys::DATABASE_READER_ENDPOINT,
                opt(&self.database_reader_endpoint),
            ),
            (
                keys::CACHE_PRIMARY_ENDPOINT,
                opt(&self.cache_primary_endpoint),
            ),
            (
                keys::CACHE_READER_ENDPOINT,
                opt(&self.cache_reader_endpoint),
            ),
            (
                keys::DATABASE_MASTER_SECRET,
                opt(&self.database_master_secret),
            ),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }
}

/// This region's role and the writer region: what AWS reports once the global
/// cluster knows its writer, the spec's initial choice until then. The
/// database concern's fresh read comes first; when its region's API cannot
/// be reached, the writer the failover concern read through another
/// region's endpoint (`aws_writer`), so that a lost writer region demotes
/// itself as soon as AWS shows another writer.
pub fn role_and_writer(
    spec: &ShopRegionSpec,
    database: Option<&DatabaseStatus>,
    aws_writer: Option<&str>,
) -> (RegionRole, Option<String>) {
    let fresh = database.filter(|db| db.last_error.is_none() && db.writer_region.is_some());
    if fresh.is_none()
        && let Some(writer) = aws_writer
    {
        let role = if writer == spec.region {
            RegionRole::Primary
        } else {
            RegionRole::Secondary
        };
        return (role, Some(writer.to_string()));
    }
    match database {
        Some(db) if db.writer_region.is_some() => {
            let role = if db.writer {
                RegionRole::Primary
            } else {
                RegionRole::Secondary
            };
            (role, db.writer_region.clone())
        }
        _ => (initial_role(spec), spec.failover.order.first().cloned()),
    }
}

/// The role the spec gives this region before any cloud state is known: the
/// first region of `failover.order` is the initial writer.
fn initial_role(spec: &ShopRegionSpec) -> RegionRole {
    if spec.failover.order.first() == Some(&spec.region) {
        RegionRole::Primary
    } else {
        RegionRole::Secondary
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::fixtures::acme;

    fn eu() -> Topology {
        Topology::new(&acme("eu-west-1"), RegionRole::Secondary)
    }

    fn complete(t: &mut Topology) {
        t.database_writer_endpoint = Some("acme.global-x.global.rds.amazonaws.com".into());
        t.database_reader_endpoint = Some("acme-eu-west-1.cluster-ro-x.rds.amazonaws.com".into());
        t.database_master_secret = Some("acme-database-master".into());
        t.cache_reader_endpoint = Some("replica.acme-eu-west-1.cache.amazonaws.com".into());
    }

    #[test]
    fn an_endpoint_the_cloud_stops_showing_keeps_its_last_published_value() {
        let mut last = eu();
        complete(&mut last);
        last.cache_primary_endpoint = Some("master.acme-us-east-1.cache.amazonaws.com:6379".into());
        last.writer_region = Some("us-east-1".into());
        let published = last.data();

        let mut now = eu();
        now.database_reader_endpoint =
            Some("acme-eu-west-1.cluster-ro-new.rds.amazonaws.com".into());
        now.writer_region = Some("eu-west-1".into());
        let kept = now.or_last_known(Some(&published));
        assert_eq!(kept.database_writer_endpoint, last.database_writer_endpoint);
        assert_eq!(kept.cache_reader_endpoint, last.cache_reader_endpoint);
        assert_eq!(kept.cache_primary_endpoint, last.cache_primary_endpoint);
        assert_eq!(kept.database_master_secret, last.database_master_secret);
        assert_eq!(
            kept.database_reader_endpoint.as_deref(),
            Some("acme-eu-west-1.cluster-ro-new.rds.amazonaws.com"),
            "a new value wins"
        );
        assert_eq!(kept.writer_region.as_deref(), Some("eu-west-1"));

        let never_published = eu().data();
        assert_eq!(eu().or_last_known(Some(&never_published)), eu());
        assert_eq!(eu().or_last_known(None), eu());
    }

    #[test]
    fn the_order_pods_wait_for_their_endpoints_and_the_auth_token_only_when_the_cache_has_one() {
        let mut spec = acme("eu-west-1");
        assert_eq!(
            eu().missing_for_pods(&spec),
            [
                "the database reader endpoint",
                "the database master Secret",
                "the cache reader endpoint"
            ]
        );
        let mut t = eu();
        complete(&mut t);
        assert!(t.missing_for_pods(&spec).is_empty());
        t.database_writer_endpoint = None;
        assert!(
            t.missing_for_pods(&spec).is_empty(),
            "an engine without a global writer endpoint gives a secondary none"
        );

        spec.cache.auth_secret_ref = Some(crate::api::SecretKeyRef {
            name: "acme-cache-auth".into(),
            key: "token".into(),
        });
        assert_eq!(t.missing_for_pods(&spec), ["the cache AUTH token"]);
        t.cache_auth_token = Some("0123456789abcdef".into());
        assert!(t.missing_for_pods(&spec).is_empty());
    }

    #[test]
    fn unknown_endpoints_are_empty_strings() {
        let data = eu().data();
        assert_eq!(data.len(), 9);
        assert_eq!(data[keys::SHOP], "acme");
        assert_eq!(data[keys::REGION], "eu-west-1");
        assert_eq!(data[keys::ROLE], "secondary");
        assert_eq!(data[keys::WRITER_REGION], "");
        assert_eq!(data[keys::DATABASE_WRITER_ENDPOINT], "");
        assert_eq!(data[keys::CACHE_READER_ENDPOINT], "");
    }

    #[test]
    fn known_endpoints_are_published() {
        let mut t = eu();
        t.writer_region = Some("us-east-1".into());
        t.database_writer_endpoint = Some("acme-us-east-1.cluster-x.rds.amazonaws.com".into());
        t.database_reader_endpoint = Some("acme-eu-west-1.cluster-ro-x.rds.amazonaws.com".into());
        t.cache_primary_endpoint = Some("master.acme-us-east-1.cache.amazonaws.com".into());
        t.cache_reader_endpoint = Some("replica.acme-eu-west-1.cache.amazonaws.com".into());
        let data = t.data();
        assert_eq!(data[keys::WRITER_REGION], "us-east-1");
        assert_eq!(
            data[keys::DATABASE_READER_ENDPOINT],
            "acme-eu-west-1.cluster-ro-x.rds.amazonaws.com"
        );
        assert_eq!(
            data[keys::CACHE_PRIMARY_ENDPOINT],
            "master.acme-us-east-1.cache.amazonaws.com"
        );
    }

    #[test]
    fn the_spec_names_the_writer_until_aws_reports_one() {
        let spec = crate::api::fixtures::acme("eu-west-1");
        assert_eq!(
            role_and_writer(&spec, None, None),
            (RegionRole::Secondary, Some("us-east-1".into()))
        );
        let promoted = DatabaseStatus {
            writer: true,
            writer_region: Some("eu-west-1".into()),
            ..Default::default()
        };
        assert_eq!(
            role_and_writer(&spec, Some(&promoted), Some("eu-west-1")),
            (RegionRole::Primary, Some("eu-west-1".into()))
        );
        let unknown = DatabaseStatus::default();
        assert_eq!(
            role_and_writer(&spec, Some(&unknown), None).0,
            RegionRole::Secondary
        );
    }

    #[test]
    fn a_region_whose_api_is_unreachable_follows_the_writer_aws_shows_elsewhere() {
        let spec = crate::api::fixtures::acme("us-east-1");
        let stale = DatabaseStatus {
            writer: true,
            writer_region: Some("us-east-1".into()),
            last_error: Some("region us-east-1 unavailable".into()),
            ..Default::default()
        };
        assert_eq!(
            role_and_writer(&spec, Some(&stale), Some("eu-west-1")),
            (RegionRole::Secondary, Some("eu-west-1".into()))
        );
        // Without another view, the last known role holds.
        assert_eq!(
            role_and_writer(&spec, Some(&stale), None),
            (RegionRole::Primary, Some("us-east-1".into()))
        );
    }
}
