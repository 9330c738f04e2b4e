//! The `acme` shop as in `samples/`, for unit tests.

use super::*;

pub fn acme(region: &str) -> ShopRegionSpec {
    ShopRegionSpec {
        shop: "acme".into(),
        region: region.into(),
        failover: FailoverSpec {
            order: vec![
                "us-east-1".into(),
                "eu-west-1".into(),
                "ap-northeast-1".into(),
            ],
            mode: FailoverMode::Automatic,
            unhealthy_after: KubeDuration::from_secs(30),
            confirmed_loss_after: KubeDuration::from_secs(10),
            max_replication_lag: KubeDuration::from_secs(30),
            allow_data_loss: false,
            cooldown: KubeDuration::from_secs(600),
            health_checks: vec![],
        },
        orders: OrdersSpec {
            image: "registry.example.com/acme/orders:1.4.2".into(),
            orders_per_second_per_replica: 500,
            baseline_orders_per_second: 5_000,
            peak_orders_per_second: 20_000,
            headroom_percent: 25,
            min_replicas: None,
            max_replicas: None,
            resources: None,
            env: vec![],
            port: 8080,
        },
        database: DatabaseSpec {
            global_cluster_identifier: None,
            engine: AuroraEngine::AuroraPostgresql,
            engine_version: "16".into(),
            instance_class: "db.r6g.large".into(),
            readers: 1,
            writer_instance_class: None,
            kms_key_id: None,
            network: None,
            parameter_groups: None,
            deletion_policy: DeletionPolicy::Retain,
            adopt: false,
        },
        cache: CacheSpec::default(),
        tags: Default::default(),
        compliance: ComplianceSpec::default(),
    }
}

pub fn acme_region(region: &str) -> ShopRegion {
    let mut sr = ShopRegion::new(&format!("acme-{region}"), acme(region));
    sr.metadata.namespace = Some("shop".into());
    sr.metadata.uid = Some(format!("uid-acme-{region}"));
    sr.metadata.generation = Some(1);
    sr
}
