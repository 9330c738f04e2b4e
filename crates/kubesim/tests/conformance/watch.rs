//! Watch: streaming events, resumption, bookmarks, 410 Gone, timeouts,
//! selectors, and kube-runtime's watcher on top.

use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams};
use kube::runtime::{WatchStreamExt, watcher};
use serde_json::json;

use crate::support::{env, eventually};

fn cm(name: &str, app: &str) -> ConfigMap {
    serde_json::from_value(json!({"metadata": {"name": name, "labels": {"app": app}}})).unwrap()
}

/// The next non-bookmark event, with a timeout.
async fn next_event<S>(stream: &mut S) -> WatchEvent<ConfigMap>
where
    S: futures::Stream<Item = kube::Result<WatchEvent<ConfigMap>>> + Unpin,
{
    loop {
        let ev = tokio::time::timeout(Duration::from_secs(10), stream.next())
            .await
            .expect("event within 10s")
            .expect("stream open")
            .expect("event ok");
        if !matches!(ev, WatchEvent::Bookmark(_)) {
            return ev;
        }
    }
}

fn describe(ev: &WatchEvent<ConfigMap>) -> String {
    match ev {
        WatchEvent::Added(o) => format!("ADDED {}", o.name_any()),
        WatchEvent::Modified(o) => format!("MODIFIED {}", o.name_any()),
        WatchEvent::Deleted(o) => format!("DELETED {}", o.name_any()),
        WatchEvent::Bookmark(b) => format!("BOOKMARK {}", b.metadata.resource_version),
        WatchEvent::Error(e) => format!("ERROR {}", e.code),
    }
}

#[tokio::test]
async fn watch_streams_added_modified_deleted_from_a_resource_version() {
    let env = env().await;
    let api: Api<ConfigMap> = env.api();
    let rv = api
        .list(&Default::default())
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap();
    let mut stream = api
        .watch(&WatchParams::default(), &rv)
        .await
        .unwrap()
        .boxed();
    api.create(&PostParams::default(), &cm("a", "web"))
        .await
        .unwrap();
    api.patch(
        "a",
        &PatchParams::default(),
        &Patch::Merge(json!({"data": {"k": "v"}})),
    )
    .await
    .unwrap();
    api.delete("a", &DeleteParams::default()).await.unwrap();
    let mut seen = Vec::new();
    for _ in 0..3 {
        seen.push(describe(&next_event(&mut stream).await));
    }
    assert_eq!(seen, ["ADDED a", "MODIFIED a", "DELETED a"]);
}

#[tokio::test]
async fn watch_resumes_from_an_older_resource_version() {
    let env = env().await;
    let api: Api<ConfigMap> = env.api();
    let first = api
        .create(&PostParams::default(), &cm("a", "web"))
        .await
        .unwrap();
    api.create(&PostParams::default(), &cm("b", "web"))
        .await
        .unwrap();
    api.delete("a", &DeleteParams::default()).await.unwrap();
    let mut stream = api
        .watch(&WatchParams::default(), &first.resource_version().unwrap())
        .await
        .unwrap()
        .boxed();
    assert_eq!(describe(&next_event(&mut stream).await), "ADDED b");
    assert_eq!(describe(&next_event(&mut stream).await), "DELETED a");
}

#[tokio::test]
async fn watch_without_resource_version_starts_with_synthetic_added_events() {
    let env = env().await;
    let api: Api<ConfigMap> = env.api();
    api.create(&PostParams::default(), &cm("a", "web"))
        .await
        .unwrap();
    for version in ["0", ""] {
        let mut stream = api
            .watch(&WatchParams::default().labels("app=web"), version)
            .await
            .unwrap()
            .boxed();
        assert_eq!(
            describe(&next_event(&mut stream).await),
            "ADDED a",
            "resourceVersion={version:?}"
        );
    }
}

#[tokio::test]
async fn watch_sends_bookmarks_when_allowed() {
    let env = env().await;
    if let Some(sim) = env.sim("real servers send bookmarks about once a minute") {
        sim.set_bookmark_interval(Duration::from_millis(50));
    } else {
        return;
    }
    let api: Api<ConfigMap> = env.api();
    let rv = api
        .list(&Default::default())
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap();
    let mut stream = api
        .watch(&WatchParams::default(), &rv)
        .await
        .unwrap()
        .boxed();
    let ev = tokio::time::timeout(Duration::from_secs(5), stream.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    match ev {
        WatchEvent::Bookmark(b) => assert!(
            b.metadata.resource_version.parse::<u64>().unwrap() >= rv.parse::<u64>().unwrap()
        ),
        other => panic!("expected a bookmark, got {}", describe(&other)),
    }
}

#[tokio::test]
async fn watch_from_a_compacted_resource_version_gets_410_gone() {
    let env = env().await;
    let Some(sim) = env.sim("needs compaction control") else {
        return;
    };
    let api: Api<ConfigMap> = env.api();
    let old = api
        .create(&PostParams::default(), &cm("a", "web"))
        .await
        .unwrap();
    api.create(&PostParams::default(), &cm("b", "web"))
        .await
        .unwrap();
    sim.compact();
    let mut stream = api
        .watch(&WatchParams::default(), &old.resource_version().unwrap())
        .await
        .unwrap()
        .boxed();
    match next_event(&mut stream).await {
        WatchEvent::Error(e) => assert_eq!((e.code, e.reason.as_str()), (410, "Expired")),
        other => panic!("expected 410, got {}", describe(&other)),
    }
}

#[tokio::test]
async fn watch_timeout_seconds_closes_the_stream() {
    let env = env().await;
    let api: Api<ConfigMap> = env.api();
    let rv = api
        .list(&Default::default())
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap();
    let mut stream = api
        .watch(&WatchParams::default().timeout(1), &rv)
        .await
        .unwrap()
        .boxed();
    let end = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(ev) = stream.next().await {
            ev.unwrap();
        }
    })
    .await;
    assert!(end.is_ok(), "stream should end after timeoutSeconds");
}

