//! The only module that names a metric: turns probe outcomes into Prometheus series.
//!
//! Everything is recorded once, into a private [`Registry`]. `/metrics` encodes it as text;
//! an OTLP exporter can walk the same [`Registry::gather`] output. Every series carrying a
//! `target` label is remembered per [`TargetKey`], so [`Metrics::forget`] can drop all of a
//! vanished target's series (prometheus 0.14 only removes a series given its full label set).
//! The metrics, labels and label values are documented in `docs/METRICS.md`.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use prometheus::core::Collector;
use prometheus::proto::MetricFamily;
use prometheus::{
    Gauge, GaugeVec, Histogram, HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

pub mod canary;
pub mod cluster;
mod process;

use crate::probe::dns::{DnsCycle, LookupReport, Mode, QueryRecord, QueryStatus};
use crate::probe::http::{HttpReport, Protocol};
use crate::probe::{Detail, Failure, Hop, Outcome, TargetKey, result_label};

/// The content type of [`Metrics::encode`]'s output: Prometheus text format 0.0.4.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Upper bounds of the schedule lag histogram: 100 µs to 10 s in 1-2.5-5 steps.
const LAG_BUCKETS: [f64; 16] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];

/// Upper bounds of every duration histogram but the lag: CoreDNS's
/// `ExponentialBuckets(0.00025, 2, 16)` (0.25 ms … 8.192 s), extended by two more doublings
/// (16.384 s, 32.768 s) so that lookups which sat out one, two or four 5 s resolver timeouts
/// land in distinct buckets instead of all in `+Inf`.
fn duration_buckets() -> Vec<f64> {
    (0..18).map(|i| 0.00025 * 2f64.powi(i)).collect()
}

/// The metric families that carry a `target` label, so a target's series can be found again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Family {
    Probes,
    ProbeDuration,
    DnsLookups,
    DnsQueries,
    DnsSendErrors,
    DnsDiscardedReplies,
    DnsLookupDuration,
    DnsQueriesPerLookup,
    DnsNxdomainPerLookup,
    DnsAmplification,
    HttpPhase,
    HttpResponses,
    TlsNotAfter,
    TlsVerified,
    HttpProtocol,
}

/// The label sets one target has written, per family.
type Written = HashSet<(Family, Vec<String>)>;

/// Every series hopwatch exports, in one private registry.
pub struct Metrics {
    registry: Registry,
    probes: IntCounterVec,
    probe_duration: HistogramVec,
    dns_lookups: IntCounterVec,
    dns_queries: IntCounterVec,
    dns_send_errors: IntCounterVec,
    dns_discarded_replies: IntCounterVec,
    dns_lookup_duration: HistogramVec,
    dns_queries_per_lookup: IntGaugeVec,
    dns_nxdomain_per_lookup: IntGaugeVec,
    dns_amplification: GaugeVec,
    http_phase: HistogramVec,
    http_responses: IntCounterVec,
    tls_not_after: GaugeVec,
    tls_verified: IntGaugeVec,
    http_protocol: IntGaugeVec,
    targets: IntGaugeVec,
    schedule_lag: Histogram,
    reloads: IntCounterVec,
    last_reload_success: Gauge,
    last_reload_ok: Gauge,
    otlp_exports: IntCounterVec,
    /// Readiness, verdicts and watches: series about the cluster, not about one target.
    pub cluster: cluster::ClusterMetrics,
    /// The canary: causes of broken verdicts, the canary's path, its responder.
    pub canary: canary::CanaryMetrics,
    /// Registered for its side effect: `process_*` series at every gather.
    _process: (),
    /// Held while recording and forgetting, so the two never interleave for one target.
    written: Mutex<HashMap<TargetKey, Written>>,
    /// Hops whose probes are counted but not timed in `hopwatch_probe_duration_seconds`.
    /// Locked only while `written` is held.
    untimed: Mutex<BTreeSet<Hop>>,
    /// Targets counted but not timed, whatever their hop: Service-hop ports this node
    /// connects to every interval without owning them. Locked only while `written` is held.
    untimed_targets: Mutex<BTreeSet<TargetKey>>,
    /// The targets discovered from Kubernetes objects, whose series carry the namespace of
    /// their id; configured ones carry none. Locked only while `written` is held.
    discovered: Mutex<HashSet<TargetKey>>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// Creates and registers every metric. `hopwatch_build_info`, `hopwatch_targets` (0 for each
    /// hop), the lag histogram and both reload results (0) exist from the start.
    pub fn new() -> Metrics {
        let registry = Registry::new();
        let r = Registrar(&registry);
        let build_info = r.int_gauges(
            "hopwatch_build_info",
            "Always 1; the labels name the running hopwatch's version, git revision and rustc.",
            &["version", "revision", "rustversion"],
        );
        build_info
            .with_label_values(&[crate::VERSION, crate::REVISION, crate::RUSTC_VERSION])
            .set(1);
        let metrics = Metrics {
            probes: r.counters(
                "hopwatch_probes_total",
                "Probe attempts by hop, target and result (success or the failure reason).",
                &["hop", "target", "namespace", "result"],
            ),
            probe_duration: r.histograms(
                "hopwatch_probe_duration_seconds",
                "Duration of probe attempts, as the user of the hop would feel it.",
                &["hop", "target", "namespace"],
            ),
            dns_lookups: r.counters(
                "hopwatch_dns_lookups_total",
                "DNS lookups of the name as written (search list) by emulated resolver and result.",
                &["target", "namespace", "server", "flavor", "result"],
            ),
            dns_queries: r.counters(
                "hopwatch_dns_queries_total",
                "Wire queries of DNS lookups (search and fqdn mode) by type, rcode and transport.",
                &["target", "namespace", "server", "mode", "qtype", "rcode", "transport"],
            ),
            dns_send_errors: r.counters(
                "hopwatch_dns_send_errors_total",
                "DNS queries the emulated resolver tried to send but that never reached the wire (rcode SEND_ERROR).",
                &["target", "namespace", "server", "mode", "qtype", "transport"],
            ),
            dns_discarded_replies: r.counters(
                "hopwatch_dns_discarded_replies_total",
                "Datagrams a DNS lookup's sockets read and dropped as its emulated resolver drops them, by reason.",
                &["target", "namespace", "server", "reason"],
            ),
            dns_lookup_duration: r.histograms(
                "hopwatch_dns_lookup_duration_seconds",
                "Duration of DNS lookups as written (search) and as FQDN (fqdn).",
                &["target", "namespace", "server", "mode"],
            ),
            dns_queries_per_lookup: r.int_gauges(
                "hopwatch_dns_queries_per_lookup",
                "Wire queries sent by the last DNS lookup.",
                &["target", "namespace", "server", "mode"],
            ),
            dns_nxdomain_per_lookup: r.int_gauges(
                "hopwatch_dns_nxdomain_per_lookup",
                "NXDOMAIN replies received by the last DNS lookup.",
                &["target", "namespace", "server", "mode"],
            ),
            dns_amplification: r.gauges(
                "hopwatch_dns_amplification_ratio",
                "Wire queries of the search lookup per query of the FQDN lookup, last cycle.",
                &["target", "namespace", "server"],
            ),
            http_phase: r.histograms(
                "hopwatch_http_phase_duration_seconds",
                "Duration of each phase of an edge probe on a fresh connection: dns, connect, tls, ttfb.",
                &["hop", "target", "namespace", "phase"],
            ),
            http_responses: r.counters(
                "hopwatch_http_responses_total",
                "HTTP responses of edge probes by status code, expected or not.",
                &["hop", "target", "namespace", "code"],
            ),
            tls_not_after: r.gauges(
                "hopwatch_tls_cert_not_after_timestamp_seconds",
                "Earliest notAfter (Unix time) in the certificate chain the target presented.",
                &["target", "namespace"],
            ),
            tls_verified: r.int_gauges(
                "hopwatch_tls_cert_verified",
                "1 when the target's certificate chain verified for its host, 0 when not (reported even with verification turned off).",
                &["target", "namespace"],
            ),
            http_protocol: r.int_gauges(
                "hopwatch_http_protocol_info",
                "1 for the protocol the edge probe's last request went over: h2 when TLS negotiated it by ALPN, else http/1.1.",
                &["hop", "target", "namespace", "protocol"],
            ),
            targets: r.int_gauges(
                "hopwatch_targets",
                "Targets being probed, by hop.",
                &["hop"],
            ),
            schedule_lag: r.histogram(
                "hopwatch_schedule_lag_seconds",
                "Actual start of probes, once a concurrency slot is free, minus planned start.",
                LAG_BUCKETS.to_vec(),
            ),
            reloads: r.counters(
                "hopwatch_config_reloads_total",
                "Configuration reloads by result; a failed reload keeps the previous config.",
                &["result"],
            ),
            last_reload_success: r.gauge(
                "hopwatch_config_last_reload_success_timestamp_seconds",
                "Unix time the configuration was last applied, the initial one included.",
            ),
            last_reload_ok: r.gauge(
                "hopwatch_config_last_reload_successful",
                "1 when the last configuration load was applied, 0 when it was rejected and the previous one keeps running.",
            ),
            otlp_exports: r.counters(
                "hopwatch_otlp_exports_total",
                "Pushes of the metrics to the OTLP endpoint by result; a failed push waits for the next one.",
                &["result"],
            ),
            cluster: cluster::ClusterMetrics::new(&r),
            canary: canary::CanaryMetrics::new(&r),
            _process: r.process(),
            written: Mutex::new(HashMap::new()),
            untimed: Mutex::new(BTreeSet::new()),
            untimed_targets: Mutex::new(BTreeSet::new()),
            discovered: Mutex::new(HashSet::new()),
            registry,
        };
        metrics.set_targets(&BTreeMap::new());
        for result in ["success", "failure"] {
            metrics.reloads.with_label_values(&[result]);
        }
        metrics
    }

