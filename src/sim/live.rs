//! The simulated cloud running alongside a real controller: its virtual
//! clock follows the Tokio clock, `speed` times faster, so an Aurora cluster
//! that takes 10 minutes to create is ready after 10 s at speed 60.
//!
//! With speed 1 on a runtime whose time is paused, virtual time is exactly
//! the runtime's time: every requeue, rollout delay and AWS operation lasts
//! precisely what it says, and the run takes only as long as the computing.

use std::sync::Arc;

use super::cloud::SimCloud;
use crate::clock::Clock;
use crate::cloud::Cloud;
use crate::cloud::aurora::AuroraPort;
use crate::cloud::elasticache::ElastiCachePort;

pub struct LiveSim {
    cloud: SimCloud,
    speed: u32,
}

impl LiveSim {
    /// Sets the cloud's clock flowing from its current instant. Call it
    /// inside the Tokio runtime the controller runs on: the clock follows
    /// that runtime's time.
    pub fn start(cloud: SimCloud, speed: u32) -> Self {
        let speed = speed.max(1);
        cloud.clock().follow_runtime(speed);
        Self { cloud, speed }
    }

    pub fn cloud(&self) -> &SimCloud {
        &self.cloud
    }
}

impl Cloud for LiveSim {
    fn aurora(&self, region: &str) -> Arc<dyn AuroraPort> {
        self.cloud.aurora(region)
    }

    fn elasticache(&self, region: &str) -> Arc<dyn ElastiCachePort> {
        self.cloud.elasticache(region)
    }

    fn clock(&self) -> Arc<dyn Clock> {
        Arc::new(self.cloud.clock().clone())
    }

    fn speed(&self) -> u32 {
        self.speed
    }
}
