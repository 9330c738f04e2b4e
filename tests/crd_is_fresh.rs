//! The committed CRD must be exactly what `shopfleet crd` generates, so a
//! change to the Rust types cannot ship without the YAML users apply.

#[test]
fn committed_crd_matches_the_generated_one() {
    let committed =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/crds/shopregion.yaml"))
            .expect("crds/shopregion.yaml is committed");
    let generated = shopfleet::api::crd_yaml();
    assert!(
        committed == generated,
        "crds/shopregion.yaml is stale: run `cargo run -- crd > crds/shopregion.yaml` and commit it"
    );
}

#[test]
fn crd_declares_the_status_subresource_short_name_and_printer_columns() {
    let crd: serde_json::Value = serde_saphyr::from_str(&shopfleet::api::crd_yaml()).unwrap();
    let version = &crd["spec"]["versions"][0];
    assert_eq!(crd["spec"]["names"]["shortNames"][0], "sr");
    assert_eq!(crd["spec"]["names"]["categories"][0], "shopfleet");
    assert!(version["subresources"]["status"].is_object());
    let columns: Vec<&str> = version["additionalPrinterColumns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(columns, ["Region", "Role", "Writer", "Ready", "Lag", "Age"]);
}

#[test]
fn every_spec_field_has_a_description_for_kubectl_explain() {
    let crd: serde_json::Value = serde_saphyr::from_str(&shopfleet::api::crd_yaml()).unwrap();
    let spec = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"];
    let mut missing = Vec::new();
    walk(spec, "spec", &mut missing);
    assert!(
        missing.is_empty(),
        "fields without a description: {missing:?}"
    );
}

#[test]
fn every_failover_status_field_has_a_description_for_on_call() {
    let crd: serde_json::Value = serde_saphyr::from_str(&shopfleet::api::crd_yaml()).unwrap();
    let status = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["status"]["properties"];
    let mut missing = Vec::new();
    for field in ["health", "failover", "lastFailover"] {
        let schema = &status[field];
        assert!(schema.is_object(), "status.{field} is in the schema");
        walk(schema, &format!("status.{field}"), &mut missing);
        if let Some(items) = schema.get("items") {
            walk(items, &format!("status.{field}[]"), &mut missing);
        }
    }
    assert!(
        missing.is_empty(),
        "fields without a description: {missing:?}"
    );
}

fn walk(schema: &serde_json::Value, path: &str, missing: &mut Vec<String>) {
    if schema.get("description").is_none() {
        missing.push(path.to_string());
    }
    // Kubernetes' own types (env, resources) bring their own documentation.
    if path.ends_with(".env") || path.ends_with(".resources") {
        return;
    }
    if let Some(props) = schema.get("properties").and_then(|p| p.as_object()) {
        for (name, child) in props {
            walk(child, &format!("{path}.{name}"), missing);
        }
    }
}

#[test]
fn the_charts_crd_is_the_committed_crd_byte_for_byte() {
    let root = env!("CARGO_MANIFEST_DIR");
    let committed = std::fs::read(format!("{root}/crds/shopregion.yaml")).unwrap();
    let chart = std::fs::read(format!("{root}/charts/shopfleet/crds/shopregion.yaml")).unwrap();
    assert!(
        committed == chart,
        "charts/shopfleet/crds/shopregion.yaml differs from crds/shopregion.yaml: cp crds/shopregion.yaml charts/shopfleet/crds/"
    );
}
