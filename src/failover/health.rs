//! A region's health, from signal samples, with hysteresis. Pure: the probes
//! that produce the samples live in [`crate::probe`].
//!
//! One probe round of one region yields a [`Sample`]: the region's Aurora
//! cluster and Redis replication group as AWS reports them, TCP to the
//! region's database endpoint, and the optional HTTP health URL. [`assess`]
//! turns a sample into evidence, [`HealthState::record`] folds evidence into
//! a verdict with hysteresis, and [`HealthState::health`] reads the verdict at
//! an instant (a verdict without recent evidence decays to `Unknown`).
//!
//! The rules, each tested below:
//! - AWS vouches, the data plane confirms. A data store AWS reports broken or
//!   gone is bad evidence once the database endpoint stops answering; while
//!   it answers, the writer may be taking orders and the signals disagree. An unreachable endpoint or failing health URL is
//!   bad evidence only when AWS cannot vouch for the region (its API is
//!   unreachable too): a misrouted probe or an in-region Aurora failover must
//!   not look like a lost region.
//! - A region whose AWS API cannot be reached while its endpoints answer is
//!   not Healthy: the sample is inconclusive, and the verdict decays to
//!   `Unknown` once no conclusive sample is recent.
//! - `Unhealthy` after [`Thresholds::unhealthy_samples`] consecutive bad
//!   samples, `Healthy` after [`Thresholds::healthy_samples`] consecutive good
//!   ones; in between the verdict holds. An inconclusive sample breaks a run.
//! - `since` is the first sample of the run that established the verdict, so
//!   "Unhealthy for `unhealthyAfter`" counts from the first bad sample.

use std::time::Duration;

use k8s_openapi::jiff::Timestamp;

use crate::api::{HealthVerdict, RegionHealth};
use crate::clock::{after, elapsed};
use crate::cloud::CloudError;
use crate::cloud::aws::status::{ClusterStatus, ReplicationGroupStatus};
use crate::probe::Signal;

/// How often a controller probes every region. Detection takes
/// `unhealthyAfter` plus up to one interval (the outage starts just after a
/// probe).
pub const PROBE_INTERVAL: Duration = Duration::from_secs(5);

/// One probe round of one region, as one controller saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sample {
    pub at: Timestamp,
    /// The region's Aurora cluster (`DescribeDBClusters` in that region).
    pub database: Signal,
    /// The region's Redis replication group; `None` while the cache is not
    /// managed by the operator.
    pub cache: Option<Signal>,
    /// TCP connect to the region's database endpoint.
    pub endpoint: Signal,
    /// GET of the region's health URL; `None` when none is configured.
    pub http: Option<Signal>,
    /// Replication from the region as the other regions see it (their
    /// CloudWatch lag): `Down` when every region that replicated from it
    /// has no fresh data point, `Up` when one has; `None` when not read this
    /// round (it is read when the region looks bad).
    pub vantage: Option<Signal>,
}

/// What one sample says about its region.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Evidence {
    Good,
    Bad,
    Inconclusive,
}

/// A sample's evidence, with the reason and the signals behind it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Assessment {
    pub evidence: Evidence,
    pub reason: &'static str,
    pub message: String,
    /// Bad evidence that independent kinds of signal agree on: see
    /// [`corroborated`].
    pub corroborated: bool,
}

/// Whether independent kinds of signal all say the region is lost: its AWS
/// control plane (the API does not answer, or reports the database gone),
/// its data plane (TCP to its database endpoint), its HTTP health check
/// when one is configured, and replication from it as the other regions
/// see it. Each of them can fail alone for a reason that is not a lost
/// region (a throttled or unreachable API, a misrouted probe, a broken
/// deployment, a CloudWatch gap); all of them at once is a lost region.
pub fn corroborated(sample: &Sample) -> bool {
    let down = |signal: Option<&Signal>| matches!(signal, Some(Signal::Down(_)));
    let control_plane = !matches!(sample.database, Signal::Up);
    let http_agrees = sample.http.as_ref().is_none_or(|h| down(Some(h)));
    control_plane && down(Some(&sample.endpoint)) && http_agrees && down(sample.vantage.as_ref())
}

