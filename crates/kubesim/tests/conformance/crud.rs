//! get, list, selectors, pagination, create/update/delete and error bodies.

use k8s_openapi::api::core::v1::ConfigMap;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use serde_json::{Value, json};

use crate::support::{api_error, env, raw, widget};

fn cm(name: &str, labels: Value) -> ConfigMap {
    serde_json::from_value(
        json!({"metadata": {"name": name, "labels": labels}, "data": {"k": "v"}}),
    )
    .expect("configmap")
}

#[tokio::test]
async fn create_then_get_returns_server_populated_metadata() {
    let env = env().await;
    let api: Api<ConfigMap> = env.api();
    let created = api
        .create(&PostParams::default(), &cm("a", json!({})))
        .await
        .unwrap();
    assert!(created.metadata.uid.is_some());
    assert!(created.metadata.creation_timestamp.is_some());
    assert!(
        created
            .metadata
            .resource_version
            .as_deref()
            .is_some_and(|rv| rv.parse::<u64>().is_ok())
    );
    assert_eq!(created.metadata.namespace.as_deref(), Some(env.ns.as_str()));
    let got = api.get("a").await.unwrap();
    assert_eq!(got.metadata.uid, created.metadata.uid);
    assert_eq!(got.data, created.data);
}

#[tokio::test]
async fn get_missing_object_returns_not_found_status_body() {
    let env = env().await;
    let (code, body) = raw(
        &env.client,
        "GET",
        &format!("/api/v1/namespaces/{}/configmaps/nope", env.ns),
        "application/json",
        None,
    )
    .await;
    assert_eq!(code, 404);
    assert_eq!(
        body,
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": "configmaps \"nope\" not found", "reason": "NotFound",
            "details": {"name": "nope", "kind": "configmaps"}, "code": 404})
    );
    let (_, body) = raw(
        &env.client,
        "GET",
        &format!(
            "/apis/conformance.kubesim.dev/v1/namespaces/{}/widgets/nope",
            env.ns
        ),
        "application/json",
        None,
    )
    .await;
    assert_eq!(
        body["message"],
        "widgets.conformance.kubesim.dev \"nope\" not found"
    );
    assert_eq!(
        body["details"],
        json!({"name": "nope", "group": "conformance.kubesim.dev", "kind": "widgets"})
    );
}

#[tokio::test]
async fn create_existing_name_conflicts_with_already_exists() {
    let env = env().await;
    let api: Api<ConfigMap> = env.api();
    api.create(&PostParams::default(), &cm("a", json!({})))
        .await
        .unwrap();
    let err = api_error(
        api.create(&PostParams::default(), &cm("a", json!({})))
            .await,
    );
    assert_eq!((err.code, err.reason.as_str()), (409, "AlreadyExists"));
    assert_eq!(err.message, "configmaps \"a\" already exists");
}

#[tokio::test]
async fn create_with_generate_name_gets_a_random_suffix() {
    let env = env().await;
    let api: Api<ConfigMap> = env.api();
    let obj: ConfigMap =
        serde_json::from_value(json!({"metadata": {"generateName": "gen-"}})).unwrap();
    let a = api.create(&PostParams::default(), &obj).await.unwrap();
    let b = api.create(&PostParams::default(), &obj).await.unwrap();
    assert!(a.name_any().starts_with("gen-") && a.name_any().len() == "gen-".len() + 5);
    assert_ne!(a.name_any(), b.name_any());
}

#[tokio::test]
async fn create_without_name_is_invalid() {
    let env = env().await;
    let api: Api<ConfigMap> = env.api();
    let err = api_error(
        api.create(&PostParams::default(), &ConfigMap::default())
            .await,
    );
    assert_eq!((err.code, err.reason.as_str()), (422, "Invalid"));
    let cause = &err.details.unwrap().causes[0];
    assert_eq!(
        (cause.reason.as_str(), cause.field.as_str()),
        ("FieldValueRequired", "metadata.name")
    );
}

#[tokio::test]
async fn create_with_invalid_name_is_invalid() {
    let env = env().await;
    let api: Api<ConfigMap> = env.api();
    let err = api_error(
        api.create(&PostParams::default(), &cm("Not_Valid", json!({})))
            .await,
    );
    assert_eq!(err.code, 422);
    assert!(err.message.starts_with("ConfigMap \"Not_Valid\" is invalid: metadata.name: Invalid value: \"Not_Valid\": a lowercase RFC 1123 subdomain"), "{}", err.message);
}

