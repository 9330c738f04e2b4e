//! The report as text (a timeline, a table, figures, verdicts) and as one
//! JSON document whose field names are stable (`docs/simulation.md`).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use serde::Serialize;

use super::record::{AwsInventory, Entry, RegionSummary};
use super::scenario::format_duration;
use super::{ClockCheck, Figures, FleetReport, Pace, Report, Verdict};
use crate::api::conditions::types;

/// `h:mm:ss.s` of virtual time, fixed width for a column.
pub fn clock_text(d: Duration) -> String {
    let tenths = d.as_millis() / 100;
    let secs = tenths / 10;
    format!(
        "{}:{:02}:{:02}.{}",
        secs / 3600,
        (secs / 60) % 60,
        secs % 60,
        tenths % 10
    )
}

pub fn heading(name: &str, description: &str, pace: Pace) -> String {
    let mut out = format!("shopfleet simulate: {name}");
    if !description.is_empty() {
        let _ = write!(out, "\n{description}");
    }
    let _ = write!(
        out,
        "\nclock: {}",
        match pace {
            Pace::Instant =>
                "instant (paused runtime: virtual time is exact, the run takes only its computing)"
                    .to_string(),
            Pace::Speed(n) => format!("{n}x real time"),
        }
    );
    out
}

pub fn timeline_header() -> String {
    format!("\n{:>11}  {:<15} event", "sim time", "region")
}

pub fn timeline_line(entry: &Entry) -> String {
    format!(
        "{:>11}  {:<15} {}",
        clock_text(entry.at),
        entry.region.as_deref().unwrap_or("-"),
        entry.message
    )
}

/// One row per ShopRegion, like `kubectl get shopregions` with more columns.
pub fn summary_table(regions: &[RegionSummary]) -> String {
    let mut out = String::new();
    let row = |out: &mut String, cells: [&str; 10]| {
        let _ = writeln!(
            out,
            "{:<20} {:<15} {:<10} {:<15} {:<6} {:<12} {:<22} {:<22} {:<7} {}",
            cells[0],
            cells[1],
            cells[2],
            cells[3],
            cells[4],
            cells[5],
            cells[6],
            cells[7],
            cells[8],
            cells[9]
        );
    };
    row(
        &mut out,
        [
            "NAME",
            "REGION",
            "ROLE",
            "WRITER",
            "READY",
            "REPLICAS",
            "DATABASE",
            "CACHE",
            "LAG",
            "CONDITIONS",
        ],
    );
    for r in regions {
        let ready = r
            .condition(types::READY)
            .map_or("-", |c| c.status.as_str())
            .to_string();
        let replicas = r.replicas.map_or("-".to_string(), |o| {
            format!(
                "{} ({}-{}){}",
                o.ready,
                o.min,
                o.max,
                if o.absorbing { "+" } else { "" }
            )
        });
        let store = |s: &Option<super::record::StoreSummary>| {
            s.as_ref().map_or("-".to_string(), |s| match &s.status {
                Some(status) => format!("{} ({status})", s.role),
                None => s.role.clone(),
            })
        };
        let lag = r
            .database
            .as_ref()
            .and_then(|d| d.lag_seconds)
            .map_or("-".to_string(), |l| format!("{l:.2}s"));
        row(
            &mut out,
            [
                &r.shop_region,
                &r.region,
                r.role.as_deref().unwrap_or("-"),
                r.writer_region.as_deref().unwrap_or("-"),
                &ready,
                &replicas,
                &store(&r.database),
                &store(&r.cache),
                &lag,
                &conditions_text(r),
            ],
        );
    }
    out
}

