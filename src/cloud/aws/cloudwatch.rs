//! Replication lag of a secondary, from CloudWatch, for Aurora and
//! ElastiCache alike.
//!
//! Aurora publishes `AuroraGlobalDBReplicationLag` (namespace `AWS/RDS`,
//! dimension `DBClusterIdentifier`) once a minute for each secondary
//! cluster, in **milliseconds**.
//!
//! ElastiCache publishes `GlobalDatastoreReplicationLag` (namespace
//! `AWS/ElastiCache`) in **seconds**: the lag between a secondary region's
//! primary node and the primary region's primary node. Like every
//! node-based ElastiCache metric it carries the dimension `CacheClusterId`
//! (one cache cluster per node of a replication group, e.g.
//! `acme-eu-west-1-001`, or `acme-eu-west-1-0002-001` with cluster mode on),
//! not the replication group's id. The adapter therefore asks for the
//! metric of every member cluster of the group: only the primary node of
//! each shard has data points, and asking for every member keeps the
//! reading right across an in-region failover, when another node becomes
//! that primary.
//!
//! Of all the series asked for, the newest minute counts, and within it the
//! worst value: the worst shard, as ElastiCache itself defines the lag of a
//! cluster-mode group, and never an average (an RPO guard must not average
//! a spike away). The writer publishes nothing, and neither does a
//! secondary whose replication has stopped: no data point is `None`, not
//! zero.

use std::time::Duration;

use aws_sdk_cloudwatch::types::{
    Dimension, Metric, MetricDataQuery, MetricDataResult, MetricStat, ScanBy,
};
use aws_smithy_types::DateTime;
use k8s_openapi::jiff::Timestamp;

use crate::cloud::CloudError;

use super::error::classify;

/// One replication-lag metric and how to read it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct LagMetric {
    pub namespace: &'static str,
    pub name: &'static str,
    /// The dimension that names a source of the metric.
    pub dimension: &'static str,
    /// What one unit of the metric's values is.
    pub unit: Duration,
}

pub(crate) const AURORA_LAG: LagMetric = LagMetric {
    namespace: "AWS/RDS",
    name: "AuroraGlobalDBReplicationLag",
    dimension: "DBClusterIdentifier",
    unit: Duration::from_millis(1),
};

pub(crate) const ELASTICACHE_LAG: LagMetric = LagMetric {
    namespace: "AWS/ElastiCache",
    name: "GlobalDatastoreReplicationLag",
    dimension: "CacheClusterId",
    unit: Duration::from_secs(1),
};

/// How far back a data point still counts as the current lag.
pub(crate) const WINDOW: Duration = Duration::from_secs(5 * 60);
/// Both services publish the metric every minute.
const PERIOD_SECONDS: i32 = 60;
/// The worst lag of each minute.
const STATISTIC: &str = "Maximum";
/// GetMetricData takes at most 500 queries per request.
const MAX_QUERIES: usize = crate::cloud::aurora::port::METRIC_QUERIES_PER_CALL;

fn query_id(index: usize) -> String {
    format!("lag{index}")
}

fn query(metric: &LagMetric, index: usize, source: &str) -> MetricDataQuery {
    MetricDataQuery::builder()
        .id(query_id(index))
        .metric_stat(
            MetricStat::builder()
                .metric(
                    Metric::builder()
                        .namespace(metric.namespace)
                        .metric_name(metric.name)
                        .dimensions(
                            Dimension::builder()
                                .name(metric.dimension)
                                .value(source)
                                .build(),
                        )
                        .build(),
                )
                .period(PERIOD_SECONDS)
                .stat(STATISTIC)
                .build(),
        )
        .return_data(true)
        .build()
}

/// The current lag read from the metric of `sources` (dimension values) in
/// the five minutes before `now`. No source, or no data point, is `None`.
pub(crate) async fn replication_lag(
    client: &aws_sdk_cloudwatch::Client,
    region: &str,
    metric: &LagMetric,
    sources: &[String],
    now: Timestamp,
) -> Result<Option<Duration>, CloudError> {
    let results = metric_data(client, region, metric, sources, now).await?;
    Ok(latest_lag(metric, &results))
}

/// The current lag of each of `sources` apart, in one request per 500 of
/// them (the same queries as [`replication_lag`], one per source).
pub(crate) async fn replication_lags(
    client: &aws_sdk_cloudwatch::Client,
    region: &str,
    metric: &LagMetric,
    sources: &[String],
    now: Timestamp,
) -> Result<Vec<Option<Duration>>, CloudError> {
    let results = metric_data(client, region, metric, sources, now).await?;
    Ok(lags_by_source(metric, sources.len(), &results))
}

