//! The operator's own AWS request budget per region: a token bucket on the
//! cloud's clock, in front of the SDK's adaptive retry.
//!
//! RDS and ElastiCache throttle an account's API calls per region, and this
//! operator shares that quota with every other client of the account
//! (consoles, Terraform, backups). The shared view keeps a converged fleet
//! far below it; the budget bounds what a fleet in motion can send (a
//! thousand shops coming up, or failing over at once), so that the operator
//! slows itself down before AWS throttles everyone.
//!
//! Reads are what grow with a fleet, so reads are what it counts. Changes
//! are never held back nor counted: a thousand failovers in the same minute
//! must not wait behind reads, nor starve the reads that follow them. A
//! read waits for its turn up to [`MAX_WAIT`], then fails as throttled
//! without reaching AWS: a reconcile requeues as for AWS's own throttling,
//! and a sampler takes it for "no data", never for "down".

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use k8s_openapi::jiff::Timestamp;

use super::CloudError;
use crate::clock::elapsed;

/// The default budget: requests per second per region, all services
/// together. RDS documents no fixed rate for its describe calls, but
/// throttles bursts of a few tens a second; a converged fleet of a thousand
/// shops needs a fraction of this.
pub const DEFAULT_PER_SECOND: u32 = 10;

/// How long a read waits for the budget before it fails as throttled.
pub const MAX_WAIT: Duration = Duration::from_secs(5);

/// One region's bucket: `tokens` as of `at`, negative while calls queue.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Bucket {
    pub tokens: f64,
    pub at: Timestamp,
}

/// The decision on one call.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Turn {
    /// Go after this wait (zero: at once); the bucket has been charged.
    After(Duration),
    /// The wait would exceed [`MAX_WAIT`]: fail, uncharged.
    Refused,
}

/// The bucket after refilling at `per_second` (up to `burst`) until `now`
/// and charging a read of `pages` requests, and the reader's turn. Pure.
pub fn take(
    bucket: Option<Bucket>,
    per_second: u32,
    burst: u32,
    pages: u32,
    now: Timestamp,
) -> (Bucket, Turn) {
    let rate = f64::from(per_second.max(1));
    let full = f64::from(burst.max(1));
    let refilled = match bucket {
        None => full,
        Some(b) => (b.tokens + elapsed(b.at, now).as_secs_f64() * rate).min(full),
    };
    let cost = f64::from(pages.max(1));
    let left = refilled - cost;
    let wait = if left >= 0.0 {
        Duration::ZERO
    } else {
        Duration::from_secs_f64(-left / rate)
    };
    if wait > MAX_WAIT {
        return (
            Bucket {
                tokens: refilled,
                at: now,
            },
            Turn::Refused,
        );
    }
    (
        Bucket {
            tokens: left,
            at: now,
        },
        Turn::After(wait),
    )
}

/// The budget of every region.
pub struct RequestBudget {
    per_second: u32,
    regions: Mutex<HashMap<String, Bucket>>,
}

impl Default for RequestBudget {
    fn default() -> Self {
        Self::new(DEFAULT_PER_SECOND)
    }
}

impl RequestBudget {
    pub fn new(per_second: u32) -> Self {
        Self {
            per_second: per_second.max(1),
            regions: Mutex::new(HashMap::new()),
        }
    }

    pub fn per_second(&self) -> u32 {
        self.per_second
    }

    /// Charges a read of `pages` requests to `region` at `now`: how long
    /// the reader waits (in cloud time) before calling AWS, or the
    /// throttling error it fails with instead.
    pub fn charge(&self, region: &str, pages: u32, now: Timestamp) -> Result<Duration, CloudError> {
        let mut regions = self.regions.lock().unwrap_or_else(|e| e.into_inner());
        // A burst of a few seconds' worth: a reconcile's handful of reads
        // never waits.
        let burst = self.per_second.saturating_mul(5);
        let (bucket, turn) = take(
            regions.get(region).copied(),
            self.per_second,
            burst,
            pages,
            now,
        );
        regions.insert(region.to_string(), bucket);
        match turn {
            Turn::After(wait) => Ok(wait),
            Turn::Refused => Err(CloudError::throttled(format!(
                "shopfleet's own request budget for {region} ({} requests/s, \
                 --aws-requests-per-second) is spent: the read was not sent",
                self.per_second
            ))),
        }
    }

    #[cfg(test)]
    fn tokens(&self, region: &str) -> Option<f64> {
        self.regions.lock().unwrap().get(region).map(|b| b.tokens)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(millis: i64) -> Timestamp {
        Timestamp::from_millisecond(1_700_000_000_000 + millis).unwrap()
    }

    #[test]
    fn a_full_bucket_lets_a_burst_through_at_once() {
        let mut bucket = None;
        for _ in 0..50 {
            let (next, turn) = take(bucket, 10, 50, 1, at(0));
            assert_eq!(turn, Turn::After(Duration::ZERO));
            bucket = Some(next);
        }
        let (_, turn) = take(bucket, 10, 50, 1, at(0));
        assert_eq!(turn, Turn::After(Duration::from_millis(100)));
    }

    #[test]
    fn reads_queue_at_the_budget_s_pace_then_are_refused() {
        let empty = Bucket {
            tokens: 0.0,
            at: at(0),
        };
        let (bucket, turn) = take(Some(empty), 10, 50, 10, at(0));
        assert_eq!(turn, Turn::After(Duration::from_secs(1)));
        let (bucket, turn) = take(Some(bucket), 10, 50, 40, at(0));
        assert_eq!(turn, Turn::After(Duration::from_secs(5)));
        let (after_refusal, turn) = take(Some(bucket), 10, 50, 1, at(0));
        assert_eq!(turn, Turn::Refused);
        assert_eq!(
            after_refusal.tokens, bucket.tokens,
            "a refused read costs nothing"
        );
        // A second later the queue has moved by ten requests.
        let (_, turn) = take(Some(bucket), 10, 50, 1, at(1_000));
        assert_eq!(turn, Turn::After(Duration::from_millis(4_100)));
    }

    #[test]
    fn the_bucket_refills_no_higher_than_its_burst() {
        let (bucket, _) = take(None, 10, 50, 1, at(0));
        let (bucket, _) = take(Some(bucket), 10, 50, 1, at(3_600_000));
        assert_eq!(bucket.tokens, 49.0);
    }

    #[test]
    fn regions_have_budgets_of_their_own() {
        let budget = RequestBudget::new(1);
        for _ in 0..5 {
            assert_eq!(budget.charge("us-east-1", 1, at(0)), Ok(Duration::ZERO));
        }
        assert_eq!(
            budget.charge("us-east-1", 1, at(0)),
            Ok(Duration::from_secs(1))
        );
        assert_eq!(budget.charge("eu-west-1", 1, at(0)), Ok(Duration::ZERO));
        let refused = budget.charge("us-east-1", 10, at(0)).unwrap_err();
        assert!(
            refused
                .to_string()
                .contains("own request budget for us-east-1")
        );
        assert_eq!(budget.tokens("us-east-1"), Some(-1.0));
    }
}
