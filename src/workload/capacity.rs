//! The capacity model: how many order-service replicas a region runs.
//!
//! `docs/capacity.md` explains the formula with the acme seeds as a worked
//! example. In short, with `need(x) = ceil(x × (100 + headroom%) / 100 / perReplica)`:
//!
//! - `min = max(2, need(baseline))`
//! - `max = max(min, need(peak + peak / (regions − 1)))`
//! - `absorbingMin = need(baseline + peak / (regions − 1))`, clamped into `[min, max]`
//!
//! and the spec's `minReplicas` / `maxReplicas` overrides win over the
//! computed values.

use crate::api::OrdersSpec;

/// Below two replicas a region has no redundancy: the PodDisruptionBudget
/// either blocks every node drain or allows the only pod to be evicted, and
/// the zone spread has nothing to spread. One replica is still possible by
/// setting `minReplicas: 1` explicitly (a laptop or a test cluster).
pub const AVAILABILITY_FLOOR: i32 = 2;

/// Replica bounds of one region, as the HorizontalPodAutoscaler gets them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Capacity {
    /// Replicas for this region's own ordinary-day traffic.
    pub min_replicas: i32,
    /// Replicas for this region's own peak plus its share of a lost region's
    /// peak.
    pub max_replicas: i32,
    /// The minimum to hold while another region of the fleet is lost: the
    /// lost region's traffic arrives at once, faster than an autoscaler
    /// reacts. Always within `[min_replicas, max_replicas]`.
    pub absorbing_min_replicas: i32,
}