    /// The registry everything is recorded into, for exporters that walk `gather()`.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// A target begins to be probed: its `result="success"` counter appears at 0, so that
    /// `rate()` and success ratios work before the first failure.
    pub fn start(&self, key: &TargetKey) {
        let mut written = self.lock();
        let namespace = self.namespace(key);
        let mut series = Series(written.entry(key.clone()).or_default());
        let labels = [key.hop.as_str(), key.id.as_str(), namespace, "success"];
        self.probes
            .with_label_values(series.note(Family::Probes, &labels));
    }

    /// Records one probe attempt of `key`.
    pub fn record(&self, key: &TargetKey, outcome: &Outcome) {
        let mut written = self.lock();
        // A DNS probe's duration is its search lookup's, which
        // `hopwatch_dns_lookup_duration_seconds{mode="search"}` has already: not written twice.
        let timed = key.hop != Hop::Dns
            && !self.untimed().contains(&key.hop)
            && !self.untimed_targets().contains(key);
        let t = Labels {
            hop: key.hop.as_str(),
            target: key.id.as_str(),
            namespace: self.namespace(key),
        };
        let mut series = Series(written.entry(key.clone()).or_default());
        if let Detail::Connects(connects) = &outcome.detail {
            // Every connect of a round is one probe; a round with nothing to connect is none.
            for connect in connects {
                let duration = timed.then_some(connect.duration);
                self.record_probe(&mut series, &t, &connect.result, duration);
            }
            return;
        }
        let duration = timed.then_some(outcome.duration);
        self.record_probe(&mut series, &t, &outcome.result, duration);
        match &outcome.detail {
            Detail::Dns(cycle) => self.record_dns(&mut series, &t, cycle),
            Detail::Http(report) => self.record_http(&mut series, &t, report),
            Detail::None | Detail::Connects(_) => {}
        }
    }