/// Reasons of health verdicts, as `status.health[].reason` shows them.
pub mod reason {
    pub const SIGNALS_HEALTHY: &str = "SignalsHealthy";
    pub const DATABASE_UNAVAILABLE: &str = "DatabaseUnavailable";
    pub const CACHE_UNAVAILABLE: &str = "CacheUnavailable";
    /// AWS API unreachable and the data plane down: the region is lost.
    pub const REGION_UNREACHABLE: &str = "RegionUnreachable";
    /// AWS reports the region's database available, the data plane fails.
    pub const SIGNALS_DISAGREE: &str = "SignalsDisagree";
    /// AWS API unreachable, the data plane answers or cannot be probed.
    pub const API_UNREACHABLE: &str = "ApiUnreachable";
    /// AWS vouches but some signal has no data (no endpoint known yet, the
    /// cache API did not answer).
    pub const SIGNALS_INCOMPLETE: &str = "SignalsIncomplete";
    /// A run of samples is building up but has not reached its threshold.
    pub const OBSERVING: &str = "Observing";
    pub const NO_RECENT_EVIDENCE: &str = "NoRecentEvidence";
    pub const NOT_YET_OBSERVED: &str = "NotYetObserved";

    /// The reasons a Healthy or Unhealthy verdict can rest on, as written.
    pub fn conclusive(written: &str) -> Option<&'static str> {
        [
            SIGNALS_HEALTHY,
            DATABASE_UNAVAILABLE,
            CACHE_UNAVAILABLE,
            REGION_UNREACHABLE,
            SIGNALS_DISAGREE,
        ]
        .into_iter()
        .find(|known| *known == written)
    }
}

/// What one sample says: see the module documentation for the rules.
pub fn assess(sample: &Sample) -> Assessment {
    let assessment = |evidence, reason, message: String| Assessment {
        corroborated: evidence == Evidence::Bad && corroborated(sample),
        evidence,
        reason,
        message,
    };
    // A database endpoint that accepts connections is a writer that may be
    // taking orders: whatever else says the region is broken, failing it
    // over would lose them. AWS's word and the data plane must agree.
    let endpoint_answers = sample.endpoint == Signal::Up;
    let api_silent = match &sample.database {
        Signal::Down(detail) if endpoint_answers => {
            return assessment(
                Evidence::Inconclusive,
                reason::SIGNALS_DISAGREE,
                format!("AWS reports the database {detail}, but its endpoint answers"),
            );
        }
        Signal::Down(detail) => {
            return assessment(
                Evidence::Bad,
                reason::DATABASE_UNAVAILABLE,
                format!("database: {detail}"),
            );
        }
        Signal::Up => None,
        Signal::NoData(detail) => Some(detail),
    };
    if let Some(Signal::Down(detail)) = &sample.cache {
        return if endpoint_answers {
            assessment(
                Evidence::Inconclusive,
                reason::SIGNALS_DISAGREE,
                format!("AWS reports the cache {detail}, but the database endpoint answers"),
            )
        } else {
            assessment(
                Evidence::Bad,
                reason::CACHE_UNAVAILABLE,
                format!("cache: {detail}"),
            )
        };
    }
    let signals = [
        ("cache", sample.cache.as_ref()),
        ("endpoint", Some(&sample.endpoint)),
        ("http", sample.http.as_ref()),
    ];
    let data_plane_down: Vec<String> = signals
        .iter()
        .filter_map(|(name, signal)| match signal {
            Some(Signal::Down(detail)) => Some(format!("{name}: {detail}")),
            _ => None,
        })
        .collect();
    match api_silent {
        Some(api) if !data_plane_down.is_empty() && !endpoint_answers => assessment(
            Evidence::Bad,
            reason::REGION_UNREACHABLE,
            format!("AWS API: {api}; {}", data_plane_down.join("; ")),
        ),
        Some(api) if data_plane_down.is_empty() => assessment(
            Evidence::Inconclusive,
            reason::API_UNREACHABLE,
            format!("AWS API: {api}; the data plane does not show the region down"),
        ),
        Some(api) => assessment(
            Evidence::Inconclusive,
            reason::API_UNREACHABLE,
            format!(
                "AWS API: {api}; {}, but the database endpoint answers",
                data_plane_down.join("; ")
            ),
        ),
        None if !data_plane_down.is_empty() => assessment(
            Evidence::Inconclusive,
            reason::SIGNALS_DISAGREE,
            format!(
                "AWS reports the database available, but {}",
                data_plane_down.join("; ")
            ),
        ),
        None => {
            let silent: Vec<String> = signals
                .iter()
                .filter_map(|(name, signal)| {
                    signal
                        .and_then(Signal::detail)
                        .map(|detail| format!("{name}: {detail}"))
                })
                .collect();
            if silent.is_empty() {
                let present: Vec<&str> = signals
                    .iter()
                    .filter(|(_, signal)| signal.is_some())
                    .map(|(name, _)| *name)
                    .collect();
                assessment(
                    Evidence::Good,
                    reason::SIGNALS_HEALTHY,
                    format!("database available; {} up", present.join(", ")),
                )
            } else {
                assessment(
                    Evidence::Inconclusive,
                    reason::SIGNALS_INCOMPLETE,
                    format!("database available; no data for {}", silent.join("; ")),
                )
            }
        }
    }
}

