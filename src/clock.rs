//! Time as the cloud model and the decisions see it.
//!
//! Nothing that decides or simulates reads the system clock directly: it asks
//! a [`Clock`], so that the simulated cloud and every test run on virtual time
//! and replay identically.

use k8s_openapi::jiff::Timestamp;

pub trait Clock: Send + Sync {
    fn now(&self) -> Timestamp;
}

/// The wall clock, for the operator running against real AWS.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::now()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_system_clock_moves_forward() {
        let a = SystemClock.now();
        let b = SystemClock.now();
        assert!(b >= a);
    }
}