#[tokio::test]
async fn create_in_missing_namespace_is_namespace_not_found() {
    let env = env().await;
    let api: Api<ConfigMap> = Api::namespaced(env.client.clone(), "does-not-exist-ns");
    let err = api_error(
        api.create(&PostParams::default(), &cm("a", json!({})))
            .await,
    );
    assert_eq!((err.code, err.reason.as_str()), (404, "NotFound"));
    assert_eq!(err.message, "namespaces \"does-not-exist-ns\" not found");
}

#[tokio::test]
async fn list_filters_by_label_selector_operators() {
    let env = env().await;
    let api: Api<ConfigMap> = env.api();
    for (name, labels) in [
        ("a", json!({"app": "web", "tier": "front"})),
        ("b", json!({"app": "db", "tier": "back"})),
        ("c", json!({"app": "web"})),
    ] {
        api.create(&PostParams::default(), &cm(name, labels))
            .await
            .unwrap();
    }
    let names = |sel: &'static str| {
        let api = api.clone();
        async move {
            let list = api.list(&ListParams::default().labels(sel)).await.unwrap();
            list.items
                .iter()
                .map(|o| o.name_any())
                .collect::<Vec<_>>()
                .join(",")
        }
    };
    // Every namespace also holds the control plane's unlabelled
    // `kube-root-ca.crt`, which `!=`, `notin` and `!key` match.
    assert_eq!(names("app=web").await, "a,c");
    assert_eq!(names("app==web").await, "a,c");
    assert_eq!(names("app!=web").await, "b,kube-root-ca.crt");
    assert_eq!(names("tier in (front,back)").await, "a,b");
    assert_eq!(names("tier notin (front)").await, "b,c,kube-root-ca.crt");
    assert_eq!(names("tier").await, "a,b");
    assert_eq!(names("!tier").await, "c,kube-root-ca.crt");
    assert_eq!(names("app=web,tier").await, "a");
}

#[tokio::test]
async fn list_filters_by_field_selector() {
    let env = env().await;
    let api: Api<ConfigMap> = env.api();
    for n in ["a", "b"] {
        api.create(&PostParams::default(), &cm(n, json!({})))
            .await
            .unwrap();
    }
    let list = api
        .list(&ListParams::default().fields("metadata.name=b"))
        .await
        .unwrap();
    assert_eq!(list.items.len(), 1);
    assert_eq!(list.items[0].name_any(), "b");
    let all: Api<ConfigMap> = Api::all(env.client.clone());
    let list = all
        .list(
            &ListParams::default()
                .fields(&format!("metadata.namespace={},metadata.name!=a", env.ns)),
        )
        .await
        .unwrap();
    let names: Vec<String> = list
        .items
        .iter()
        .map(|o| o.name_any())
        .filter(|n| n != "kube-root-ca.crt")
        .collect();
    assert_eq!(names, ["b"]);
}

#[tokio::test]
async fn list_pages_with_limit_and_continue() {
    let env = env().await;
    let api: Api<ConfigMap> = env.api();
    for n in ["p1", "p2", "p3", "p4", "p5"] {
        api.create(&PostParams::default(), &cm(n, json!({"page": "yes"})))
            .await
            .unwrap();
    }
    let mut seen = Vec::new();
    let mut lp = ListParams::default().labels("page=yes").limit(2);
    loop {
        let page = api.list(&lp).await.unwrap();
        assert!(page.items.len() <= 2);
        seen.extend(page.items.iter().map(|o| o.name_any()));
        match page.metadata.continue_.filter(|c| !c.is_empty()) {
            Some(c) => lp = lp.continue_token(&c),
            None => break,
        }
    }
    assert_eq!(seen, ["p1", "p2", "p3", "p4", "p5"]);
}

#[tokio::test]
async fn list_reports_the_collection_resource_version() {
    let env = env().await;
    let api: Api<ConfigMap> = env.api();
    let created = api
        .create(&PostParams::default(), &cm("a", json!({})))
        .await
        .unwrap();
    let list = api.list(&ListParams::default()).await.unwrap();
    let list_rv: u64 = list.metadata.resource_version.unwrap().parse().unwrap();
    let obj_rv: u64 = created.resource_version().unwrap().parse().unwrap();
    assert!(list_rv >= obj_rv);
}