#[tokio::test]
async fn watch_with_label_selector_sends_deleted_when_an_object_stops_matching() {
    let env = env().await;
    let api: Api<ConfigMap> = env.api();
    let rv = api
        .list(&Default::default())
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap();
    let mut stream = api
        .watch(&WatchParams::default().labels("app=web"), &rv)
        .await
        .unwrap()
        .boxed();
    api.create(&PostParams::default(), &cm("a", "web"))
        .await
        .unwrap();
    api.create(&PostParams::default(), &cm("ignored", "db"))
        .await
        .unwrap();
    api.patch(
        "a",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"labels": {"app": "db"}}})),
    )
    .await
    .unwrap();
    api.patch(
        "ignored",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"labels": {"app": "web"}}})),
    )
    .await
    .unwrap();
    let mut seen = Vec::new();
    for _ in 0..3 {
        seen.push(describe(&next_event(&mut stream).await));
    }
    assert_eq!(seen, ["ADDED a", "DELETED a", "ADDED ignored"]);
}

#[tokio::test]
async fn kube_runtime_watcher_sees_changes_resumes_after_close_and_relists_after_410() {
    let env = env().await;
    let api: Api<ConfigMap> = env.api();
    // Bookmarks would move the watcher past the compaction point; keep it on its last event.
    let cfg = watcher::Config::default()
        .labels("app=web")
        .disable_bookmarks();
    let (reader, writer) = kube::runtime::reflector::store();
    let stream = kube::runtime::reflector(writer, watcher(api.clone(), cfg).default_backoff())
        .applied_objects();
    let task = tokio::spawn(async move {
        let mut s = stream.boxed();
        // Errors (like the 410) are reported on the stream; the watcher recovers by itself.
        while s.next().await.is_some() {}
    });
    let names = || {
        let mut v: Vec<String> = reader.state().iter().map(|o| o.name_any()).collect();
        v.sort();
        v.join(",")
    };
    api.create(&PostParams::default(), &cm("a", "web"))
        .await
        .unwrap();
    eventually("reflector sees a", || async { names() == "a" }).await;
    api.patch(
        "a",
        &PatchParams::default(),
        &Patch::Merge(json!({"data": {"x": "1"}})),
    )
    .await
    .unwrap();
    eventually("reflector sees the update", || async {
        reader
            .state()
            .iter()
            .any(|o| o.data.as_ref().is_some_and(|d| d.contains_key("x")))
    })
    .await;
    if let Some(sim) = env.sim("needs watch-close and compaction control") {
        let lists_before = sim.requests().count("list", "configmaps");
        sim.close_watches();
        api.create(&PostParams::default(), &cm("b", "web"))
            .await
            .unwrap();
        eventually("watcher resumed and saw b", || async { names() == "a,b" }).await;
        assert_eq!(
            sim.requests().count("list", "configmaps"),
            lists_before,
            "a resume must not relist"
        );

        // Move the global resource version on without the watcher seeing it, compact, reconnect.
        api.create(&PostParams::default(), &cm("other", "db"))
            .await
            .unwrap();
        sim.compact();
        sim.close_watches();
        api.create(&PostParams::default(), &cm("c", "web"))
            .await
            .unwrap();
        eventually("watcher relisted after 410 and saw c", || async {
            names() == "a,b,c"
        })
        .await;
        assert!(
            sim.requests().count("list", "configmaps") > lists_before,
            "410 must trigger a relist"
        );
    }
    api.delete("a", &DeleteParams::default()).await.unwrap();
    eventually("reflector drops a", || async {
        !names().split(',').any(|n| n == "a")
    })
    .await;
    task.abort();
}

#[tokio::test]
async fn kube_runtime_watcher_works_with_streaming_lists() {
    let env = env().await;
    if env
        .sim("streaming lists need the WatchList feature on the real cluster")
        .is_none()
    {
        return;
    }
    let api: Api<ConfigMap> = env.api();
    api.create(&PostParams::default(), &cm("a", "web"))
        .await
        .unwrap();
    let cfg = watcher::Config::default()
        .labels("app=web")
        .streaming_lists();
    let mut stream = watcher(api.clone(), cfg).boxed();
    let mut saw_init_done = false;
    let mut saw_a = false;
    while !saw_init_done {
        match tokio::time::timeout(Duration::from_secs(10), stream.try_next())
            .await
            .unwrap()
            .unwrap()
        {
            Some(watcher::Event::InitApply(o)) => saw_a |= o.name_any() == "a",
            Some(watcher::Event::InitDone) => saw_init_done = true,
            _ => {}
        }
    }
    assert!(saw_a);
}
