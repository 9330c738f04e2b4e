//! Reconcile slots in two lanes: the steady lane (requeues, children's
//! changes, a user's edits) and the urgent lane (a shop whose health
//! verdicts just changed, a failover instant that must not be missed; the
//! controller decides which, `controller::in_a_hurry`).
//!
//! Each lane hands out its slots in the order they were asked for. The
//! urgent lane has slots of its own: at a thousand shops the steady lane
//! has hundreds of reconciles waiting at any time, and a promotion that
//! waited behind them would be decided minutes after the region was lost.

use std::collections::{HashMap, HashSet};
use std::hash::Hash;
use std::sync::{Arc, Mutex};

use tokio::sync::{OwnedSemaphorePermit, Semaphore, oneshot};

/// Which lane a slot was taken from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lane {
    Steady,
    Urgent,
}

/// A slot held for one reconcile; given back when dropped.
#[derive(Debug)]
pub struct Slot {
    pub lane: Lane,
    _permit: Option<OwnedSemaphorePermit>,
}

/// The reconcile slots of one controller, keyed by the object reconciled.
pub struct Slots<K> {
    steady: Option<Arc<Semaphore>>,
    urgent: Option<Arc<Semaphore>>,
    marks: Mutex<Marks<K>>,
}

struct Marks<K> {
    /// Keys whose next reconcile takes the urgent lane.
    hurried: HashSet<K>,
    /// Keys waiting in the steady lane: hurrying one moves it over.
    waiting: HashMap<K, oneshot::Sender<()>>,
}

impl<K: Hash + Eq + Clone> Slots<K> {
    /// At most `per_lane` reconciles at once in each lane (0: no bound).
    pub fn new(per_lane: u16) -> Self {
        let lane = || (per_lane > 0).then(|| Arc::new(Semaphore::new(usize::from(per_lane))));
        Self {
            steady: lane(),
            urgent: lane(),
            marks: Mutex::new(Marks {
                hurried: HashSet::new(),
                waiting: HashMap::new(),
            }),
        }
    }

    /// The next reconcile of `key` takes the urgent lane; one waiting in
    /// the steady lane moves over at once.
    pub fn hurry(&self, key: &K) {
        let mut marks = self.marks();
        // A waiter that has just been given its steady slot is gone: the
        // mark then waits for its next reconcile.
        let moved = marks
            .waiting
            .remove(key)
            .is_some_and(|waiter| waiter.send(()).is_ok());
        if !moved {
            marks.hurried.insert(key.clone());
        }
    }

    /// Waits for a slot for `key`: in the urgent lane if it was hurried,
    /// else in the steady lane until it is.
    pub async fn take(&self, key: &K) -> Slot {
        let moved = {
            let mut marks = self.marks();
            if marks.hurried.remove(key) {
                None
            } else {
                let (tell, moved) = oneshot::channel();
                marks.waiting.insert(key.clone(), tell);
                Some(moved)
            }
        };
        let Some(moved) = moved else {
            return Self::slot(&self.urgent, Lane::Urgent).await;
        };
        let slot = tokio::select! {
            biased;
            Ok(()) = moved => Self::slot(&self.urgent, Lane::Urgent).await,
            slot = Self::slot(&self.steady, Lane::Steady) => slot,
        };
        if slot.lane == Lane::Steady {
            self.marks().waiting.remove(key);
        }
        slot
    }

    async fn slot(lane: &Option<Arc<Semaphore>>, which: Lane) -> Slot {
        // A closed semaphore cannot happen (it is never closed); it would
        // only lift the bound.
        let permit = match lane {
            Some(slots) => slots.clone().acquire_owned().await.ok(),
            None => None,
        };
        Slot {
            lane: which,
            _permit: permit,
        }
    }