#[tokio::test]
async fn list_with_expired_continue_token_is_gone() {
    let env = env().await;
    let Some(sim) = env.sim("needs compaction control") else {
        return;
    };
    let api: Api<ConfigMap> = env.api();
    for n in ["a", "b", "c"] {
        api.create(&PostParams::default(), &cm(n, json!({})))
            .await
            .unwrap();
    }
    let page = api.list(&ListParams::default().limit(1)).await.unwrap();
    let token = page.metadata.continue_.unwrap();
    api.create(&PostParams::default(), &cm("d", json!({})))
        .await
        .unwrap();
    sim.compact();
    let err = api_error(
        api.list(&ListParams::default().limit(1).continue_token(&token))
            .await,
    );
    assert_eq!((err.code, err.reason.as_str()), (410, "Expired"));
}

#[tokio::test]
async fn update_with_stale_resource_version_conflicts() {
    let env = env().await;
    let api: Api<ConfigMap> = env.api();
    let created = api
        .create(&PostParams::default(), &cm("a", json!({})))
        .await
        .unwrap();
    let mut first = created.clone();
    first.data = Some([("k".to_string(), "1".to_string())].into());
    api.replace("a", &PostParams::default(), &first)
        .await
        .unwrap();
    let mut stale = created;
    stale.data = Some([("k".to_string(), "2".to_string())].into());
    let err = api_error(api.replace("a", &PostParams::default(), &stale).await);
    assert_eq!((err.code, err.reason.as_str()), (409, "Conflict"));
    assert_eq!(
        err.message,
        "Operation cannot be fulfilled on configmaps \"a\": the object has been modified; please apply your changes to the latest version and try again"
    );
}

#[tokio::test]
async fn update_without_resource_version_is_unconditional() {
    let env = env().await;
    let api: Api<ConfigMap> = env.api();
    api.create(&PostParams::default(), &cm("a", json!({})))
        .await
        .unwrap();
    let mut obj = cm("a", json!({"x": "y"}));
    obj.metadata.resource_version = None;
    let updated = api
        .replace("a", &PostParams::default(), &obj)
        .await
        .unwrap();
    assert_eq!(updated.labels().get("x").map(String::as_str), Some("y"));
}

#[tokio::test]
async fn update_of_missing_object_is_not_found() {
    let env = env().await;
    let api: Api<ConfigMap> = env.api();
    let err = api_error(
        api.replace("ghost", &PostParams::default(), &cm("ghost", json!({})))
            .await,
    );
    assert_eq!(err.code, 404);
}

#[tokio::test]
async fn delete_returns_the_object_and_it_is_gone() {
    let env = env().await;
    let api: Api<ConfigMap> = env.api();
    api.create(&PostParams::default(), &cm("a", json!({})))
        .await
        .unwrap();
    let deleted = api.delete("a", &DeleteParams::default()).await.unwrap();
    // A real server returns either the object or a Success Status depending on the kind.
    if let Some(obj) = deleted.left() {
        assert_eq!(obj.name_any(), "a");
    }
    assert_eq!(api_error(api.get("a").await).code, 404);
    assert_eq!(
        api_error(api.delete("a", &DeleteParams::default()).await).code,
        404
    );
}

#[tokio::test]
async fn delete_collection_removes_matching_objects() {
    let env = env().await;
    let api: Api<ConfigMap> = env.api();
    for (n, l) in [
        ("a", json!({"gone": "yes"})),
        ("b", json!({"gone": "yes"})),
        ("c", json!({})),
    ] {
        api.create(&PostParams::default(), &cm(n, l)).await.unwrap();
    }
    api.delete_collection(
        &DeleteParams::default(),
        &ListParams::default().labels("gone=yes"),
    )
    .await
    .unwrap();
    let left: Vec<String> = api
        .list(&ListParams::default().labels("!kube-root-ca"))
        .await
        .unwrap()
        .items
        .iter()
        .map(|o| o.name_any())
        .filter(|n| n != "kube-root-ca.crt")
        .collect();
    assert_eq!(left, ["c"]);
}

