//! Wires config, scheduler, metrics, server and reload together, and runs until shutdown.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use std::sync::{Mutex, PoisonError};

use tokio::sync::oneshot;

use crate::canary::{cause, responder};
use crate::cluster;
use crate::config::{self, Config, ConfigError, DnsTarget, Schedule};
use crate::discovery::model::ObjKey;
use crate::discovery::watch::Discovery;
use crate::metrics::Metrics;
use crate::otlp;
use crate::policy::{self, Denial, SelfPod};
use crate::probe::dns::{DnsCheck, Flavor, QueryTypes};
use crate::probe::{Hop, Outcome, Target, TargetKey, result_label};
use crate::reload::{ConfigFile, Reloader};
use crate::schedule::{Scheduler, Sink};
use crate::server::{Readiness, Server, ServerError};
use crate::verdict::{ServiceVerdict, Verdicts};
use crate::webconfig::Web;

/// The readiness condition met once the first configuration is applied.
const CONFIG_APPLIED: &str = "config";

/// The readiness condition met once Services and EndpointSlices are listed.
const KUBERNETES_SYNCED: &str = "kubernetes";

/// Discovery changes come in bursts (a rollout touches many slices): they are applied at most
/// this often.
const DISCOVERY_SETTLE: Duration = Duration::from_millis(200);

/// How long the server gets to close after the probes have stopped.
const SERVER_STOP_TIMEOUT: Duration = Duration::from_millis(500);
/// The first wait before building the Kubernetes client again after it failed (a kubeconfig
/// not yet written, or half written); doubled after each failure up to
/// [`CLIENT_RETRY_MAX`].
const CLIENT_RETRY_MIN: Duration = Duration::from_millis(250);
const CLIENT_RETRY_MAX: Duration = Duration::from_secs(30);

/// Why the agent could not run.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error(transparent)]
    Server(#[from] ServerError),
    #[error("cannot handle SIGHUP: {0}")]
    Signal(std::io::Error),
}

/// Where the scheduler's results go: the metrics, and the verdicts they feed.
pub struct AgentSink {
    metrics: Arc<Metrics>,
    verdicts: Mutex<Verdicts>,
    policies: Mutex<Expected>,
    /// The sweep's Service-hop targets: counted together, judged, without series of their own.
    sweep: Mutex<BTreeSet<TargetKey>>,
    /// The canary Service every verdict is judged against (`canary.service`).
    canary: Mutex<Option<ObjKey>>,
}

/// Targets the NetworkPolicies deny to the agent, and which of them connected anyway.
#[derive(Default)]
struct Expected {
    denials: BTreeMap<TargetKey, Denial>,
    connected: BTreeSet<TargetKey>,
}

impl Expected {
    /// Every denying policy, and whether a target it denies connected in its last round.
    fn unenforced(&self) -> BTreeMap<ObjKey, bool> {
        let mut out = BTreeMap::new();
        for (key, denial) in &self.denials {
            *out.entry(denial.policy.clone()).or_default() |= self.connected.contains(key);
        }
        out
    }

    fn denied_per_service(&self) -> BTreeMap<ObjKey, usize> {
        let mut out = BTreeMap::new();
        for denial in self.denials.values() {
            *out.entry(denial.service.clone()).or_default() += 1;
        }
        out
    }
}

impl AgentSink {
    fn verdicts(&self) -> std::sync::MutexGuard<'_, Verdicts> {
        self.verdicts.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn policies(&self) -> std::sync::MutexGuard<'_, Expected> {
        self.policies.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A new set of sweep targets. One that joins the sweep keeps its key: its own series go
    /// now.
    fn set_sweep(&self, sweep: BTreeSet<TargetKey>) {
        let mut was = self.sweep.lock().unwrap_or_else(PoisonError::into_inner);
        for key in sweep.difference(&was) {
            self.metrics.forget(key);
        }
        *was = sweep;
    }

    fn in_sweep(&self, key: &TargetKey) -> bool {
        self.sweep
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contains(key)
    }

