//! The Argo CD health check of ShopRegion
//! (`argocd/resource_customizations/shopfleet.io/ShopRegion/health.lua`),
//! run in a real Lua 5.1 interpreter: Argo CD runs health checks in
//! gopher-lua, which implements Lua 5.1.
//!
//! `health_test.yaml` beside the script is in Argo CD's own format. Every
//! case in it runs against its fixture and must give exactly its status and
//! message, and every fixture in `testdata/` must be used by a case, so that
//! nothing there is silently untested. The named tests below pick single
//! cases so that a failure names the behaviour that broke; the expected
//! values still come from `health_test.yaml` only. docs/argocd.md describes
//! the rules.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use mlua::prelude::{Lua, LuaResult, LuaSerdeExt, LuaSerializeOptions, LuaTable};
use serde_json::{Value, json};

const CUSTOMIZATION: &str = "argocd/resource_customizations/shopfleet.io/ShopRegion";

fn customization_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(CUSTOMIZATION)
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

fn read_yaml(path: &Path) -> Value {
    serde_saphyr::from_str(&read(path))
        .unwrap_or_else(|e| panic!("{} is not valid YAML: {e}", path.display()))
}

/// One entry of `health_test.yaml`.
#[derive(Debug)]
struct Case {
    input_path: String,
    status: String,
    message: String,
}

fn cases() -> Vec<Case> {
    let file = customization_dir().join("health_test.yaml");
    let doc = read_yaml(&file);
    let tests = doc
        .get("tests")
        .and_then(Value::as_array)
        .unwrap_or_else(|| panic!("{} has no `tests:` list", file.display()));
    assert!(!tests.is_empty(), "{} lists no tests", file.display());
    tests
        .iter()
        .enumerate()
        .map(|(index, test)| {
            let text = |pointer: &str| {
                test.pointer(pointer)
                    .and_then(Value::as_str)
                    .unwrap_or_else(|| {
                        panic!(
                            "test {index} of {} has no string at {pointer}",
                            file.display()
                        )
                    })
                    .to_string()
            };
            Case {
                input_path: text("/inputPath"),
                status: text("/healthStatus/status"),
                message: text("/healthStatus/message"),
            }
        })
        .collect()
}

/// The case whose fixture is `testdata/<fixture>`.
fn case(fixture: &str) -> Case {
    let input_path = format!("testdata/{fixture}");
    cases()
        .into_iter()
        .find(|c| c.input_path == input_path)
        .unwrap_or_else(|| panic!("health_test.yaml has no case with inputPath {input_path}"))
}

fn fixture(input_path: &str) -> Value {
    read_yaml(&customization_dir().join(input_path))
}

/// Runs health.lua on `object` as Argo CD does: a fresh interpreter, the
/// object as the global `obj`, and the table the script returns.
fn assess(object: &Value) -> LuaResult<(String, String)> {
    let lua = Lua::new();
    // JSON null becomes nil, an absent field; arrays (empty ones too)
    // become plain tables without a metatable; numbers stay numbers even if
    // some dependency turns on serde_json's arbitrary_precision.
    let options = LuaSerializeOptions::new()
        .serialize_none_to_null(false)
        .serialize_unit_to_null(false)
        .set_array_metatable(false)
        .detect_serde_json_arbitrary_precision(true);
    lua.globals()
        .set("obj", lua.to_value_with(object, options)?)?;
    let script = read(&customization_dir().join("health.lua"));
    let hs: LuaTable = lua.load(script).set_name("health.lua").eval()?;
    Ok((hs.get("status")?, hs.get("message")?))
}

/// What the script says about the case's fixture, or why it failed.
fn check(case: &Case) -> Result<(), String> {
    let object = fixture(&case.input_path);
    let (status, message) =
        assess(&object).map_err(|e| format!("{}: health.lua failed: {e}", case.input_path))?;
    if status == case.status && message == case.message {
        Ok(())
    } else {
        Err(format!(
            "{}:\n  expected {} {:?}\n  got      {status} {message:?}",
            case.input_path, case.status, case.message
        ))
    }
}