#[tokio::test]
async fn new_namespaces_get_the_root_ca_configmap_and_default_service_account() {
    use k8s_openapi::api::core::v1::ServiceAccount;
    let env = env().await;
    let api: Api<ConfigMap> = env.api();
    let ca = api.get("kube-root-ca.crt").await.unwrap();
    assert!(
        ca.data.as_ref().unwrap()["ca.crt"].starts_with("-----BEGIN CERTIFICATE-----\n"),
        "{ca:?}"
    );
    assert_eq!(
        ca.annotations()
            .get("kubernetes.io/description")
            .map(String::as_str),
        Some(
            "Contains a CA bundle that can be used to verify the kube-apiserver when using internal endpoints such as the internal service IP or kubernetes.default.svc. No other usage is guaranteed across distributions of Kubernetes clusters."
        )
    );
    let mf = ca.metadata.managed_fields.clone().unwrap();
    assert_eq!(mf.len(), 1);
    assert_eq!(
        (mf[0].manager.as_deref(), mf[0].operation.as_deref()),
        (Some("kube-controller-manager"), Some("Update"))
    );
    let sas: Api<ServiceAccount> = env.api();
    assert!(sas.get("default").await.is_ok());

    // The publisher puts it back when it is deleted or changed.
    api.delete("kube-root-ca.crt", &DeleteParams::default())
        .await
        .unwrap();
    crate::support::eventually("kube-root-ca.crt re-published", || async {
        api.get_opt("kube-root-ca.crt")
            .await
            .unwrap()
            .is_some_and(|c| c.metadata.uid != ca.metadata.uid)
    })
    .await;
    let mut changed = api.get("kube-root-ca.crt").await.unwrap();
    changed.data = Some([("ca.crt".to_string(), "bogus".to_string())].into());
    changed.metadata.resource_version = None;
    api.replace("kube-root-ca.crt", &PostParams::default(), &changed)
        .await
        .unwrap();
    crate::support::eventually("kube-root-ca.crt restored", || async {
        api.get("kube-root-ca.crt").await.unwrap().data == ca.data
    })
    .await;
}

#[tokio::test]
async fn widgets_are_served_at_their_crd_paths() {
    let env = env().await;
    let created = env
        .widgets()
        .create(
            &PostParams::default(),
            &serde_json::from_value(widget("w", 1, "eu")).unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(
        created.types.as_ref().map(|t| t.kind.as_str()),
        Some("Widget")
    );
    let (code, body) = raw(
        &env.client,
        "GET",
        &format!(
            "/apis/conformance.kubesim.dev/v1/namespaces/{}/widgets/w",
            env.ns
        ),
        "application/json",
        None,
    )
    .await;
    assert_eq!(code, 200);
    assert_eq!(body["spec"]["size"], 1);
    let (code, body) = raw(
        &env.client,
        "GET",
        "/apis/conformance.kubesim.dev/v1/widgets",
        "application/json",
        None,
    )
    .await;
    assert_eq!(code, 200);
    assert_eq!(body["kind"], "WidgetList");
}

#[tokio::test]
async fn discovery_lists_builtin_and_crd_resources() {
    let env = env().await;
    let discovery = kube::Discovery::new(env.client.clone())
        .run()
        .await
        .unwrap();
    let has = |group: &str, plural: &str| {
        discovery
            .groups()
            .filter(|g| g.name() == group)
            .flat_map(|g| g.recommended_resources())
            .any(|(ar, _)| ar.plural == plural)
    };
    assert!(has("", "configmaps"));
    assert!(has("apps", "deployments"));
    assert!(has("coordination.k8s.io", "leases"));
    assert!(has("conformance.kubesim.dev", "widgets"));
    let version = env.client.apiserver_version().await.unwrap();
    assert_eq!(version.major, "1");
}

#[tokio::test]
async fn secret_string_data_is_stored_as_base64_data_and_never_returned() {
    use k8s_openapi::api::core::v1::Secret;
    let env = env().await;
    let api: Api<Secret> = env.api();
    let secret: Secret = serde_json::from_value(json!({
        "metadata": {"name": "s"},
        "data": {"kept": "a2VwdA==", "token": "b2xk"},
        "stringData": {"token": "new-token"}
    }))
    .unwrap();
    let created = api.create(&PostParams::default(), &secret).await.unwrap();
    let got = api.get("s").await.unwrap();
    for s in [&created, &got] {
        assert_eq!(s.string_data, None);
        let data = s.data.as_ref().expect("data");
        assert_eq!(data["token"].0, b"new-token");
        assert_eq!(data["kept"].0, b"kept");
    }
}