/// The hysteresis.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Thresholds {
    /// Consecutive bad samples before a region is `Unhealthy`.
    pub unhealthy_samples: u32,
    /// Consecutive good samples before a region is `Healthy` (again). More
    /// than `unhealthy_samples`: recovering is slower than failing, so a
    /// flapping region does not look healthy.
    pub healthy_samples: u32,
    /// With no conclusive sample for this long, a verdict decays to `Unknown`.
    pub stale_after: Duration,
}

impl Default for Thresholds {
    fn default() -> Self {
        Self::for_interval(PROBE_INTERVAL)
    }
}

impl Thresholds {
    /// The thresholds for samples taken every `interval`: they count
    /// samples, so a slower prober (an accelerated simulation whose real
    /// timer cannot fire every 5 cloud seconds) keeps the same meaning, and
    /// "no recent evidence" is six missed rounds, whatever a round lasts.
    pub fn for_interval(interval: Duration) -> Self {
        Self {
            unhealthy_samples: 2,
            healthy_samples: 3,
            stale_after: interval * 6,
        }
    }
}

/// A verdict at an instant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Health {
    pub verdict: HealthVerdict,
    /// When the verdict began; `None` for a region never judged.
    pub since: Option<Timestamp>,
    pub reason: &'static str,
    pub message: String,
    /// The region has been judged `Healthy` before (by this process, or by
    /// the one whose published verdict it took up). Only such a region is
    /// absorbed when lost: one that never served (a region still joining
    /// the fleet) carries no traffic to take over.
    pub was_healthy: bool,
    /// While `Unhealthy`: since when independent kinds of signal agree the
    /// region is lost (the short `confirmedLossAfter` window counts from
    /// here); `None` when only one kind of evidence says so.
    pub confirmed_since: Option<Timestamp>,
}

impl Health {
    /// Nothing known about the region.
    pub fn unknown() -> Self {
        Self {
            verdict: HealthVerdict::Unknown,
            since: None,
            reason: reason::NOT_YET_OBSERVED,
            message: "no probe of this region yet".into(),
            was_healthy: false,
            confirmed_since: None,
        }
    }

    pub fn is_healthy(&self) -> bool {
        self.verdict == HealthVerdict::Healthy
    }

