//! The replication lag a ShopRegion's status shows for its database and
//! its cache.
//!
//! CloudWatch's lag moves by milliseconds every minute and a read of it may
//! find no data point (a new secondary, a throttled call). Written as read,
//! every periodic reconcile of every secondary would write its status: at a
//! thousand shops, thousands of writes per hour for a fleet where nothing
//! happens. The status shows the lag to the step below. A read without a
//! data point shows none: replication from a lost writer stops and
//! CloudWatch goes silent, and the last number would claim a lag that is
//! in fact growing. The failover engine keeps its own timestamped reading
//! (`status.failover.lastKnownLag`).

use std::time::Duration;

/// How far a reading must move from the lag shown before the status shows
/// it instead.
pub const SHOWN_LAG_STEP: Duration = Duration::from_secs(1);

/// One read of a region's replication lag for its status.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum LagRead {
    /// The region takes the writes (or is not in the global resource): it
    /// has no lag to show.
    NotReplica,
    /// A replica, but no reading came (none published yet, replication
    /// stopped, or the read failed).
    NoData,
    /// A replica's reading.
    Read(Duration),
}

impl LagRead {
    /// What the status shows after this read, from what it shows now: a
    /// reading within [`SHOWN_LAG_STEP`] of it keeps it.
    pub fn shown(self, stored: Option<f64>) -> Option<f64> {
        match (self, stored) {
            (Self::NotReplica | Self::NoData, _) => None,
            (Self::Read(lag), Some(stored))
                if (lag.as_secs_f64() - stored).abs() < SHOWN_LAG_STEP.as_secs_f64() =>
            {
                Some(stored)
            }
            (Self::Read(lag), _) => Some(lag.as_secs_f64()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shown_after(read_ms: u64, stored: f64) -> Option<f64> {
        LagRead::Read(Duration::from_millis(read_ms)).shown(Some(stored))
    }

    #[test]
    fn a_lag_wobbling_by_milliseconds_keeps_the_status_as_written() {
        assert_eq!(shown_after(180, 0.12), Some(0.12));
        assert_eq!(shown_after(1_050, 0.12), Some(0.12));
    }

    #[test]
    fn a_lag_that_moves_a_second_or_more_is_shown() {
        assert_eq!(shown_after(1_120, 0.12), Some(1.12));
        assert_eq!(shown_after(200, 4.0), Some(0.2));
    }

    #[test]
    fn a_read_without_a_data_point_shows_no_lag_rather_than_an_old_one() {
        assert_eq!(LagRead::NoData.shown(Some(0.3)), None);
    }

    #[test]
    fn the_first_reading_is_shown_and_a_region_that_took_the_writes_shows_none() {
        let shown = LagRead::Read(Duration::from_millis(250)).shown(None);
        assert_eq!(shown, Some(0.25));
        assert_eq!(LagRead::NotReplica.shown(Some(0.3)), None);
    }
}
