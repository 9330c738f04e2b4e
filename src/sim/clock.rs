//! A virtual clock: time moves only when a test or the simulator says so.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::jiff::{SignedDuration, Timestamp};

use crate::clock::Clock;

/// Shared virtual time. Clones observe the same instant, so the simulated
/// cloud and the code under test agree on "now" without any sleeping.
#[derive(Clone, Debug)]
pub struct VirtualClock {
    now: Arc<Mutex<Timestamp>>,
}

impl VirtualClock {
    /// A clock stopped at `start`.
    pub fn at(start: Timestamp) -> Self {
        Self {
            now: Arc::new(Mutex::new(start)),
        }
    }

    /// Moves time forward. Virtual time never goes backwards on its own.
    pub fn advance(&self, by: Duration) {
        let mut now = self.lock();
        let by =
            SignedDuration::try_from(by).expect("a virtual-clock step fits in a SignedDuration");
        *now = now
            .checked_add(by)
            .expect("virtual time stays within the Timestamp range");
    }

    /// Jumps to an instant (forward or backward), for scenarios that replay a
    /// recorded timeline.
    pub fn set(&self, to: Timestamp) {
        *self.lock() = to;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Timestamp> {
        // A panic while holding the lock leaves a valid Timestamp behind, so a
        // poisoned lock is still safe to read.
        self.now.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Default for VirtualClock {
    /// 2025-01-01T00:00:00Z: a fixed, readable epoch for simulations.
    fn default() -> Self {
        Self::at(Timestamp::from_second(1_735_689_600).expect("a valid instant"))
    }
}

impl Clock for VirtualClock {
    fn now(&self) -> Timestamp {
        *self.lock()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clones_share_time_and_advance_is_exact() {
        let clock = VirtualClock::default();
        let other = clock.clone();
        let start = clock.now();
        other.advance(Duration::from_secs(90));
        assert_eq!(
            clock.now(),
            start.checked_add(SignedDuration::from_secs(90)).unwrap()
        );
    }

    #[test]
    fn set_jumps_to_an_instant() {
        let clock = VirtualClock::default();
        let t = Timestamp::from_second(1_800_000_000).unwrap();
        clock.set(t);
        assert_eq!(clock.now(), t);
    }
}
