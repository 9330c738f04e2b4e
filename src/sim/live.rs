//! The simulated cloud running alongside a real controller: its virtual
//! clock follows real time, `speed` times faster, so an Aurora cluster that
//! takes 10 minutes to create is ready after 10 s at speed 60.

use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;

use super::cloud::SimCloud;
use crate::clock::Clock;
use crate::cloud::Cloud;
use crate::cloud::aurora::AuroraPort;
use crate::cloud::elasticache::ElastiCachePort;

const TICK: Duration = Duration::from_millis(20);

pub struct LiveSim {
    cloud: SimCloud,
    speed: u32,
    driver: JoinHandle<()>,
}

impl LiveSim {
    /// Starts moving the cloud's clock. Must be called inside a Tokio runtime.
    pub fn start(cloud: SimCloud, speed: u32) -> Self {
        let speed = speed.max(1);
        let clock = cloud.clock().clone();
        let driver = tokio::spawn(async move {
            let mut ticks = tokio::time::interval(TICK);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticks.tick().await;
                clock.advance(TICK * speed);
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
        self.speed
    }
}
