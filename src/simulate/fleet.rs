//! The fleet form of a scenario (`shops: 1000`, or a list of shop names):
//! the scenario's manifests describe one shop, the *template*, and every
//! shop of the fleet gets its own copy, renamed. A platform team hosts
//! many shops in one operator; this is how `simulate` runs them.
//!
//! Expectations hold per shop: each shop's run is recorded apart (its
//! ShopRegions, Events, workloads, and the writers of its own global
//! cluster) and checked on its own; an expectation holds for the fleet when
//! it holds for every shop. Durations (RTO, RPO, detection…) are reported
//! as the worst and the median over the shops.
//!
//! Everything here is pure: the renaming, the routing of observations to a
//! shop's recorder, and the aggregation of per-shop verdicts and figures.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use k8s_openapi::jiff::Timestamp;
use serde::Serialize;
use serde_json::Value;

use super::expect::Verdict;
use super::figures::Figures;
use super::record::{Entry, Recorder, serialize_optional_seconds};
use super::scenario::{Action, Expectation, format_duration};
use crate::sim::cloud::FailoverRecord;

/// The most shops a scenario may run: far beyond what one operator is
/// meant to hold, small enough that a typo (`shops: 100000`) is caught.
pub const MAX_SHOPS: usize = 10_000;

/// The longest shop name: `<shop>-<region>` must fit ElastiCache's 40
/// characters with the longest region codes (14).
const MAX_SHOP_NAME: usize = 24;

/// The shops of a fleet scenario and the shop its manifests are written for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fleet {
    /// The shop the scenario's manifests name (`spec.shop`).
    pub template: String,
    pub shops: Vec<String>,
}

impl Fleet {
    /// `count` shops named `<template>-<n>`, n zero-padded to one width so
    /// that they sort in order.
    pub fn numbered(template: &str, count: usize) -> Result<Fleet, String> {
        if count == 0 || count > MAX_SHOPS {
            return Err(format!("shops: between 1 and {MAX_SHOPS}, not {count}"));
        }
        let width = count.to_string().len();
        let shops = (1..=count)
            .map(|n| format!("{template}-{n:0width$}"))
            .collect();
        Fleet::named(template, shops)
    }

    /// The shops as listed.
    pub fn named(template: &str, shops: Vec<String>) -> Result<Fleet, String> {
        if shops.is_empty() || shops.len() > MAX_SHOPS {
            return Err(format!(
                "shops: list between 1 and {MAX_SHOPS} shops, not {}",
                shops.len()
            ));
        }
        let mut seen = BTreeSet::new();
        for shop in &shops {
            check_shop_name(shop).map_err(|m| format!("shops: {m}"))?;
            if !seen.insert(shop) {
                return Err(format!("shops: {shop} is listed twice"));
            }
        }
        Ok(Fleet {
            template: template.to_string(),
            shops,
        })
    }

    /// The name `name` (a ShopRegion of the template shop) takes in `shop`.
    pub fn rename(&self, name: &str, shop: &str) -> String {
        match name.strip_prefix(&self.template) {
            Some(rest) => format!("{shop}{rest}"),
            None => name.to_string(),
        }
    }

    /// A template manifest as `shop`'s: its name, `spec.shop`, and the
    /// identifiers that would otherwise be shared by every shop (an explicit
    /// global cluster identifier or Global Datastore suffix).
    pub fn rename_object(&self, object: &Value, shop: &str) -> Value {
        let mut object = object.clone();
        for pointer in [
            "/metadata/name",
            "/spec/database/globalClusterIdentifier",
            "/spec/cache/globalReplicationGroupSuffix",
        ] {
            if let Some(Value::String(text)) = object.pointer_mut(pointer) {
                *text = self.rename(text, shop);
            }
        }
        if let Some(spec) = object.get_mut("spec").and_then(Value::as_object_mut) {
            spec.insert("shop".into(), Value::String(shop.to_string()));
        }
        object
    }

