//! The `canary:` section → [`CanaryConfig`]: where this agent answers the canary's requests,
//! and which discovered Service is the canary that the other Services' verdicts are judged
//! against (infrastructure or application).

use std::net::SocketAddr;

use super::raw::{Problem, RawCanary};
use super::validate::check_opt;
use super::{CanaryConfig, fields, k8s_names};

/// The whole section. `listen` is the top-level metrics address, whose port the canary may
/// not share; `kubernetes` says whether the file has a `kubernetes:` section.
pub(super) fn section(
    raw: RawCanary,
    listen: SocketAddr,
    kubernetes: bool,
) -> Result<CanaryConfig, Problem> {
    let canary_listen = check_opt(raw.listen.as_ref(), "canary.listen", |s| {
        own_port(fields::listen(s)?, listen)
    })?;
    let service = check_opt(raw.service.as_ref(), "canary.service", |s| {
        let service = k8s_names::service(s)?;
        if !kubernetes {
            return Err(format!(
                "{} needs a `kubernetes:` section: the canary is a discovered Service",
                fields::show(s)
            ));
        }
        Ok(service)
    })?;
    Ok(CanaryConfig {
        listen: canary_listen,
        service,
    })
}

/// The canary's address, on a port of its own: a Service in front of the canary must never
/// expose `/metrics`. Port 0 (a free port, for tests) never clashes.
fn own_port(canary: SocketAddr, metrics: SocketAddr) -> Result<SocketAddr, String> {
    if canary.port() != 0 && canary.port() == metrics.port() {
        return Err(format!(
            "port {} is the metrics port of `listen`: the canary needs a port of its own, so \
             that its Service never exposes /metrics",
            canary.port()
        ));
    }
    Ok(canary)
}