    /// The status entry a controller writes for this region.
    pub fn to_status(&self, region: &str, endpoint: Option<&str>) -> RegionHealth {
        RegionHealth {
            region: region.to_string(),
            verdict: self.verdict,
            since: self.since,
            reason: self.reason.to_string(),
            message: self.message.clone(),
            endpoint: endpoint.map(str::to_string),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Streak {
    evidence: Evidence,
    count: u32,
    started: Timestamp,
}

/// The memory behind one region's verdict: the verdict, the current run of
/// samples, and when the last conclusive one was taken.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HealthState {
    verdict: HealthVerdict,
    since: Option<Timestamp>,
    /// The assessment that established the verdict.
    basis: Option<Assessment>,
    streak: Option<Streak>,
    last_conclusive: Option<Timestamp>,
    last_sample: Option<Timestamp>,
    latest: Option<Assessment>,
    /// See [`Health::was_healthy`].
    was_healthy: bool,
    /// The first of the current run of corroborated bad samples.
    confirmed_since: Option<Timestamp>,
}

impl Default for HealthState {
    fn default() -> Self {
        Self::new()
    }
}

impl HealthState {
    /// A region not yet probed: `Unknown`.
    pub fn new() -> Self {
        Self {
            verdict: HealthVerdict::Unknown,
            since: None,
            basis: None,
            streak: None,
            last_conclusive: None,
            last_sample: None,
            latest: None,
            was_healthy: false,
            confirmed_since: None,
        }
    }

    /// The verdict a previous operator process published (`status.health`),
    /// taken up at `now` as if just confirmed: a restarted operator goes on
    /// from it instead of starting from nothing, so a restart neither
    /// rewrites the status nor announces a change that did not happen.
    /// New samples then move it as they would have moved the old process's.
    /// `None` when the stored verdict is not a conclusive one.
    pub fn resumed(stored: &RegionHealth, now: Timestamp) -> Option<Self> {
        let evidence = match stored.verdict {
            HealthVerdict::Healthy => Evidence::Good,
            HealthVerdict::Unhealthy => Evidence::Bad,
            HealthVerdict::Unknown => return None,
        };
        Some(Self {
            verdict: stored.verdict,
            since: stored.since,
            basis: Some(Assessment {
                evidence,
                reason: reason::conclusive(&stored.reason)?,
                message: stored.message.clone(),
                corroborated: false,
            }),
            streak: None,
            last_conclusive: Some(now),
            last_sample: Some(now),
            latest: None,
            // A published Unhealthy verdict was a member that failed: it
            // had served before, or it would not have been judged.
            was_healthy: true,
            // Corroboration is not published: a restarted process confirms
            // it again (or waits the longer window).
            confirmed_since: None,
        })
    }

    /// Folds one sample in. A sample older than the last one folded (probes
    /// can finish out of order) is ignored.
    pub fn record(&self, sample: &Sample, thresholds: &Thresholds) -> Self {
        if self.last_sample.is_some_and(|last| sample.at < last) {
            return self.clone();
        }
        let mut next = self.clone();
        next.last_sample = Some(sample.at);
        // A run interrupted by silence is not consecutive, and a verdict
        // nobody confirmed for a while is no longer known.
        if let Some(last) = self.last_conclusive
            && elapsed(last, sample.at) > thresholds.stale_after
        {
            next.streak = None;
            if next.verdict != HealthVerdict::Unknown {
                next.verdict = HealthVerdict::Unknown;
                next.since = Some(after(last, thresholds.stale_after));
                next.basis = None;
            }
        }
        let assessment = assess(sample);
        next.confirmed_since = if assessment.corroborated {
            next.confirmed_since.or(Some(sample.at))
        } else {
            None
        };
        next.latest = Some(assessment.clone());
        let evidence = assessment.evidence;
        if evidence == Evidence::Inconclusive {
            next.streak = None;
            // An unknown region keeps the first explanation of a kind, so
            // that error texts changing from probe to probe do not rewrite
            // the status every few seconds.
            if next.verdict == HealthVerdict::Unknown
                && next
                    .basis
                    .as_ref()
                    .is_none_or(|b| b.reason != assessment.reason)
            {
                next.basis = Some(assessment);
            }
            return next;
        }
        next.last_conclusive = Some(sample.at);
        let streak = match next.streak {
            Some(s) if s.evidence == evidence => Streak {
                count: s.count.saturating_add(1),
                ..s
            },
            _ => Streak {
                evidence,
                count: 1,
                started: sample.at,
            },
        };
        next.streak = Some(streak);
        let (target, needed) = match evidence {
            Evidence::Bad => (HealthVerdict::Unhealthy, thresholds.unhealthy_samples),
            _ => (HealthVerdict::Healthy, thresholds.healthy_samples),
        };
        if next.verdict != target && streak.count >= needed.max(1) {
            next.verdict = target;
            next.since = Some(streak.started);
            next.basis = Some(assessment);
            next.was_healthy |= target == HealthVerdict::Healthy;
        }
        next
    }

    /// The verdict at `now`: the folded verdict, or `Unknown` when no
    /// conclusive sample is recent.
    pub fn health(&self, now: Timestamp, thresholds: &Thresholds) -> Health {
        if self.last_sample.is_none() {
            return Health::unknown();
        }
        if let Some(last) = self.last_conclusive
            && elapsed(last, now) > thresholds.stale_after
        {
            let latest = self
                .latest
                .as_ref()
                .map(|a| format!("; latest: {}", a.reason))
                .unwrap_or_default();
            return Health {
                verdict: HealthVerdict::Unknown,
                since: Some(after(last, thresholds.stale_after)),
                reason: reason::NO_RECENT_EVIDENCE,
                message: format!("no conclusive sample since {last}{latest}"),
                was_healthy: self.was_healthy,
                confirmed_since: None,
            };
        }
        match (&self.basis, self.verdict) {
            (Some(basis), HealthVerdict::Healthy | HealthVerdict::Unhealthy) => Health {
                verdict: self.verdict,
                since: self.since,
                reason: basis.reason,
                message: basis.message.clone(),
                was_healthy: self.was_healthy,
                confirmed_since: self
                    .confirmed_since
                    .filter(|_| self.verdict == HealthVerdict::Unhealthy),
            },
            _ => {
                // Unknown, and either the latest sample was inconclusive or a
                // run is building up towards a threshold.
                let latest = self.latest.as_ref();
                let (reason, message) = match (latest, &self.basis) {
                    (Some(a), Some(basis)) if a.evidence == Evidence::Inconclusive => {
                        (basis.reason, basis.message.clone())
                    }
                    _ => (
                        reason::OBSERVING,
                        format!(
                            "collecting evidence: {} consecutive good or {} consecutive bad samples decide",
                            thresholds.healthy_samples, thresholds.unhealthy_samples
                        ),
                    ),
                };
                Health {
                    verdict: HealthVerdict::Unknown,
                    since: self.since,
                    reason,
                    message,
                    was_healthy: self.was_healthy,
                    confirmed_since: None,
                }
            }
        }
    }
}

/// The verdict that `samples`, oldest first, lead to at `now`.
pub fn verdict(samples: &[Sample], now: Timestamp, thresholds: &Thresholds) -> Health {
    samples
        .iter()
        .fold(HealthState::new(), |state, sample| {
            state.record(sample, thresholds)
        })
        .health(now, thresholds)
}

/// The database signal from `DescribeDBClusters` of the region's cluster:
/// `Ok(None)` when the cluster does not exist.
pub fn database_signal(described: Result<Option<&ClusterStatus>, &CloudError>) -> Signal {
    let status = match described {
        Ok(Some(status)) => status,
        Ok(None) => return Signal::Down("the cluster does not exist".into()),
        Err(error) => return Signal::NoData(error.to_string()),
    };
    match status {
        ClusterStatus::Available
        | ClusterStatus::BackingUp
        | ClusterStatus::Backtracking
        | ClusterStatus::Creating
        | ClusterStatus::FailingOver
        | ClusterStatus::SwitchingOver
        | ClusterStatus::Maintenance
        | ClusterStatus::Migrating
        | ClusterStatus::Modifying
        | ClusterStatus::Promoting
        | ClusterStatus::Renaming
        | ClusterStatus::ResettingMasterCredentials
        | ClusterStatus::Starting
        | ClusterStatus::StorageOptimization
        | ClusterStatus::UpdateIamDbAuth
        | ClusterStatus::Upgrading
        | ClusterStatus::Rebooting => Signal::Up,
        ClusterStatus::Deleting
        | ClusterStatus::Stopped
        | ClusterStatus::Stopping
        | ClusterStatus::Failed
        | ClusterStatus::InaccessibleEncryptionCredentials
        | ClusterStatus::InaccessibleEncryptionCredentialsRecoverable
        | ClusterStatus::MigrationFailed
        | ClusterStatus::CloningFailed
        | ClusterStatus::StorageFull
        | ClusterStatus::IncompatibleParameters
        | ClusterStatus::IncompatibleNetwork
        | ClusterStatus::IncompatibleRestore => Signal::Down(format!("the cluster is {status}")),
        // A state this code does not know: let the data plane decide.
        ClusterStatus::Other(other) => {
            Signal::NoData(format!("the cluster is {other}, a state not understood"))
        }
    }
}

/// The cache signal from `DescribeReplicationGroups` of the region's
/// replication group: `Ok(None)` when it does not exist.
pub fn cache_signal(described: Result<Option<&ReplicationGroupStatus>, &CloudError>) -> Signal {
    let status = match described {
        Ok(Some(status)) => status,
        Ok(None) => return Signal::Down("the replication group does not exist".into()),
        Err(error) => return Signal::NoData(error.to_string()),
    };
    match status {
        ReplicationGroupStatus::Available
        | ReplicationGroupStatus::Creating
        | ReplicationGroupStatus::Modifying
        | ReplicationGroupStatus::Snapshotting => Signal::Up,
        ReplicationGroupStatus::Deleting | ReplicationGroupStatus::CreateFailed => {
            Signal::Down(format!("the replication group is {status}"))
        }
        ReplicationGroupStatus::Other(other) => Signal::NoData(format!(
            "the replication group is {other}, a state not understood"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(seconds: i64) -> Timestamp {
        Timestamp::from_second(1_735_689_600 + seconds).unwrap()
    }

    fn good(at: i64) -> Sample {
        Sample {
            at: t(at),
            database: Signal::Up,
            cache: Some(Signal::Up),
            endpoint: Signal::Up,
            http: None,
            vantage: None,
        }
    }

    /// A region outage as the outside sees it: the API does not answer and
    /// the endpoint does not accept connections.
    fn outage(at: i64) -> Sample {
        Sample {
            at: t(at),
            database: Signal::NoData("region us-east-1 unavailable".into()),
            cache: Some(Signal::NoData("region us-east-1 unavailable".into())),
            endpoint: Signal::Down("connect timed out".into()),
            http: None,
            vantage: None,
        }
    }

    /// The API cannot be reached, but the database endpoint answers.
    fn api_only_down(at: i64) -> Sample {
        Sample {
            endpoint: Signal::Up,
            ..outage(at)
        }
    }

    fn fold(samples: &[Sample]) -> HealthState {
        let th = Thresholds::default();
        samples
            .iter()
            .fold(HealthState::new(), |s, sample| s.record(sample, &th))
    }

    fn at(samples: &[Sample], now: i64) -> Health {
        verdict(samples, t(now), &Thresholds::default())
    }

    #[test]
    fn all_signals_up_is_good_evidence() {
        assert_eq!(assess(&good(0)).evidence, Evidence::Good);
        assert_eq!(assess(&good(0)).reason, reason::SIGNALS_HEALTHY);
    }

    #[test]
    fn a_database_aws_reports_broken_is_bad_evidence_once_its_endpoint_stops_answering() {
        let broken = Sample {
            database: Signal::Down("the cluster is inaccessible-encryption-credentials".into()),
            endpoint: Signal::Down("connection refused".into()),
            ..good(0)
        };
        let a = assess(&broken);
        assert_eq!(
            (a.evidence, a.reason),
            (Evidence::Bad, reason::DATABASE_UNAVAILABLE)
        );
        assert!(a.message.contains("inaccessible-encryption-credentials"));
        // While the endpoint answers, the writer may be taking orders.
        let answering = Sample {
            endpoint: Signal::Up,
            ..broken
        };
        let a = assess(&answering);
        assert_eq!(
            (a.evidence, a.reason),
            (Evidence::Inconclusive, reason::SIGNALS_DISAGREE)
        );
    }

    #[test]
    fn a_cache_aws_reports_gone_is_bad_evidence_once_the_database_endpoint_stops_answering() {
        let gone = Sample {
            cache: Some(Signal::Down("the replication group does not exist".into())),
            endpoint: Signal::Down("connection refused".into()),
            ..good(0)
        };
        assert_eq!(assess(&gone).reason, reason::CACHE_UNAVAILABLE);
        assert_eq!(assess(&gone).evidence, Evidence::Bad);
        let answering = Sample {
            endpoint: Signal::Up,
            ..gone
        };
        assert_eq!(assess(&answering).evidence, Evidence::Inconclusive);
    }

    #[test]
    fn an_unreachable_api_and_a_dead_endpoint_is_a_lost_region() {
        let a = assess(&outage(0));
        assert_eq!(
            (a.evidence, a.reason),
            (Evidence::Bad, reason::REGION_UNREACHABLE)
        );
        assert!(a.message.contains("connect timed out"), "{}", a.message);
    }

    #[test]
    fn an_unreachable_api_and_a_failing_health_url_is_a_lost_region() {
        let sample = Sample {
            endpoint: Signal::NoData("no endpoint known".into()),
            http: Some(Signal::Down("HTTP 503".into())),
            ..outage(0)
        };
        assert_eq!(assess(&sample).evidence, Evidence::Bad);
    }

    #[test]
    fn an_unreachable_api_with_a_reachable_endpoint_is_inconclusive_not_healthy() {
        let a = assess(&api_only_down(0));
        assert_eq!(
            (a.evidence, a.reason),
            (Evidence::Inconclusive, reason::API_UNREACHABLE)
        );
    }

    #[test]
    fn aws_vouching_for_the_database_vetoes_a_data_plane_failure() {
        // A probe without a network path, or an in-region Aurora failover,
        // must not look like a lost region.
        let sample = Sample {
            endpoint: Signal::Down("connection refused".into()),
            ..good(0)
        };
        let a = assess(&sample);
        assert_eq!(
            (a.evidence, a.reason),
            (Evidence::Inconclusive, reason::SIGNALS_DISAGREE)
        );
        assert!(a.message.contains("connection refused"));
    }

    #[test]
    fn a_missing_endpoint_keeps_a_region_from_looking_healthy() {
        let sample = Sample {
            endpoint: Signal::NoData("no endpoint known yet".into()),
            ..good(0)
        };
        assert_eq!(assess(&sample).reason, reason::SIGNALS_INCOMPLETE);
        assert_eq!(assess(&sample).evidence, Evidence::Inconclusive);
    }

    #[test]
    fn a_region_never_probed_is_unknown() {
        assert_eq!(at(&[], 0), Health::unknown());
    }

    #[test]
    fn one_bad_sample_does_not_make_a_healthy_region_unhealthy() {
        let h = at(&[good(0), good(5), good(10), outage(15)], 15);
        assert_eq!(h.verdict, HealthVerdict::Healthy);
        assert_eq!(h.since, Some(t(0)));
    }

    #[test]
    fn consecutive_bad_samples_make_a_region_unhealthy_since_the_first() {
        let h = at(&[good(0), good(5), good(10), outage(15), outage(20)], 20);
        assert_eq!(h.verdict, HealthVerdict::Unhealthy);
        assert_eq!(h.since, Some(t(15)), "counted from the first bad sample");
        assert_eq!(h.reason, reason::REGION_UNREACHABLE);
    }

    #[test]
    fn a_good_sample_between_bad_ones_resets_the_run() {
        let h = at(
            &[good(0), good(5), good(10), outage(15), good(20), outage(25)],
            25,
        );
        assert_eq!(h.verdict, HealthVerdict::Healthy);
    }

    #[test]
    fn an_inconclusive_sample_breaks_a_run() {
        let h = at(
            &[
                good(0),
                good(5),
                good(10),
                outage(15),
                api_only_down(20),
                outage(25),
            ],
            25,
        );
        assert_eq!(h.verdict, HealthVerdict::Healthy);
    }

    #[test]
    fn an_unhealthy_region_needs_more_good_samples_than_it_took_bad_ones() {
        let base = [good(0), good(5), good(10), outage(15), outage(20)];
        let mut samples = base.to_vec();
        samples.extend([good(25), good(30)]);
        assert_eq!(at(&samples, 30).verdict, HealthVerdict::Unhealthy);
        samples.push(good(35));
        let h = at(&samples, 35);
        assert_eq!(h.verdict, HealthVerdict::Healthy);
        assert_eq!(h.since, Some(t(25)));
    }

    #[test]
    fn a_flapping_region_never_becomes_healthy_again() {
        let mut samples = vec![outage(0), outage(5)];
        for i in 0..20 {
            let at = 10 + i * 5;
            samples.push(if i % 3 == 2 { outage(at) } else { good(at) });
        }
        let h = at(&samples, 110);
        assert_eq!(h.verdict, HealthVerdict::Unhealthy);
        assert_eq!(h.since, Some(t(0)));
    }

    #[test]
    fn a_new_region_becomes_healthy_only_after_enough_good_samples() {
        assert_eq!(at(&[good(0), good(5)], 5).verdict, HealthVerdict::Unknown);
        assert_eq!(at(&[good(0), good(5)], 5).reason, reason::OBSERVING);
        assert_eq!(
            at(&[good(0), good(5), good(10)], 10).verdict,
            HealthVerdict::Healthy
        );
    }

    #[test]
    fn a_healthy_region_whose_api_stays_unreachable_decays_to_unknown() {
        let th = Thresholds::default();
        let mut samples = vec![good(0), good(5), good(10)];
        let mut at_s = 15;
        while at_s <= 10 + th.stale_after.as_secs() as i64 {
            samples.push(api_only_down(at_s));
            at_s += 5;
        }
        let before = at(&samples, at_s - 5);
        assert_eq!(before.verdict, HealthVerdict::Healthy, "within stale_after");
        samples.push(api_only_down(at_s));
        let h = at(&samples, at_s);
        assert_eq!(h.verdict, HealthVerdict::Unknown);
        assert_eq!(h.reason, reason::NO_RECENT_EVIDENCE);
        assert_eq!(h.since, Some(t(10 + th.stale_after.as_secs() as i64)));
        assert!(
            h.message.contains("latest: ApiUnreachable"),
            "{}",
            h.message
        );
    }

    #[test]
    fn an_unhealthy_verdict_without_recent_samples_is_unknown() {
        // The prober stopped (operator paused): an old verdict is not evidence.
        let th = Thresholds::default();
        let samples = [outage(0), outage(5)];
        assert_eq!(at(&samples, 5).verdict, HealthVerdict::Unhealthy);
        let later = 5 + th.stale_after.as_secs() as i64 + 1;
        let h = at(&samples, later);
        assert_eq!(h.verdict, HealthVerdict::Unknown);
        assert_eq!(h.reason, reason::NO_RECENT_EVIDENCE);
    }

    #[test]
    fn after_a_silence_a_region_must_prove_itself_again() {
        let th = Thresholds::default();
        let gap = th.stale_after.as_secs() as i64 + 5;
        // Healthy, silence, then two good samples: not yet healthy again.
        let h = at(
            &[good(0), good(5), good(10), good(10 + gap), good(15 + gap)],
            15 + gap,
        );
        assert_eq!(h.verdict, HealthVerdict::Unknown);
        // An old bad sample does not combine with a new one across a gap.
        let h = at(&[outage(0), outage(gap)], gap);
        assert_eq!(h.verdict, HealthVerdict::Unknown);
    }

    #[test]
    fn an_unknown_region_keeps_its_first_explanation_while_error_texts_change() {
        let th = Thresholds::default();
        let probe = |at: i64, request: &str| Sample {
            database: Signal::NoData(format!("throttled (request {request})")),
            ..api_only_down(at)
        };
        let first = verdict(&[probe(0, "a1")], t(0), &th);
        let later = verdict(
            &[probe(0, "a1"), probe(5, "b2"), probe(10, "c3")],
            t(10),
            &th,
        );
        assert_eq!(first.reason, reason::API_UNREACHABLE);
        assert_eq!(later, first);
    }

    #[test]
    fn samples_arriving_out_of_order_are_ignored() {
        let th = Thresholds::default();
        let state = fold(&[good(0), good(5), good(10), outage(20)]);
        let same = state.record(&outage(15), &th);
        assert_eq!(same, state);
    }

    #[test]
    fn the_verdict_of_a_stream_does_not_depend_on_reading_it_in_between() {
        let th = Thresholds::default();
        let samples = [good(0), good(5), outage(10), outage(15), good(20)];
        let state = fold(&samples);
        assert_eq!(state.health(t(20), &th), verdict(&samples, t(20), &th));
    }

    #[test]
    fn the_status_entry_carries_verdict_since_and_endpoint() {
        let h = at(&[outage(0), outage(5)], 5);
        let status = h.to_status(
            "us-east-1",
            Some("acme.cluster-x.us-east-1.rds.amazonaws.com:5432"),
        );
        assert_eq!(status.verdict, HealthVerdict::Unhealthy);
        assert_eq!(
            status.since.map(|since| since.to_string()).as_deref(),
            Some("2025-01-01T00:00:00Z")
        );
        assert_eq!(status.reason, reason::REGION_UNREACHABLE);
        assert!(status.endpoint.unwrap().ends_with(":5432"));
    }

    #[test]
    fn aws_cluster_states_map_to_signals() {
        assert_eq!(
            database_signal(Ok(Some(&ClusterStatus::Available))),
            Signal::Up
        );
        assert_eq!(
            database_signal(Ok(Some(&ClusterStatus::FailingOver))),
            Signal::Up
        );
        assert!(matches!(
            database_signal(Ok(Some(&ClusterStatus::Stopped))),
            Signal::Down(_)
        ));
        assert!(matches!(database_signal(Ok(None)), Signal::Down(_)));
        assert!(matches!(
            database_signal(Ok(Some(&ClusterStatus::parse("some-new-state")))),
            Signal::NoData(_)
        ));
        let unreachable = CloudError::region_unavailable("us-east-1", "connect failed");
        assert!(matches!(
            database_signal(Err(&unreachable)),
            Signal::NoData(d) if d.contains("us-east-1")
        ));
    }

    #[test]
    fn aws_replication_group_states_map_to_signals() {
        assert_eq!(
            cache_signal(Ok(Some(&ReplicationGroupStatus::Available))),
            Signal::Up
        );
        assert!(matches!(
            cache_signal(Ok(Some(&ReplicationGroupStatus::CreateFailed))),
            Signal::Down(_)
        ));
        assert!(matches!(cache_signal(Ok(None)), Signal::Down(_)));
        assert!(matches!(
            cache_signal(Err(&CloudError::throttled("slow down"))),
            Signal::NoData(_)
        ));
    }

    #[test]
    fn a_restarted_operator_goes_on_from_the_published_verdict() {
        let th = Thresholds::default();
        let published = fold(&[good(0), good(5), good(10)])
            .health(t(10), &th)
            .to_status("us-east-1", None);
        assert_eq!(published.verdict, HealthVerdict::Healthy);
        let resumed = HealthState::resumed(&published, t(300)).unwrap();
        // Nothing new to say: the status it would write is the stored one.
        assert_eq!(
            resumed.health(t(300), &th).to_status("us-east-1", None),
            published
        );
        let after_good = resumed.record(&good(305), &th);
        assert_eq!(
            after_good.health(t(305), &th).to_status("us-east-1", None),
            published
        );
        // Bad evidence moves it exactly as it would move a running process.
        let n = i64::from(th.unhealthy_samples);
        let lost = (0..n).fold(resumed, |s, i| s.record(&outage(305 + 5 * i), &th));
        let last = 305 + 5 * (n - 1);
        assert_eq!(lost.health(t(last), &th).verdict, HealthVerdict::Unhealthy);
    }

    #[test]
    fn an_unknown_or_unreadable_published_verdict_is_not_taken_up() {
        let mut stored = Health::unknown().to_status("us-east-1", None);
        assert!(HealthState::resumed(&stored, t(0)).is_none());
        stored.verdict = HealthVerdict::Healthy;
        stored.reason = "SomethingNew".into();
        assert!(HealthState::resumed(&stored, t(0)).is_none());
    }
}
