//! The simulated cloud running alongside a real controller: its virtual
//! clock follows real time, `speed` times faster, so an Aurora cluster that
//! takes 10 minutes to create is ready after 10 s at speed 60.
//!
//! The speed can change while running: a test or a scenario fast-forwards
//! through hours of provisioning, then slows down to watch a failover at a
//! pace where the controller's own latency is small against cloud time.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use tokio::task::JoinHandle;

use super::cloud::SimCloud;
use super::probe::SimProbe;
use crate::clock::Clock;
use crate::cloud::Cloud;
use crate::cloud::aurora::AuroraPort;
use crate::cloud::elasticache::ElastiCachePort;
use crate::failover::Probe;

/// How often the clock moves: the resolution of cloud time is `TICK ×
/// speed` (0.1 s at speed 20, 6 s at speed 1200).
const TICK: Duration = Duration::from_millis(5);

pub struct LiveSim {
    cloud: SimCloud,
    speed: Arc<AtomicU32>,
    driver: JoinHandle<()>,
}

impl LiveSim {
    /// Starts moving the cloud's clock. Must be called inside a Tokio runtime.
    pub fn start(cloud: SimCloud, speed: u32) -> Self {
        let speed = Arc::new(AtomicU32::new(speed.max(1)));
        let clock = cloud.clock().clone();
        let pace = speed.clone();
        let driver = tokio::spawn(async move {
            let mut ticks = tokio::time::interval(TICK);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut last = tokio::time::Instant::now();
            loop {
                ticks.tick().await;
                // Real time elapsed, not ticks counted: a late tick (a busy
                // machine) must not slow the cloud down.
                let now = tokio::time::Instant::now();
                clock.advance((now - last) * pace.load(Ordering::Relaxed));
                last = now;
            }
        });
        Self {
            cloud,
            speed,
            driver,
        }
    }

    pub fn cloud(&self) -> &SimCloud {
        &self.cloud
    }

    /// Changes how many cloud seconds pass per real second, from now on.
    pub fn set_speed(&self, speed: u32) {
        self.speed.store(speed.max(1), Ordering::Relaxed);
    }
}

impl Drop for LiveSim {
    fn drop(&mut self) {
        self.driver.abort();
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
        self.speed.load(Ordering::Relaxed)
    }

    fn probe(&self) -> Arc<dyn Probe> {
        Arc::new(SimProbe::new(self.cloud.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_clock_follows_real_time_at_the_current_speed() {
        let sim = LiveSim::start(SimCloud::new(super::super::VirtualClock::default()), 1000);
        let start = sim.cloud().clock().now();
        tokio::time::sleep(Duration::from_millis(60)).await;
        let fast = crate::failover::health::elapsed(start, sim.cloud().clock().now());
        assert!(fast >= Duration::from_secs(50), "{fast:?}");
        sim.set_speed(1);
        assert_eq!(sim.speed(), 1);
        let slow_start = sim.cloud().clock().now();
        tokio::time::sleep(Duration::from_millis(60)).await;
        let slow = crate::failover::health::elapsed(slow_start, sim.cloud().clock().now());
        assert!(slow < Duration::from_secs(1), "{slow:?}");
    }
}
