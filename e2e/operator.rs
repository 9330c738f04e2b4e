//! The e2e harness: a cluster from KUBECONFIG, a fresh namespace per test
//! with the chart's RBAC rendered by the real Helm, a ServiceAccount token,
//! and the operator binary started as its own process with a kubeconfig that
//! holds only that token.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use serde_json::{Value, json};
use shopfleet::api::ShopRegion;

const RELEASE: &str = "shopfleet";

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Polls `check` until it holds, or fails the test naming `what`.
pub async fn eventually(what: &str, within: Duration, mut check: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + within;
    loop {
        if check().await {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {within:?} waiting until {what}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The objects of a `helm template` output (comments and empty documents
/// left out).
pub fn rendered_documents(rendered: &str) -> Vec<Value> {
    rendered
        .split("\n---")
        .filter_map(|document| serde_saphyr::from_str::<Value>(document).ok())
        .filter(|value| value["kind"].as_str().is_some_and(|k| !k.is_empty()))
        .collect()
}

/// A tool that `.ci/tools` installs under `target/tools/bin` (installed on
/// first use, like the moto harness does).
fn tool(name: &str) -> PathBuf {
    let path = root().join("target/tools/bin").join(name);
    if !path.exists() {
        let status = Command::new("bash")
            .arg(root().join(".ci/tools"))
            .status()
            .expect(".ci/tools runs");
        assert!(
            status.success(),
            ".ci/tools failed; {name} is needed by the e2e suite"
        );
    }
    path
}

fn run(mut command: Command, input: Option<&str>) -> (bool, String, String) {
    command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command
        .spawn()
        .unwrap_or_else(|e| panic!("{command:?}: {e}"));
    if let Some(input) = input {
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
    }
    drop(child.stdin.take());
    let output = child.wait_with_output().unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

pub struct Cluster {
    kubeconfig: PathBuf,
    client: Client,
}

impl Cluster {
    /// The cluster KUBECONFIG names, or `None` after saying once that there
    /// is none.
    pub async fn connect() -> Option<Cluster> {
        static SAID: OnceLock<()> = OnceLock::new();
        let skip = || {
            SAID.get_or_init(|| println!("e2e skipped: no cluster in KUBECONFIG"));
            None
        };
        let Some(kubeconfig) = std::env::var_os("KUBECONFIG").map(PathBuf::from) else {
            return skip();
        };
        if !kubeconfig.is_file() {
            return skip();
        }
        let config = kube::Config::infer().await.expect("KUBECONFIG is readable");
        let client = Client::try_from(config).expect("a client from KUBECONFIG");
        if client.apiserver_version().await.is_err() {
            return skip();
        }
        let cluster = Cluster { kubeconfig, client };
        cluster.install_crd();
        Some(cluster)
    }

    pub fn kubectl(&self, args: &[&str], input: Option<&str>) -> (bool, String, String) {
        let mut command = Command::new(tool("kubectl"));
        command.env("KUBECONFIG", &self.kubeconfig).args(args);
        run(command, input)
    }

    /// The CRD from `crds/`, applied server-side; any warning (an unknown
    /// schema format, a deprecated field) fails the suite.
    fn install_crd(&self) {
        let crd = root().join("crds/shopregion.yaml");
        let (ok, _, stderr) = self.kubectl(
            &[
                "apply",
                "--server-side",
                "--force-conflicts",
                "--field-manager=e2e",
                "-f",
                crd.to_str().unwrap(),
            ],
            None,
        );
        assert!(ok, "the CRD applies: {stderr}");
        assert!(
            !stderr.contains("Warning"),
            "applying the CRD printed a warning: {stderr}"
        );
        let (ok, _, stderr) = self.kubectl(
            &[
                "wait",
                "--for=condition=Established",
                "--timeout=60s",
                "crd/shopregions.shopfleet.io",
            ],
            None,
        );
        assert!(ok, "the CRD becomes Established: {stderr}");
    }

    /// The chart rendered by the real Helm with `values` (a file of
    /// `charts/shopfleet/ci/`, or none for the defaults) and `--set`s.
    pub fn render_chart(&self, namespace: &str, values: Option<&Path>, sets: &[String]) -> String {
        let mut helm = Command::new(tool("helm"));
        helm.args(["template", RELEASE])
            .arg(root().join("charts/shopfleet"))
            .args(["--namespace", namespace, "--skip-crds"]);
        if let Some(values) = values {
            helm.arg("-f").arg(values);
        }
        for set in sets {
            helm.args(["--set", set]);
        }
        let (ok, rendered, stderr) = run(helm, None);
        assert!(ok, "helm template: {stderr}");
        rendered
    }

    /// Whether a Pod could run here: a Ready Node without a NoSchedule
    /// taint that is not cordoned.
    pub async fn has_schedulable_nodes(&self) -> bool {
        let nodes = Api::<k8s_openapi::api::core::v1::Node>::all(self.client.clone())
            .list(&ListParams::default())
            .await
            .unwrap();
        nodes.items.iter().any(|node| {
            let spec = node.spec.clone().unwrap_or_default();
            let ready = node
                .status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
            let tainted = spec
                .taints
                .unwrap_or_default()
                .iter()
                .any(|t| t.effect == "NoSchedule");
            ready && !tainted && spec.unschedulable != Some(true)
        })
    }

    /// `kubectl apply --server-side` of `documents` into `namespace`, with
    /// `flags` (field manager, dry run…): whether it was accepted, and what
    /// kubectl printed on stderr.
    pub fn apply_documents(
        &self,
        namespace: &str,
        documents: Vec<Value>,
        flags: &[&str],
    ) -> (bool, String) {
        let list = json!({"apiVersion": "v1", "kind": "List", "items": documents});
        let mut args = vec!["apply", "--server-side", "-n", namespace, "-f", "-"];
        args.extend_from_slice(flags);
        let (ok, _, stderr) = self.kubectl(&args, Some(&list.to_string()));
        (ok, stderr)
    }

    pub fn crd_is_established_and_explainable(&self) {
        let (ok, stdout, stderr) = self.kubectl(&["explain", "shopregion.spec.failover"], None);
        assert!(ok, "kubectl explain works: {stderr}");
        assert!(stdout.contains("maxReplicationLag"), "{stdout}");
    }

    /// A fresh namespace with the chart's RBAC for it (helm template, the
    /// operator's Deployment left out: the test runs the binary itself).
    pub async fn shop(&self, test: &str, rbac: Rbac) -> Shop {
        let suffix = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis()
            % 1_000_000;
        let namespace = format!("e2e-{test}-{suffix}");
        Api::<Namespace>::all(self.client.clone())
            .create(
                &PostParams::default(),
                &serde_json::from_value(json!({"metadata": {"name": namespace}})).unwrap(),
            )
            .await
            .unwrap();
        let rendered = self.render_chart(
            &namespace,
            None,
            &[
                "cloud=simulated".into(),
                format!("watchNamespaces={{{namespace}}}"),
                "specGuard.enabled=true".into(),
            ],
        );
        let documents: Vec<Value> = rendered_documents(&rendered)
            .into_iter()
            // The test runs the operator binary itself.
            .filter(|d| {
                !matches!(
                    d["kind"].as_str(),
                    Some("Deployment" | "PodDisruptionBudget")
                )
            })
            .map(|d| rbac.or_from_env().edit(d))
            .collect();
        let (ok, stderr) = self.apply_documents(&namespace, documents, &["--field-manager=e2e"]);
        assert!(ok, "the chart's objects apply: {stderr}");
        let (ok, token, stderr) = self.kubectl(
            &[
                "create",
                "token",
                RELEASE,
                "-n",
                &namespace,
                "--duration=2h",
            ],
            None,
        );
        assert!(ok, "a token for the chart's ServiceAccount: {stderr}");
        let dir = root().join("target/e2e").join(&namespace);
        std::fs::create_dir_all(&dir).unwrap();
        let (ok, raw, stderr) =
            self.kubectl(&["config", "view", "--raw", "--minify", "-o", "json"], None);
        assert!(ok, "{stderr}");
        let admin: Value = serde_json::from_str(&raw).unwrap();
        let cluster = &admin["clusters"][0]["cluster"];
        let kubeconfig = json!({
            "apiVersion": "v1", "kind": "Config",
            "clusters": [{"name": "e2e", "cluster": cluster}],
            "users": [{"name": "operator", "user": {"token": token.trim()}}],
            "contexts": [{"name": "e2e", "context": {"cluster": "e2e", "user": "operator", "namespace": namespace}}],
            "current-context": "e2e",
        });
        let token_kubeconfig = dir.join("kubeconfig");
        std::fs::write(&token_kubeconfig, kubeconfig.to_string()).unwrap();
        Shop {
            cluster_kubeconfig: self.kubeconfig.clone(),
            client: self.client.clone(),
            namespace,
            dir,
            token_kubeconfig,
            operator: None,
        }
    }
}

/// The RBAC a test runs the operator under.
#[derive(Clone, Copy, Debug)]
pub enum Rbac {
    AsCharted,
    /// The chart's rules less one verb on one resource.
    Without {
        resource: &'static str,
        verb: &'static str,
    },
}

impl Rbac {
    /// `E2E_RBAC_WITHOUT=RESOURCE:VERB` (e.g. `deployments:create`, or
    /// `deployments:*` for the resource's whole rule) runs
    /// every test under the chart's RBAC less that permission: the way to
    /// show that each rule is needed (a test then fails naming it).
    fn or_from_env(self) -> Rbac {
        static DROPPED: OnceLock<Option<(&'static str, &'static str)>> = OnceLock::new();
        let dropped = DROPPED.get_or_init(|| {
            let value = std::env::var("E2E_RBAC_WITHOUT").ok()?;
            let (resource, verb) = value
                .split_once(':')
                .expect("E2E_RBAC_WITHOUT=RESOURCE:VERB");
            Some((
                Box::leak(resource.to_string().into_boxed_str()),
                Box::leak(verb.to_string().into_boxed_str()),
            ))
        });
        match (self, dropped) {
            (Rbac::AsCharted, Some((resource, verb))) => Rbac::Without { resource, verb },
            _ => self,
        }
    }

    fn edit(self, mut document: Value) -> Value {
        let Rbac::Without { resource, verb } = self else {
            return document;
        };
        if !matches!(document["kind"].as_str(), Some("Role" | "ClusterRole")) {
            return document;
        }
        if let Some(rules) = document["rules"].as_array_mut() {
            let mut edited = Vec::new();
            for rule in rules.drain(..) {
                let resources: Vec<Value> =
                    rule["resources"].as_array().cloned().unwrap_or_default();
                if !resources.iter().any(|r| r == resource) {
                    edited.push(rule);
                    continue;
                }
                // The other resources of a shared rule keep every verb.
                let others: Vec<Value> = resources.into_iter().filter(|r| r != resource).collect();
                if !others.is_empty() {
                    let mut kept = rule.clone();
                    kept["resources"] = Value::Array(others);
                    edited.push(kept);
                }
                let mut narrowed = rule;
                narrowed["resources"] = json!([resource]);
                if let Some(verbs) = narrowed["verbs"].as_array_mut() {
                    // `*` drops the whole rule for that resource.
                    verbs.retain(|v| verb != "*" && v != verb);
                }
                if narrowed["verbs"].as_array().is_some_and(|v| !v.is_empty()) {
                    edited.push(narrowed);
                }
            }
            *rules = edited;
        }
        document
    }
}

/// One test's namespace, its operator process and what it reads.
pub struct Shop {
    cluster_kubeconfig: PathBuf,
    client: Client,
    namespace: String,
    dir: PathBuf,
    token_kubeconfig: PathBuf,
    operator: Option<Operator>,
}

impl Shop {
    pub fn client(&self) -> Client {
        self.client.clone()
    }

    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// A client with the operator's own identity (the ServiceAccount token).
    pub async fn operator_client(&self) -> Client {
        let kubeconfig = kube::config::Kubeconfig::read_from(&self.token_kubeconfig).unwrap();
        let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
            .await
            .unwrap();
        Client::try_from(config).unwrap()
    }

    pub fn regions(&self) -> Api<ShopRegion> {
        Api::namespaced(self.client.clone(), &self.namespace)
    }

    /// The names of the ReplicaSets the real Deployment controller made in
    /// the shop's namespace, sorted: a new pod template of an order
    /// Deployment shows up here as a new one.
    pub async fn replica_sets(&self) -> Vec<String> {
        let api: Api<ReplicaSet> = Api::namespaced(self.client.clone(), &self.namespace);
        let mut names: Vec<String> = api
            .list(&ListParams::default())
            .await
            .expect("ReplicaSets can be listed")
            .items
            .iter()
            .map(ResourceExt::name_any)
            .collect();
        names.sort();
        names
    }

    pub fn operator(&self) -> &Operator {
        self.operator.as_ref().expect("the operator was started")
    }

    pub fn start_operator(&mut self, speed: u32) {
        let generation = self.operator.as_ref().map_or(0, |o| o.generation + 1);
        self.operator = Some(Operator::start(self, speed, generation));
    }

    /// Kills the operator (no graceful stop, as a crash) and starts a new
    /// one at `speed`; the simulated cloud outlives it (`--sim-state`).
    pub fn restart_operator(&mut self, speed: u32) {
        if let Some(mut old) = self.operator.take() {
            let _ = old.child.kill();
            let _ = old.child.wait();
            self.operator = Some(Operator::start(self, speed, old.generation + 1));
        }
    }

    pub fn kubectl(&self, args: &[&str]) -> String {
        let mut command = Command::new(tool("kubectl"));
        command
            .env("KUBECONFIG", &self.cluster_kubeconfig)
            .args(["-n", &self.namespace])
            .args(args);
        let (ok, stdout, stderr) = run(command, None);
        assert!(ok, "kubectl {args:?}: {stderr}");
        assert!(
            !stderr.contains("Warning"),
            "kubectl {args:?} warned: {stderr}"
        );
        stdout
    }

    /// kubectl as the cluster's admin (or whoever `--as` names), without
    /// the test's namespace; the outcome is the caller's to judge.
    pub fn cluster_kubectl(&self, args: &[&str]) -> (bool, String, String) {
        let mut command = Command::new(tool("kubectl"));
        command
            .env("KUBECONFIG", &self.cluster_kubeconfig)
            .args(args);
        run(command, None)
    }

    /// `kubectl apply` of a sample, as a user does it: no warning allowed.
    pub fn apply_sample(&self, path: &str) {
        let file = root().join(path);
        self.kubectl(&["apply", "-f", file.to_str().unwrap()]);
    }

    pub async fn wait_for(
        &self,
        name: &str,
        what: &str,
        within: Duration,
        check: impl Fn(&ShopRegion) -> bool,
    ) -> ShopRegion {
        let api = self.regions();
        let deadline = Instant::now() + within;
        loop {
            if let Some(region) = api.get_opt(name).await.unwrap()
                && check(&region)
            {
                return region;
            }
            // A refused permission will not heal by waiting: fail now,
            // naming it.
            let stuck = self.operator.as_ref().is_some_and(Operator::cannot_go_on);
            if stuck || Instant::now() >= deadline {
                let gave_up = if stuck {
                    "gave up at once (the operator exited or was refused a permission)".to_string()
                } else {
                    format!("timed out after {within:?}")
                };
                let status = api
                    .get_opt(name)
                    .await
                    .unwrap()
                    .and_then(|r| r.status)
                    .map(|s| serde_json::to_string_pretty(&s).unwrap());
                panic!(
                    "{name}: {gave_up} waiting for {what}; status {status:?}; {}",
                    self.operator
                        .as_ref()
                        .map(Operator::diagnosis)
                        .unwrap_or_default()
                );
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// Polls `check` until it holds; fails at once, naming the refused
    /// permission, when the operator cannot go on.
    pub async fn eventually(
        &self,
        what: &str,
        within: Duration,
        mut check: impl AsyncFnMut() -> bool,
    ) {
        let deadline = Instant::now() + within;
        loop {
            if check().await {
                return;
            }
            let stuck = self.operator.as_ref().is_some_and(Operator::cannot_go_on);
            assert!(
                !stuck && Instant::now() < deadline,
                "{} waiting until {what}; {}",
                if stuck {
                    "gave up at once"
                } else {
                    "timed out"
                },
                self.operator
                    .as_ref()
                    .map(Operator::diagnosis)
                    .unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    pub async fn wait_gone(&self, name: &str, within: Duration) {
        let api = self.regions();
        self.eventually(&format!("{name} is deleted"), within, async || {
            api.get_opt(name).await.unwrap().is_none()
        })
        .await;
    }

    /// A metadata change the operator must look at (a reconcile) but that
    /// asks for no change.
    pub async fn touch(&self, name: &str) {
        let stamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
            .to_string();
        self.regions()
            .patch(
                name,
                &PatchParams::default(),
                &Patch::Merge(
                    json!({"metadata": {"annotations": {"e2e.shopfleet.io/resync": stamp}}}),
                ),
            )
            .await
            .unwrap();
    }

    /// Waits until the operator's reconcile writes stop moving.
    pub async fn settle(&self) {
        let mut last = self.operator().reconcile_writes();
        let mut quiet_since = Instant::now();
        let deadline = Instant::now() + Duration::from_secs(60);
        while quiet_since.elapsed() < Duration::from_secs(3) {
            assert!(
                Instant::now() < deadline,
                "the operator never stopped writing; {}",
                self.operator().diagnosis()
            );
            tokio::time::sleep(Duration::from_millis(300)).await;
            let now = self.operator().reconcile_writes();
            if now != last {
                last = now;
                quiet_since = Instant::now();
            }
        }
    }

    pub async fn events(&self) -> Vec<Event> {
        Api::<Event>::namespaced(self.client.clone(), &self.namespace)
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .into_iter()
            .filter(|e| e.reporting_controller.as_deref() == Some("shopfleet"))
            .collect()
    }

    /// Stops the operator and deletes the namespace (its ShopRegions first,
    /// so that the finalizer is not left behind without an operator).
    pub async fn finish(mut self) {
        let api = self.regions();
        for region in api.list(&ListParams::default()).await.unwrap() {
            if self.operator.is_none() {
                // No operator to remove its finalizer.
                let _ = api
                    .patch(
                        &region.name_any(),
                        &PatchParams::default(),
                        &Patch::Merge(json!({"metadata": {"finalizers": null}})),
                    )
                    .await;
            }
            let _ = api
                .delete(&region.name_any(), &DeleteParams::default())
                .await;
        }
        eventually(
            "the test's ShopRegions are deleted",
            Duration::from_secs(60),
            async || {
                api.list(&ListParams::default())
                    .await
                    .unwrap()
                    .items
                    .is_empty()
            },
        )
        .await;
        if let Some(mut operator) = self.operator.take() {
            let _ = operator.child.kill();
            let _ = operator.child.wait();
        }
        let _ = Api::<Namespace>::all(self.client.clone())
            .delete(&self.namespace, &DeleteParams::default())
            .await;
    }
}

impl Drop for Shop {
    /// A test that failed half-way: stop its operator and remove its
    /// namespace anyway (the finalizers first, since no operator is left to
    /// remove them), so that its Pods do not fill the cluster for the next.
    fn drop(&mut self) {
        let Some(operator) = self.operator.as_mut() else {
            return;
        };
        let _ = operator.child.kill();
        let _ = operator.child.wait();
        let kubectl = |args: &[&str]| {
            Command::new(tool("kubectl"))
                .env("KUBECONFIG", &self.cluster_kubeconfig)
                .args(args)
                .output()
                .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
                .unwrap_or_default()
        };
        let names = kubectl(&["get", "shopregions", "-n", &self.namespace, "-o", "name"]);
        for name in names.lines() {
            kubectl(&[
                "patch",
                "-n",
                &self.namespace,
                name,
                "--type=merge",
                "-p",
                r#"{"metadata":{"finalizers":null}}"#,
            ]);
        }
        kubectl(&["delete", "namespace", &self.namespace, "--wait=false"]);
    }
}

/// The operator binary of this checkout, running as its own process.
pub struct Operator {
    child: Child,
    port: u16,
    generation: u32,
    log: PathBuf,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Operator {
    fn start(shop: &Shop, speed: u32, generation: u32) -> Operator {
        let port = free_port();
        let log = shop.dir.join(format!("operator-{generation}.log"));
        let out = std::fs::File::create(&log).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_shopfleet"))
            .args(["run", "--cloud", "simulated", "--sim-control"])
            .arg("--sim-state")
            .arg(shop.dir.join("simulated-cloud.json"))
            .arg("--sim-account")
            .arg(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/samples/accounts/samples.yaml"
            ))
            .args([
                "--namespace",
                &shop.namespace,
                "--lease-namespace",
                &shop.namespace,
            ])
            .args([
                "--metrics-port",
                &port.to_string(),
                "--sim-speed",
                &speed.to_string(),
            ])
            .args(["--identity", &format!("e2e-{generation}")])
            .env("KUBECONFIG", &shop.token_kubeconfig)
            .env_remove("POD_NAMESPACE")
            .env_remove("POD_NAME")
            .env_remove("SHOPFLEET_NAMESPACE")
            .env("RUST_LOG", "info,kube=warn,hyper=warn")
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .expect("the operator binary starts");
        Operator {
            child,
            port,
            generation,
            log,
        }
    }

    pub fn log_path(&self) -> &Path {
        &self.log
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// A refused permission (it will not heal by waiting) or an exited
    /// process.
    fn cannot_go_on(&self) -> bool {
        // An exited child stays a zombie until reaped: read its state.
        let exited = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).map_or(
            true,
            |stat| {
                stat.rsplit(')')
                    .next()
                    .and_then(|rest| rest.split_whitespace().next())
                    == Some("Z")
            },
        );
        exited || self.log().contains(" is forbidden: ")
    }

    /// For a failure message: the permissions the API server refused (the
    /// usual reason an operator under least privilege gets stuck), and
    /// where the whole log is.
    pub fn diagnosis(&self) -> String {
        let log = self.log();
        let mut denied: Vec<&str> = log
            .lines()
            .filter(|l| l.contains(" is forbidden: "))
            .collect();
        denied.dedup();
        denied.truncate(5);
        let last: Vec<&str> = log.lines().rev().take(3).collect();
        format!(
            "permissions refused: {denied:#?}; last log lines: {last:#?}; operator log {}",
            self.log.display()
        )
    }

    fn http(&self, method: &str, path: &str) -> Option<String> {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).ok()?;
        stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        write!(
            stream,
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        )
        .ok()?;
        let mut response = Vec::new();
        stream.read_to_end(&mut response).ok()?;
        let split = response.windows(4).position(|w| w == b"\r\n\r\n")?;
        let head = std::str::from_utf8(&response[..split]).ok()?;
        let body = &response[split + 4..];
        if !head.starts_with("HTTP/1.1 200") {
            return None;
        }
        // /metrics is sent in pieces, without a length.
        let chunked = head.lines().any(|line| {
            line.to_ascii_lowercase()
                .replace(' ', "")
                .starts_with("transfer-encoding:chunked")
        });
        let body = if chunked {
            dechunk(body)?
        } else {
            body.to_vec()
        };
        String::from_utf8(body).ok()
    }

    pub fn metrics(&self) -> String {
        self.http("GET", "/metrics").unwrap_or_default()
    }

    /// Kubernetes writes of this process, the leader Lease's renewals apart.
    pub fn reconcile_writes(&self) -> u64 {
        self.metrics()
            .lines()
            .filter(|l| {
                l.starts_with("shopfleet_kube_writes_total{") && !l.contains("resource=\"leases\"")
            })
            .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
            .sum()
    }

    /// The operator's writes by verb and resource, for a failure message.
    pub fn writes_breakdown(&self) -> Vec<String> {
        self.metrics()
            .lines()
            .filter(|l| l.starts_with("shopfleet_kube_writes_total{"))
            .map(str::to_string)
            .collect()
    }

    pub fn sim_state(&self) -> Value {
        serde_json::from_str(
            &self
                .http("GET", "/sim/state")
                .expect("the control endpoint answers"),
        )
        .unwrap()
    }

    pub fn sim_post(&self, path: &str) {
        self.http("POST", path)
            .unwrap_or_else(|| panic!("POST {path} to the simulated cloud"));
    }
}

/// The body of an HTTP/1.1 response in chunked transfer encoding; `None`
/// when it is cut short or malformed.
fn dechunk(mut chunked: &[u8]) -> Option<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let line_end = chunked.windows(2).position(|w| w == b"\r\n")?;
        let size_field = std::str::from_utf8(&chunked[..line_end]).ok()?;
        let size_hex = size_field.split(';').next()?.trim();
        let size = usize::from_str_radix(size_hex, 16).ok()?;
        chunked = &chunked[line_end + 2..];
        if size == 0 {
            return Some(body);
        }
        body.extend_from_slice(chunked.get(..size)?);
        chunked = chunked.get(size..)?.strip_prefix(b"\r\n")?;
    }
}