    fn canary(&self) -> Option<ObjKey> {
        let canary = self.canary.lock().unwrap_or_else(PoisonError::into_inner);
        canary.clone()
    }

    /// A new canary Service from the config; without one, no causes are exported.
    fn set_canary(&self, canary: Option<ObjKey>) {
        if canary.is_none() {
            self.metrics.canary.clear();
        }
        *self.canary.lock().unwrap_or_else(PoisonError::into_inner) = canary;
    }

    /// Exports the verdicts in `changed` and the causes they (and the canary's) give.
    fn export_verdicts(&self, verdicts: &Verdicts, changed: &BTreeMap<ObjKey, ServiceVerdict>) {
        for (svc, verdict) in changed {
            self.metrics.cluster.set_verdict(svc, verdict);
        }
        let Some(canary) = self.canary() else { return };
        let judged = cause::judge(verdicts, &canary, changed);
        self.metrics.canary.set_canary_path(judged.canary);
        for (svc, cause) in &judged.causes {
            self.metrics.canary.set_cause(svc, *cause);
        }
    }

    /// A new set of denied targets, from a new plan.
    fn set_denials(&self, denials: BTreeMap<TargetKey, Denial>) {
        let mut expected = self.policies();
        expected.connected.retain(|k| denials.contains_key(k));
        expected.denials = denials;
        self.metrics
            .cluster
            .set_policy_denied(&expected.denied_per_service());
        self.metrics.cluster.set_unenforced(&expected.unenforced());
    }

    /// The outcome as recorded: a denied target's failures are `policy_denied`, and one that
    /// connected marks its policy unenforced.
    fn expected(&self, key: &TargetKey, outcome: &Outcome) -> Option<Outcome> {
        let mut expected = self.policies();
        expected.denials.get(key)?;
        let (renamed, connected) = policy::expected_denial(outcome);
        let changed = if connected {
            expected.connected.insert(key.clone())
        } else {
            expected.connected.remove(key)
        };
        if changed {
            self.metrics.cluster.set_unenforced(&expected.unenforced());
        }
        Some(renamed)
    }
}

impl Sink for AgentSink {
    fn started(&self, key: &TargetKey) {
        if !self.in_sweep(key) {
            self.metrics.start(key);
        }
    }

    fn record(&self, key: &TargetKey, outcome: &Outcome) {
        let renamed = self.expected(key, outcome);
        let outcome = renamed.as_ref().unwrap_or(outcome);
        // Debug only: a result is data, exported as metrics; this is for following one target.
        tracing::debug!(
            target = %key.id,
            hop = %key.hop,
            result = result_label(&outcome.result),
            duration_seconds = outcome.duration.as_secs_f64(),
            "probe finished"
        );
        if self.in_sweep(key) {
            self.metrics
                .cluster
                .sweep_connect(result_label(&outcome.result));
        } else {
            self.metrics.record(key, outcome);
        }
        let mut verdicts = self.verdicts();
        if verdicts.observe(key, outcome) {
            let changed = verdicts.affected(key);
            self.export_verdicts(&verdicts, &changed);
        }
    }

    fn lag(&self, lag: Duration) {
        self.metrics.observe_lag(lag);
    }

    fn forget(&self, key: &TargetKey) {
        self.metrics.forget(key);
        self.verdicts().forget(key);
    }
}

/// Every static target a configuration asks for: the `dns`, then the `http`, then the `tcp`
/// targets, each in config order. An `http` target's resolv.conf is read now.
pub fn targets(config: &Config) -> Vec<Target> {
    let dns = config
        .dns
        .iter()
        .cloned()
        .map(|t| Target::Dns(DnsCheck::configured(t)));
    let http = config.http.iter().map(|t| Target::Http(t.target()));
    let tcp = config.tcp.iter().cloned().map(Target::Connect);
    dns.chain(http).chain(tcp).collect()
}

/// Names every pod can resolve, written short as an application in a pod would write them,
/// so that the search-list walk and its amplification show.
const IN_CLUSTER_NAMES: [&str; 2] = ["kubernetes.default", "kube-dns.kube-system"];