    /// The steps of one template step for the whole fleet: what names a
    /// ShopRegion is done to each shop's copy; what acts on a region (an
    /// outage, throttling) happens once, to every shop there.
    pub fn expand(&self, action: Action) -> Vec<Action> {
        match action {
            Action::Apply { file, name, object } => self
                .shops
                .iter()
                .map(|shop| Action::Apply {
                    file: file.clone(),
                    name: self.rename(&name, shop),
                    object: self.rename_object(&object, shop),
                })
                .collect(),
            Action::Delete { name } => self
                .shops
                .iter()
                .map(|shop| Action::Delete {
                    name: self.rename(&name, shop),
                })
                .collect(),
            Action::Set {
                names,
                field,
                value,
            } => self
                .shops
                .iter()
                .map(|shop| Action::Set {
                    names: names.iter().map(|n| self.rename(n, shop)).collect(),
                    field: field.clone(),
                    value: value.clone(),
                })
                .collect(),
            other => vec![other],
        }
    }

    /// The scenario's expectations as they read for `shop`: a ShopRegion
    /// they name is that shop's copy.
    pub fn expectations_for(&self, expectations: &[Expectation], shop: &str) -> Vec<Expectation> {
        expectations
            .iter()
            .map(|e| {
                let mut e = e.clone();
                match &mut e {
                    Expectation::Stalled(s) => s.shop_region = self.rename(&s.shop_region, shop),
                    Expectation::Rejected(r) => r.shop_region = self.rename(&r.shop_region, shop),
                    Expectation::AtEnd(a) => a.shop_region = self.rename(&a.shop_region, shop),
                    Expectation::Event(ev) => {
                        if let Some(name) = &mut ev.shop_region {
                            *name = self.rename(name, shop);
                        }
                    }
                    _ => {}
                }
                e
            })
            .collect()
    }
}

/// A shop name the operator's identifiers can carry: lowercase letters,
/// digits and dashes, starting with a letter, at most 24 characters.
fn check_shop_name(shop: &str) -> Result<(), String> {
    let ok = shop.len() <= MAX_SHOP_NAME
        && shop.starts_with(|c: char| c.is_ascii_lowercase())
        && !shop.ends_with('-')
        && shop
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{shop:?} is not a shop name (lowercase letters, digits and dashes, starting with a letter, at most {MAX_SHOP_NAME} characters)"
        ))
    }
}

/// Which recorder an observation belongs to: the one recorder of a
/// single-form scenario, or the recorder of the shop it is about.
#[derive(Debug)]
enum Routing {
    /// Everything goes to the one recorder, keyed by the run's one shop
    /// ("" when no manifest names one).
    Single(String),
    Fleet {
        shops: BTreeSet<String>,
        /// ShopRegion name → shop, from what the scenario applied.
        shop_of_name: BTreeMap<String, String>,
        /// Global cluster identifier → shop.
        shop_of_global: BTreeMap<String, String>,
    },
}

/// One [`Recorder`] per shop, fed by the runner; routes each observation
/// to the shop it is about.
pub struct Recorders {
    routing: Routing,
    recorders: BTreeMap<String, Recorder>,
    /// The shop whose entries are shown live (the first).
    shown: String,
    /// Per shop, the indices of its failovers in the cloud's list.
    routed: BTreeMap<String, Vec<usize>>,
    /// Failovers not completed yet, by index, with their shop.
    open: BTreeMap<usize, String>,
    failovers_seen: usize,
    /// Per shop, the writer regions it was last told.
    writers: BTreeMap<String, Vec<String>>,
}

impl Recorders {
    /// One recorder per shop of `shops`; one for everything when the run
    /// has a single shop (or none: a scenario whose manifests all fail).
    pub fn new(start: Timestamp, shops: &[String]) -> Self {
        let (routing, keys) = if shops.len() <= 1 {
            let key = shops.first().cloned().unwrap_or_default();
            (Routing::Single(key.clone()), vec![key])
        } else {
            (
                Routing::Fleet {
                    shops: shops.iter().cloned().collect(),
                    shop_of_name: BTreeMap::new(),
                    shop_of_global: BTreeMap::new(),
                },
                shops.to_vec(),
            )
        };
        Recorders {
            routing,
            shown: keys[0].clone(),
            recorders: keys
                .into_iter()
                .map(|k| (k, Recorder::new(start)))
                .collect(),
            routed: BTreeMap::new(),
            open: BTreeMap::new(),
            failovers_seen: 0,
            writers: BTreeMap::new(),
        }
    }

