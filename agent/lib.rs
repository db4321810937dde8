//! hopwatch: a per-node prober for the path a request takes through a Kubernetes cluster,
//! DNS → load balancer → Ingress → Service (ClusterIP) → Pod, exported to Prometheus.
//!
//! # Layout
//!
//! Data flows one way: **config → schedule → probe → metrics → server**.
//!
//! - [`config`]: YAML is parsed, then validated once into types that cannot be invalid.
//! - [`probe`]: one file per probe kind. A probe observes and returns plain data ([`probe::Outcome`]);
//!   it never touches metrics, sleeps or retries (the DNS probe's retries are the emulated resolver's).
//!   - [`probe::dns`]: resolv.conf parsing and the search-list walk of glibc, musl and Go, query for query.
//! - [`schedule`]: interval, stagger, jitter, timeout and bounded concurrency; reconciles running
//!   targets by key when the config changes.
//! - [`metrics`]: the only module that names a metric.
//! - [`log`]: `--log.format` logfmt and JSON lines.
//! - [`server`]: `/metrics`, `/healthz`, `/readyz`; TLS, auth and gzip as [`webconfig`] and
//!   [`auth`] say.
//! - [`otlp`]: optional push of the same registry to an OTLP/HTTP metrics endpoint.
//! - [`reload`]: config reload on SIGHUP and on file change.
//! - [`agent`]: wires the pieces together and runs until shutdown.
//! - [`policy`]: which discovered connects the NetworkPolicies deny to the agent, and what their
//!   results mean (`policy_denied`, an unenforced policy).
//! - [`canary`]: the canary responder every agent serves, and the rule that tells a broken
//!   Service's infrastructure cause from its application cause by the canary's own path.
//! - [`trace`]: `hopwatch trace`, one request's path hop by hop with the likely cause of a break.

pub mod agent;
pub mod auth;
pub mod canary;
pub mod cluster;
pub mod config;
pub mod discovery;
#[doc(hidden)]
pub mod fuzz;
pub mod log;
pub mod metrics;
pub mod otlp;
pub mod policy;
pub mod probe;
pub mod reload;
pub mod schedule;
pub mod server;
pub mod trace;
pub mod verdict;
pub mod webconfig;

/// The version compiled into the binary, exported as `hopwatch_build_info{version}`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The git commit built (12 hex digits), or `unknown` outside a checkout; see build.rs.
pub const REVISION: &str = env!("HOPWATCH_REVISION");

/// The rustc version that built the binary, such as `1.89.0`.
pub const RUSTC_VERSION: &str = env!("HOPWATCH_RUSTC_VERSION");
