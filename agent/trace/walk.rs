//! The command's options, checked once, and the walk: the hops of a URL or of a Service, in
//! request order.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;

use super::api::{ApiError, ApiFailure, Cluster};
use super::ingress_hop;
use super::ingress_match::Semantics;
use super::netpol::read::{self as netpol_read, Request, SourceArg};
use super::routes::{IngressView, Routes};
use super::target::{FromError, Target, TargetError, parse_from};
use super::{Cause, Hop, HopName, Status, Trace, backend, edge, netpol, render};
use crate::discovery::ingress::BackendPort;
use crate::discovery::model::ObjKey;
use crate::discovery::watch::{self, ClientError};
use crate::policy::SelfPod;
use crate::probe::dns::{Flavor, LookupOptions, QueryTypes, ResolvConf};
use crate::probe::http::{CaBundle, CaError, HttpUrl, Scheme, UrlError, parse_connect_to};

/// Exit status of a usage error: a bad target, an unreadable file.
pub const EXIT_USAGE: u8 = 2;

/// The command's arguments, as given on the command line.
#[derive(Debug, Clone, PartialEq)]
pub struct Options {
    /// `https://host/path` or `svc/NAMESPACE/NAME[:PORT]`.
    pub target: String,
    /// Else `$KUBECONFIG`, `~/.kube/config`, then the pod's service account.
    pub kubeconfig: Option<PathBuf>,
    /// The resolv.conf whose search list, ndots and options the DNS hop emulates.
    pub resolv_conf: PathBuf,
    pub flavor: Flavor,
    /// Send every DNS query here instead of to the resolv.conf nameservers.
    pub server: Option<SocketAddr>,
    /// The cluster's DNS domain, for `svc/…` names.
    pub cluster_domain: String,
    /// PEM CAs to verify the Ingress certificate against, instead of the built-in roots.
    pub ca_file: Option<PathBuf>,
    pub insecure: bool,
    /// `IP[:PORT]`: the load balancer to dial, instead of what DNS and the Ingress say.
    pub connect_to: Option<String>,
    /// Whose Ingress routing the walk follows to a Service.
    pub semantics: Semantics,
    /// The limit of each DNS lookup, connect, request and API read.
    pub timeout: Duration,
    pub json: bool,
    /// `pod/NAMESPACE/NAME`: the source the NetworkPolicy step decides for, and always takes.
    pub from: Option<String>,
    /// Trace's own pod, when it runs in one (`crate::policy::self_pod`): the source without
    /// `--from`, and the one the walk's connects come from.
    pub me: Option<SelfPod>,
}