/// The schedule of the in-cluster targets when the embedded default has no DNS target to
/// take one from.
const IN_CLUSTER_SCHEDULE: Schedule = Schedule {
    interval: Duration::from_secs(30),
    timeout: Duration::from_secs(25),
    jitter: Duration::from_secs(2),
};

/// The embedded default configuration, adapted to where hopwatch runs. In a cluster
/// (`in_cluster`: `KUBERNETES_SERVICE_HOST` is set) its DNS targets are replaced by names every
/// cluster serves, looked up through `/etc/resolv.conf` as the pod's own resolver would, and
/// Kubernetes discovery is on with its defaults.
pub fn default_config(in_cluster: bool) -> Result<Config, ConfigError> {
    let mut config = Config::parse(config::EMBEDDED_DEFAULT, "embedded default config")?;
    if in_cluster {
        config.dns = in_cluster_targets(&config.dns);
        // Discovery with every default: the pod's service account, all namespaces.
        let discovery = Config::parse("kubernetes: {}\n", "embedded default config")?;
        config.kubernetes = discovery.kubernetes;
    }
    Ok(config)
}

fn in_cluster_targets(embedded: &[DnsTarget]) -> Vec<DnsTarget> {
    let schedule = embedded
        .first()
        .map_or(IN_CLUSTER_SCHEDULE, |target| target.schedule);
    let target = |name: &str| DnsTarget {
        id: name.to_string(),
        name: name.to_string(),
        flavor: Flavor::Glibc,
        qtypes: QueryTypes::Both,
        resolv_conf: PathBuf::from("/etc/resolv.conf"),
        server: None,
        schedule,
    };
    IN_CLUSTER_NAMES.into_iter().map(target).collect()
}