    /// The `namespace` label of `key`'s series: its id's first segment when discovered, else
    /// empty, which the exposition leaves out ([`Metrics::gather`]).
    fn namespace<'k>(&self, key: &'k TargetKey) -> &'k str {
        let discovered = self.discovered().contains(key);
        let namespace = discovered.then(|| key.discovered_namespace()).flatten();
        namespace.unwrap_or_default()
    }

    /// Says which targets are discovered from Kubernetes objects (the rest are configured).
    /// A running target whose side changed loses its series, which come back with the new
    /// `namespace` label at its next probe.
    pub fn set_discovered(&self, keys: impl IntoIterator<Item = TargetKey>) {
        let keys: HashSet<TargetKey> = keys.into_iter().collect();
        let changed: Vec<TargetKey> = {
            let written = self.lock();
            let mut discovered = self.discovered();
            let changed = written
                .keys()
                .filter(|k| discovered.contains(*k) != keys.contains(*k))
                .cloned()
                .collect();
            *discovered = keys;
            changed
        };
        for key in &changed {
            self.forget(key);
        }
    }

    fn record_http(&self, series: &mut Series, t: &Labels, report: &HttpReport) {
        let (hop, target, namespace) = (t.hop, t.target, t.namespace);
        for (phase, duration) in report.completed_phases() {
            let labels = [hop, target, namespace, phase.as_str()];
            let histogram = self
                .http_phase
                .with_label_values(series.note(Family::HttpPhase, &labels));
            histogram.observe(duration.as_secs_f64());
        }
        if let Some(code) = report.status {
            let code = code.to_string();
            let labels = [hop, target, namespace, code.as_str()];
            self.http_responses
                .with_label_values(series.note(Family::HttpResponses, &labels))
                .inc();
        }
        if let Some(protocol) = report.protocol {
            self.record_protocol(series, t, protocol);
        }
        if let Some(tls) = &report.tls {
            let not_after = self
                .tls_not_after
                .with_label_values(series.note(Family::TlsNotAfter, &[target, namespace]));
            not_after.set(tls.not_after_earliest as f64);
            let verified = self
                .tls_verified
                .with_label_values(series.note(Family::TlsVerified, &[target, namespace]));
            verified.set(i64::from(tls.verified));
        }
    }

    /// One `protocol` series per target: the one its last request used.
    fn record_protocol(&self, series: &mut Series, t: &Labels, protocol: Protocol) {
        for other in Protocol::ALL.into_iter().filter(|p| *p != protocol) {
            let labels = [t.hop, t.target, t.namespace, other.as_str()];
            if series.drop(Family::HttpProtocol, &labels) {
                let _ = self.http_protocol.remove_label_values(&labels);
            }
        }
        let labels = [t.hop, t.target, t.namespace, protocol.as_str()];
        self.http_protocol
            .with_label_values(series.note(Family::HttpProtocol, &labels))
            .set(1);
    }

    fn record_probe(
        &self,
        series: &mut Series,
        t: &Labels,
        result: &Result<(), Failure>,
        duration: Option<Duration>,
    ) {
        let labels = [t.hop, t.target, t.namespace, result_label(result)];
        self.probes
            .with_label_values(series.note(Family::Probes, &labels))
            .inc();
        let Some(duration) = duration else {
            return;
        };
        let labels = [t.hop, t.target, t.namespace];
        let histogram = self
            .probe_duration
            .with_label_values(series.note(Family::ProbeDuration, &labels));
        histogram.observe(duration.as_secs_f64());
    }

    fn record_dns(&self, series: &mut Series, t: &Labels, cycle: &DnsCycle) {
        let (search, server) = (&cycle.search, cycle.server.as_str());
        let (target, namespace) = (t.target, t.namespace);
        let labels = [
            target,
            namespace,
            server,
            search.flavor.as_str(),
            result_label(&search.result),
        ];
        self.dns_lookups
            .with_label_values(series.note(Family::DnsLookups, &labels))
            .inc();
        let lookup = [target, namespace, server];
        self.record_lookup(series, lookup, search);
        if let Some(fqdn) = &cycle.fqdn {
            self.record_lookup(series, lookup, fqdn);
        }
        // Without a baseline the ratio is unknown: the last known value stays.
        if let Some(ratio) = cycle.amplification() {
            let labels = [target, namespace, server];
            self.dns_amplification
                .with_label_values(series.note(Family::DnsAmplification, &labels))
                .set(ratio);
        }
    }

    /// One lookup; `lookup` is its `target`, `namespace` and `server` labels.
    fn record_lookup(&self, series: &mut Series, lookup: [&str; 3], report: &LookupReport) {
        let [target, namespace, server] = lookup;
        let mode = report.mode.as_str();
        for query in &report.queries {
            self.record_query(series, [target, namespace, server, mode], query);
        }
        for (reason, n) in report.discarded.iter() {
            let labels = [target, namespace, server, reason.as_str()];
            self.dns_discarded_replies
                .with_label_values(series.note(Family::DnsDiscardedReplies, &labels))
                .inc_by(n);
        }
        let labels = [target, namespace, server, mode];
        // The FQDN lookup is the baseline the amplification is counted against; only the
        // lookup as written, the one applications wait for, is timed.
        if report.mode == Mode::Search {
            self.dns_lookup_duration
                .with_label_values(series.note(Family::DnsLookupDuration, &labels))
                .observe(report.duration.as_secs_f64());
        }
        let queries = self
            .dns_queries_per_lookup
            .with_label_values(series.note(Family::DnsQueriesPerLookup, &labels));
        queries.set(count(report.wire_count()));
        let nxdomain = self
            .dns_nxdomain_per_lookup
            .with_label_values(series.note(Family::DnsNxdomainPerLookup, &labels));
        nxdomain.set(count(report.count(QueryStatus::NxDomain)));
    }

    /// One query: a wire query by rcode, or a send that never reached the wire.
    fn record_query(&self, series: &mut Series, labels: [&str; 4], query: &QueryRecord) {
        let [target, namespace, server, mode] = labels;
        let (qtype, transport) = (query.qtype.as_str(), query.transport.as_str());
        if query.status == QueryStatus::SendError {
            let labels = [target, namespace, server, mode, qtype, transport];
            self.dns_send_errors
                .with_label_values(series.note(Family::DnsSendErrors, &labels))
                .inc();
            return;
        }
        let labels = [
            target,
            namespace,
            server,
            mode,
            qtype,
            query.status.as_str(),
            transport,
        ];
        self.dns_queries
            .with_label_values(series.note(Family::DnsQueries, &labels))
            .inc();
    }

    /// Whether probes of `hop` are timed in `hopwatch_probe_duration_seconds` (all are, until
    /// told otherwise). Turned off, the hop's duration series go at once; its counters stay.
    pub fn set_timed(&self, hop: Hop, timed: bool) {
        let mut written = self.lock();
        let mut untimed = self.untimed();
        let changed = if timed {
            untimed.remove(&hop)
        } else {
            untimed.insert(hop)
        };
        if timed || !changed {
            return;
        }
        for (_, series) in written.iter_mut().filter(|(key, _)| key.hop == hop) {
            self.drop_durations(series);
        }
    }

    /// Replaces the targets that are counted but not timed; a target that joins them loses
    /// its duration series now.
    pub fn set_untimed_targets(&self, keys: BTreeSet<TargetKey>) {
        let mut written = self.lock();
        let mut untimed = self.untimed_targets();
        for key in keys.difference(&untimed) {
            if let Some(series) = written.get_mut(key) {
                self.drop_durations(series);
            }
        }
        *untimed = keys;
    }

    fn drop_durations(&self, series: &mut Written) {
        series.retain(|(family, labels)| {
            if *family != Family::ProbeDuration {
                return true;
            }
            let labels: Vec<&str> = labels.iter().map(String::as_str).collect();
            let _ = self.probe_duration.remove_label_values(&labels);
            false
        });
    }

    /// Drops every series `key` ever wrote; other targets' series are untouched.
    pub fn forget(&self, key: &TargetKey) {
        let mut written = self.lock();
        for (family, labels) in written.remove(key).unwrap_or_default() {
            let labels: Vec<&str> = labels.iter().map(String::as_str).collect();
            // An error only means the series is already gone, which is the goal.
            let _ = self.remove(family, &labels);
        }
    }

    fn remove(&self, family: Family, labels: &[&str]) -> prometheus::Result<()> {
        match family {
            Family::Probes => self.probes.remove_label_values(labels),
            Family::ProbeDuration => self.probe_duration.remove_label_values(labels),
            Family::DnsLookups => self.dns_lookups.remove_label_values(labels),
            Family::DnsQueries => self.dns_queries.remove_label_values(labels),
            Family::DnsSendErrors => self.dns_send_errors.remove_label_values(labels),
            Family::DnsDiscardedReplies => self.dns_discarded_replies.remove_label_values(labels),
            Family::DnsLookupDuration => self.dns_lookup_duration.remove_label_values(labels),
            Family::DnsQueriesPerLookup => self.dns_queries_per_lookup.remove_label_values(labels),
            Family::DnsNxdomainPerLookup => {
                self.dns_nxdomain_per_lookup.remove_label_values(labels)
            }
            Family::DnsAmplification => self.dns_amplification.remove_label_values(labels),
            Family::HttpPhase => self.http_phase.remove_label_values(labels),
            Family::HttpResponses => self.http_responses.remove_label_values(labels),
            Family::TlsNotAfter => self.tls_not_after.remove_label_values(labels),
            Family::TlsVerified => self.tls_verified.remove_label_values(labels),
            Family::HttpProtocol => self.http_protocol.remove_label_values(labels),
        }
    }

    /// Sets `hopwatch_targets` for every hop; hops missing from `counts` are set to 0.
    pub fn set_targets(&self, counts: &BTreeMap<Hop, usize>) {
        for hop in Hop::ALL {
            let n = counts.get(&hop).copied().unwrap_or(0);
            self.targets
                .with_label_values(&[hop.as_str()])
                .set(count(n));
        }
    }

    /// Observes how late a probe started: actual start (permit in hand) minus planned start.
    pub fn observe_lag(&self, lag: Duration) {
        self.schedule_lag.observe(lag.as_secs_f64());
    }

    /// The initial configuration was applied at `at`.
    pub fn config_applied(&self, at: SystemTime) {
        self.last_reload_success.set(unix_seconds(at));
        self.last_reload_ok.set(1.0);
    }

    /// A reloaded configuration was applied at `at`.
    pub fn reload_succeeded(&self, at: SystemTime) {
        self.reloads.with_label_values(&["success"]).inc();
        self.config_applied(at);
    }

    /// A reloaded configuration was rejected; the previous one keeps running.
    pub fn reload_failed(&self) {
        self.reloads.with_label_values(&["failure"]).inc();
        self.last_reload_ok.set(0.0);
    }

    /// The OTLP exporter started: both of its results exist from now on, at 0.
    pub fn otlp_started(&self) {
        for result in ["success", "failure"] {
            self.otlp_exports.with_label_values(&[result]);
        }
    }

    /// A push to the OTLP endpoint was accepted (2xx).
    pub fn otlp_export_succeeded(&self) {
        self.otlp_exports.with_label_values(&["success"]).inc();
    }

    /// A push to the OTLP endpoint failed: no connection, TLS, timeout or a non-2xx reply.
    pub fn otlp_export_failed(&self) {
        self.otlp_exports.with_label_values(&["failure"]).inc();
    }

    /// Every series, for exporters: the registry's, with the labels whose value is empty left
    /// out, as Prometheus reads them (a configured target's `namespace`).
    pub fn gather(&self) -> Vec<MetricFamily> {
        let mut families = self.registry.gather();
        for metric in families.iter_mut().flat_map(|f| f.mut_metric()) {
            let labels = metric.take_label();
            metric.set_label(
                labels
                    .into_iter()
                    .filter(|l| !l.value().is_empty())
                    .collect(),
            );
        }
        families
    }

    /// Every series in Prometheus text format 0.0.4 ([`CONTENT_TYPE`]).
    pub fn encode(&self) -> String {
        let mut text = String::new();
        if let Err(err) = TextEncoder::new().encode_utf8(&self.gather(), &mut text) {
            tracing::error!("cannot encode metrics: {err}");
        }
        text
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<TargetKey, Written>> {
        // A panic elsewhere while holding the lock leaves the map consistent enough to go on.
        self.written.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn untimed(&self) -> MutexGuard<'_, BTreeSet<Hop>> {
        self.untimed.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn untimed_targets(&self) -> MutexGuard<'_, BTreeSet<TargetKey>> {
        self.untimed_targets
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn discovered(&self) -> MutexGuard<'_, HashSet<TargetKey>> {
        self.discovered
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

/// The labels every series of one target has.
struct Labels<'a> {
    hop: &'a str,
    target: &'a str,
    /// Empty for a configured target.
    namespace: &'a str,
}

/// The series of one target being written, remembered for [`Metrics::forget`].
struct Series<'a>(&'a mut Written);