    /// The recorder of a shop, when the fleet has that shop.
    pub fn key_of_shop(&self, shop: Option<&str>) -> Option<String> {
        match &self.routing {
            Routing::Single(key) => Some(key.clone()),
            Routing::Fleet { shops, .. } => shop.filter(|s| shops.contains(*s)).map(str::to_string),
        }
    }

    /// The recorder of a ShopRegion, by name; the shown shop's for one
    /// whose manifest names no shop (the API server refuses it).
    pub fn key_of_name(&self, name: &str) -> Option<String> {
        match &self.routing {
            Routing::Single(key) => Some(key.clone()),
            Routing::Fleet { shop_of_name, .. } => Some(
                shop_of_name
                    .get(name)
                    .cloned()
                    .unwrap_or_else(|| self.shown.clone()),
            ),
        }
    }

    /// The recorder of a cluster, by its identifier (`<shop>-<region>`).
    pub fn key_of_cluster(&self, region: &str, cluster_id: &str) -> Option<String> {
        let shop = cluster_id
            .strip_suffix(region)
            .and_then(|s| s.strip_suffix('-'));
        self.key_of_shop(shop)
    }

    fn key_of_global(&self, global_cluster_id: &str) -> Option<String> {
        match &self.routing {
            Routing::Single(key) => Some(key.clone()),
            Routing::Fleet { shop_of_global, .. } => shop_of_global.get(global_cluster_id).cloned(),
        }
    }

    pub fn get_mut(&mut self, key: &str) -> Option<&mut Recorder> {
        self.recorders.get_mut(key)
    }

    /// The recorder whose entries are shown as the run goes.
    pub fn shown(&self) -> &Recorder {
        &self.recorders[&self.shown]
    }

    /// Virtual time since the start (every recorder has the same start).
    pub fn offset(&self, at: Timestamp) -> Duration {
        self.shown().offset(at)
    }

    /// A step: one that names a ShopRegion goes to its shop, one that acts
    /// on a region or the world to every shop.
    pub fn step(&mut self, at: Duration, action: &Action) {
        if let (
            Action::Apply { name, object, .. },
            Routing::Fleet {
                shop_of_name,
                shop_of_global,
                ..
            },
        ) = (action, &mut self.routing)
            && let Some(shop) = object.pointer("/spec/shop").and_then(Value::as_str)
        {
            shop_of_name.insert(name.clone(), shop.to_string());
            let global = object
                .pointer("/spec/database/globalClusterIdentifier")
                .and_then(Value::as_str)
                .map_or_else(|| format!("{shop}-global"), str::to_string);
            shop_of_global.insert(global, shop.to_string());
        }
        // The shops whose ShopRegions the step names; `None`: it acts on a
        // region or the world, so on every shop.
        let named: Option<BTreeSet<String>> = match action {
            Action::Apply { name, .. } | Action::Delete { name } => {
                Some(self.key_of_name(name).into_iter().collect())
            }
            Action::Set { names, .. } => Some(
                names
                    .iter()
                    .filter_map(|name| self.key_of_name(name))
                    .collect(),
            ),
            _ => None,
        };
        for (key, recorder) in &mut self.recorders {
            if named.as_ref().is_none_or(|keys| keys.contains(key)) {
                recorder.step(at, action);
            }
        }
    }