/// The lag of each of `count` sources, from the results of their queries
/// (query `lag<i>` reads source `i`).
pub(crate) fn lags_by_source(
    metric: &LagMetric,
    count: usize,
    results: &[MetricDataResult],
) -> Vec<Option<Duration>> {
    let owners: Vec<usize> = (0..count).collect();
    lags_by_owner(metric, &owners, count, results)
}

/// The lag of each of `count` owners whose sources are the queries:
/// query `lag<i>` reads a source of owner `owners[i]` (the nodes of one
/// replication group), and an owner's lag is read from all of its sources'
/// results together, as [`replication_lag`] reads them.
pub(crate) fn lags_by_owner(
    metric: &LagMetric,
    owners: &[usize],
    count: usize,
    results: &[MetricDataResult],
) -> Vec<Option<Duration>> {
    let mut by_owner: Vec<Vec<MetricDataResult>> = vec![Vec::new(); count];
    for result in results {
        if let Some(owner) = result
            .id()
            .and_then(|id| id.strip_prefix("lag"))
            .and_then(|i| i.parse::<usize>().ok())
            .and_then(|i| owners.get(i).copied())
            .filter(|owner| *owner < count)
        {
            by_owner[owner].push(result.clone());
        }
    }
    by_owner
        .iter()
        .map(|results| latest_lag(metric, results))
        .collect()
}

/// The current lag of each of `count` owners of `sources` (`(owner,
/// source)`, e.g. a replication group and one of its nodes), in one request
/// per 500 sources.
pub(crate) async fn replication_lags_of_owners(
    client: &aws_sdk_cloudwatch::Client,
    region: &str,
    metric: &LagMetric,
    sources: &[(usize, String)],
    count: usize,
    now: Timestamp,
) -> Result<Vec<Option<Duration>>, CloudError> {
    let names: Vec<String> = sources.iter().map(|(_, s)| s.clone()).collect();
    let owners: Vec<usize> = sources.iter().map(|(o, _)| *o).collect();
    let results = metric_data(client, region, metric, &names, now).await?;
    Ok(lags_by_owner(metric, &owners, count, &results))
}

/// The results of one query per source, 500 queries a request.
async fn metric_data(
    client: &aws_sdk_cloudwatch::Client,
    region: &str,
    metric: &LagMetric,
    sources: &[String],
    now: Timestamp,
) -> Result<Vec<MetricDataResult>, CloudError> {
    let end = now.as_millisecond();
    let start = end - i64::try_from(WINDOW.as_millis()).expect("five minutes fit an i64");
    let mut results = Vec::new();
    // Five points per series: even 500 series fit in one page of answers
    // (GetMetricData pages at 100,800 points), so no NextToken to follow.
    for (chunk, batch) in sources.chunks(MAX_QUERIES).enumerate() {
        let queries = batch
            .iter()
            .enumerate()
            .map(|(i, source)| query(metric, chunk * MAX_QUERIES + i, source))
            .collect();
        let output = client
            .get_metric_data()
            .start_time(DateTime::from_millis(start))
            .end_time(DateTime::from_millis(end))
            .scan_by(ScanBy::TimestampDescending)
            .set_metric_data_queries(Some(queries))
            .send()
            .await
            .map_err(|e| classify(region, e))?;
        results.extend(output.metric_data_results().iter().cloned());
    }
    Ok(results)
}