/// Runs the agent with `config` until `shutdown` completes. With `config_path`, the file is
/// reloaded on SIGHUP and when it changes. `web` protects the server (TLS, auth).
pub async fn run(
    config: Config,
    config_path: Option<PathBuf>,
    web: Web,
    shutdown: impl Future,
) -> Result<(), AgentError> {
    let metrics = Arc::new(Metrics::new());
    let readiness = Arc::new(Readiness::new());
    readiness.wait_for(CONFIG_APPLIED, "config not applied yet");
    let server = Server::bind(
        config.listen,
        Arc::clone(&metrics),
        Arc::clone(&readiness),
        web,
    )
    .await?;
    let listening = server.local_addr();
    tracing::info!(
        "serving metrics on {}://{listening}/metrics",
        server.scheme()
    );
    let (stop_server, server_stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(server.serve(async move {
        let _ = server_stopped.await;
    }));
    let (stop_canary, canary_stopped) = oneshot::channel::<()>();
    let canary = config.canary.listen.map(|addr| {
        let metrics = Arc::clone(&metrics);
        tokio::spawn(responder::run(
            addr,
            cluster::node_name(),
            metrics,
            canary_stopped,
        ))
    });

    let file = config_path
        .as_deref()
        .map(|path| ConfigFile::new(path, &config));
    let mut reloader = Reloader::new(file).map_err(AgentError::Signal)?;
    let mut agent = Agent::start(
        config,
        listening,
        Arc::clone(&metrics),
        Arc::clone(&readiness),
    )
    .await?;
    metrics.config_applied(SystemTime::now());
    readiness.met(CONFIG_APPLIED);

    tokio::pin!(shutdown);
    loop {
        let client_retry = agent.client_retry;
        let handover = agent.handover_due();
        tokio::select! {
            _ = &mut shutdown => break,
            (_, reloaded) = reloader.next() => agent.reload(reloaded).await,
            () = agent.discovery_changed() => {
                tokio::time::sleep(DISCOVERY_SETTLE).await;
                agent.apply_targets().await;
            }
            () = due(client_retry) => {
                agent.start_discovery().await;
                agent.apply_targets().await;
            }
            () = due(handover) => agent.apply_targets().await,
        }
    }

    tracing::info!("shutting down");
    agent.scheduler.shutdown().await;
    // After the probes: the last push carries their final results.
    if let Some(exporter) = agent.otlp.take() {
        exporter.shutdown().await;
    }
    let _ = stop_server.send(());
    let _ = stop_canary.send(());
    if let Some(canary) = canary {
        let _ = tokio::time::timeout(SERVER_STOP_TIMEOUT, canary).await;
    }
    if tokio::time::timeout(SERVER_STOP_TIMEOUT, server)
        .await
        .is_err()
    {
        tracing::warn!("the HTTP server did not stop in {SERVER_STOP_TIMEOUT:?}");
    }
    Ok(())
}

/// Resolves at `at`; never without it.
async fn due(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// The running configuration and what it drives.
struct Agent {
    config: Config,
    /// The address the server is bound to, which a reload cannot change.
    listening: SocketAddr,
    /// The canary responder's address, which a reload cannot change either.
    canary_listening: Option<SocketAddr>,
    scheduler: Scheduler<Target, AgentSink>,
    sink: Arc<AgentSink>,
    metrics: Arc<Metrics>,
    readiness: Arc<Readiness>,
    /// Running while the config has a `kubernetes` section.
    discovery: Option<Discovery>,
    /// When to build the Kubernetes client again, after it failed; and the wait after that.
    client_retry: Option<tokio::time::Instant>,
    client_backoff: Duration,
    /// Running while the config has an `otlp` section.
    otlp: Option<otlp::Exporter>,
    node: String,
    /// The agent's own pod, the source NetworkPolicies are applied to; `None` outside a pod.
    me: Option<SelfPod>,
    /// Keys both a configured and a discovered target have; warned about once.
    shadowed: BTreeSet<TargetKey>,
    /// Ingress annotations that do not parse, as messages; each logged once.
    invalid: BTreeSet<String>,
}

impl Agent {
    /// When a readiness handover ends and the plan must be derived again to drop the series
    /// this agent gave up; at least a second from now.
    fn handover_due(&self) -> Option<tokio::time::Instant> {
        let due = self.metrics.cluster.handover_due()?;
        let floor = std::time::Instant::now() + Duration::from_secs(1);
        Some(tokio::time::Instant::from_std(due.max(floor)))
    }

    async fn start(
        config: Config,
        listening: SocketAddr,
        metrics: Arc<Metrics>,
        readiness: Arc<Readiness>,
    ) -> Result<Agent, AgentError> {
        let sink = Arc::new(AgentSink {
            metrics: Arc::clone(&metrics),
            verdicts: Mutex::default(),
            policies: Mutex::default(),
            sweep: Mutex::default(),
            canary: Mutex::default(),
        });
        let scheduler = Scheduler::new(config.max_concurrency, Arc::clone(&sink));
        let canary_listening = config.canary.listen;
        let mut agent = Agent {
            config,
            listening,
            canary_listening,
            scheduler,
            sink,
            metrics,
            readiness,
            discovery: None,
            client_retry: None,
            client_backoff: CLIENT_RETRY_MIN,
            otlp: None,
            node: cluster::node_name(),
            me: policy::self_pod(),
            shadowed: BTreeSet::new(),
            invalid: BTreeSet::new(),
        };
        agent.time_service_hop();
        agent.start_otlp();
        agent.start_discovery().await;
        agent.apply_targets().await;
        Ok(agent)
    }

    /// `kubernetes.connect.service_histogram`: whether Service-hop connects are timed.
    fn time_service_hop(&self) {
        let timed = self
            .config
            .kubernetes
            .as_ref()
            .is_none_or(|k| k.service_histogram);
        self.metrics.set_timed(Hop::Service, timed);
    }

    /// Logs each newly invalid Ingress annotation once, and exports how many there are.
    fn note_invalid(&mut self, invalid: BTreeSet<String>) {
        for message in invalid.difference(&self.invalid) {
            tracing::warn!("{message}");
        }
        self.metrics.cluster.set_invalid_annotations(invalid.len());
        self.invalid = invalid;
    }

    /// Starts pushing the metrics over OTLP when the config asks for it.
    fn start_otlp(&mut self) {
        let settings = self.config.otlp.clone();
        self.otlp = settings.and_then(|settings| {
            otlp::spawn(settings, Arc::clone(&self.metrics))
                .inspect_err(|err| tracing::error!("OTLP push not started: {err}"))
                .ok()
        });
    }

    /// Starts watching the cluster when the config asks for it. A client that cannot be
    /// built (the kubeconfig missing, unreadable or half written, no in-cluster config) is
    /// counted and built again with backoff, as a failed watch is: the agent keeps serving
    /// and probing its configured targets meanwhile, not ready, and watches already running
    /// keep their client until the new one is built.
    async fn start_discovery(&mut self) {
        self.client_retry = None;
        let Some(kube) = &self.config.kubernetes else {
            self.discovery = None;
            self.readiness.met(KUBERNETES_SYNCED);
            return;
        };
        match cluster::start(kube, Arc::clone(&self.metrics)).await {
            Ok(discovery) => {
                self.readiness.wait_for(
                    KUBERNETES_SYNCED,
                    "Kubernetes Services and EndpointSlices not listed yet",
                );
                self.discovery = Some(discovery);
                self.client_backoff = CLIENT_RETRY_MIN;
                tracing::info!(node = %self.node, "watching Kubernetes Services, EndpointSlices and Nodes");
            }
            Err(err) => {
                // Watches already running (a reload named a kubeconfig that does not read yet)
                // go on with the client they have, as a rejected config keeps the previous.
                if self.discovery.is_none() {
                    self.readiness.wait_for(
                        KUBERNETES_SYNCED,
                        "Kubernetes client not built yet (hopwatch_kube_client_errors_total)",
                    );
                }
                self.metrics.cluster.client_failed();
                let wait = self.client_backoff;
                tracing::error!("Kubernetes client not built, trying again in {wait:?}: {err}");
                self.client_retry = Some(tokio::time::Instant::now() + wait);
                self.client_backoff = (wait * 2).min(CLIENT_RETRY_MAX);
            }
        }
    }

    /// Resolves when the stores changed; never without discovery.
    async fn discovery_changed(&mut self) {
        match self.discovery.as_mut() {
            Some(d) => {
                if d.changes.changed().await.is_err() {
                    std::future::pending::<()>().await;
                }
            }
            None => std::future::pending().await,
        }
    }

    /// Applies a reloaded config, or keeps the running one if the new one is invalid.
    async fn reload(&mut self, reloaded: Result<Config, ConfigError>) {
        let config = match reloaded {
            Ok(config) => config,
            Err(err) => {
                tracing::error!("config rejected, the previous one keeps running: {err}");
                self.metrics.reload_failed();
                return;
            }
        };
        if config.listen != self.config.listen {
            tracing::warn!(
                "listen address {} ignored: changing it needs a restart; still listening on {}",
                config.listen,
                self.listening,
            );
        }
        if config.canary.listen != self.canary_listening {
            tracing::warn!(
                "canary.listen {} ignored: changing it needs a restart; still {}",
                show(config.canary.listen),
                show(self.canary_listening),
            );
        }
        self.scheduler.set_max_concurrency(config.max_concurrency);
        // A client that failed to build is tried again at every reload, besides its backoff.
        let restart_watches = self.discovery.is_none()
            || self.client_retry.is_some()
            || cluster::watches_change(self.config.kubernetes.as_ref(), config.kubernetes.as_ref());
        let otlp_changed = config.otlp != self.config.otlp;
        self.config = config;
        self.time_service_hop();
        if restart_watches {
            self.start_discovery().await;
        }
        if otlp_changed {
            if let Some(exporter) = self.otlp.take() {
                exporter.shutdown().await;
            }
            self.start_otlp();
        }
        self.apply_targets().await;
        self.metrics.reload_succeeded(SystemTime::now());
        tracing::info!("config applied: {} targets", self.scheduler.keys().count());
    }

    /// Runs the config's targets and, with Kubernetes, the discovered ones.
    async fn apply_targets(&mut self) {
        let mut all = targets(&self.config);
        let mut plan = cluster::Plan::default();
        if let (Some(discovery), Some(kube)) = (&self.discovery, &self.config.kubernetes) {
            let synced = *discovery.synced.borrow();
            cluster::export_synced(&self.metrics, synced);
            if synced.ready() {
                self.readiness.met(KUBERNETES_SYNCED);
            }
            plan = cluster::plan(discovery, kube, &self.node, self.me.as_ref(), &self.metrics);
        }
        let shadowed = plan.drop_shadowed(&all);
        for key in shadowed.difference(&self.shadowed) {
            tracing::warn!(
                target = %key,
                "a configured target has the key of a discovered one: the configured one is \
                 probed; give it another id to probe both"
            );
        }
        self.shadowed = shadowed;
        self.note_invalid(std::mem::take(&mut plan.invalid));
        // Before the reconcile starts them: their first series carry their namespace.
        self.metrics
            .set_discovered(plan.targets.iter().map(Target::key));
        all.append(&mut plan.targets);
        self.sink.set_denials(std::mem::take(&mut plan.denials));
        self.metrics
            .set_untimed_targets(std::mem::take(&mut plan.untimed));
        self.sink.set_sweep(std::mem::take(&mut plan.sweep));
        self.sink.set_canary(self.config.canary.service.clone());
        let gone = self
            .sink
            .verdicts()
            .set_services(plan.members, plan.cluster_dns);
        for svc in gone {
            self.metrics.cluster.forget_service(&svc);
            self.metrics.canary.forget_service(&svc);
        }
        self.scheduler.reconcile(all).await;
        let verdicts = self.sink.verdicts();
        self.sink.export_verdicts(&verdicts, &verdicts.all());
        drop(verdicts);
        self.metrics
            .set_targets(&count_by_hop(self.scheduler.keys()));
    }
}

/// An optional address as a log line shows it.
fn show(addr: Option<SocketAddr>) -> String {
    addr.map_or_else(|| "off".to_string(), |a| a.to_string())
}

/// How many of `keys` each hop has.
fn count_by_hop<'a>(keys: impl Iterator<Item = &'a TargetKey>) -> BTreeMap<Hop, usize> {
    let mut counts = BTreeMap::new();
    for key in keys {
        *counts.entry(key.hop).or_insert(0) += 1;
    }
    counts
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(names: &[&str]) -> Config {
        let mut text = "listen: 127.0.0.1:0\ndns:\n".to_string();
        for name in names {
            text.push_str(&format!("  - name: {name}\n    server: 127.0.0.1:5353\n"));
            text.push_str("    interval_seconds: 600\n");
        }
        Config::parse(&text, "test.yaml").unwrap_or_else(|err| panic!("{err}"))
    }

    fn ids(agent: &Agent) -> Vec<String> {
        let mut ids: Vec<String> = agent.scheduler.keys().map(|k| k.id.clone()).collect();
        ids.sort();
        ids
    }

    #[test]
    fn outside_a_cluster_the_embedded_default_is_used_as_is() {
        let embedded = Config::parse(config::EMBEDDED_DEFAULT, "embedded").unwrap();
        assert_eq!(default_config(false), Ok(embedded));
    }

    #[test]
    fn in_a_cluster_the_default_probes_names_every_cluster_serves() {
        let config = default_config(true).unwrap();
        assert!(config.kubernetes.is_some(), "discovery is on in a cluster");
        assert!(default_config(false).unwrap().kubernetes.is_none());
        let names: Vec<&str> = config.dns.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["kubernetes.default", "kube-dns.kube-system"]);
        for target in &config.dns {
            assert_eq!(target.id, target.name);
            assert_eq!(target.resolv_conf, PathBuf::from("/etc/resolv.conf"));
            assert_eq!(target.server, None);
            assert!(target.schedule.timeout < target.schedule.interval);
        }
    }

    #[test]
    fn a_result_exports_the_cause_of_every_service_the_canary_judges() {
        use crate::probe::{Detail, Failure};
        use crate::verdict::{Membership, key};
        let metrics = Arc::new(Metrics::new());
        let sink = AgentSink {
            metrics: Arc::clone(&metrics),
            verdicts: Mutex::default(),
            policies: Mutex::default(),
            sweep: Mutex::default(),
            canary: Mutex::default(),
        };
        let member = |id: &str| Membership {
            service_targets: vec![key(Hop::Service, id)],
            ..Membership::default()
        };
        let (canary, web) = (
            ObjKey::new("hopwatch", "canary"),
            ObjKey::new("shop", "web"),
        );
        let members = [(canary.clone(), member("c")), (web, member("w"))];
        sink.verdicts()
            .set_services(BTreeMap::from(members), Vec::new());
        sink.set_canary(Some(canary));
        let failed = Outcome {
            result: Err(Failure::Refused),
            duration: Duration::ZERO,
            detail: Detail::None,
        };
        let cause = |c: &str| {
            format!("hopwatch_path_cause{{cause=\"{c}\",namespace=\"shop\",service=\"web\"}} 1\n")
        };
        sink.record(&key(Hop::Service, "w"), &failed);
        let text = metrics.encode();
        assert!(text.contains(&cause("application")), "{text}");
        assert!(
            text.contains("hopwatch_canary_path_status{broken_hop=\"none\"} 1\n"),
            "{text}"
        );
        sink.record(&key(Hop::Service, "c"), &failed);
        let text = metrics.encode();
        assert!(text.contains(&cause("infrastructure")), "{text}");
        assert!(!text.contains(&cause("application")), "{text}");
        sink.set_canary(None);
        assert!(
            !metrics.encode().contains("hopwatch_path_cause"),
            "no canary, no causes"
        );
    }

    #[test]
    fn counts_targets_per_hop() {
        let keys = [("a", Hop::Dns), ("b", Hop::Dns), ("c", Hop::Pod)].map(|(id, hop)| TargetKey {
            hop,
            id: id.to_string(),
        });
        let counts = count_by_hop(keys.iter());
        assert_eq!(counts, BTreeMap::from([(Hop::Dns, 2), (Hop::Pod, 1)]));
    }

    #[tokio::test(start_paused = true)]
    async fn a_bad_reload_keeps_the_running_config_and_a_good_one_replaces_it() {
        let metrics = Arc::new(Metrics::new());
        let listening = SocketAddr::from(([127, 0, 0, 1], 9808));
        let readiness = Arc::new(Readiness::new());
        let mut agent = Agent::start(config(&["web"]), listening, Arc::clone(&metrics), readiness)
            .await
            .unwrap_or_else(|err| panic!("{err}"));
        assert_eq!(ids(&agent), ["web"]);

        let bad = Config::parse("dns: [", "bad.yaml");
        assert!(bad.is_err());
        agent.reload(bad).await;
        assert_eq!(ids(&agent), ["web"]);
        let text = metrics.encode();
        assert!(
            text.contains("hopwatch_config_reloads_total{result=\"failure\"} 1\n"),
            "{text}"
        );
        assert!(text.contains("hopwatch_targets{hop=\"dns\"} 1\n"), "{text}");

        agent.reload(Ok(config(&["web", "api"]))).await;
        assert_eq!(ids(&agent), ["api", "web"]);
        let text = metrics.encode();
        assert!(
            text.contains("hopwatch_config_reloads_total{result=\"success\"} 1\n"),
            "{text}"
        );
        assert!(text.contains("hopwatch_targets{hop=\"dns\"} 2\n"), "{text}");
        assert!(
            text.contains(
                "hopwatch_probes_total{hop=\"dns\",result=\"success\",target=\"api\"} 0\n"
            )
        );

        agent.reload(Ok(config(&["api"]))).await;
        let text = metrics.encode();
        assert!(
            !text.contains("target=\"web\""),
            "web's series are gone: {text}"
        );
        agent.scheduler.shutdown().await;
    }
}