    fn marks(&self) -> std::sync::MutexGuard<'_, Marks<K>> {
        self.marks.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    type Served = Arc<Mutex<Vec<(&'static str, Lane)>>>;

    /// One slot per lane; reconciles started by [`Bench::start`] record
    /// when they got their slot and hold it until [`Bench::release`].
    struct Bench {
        slots: Arc<Slots<&'static str>>,
        served: Served,
        hold: Arc<tokio::sync::RwLock<()>>,
        gate: Option<tokio::sync::OwnedRwLockWriteGuard<()>>,
        tasks: Vec<tokio::task::JoinHandle<()>>,
    }

    impl Bench {
        async fn new() -> Self {
            let hold = Arc::new(tokio::sync::RwLock::new(()));
            let gate = Some(hold.clone().write_owned().await);
            Self {
                slots: Arc::new(Slots::new(1)),
                served: Arc::default(),
                hold,
                gate,
                tasks: Vec::new(),
            }
        }

        /// Starts a reconcile of `key` and lets it reach its lane.
        async fn start(&mut self, key: &'static str) {
            let (slots, served, hold) =
                (self.slots.clone(), self.served.clone(), self.hold.clone());
            self.tasks.push(tokio::spawn(async move {
                let slot = slots.take(&key).await;
                served.lock().unwrap().push((key, slot.lane));
                let _held = hold.read().await;
            }));
            settle().await;
        }

        /// Holds the steady lane's one slot and queues `keys` behind it.
        async fn steady_lane_full_with(&mut self, keys: &[&'static str]) -> Slot {
            let busy = self.slots.take(&"busy").await;
            for &key in keys {
                self.start(key).await;
            }
            busy
        }

        fn served(&self) -> Vec<(&'static str, Lane)> {
            self.served.lock().unwrap().clone()
        }

        /// Lets every reconcile finish, in the order the lanes serve them.
        async fn release(&mut self, busy: Option<Slot>) {
            self.gate = None;
            drop(busy);
            for task in self.tasks.drain(..) {
                task.await.unwrap();
            }
        }
    }

    async fn settle() {
        for _ in 0..20 {
            tokio::task::yield_now().await;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    #[tokio::test]
    async fn steady_reconciles_get_their_slots_in_the_order_they_asked() {
        let mut bench = Bench::new().await;
        let keys = ["a", "b", "c", "d", "e", "f"];
        let busy = bench.steady_lane_full_with(&keys).await;
        bench.release(Some(busy)).await;
        let served: Vec<_> = bench.served().iter().map(|(k, _)| *k).collect();
        assert_eq!(served, keys);
    }

    #[tokio::test]
    async fn a_hurried_reconcile_does_not_wait_behind_the_steady_lane() {
        let mut bench = Bench::new().await;
        let busy = bench.steady_lane_full_with(&["a", "b", "c"]).await;
        bench.slots.hurry(&"promote");
        bench.start("promote").await;
        assert_eq!(bench.served(), [("promote", Lane::Urgent)]);
        bench.release(Some(busy)).await;
        assert_eq!(bench.served().len(), 4);
    }

    #[tokio::test]
    async fn a_reconcile_already_waiting_moves_to_the_urgent_lane_when_hurried() {
        let mut bench = Bench::new().await;
        let busy = bench.steady_lane_full_with(&["a", "b", "c"]).await;
        bench.slots.hurry(&"c");
        settle().await;
        assert_eq!(bench.served(), [("c", Lane::Urgent)]);
        bench.release(Some(busy)).await;
        // The mark was spent on the move: c's next reconcile is steady again.
        assert_eq!(bench.slots.take(&"c").await.lane, Lane::Steady);
    }

    #[tokio::test]
    async fn the_urgent_lane_is_bounded_and_first_come_first_served_too() {
        let mut bench = Bench::new().await;
        for key in ["x", "y", "z"] {
            bench.slots.hurry(&key);
            bench.start(key).await;
        }
        assert_eq!(bench.served(), [("x", Lane::Urgent)]);
        bench.release(None).await;
        assert_eq!(
            bench.served(),
            [
                ("x", Lane::Urgent),
                ("y", Lane::Urgent),
                ("z", Lane::Urgent)
            ]
        );
    }

    #[tokio::test]
    async fn without_a_bound_no_reconcile_waits() {
        let slots: Slots<&str> = Slots::new(0);
        let _a = slots.take(&"a").await;
        let _b = slots.take(&"b").await;
        slots.hurry(&"c");
        assert_eq!(slots.take(&"c").await.lane, Lane::Urgent);
    }
}