/// Why the trace cannot start. Exit status [`EXIT_USAGE`].
#[derive(Debug, thiserror::Error)]
pub enum TraceError {
    #[error(transparent)]
    Target(#[from] TargetError),
    #[error("cannot read {path}: {source}")]
    ResolvConf {
        path: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Ca(#[from] CaError),
    #[error(transparent)]
    ConnectTo(#[from] UrlError),
    #[error("--connect-to names the load balancer of a URL; {0} is a Service")]
    ConnectToService(String),
    #[error(transparent)]
    Kubeconfig(#[from] ClientError),
    #[error(transparent)]
    From(#[from] FromError),
    #[error("--from {text:?}: no such pod ({message})")]
    FromNotFound { text: String, message: String },
}

impl TraceError {
    pub fn exit_code(&self) -> u8 {
        EXIT_USAGE
    }
}

/// Runs the trace: `(stdout text, exit status)` with 0 when every hop worked and 1 when
/// one is broken or could not be checked; or the usage error.
pub async fn cli(opts: &Options) -> Result<(String, u8), TraceError> {
    let trace = run(opts).await?;
    let text = if opts.json {
        format!("{}\n", render::json(&trace))
    } else {
        render::text(&trace)
    };
    Ok((text, trace.exit_code()))
}

/// What every hop needs, checked before anything is sent.
struct Env {
    lookup: LookupOptions,
    ca: CaBundle,
    cluster: Cluster,
    timeout: Duration,
}

/// Follows the target's path and returns every hop with the verdict.
pub async fn run(opts: &Options) -> Result<Trace, TraceError> {
    let target = Target::parse(&opts.target)?;
    let from = opts.from.as_deref().map(parse_from).transpose()?;
    let text =
        std::fs::read_to_string(&opts.resolv_conf).map_err(|source| TraceError::ResolvConf {
            path: opts.resolv_conf.display().to_string(),
            source,
        })?;
    let ca = match &opts.ca_file {
        Some(path) => CaBundle::from_file(path)?,
        None => CaBundle::WebPki,
    };
    let env = Env {
        lookup: LookupOptions {
            conf: ResolvConf::parse(&text, opts.flavor),
            flavor: opts.flavor,
            qtypes: QueryTypes::Both,
            server: opts.server,
        },
        ca,
        cluster: Cluster::new(client(opts).await?, opts.timeout),
        timeout: opts.timeout,
    };
    let from_pod = match &from {
        Some(key) => Some(read_from(&env.cluster, key, opts).await?),
        None => None,
    };
    let (mut hops, backend) = match target {
        Target::Url(url) => {
            let connect_to = match &opts.connect_to {
                Some(text) => Some(parse_connect_to(text, url.port)?),
                None => None,
            };
            url_walk(&url, connect_to, opts, &env).await
        }
        Target::Service { key, port } => {
            if opts.connect_to.is_some() {
                return Err(TraceError::ConnectToService(opts.target.clone()));
            }
            let hops = service_walk(&key, port.clone(), &opts.cluster_domain, &env).await;
            (hops, Some((key, port)))
        }
    };
    let source = match (&from, from_pod, &opts.me) {
        (Some(key), Some(pod), _) => SourceArg::From(key, Box::new(pod)),
        (None, _, Some(me)) => SourceArg::Me(me),
        _ => SourceArg::Unknown,
    };
    policy_step(&mut hops, source, backend, opts, &env).await;
    Ok(Trace::new(opts.target.clone(), hops))
}

/// The `--from` pod; one that does not exist is a usage error, any other failure is the
/// NetworkPolicy step's to report.
async fn read_from(
    cluster: &Cluster,
    key: &ObjKey,
    opts: &Options,
) -> Result<Result<Pod, ApiError>, TraceError> {
    match cluster.pod(&key.namespace, &key.name).await {
        Err(err) if err.failure == ApiFailure::NotFound => Err(TraceError::FromNotFound {
            text: opts.from.clone().unwrap_or_default(),
            message: err.text(),
        }),
        read => Ok(read),
    }
}

/// The NetworkPolicy step: taken with `--from`, or when a hop a policy could break did: a DNS
/// lookup without answer, a Pod connect the pod's ports do not explain, a ClusterIP connect
/// while the Service has ready endpoints (an empty
/// Service's ClusterIP refuses whatever the policies say). It decides the target Service's
/// pods when a connect broke or `--from` asks, the cluster DNS when DNS broke or `--from`
/// asks. Without a source it can only list who selects the target: a broken DNS alone then
/// leaves nothing to say.
async fn policy_step(
    hops: &mut Vec<Hop>,
    source: SourceArg<'_>,
    backend: Backend,
    opts: &Options,
    env: &Env,
) {
    let broken = |name: HopName, causes: &[Cause]| {
        hops.iter().any(|h| {
            h.name == name
                && h.status == Status::Broken
                && h.cause()
                    .is_some_and(|c| causes.is_empty() || causes.contains(&c))
        })
    };
    let asked = opts.from.is_some();
    let dns = asked || broken(HopName::Dns, &[Cause::DnsTimeout, Cause::DnsFailed]);
    let connect = asked
        || broken(HopName::Pod, &[Cause::PodUnreachable])
        || (broken(HopName::Service, &[Cause::ServiceUnreachable])
            && !broken(HopName::Endpoints, &[]));
    let unknown = matches!(source, SourceArg::Unknown);
    if !connect && (!dns || unknown) {
        return;
    }
    let dns = dns && !unknown;
    let request = Request {
        source,
        me: opts.me.as_ref(),
        target: backend
            .as_ref()
            .filter(|_| connect)
            .map(|(key, port)| (key, port.as_ref())),
        dns,
    };
    let inputs = netpol_read::read(&env.cluster, request).await;
    let (hop, step) = netpol::hop(&inputs);
    hops.push(hop);
    let here = matches!(&inputs.source, Ok(Some(s)) if s.connects_here);
    netpol::explain(hops, &step, here);
    // `--from` another pod: the walk's own connects still came from trace's pod, which the
    // policies may deny as well. Decide them for it, without a second step in the output.
    if let (false, Some(me), true) = (here, opts.me.as_ref(), connect) {
        let request = Request {
            source: SourceArg::Me(me),
            me: Some(me),
            target: backend.as_ref().map(|(key, port)| (key, port.as_ref())),
            dns: false,
        };
        let inputs = netpol_read::read(&env.cluster, request).await;
        let (_, own) = netpol::hop(&inputs);
        netpol::explain(hops, &own, true);
    }
}

/// A client from `--kubeconfig` (which must be usable), else inferred; an inferred config
/// that cannot be found leaves the API hops unchecked rather than stopping the walk.
async fn client(opts: &Options) -> Result<Result<kube::Client, String>, TraceError> {
    match watch::client(opts.kubeconfig.as_deref()).await {
        Ok(client) => Ok(Ok(client)),
        Err(err) if opts.kubeconfig.is_some() => Err(err.into()),
        // The inferred config's error lists every place tried; the first line says enough.
        Err(ClientError::Infer(_)) => Ok(Err(
            "no Kubernetes config ($KUBECONFIG, ~/.kube/config or a service account)".into(),
        )),
        Err(err) => Ok(Err(err.to_string())),
    }
}

/// The service and port behind the Ingress rule the walk followed.
type Backend = Option<(ObjKey, Option<BackendPort>)>;

/// The URL's hops, and the Service behind the rule followed, if any.
async fn url_walk(
    url: &HttpUrl,
    connect_to: Option<SocketAddr>,
    opts: &Options,
    env: &Env,
) -> (Vec<Hop>, Backend) {
    let listed = env.cluster.ingresses().await;
    let routes = Routes::new(listed, &url.host, &url.path, opts.semantics);
    let claimed = routes.claiming(&url.host).cloned();
    let expected = load_balancer_ips(claimed.as_ref(), env).await;
    let (mut dns_hop, answers) = match url.ip() {
        Some(ip) => (
            Hop::new(HopName::Dns).ok("the URL names an address: nothing to resolve"),
            vec![ip],
        ),
        None => {
            edge::url_dns(
                &url.host,
                &env.lookup,
                env.timeout,
                &routes,
                &expected,
                &env.cluster,
            )
            .await
        }
    };
    if let Some(Some(Err(bad))) = claimed.as_ref().map(|c| &c.expected_annotation) {
        dns_hop = dns_hop.fact(format!("{bad}: the answer is not compared"));
    }
    let address = edge::lb_address(connect_to, &answers, &expected, url.port);
    let lb_hop = edge::loadbalancer(address, claimed.as_ref(), env.timeout).await;
    let exchange = match (lb_hop.status, address) {
        (Status::Ok, Some((lb, _))) => {
            Some(ingress_hop::request(url, lb, &env.ca, opts.insecure, env.timeout).await)
        }
        _ => None,
    };
    let mut hops = vec![dns_hop, lb_hop];
    if url.scheme == Scheme::Https {
        hops.push(match &exchange {
            Some(ex) => ingress_hop::tls_hop(url, ex, claimed.as_ref(), ingress_hop::unix_now()),
            None => Hop::skipped(
                HopName::Tls,
                "the load balancer did not accept a connection",
            ),
        });
    }
    let why = "the load balancer did not accept a connection";
    hops.push(ingress_hop::ingress_hop(
        url,
        &routes,
        exchange.as_ref(),
        why,
    ));
    hops.extend(behind_ingress(&routes, env).await);
    let backend = routes.backend().map(|(key, port)| (key, Some(port)));
    (hops, backend)
}

/// The load balancer's addresses from the Ingress status: its IPs, and what its hostnames
/// (cloud load balancers named by DNS) resolve to.
async fn load_balancer_ips(claimed: Option<&IngressView>, env: &Env) -> Vec<IpAddr> {
    let Some(ing) = claimed else {
        return Vec::new();
    };
    // As the agent's load-balancer hop: the annotation's list when there is one (a CDN or WAF
    // in front), nothing to compare with when it does not parse, else the status.
    let (mut ips, names) = match &ing.expected_annotation {
        Some(Ok(listed)) => (listed.addresses.clone(), listed.names.clone()),
        Some(Err(_)) => return Vec::new(),
        None => {
            let names = ing.lb_hostnames.iter().map(|n| format!("{n}.")).collect();
            (ing.lb_ips.clone(), names)
        }
    };
    for name in &names {
        let report = edge::lookup(name, &env.lookup, env.timeout).await;
        for ip in report.addresses {
            if !ips.contains(&ip) {
                ips.push(ip);
            }
        }
    }
    ips
}

/// The Service hops behind the chosen rule, or why there are none.
async fn behind_ingress(routes: &Routes, env: &Env) -> Vec<Hop> {
    let Some((key, port)) = routes.backend() else {
        let why = match &routes.error {
            Some(err) => format!("no Ingress rule to follow ({})", err.text()),
            None => "no Ingress rule to follow".to_string(),
        };
        return [HopName::Service, HopName::Endpoints, HopName::Pod]
            .map(|name| Hop::skipped(name, why.clone()))
            .into();
    };
    let via = routes.chosen().map(|r| r.ingress.clone());
    let service = env.cluster.service(&key.namespace, &key.name).await;
    backend::hops(
        &env.cluster,
        &key,
        service,
        Some(port),
        via.as_ref(),
        env.timeout,
    )
    .await
}

async fn service_walk(
    key: &ObjKey,
    port: Option<BackendPort>,
    domain: &str,
    env: &Env,
) -> Vec<Hop> {
    let service = env.cluster.service(&key.namespace, &key.name).await;
    let view = service
        .as_ref()
        .ok()
        .and_then(super::views::ServiceView::project);
    let name = format!(
        "{}.{}.svc.{}",
        key.name,
        key.namespace,
        domain.trim_end_matches('.')
    );
    let dns_hop = edge::service_dns(&name, &env.lookup, env.timeout, view.as_ref()).await;
    let mut hops = vec![dns_hop];
    hops.extend(backend::hops(&env.cluster, key, service, port, None, env.timeout).await);
    hops
}