impl Series<'_> {
    /// Remembers that `family` got a series with `labels`, and hands the labels back.
    fn note<'l>(&mut self, family: Family, labels: &'l [&'l str]) -> &'l [&'l str] {
        let owned = (family, labels.iter().map(|l| l.to_string()).collect());
        self.0.insert(owned);
        labels
    }

    /// Forgets `family`'s series with `labels`; whether it had been written.
    fn drop(&mut self, family: Family, labels: &[&str]) -> bool {
        let owned = (family, labels.iter().map(|l| l.to_string()).collect());
        self.0.remove(&owned)
    }
}

fn count(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn unix_seconds(at: SystemTime) -> f64 {
    at.duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// Creates metrics and registers them. Names and label names are constants, so a failure is
/// a bug, caught by every test that builds a [`Metrics`].
struct Registrar<'a>(&'a Registry);

impl Registrar<'_> {
    fn register<C: Collector + Clone + 'static>(&self, collector: prometheus::Result<C>) -> C {
        let collector = collector.expect("metric definitions are constant and valid");
        let registered = self.0.register(Box::new(collector.clone()));
        registered.expect("metric names are unique");
        collector
    }

    fn counters(&self, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
        self.register(IntCounterVec::new(Opts::new(name, help), labels))
    }

    fn int_gauges(&self, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
        self.register(IntGaugeVec::new(Opts::new(name, help), labels))
    }

    fn gauges(&self, name: &str, help: &str, labels: &[&str]) -> GaugeVec {
        self.register(GaugeVec::new(Opts::new(name, help), labels))
    }

    fn gauge(&self, name: &str, help: &str) -> Gauge {
        self.register(Gauge::with_opts(Opts::new(name, help)))
    }

    fn histograms(&self, name: &str, help: &str, labels: &[&str]) -> HistogramVec {
        let opts = HistogramOpts::new(name, help).buckets(duration_buckets());
        self.register(HistogramVec::new(opts, labels))
    }

    /// Registers the `process_*` collector, started now: the registry is made at start-up.
    fn process(&self) {
        let started = unix_seconds(SystemTime::now());
        match process::ProcessCollector::new(started) {
            Ok(collector) => {
                let registered = self.0.register(Box::new(collector));
                registered.expect("metric names are unique");
            }
            Err(err) => tracing::warn!("no process_* metrics: {err}"),
        }
    }

    fn histogram(&self, name: &str, help: &str, buckets: Vec<f64>) -> Histogram {
        self.register(Histogram::with_opts(
            HistogramOpts::new(name, help).buckets(buckets),
        ))
    }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use super::*;
    use crate::probe::dns::{Discard, Discards, Flavor, Mode, Qtype, Transport};
    use crate::probe::{Failure, tcp};

    fn query(qname: &str, qtype: Qtype, status: QueryStatus, millis: u64) -> QueryRecord {
        QueryRecord {
            qname: qname.to_string(),
            qtype,
            transport: Transport::Udp,
            server: SocketAddr::from(([10, 96, 0, 10], 53)),
            status,
            duration: Duration::from_millis(millis),
            answers: u16::from(status == QueryStatus::NoError && qtype == Qtype::A),
            truncated: false,
        }
    }

    fn report(mode: Mode, queries: Vec<QueryRecord>, millis: u64) -> LookupReport {
        LookupReport {
            name: "web".to_string(),
            mode,
            flavor: Flavor::Glibc,
            result: Ok(()),
            addresses: vec![[192, 0, 2, 10].into()],
            duration: Duration::from_millis(millis),
            queries,
            discarded: Discards::default(),
        }
    }

    /// `web` through a two-entry search list: two NXDOMAIN steps, then the answer; then the FQDN.
    fn dns_outcome() -> Outcome {
        let nx = QueryStatus::NxDomain;
        let ok = QueryStatus::NoError;
        let search = vec![
            query("web.default.svc.cluster.local.", Qtype::A, nx, 1),
            query("web.default.svc.cluster.local.", Qtype::Aaaa, nx, 1),
            query("web.svc.cluster.local.", Qtype::A, nx, 1),
            query("web.svc.cluster.local.", Qtype::Aaaa, nx, 1),
            query("web.", Qtype::A, ok, 1),
            query("web.", Qtype::Aaaa, ok, 1),
        ];
        let fqdn = vec![
            query("web.", Qtype::A, ok, 1),
            query("web.", Qtype::Aaaa, ok, 1),
        ];
        let cycle = DnsCycle {
            server: "resolv.conf".to_string(),
            search: report(Mode::Search, search, 3),
            fqdn: Some(report(Mode::Fqdn, fqdn, 1)),
        };
        Outcome {
            result: Ok(()),
            duration: Duration::from_millis(3),
            detail: Detail::Dns(cycle),
        }
    }

    fn key(id: &str) -> TargetKey {
        TargetKey {
            hop: Hop::Dns,
            id: id.to_string(),
        }
    }

    fn lines_with(text: &str, needle: &str) -> Vec<String> {
        text.lines()
            .filter(|l| l.contains(needle))
            .map(str::to_string)
            .collect()
    }

    #[test]
    fn exposition_of_one_dns_cycle() {
        let metrics = Metrics::new();
        metrics.start(&key("web"));
        metrics.record(&key("web"), &dns_outcome());
        metrics.set_targets(&BTreeMap::from([(Hop::Dns, 1)]));
        metrics.observe_lag(Duration::from_micros(300));
        let golden = GOLDEN
            .replace("{VERSION}", crate::VERSION)
            .replace("{REVISION}", crate::REVISION)
            .replace("{RUSTC}", crate::RUSTC_VERSION);
        // The process_* series change from run to run; their own tests check them.
        let text: String = metrics
            .encode()
            .lines()
            .filter(|l| !l.starts_with("process_") && !l.contains(" process_"))
            .map(|l| format!("{l}\n"))
            .collect();
        assert_eq!(text, golden);
    }

    #[test]
    fn forget_drops_every_series_of_one_target_only() {
        let metrics = Metrics::new();
        for id in ["a", "b"] {
            metrics.start(&key(id));
            metrics.record(&key(id), &dns_outcome());
        }
        // Discovered targets, whose series carry a namespace, too.
        let (c, d) = (
            ingress("shop/front/c.example.com/"),
            ingress("shop/front/d.example.com/"),
        );
        metrics.set_discovered([c.clone(), d.clone()]);
        for key in [&c, &d] {
            metrics.start(key);
            metrics.record(key, &ingress_outcome());
        }
        let timeout = Outcome {
            result: Err(Failure::Timeout),
            duration: Duration::from_secs(5),
            detail: Detail::None,
        };
        metrics.record(&key("a"), &timeout);
        let before = metrics.encode();
        assert!(lines_with(&before, "target=\"a\"").len() > 20, "{before}");

        let c_lines = lines_with(&before, "target=\"shop/front/c.example.com/\"");
        assert!(c_lines.len() > 30, "{before}");
        assert!(c_lines.iter().all(|l| l.contains("namespace=\"shop\"")));

        metrics.forget(&key("a"));
        metrics.forget(&c);

        let after = metrics.encode();
        assert_eq!(lines_with(&after, "target=\"a\""), Vec::<String>::new());
        assert_eq!(
            lines_with(&after, "target=\"shop/front/c.example.com/\""),
            Vec::<String>::new()
        );
        for other in ["target=\"b\"", "target=\"shop/front/d.example.com/\""] {
            assert_eq!(lines_with(&after, other), lines_with(&before, other));
        }
    }

    /// An Ingress request that got a 200 over TLS, its certificate verified.
    fn ingress_outcome() -> Outcome {
        let mut report = crate::probe::http::HttpReport::for_tests("https://shop.example.com/");
        report.status = Some(200);
        report.protocol = Some(Protocol::Http2);
        report.phases = vec![(crate::probe::http::Phase::Connect, Duration::from_millis(1))];
        report.tls = Some(crate::probe::http::TlsInfo {
            not_after_earliest: 1_800_000_000,
            not_before: 1_700_000_000,
            verified: true,
            verify_error: None,
            sans: vec!["shop.example.com".into()],
            protocol: Some("TLSv1.3".into()),
        });
        report.outcome()
    }

    fn ingress(id: &str) -> TargetKey {
        TargetKey {
            hop: Hop::Ingress,
            id: id.to_string(),
        }
    }

    #[test]
    fn the_protocol_series_follows_the_last_request_and_goes_with_the_target() {
        let metrics = Metrics::new();
        let key = ingress("web");
        metrics.record(&key, &ingress_outcome());
        let series = |text: &str| lines_with(text, "hopwatch_http_protocol_info{");
        assert_eq!(
            series(&metrics.encode()),
            ["hopwatch_http_protocol_info{hop=\"ingress\",protocol=\"h2\",target=\"web\"} 1"]
        );
        let mut outcome = ingress_outcome();
        if let Detail::Http(report) = &mut outcome.detail {
            report.protocol = Some(Protocol::Http1);
        }
        metrics.record(&key, &outcome);
        assert_eq!(
            series(&metrics.encode()),
            ["hopwatch_http_protocol_info{hop=\"ingress\",protocol=\"http/1.1\",target=\"web\"} 1"]
        );
        metrics.forget(&key);
        assert_eq!(series(&metrics.encode()), Vec::<String>::new());
    }

    #[test]
    fn discovered_targets_carry_their_namespace_and_configured_ones_none() {
        let metrics = Metrics::new();
        let discovered = ingress("shop/front/shop.example.com/");
        // A configured id with a `/` in it: not a namespace.
        let configured = ingress("https/shop.example.com/");
        let service = TargetKey {
            hop: Hop::Service,
            id: "shop/web:80".into(),
        };
        metrics.set_discovered([discovered.clone(), service.clone()]);
        for key in [&discovered, &configured] {
            metrics.start(key);
            metrics.record(key, &ingress_outcome());
        }
        metrics.record(&key("kubernetes.default@kube-dns"), &dns_outcome());
        metrics.record(
            &service,
            &Outcome {
                result: Ok(()),
                duration: Duration::from_millis(1),
                detail: Detail::Connects(vec![tcp::Connect {
                    result: Err(Failure::Refused),
                    duration: Duration::from_millis(1),
                }]),
            },
        );
        let text = metrics.encode();
        let of = |id: &str| lines_with(&text, &format!("target=\"{id}\""));
        let with_ns = |id: &str| {
            of(id)
                .into_iter()
                .filter(|l| l.contains("namespace=\"shop\""))
                .count()
        };
        let families = |id: &str| {
            let mut names: Vec<String> = of(id)
                .iter()
                .map(|l| l.split(['{', ' ']).next().unwrap_or_default().to_string())
                .collect();
            names.dedup();
            names
        };
        assert_eq!(
            families("shop/front/shop.example.com/"),
            [
                "hopwatch_http_phase_duration_seconds_bucket",
                "hopwatch_http_phase_duration_seconds_sum",
                "hopwatch_http_phase_duration_seconds_count",
                "hopwatch_http_protocol_info",
                "hopwatch_http_responses_total",
                "hopwatch_probe_duration_seconds_bucket",
                "hopwatch_probe_duration_seconds_sum",
                "hopwatch_probe_duration_seconds_count",
                "hopwatch_probes_total",
                "hopwatch_tls_cert_not_after_timestamp_seconds",
                "hopwatch_tls_cert_verified",
            ]
        );
        let discovered_lines = of("shop/front/shop.example.com/").len();
        assert_eq!(with_ns("shop/front/shop.example.com/"), discovered_lines);
        assert_eq!(of("https/shop.example.com/").len(), discovered_lines);
        assert!(!text.contains("namespace=\"https\""), "{text}");
        assert!(
            !text.contains("namespace=\"\""),
            "an empty label is left out: {text}"
        );
        assert!(
            text.contains(
                "hopwatch_probes_total{hop=\"service\",namespace=\"shop\",result=\"refused\",target=\"shop/web:80\"} 1\n"
            ),
            "{text}"
        );
        let cluster_dns = of("kubernetes.default@kube-dns");
        assert!(cluster_dns.len() > 30 && cluster_dns.iter().all(|l| !l.contains("namespace=")));
    }

    #[test]
    fn a_target_that_changes_side_loses_the_series_of_its_old_namespace() {
        let metrics = Metrics::new();
        let target = ingress("shop/front/shop.example.com/");
        metrics.set_discovered([target.clone()]);
        metrics.record(&target, &ingress_outcome());
        assert!(metrics.encode().contains("namespace=\"shop\""));
        // A configured target takes its key: the discovered one's series go.
        metrics.set_discovered([]);
        assert!(!metrics.encode().contains("target=\"shop/front"));
        metrics.record(&target, &ingress_outcome());
        let text = metrics.encode();
        assert!(!text.contains("namespace="), "{text}");
        assert_eq!(
            lines_with(&text, "hopwatch_probes_total{"),
            [
                "hopwatch_probes_total{hop=\"ingress\",result=\"success\",target=\"shop/front/shop.example.com/\"} 1"
            ]
        );
    }

    #[test]
    fn an_untimed_hop_keeps_its_counters_and_loses_its_durations() {
        let metrics = Metrics::new();
        let (service, pod) = (
            TargetKey {
                hop: Hop::Service,
                id: "shop/web:80".into(),
            },
            TargetKey {
                hop: Hop::Pod,
                id: "shop/web:80".into(),
            },
        );
        let round = Outcome {
            result: Ok(()),
            duration: Duration::from_millis(1),
            detail: Detail::Connects(vec![tcp::Connect {
                result: Ok(()),
                duration: Duration::from_millis(1),
            }]),
        };
        let durations = |hop: &str| {
            let text = metrics.encode();
            lines_with(
                &text,
                &format!("hopwatch_probe_duration_seconds_count{{hop=\"{hop}\""),
            )
        };
        let successes = |hop: &str| {
            let text = metrics.encode();
            lines_with(
                &text,
                &format!("hopwatch_probes_total{{hop=\"{hop}\",result=\"success\""),
            )
        };
        for key in [&service, &pod] {
            metrics.record(key, &round);
        }
        assert_eq!(durations("service").len(), 1);

        metrics.set_timed(Hop::Service, false);
        assert_eq!(durations("service"), Vec::<String>::new(), "gone at once");
        metrics.record(&service, &round);
        metrics.record(&pod, &round);
        assert_eq!(durations("service"), Vec::<String>::new());
        assert_eq!(successes("service").len(), 1);
        assert!(
            successes("service")[0].ends_with(" 2"),
            "{:?}",
            successes("service")
        );
        assert!(
            durations("pod")[0].ends_with(" 2"),
            "{:?}",
            durations("pod")
        );

        metrics.set_timed(Hop::Service, true);
        metrics.record(&service, &round);
        assert!(
            durations("service")[0].ends_with(" 1"),
            "{:?}",
            durations("service")
        );
        metrics.forget(&service);
        assert_eq!(durations("service"), Vec::<String>::new());
    }

    #[test]
    fn a_forgotten_target_that_returns_starts_from_zero() {
        let metrics = Metrics::new();
        metrics.record(&key("a"), &dns_outcome());
        metrics.forget(&key("a"));
        metrics.start(&key("a"));
        let text = metrics.encode();
        let probes = lines_with(&text, "hopwatch_probes_total{");
        assert_eq!(
            probes,
            ["hopwatch_probes_total{hop=\"dns\",result=\"success\",target=\"a\"} 0"]
        );
    }

    #[test]
    fn reloads_and_targets_exist_before_anything_happens() {
        let metrics = Metrics::new();
        metrics.reload_failed();
        assert!(
            metrics
                .encode()
                .contains("hopwatch_config_last_reload_successful 0\n")
        );
        metrics.reload_succeeded(UNIX_EPOCH + Duration::from_secs(1_700_000_000));
        let text = metrics.encode();
        assert!(
            text.contains("hopwatch_config_reloads_total{result=\"failure\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("hopwatch_config_reloads_total{result=\"success\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("hopwatch_config_last_reload_success_timestamp_seconds 1700000000\n")
        );
        assert!(
            text.contains("hopwatch_config_last_reload_successful 1\n"),
            "{text}"
        );
        for hop in Hop::ALL {
            assert!(
                text.contains(&format!("hopwatch_targets{{hop=\"{hop}\"}} 0\n")),
                "{text}"
            );
        }
    }

    #[test]
    fn duration_buckets_separate_resolver_timeouts() {
        let buckets = duration_buckets();
        assert_eq!(buckets.len(), 18);
        assert_eq!(buckets[0], 0.00025);
        assert_eq!(buckets[15], 8.192);
        assert_eq!(buckets[17], 32.768);
        let bucket_of = |s: f64| buckets.iter().position(|&b| s <= b);
        assert_eq!(
            [bucket_of(5.0), bucket_of(10.0), bucket_of(20.0)],
            [Some(15), Some(16), Some(17)]
        );
    }

    /// Every variant, by an exhaustive match: a new failure reason fails to compile here until
    /// it is added, and then must be documented.
    fn documented_failure(failure: Failure) -> &'static str {
        match failure {
            Failure::Timeout
            | Failure::Nxdomain
            | Failure::Nodata
            | Failure::NoAddress
            | Failure::Servfail
            | Failure::Refused
            | Failure::DnsError
            | Failure::Unreachable
            | Failure::Config
            | Failure::Prohibited
            | Failure::ConnectError
            | Failure::DnsMismatch
            | Failure::TlsExpired
            | Failure::TlsNotYetValid
            | Failure::TlsUnknownCa
            | Failure::TlsHostnameMismatch
            | Failure::TlsHandshake
            | Failure::HttpStatus
            | Failure::HttpError
            | Failure::HttpBodyMismatch
            | Failure::HttpTooManyRedirects
            | Failure::PolicyDenied
            | Failure::Unknown => failure.as_str(),
        }
    }

    /// The pair against a closed port: the A left and came back ICMP port unreachable, the
    /// AAAA's send failed.
    fn send_error_outcome() -> Outcome {
        let search = vec![
            query("web.", Qtype::A, QueryStatus::Unreachable, 0),
            query("web.", Qtype::Aaaa, QueryStatus::SendError, 0),
        ];
        let cycle = DnsCycle {
            server: "resolv.conf".to_string(),
            search: report(Mode::Search, search, 0),
            fqdn: None,
        };
        Outcome {
            result: Err(Failure::Unreachable),
            duration: Duration::ZERO,
            detail: Detail::Dns(cycle),
        }
    }

    #[test]
    fn a_query_that_never_left_is_a_send_error_not_a_wire_query() {
        let metrics = Metrics::new();
        metrics.record(&key("web"), &send_error_outcome());
        let text = metrics.encode();
        let line = |prefix: &str| {
            text.lines()
                .filter(|l| l.starts_with(prefix))
                .map(str::to_string)
                .collect::<Vec<_>>()
        };
        assert_eq!(
            line("hopwatch_dns_send_errors_total{"),
            [
                "hopwatch_dns_send_errors_total{mode=\"search\",qtype=\"AAAA\",server=\"resolv.conf\",target=\"web\",transport=\"udp\"} 1"
            ]
        );
        assert_eq!(
            line("hopwatch_dns_queries_total{"),
            [
                "hopwatch_dns_queries_total{mode=\"search\",qtype=\"A\",rcode=\"UNREACHABLE\",server=\"resolv.conf\",target=\"web\",transport=\"udp\"} 1"
            ]
        );
        assert_eq!(
            line("hopwatch_dns_queries_per_lookup{"),
            [
                "hopwatch_dns_queries_per_lookup{mode=\"search\",server=\"resolv.conf\",target=\"web\"} 1"
            ]
        );
        metrics.forget(&key("web"));
        assert!(!metrics.encode().contains("hopwatch_dns_send_errors_total{"));
    }

    /// [`dns_outcome`] whose lookups each read a forged reply and two datagrams of garbage.
    fn discarding_outcome() -> Outcome {
        let mut outcome = dns_outcome();
        if let Detail::Dns(cycle) = &mut outcome.detail {
            let mut discarded = Discards::default();
            for reason in [Discard::IdMismatch, Discard::Malformed, Discard::Malformed] {
                discarded.add(reason);
            }
            cycle.search.discarded = discarded;
            if let Some(fqdn) = &mut cycle.fqdn {
                fqdn.discarded = discarded;
            }
        }
        outcome
    }

    #[test]
    fn discarded_replies_are_counted_per_target_and_reason_and_go_with_the_target() {
        let metrics = Metrics::new();
        metrics.record(&key("web"), &discarding_outcome());
        metrics.record(&key("web"), &discarding_outcome());
        metrics.record(&key("other"), &dns_outcome());
        let text = metrics.encode();
        assert_eq!(
            lines_with(&text, "hopwatch_dns_discarded_replies_total{"),
            [
                "hopwatch_dns_discarded_replies_total{reason=\"id_mismatch\",server=\"resolv.conf\",target=\"web\"} 4",
                "hopwatch_dns_discarded_replies_total{reason=\"malformed\",server=\"resolv.conf\",target=\"web\"} 8",
            ]
        );
        metrics.forget(&key("web"));
        assert!(
            !metrics
                .encode()
                .contains("hopwatch_dns_discarded_replies_total{")
        );
    }

    #[test]
    fn every_metric_and_label_value_is_documented() {
        let docs = include_str!("../../docs/METRICS.md");
        let metrics = Metrics::new();
        metrics.record(&key("web"), &discarding_outcome());
        metrics.record(&key("closed"), &send_error_outcome());
        for family in metrics.registry().gather() {
            assert!(
                docs.contains(&format!("| `{}` |", family.name())),
                "{}",
                family.name()
            );
        }
        let values = Failure::ALL.map(documented_failure);
        for value in values
            .iter()
            .chain(QueryStatus::ALL.map(QueryStatus::as_str).iter())
            .chain(Discard::ALL.map(Discard::as_str).iter())
        {
            assert!(
                docs.contains(&format!("| `{value}` |")),
                "{value} is not in docs/METRICS.md"
            );
        }
    }

    const GOLDEN: &str = r#"# HELP hopwatch_build_info Always 1; the labels name the running hopwatch's version, git revision and rustc.
# TYPE hopwatch_build_info gauge
hopwatch_build_info{revision="{REVISION}",rustversion="{RUSTC}",version="{VERSION}"} 1
# HELP hopwatch_config_last_reload_success_timestamp_seconds Unix time the configuration was last applied, the initial one included.
# TYPE hopwatch_config_last_reload_success_timestamp_seconds gauge
hopwatch_config_last_reload_success_timestamp_seconds 0
# HELP hopwatch_config_last_reload_successful 1 when the last configuration load was applied, 0 when it was rejected and the previous one keeps running.
# TYPE hopwatch_config_last_reload_successful gauge
hopwatch_config_last_reload_successful 0
# HELP hopwatch_config_reloads_total Configuration reloads by result; a failed reload keeps the previous config.
# TYPE hopwatch_config_reloads_total counter
hopwatch_config_reloads_total{result="failure"} 0
hopwatch_config_reloads_total{result="success"} 0
# HELP hopwatch_dns_amplification_ratio Wire queries of the search lookup per query of the FQDN lookup, last cycle.
# TYPE hopwatch_dns_amplification_ratio gauge
hopwatch_dns_amplification_ratio{server="resolv.conf",target="web"} 3
# HELP hopwatch_dns_lookup_duration_seconds Duration of DNS lookups as written (search) and as FQDN (fqdn).
# TYPE hopwatch_dns_lookup_duration_seconds histogram
hopwatch_dns_lookup_duration_seconds_bucket{mode="search",server="resolv.conf",target="web",le="0.00025"} 0
hopwatch_dns_lookup_duration_seconds_bucket{mode="search",server="resolv.conf",target="web",le="0.0005"} 0
hopwatch_dns_lookup_duration_seconds_bucket{mode="search",server="resolv.conf",target="web",le="0.001"} 0
hopwatch_dns_lookup_duration_seconds_bucket{mode="search",server="resolv.conf",target="web",le="0.002"} 0
hopwatch_dns_lookup_duration_seconds_bucket{mode="search",server="resolv.conf",target="web",le="0.004"} 1
hopwatch_dns_lookup_duration_seconds_bucket{mode="search",server="resolv.conf",target="web",le="0.008"} 1
hopwatch_dns_lookup_duration_seconds_bucket{mode="search",server="resolv.conf",target="web",le="0.016"} 1
hopwatch_dns_lookup_duration_seconds_bucket{mode="search",server="resolv.conf",target="web",le="0.032"} 1
hopwatch_dns_lookup_duration_seconds_bucket{mode="search",server="resolv.conf",target="web",le="0.064"} 1
hopwatch_dns_lookup_duration_seconds_bucket{mode="search",server="resolv.conf",target="web",le="0.128"} 1
hopwatch_dns_lookup_duration_seconds_bucket{mode="search",server="resolv.conf",target="web",le="0.256"} 1
hopwatch_dns_lookup_duration_seconds_bucket{mode="search",server="resolv.conf",target="web",le="0.512"} 1
hopwatch_dns_lookup_duration_seconds_bucket{mode="search",server="resolv.conf",target="web",le="1.024"} 1
hopwatch_dns_lookup_duration_seconds_bucket{mode="search",server="resolv.conf",target="web",le="2.048"} 1
hopwatch_dns_lookup_duration_seconds_bucket{mode="search",server="resolv.conf",target="web",le="4.096"} 1
hopwatch_dns_lookup_duration_seconds_bucket{mode="search",server="resolv.conf",target="web",le="8.192"} 1
hopwatch_dns_lookup_duration_seconds_bucket{mode="search",server="resolv.conf",target="web",le="16.384"} 1
hopwatch_dns_lookup_duration_seconds_bucket{mode="search",server="resolv.conf",target="web",le="32.768"} 1
hopwatch_dns_lookup_duration_seconds_bucket{mode="search",server="resolv.conf",target="web",le="+Inf"} 1
hopwatch_dns_lookup_duration_seconds_sum{mode="search",server="resolv.conf",target="web"} 0.003
hopwatch_dns_lookup_duration_seconds_count{mode="search",server="resolv.conf",target="web"} 1
# HELP hopwatch_dns_lookups_total DNS lookups of the name as written (search list) by emulated resolver and result.
# TYPE hopwatch_dns_lookups_total counter
hopwatch_dns_lookups_total{flavor="glibc",result="success",server="resolv.conf",target="web"} 1
# HELP hopwatch_dns_nxdomain_per_lookup NXDOMAIN replies received by the last DNS lookup.
# TYPE hopwatch_dns_nxdomain_per_lookup gauge
hopwatch_dns_nxdomain_per_lookup{mode="fqdn",server="resolv.conf",target="web"} 0
hopwatch_dns_nxdomain_per_lookup{mode="search",server="resolv.conf",target="web"} 4
# HELP hopwatch_dns_queries_per_lookup Wire queries sent by the last DNS lookup.
# TYPE hopwatch_dns_queries_per_lookup gauge
hopwatch_dns_queries_per_lookup{mode="fqdn",server="resolv.conf",target="web"} 2
hopwatch_dns_queries_per_lookup{mode="search",server="resolv.conf",target="web"} 6
# HELP hopwatch_dns_queries_total Wire queries of DNS lookups (search and fqdn mode) by type, rcode and transport.
# TYPE hopwatch_dns_queries_total counter
hopwatch_dns_queries_total{mode="fqdn",qtype="A",rcode="NOERROR",server="resolv.conf",target="web",transport="udp"} 1
hopwatch_dns_queries_total{mode="fqdn",qtype="AAAA",rcode="NOERROR",server="resolv.conf",target="web",transport="udp"} 1
hopwatch_dns_queries_total{mode="search",qtype="A",rcode="NOERROR",server="resolv.conf",target="web",transport="udp"} 1
hopwatch_dns_queries_total{mode="search",qtype="A",rcode="NXDOMAIN",server="resolv.conf",target="web",transport="udp"} 2
hopwatch_dns_queries_total{mode="search",qtype="AAAA",rcode="NOERROR",server="resolv.conf",target="web",transport="udp"} 1
hopwatch_dns_queries_total{mode="search",qtype="AAAA",rcode="NXDOMAIN",server="resolv.conf",target="web",transport="udp"} 2
# HELP hopwatch_invalid_annotations Annotation values of selected Ingresses this agent could not parse (the log says why): a bad hopwatch.io/expected-addresses leaves the load-balancer hop unknown, a bad override (path, expected-status, headers) the configured request.
# TYPE hopwatch_invalid_annotations gauge
hopwatch_invalid_annotations 0
# HELP hopwatch_kube_client_errors_total Failed attempts to build the Kubernetes client (kubeconfig or in-cluster config); each is tried again with backoff.
# TYPE hopwatch_kube_client_errors_total counter
hopwatch_kube_client_errors_total 0
# HELP hopwatch_kube_synced 1 once the resource has been listed completely at least once.
# TYPE hopwatch_kube_synced gauge
hopwatch_kube_synced{resource="endpointslices"} 0
hopwatch_kube_synced{resource="ingresses"} 0
hopwatch_kube_synced{resource="namespaces"} 0
hopwatch_kube_synced{resource="networkpolicies"} 0
hopwatch_kube_synced{resource="nodes"} 0
hopwatch_kube_synced{resource="services"} 0
# HELP hopwatch_kube_watch_restarts_total Kubernetes watch failures after which the watch was re-established with backoff.
# TYPE hopwatch_kube_watch_restarts_total counter
hopwatch_kube_watch_restarts_total{resource="endpointslices"} 0
hopwatch_kube_watch_restarts_total{resource="ingresses"} 0
hopwatch_kube_watch_restarts_total{resource="namespaces"} 0
hopwatch_kube_watch_restarts_total{resource="networkpolicies"} 0
hopwatch_kube_watch_restarts_total{resource="nodes"} 0
hopwatch_kube_watch_restarts_total{resource="services"} 0
# HELP hopwatch_probes_total Probe attempts by hop, target and result (success or the failure reason).
# TYPE hopwatch_probes_total counter
hopwatch_probes_total{hop="dns",result="success",target="web"} 1
# HELP hopwatch_runtime_alive_tasks Tasks alive in the agent's async runtime.
# TYPE hopwatch_runtime_alive_tasks gauge
hopwatch_runtime_alive_tasks 0
# HELP hopwatch_schedule_lag_seconds Actual start of probes, once a concurrency slot is free, minus planned start.
# TYPE hopwatch_schedule_lag_seconds histogram
hopwatch_schedule_lag_seconds_bucket{le="0.0001"} 0
hopwatch_schedule_lag_seconds_bucket{le="0.00025"} 0
hopwatch_schedule_lag_seconds_bucket{le="0.0005"} 1
hopwatch_schedule_lag_seconds_bucket{le="0.001"} 1
hopwatch_schedule_lag_seconds_bucket{le="0.0025"} 1
hopwatch_schedule_lag_seconds_bucket{le="0.005"} 1
hopwatch_schedule_lag_seconds_bucket{le="0.01"} 1
hopwatch_schedule_lag_seconds_bucket{le="0.025"} 1
hopwatch_schedule_lag_seconds_bucket{le="0.05"} 1
hopwatch_schedule_lag_seconds_bucket{le="0.1"} 1
hopwatch_schedule_lag_seconds_bucket{le="0.25"} 1
hopwatch_schedule_lag_seconds_bucket{le="0.5"} 1
hopwatch_schedule_lag_seconds_bucket{le="1"} 1
hopwatch_schedule_lag_seconds_bucket{le="2.5"} 1
hopwatch_schedule_lag_seconds_bucket{le="5"} 1
hopwatch_schedule_lag_seconds_bucket{le="10"} 1
hopwatch_schedule_lag_seconds_bucket{le="+Inf"} 1
hopwatch_schedule_lag_seconds_sum 0.0003
hopwatch_schedule_lag_seconds_count 1
# HELP hopwatch_service_sweep_connects_total Service-hop connects of the sweep (the ClusterIP ports this node probes once per sweep, not every interval), by result; a failing port also shows in hopwatch_path_status.
# TYPE hopwatch_service_sweep_connects_total counter
hopwatch_service_sweep_connects_total{result="success"} 0
# HELP hopwatch_targets Targets being probed, by hop.
# TYPE hopwatch_targets gauge
hopwatch_targets{hop="dns"} 1
hopwatch_targets{hop="ingress"} 0
hopwatch_targets{hop="loadbalancer"} 0
hopwatch_targets{hop="pod"} 0
hopwatch_targets{hop="service"} 0
"#;
}