fn expect_case(fixture: &str) {
    check(&case(fixture)).unwrap_or_else(|failure| panic!("{failure}"));
}

fn assessed(object: &Value) -> (String, String) {
    assess(object).unwrap_or_else(|e| panic!("health.lua failed: {e}"))
}

/// Sets the condition `type_` of `object` to `status`, `reason`, `message`
/// (adding it when missing).
fn set_condition(object: &mut Value, type_: &str, status: &str, reason: &str, message: &str) {
    let conditions = object
        .pointer_mut("/status/conditions")
        .and_then(Value::as_array_mut)
        .expect("the fixture has status.conditions");
    let wanted = json!({"type": type_, "status": status, "reason": reason, "message": message});
    match conditions.iter_mut().find(|c| c["type"] == type_) {
        Some(existing) => *existing = wanted,
        None => conditions.push(wanted),
    }
}

#[test]
fn every_case_in_health_test_yaml_gets_exactly_its_status_and_message() {
    let failures: Vec<String> = cases().iter().filter_map(|c| check(c).err()).collect();
    assert!(
        failures.is_empty(),
        "{} case(s) of health_test.yaml failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn every_fixture_in_testdata_is_used_by_a_case() {
    let testdata = customization_dir().join("testdata");
    let on_disk: BTreeSet<String> = fs::read_dir(&testdata)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", testdata.display()))
        .map(|entry| {
            let name = entry.expect("a directory entry").file_name();
            format!("testdata/{}", name.to_string_lossy())
        })
        .collect();
    assert!(!on_disk.is_empty(), "{} is empty", testdata.display());
    let used: BTreeSet<String> = cases().into_iter().map(|c| c.input_path).collect();
    let unused: Vec<&String> = on_disk.difference(&used).collect();
    assert!(
        unused.is_empty(),
        "fixtures no case of health_test.yaml uses (add a case or delete them): {unused:?}"
    );
    let missing: Vec<&String> = used.difference(&on_disk).collect();
    assert!(
        missing.is_empty(),
        "health_test.yaml names fixtures that do not exist: {missing:?}"
    );
}

#[test]
fn the_cases_cover_healthy_progressing_and_degraded() {
    let statuses: BTreeSet<String> = cases().into_iter().map(|c| c.status).collect();
    for wanted in ["Healthy", "Progressing", "Degraded"] {
        assert!(
            statuses.contains(wanted),
            "no case of health_test.yaml expects {wanted}"
        );
    }
}

#[test]
fn a_shopregion_without_status_waits_for_the_operator() {
    expect_case("no-status.yaml");
}

#[test]
fn without_ready_the_reconciling_condition_explains_the_progress() {
    expect_case("new-reconciling.yaml");
}

#[test]
fn a_converging_shopregion_is_progressing_with_readys_reason_and_message() {
    expect_case("converging.yaml");
}

#[test]
fn ready_at_the_current_generation_is_healthy() {
    expect_case("healthy.yaml");
}

#[test]
fn a_status_of_an_older_generation_is_progressing_even_when_ready() {
    expect_case("stale-generation.yaml");
}

#[test]
fn a_spec_stalled_by_validation_is_degraded_with_the_stalled_reason() {
    expect_case("stalled-pci.yaml");
}

#[test]
fn a_spec_stalled_by_a_cloud_refusal_is_degraded() {
    expect_case("stalled-aws-refused.yaml");
}

#[test]
fn an_open_failover_is_progressing_even_when_ready_is_true() {
    expect_case("failover-in-progress.yaml");
}

#[test]
fn an_open_switchover_is_progressing_and_named_a_switchover() {
    expect_case("switchover-in-progress.yaml");
}

#[test]
fn a_completed_failover_is_healthy() {
    expect_case("failover-completed.yaml");
}

#[test]
fn a_refused_failover_is_degraded_even_when_ready_is_true() {
    expect_case("failover-refused.yaml");
}

#[test]
fn an_empty_conditions_list_is_progressing() {
    expect_case("conditions-empty.yaml");
}

#[test]
fn a_float_generation_equal_to_the_observed_one_is_healthy() {
    expect_case("generation-float.yaml");
}

#[test]
fn a_float_generation_ahead_is_named_as_an_integer() {
    expect_case("generation-float-behind.yaml");
}

#[test]
fn without_metadata_generation_ready_alone_decides() {
    expect_case("no-generation.yaml");
}

#[test]
fn stalled_wins_over_a_stale_generation_and_an_open_failover() {
    let mut object = fixture("testdata/failover-in-progress.yaml");
    object["metadata"]["generation"] = json!(7);
    set_condition(
        &mut object,
        "Stalled",
        "True",
        "InvalidImage",
        "spec.orders.image: not a valid image reference",
    );
    assert_eq!(
        assessed(&object),
        (
            "Degraded".to_string(),
            "InvalidImage: spec.orders.image: not a valid image reference".to_string()
        )
    );
}

#[test]
fn a_stalled_condition_of_an_older_generation_is_progressing_while_the_fix_is_reconciled() {
    let mut object = fixture("testdata/stalled-pci.yaml");
    let observed = object["status"]["observedGeneration"].as_i64().unwrap();
    object["metadata"]["generation"] = json!(observed + 1);
    assert_eq!(
        assessed(&object),
        (
            "Progressing".to_string(),
            format!(
                "the operator has not yet observed generation {}",
                observed + 1
            )
        )
    );
}

#[test]
fn a_refused_failover_wins_over_a_stale_generation_and_an_open_failover() {
    let mut object = fixture("testdata/failover-in-progress.yaml");
    object["metadata"]["generation"] = json!(7);
    object["status"]["failover"] = json!({
        "refused": {
            "reason": "PoliciesDisagree",
            "message": "the visible ShopRegions disagree on spec.failover",
            "since": "2026-05-06T14:00:30Z"
        }
    });
    assert_eq!(
        assessed(&object),
        (
            "Degraded".to_string(),
            "failover refused: PoliciesDisagree: the visible ShopRegions disagree on spec.failover"
                .to_string()
        )
    );
}

#[test]
fn json_null_fields_count_as_absent() {
    let mut object = fixture("testdata/healthy.yaml");
    object["status"]["lastFailover"] = Value::Null;
    object["status"]["failover"]["refused"] = Value::Null;
    assert_eq!(
        assessed(&object),
        ("Healthy".to_string(), "every concern is ready".to_string())
    );

    let mut open = fixture("testdata/failover-in-progress.yaml");
    open["status"]["lastFailover"]["completedAt"] = Value::Null;
    assert_eq!(
        assessed(&open),
        (
            "Progressing".to_string(),
            "failover to eu-west-1 in progress".to_string()
        )
    );
}

#[test]
fn a_null_status_waits_for_the_operator() {
    let mut object = fixture("testdata/no-status.yaml");
    object["status"] = Value::Null;
    assert_eq!(
        assessed(&object),
        (
            "Progressing".to_string(),
            "waiting for the operator".to_string()
        )
    );
}

#[test]
fn the_argocd_cm_snippet_in_the_docs_is_the_shipped_script() {
    let docs = read(&Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/argocd.md"));
    let key = "resource.customizations.health.shopfleet.io_ShopRegion: |";
    let start = docs
        .lines()
        .position(|l| l.trim() == key)
        .expect("docs/argocd.md has the argocd-cm key");
    let snippet: Vec<&str> = docs
        .lines()
        .skip(start + 1)
        .take_while(|l| !l.starts_with("```"))
        .map(|l| l.strip_prefix("    ").unwrap_or(l))
        .collect();
    let shipped = read(&customization_dir().join("health.lua"));
    assert_eq!(
        snippet.join("\n").trim_end(),
        shipped.trim_end(),
        "docs/argocd.md's argocd-cm snippet differs from health.lua"
    );
}
