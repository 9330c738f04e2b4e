//! The data-plane probes answered by the simulated cloud: a region in outage
//! accepts no connection, and a host the simulated region does not serve
//! does not resolve.

use async_trait::async_trait;

use super::cloud::SimCloud;
use crate::probe::{Probe, Signal};

/// [`Probe`] over a [`SimCloud`]. Nothing goes over the network.
#[derive(Clone, Debug)]
pub struct SimProbe {
    cloud: SimCloud,
}

impl SimProbe {
    pub fn new(cloud: SimCloud) -> Self {
        Self { cloud }
    }
}

#[async_trait]
impl Probe for SimProbe {
    async fn tcp(&self, region: &str, endpoint: &str) -> Signal {
        if self.cloud.is_region_out(region) {
            return Signal::Down(format!(
                "connect to {endpoint}: no answer (simulated outage of {region})"
            ));
        }
        let host = endpoint.rsplit_once(':').map_or(endpoint, |(host, _)| host);
        if self.cloud.serves_endpoint(region, host) {
            Signal::Up
        } else {
            Signal::Down(format!(
                "connect to {endpoint}: no such host in simulated {region}"
            ))
        }
    }

    async fn http(&self, region: &str, url: &str) -> Signal {
        if self.cloud.is_region_out(region) {
            Signal::Down(format!(
                "GET {url}: no answer (simulated outage of {region})"
            ))
        } else if self.cloud.is_health_check_down(region) {
            Signal::Down(format!("GET {url}: HTTP 503 (simulated failing check)"))
        } else {
            Signal::Up
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cloud::aurora::port::{CreateClusterRequest, MasterPassword, Tags};
    use crate::sim::{Fault, VirtualClock};

    async fn cloud_with_cluster() -> (SimCloud, String) {
        let cloud = SimCloud::new(VirtualClock::default());
        let cluster = cloud
            .aurora("eu-west-1")
            .create_cluster(&CreateClusterRequest {
                cluster_id: "acme-eu-west-1".into(),
                engine: "aurora-postgresql".into(),
                engine_version: "16.6".into(),
                kms_key_id: None,
                storage_encrypted: true,
                deletion_protection: false,
                tags: Tags::new(),
                global_cluster_id: None,
                master_username: Some("admin_user".into()),
                master_user_password: Some(MasterPassword::new("sim-password-0123456789")),
                ..Default::default()
            })
            .await
            .unwrap();
        let endpoint = format!("{}:5432", cluster.writer_endpoint.unwrap());
        (cloud, endpoint)
    }

    #[tokio::test]
    async fn a_served_endpoint_is_up_until_its_region_goes_out() {
        let (cloud, endpoint) = cloud_with_cluster().await;
        let probe = SimProbe::new(cloud.clone());
        assert_eq!(probe.tcp("eu-west-1", &endpoint).await, Signal::Up);
        assert_eq!(
            probe.http("eu-west-1", "http://orders/healthz").await,
            Signal::Up
        );
        cloud.inject(Fault::RegionOutage {
            region: "eu-west-1".into(),
        });
        assert!(
            matches!(probe.tcp("eu-west-1", &endpoint).await, Signal::Down(d) if d.contains("outage"))
        );
        assert!(matches!(
            probe.http("eu-west-1", "http://orders/healthz").await,
            Signal::Down(_)
        ));
        cloud.heal_region("eu-west-1");
        assert_eq!(probe.tcp("eu-west-1", &endpoint).await, Signal::Up);
    }

    #[tokio::test]
    async fn an_outage_elsewhere_does_not_touch_a_region() {
        let (cloud, endpoint) = cloud_with_cluster().await;
        cloud.inject(Fault::RegionOutage {
            region: "us-east-1".into(),
        });
        assert_eq!(
            SimProbe::new(cloud).tcp("eu-west-1", &endpoint).await,
            Signal::Up
        );
    }

    #[tokio::test]
    async fn an_endpoint_the_region_does_not_serve_does_not_resolve() {
        let (cloud, endpoint) = cloud_with_cluster().await;
        let probe = SimProbe::new(cloud);
        assert!(
            matches!(probe.tcp("us-east-1", &endpoint).await, Signal::Down(d) if d.contains("no such host"))
        );
        assert!(matches!(
            probe.tcp("eu-west-1", "elsewhere.example:5432").await,
            Signal::Down(_)
        ));
    }
}