/// The worst value of the newest minute any series has a point for,
/// converted to a duration. Whatever order the points come in, the newest
/// minute wins.
pub(crate) fn latest_lag(metric: &LagMetric, results: &[MetricDataResult]) -> Option<Duration> {
    let points: Vec<(&DateTime, f64)> = results
        .iter()
        .flat_map(|r| r.timestamps().iter().zip(r.values().iter().copied()))
        .filter(|(_, v)| v.is_finite())
        .collect();
    let newest = points.iter().map(|(t, _)| *t).max()?;
    let worst = points
        .iter()
        .filter(|(t, _)| *t == newest)
        .map(|(_, v)| *v)
        .fold(f64::NEG_INFINITY, f64::max);
    Some(Duration::from_secs_f64(
        worst.max(0.0) * metric.unit.as_secs_f64(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(index: usize, points: &[(i64, f64)]) -> MetricDataResult {
        MetricDataResult::builder()
            .id(query_id(index))
            .set_timestamps(Some(
                points
                    .iter()
                    .map(|(t, _)| DateTime::from_secs(*t))
                    .collect(),
            ))
            .set_values(Some(points.iter().map(|(_, v)| *v).collect()))
            .build()
    }

    #[test]
    fn aurora_lag_is_read_in_milliseconds() {
        assert_eq!(
            latest_lag(&AURORA_LAG, &[result(0, &[(600, 250.0)])]),
            Some(Duration::from_millis(250))
        );
        assert_eq!(
            latest_lag(&AURORA_LAG, &[result(0, &[(600, 31_500.0)])]),
            Some(Duration::from_millis(31_500))
        );
    }

    #[test]
    fn elasticache_lag_is_read_in_seconds() {
        assert_eq!(
            latest_lag(&ELASTICACHE_LAG, &[result(0, &[(600, 1.5)])]),
            Some(Duration::from_millis(1500))
        );
    }

    #[test]
    fn the_newest_point_wins_whatever_the_order() {
        assert_eq!(
            latest_lag(
                &AURORA_LAG,
                &[result(0, &[(540, 900.0), (660, 120.0), (600, 4000.0)])]
            ),
            Some(Duration::from_millis(120))
        );
    }

    #[test]
    fn the_worst_shard_of_the_newest_minute_counts() {
        let shards = [
            result(0, &[(600, 0.2), (660, 0.4)]),
            result(1, &[(600, 9.0), (660, 2.5)]),
            // A replica publishes nothing.
            result(2, &[]),
        ];
        assert_eq!(
            latest_lag(&ELASTICACHE_LAG, &shards),
            Some(Duration::from_millis(2500))
        );
    }

    #[test]
    fn a_former_primary_s_older_points_do_not_count() {
        // In-region failover: node 001 stopped publishing at 600, node 002
        // took over at 660.
        let nodes = [
            result(0, &[(540, 30.0), (600, 30.0)]),
            result(1, &[(660, 0.5)]),
        ];
        assert_eq!(
            latest_lag(&ELASTICACHE_LAG, &nodes),
            Some(Duration::from_millis(500))
        );
    }

    #[test]
    fn each_source_of_a_batch_gets_its_own_lag() {
        let results = [
            result(2, &[(660, 40_000.0)]),
            result(0, &[(600, 900.0), (660, 150.0)]),
            // A query id this batch did not send is ignored.
            result(7, &[(660, 1.0)]),
        ];
        assert_eq!(
            lags_by_source(&AURORA_LAG, 3, &results),
            [
                Some(Duration::from_millis(150)),
                None,
                Some(Duration::from_secs(40))
            ]
        );
    }

    #[test]
    fn a_groups_lag_is_the_newest_minute_of_its_own_nodes_only() {
        // Group 0 has nodes lag0 and lag1; group 1 has lag2.
        let results = [
            result(0, &[(600, 2.0)]),
            result(1, &[(660, 1.0)]),
            result(2, &[(600, 9.0)]),
        ];
        let lags = lags_by_owner(&ELASTICACHE_LAG, &[0, 0, 1], 2, &results);
        assert_eq!(
            lags,
            vec![Some(Duration::from_secs(1)), Some(Duration::from_secs(9))]
        );
    }

    #[test]
    fn no_point_means_no_lag_reading_not_zero() {
        assert_eq!(latest_lag(&AURORA_LAG, &[result(0, &[])]), None);
        assert_eq!(latest_lag(&AURORA_LAG, &[]), None);
        assert_eq!(
            latest_lag(&AURORA_LAG, &[result(0, &[(600, f64::NAN)])]),
            None
        );
    }

    #[test]
    fn the_query_asks_for_the_worst_lag_per_minute_of_one_source() {
        for (metric, source) in [
            (AURORA_LAG, "acme-eu-west-1"),
            (ELASTICACHE_LAG, "acme-eu-west-1-001"),
        ] {
            let q = query(&metric, 3, source);
            assert_eq!(q.id(), Some("lag3"));
            let stat = q.metric_stat().unwrap();
            assert_eq!(stat.stat(), Some("Maximum"));
            assert_eq!(stat.period(), Some(60));
            let m = stat.metric().unwrap();
            assert_eq!(m.namespace(), Some(metric.namespace));
            assert_eq!(m.metric_name(), Some(metric.name));
            let dimension = &m.dimensions()[0];
            assert_eq!(dimension.name(), Some(metric.dimension));
            assert_eq!(dimension.value(), Some(source));
        }
        assert_eq!(ELASTICACHE_LAG.namespace, "AWS/ElastiCache");
        assert_eq!(ELASTICACHE_LAG.dimension, "CacheClusterId");
    }
}