    /// What the simulated AWS shows: writer clusters as `(region, id)` and
    /// every failover so far (the cloud's list, which only grows), each
    /// routed to its shop. A shop whose writers and failovers did not
    /// change is not asked: with a thousand shops, most rounds change one.
    pub fn aws(
        &mut self,
        at: Duration,
        writers: &[(String, String)],
        failovers: &[FailoverRecord],
    ) {
        let mut dirty: BTreeSet<String> = BTreeSet::new();
        for (index, record) in failovers.iter().enumerate().skip(self.failovers_seen) {
            if let Some(key) = self.key_of_global(&record.global_cluster_id) {
                self.routed.entry(key.clone()).or_default().push(index);
                self.open.insert(index, key.clone());
                dirty.insert(key);
            }
        }
        self.failovers_seen = failovers.len();
        self.open.retain(|index, key| {
            let done = failovers
                .get(*index)
                .is_some_and(|f| f.completed_at.is_some());
            if done {
                dirty.insert(key.clone());
            }
            !done
        });
        let mut by_key: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (region, id) in writers {
            let key = match &self.routing {
                Routing::Single(key) => Some(key.clone()),
                Routing::Fleet { .. } => self.key_of_cluster(region, id),
            };
            if let Some(key) = key {
                by_key.entry(key).or_default().push(region.clone());
            }
        }
        for (key, recorder) in &mut self.recorders {
            let mut now = by_key.remove(key).unwrap_or_default();
            now.sort();
            let known = self.writers.get(key);
            if known == Some(&now) && !dirty.contains(key) {
                continue;
            }
            self.writers.insert(key.clone(), now.clone());
            let routed: Vec<FailoverRecord> = self
                .routed
                .get(key)
                .into_iter()
                .flatten()
                .filter_map(|i| failovers.get(*i).cloned())
                .collect();
            recorder.aws(at, now, &routed);
        }
    }

    /// The recorders' keys: the shops.
    pub fn keys(&self) -> impl Iterator<Item = &String> {
        self.recorders.keys()
    }

    /// The recorders, by shop.
    pub fn into_inner(self) -> BTreeMap<String, Recorder> {
        self.recorders
    }

    /// Timeline entries of the shown shop from `from` on.
    pub fn shown_entries_since(&self, from: usize) -> &[Entry] {
        self.shown().entries_since(from)
    }
}

/// A duration measured in every shop: the worst (and which shop) and the
/// median of those where it was measured.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Spread {
    #[serde(rename = "worstSeconds", serialize_with = "serialize_optional_seconds")]
    pub worst: Option<Duration>,
    pub worst_shop: Option<String>,
    #[serde(
        rename = "medianSeconds",
        serialize_with = "serialize_optional_seconds"
    )]
    pub median: Option<Duration>,
    /// Shops where it was measured.
    pub measured: usize,
}

impl Spread {
    pub fn of<'a>(values: impl IntoIterator<Item = (&'a str, Option<Duration>)>) -> Spread {
        let mut measured: Vec<(Duration, &str)> = values
            .into_iter()
            .filter_map(|(shop, d)| d.map(|d| (d, shop)))
            .collect();
        measured.sort();
        let worst = measured.last();
        Spread {
            worst: worst.map(|(d, _)| *d),
            worst_shop: worst.map(|(_, s)| s.to_string()),
            // The lower median of an even count: a value some shop measured.
            median: measured
                .get(measured.len().saturating_sub(1) / 2)
                .map(|(d, _)| *d),
            measured: measured.len(),
        }
    }

    /// `worst 1m10.0s (acme-07), median 1m05.0s over 10 shops`.
    pub fn text(&self) -> String {
        match (self.worst, self.median) {
            (Some(worst), Some(median)) => format!(
                "worst {} ({}), median {} over {} shop(s)",
                format_duration(worst),
                self.worst_shop.as_deref().unwrap_or("-"),
                format_duration(median),
                self.measured
            ),
            _ => "not measured in any shop".into(),
        }
    }
}

/// The figures of a fleet run, over its shops.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FleetFigures {
    pub shops: usize,
    pub fleet_ready: Spread,
    pub detection: Spread,
    pub rto: Spread,
    pub rpo: Spread,
    pub operator_added: Spread,
    /// Failovers and switchovers, every shop together.
    pub writer_changes: usize,
    /// The most clusters of one shop that accepted writes at once.
    pub max_concurrent_writers_in_a_shop: usize,
}