/// Computes the replica bounds of one region from its spec and the number of
/// regions in the fleet (`spec.failover.order.len()`).
///
/// The operator only sees this region's ShopRegion, so the lost region's peak
/// is assumed to equal this region's own peak (a symmetric fleet), spread
/// evenly over the `fleet_regions − 1` survivors. A single-region fleet has
/// nobody to absorb for: its max covers its own peak only and the absorbing
/// minimum equals the minimum.
///
/// Never panics and never wraps: inputs are u32 (up to about 4·10⁹ orders/s),
/// intermediate products are u128 and results saturate at `i32::MAX`. A zero
/// `ordersPerSecondPerReplica` (refused by validation before this is called)
/// is treated as 1.
pub fn plan_capacity(orders: &OrdersSpec, fleet_regions: usize) -> Capacity {
    let per_replica = u128::from(orders.orders_per_second_per_replica.max(1));
    let headroom = 100 + u128::from(orders.headroom_percent);
    let survivors = fleet_regions.max(1) as u128 - 1;
    let baseline = u128::from(orders.baseline_orders_per_second);
    let peak = u128::from(orders.peak_orders_per_second);

    // need(x) with x = a / b orders per second, rounded up once at the end so
    // that the share of a lost region is not rounded twice.
    let need = |numerator: u128, denominator: u128| -> i32 {
        let replicas = (numerator * headroom).div_ceil(denominator * 100 * per_replica);
        i32::try_from(replicas).unwrap_or(i32::MAX)
    };
    // own + own / survivors = own × (survivors + 1) / survivors.
    let (with_share_num, with_share_den) = if survivors == 0 {
        (peak, 1)
    } else {
        (peak * (survivors + 1), survivors)
    };
    // baseline + peak / survivors = (baseline × survivors + peak) / survivors.
    let (absorbing_num, absorbing_den) = if survivors == 0 {
        (baseline, 1)
    } else {
        (baseline * survivors + peak, survivors)
    };

    let computed_min = need(baseline, 1).max(AVAILABILITY_FLOOR);
    let computed_max = need(with_share_num, with_share_den);

    let (min_replicas, max_replicas) = match (orders.min_replicas, orders.max_replicas) {
        (Some(min), Some(max)) => (min, max.max(min)),
        (Some(min), None) => (min, computed_max.max(min)),
        // An explicit max below the computed min caps the min as well: the
        // user asked for at most that many replicas.
        (None, Some(max)) => (computed_min.min(max), max),
        (None, None) => (computed_min, computed_max.max(computed_min)),
    };
    let absorbing_min_replicas =
        need(absorbing_num, absorbing_den).clamp(min_replicas, max_replicas);

    Capacity {
        min_replicas,
        max_replicas,
        absorbing_min_replicas,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::fixtures::acme;

    /// The acme seeds: 50,000 orders/s fleet peak over three regions, 500
    /// orders/s per replica, 25 % headroom.
    fn seed(region: &str, baseline: u32, peak: u32) -> OrdersSpec {
        let mut orders = acme(region).orders;
        orders.baseline_orders_per_second = baseline;
        orders.peak_orders_per_second = peak;
        assert_eq!(orders.orders_per_second_per_replica, 500);
        assert_eq!(orders.headroom_percent, 25);
        orders
    }

    fn us_east_1() -> OrdersSpec {
        seed("us-east-1", 5_000, 20_000)
    }
    fn eu_west_1() -> OrdersSpec {
        seed("eu-west-1", 5_000, 20_000)
    }
    fn ap_northeast_1() -> OrdersSpec {
        seed("ap-northeast-1", 2_500, 10_000)
    }

    #[test]
    fn min_carries_the_baseline_with_headroom() {
        // 5,000 × 1.25 / 500 = 12.5 → 13; 2,500 × 1.25 / 500 = 6.25 → 7.
        assert_eq!(plan_capacity(&us_east_1(), 3).min_replicas, 13);
        assert_eq!(plan_capacity(&eu_west_1(), 3).min_replicas, 13);
        assert_eq!(plan_capacity(&ap_northeast_1(), 3).min_replicas, 7);
    }

    #[test]
    fn max_covers_own_peak_plus_share_of_a_lost_region() {
        // (20,000 + 20,000 / 2) × 1.25 / 500 = 75.
        assert_eq!(plan_capacity(&us_east_1(), 3).max_replicas, 75);
        assert_eq!(plan_capacity(&eu_west_1(), 3).max_replicas, 75);
        // (10,000 + 10,000 / 2) × 1.25 / 500 = 37.5 → 38.
        assert_eq!(plan_capacity(&ap_northeast_1(), 3).max_replicas, 38);
    }

    #[test]
    fn absorbing_min_carries_own_baseline_plus_share_of_a_lost_peak() {
        // (5,000 + 20,000 / 2) × 1.25 / 500 = 37.5 → 38.
        assert_eq!(plan_capacity(&us_east_1(), 3).absorbing_min_replicas, 38);
        // (2,500 + 10,000 / 2) × 1.25 / 500 = 18.75 → 19.
        assert_eq!(
            plan_capacity(&ap_northeast_1(), 3).absorbing_min_replicas,
            19
        );
    }

    #[test]
    fn the_seed_fleet_at_max_serves_the_fleet_peak_with_one_region_lost() {
        let fleet = [us_east_1(), eu_west_1(), ap_northeast_1()];
        let fleet_peak: u32 = fleet.iter().map(|o| o.peak_orders_per_second).sum();
        assert_eq!(fleet_peak, 50_000);
        for lost in 0..fleet.len() {
            // Raw throughput of the survivors at max, headroom used up.
            let survivors: i64 = fleet
                .iter()
                .enumerate()
                .filter(|(i, _)| *i != lost)
                .map(|(_, o)| i64::from(plan_capacity(o, 3).max_replicas) * 500)
                .sum();
            assert!(
                survivors >= i64::from(fleet_peak),
                "losing region {lost} leaves {survivors} orders/s for a {fleet_peak} peak"
            );
        }
    }

    #[test]
    fn spec_overrides_win_over_the_model() {
        let mut orders = us_east_1();
        orders.min_replicas = Some(20);
        orders.max_replicas = Some(30);
        let capacity = plan_capacity(&orders, 3);
        assert_eq!(
            capacity,
            Capacity {
                min_replicas: 20,
                max_replicas: 30,
                // 38 from the model, capped by the explicit max.
                absorbing_min_replicas: 30,
            }
        );
    }

    #[test]
    fn an_explicit_max_below_the_computed_min_caps_the_min() {
        let mut orders = us_east_1();
        orders.max_replicas = Some(5);
        let capacity = plan_capacity(&orders, 3);
        assert_eq!((capacity.min_replicas, capacity.max_replicas), (5, 5));
        assert_eq!(capacity.absorbing_min_replicas, 5);
    }

    #[test]
    fn an_explicit_min_above_the_computed_max_raises_the_max() {
        let mut orders = us_east_1();
        orders.min_replicas = Some(100);
        let capacity = plan_capacity(&orders, 3);
        assert_eq!(
            (
                capacity.min_replicas,
                capacity.max_replicas,
                capacity.absorbing_min_replicas
            ),
            (100, 100, 100)
        );
    }

    #[test]
    fn a_quiet_region_still_runs_two_replicas() {
        let orders = seed("us-east-1", 10, 100);
        let capacity = plan_capacity(&orders, 3);
        assert_eq!(capacity.min_replicas, 2);
        assert_eq!(capacity.max_replicas, 2);
        assert_eq!(capacity.absorbing_min_replicas, 2);
    }

    #[test]
    fn an_explicit_single_replica_is_allowed() {
        let mut orders = seed("us-east-1", 10, 100);
        orders.min_replicas = Some(1);
        assert_eq!(plan_capacity(&orders, 3).min_replicas, 1);
    }

    #[test]
    fn a_single_region_fleet_has_no_share_to_absorb() {
        let capacity = plan_capacity(&us_east_1(), 1);
        // 20,000 × 1.25 / 500 = 50: own peak only.
        assert_eq!(capacity.max_replicas, 50);
        assert_eq!(capacity.min_replicas, 13);
        assert_eq!(capacity.absorbing_min_replicas, 13);
        // A fleet of zero regions cannot happen (validation) and is treated as one.
        assert_eq!(plan_capacity(&us_east_1(), 0), capacity);
    }

    #[test]
    fn a_two_region_fleet_absorbs_the_whole_lost_peak() {
        let capacity = plan_capacity(&us_east_1(), 2);
        // (20,000 + 20,000) × 1.25 / 500 = 100.
        assert_eq!(capacity.max_replicas, 100);
        // (5,000 + 20,000) × 1.25 / 500 = 62.5 → 63.
        assert_eq!(capacity.absorbing_min_replicas, 63);
    }

    #[test]
    fn huge_inputs_saturate_instead_of_overflowing() {
        let mut orders = seed("us-east-1", u32::MAX, u32::MAX);
        orders.orders_per_second_per_replica = 1;
        orders.headroom_percent = 400;
        let capacity = plan_capacity(&orders, usize::MAX);
        assert_eq!(capacity.min_replicas, i32::MAX);
        assert_eq!(capacity.max_replicas, i32::MAX);
        assert_eq!(capacity.absorbing_min_replicas, i32::MAX);
    }

    #[test]
    fn zero_orders_per_replica_does_not_panic() {
        let mut orders = us_east_1();
        orders.orders_per_second_per_replica = 0;
        let capacity = plan_capacity(&orders, 3);
        assert!(capacity.min_replicas <= capacity.max_replicas);
    }

    #[test]
    fn bounds_are_always_ordered() {
        for (baseline, peak) in [(0, 0), (0, 1), (1, 1), (499, 501), (5_000, 20_000)] {
            for regions in 1..=8 {
                for (min, max) in [
                    (None, None),
                    (Some(3), None),
                    (None, Some(3)),
                    (Some(1), Some(1)),
                ] {
                    let mut orders = seed("us-east-1", baseline, peak);
                    orders.min_replicas = min;
                    orders.max_replicas = max;
                    let c = plan_capacity(&orders, regions);
                    assert!(
                        c.min_replicas <= c.absorbing_min_replicas
                            && c.absorbing_min_replicas <= c.max_replicas,
                        "{c:?} for {baseline}/{peak} over {regions} regions, overrides {min:?}/{max:?}"
                    );
                }
            }
        }
    }
}