/// The conditions that are not in their good state, or `ok`.
fn conditions_text(region: &RegionSummary) -> String {
    let bad: Vec<String> = region
        .conditions
        .iter()
        .filter(|c| c.type_ != types::RECONCILING && c.type_ != types::READY)
        .filter(|c| {
            if c.type_ == types::STALLED {
                c.status == "True"
            } else {
                c.status != "True"
            }
        })
        .map(|c| format!("{}={} ({})", c.type_, c.status, c.reason))
        .collect();
    if bad.is_empty() {
        "ok".into()
    } else {
        bad.join(", ")
    }
}

fn optional(d: Option<Duration>) -> String {
    d.map_or("-".to_string(), format_duration)
}

pub fn figures_text(report: &Report) -> String {
    let f = &report.figures;
    let mut out = String::new();
    let mut line = |label: &str, value: String| {
        let _ = writeln!(out, "  {label:<24} {value}");
    };
    line(
        "fleet Ready after",
        f.fleet_ready.map_or("never".to_string(), format_duration),
    );
    line(
        "pod rollouts after Ready",
        format!(
            "{}  (new pod templates of the order Deployments)",
            f.rollouts_after_ready
        ),
    );
    if let Some(lost) = f.writer_lost_at {
        line("writer lost at", format_duration(lost));
        line(
            "detection",
            format!(
                "{}  (writer lost -> FailoverStarted)",
                optional(f.detection)
            ),
        );
        line("operator-added", optional(f.operator_added));
        line("AWS promotion", optional(f.aws_promotion));
        line(
            "writer back",
            format!(
                "{}  (writer lost -> a cluster accepts writes)",
                optional(f.writer_back)
            ),
        );
        line(
            "RTO",
            match f.rto {
                Some(rto) => format!(
                    "{}  (writer lost -> the surviving regions' order pods reach the new writer)",
                    format_duration(rto)
                ),
                None => "not recovered within the run".into(),
            },
        );
        line(
            "cache primary reached",
            format!(
                "{}  (writer lost -> every cache primary name points at the new primary, + DNS TTL {})",
                optional(f.cache_primary_reached),
                format_duration(super::figures::CLUSTER_DNS_TTL)
            ),
        );
        line("data at risk (RPO)", optional(f.rpo));
    }
    for change in &f.writer_changes {
        line(
            &format!("{} {} -> {}", change.kind, change.from, change.to),
            format!(
                "requested {}, completed {}, data lost {}",
                format_duration(change.requested_at),
                optional(change.completed_at),
                format_duration(change.data_loss)
            ),
        );
    }
    line(
        "writers at once (max)",
        f.max_concurrent_writers.to_string(),
    );
    let verbs: Vec<String> = f
        .kubernetes_writes
        .by_verb
        .iter()
        .map(|(verb, n)| format!("{verb} {n}"))
        .collect();
    line(
        "kubernetes writes",
        format!("{} ({})", f.kubernetes_writes.total, verbs.join(", ")),
    );
    line(
        "aws calls",
        format!(
            "{} mutating, {} reads, {} failed",
            f.aws_calls.mutating, f.aws_calls.reads, f.aws_calls.failed
        ),
    );
    line("clock check", clock_check_text(&report.clock));
    line(
        "wall time",
        format!("{:.1}s", report.wall_time.as_secs_f64()),
    );
    out
}

fn clock_check_text(check: &ClockCheck) -> String {
    if check.mode == "instant" {
        if check.slowest_request.is_zero() {
            format!(
                "exact: {} Kubernetes requests, none took virtual time",
                check.requests
            )
        } else {
            format!(
                "WARNING: a Kubernetes request took {} of virtual time; figures may be off by that much",
                format_duration(check.slowest_request)
            )
        }
    } else {
        format!(
            "the slowest of {} Kubernetes requests took {} of virtual time: figures are about that precise",
            check.requests,
            format_duration(check.slowest_request)
        )
    }
}

