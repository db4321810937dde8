//! `hopwatch trace`: the debugging ladder as one command. It follows one request's path hop
//! by hop (DNS, load balancer, TLS, Ingress, Service, endpoints, Pod), says where it breaks
//! and the most likely cause, and prints the kubectl commands that confirm it.
//!
//! The Kubernetes API is only read (GET and LIST), with the caller's kubeconfig. An API error
//! makes the hop that needed it unchecked, not broken, and the walk goes on where it can.
//!
//! - [`target`]: `URL` or `svc/NAMESPACE/NAME[:PORT]` (pure).
//! - [`ingress_match`]: the rule a host and path reach, as ingress-nginx and as Gateway API
//!   route them (pure).
//! - [`views`], [`diagnose`]: what is read of Services and Pods, and the reasoning on it:
//!   selector against labels, named ports (pure).
//! - [`verdict`]: causes, kubectl commands and the first broken hop (pure).
//! - [`render`]: text and JSON (pure).
//! - [`routes`]: the URL through every Ingress: rules, claiming Ingress, TLS entry (pure).
//! - [`api`]: the read-only API calls.
//! - [`edge`] (DNS, load balancer), [`ingress_hop`] (TLS, Ingress), [`backend`] (Service,
//!   Pod) and [`endpoints`]: the hops.
//! - [`netpol`]: the NetworkPolicy step, whether the source may connect to the target pods
//!   and to the cluster DNS, with its reads.
//! - [`walk`]: the options, and the hops in order.

pub mod api;
pub mod backend;
pub mod diagnose;
pub mod edge;
pub mod endpoints;
pub mod ingress_hop;
pub mod ingress_match;
pub mod netpol;
pub mod render;
pub mod routes;
pub mod target;
pub mod verdict;
pub mod views;
pub mod walk;

use std::time::Duration;

pub use verdict::{Cause, Finding, Verdict};
pub use walk::{Options, TraceError, cli, run};

/// A hop of the traced path. `as_str` is its name in the output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum HopName {
    Dns,
    LoadBalancer,
    Tls,
    Ingress,
    Service,
    Endpoints,
    Pod,
    /// The NetworkPolicy step: not a hop of the request, the ladder's check of the policies.
    NetworkPolicy,
}

impl HopName {
    pub fn as_str(self) -> &'static str {
        match self {
            HopName::Dns => "dns",
            HopName::LoadBalancer => "loadbalancer",
            HopName::Tls => "tls",
            HopName::Ingress => "ingress",
            HopName::Service => "service",
            HopName::Endpoints => "endpoints",
            HopName::Pod => "pod",
            HopName::NetworkPolicy => "netpol",
        }
    }
}

/// What became of a hop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Checked, and it works.
    Ok,
    /// Checked, and it does not work.
    Broken,
    /// Could not be checked: the API refused or failed a read the hop needs.
    Unknown,
    /// Not run: an earlier hop left nothing to check (no address, no ready endpoint).
    Skipped,
    /// Checked: the NetworkPolicies deny the source this connection, as they are written to.
    /// Expected, not broken, as the agent's `policy_denied`.
    Denied,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Broken => "broken",
            Status::Unknown => "unknown",
            Status::Skipped => "skipped",
            Status::Denied => "denied",
        }
    }
}

/// One hop of the walk: what was seen, for people (`summary`, `facts`) and for scripts (`data`).
#[derive(Debug, Clone, PartialEq)]
pub struct Hop {
    pub name: HopName,
    pub status: Status,
    /// The time the hop's network work took; `None` when nothing was timed.
    pub duration: Option<Duration>,
    /// The key fact, on the hop's line.
    pub summary: String,
    /// Further lines: every DNS query, the rule each semantics picks, each endpoint.
    pub facts: Vec<String>,
    /// The same facts as JSON, for `--json`.
    pub data: serde_json::Value,
    /// Why the hop is broken, unknown or denied.
    pub finding: Option<Finding>,
    /// Read-only commands that show what the hop saw, listed under the verdict even when the
    /// hop is not to blame: the NetworkPolicy step's decision.
    pub confirm: Vec<String>,
}

impl Hop {
    /// An empty hop, not run yet.
    pub fn new(name: HopName) -> Hop {
        Hop {
            name,
            status: Status::Skipped,
            duration: None,
            summary: String::new(),
            facts: Vec::new(),
            data: serde_json::Value::Object(serde_json::Map::new()),
            finding: None,
            confirm: Vec::new(),
        }
    }

    /// A hop not run, and why.
    pub fn skipped(name: HopName, why: impl Into<String>) -> Hop {
        Hop {
            summary: why.into(),
            ..Hop::new(name)
        }
    }

    /// Marks the hop not run, keeping what it recorded, with why.
    pub fn skip(mut self, summary: impl Into<String>) -> Hop {
        self.status = Status::Skipped;
        self.summary = summary.into();
        self
    }

    /// Marks the hop working, with its key fact.
    pub fn ok(mut self, summary: impl Into<String>) -> Hop {
        self.status = Status::Ok;
        self.summary = summary.into();
        self
    }

    /// Marks the hop broken, with its key fact and the likely cause.
    pub fn broken(mut self, summary: impl Into<String>, finding: Finding) -> Hop {
        self.status = Status::Broken;
        self.summary = summary.into();
        self.finding = Some(finding);
        self
    }

    /// Marks the hop unchecked, with the reason (an API error).
    pub fn unknown(mut self, summary: impl Into<String>, finding: Finding) -> Hop {
        self.status = Status::Unknown;
        self.summary = summary.into();
        self.finding = Some(finding);
        self
    }

    /// Marks the hop denied by the NetworkPolicies (expected), with its key fact and why.
    pub fn denied(mut self, summary: impl Into<String>, finding: Finding) -> Hop {
        self.status = Status::Denied;
        self.summary = summary.into();
        self.finding = Some(finding);
        self
    }

    pub fn timed(mut self, duration: Duration) -> Hop {
        self.duration = Some(duration);
        self
    }

    pub fn fact(mut self, line: impl Into<String>) -> Hop {
        self.facts.push(line.into());
        self
    }

    /// Sets one key of [`Hop::data`].
    pub fn with(mut self, key: &str, value: serde_json::Value) -> Hop {
        if let serde_json::Value::Object(map) = &mut self.data {
            map.insert(key.to_string(), value);
        }
        self
    }

    pub fn cause(&self) -> Option<Cause> {
        self.finding.as_ref().map(|f| f.cause)
    }
}

/// A finished walk: the target, every hop in request order, and the verdict.
#[derive(Debug, Clone, PartialEq)]
pub struct Trace {
    pub target: String,
    pub hops: Vec<Hop>,
    pub verdict: Verdict,
}

impl Trace {
    pub fn new(target: String, hops: Vec<Hop>) -> Trace {
        let verdict = verdict::verdict(&hops);
        Trace {
            target,
            hops,
            verdict,
        }
    }

    /// 0 when every hop worked (a NetworkPolicy denial is expected, so it works), 1 otherwise.
    pub fn exit_code(&self) -> u8 {
        if self.verdict.healthy() { 0 } else { 1 }
    }
}
