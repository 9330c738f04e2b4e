//! A virtual clock: time moves only when a test or the simulator says so,
//! or, once told to follow the runtime, continuously at a fixed speed.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::jiff::{SignedDuration, Timestamp};

use crate::clock::Clock;

/// Shared virtual time. Clones observe the same instant, so the simulated
/// cloud and the code under test agree on "now" without any sleeping.
///
/// A stopped clock moves only by [`VirtualClock::advance`] and
/// [`VirtualClock::set`]. After [`VirtualClock::follow_runtime`] it reads
/// `anchor + (tokio now − since) × speed`: continuous, never ticked, so two
/// readings a millisecond of runtime apart differ by `speed` milliseconds and
/// nothing in between is lost to a tick. On a Tokio runtime with paused time
/// (`shopfleet simulate --instant`) the runtime's clock jumps from one timer
/// to the next and computing takes no time at all, which makes every
/// duration the simulation measures exact.
#[derive(Clone, Debug)]
pub struct VirtualClock {
    state: Arc<Mutex<State>>,
}

#[derive(Debug)]
struct State {
    anchor: Timestamp,
    follow: Option<Follow>,
}

#[derive(Clone, Copy, Debug)]
struct Follow {
    since: tokio::time::Instant,
    speed: u32,
}

impl State {
    fn now(&self) -> Timestamp {
        let Some(follow) = self.follow else {
            return self.anchor;
        };
        let elapsed = tokio::time::Instant::now().saturating_duration_since(follow.since);
        let virtual_elapsed = elapsed.saturating_mul(follow.speed);
        let step = SignedDuration::try_from(virtual_elapsed)
            .expect("virtual time elapsed fits in a SignedDuration");
        self.anchor
            .checked_add(step)
            .expect("virtual time stays within the Timestamp range")
    }
}

impl VirtualClock {
    /// A clock stopped at `start`.
    pub fn at(start: Timestamp) -> Self {
        Self {
            state: Arc::new(Mutex::new(State {
                anchor: start,
                follow: None,
            })),
        }
    }

    /// From now on, time flows `speed` times as fast as the Tokio clock of
    /// the caller's runtime (the real clock unless that runtime's time is
    /// paused). Reading the clock later from outside that runtime reads the
    /// real clock instead, so a following clock belongs to one runtime.
    pub fn follow_runtime(&self, speed: u32) {
        let mut state = self.lock();
        state.anchor = state.now();
        state.follow = Some(Follow {
            since: tokio::time::Instant::now(),
            speed: speed.max(1),
        });
    }

    /// How many virtual seconds pass per second of the runtime's clock; 0
    /// while the clock is stopped.
    pub fn speed(&self) -> u32 {
        self.lock().follow.map_or(0, |f| f.speed)
    }

    /// Moves time forward. Virtual time never goes backwards on its own.
    pub fn advance(&self, by: Duration) {
        let mut state = self.lock();
        let by =
            SignedDuration::try_from(by).expect("a virtual-clock step fits in a SignedDuration");
        state.anchor = state
            .anchor
            .checked_add(by)
            .expect("virtual time stays within the Timestamp range");
    }

    /// Jumps to an instant (forward or backward), for scenarios that replay a
    /// recorded timeline.
    pub fn set(&self, to: Timestamp) {
        let mut state = self.lock();
        state.anchor = to;
        if let Some(follow) = &mut state.follow {
            follow.since = tokio::time::Instant::now();
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding the lock leaves a valid state behind, so a
        // poisoned lock is still safe to read.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
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
        self.lock().now()
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

    #[test]
    fn a_stopped_clock_does_not_move_on_its_own() {
        let clock = VirtualClock::default();
        let start = clock.now();
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(clock.now(), start);
        assert_eq!(clock.speed(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_following_clock_moves_exactly_with_paused_runtime_time() {
        let clock = VirtualClock::default();
        let start = clock.now();
        clock.follow_runtime(1);
        tokio::time::sleep(Duration::from_millis(1_234)).await;
        assert_eq!(
            clock.now().duration_since(start),
            SignedDuration::from_millis(1_234)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_following_clock_multiplies_by_its_speed_and_still_advances() {
        let clock = VirtualClock::default();
        let start = clock.now();
        clock.follow_runtime(600);
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(
            clock.now().duration_since(start),
            SignedDuration::from_secs(12)
        );
        clock.advance(Duration::from_secs(3));
        assert_eq!(
            clock.now().duration_since(start),
            SignedDuration::from_secs(15)
        );
        assert_eq!(clock.speed(), 600);
    }

    #[tokio::test(start_paused = true)]
    async fn following_anchors_at_the_current_virtual_instant() {
        let clock = VirtualClock::default();
        clock.advance(Duration::from_secs(60));
        let before = clock.now();
        clock.follow_runtime(2);
        assert_eq!(clock.now(), before);
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert_eq!(
            clock.now().duration_since(before),
            SignedDuration::from_secs(10)
        );
    }
}
