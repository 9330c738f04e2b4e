//! Replication lag of a secondary Aurora cluster, from CloudWatch.
//!
//! Aurora publishes `AuroraGlobalDBReplicationLag` (namespace `AWS/RDS`,
//! dimension `DBClusterIdentifier`) once a minute for each secondary
//! cluster, in **milliseconds**. The writer publishes none, and neither does
//! a secondary whose replication has stopped: no data point is `None`, not
//! zero.

use std::time::Duration;

use aws_sdk_cloudwatch::types::{
    Dimension, Metric, MetricDataQuery, MetricDataResult, MetricStat, ScanBy,
};
use aws_smithy_types::DateTime;
use k8s_openapi::jiff::Timestamp;

use crate::cloud::CloudError;

use super::error::classify;

pub(crate) const NAMESPACE: &str = "AWS/RDS";
pub(crate) const LAG_METRIC: &str = "AuroraGlobalDBReplicationLag";
pub(crate) const CLUSTER_DIMENSION: &str = "DBClusterIdentifier";
const QUERY_ID: &str = "lag";
/// How far back a data point still counts as the current lag.
pub(crate) const WINDOW: Duration = Duration::from_secs(5 * 60);
/// Aurora publishes the metric every minute.
const PERIOD_SECONDS: i32 = 60;

/// The worst lag of each minute: an RPO guard must not average a spike away.
const STATISTIC: &str = "Maximum";

fn query(cluster_id: &str) -> MetricDataQuery {
    MetricDataQuery::builder()
        .id(QUERY_ID)
        .metric_stat(
            MetricStat::builder()
                .metric(
                    Metric::builder()
                        .namespace(NAMESPACE)
                        .metric_name(LAG_METRIC)
                        .dimensions(
                            Dimension::builder()
                                .name(CLUSTER_DIMENSION)
                                .value(cluster_id)
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

pub(crate) async fn replication_lag(
    client: &aws_sdk_cloudwatch::Client,
    region: &str,
    cluster_id: &str,
    now: Timestamp,
) -> Result<Option<Duration>, CloudError> {
    let end = now.as_millisecond();
    let start = end - i64::try_from(WINDOW.as_millis()).expect("five minutes fit an i64");
    let output = client
        .get_metric_data()
        .start_time(DateTime::from_millis(start))
        .end_time(DateTime::from_millis(end))
        .scan_by(ScanBy::TimestampDescending)
        .metric_data_queries(query(cluster_id))
        .send()
        .await
        .map_err(|e| classify(region, e))?;
    Ok(latest_lag(output.metric_data_results()))
}

/// The most recent data point of the lag query, converted from
/// milliseconds. Whatever order the points come in, the newest wins.
pub(crate) fn latest_lag(results: &[MetricDataResult]) -> Option<Duration> {
    let result = results.iter().find(|r| r.id() == Some(QUERY_ID))?;
    let (_, millis) = result
        .timestamps()
        .iter()
        .zip(result.values())
        .filter(|(_, v)| v.is_finite())
        .max_by(|(a, _), (b, _)| a.cmp(b))?;
    Some(Duration::from_secs_f64(millis.max(0.0) / 1000.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(points: &[(i64, f64)]) -> MetricDataResult {
        MetricDataResult::builder()
            .id(QUERY_ID)
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
    fn the_lag_is_read_in_milliseconds() {
        assert_eq!(
            latest_lag(&[result(&[(600, 250.0)])]),
            Some(Duration::from_millis(250))
        );
        assert_eq!(
            latest_lag(&[result(&[(600, 31_500.0)])]),
            Some(Duration::from_millis(31_500))
        );
    }

    #[test]
    fn the_newest_point_wins_whatever_the_order() {
        assert_eq!(
            latest_lag(&[result(&[(540, 900.0), (660, 120.0), (600, 4000.0)])]),
            Some(Duration::from_millis(120))
        );
    }

    #[test]
    fn no_point_means_no_lag_reading_not_zero() {
        assert_eq!(latest_lag(&[result(&[])]), None);
        assert_eq!(latest_lag(&[]), None);
        assert_eq!(latest_lag(&[result(&[(600, f64::NAN)])]), None);
    }

    #[test]
    fn the_query_asks_for_the_worst_lag_per_minute_of_one_cluster() {
        let q = query("acme-eu-west-1");
        let stat = q.metric_stat().unwrap();
        assert_eq!(stat.stat(), Some("Maximum"));
        assert_eq!(stat.period(), Some(60));
        let metric = stat.metric().unwrap();
        assert_eq!(metric.namespace(), Some("AWS/RDS"));
        assert_eq!(metric.metric_name(), Some("AuroraGlobalDBReplicationLag"));
        let dimension = &metric.dimensions()[0];
        assert_eq!(dimension.name(), Some("DBClusterIdentifier"));
        assert_eq!(dimension.value(), Some("acme-eu-west-1"));
    }
}