/// The fleet's figures from each shop's.
pub fn fleet_figures(per_shop: &[(String, Figures)]) -> FleetFigures {
    let spread = |f: fn(&Figures) -> Option<Duration>| {
        Spread::of(
            per_shop
                .iter()
                .map(|(shop, figures)| (shop.as_str(), f(figures))),
        )
    };
    FleetFigures {
        shops: per_shop.len(),
        fleet_ready: spread(|f| f.fleet_ready),
        detection: spread(|f| f.detection),
        rto: spread(|f| f.rto),
        rpo: spread(|f| f.rpo),
        operator_added: spread(|f| f.operator_added),
        writer_changes: per_shop.iter().map(|(_, f)| f.writer_changes.len()).sum(),
        max_concurrent_writers_in_a_shop: per_shop
            .iter()
            .map(|(_, f)| f.max_concurrent_writers)
            .max()
            .unwrap_or(0),
    }
}

/// The most failing shops a fleet verdict names.
const FAILURES_NAMED: usize = 3;

/// One verdict per expectation for the fleet: it holds when it holds for
/// every shop it is about (`None`: not about that shop). A duration limit
/// says the worst and the median over the shops; a failure names the first
/// shops it failed for and why.
pub fn fleet_verdicts(
    expectations: &[Expectation],
    per_shop: &[(String, Vec<Option<Verdict>>)],
    figures: &FleetFigures,
) -> Vec<Verdict> {
    expectations
        .iter()
        .enumerate()
        .map(|(index, expectation)| {
            let about: Vec<(&str, &Verdict)> = per_shop
                .iter()
                .filter_map(|(shop, verdicts)| {
                    Some((shop.as_str(), verdicts.get(index)?.as_ref()?))
                })
                .collect();
            let failed: Vec<(&str, &Verdict)> =
                about.iter().copied().filter(|(_, v)| !v.passed).collect();
            let spread = match expectation {
                Expectation::FleetReadyWithin(_) => Some(("fleet Ready", &figures.fleet_ready)),
                Expectation::RtoBelow(_) => Some(("RTO", &figures.rto)),
                Expectation::RpoBelow(_) => Some(("data at risk", &figures.rpo)),
                Expectation::DetectionBelow(_) => Some(("detection", &figures.detection)),
                Expectation::OperatorAddedBelow(_) => {
                    Some(("operator-added", &figures.operator_added))
                }
                _ => None,
            };
            let mut detail = match spread {
                Some((name, spread)) => format!("{name} {}", spread.text()),
                None => String::new(),
            };
            if failed.is_empty() {
                if detail.is_empty() {
                    detail = match about.as_slice() {
                        [(shop, v)] => format!("{shop}: {}", v.detail),
                        [(shop, v), ..] => format!(
                            "holds for all {} shop(s); {shop}: {}",
                            about.len(),
                            v.detail
                        ),
                        [] => "about no shop of the run".into(),
                    };
                }
            } else {
                let named: Vec<String> = failed
                    .iter()
                    .take(FAILURES_NAMED)
                    .map(|(shop, v)| format!("{shop}: {}", v.detail))
                    .collect();
                let head = format!(
                    "fails for {} of {} shop(s): {}",
                    failed.len(),
                    about.len(),
                    named.join("; ")
                );
                detail = if detail.is_empty() {
                    head
                } else {
                    format!("{head}; {detail}")
                };
            }
            Verdict {
                expectation: expectation.to_string(),
                passed: failed.is_empty() && !about.is_empty(),
                detail,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::KubeDuration;
    use serde_json::json;

    fn fleet(n: usize) -> Fleet {
        Fleet::numbered("acme", n).unwrap()
    }

    #[test]
    fn numbered_shops_sort_in_order_and_keep_the_template_as_prefix() {
        assert_eq!(fleet(3).shops, ["acme-1", "acme-2", "acme-3"]);
        let ten = fleet(10);
        assert_eq!(ten.shops.first().unwrap(), "acme-01");
        assert_eq!(ten.shops.last().unwrap(), "acme-10");
        assert_eq!(fleet(1000).shops[6], "acme-0007");
    }

    #[test]
    fn a_fleet_of_none_too_many_or_bad_names_is_refused() {
        assert!(Fleet::numbered("acme", 0).is_err());
        assert!(Fleet::numbered("acme", MAX_SHOPS + 1).is_err());
        let twice = Fleet::named("acme", vec!["globex".into(), "globex".into()]).unwrap_err();
        assert!(twice.contains("listed twice"), "{twice}");
        let bad = Fleet::named("acme", vec!["Globex".into()]).unwrap_err();
        assert!(bad.contains("not a shop name"), "{bad}");
        assert!(Fleet::named("acme", vec!["a".repeat(25)]).is_err());
    }

    #[test]
    fn a_template_manifest_becomes_the_shops_own_with_its_own_identifiers() {
        let f = Fleet::named("acme", vec!["globex".into()]).unwrap();
        let object = json!({
            "kind": "ShopRegion",
            "metadata": {"name": "acme-us-east-1"},
            "spec": {
                "shop": "acme",
                "region": "us-east-1",
                "database": {"globalClusterIdentifier": "acme-global-db"},
                "orders": {"image": "registry.example.com/acme/orders:1"}
            }
        });
        let renamed = f.rename_object(&object, "globex");
        assert_eq!(renamed["metadata"]["name"], "globex-us-east-1");
        assert_eq!(renamed["spec"]["shop"], "globex");
        assert_eq!(
            renamed["spec"]["database"]["globalClusterIdentifier"],
            "globex-global-db"
        );
        // The image is the same software for every shop.
        assert_eq!(
            renamed["spec"]["orders"]["image"],
            "registry.example.com/acme/orders:1"
        );
    }

    #[test]
    fn a_step_on_a_shopregion_is_done_to_every_shops_copy_and_an_outage_once() {
        let f = fleet(2);
        let applies = f.expand(Action::Apply {
            file: "acme-us-east-1.yaml".into(),
            name: "acme-us-east-1".into(),
            object: json!({"metadata": {"name": "acme-us-east-1"}, "spec": {"shop": "acme"}}),
        });
        let names: Vec<&str> = applies
            .iter()
            .map(|a| match a {
                Action::Apply { name, .. } => name.as_str(),
                _ => panic!("an apply"),
            })
            .collect();
        assert_eq!(names, ["acme-1-us-east-1", "acme-2-us-east-1"]);
        let sets = f.expand(Action::Set {
            names: vec!["acme-us-east-1".into(), "acme-eu-west-1".into()],
            field: "spec.failover.order".into(),
            value: json!(["eu-west-1"]),
        });
        assert_eq!(sets.len(), 2);
        assert!(
            matches!(&sets[1], Action::Set { names, .. } if names == &["acme-2-us-east-1", "acme-2-eu-west-1"])
        );
        let outage = f.expand(Action::Outage {
            region: "us-east-1".into(),
        });
        assert_eq!(outage.len(), 1);
    }

    #[test]
    fn expectations_naming_a_shopregion_name_the_shops_copy() {
        let f = fleet(2);
        let expectations = [
            Expectation::SingleWriter,
            Expectation::AtEnd(super::super::scenario::AtEndExpectation {
                shop_region: "acme-us-east-1".into(),
                role: None,
                ready: Some(true),
            }),
        ];
        let for_two = f.expectations_for(&expectations, "acme-2");
        assert_eq!(for_two[0], Expectation::SingleWriter);
        assert!(
            matches!(&for_two[1], Expectation::AtEnd(a) if a.shop_region == "acme-2-us-east-1")
        );
    }

    #[test]
    fn a_step_is_recorded_for_the_shops_it_names_and_a_region_step_for_all() {
        let start = Timestamp::from_second(1_700_000_000).unwrap();
        let shops = ["acme".to_string(), "globex".to_string()];
        let mut recorders = Recorders::new(start, &shops);
        for (name, shop) in [("acme-eu-west-1", "acme"), ("globex-eu-west-1", "globex")] {
            recorders.step(
                Duration::ZERO,
                &Action::Apply {
                    file: format!("{name}.yaml"),
                    name: name.into(),
                    object: json!({"metadata": {"name": name}, "spec": {"shop": shop, "region": "eu-west-1"}}),
                },
            );
        }
        recorders.step(
            secs(60),
            &Action::Set {
                names: vec!["acme-eu-west-1".into(), "globex-eu-west-1".into()],
                field: "spec.failover.mode".into(),
                value: json!("Manual"),
            },
        );
        recorders.step(
            secs(120),
            &Action::Outage {
                region: "eu-west-1".into(),
            },
        );
        for shop in shops {
            let reasons: Vec<String> = recorders
                .get_mut(&shop)
                .unwrap()
                .entries_since(0)
                .iter()
                .map(|e| e.reason.clone())
                .collect();
            assert_eq!(reasons, ["apply", "set", "outage"], "{shop}");
        }
    }

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn worst_and_median_are_over_the_shops_that_measured_it() {
        let spread = Spread::of([
            ("a", Some(secs(60))),
            ("b", Some(secs(70))),
            ("c", None),
            ("d", Some(secs(65))),
        ]);
        assert_eq!(spread.worst, Some(secs(70)));
        assert_eq!(spread.worst_shop.as_deref(), Some("b"));
        assert_eq!(spread.median, Some(secs(65)));
        assert_eq!(spread.measured, 3);
        assert_eq!(Spread::of([("a", None)]).worst, None);
    }

    fn verdict(passed: bool, detail: &str) -> Verdict {
        Verdict {
            expectation: "singleWriter".into(),
            passed,
            detail: detail.into(),
        }
    }

    #[test]
    fn an_expectation_holds_for_the_fleet_only_when_it_holds_for_every_shop() {
        let expectations = [Expectation::SingleWriter];
        let per_shop = vec![
            (
                "acme-1".to_string(),
                vec![Some(verdict(true, "never two writers"))],
            ),
            (
                "acme-2".to_string(),
                vec![Some(verdict(false, "2 clusters accepted writes at once"))],
            ),
        ];
        let verdicts = fleet_verdicts(&expectations, &per_shop, &FleetFigures::default());
        assert!(!verdicts[0].passed);
        assert!(
            verdicts[0]
                .detail
                .starts_with("fails for 1 of 2 shop(s): acme-2: 2 clusters"),
            "{}",
            verdicts[0].detail
        );
        let verdicts = fleet_verdicts(&expectations, &per_shop[..1], &FleetFigures::default());
        assert!(verdicts[0].passed);
    }

    #[test]
    fn an_expectation_about_one_shops_shopregion_is_checked_in_that_shop_only() {
        let expectations = [Expectation::SingleWriter];
        let per_shop = vec![
            ("acme".to_string(), vec![None]),
            (
                "globex".to_string(),
                vec![Some(verdict(true, "role Primary"))],
            ),
        ];
        let verdicts = fleet_verdicts(&expectations, &per_shop, &FleetFigures::default());
        assert!(verdicts[0].passed);
        assert_eq!(verdicts[0].detail, "globex: role Primary");
        let nobody = vec![("acme".to_string(), vec![None])];
        assert!(!fleet_verdicts(&expectations, &nobody, &FleetFigures::default())[0].passed);
    }

    #[test]
    fn a_duration_limit_reports_the_worst_and_the_median_shop() {
        let expectations = [Expectation::RtoBelow(KubeDuration::parse("72s").unwrap())];
        let per_shop = vec![
            (
                "acme-1".to_string(),
                vec![Some(verdict(true, "RTO 1m05.0s"))],
            ),
            (
                "acme-2".to_string(),
                vec![Some(verdict(true, "RTO 1m10.0s"))],
            ),
        ];
        let figures = FleetFigures {
            rto: Spread::of([("acme-1", Some(secs(65))), ("acme-2", Some(secs(70)))]),
            ..Default::default()
        };
        let verdicts = fleet_verdicts(&expectations, &per_shop, &figures);
        assert!(verdicts[0].passed);
        assert_eq!(
            verdicts[0].detail,
            "RTO worst 1m10.0s (acme-2), median 1m05.0s over 2 shop(s)"
        );
    }
}
