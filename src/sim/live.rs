//! The simulated cloud running alongside a real controller: its virtual
//! clock follows the Tokio clock, `speed` times faster, so an Aurora cluster
//! that takes 10 minutes to create is ready after 10 s at speed 60.
//!
//! With speed 1 on a runtime whose time is paused, virtual time is exactly
//! the runtime's time: every requeue, rollout delay and AWS operation lasts
//! precisely what it says, and the run takes only as long as the computing.
//!
//! The speed can change while running: a test fast-forwards through hours of
//! provisioning, then slows down to watch a failover at a pace where the
//! controller's own latency is small against cloud time.

use std::sync::Arc;

use super::cloud::SimCloud;
use super::probe::SimProbe;
use crate::clock::Clock;
use crate::cloud::Cloud;
use crate::cloud::aurora::AuroraPort;
use crate::cloud::elasticache::ElastiCachePort;
use crate::probe::Probe;

pub struct LiveSim {
    cloud: SimCloud,
}

impl LiveSim {
    /// Sets the cloud's clock flowing from its current instant. Call it
    /// inside the Tokio runtime the controller runs on: the clock follows
    /// that runtime's time.
    pub fn start(cloud: SimCloud, speed: u32) -> Self {
        cloud.clock().follow_runtime(speed);
        Self { cloud }
    }

    pub fn cloud(&self) -> &SimCloud {
        &self.cloud
    }

    /// Changes how many cloud seconds pass per runtime second, from now on
    /// (the clock re-anchors at the current virtual instant).
    pub fn set_speed(&self, speed: u32) {
        self.cloud.clock().follow_runtime(speed);
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
        self.cloud.clock().speed().max(1)
    }

    fn probe(&self) -> Arc<dyn Probe> {
        Arc::new(SimProbe::new(self.cloud.clone()))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn the_clock_follows_the_runtime_at_the_current_speed() {
        let sim = LiveSim::start(SimCloud::new(super::super::VirtualClock::default()), 1000);
        let start = sim.cloud().clock().now();
        tokio::time::sleep(Duration::from_millis(60)).await;
        let fast = crate::clock::elapsed(start, sim.cloud().clock().now());
        assert_eq!(fast, Duration::from_secs(60));
        sim.set_speed(1);
        assert_eq!(sim.speed(), 1);
        let slow_start = sim.cloud().clock().now();
        tokio::time::sleep(Duration::from_millis(60)).await;
        let slow = crate::clock::elapsed(slow_start, sim.cloud().clock().now());
        assert_eq!(slow, Duration::from_millis(60));
    }
}
