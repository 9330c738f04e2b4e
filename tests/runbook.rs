//! On-call reads `docs/runbook.md` when a condition, an Event or an alert
//! names a reason: every reason the operator can emit has a section there.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// A CamelCase word as the operator spells reasons (`RPOBudgetExceeded`,
/// `Ready`), not a ConfigMap key (`WRITER_REGION`) or a tag.
fn reason_like(word: &str) -> bool {
    let mut chars = word.chars();
    chars.next().is_some_and(|c| c.is_ascii_uppercase())
        && word.chars().all(|c| c.is_ascii_alphanumeric())
        && word.chars().any(|c| c.is_ascii_lowercase())
}

/// Values that the scan's patterns also catch but that are no reasons: a
/// condition's status and a health verdict's value.
const NOT_REASONS: [&str; 5] = ["True", "False", "Unknown", "Healthy", "Unhealthy"];

/// The first quoted string of `text`.
fn first_quoted(text: &str) -> Option<&str> {
    let start = text.find('"')? + 1;
    let len = text[start..].find('"')?;
    Some(&text[start..start + len])
}

/// Every reason the operator's own code can put in a condition or an
/// Event: string constants, event-reason match arms, `reason:` literals
/// and reasons passed straight to an Event. The simulation's report
/// (`src/simulate`, `src/sim`) and tests are not the operator's output.
fn emitted_reasons() -> BTreeSet<String> {
    let mut files = Vec::new();
    rust_files(&root().join("src"), &mut files);
    let mut reasons = BTreeSet::new();
    for file in files {
        let relative = file
            .strip_prefix(root())
            .unwrap()
            .to_string_lossy()
            .into_owned();
        if relative.starts_with("src/sim/")
            || relative.starts_with("src/simulate/")
            || relative.ends_with("tests.rs")
            || relative.ends_with("properties.rs")
            || relative.ends_with("fixtures.rs")
        {
            continue;
        }
        let source = std::fs::read_to_string(&file).unwrap();
        // An inline test module sits at the end of a file; `mod tests;`
        // declarations elsewhere are not code to cut.
        let production = source
            .split("#[cfg(test)]\nmod tests {")
            .next()
            .unwrap_or_default();
        let lines: Vec<&str> = production.lines().collect();
        for (at, line) in lines.iter().enumerate() {
            let trimmed = line.trim();
            let candidate = if trimmed.starts_with("pub const ") && trimmed.contains(": &str = \"")
            {
                first_quoted(trimmed)
            } else if trimmed.contains("=> \"") && trimmed.ends_with("\",") {
                first_quoted(trimmed.split("=> ").nth(1).unwrap_or_default())
            } else if trimmed.starts_with("reason: \"") {
                first_quoted(trimmed)
            } else if (trimmed.starts_with("EventType::") && trimmed.ends_with(','))
                || trimmed.ends_with("Note::normal(")
                || trimmed.ends_with("Note::warning(")
            {
                lines.get(at + 1).and_then(|next| first_quoted(next.trim()))
            } else if let Some(call) = ["Note::normal(\"", "Note::warning(\""]
                .iter()
                .find_map(|call| trimmed.find(call).map(|at| &trimmed[at..]))
            {
                first_quoted(call)
            } else {
                None
            };
            if let Some(word) = candidate.filter(|w| reason_like(w) && !NOT_REASONS.contains(w)) {
                reasons.insert(word.to_string());
            }
        }
    }
    reasons
}

fn runbook_headings() -> BTreeSet<String> {
    let runbook = std::fs::read_to_string(root().join("docs/runbook.md")).unwrap();
    runbook
        .lines()
        .filter_map(|l| l.strip_prefix("### "))
        .map(|h| h.trim().trim_matches('`').to_string())
        .collect()
}

#[test]
fn every_reason_the_operator_emits_has_a_runbook_section() {
    let reasons = emitted_reasons();
    assert!(
        reasons.len() > 50,
        "the scan found only {} reasons; it no longer reads the code it should",
        reasons.len()
    );
    for known in [
        "RPOBudgetExceeded",
        "FailoverStarted",
        "PciRequirementMissing",
        "BecameWriter",
        "Deleted",
    ] {
        assert!(reasons.contains(known), "the scan misses {known}");
    }
    let headings = runbook_headings();
    let missing: Vec<&String> = reasons.iter().filter(|r| !headings.contains(*r)).collect();
    assert!(
        missing.is_empty(),
        "docs/runbook.md has no `### Reason` section for: {missing:?}"
    );
}
