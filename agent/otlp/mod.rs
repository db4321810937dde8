//! Optional OTLP/HTTP metrics push: the measurements of `/metrics`, recorded once, exported twice.
//!
//! Every measurement is recorded once, into the [`Metrics`] registry. `/metrics` encodes that
//! registry as Prometheus text; this module walks the same `gather()` every interval, turns it
//! into an OTLP `ExportMetricsServiceRequest` and POSTs it as protobuf. There is no second
//! aggregation (the OpenTelemetry SDK would keep its own copy of every series, and never forget
//! one), so both exports always agree, and a vanished target's series stop being sent exactly
//! when they leave `/metrics`.
//!
//! - `convert`: registry families → OTLP metrics, pure.
//! - `resource`: the resource attributes, from the downward API and the host name.
//! - `send`: the HTTP POST over a fresh connection, with TLS for `https`.
//! - `proto`: the protobuf messages, a hand-written `prost` subset.
//!
//! A push that fails is logged and counted (`hopwatch_otlp_exports_total{result="failure"}`)
//! and not retried: the next push carries the current cumulative values anyway.

mod convert;
mod proto;
mod resource;
mod send;

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use prost::Message;
use rustls::RootCertStore;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio::time::{Instant, MissedTickBehavior};

use crate::metrics::Metrics;
pub use resource::Environment;
pub use send::{ExportError, Rejected, SettingsError};

/// The validated `otlp:` config section.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// Full URL of the OTLP/HTTP metrics endpoint, e.g. http://otel-collector:4318/v1/metrics or
    /// http://prometheus:9090/api/v1/otlp/v1/metrics. http or https.
    pub endpoint: String,
    /// How often the registry is pushed.
    pub interval: std::time::Duration,
    /// Deadline for one push: connect, TLS, request and reply.
    pub timeout: std::time::Duration,
    /// Extra HTTP headers (e.g. authorization), in order.
    pub headers: Vec<(String, String)>,
    /// Extra resource attributes, in order, added to the defaults.
    pub resource: Vec<(String, String)>,
}

/// Pushes one registry to one endpoint. Keeps the start times of the cumulative series
/// between pushes.
pub struct Client {
    poster: send::Poster,
    resource: Vec<proto::KeyValue>,
    converter: convert::Converter,
    metrics: Arc<Metrics>,
}

impl Client {
    /// A client for `settings`, verifying `https` endpoints against the webpki roots, with
    /// the resource of this process (see [`Environment::current`]). `started` is when the
    /// registry began counting: the start of every cumulative series of the first push.
    pub fn new(
        settings: &Settings,
        metrics: Arc<Metrics>,
        started: SystemTime,
    ) -> Result<Client, SettingsError> {
        let roots = RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        };
        Client::with(settings, metrics, started, &Environment::current(), roots)
    }

    /// [`Client::new`] with the environment and the CA roots given. From now on
    /// `hopwatch_otlp_exports_total` shows both results, at 0 until a push.
    pub fn with(
        settings: &Settings,
        metrics: Arc<Metrics>,
        started: SystemTime,
        env: &Environment,
        roots: RootCertStore,
    ) -> Result<Client, SettingsError> {
        let poster = send::Poster::new(
            &settings.endpoint,
            &settings.headers,
            settings.timeout,
            roots,
        )?;
        metrics.otlp_started();
        Ok(Client {
            poster,
            resource: resource::attributes(env, &settings.resource),
            converter: convert::Converter::new(unix_nanos(started)),
            metrics,
        })
    }

    /// Gathers the registry, posts it, and counts the result in
    /// `hopwatch_otlp_exports_total`. `Ok` carries what a 2xx reply said it rejected.
    pub async fn push(&mut self) -> Result<Option<Rejected>, ExportError> {
        let body = self.request(SystemTime::now()).encode_to_vec();
        let result = self.poster.post(body).await;
        match &result {
            Ok(_) => self.metrics.otlp_export_succeeded(),
            Err(_) => self.metrics.otlp_export_failed(),
        }
        result
    }

    /// The request for the registry as it is `now`.
    fn request(&mut self, now: SystemTime) -> proto::ExportMetricsServiceRequest {
        let families = self.metrics.gather();
        let metrics = self.converter.convert(&families, unix_nanos(now));
        let scope = proto::InstrumentationScope {
            name: "hopwatch".to_string(),
            version: crate::VERSION.to_string(),
        };
        proto::ExportMetricsServiceRequest {
            resource_metrics: vec![proto::ResourceMetrics {
                resource: Some(proto::Resource {
                    attributes: self.resource.clone(),
                }),
                scope_metrics: vec![proto::ScopeMetrics {
                    scope: Some(scope),
                    metrics,
                    schema_url: String::new(),
                }],
                schema_url: String::new(),
            }],
        }
    }
}

/// The running push task.
pub struct Exporter {
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

/// Starts pushing `metrics` every `settings.interval`, the first push one interval from now.
/// A task on the current runtime, no thread of its own.
pub fn spawn(settings: Settings, metrics: Arc<Metrics>) -> Result<Exporter, SettingsError> {
    let client = Client::new(&settings, metrics, SystemTime::now())?;
    Ok(Exporter::start(client, settings.interval))
}

impl Exporter {
    /// Runs `client` every `interval`, the first push one interval from now.
    pub fn start(client: Client, interval: Duration) -> Exporter {
        let (stop, stopped) = oneshot::channel();
        let task = tokio::spawn(run(client, interval, stopped));
        Exporter { stop, task }
    }

    /// Stops the pushes after one last one, so that the final values are delivered; waits
    /// for it (at most the push timeout).
    pub async fn shutdown(self) {
        let _ = self.stop.send(());
        if let Err(err) = self.task.await {
            tracing::error!("the OTLP exporter ended abnormally: {err}");
        }
    }
}

async fn run(mut client: Client, interval: Duration, mut stopped: oneshot::Receiver<()>) {
    let endpoint = client.poster.url().to_string();
    tracing::info!(%endpoint, "pushing metrics over OTLP every {interval:?}");
    let mut ticks = tokio::time::interval_at(Instant::now() + interval, interval);
    // A slow push delays the next ones rather than bunching them up.
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut failing = false;
    loop {
        tokio::select! {
            _ = &mut stopped => break,
            _ = ticks.tick() => failing = report(&endpoint, client.push().await, failing),
        }
    }
    report(&endpoint, client.push().await, failing);
}

/// Logs a push's result: every failure, and the first success after failures. Returns
/// whether the push failed.
fn report(endpoint: &str, result: Result<Option<Rejected>, ExportError>, failing: bool) -> bool {
    match result {
        Ok(None) => {
            if failing {
                tracing::info!(endpoint, "OTLP push succeeded again");
            }
            false
        }
        Ok(Some(rejected)) => {
            tracing::warn!(
                endpoint,
                rejected = rejected.data_points,
                "OTLP endpoint took the push but rejected data points: {}",
                rejected.message
            );
            false
        }
        Err(err) => {
            tracing::warn!(endpoint, reason = err.as_str(), "OTLP push failed: {err}");
            true
        }
    }
}

fn unix_nanos(at: SystemTime) -> u64 {
    let since = at.duration_since(UNIX_EPOCH).unwrap_or_default();
    u64::try_from(since.as_nanos()).unwrap_or(u64::MAX)
}