pub fn verdicts_text(verdicts: &[Verdict]) -> String {
    let mut out = String::new();
    if verdicts.is_empty() {
        out.push_str("  (the scenario expects nothing)\n");
    }
    for v in verdicts {
        let _ = writeln!(
            out,
            "  {}  {}: {}",
            if v.passed { "PASS" } else { "FAIL" },
            v.expectation,
            v.detail
        );
    }
    let failed = verdicts.iter().filter(|v| !v.passed).count();
    let _ = writeln!(
        out,
        "{}",
        if failed == 0 {
            format!("result: all {} expectations hold", verdicts.len())
        } else {
            format!("result: {failed} of {} expectations failed", verdicts.len())
        }
    );
    out
}

/// The fleet's figures over its shops (the fleet form).
pub fn fleet_text(fleet: &FleetReport) -> String {
    let f = &fleet.figures;
    let mut out = String::new();
    let mut line = |label: &str, value: String| {
        let _ = writeln!(out, "  {label:<24} {value}");
    };
    line("shops", f.shops.to_string());
    line("every shop Ready", f.fleet_ready.text());
    line("detection", f.detection.text());
    line("RTO", f.rto.text());
    line("data at risk (RPO)", f.rpo.text());
    line("operator-added", f.operator_added.text());
    line("writer changes", f.writer_changes.to_string());
    line(
        "writers at once (max)",
        format!("{} in one shop", f.max_concurrent_writers_in_a_shop),
    );
    out
}

/// Everything after the timeline.
pub fn closing_text(report: &Report) -> String {
    let fleet = report.fleet.as_ref().map_or(String::new(), |fleet| {
        format!(
            "\nfleet (the table and figures below are shop {}'s; expectations hold per shop)\n{}",
            fleet.shown_shop,
            fleet_text(fleet)
        )
    });
    format!(
        "{fleet}\n{}\nfigures\n{}\nexpectations\n{}",
        summary_table(&report.record.regions),
        figures_text(report),
        verdicts_text(&report.verdicts)
    )
}

/// The whole report as text, timeline included.
pub fn text(report: &Report) -> String {
    let mut out = heading(&report.scenario, &report.description, report.pace);
    out.push('\n');
    out.push_str(&timeline_header());
    out.push('\n');
    for entry in &report.record.timeline {
        out.push_str(&timeline_line(entry));
        out.push('\n');
    }
    out.push_str(&closing_text(report));
    out
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct JsonReport<'a> {
    scenario: &'a str,
    description: &'a str,
    run_for_seconds: f64,
    passed: bool,
    expectations: &'a [Verdict],
    /// The fleet form only: figures over the shops, and the shop whose
    /// figures, regions and timeline the rest of the document shows.
    #[serde(skip_serializing_if = "Option::is_none")]
    fleet: Option<&'a FleetReport>,
    figures: &'a Figures,
    regions: &'a [RegionSummary],
    aws: &'a AwsInventory,
    timeline: &'a [Entry],
    clock: &'a ClockCheck,
    wall_time_seconds: f64,
    durations_seconds: BTreeMap<&'static str, f64>,
}

/// The report as one JSON document.
pub fn json(report: &Report) -> String {
    let document = JsonReport {
        scenario: &report.scenario,
        description: &report.description,
        run_for_seconds: report.run_for.as_secs_f64(),
        passed: report.passed(),
        expectations: &report.verdicts,
        fleet: report.fleet.as_ref(),
        figures: &report.figures,
        regions: &report.record.regions,
        aws: &report.record.aws,
        timeline: &report.record.timeline,
        clock: &report.clock,
        wall_time_seconds: report.wall_time.as_secs_f64(),
        durations_seconds: report
            .durations
            .iter()
            .map(|(name, d)| (*name, d.as_secs_f64()))
            .collect(),
    };
    serde_json::to_string_pretty(&document).expect("a report always serialises to JSON")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn virtual_times_print_with_tenths_in_a_fixed_column() {
        assert_eq!(clock_text(Duration::ZERO), "0:00:00.0");
        assert_eq!(clock_text(Duration::from_millis(3_692_150)), "1:01:32.1");
    }
}
