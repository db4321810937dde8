//! Fidelity tests for the fake Kubernetes API server (tests/fakeapi/), which stands in for a
//! kube-apiserver that cannot run here: lists with pagination, watches with history replay,
//! bookmarks, 410 after compaction, dropped connections, kubectl, and kube-rs's own watcher.

mod fakeapi_support;
mod support;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use fakeapi_support::{FakeApi, WatchEnd, WatchItem, endpoint_slice, service};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(10);

fn names(list: &Value) -> Vec<String> {
    let items = list["items"].as_array().expect("items");
    items
        .iter()
        .map(|i| {
            format!(
                "{}/{}",
                i["metadata"]["namespace"].as_str().unwrap_or(""),
                i["metadata"]["name"].as_str().unwrap_or("")
            )
        })
        .collect()
}

fn rv_of(obj: &Value) -> u64 {
    obj["metadata"]["resourceVersion"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .expect("metadata.resourceVersion")
}

fn seed_services(fake: &FakeApi) {
    for (ns, name, app) in [
        ("b", "s1", "x"),
        ("a", "s2", "y"),
        ("a", "s1", "x"),
        ("b", "s0", "z"),
        ("a", "s3", "x"),
    ] {
        fake.create(
            &format!("/api/v1/namespaces/{ns}/services"),
            &service(ns, name, json!({"app": app})),
        );
    }
}

#[test]
fn list_paginates_with_consistent_continue_tokens() {
    let fake = FakeApi::start();
    seed_services(&fake);
    let all = fake.get("/api/v1/services");
    assert_eq!(all["kind"], "ServiceList");
    assert_eq!(
        names(&all),
        ["a/s1", "a/s2", "a/s3", "b/s0", "b/s1"],
        "etcd key order"
    );
    assert_eq!(
        rv_of(&all),
        fake.resource_version(),
        "list RV is the global RV"
    );

    let page1 = fake.get("/api/v1/services?limit=2");
    assert_eq!(names(&page1), ["a/s1", "a/s2"]);
    assert_eq!(page1["metadata"]["remainingItemCount"], 3);
    let token = page1["metadata"]["continue"]
        .as_str()
        .expect("continue token")
        .to_string();

    // Writes between pages do not show up: the pages are one snapshot, like an etcd read at one revision.
    fake.delete("/api/v1/namespaces/b/services/s1");
    fake.create(
        "/api/v1/namespaces/a/services",
        &service("a", "s9", json!({})),
    );
    let page2 = fake.get(&format!("/api/v1/services?limit=2&continue={token}"));
    assert_eq!(names(&page2), ["a/s3", "b/s0"]);
    assert_eq!(rv_of(&page2), rv_of(&page1));
    let token2 = page2["metadata"]["continue"]
        .as_str()
        .expect("continue token")
        .to_string();
    let page3 = fake.get(&format!("/api/v1/services?limit=2&continue={token2}"));
    assert_eq!(names(&page3), ["b/s1"]);
    assert!(
        page3["metadata"].get("continue").is_none(),
        "last page has no continue"
    );

    // After a compaction the old snapshot is gone: 410 Expired, as from a real apiserver.
    fake.compact();
    let resp = fake.request(
        "GET",
        &format!("/api/v1/services?limit=2&continue={token2}"),
        None,
        b"",
    );
    assert_eq!(resp.status, 410);
    assert_eq!(resp.json()["reason"], "Expired");
}

#[test]
fn list_selectors_and_resource_version_semantics() {
    let fake = FakeApi::start();
    seed_services(&fake);
    let select = |q: &str| names(&fake.get(&format!("/api/v1/services?{q}")));
    assert_eq!(select("labelSelector=app%3Dx"), ["a/s1", "a/s3", "b/s1"]);
    assert_eq!(select("labelSelector=app%20in%20(y,z)"), ["a/s2", "b/s0"]);
    assert_eq!(select("labelSelector=app%20notin%20(x),app!%3Dz"), ["a/s2"]);
    assert_eq!(select("labelSelector=!app"), Vec::<String>::new());
    assert_eq!(
        select("fieldSelector=metadata.namespace!%3Da"),
        ["b/s0", "b/s1"]
    );
    assert_eq!(
        select("fieldSelector=metadata.name%3Ds1,metadata.namespace%3Db"),
        ["b/s1"]
    );
    assert_eq!(
        names(&fake.get("/api/v1/namespaces/a/services?labelSelector=app%3D%3Dx")),
        ["a/s1", "a/s3"]
    );

    let bad = fake.request(
        "GET",
        "/api/v1/services?fieldSelector=spec.nope%3D1",
        None,
        b"",
    );
    assert_eq!(
        (bad.status, bad.json()["message"].as_str()),
        (400, Some("field label not supported: spec.nope"))
    );

    // resourceVersion + Exact serves the past; NotOlderThan and "0" serve the present.
    let before = fake.resource_version();
    fake.delete("/api/v1/namespaces/a/services/s2");
    let exact = fake.get(&format!(
        "/api/v1/services?resourceVersion={before}&resourceVersionMatch=Exact"
    ));
    assert_eq!(names(&exact).len(), 5);
    assert_eq!(rv_of(&exact), before);
    let any = fake.get("/api/v1/services?resourceVersion=0&resourceVersionMatch=NotOlderThan");
    assert_eq!(names(&any).len(), 4);
    let future = fake.request(
        "GET",
        &format!("/api/v1/services?resourceVersion={}", before + 100),
        None,
        b"",
    );
    assert_eq!(future.status, 504, "too large resource version");
}

#[test]
fn writes_follow_apiserver_rules() {
    let fake = FakeApi::start();
    let svc = fake.create(
        "/api/v1/namespaces/a/services",
        &service("a", "web", json!({"app": "web"})),
    );
    assert_eq!(svc["kind"], "Service");
    assert_eq!(svc["metadata"]["generation"], 1);
    assert!(
        svc["metadata"]["uid"]
            .as_str()
            .is_some_and(|u| u.len() == 36)
    );
    assert!(
        svc["spec"]["clusterIP"]
            .as_str()
            .is_some_and(|ip| ip.starts_with("10.96."))
    );

    let dup = fake.request(
        "POST",
        "/api/v1/namespaces/a/services",
        Some("application/json"),
        service("a", "web", json!({})).to_string().as_bytes(),
    );
    assert_eq!(
        (dup.status, dup.json()["reason"].clone()),
        (409, json!("AlreadyExists"))
    );
    let missing = fake.request("GET", "/api/v1/namespaces/a/services/nope", None, b"");
    assert_eq!(
        (missing.status, missing.json()["reason"].clone()),
        (404, json!("NotFound"))
    );
    assert_eq!(missing.json()["message"], "services \"nope\" not found");

    // A stale resourceVersion on PUT is a conflict; an unchanged object is a no-op (no new RV).
    let mut stale = svc.clone();
    fake.patch(
        "/api/v1/namespaces/a/services/web",
        &json!({"spec": {"selector": {"app": "web"}}}),
    );
    stale["spec"]["selector"] = json!({"app": "other"});
    let conflict = fake.request(
        "PUT",
        "/api/v1/namespaces/a/services/web",
        Some("application/json"),
        stale.to_string().as_bytes(),
    );
    assert_eq!(
        (conflict.status, conflict.json()["reason"].clone()),
        (409, json!("Conflict"))
    );
    let current = fake.get("/api/v1/namespaces/a/services/web");
    assert_eq!(
        current["metadata"]["generation"], 2,
        "spec change bumps generation"
    );
    assert_eq!(
        rv_of(&fake.replace("/api/v1/namespaces/a/services/web", &current)),
        rv_of(&current)
    );

    let eps = endpoint_slice("a", "web-abc", "web", &[("10.0.0.1", true)]);
    fake.create(
        "/apis/discovery.k8s.io/v1/namespaces/a/endpointslices",
        &eps,
    );
    let deleted = fake.delete("/apis/discovery.k8s.io/v1/namespaces/a/endpointslices/web-abc");
    assert_eq!(deleted["kind"], "EndpointSlice");
    assert!(
        rv_of(&deleted) > rv_of(&current),
        "delete has its own resourceVersion"
    );
}

#[test]
fn watch_replays_history_in_order_then_streams() {
    let fake = FakeApi::start();
    fake.create(
        "/api/v1/namespaces/a/services",
        &service("a", "old", json!({"app": "x"})),
    );
    let start = fake.resource_version();
    fake.create(
        "/api/v1/namespaces/a/services",
        &service("a", "new", json!({"app": "x"})),
    );
    fake.patch(
        "/api/v1/namespaces/a/services/new",
        &json!({"metadata": {"annotations": {"k": "v"}}}),
    );
    fake.delete("/api/v1/namespaces/a/services/old");

    let mut watch = fake.watch(&format!("/api/v1/services?resourceVersion={start}"));
    let mut seen = Vec::new();
    for _ in 0..3 {
        let ev = watch.next_event(WAIT);
        seen.push((
            ev["type"].as_str().unwrap_or("").to_string(),
            ev["object"]["metadata"]["name"]
                .as_str()
                .unwrap_or("")
                .to_string(),
            rv_of(&ev["object"]),
        ));
    }
    let kinds: Vec<(&str, &str)> = seen
        .iter()
        .map(|(t, n, _)| (t.as_str(), n.as_str()))
        .collect();
    assert_eq!(
        kinds,
        [("ADDED", "new"), ("MODIFIED", "new"), ("DELETED", "old")]
    );
    assert!(
        seen.windows(2).all(|w| w[0].2 < w[1].2),
        "resourceVersions increase: {seen:?}"
    );
    assert!(seen[0].2 > start);

    fake.create(
        "/api/v1/namespaces/b/services",
        &service("b", "live", json!({})),
    );
    let ev = watch.next_event(WAIT);
    assert_eq!(
        (
            ev["type"].as_str(),
            ev["object"]["metadata"]["name"].as_str()
        ),
        (Some("ADDED"), Some("live"))
    );
}

#[test]
fn watch_without_resource_version_starts_with_synthetic_adds() {
    let fake = FakeApi::start();
    seed_services(&fake);
    let mut watch = fake.watch("/api/v1/namespaces/a/services?resourceVersion=0");
    let initial: Vec<String> = (0..3)
        .map(|_| {
            watch.next_event(WAIT)["object"]["metadata"]["name"]
                .as_str()
                .unwrap_or("")
                .to_string()
        })
        .collect();
    assert_eq!(initial, ["s1", "s2", "s3"]);
    assert!(matches!(
        watch.next_item(Duration::from_millis(300)),
        WatchItem::TimedOut
    ));
}

#[test]
fn watch_selectors_turn_leaving_objects_into_deletes() {
    let fake = FakeApi::start();
    fake.create(
        "/api/v1/namespaces/a/services",
        &service("a", "web", json!({"app": "x"})),
    );
    let start = fake.resource_version();
    let mut watch = fake.watch(&format!(
        "/api/v1/services?labelSelector=app%3Dx&resourceVersion={start}"
    ));
    fake.patch(
        "/api/v1/namespaces/a/services/web",
        &json!({"metadata": {"labels": {"app": "y"}}}),
    );
    let left = watch.next_event(WAIT);
    assert_eq!(left["type"], "DELETED");
    assert_eq!(
        rv_of(&left["object"]),
        fake.resource_version(),
        "DELETED carries the write's resourceVersion"
    );
    fake.patch(
        "/api/v1/namespaces/a/services/web",
        &json!({"metadata": {"labels": {"app": "x"}}}),
    );
    assert_eq!(watch.next_event(WAIT)["type"], "ADDED");
}

#[test]
fn bookmarks_arrive_only_when_allowed() {
    let fake = FakeApi::builder().bookmark_interval(0.2).start();
    seed_services(&fake);
    let rv = fake.resource_version();
    let mut watch = fake.watch(&format!(
        "/apis/discovery.k8s.io/v1/endpointslices?allowWatchBookmarks=true&resourceVersion={rv}"
    ));
    fake.create(
        "/api/v1/namespaces/a/services",
        &service("a", "other-kind", json!({})),
    );
    let deadline = Instant::now() + WAIT;
    let bookmark = loop {
        assert!(Instant::now() < deadline, "no BOOKMARK within {WAIT:?}");
        match watch.next_item(WAIT) {
            WatchItem::Event(ev) if ev["type"] == "BOOKMARK" && rv_of(&ev["object"]) > rv => {
                break ev;
            }
            WatchItem::Event(_) => {}
            other => panic!("watch ended: {other:?}"),
        }
    };
    let obj = &bookmark["object"];
    assert_eq!(
        (obj["kind"].as_str(), obj["apiVersion"].as_str()),
        (Some("EndpointSlice"), Some("discovery.k8s.io/v1"))
    );
    assert_eq!(
        rv_of(obj),
        fake.resource_version(),
        "bookmark carries the global resourceVersion"
    );
    assert_eq!(
        obj.as_object().map(|o| o.len()),
        Some(3),
        "only kind, apiVersion, metadata: {obj}"
    );

    let mut plain = fake.watch(&format!(
        "/apis/discovery.k8s.io/v1/endpointslices?resourceVersion={rv}"
    ));
    assert!(
        matches!(
            plain.next_item(Duration::from_millis(800)),
            WatchItem::TimedOut
        ),
        "no bookmarks unless allowed"
    );
}

#[test]
fn compaction_makes_old_resource_versions_expire_with_410() {
    let fake = FakeApi::start();
    fake.create(
        "/api/v1/namespaces/a/services",
        &service("a", "one", json!({})),
    );
    let old = fake.resource_version();
    fake.create(
        "/api/v1/namespaces/a/services",
        &service("a", "two", json!({})),
    );
    let compacted = fake.compact();

    let mut watch = fake.watch(&format!("/api/v1/services?resourceVersion={old}"));
    let ev = watch.next_event(WAIT);
    assert_eq!(ev["type"], "ERROR");
    let status = &ev["object"];
    assert_eq!(
        (
            status["kind"].as_str(),
            status["code"].as_u64(),
            status["reason"].as_str()
        ),
        (Some("Status"), Some(410), Some("Expired"))
    );
    assert_eq!(
        status["message"],
        format!("too old resource version: {old} ({compacted})")
    );
    assert_eq!(watch.expect_end(WAIT), WatchEnd::Clean);

    // Resuming exactly at the compaction point is still fine.
    let mut ok = fake.watch(&format!("/api/v1/services?resourceVersion={compacted}"));
    fake.delete("/api/v1/namespaces/a/services/one");
    assert_eq!(ok.next_event(WAIT)["type"], "DELETED");
}

#[test]
fn small_history_expires_slow_resumes() {
    let fake = FakeApi::builder().history(3).start();
    let start = fake.resource_version();
    for i in 0..40 {
        fake.create(
            "/api/v1/namespaces/a/services",
            &service("a", &format!("s{i}"), json!({})),
        );
    }
    let mut watch = fake.watch(&format!("/api/v1/services?resourceVersion={start}"));
    assert_eq!(watch.next_event(WAIT)["object"]["code"], 410);
}

#[test]
fn dropped_and_timed_out_watches_end_as_a_real_server_would() {
    let fake = FakeApi::start();
    let mut closed = fake.watch("/api/v1/services?resourceVersion=0");
    let mut reset = fake.watch("/api/v1/pods?resourceVersion=0");
    fake.wait_until("two open watches", WAIT, |f| f.open_watches() == 2);
    assert_eq!(fake.drop_watches(), 2);
    assert!(
        matches!(closed.expect_end(WAIT), WatchEnd::Broken(_)),
        "FIN without the last chunk"
    );
    assert!(matches!(reset.expect_end(WAIT), WatchEnd::Broken(_)));

    let mut reset = fake.watch("/api/v1/pods?resourceVersion=0");
    fake.wait_until("one open watch", WAIT, |f| f.open_watches() == 1);
    fake.reset_watches();
    match reset.expect_end(WAIT) {
        WatchEnd::Broken(how) => {
            assert!(how.contains("ConnectionReset"), "RST expected, got {how}")
        }
        WatchEnd::Clean => panic!("reset watch ended cleanly"),
    }

    let started = Instant::now();
    let mut timed = fake.watch("/api/v1/services?timeoutSeconds=1");
    assert_eq!(
        timed.expect_end(WAIT),
        WatchEnd::Clean,
        "timeoutSeconds ends the stream cleanly"
    );
    assert!(started.elapsed() >= Duration::from_millis(900));
}

#[test]
fn unavailable_answers_503_then_recovers() {
    let fake = FakeApi::start();
    let mut watch = fake.watch("/api/v1/services?resourceVersion=0");
    fake.unavailable(1.0);
    assert!(matches!(watch.expect_end(WAIT), WatchEnd::Broken(_)));
    let down = fake.request("GET", "/api/v1/services", None, b"");
    assert_eq!(
        (down.status, down.json()["reason"].clone()),
        (503, json!("ServiceUnavailable"))
    );
    fake.wait_until("the API to come back", WAIT, |f| {
        f.request("GET", "/api/v1/services", None, b"").status == 200
    });
}

#[test]
fn table_and_metadata_views_for_kubectl_and_metadata_watchers() {
    let fake = FakeApi::start();
    fake.create(
        "/api/v1/namespaces/a/services",
        &service("a", "web", json!({})),
    );
    let table = fake.get_as(
        "/api/v1/services",
        "application/json;as=Table;v=v1;g=meta.k8s.io,application/json",
    );
    let table = table.json();
    assert_eq!(
        (table["kind"].as_str(), table["apiVersion"].as_str()),
        (Some("Table"), Some("meta.k8s.io/v1"))
    );
    let columns: Vec<&str> = table["columnDefinitions"]
        .as_array()
        .expect("columns")
        .iter()
        .filter_map(|c| c["name"].as_str())
        .collect();
    assert_eq!(
        columns,
        [
            "Name",
            "Type",
            "Cluster-IP",
            "External-IP",
            "Port(s)",
            "Age",
            "Selector"
        ]
    );
    assert_eq!(table["rows"][0]["cells"][0], "web");
    assert_eq!(table["rows"][0]["object"]["kind"], "PartialObjectMetadata");

    let meta = fake
        .get_as(
            "/api/v1/services",
            "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1",
        )
        .json();
    assert_eq!(meta["kind"], "PartialObjectMetadataList");
    assert_eq!(meta["items"][0]["metadata"]["name"], "web");
    assert!(meta["items"][0].get("spec").is_none(), "metadata only");

    let protobuf_only = fake.get_as("/api/v1/services", "application/vnd.kubernetes.protobuf");
    assert_eq!(protobuf_only.status, 406);
}

#[test]
fn python_unit_tests_pass() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fakeapi");
    let out = Command::new("python3")
        .args(["-m", "unittest", "discover", "-s", dir, "-p", "test_*.py"])
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .output()
        .unwrap_or_else(|e| panic!("cannot run python3 ({e}): install Python 3.10+"));
    assert!(
        out.status.success(),
        "python unit tests failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

// ---------------------------------------------------------------- kubectl

struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn kubectl(fake: &FakeApi, args: &[&str]) -> Command {
    let version = Command::new("kubectl")
        .args(["version", "--client"])
        .output();
    assert!(
        version.as_ref().is_ok_and(|o| o.status.success()),
        "kubectl is required for this test and was not found or failed ({version:?}); install it (e.g. apt-get install kubectl)"
    );
    let mut cmd = Command::new("kubectl");
    cmd.arg("--kubeconfig")
        .arg(fake.kubeconfig())
        .arg("--cache-dir")
        .arg(fake.dir().join("kubectl-cache"));
    cmd.args(args);
    cmd
}

#[test]
fn kubectl_gets_services_and_endpointslices() {
    let fake = FakeApi::start();
    fake.create(
        "/api/v1/namespaces/shop/services",
        &service("shop", "web", json!({})),
    );
    fake.create(
        "/apis/discovery.k8s.io/v1/namespaces/shop/endpointslices",
        &endpoint_slice(
            "shop",
            "web-x1",
            "web",
            &[("10.1.0.5", true), ("10.1.0.6", false)],
        ),
    );
    let out = kubectl(&fake, &["get", "services,endpointslices", "-A"])
        .output()
        .expect("run kubectl");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "kubectl failed: {}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<Vec<&str>> = stdout
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    let has_row = |prefix: &[&str]| lines.iter().any(|l| l.starts_with(prefix));
    let svc_header = [
        "NAMESPACE",
        "NAME",
        "TYPE",
        "CLUSTER-IP",
        "EXTERNAL-IP",
        "PORT(S)",
        "AGE",
    ];
    let eps_header = [
        "NAMESPACE",
        "NAME",
        "ADDRESSTYPE",
        "PORTS",
        "ENDPOINTS",
        "AGE",
    ];
    assert!(has_row(&svc_header) && has_row(&eps_header), "{stdout}");
    let web = lines
        .iter()
        .find(|l| l.starts_with(&["shop", "service/web", "ClusterIP"]));
    assert_eq!(web.and_then(|l| l.get(5)), Some(&"80/TCP"), "{stdout}");
    let slice = [
        "shop",
        "endpointslice.discovery.k8s.io/web-x1",
        "IPv4",
        "8080",
        "10.1.0.5,10.1.0.6",
    ];
    assert!(has_row(&slice), "{stdout}");

    let short = kubectl(&fake, &["get", "svc", "-n", "shop", "-o", "name"])
        .output()
        .expect("run kubectl");
    assert_eq!(String::from_utf8_lossy(&short.stdout).trim(), "service/web");
}

#[test]
fn kubectl_watch_prints_new_services() {
    let fake = FakeApi::start();
    fake.create(
        "/api/v1/namespaces/shop/services",
        &service("shop", "first", json!({})),
    );
    let child = kubectl(&fake, &["get", "services", "-A", "-w"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn kubectl");
    let mut child = KillOnDrop(child);
    let stdout = child.0.stdout.take().expect("kubectl stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let wait_for = |needle: &str| loop {
        let line = rx.recv_timeout(WAIT).unwrap_or_else(|_| {
            panic!(
                "kubectl -w never printed {needle:?}\nserver log:\n{}",
                fake.log()
            )
        });
        if line.contains(needle) {
            return line;
        }
    };
    wait_for("first");
    fake.wait_until("kubectl's watch", WAIT, |f| f.open_watches() == 1);
    fake.create(
        "/api/v1/namespaces/shop/services",
        &service("shop", "second", json!({})),
    );
    let line = wait_for("second");
    assert_eq!(
        line.split_whitespace().take(3).collect::<Vec<_>>(),
        ["shop", "second", "ClusterIP"]
    );
}

// ---------------------------------------------------------------- kube-rs watcher

mod kube_watcher {
    use super::*;
    use futures::{Stream, StreamExt};
    use k8s_openapi::api::core::v1::Service;
    use kube::runtime::WatchStreamExt;
    use kube::runtime::watcher::{self, Event, watcher};
    use kube::{Api, ResourceExt};
    use tokio::sync::mpsc::{UnboundedReceiver, unbounded_channel};

    type Item = Result<Event<Service>, watcher::Error>;

    fn label(item: &Item) -> String {
        match item {
            Ok(Event::Init) => "Init".into(),
            Ok(Event::InitApply(s)) => format!("InitApply({})", s.name_any()),
            Ok(Event::InitDone) => "InitDone".into(),
            Ok(Event::Apply(s)) => format!("Apply({})", s.name_any()),
            Ok(Event::Delete(s)) => format!("Delete({})", s.name_any()),
            Err(watcher::Error::WatchError(status)) => format!("Err({})", status.code),
            Err(e) => format!("Err({e})"),
        }
    }

    /// Drives the watcher in its own task (so it keeps watching while the test works) and
    /// hands over a label per event.
    fn drive(stream: impl Stream<Item = Item> + Send + 'static) -> UnboundedReceiver<String> {
        let (tx, rx) = unbounded_channel();
        tokio::spawn(async move {
            let mut stream = std::pin::pin!(stream);
            while let Some(item) = stream.next().await {
                if tx.send(label(&item)).is_err() {
                    break;
                }
            }
        });
        rx
    }

    async fn next(rx: &mut UnboundedReceiver<String>) -> String {
        let item = tokio::time::timeout(WAIT, rx.recv()).await;
        item.expect("watcher event within 10 s")
            .expect("watcher stream open")
    }

    /// Labels up to and including `last`.
    async fn until(rx: &mut UnboundedReceiver<String>, last: &str) -> Vec<String> {
        let mut seen = Vec::new();
        while seen.last().is_none_or(|l| l != last) {
            seen.push(next(rx).await);
        }
        seen
    }

    /// The labels from the last `Init` on.
    fn from_init(seen: &[String]) -> Vec<&str> {
        let start = seen.iter().rposition(|l| l == "Init").unwrap_or(seen.len());
        seen[start..].iter().map(String::as_str).collect()
    }

    fn seed(fake: &FakeApi, names: &[&str]) {
        for name in names {
            fake.create(
                "/api/v1/namespaces/a/services",
                &service("a", name, json!({})),
            );
        }
    }

    fn services(client: kube::Client) -> Api<Service> {
        Api::all(client)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn relists_after_compaction_and_dropped_watch() {
        // Hour-long bookmarks keep the watcher's resourceVersion at its last Service event.
        let fake = FakeApi::builder().bookmark_interval(3600.0).start();
        seed(&fake, &["s1", "s2", "s3"]);
        let config = watcher::Config::default().page_size(2);
        let mut rx = drive(watcher(services(fake.kube_client().await), config).default_backoff());
        let init = until(&mut rx, "InitDone").await;
        assert_eq!(
            init,
            [
                "Init",
                "InitApply(s1)",
                "InitApply(s2)",
                "InitApply(s3)",
                "InitDone"
            ]
        );
        assert!(
            fake.log().contains("limit=2&continue="),
            "the initial list was paginated"
        );

        fake.patch(
            "/api/v1/namespaces/a/services/s2",
            &json!({"metadata": {"labels": {"v": "2"}}}),
        );
        assert_eq!(next(&mut rx).await, "Apply(s2)");

        // Another kind moves the global resourceVersion on; compaction then strands the watcher.
        let ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "z"}});
        fake.create("/api/v1/namespaces", &ns);
        fake.compact();
        fake.drop_watches();
        let relist = until(&mut rx, "InitDone").await;
        assert!(
            relist.contains(&"Err(410)".to_string()),
            "410 Expired seen: {relist:?}"
        );
        assert_eq!(
            from_init(&relist),
            [
                "Init",
                "InitApply(s1)",
                "InitApply(s2)",
                "InitApply(s3)",
                "InitDone"
            ]
        );

        // A change made while the watcher was cut off, then compacted away, comes back in the relist.
        fake.unavailable(2.0);
        fake.load(&json!({"kind": "List", "items": [service("a", "s4", json!({}))]}));
        fake.compact();
        let relist = until(&mut rx, "InitDone").await;
        let want = [
            "Init",
            "InitApply(s1)",
            "InitApply(s2)",
            "InitApply(s3)",
            "InitApply(s4)",
            "InitDone",
        ];
        assert_eq!(from_init(&relist), want, "{relist:?}");

        fake.create(
            "/api/v1/namespaces/a/services",
            &service("a", "s5", json!({})),
        );
        assert_eq!(next(&mut rx).await, "Apply(s5)");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn resumes_without_relist_after_outage() {
        let fake = FakeApi::start();
        seed(&fake, &["s1"]);
        let stream = watcher(
            services(fake.kube_client().await),
            watcher::Config::default(),
        );
        let mut rx = drive(stream.default_backoff());
        until(&mut rx, "InitDone").await;
        fake.wait_until("the watch", WAIT, |f| f.open_watches() == 1);

        fake.unavailable_reset(1.0);
        tokio::time::sleep(Duration::from_millis(300)).await;
        fake.unavailable(1.0);
        let back = |f: &FakeApi| f.request("GET", "/api/v1/namespaces", None, b"").status == 200;
        fake.wait_until("the API to come back", WAIT, back);
        fake.create(
            "/api/v1/namespaces/a/services",
            &service("a", "after", json!({})),
        );
        let seen = until(&mut rx, "Apply(after)").await;
        assert!(
            !seen.contains(&"Init".to_string()),
            "resumed from its resourceVersion, no relist: {seen:?}"
        );
        assert!(
            seen.iter().any(|l| l.starts_with("Err(")),
            "the outage was noticed: {seen:?}"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn streaming_list_uses_initial_events_end_bookmark() {
        let fake = FakeApi::start();
        seed(&fake, &["s1", "s2"]);
        let config = watcher::Config::default().streaming_lists();
        let mut rx = drive(watcher(services(fake.kube_client().await), config));
        assert_eq!(
            until(&mut rx, "InitDone").await,
            ["Init", "InitApply(s1)", "InitApply(s2)", "InitDone"]
        );
        assert!(fake.log().contains("sendInitialEvents=true"));
        fake.delete("/api/v1/namespaces/a/services/s1");
        assert_eq!(next(&mut rx).await, "Delete(s1)");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn metadata_only_watcher_on_ingresses() {
        use k8s_openapi::api::networking::v1::Ingress;
        use kube::core::metadata::PartialObjectMeta;
        let fake = FakeApi::start();
        let ing = |name: &str| json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"name": name, "namespace": "a"}, "spec": {"rules": [{"host": format!("{name}.example.test")}]}});
        fake.create(
            "/apis/networking.k8s.io/v1/namespaces/a/ingresses",
            &ing("one"),
        );
        let api: Api<PartialObjectMeta<Ingress>> = Api::all(fake.kube_client().await);
        let mut stream = watcher(api, watcher::Config::default()).boxed();
        let mut seen = Vec::new();
        while seen.last().is_none_or(|l| l != "Apply(two)") {
            let item = tokio::time::timeout(WAIT, stream.next())
                .await
                .expect("event within 10 s")
                .expect("stream open");
            seen.push(match item {
                Ok(Event::Init) => "Init".to_string(),
                Ok(Event::InitApply(m)) => format!("InitApply({})", m.name_any()),
                Ok(Event::InitDone) => {
                    fake.create(
                        "/apis/networking.k8s.io/v1/namespaces/a/ingresses",
                        &ing("two"),
                    );
                    "InitDone".to_string()
                }
                Ok(Event::Apply(m)) => format!("Apply({})", m.name_any()),
                other => panic!("unexpected {other:?}"),
            });
        }
        assert_eq!(seen, ["Init", "InitApply(one)", "InitDone", "Apply(two)"]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn https_with_bearer_token() {
        let fake = FakeApi::builder().tls().token("s3cret").start();
        seed(&fake, &["secure"]);
        assert!(fake.url().starts_with("https://"));
        let list = services(fake.kube_client().await)
            .list(&Default::default())
            .await;
        let names: Vec<String> = list
            .expect("list over TLS with token")
            .items
            .iter()
            .map(|s| s.name_any())
            .collect();
        assert_eq!(names, ["secure"]);

        let plain = FakeApi::builder().token("s3cret").start();
        assert_eq!(
            plain.request("GET", "/api/v1/services", None, b"").status,
            200,
            "the helper sends the token"
        );
        let tcp = std::net::TcpStream::connect(plain.addr()).expect("connect");
        assert_eq!(
            raw_get_status(tcp, "/api/v1/services"),
            401,
            "no token, no access"
        );
    }

    fn raw_get_status(mut tcp: std::net::TcpStream, path: &str) -> u16 {
        use std::io::{Read, Write};
        write!(
            tcp,
            "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        .expect("send");
        let mut text = String::new();
        tcp.read_to_string(&mut text).expect("read");
        text.split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .expect("status line")
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn serves_10k_services_and_slices_to_a_paginating_watcher() {
        use k8s_openapi::api::discovery::v1::{Endpoint, EndpointSlice};
        let tmp = fakeapi_support::TempDir::new("hopwatch-cluster");
        let args = [
            "--services",
            "10000",
            "--endpoints",
            "10",
            "--namespaces",
            "50",
            "--not-ready",
            "10",
        ];
        let fixtures = fakeapi_support::generate_cluster(tmp.path(), &args);
        let fake = FakeApi::builder().fixtures_file(&fixtures).start();
        let services = fake.get("/api/v1/services?limit=1");
        assert_eq!(
            services["metadata"]["remainingItemCount"], 9_999,
            "10,000 Services loaded"
        );
        let slices: Api<EndpointSlice> = Api::all(fake.kube_client().await);
        let mut stream = watcher(slices, watcher::Config::default()).boxed();
        let (mut objects, mut endpoints, mut not_ready) = (0, 0, 0);
        loop {
            match tokio::time::timeout(Duration::from_secs(120), stream.next()).await {
                Ok(Some(Ok(Event::InitApply(slice)))) => {
                    let eps = slice.endpoints.unwrap_or_default();
                    let ready = |e: &&Endpoint| e.conditions.as_ref().and_then(|c| c.ready);
                    objects += 1;
                    endpoints += eps.len();
                    not_ready += eps.iter().filter(|e| ready(e) == Some(false)).count();
                }
                Ok(Some(Ok(Event::Init))) => {}
                Ok(Some(Ok(Event::InitDone))) => break,
                other => panic!("unexpected during the initial list: {other:?}"),
            }
        }
        assert_eq!((objects, endpoints), (10_000, 100_000));
        assert!(
            (8_000..12_000).contains(&not_ready),
            "about 10% not ready: {not_ready}"
        );
        let pages = fake
            .log()
            .matches("GET /apis/discovery.k8s.io/v1/endpointslices?&limit=500")
            .count();
        assert_eq!(pages, 20, "page_size 500 → 20 pages");

        fake.churn("discovery.k8s.io/v1/endpointslices", 600.0); // 100 slices per second
        for _ in 0..50 {
            match tokio::time::timeout(WAIT, stream.next()).await {
                Ok(Some(Ok(Event::Apply(_)))) => {}
                other => panic!("expected churn to arrive as Apply events: {other:?}"),
            }
        }
        fake.churn("discovery.k8s.io/v1/endpointslices", 0.0);
    }
}
