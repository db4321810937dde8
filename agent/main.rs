//! The `hopwatch` command: flags, logging and config, then the agent or a one-off probe.
//!
//! Exit codes: 0 success; 1 a failed run, or a probe that failed (a lookup that did not resolve,
//! a connect or request that failed); 2 a usage error (bad flag, invalid config for
//! `check-config`, unreadable resolv.conf or CA file, bad server or URL).

use std::future::Future;
use std::io::IsTerminal;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use serde::Serialize;
use tokio::signal::unix::{SignalKind, signal};
use tracing_subscriber::EnvFilter;

use hopwatch::agent;
use hopwatch::config::Config;
use hopwatch::log;
use hopwatch::probe::dns::{
    self, Flavor, LookupOptions, LookupReport, QueryRecord, QueryStatus, QueryTypes, ResolvConf,
};
use hopwatch::probe::{http, result_label, tcp};
use hopwatch::webconfig::Web;

/// A lookup ran but did not resolve.
const EXIT_NOT_RESOLVED: u8 = 1;
/// The command line, or a file it names, cannot be used.
const EXIT_USAGE: u8 = 2;

/// Per-node prober for the Kubernetes request path: DNS, load balancer, Ingress, Service, Pod.
#[derive(Debug, Parser)]
#[command(name = "hopwatch", version = concat!(
    env!("CARGO_PKG_VERSION"),
    " (revision ",
    env!("HOPWATCH_REVISION"),
    ", rustc ",
    env!("HOPWATCH_RUSTC_VERSION"),
    ")"
))]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Log level: debug, info, warn or error. Given, it wins over RUST_LOG; without it,
    /// RUST_LOG applies, and info when that is unset too.
    #[arg(long = "log.level", value_name = "LEVEL", global = true, value_parser = parse_log_level)]
    log_level: Option<&'static str>,
    /// Log line format: text (the default, for people), logfmt or json (for log pipelines).
    #[arg(long = "log.format", value_name = "FORMAT", global = true, default_value = "text", value_parser = parse_log_format)]
    log_format: log::Format,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Probe the configured targets and serve /metrics, /healthz and /readyz.
    Run(RunArgs),
    /// Validate a config file: prints "FILE: ok (N targets)", or the error and exits 2.
    CheckConfig {
        /// The config file.
        file: PathBuf,
        /// Also check this web config (see `run --web.config.file`).
        #[arg(long = "web.config.file", value_name = "FILE")]
        web_config_file: Option<PathBuf>,
    },
    /// Run one probe now and print what it saw.
    #[command(subcommand)]
    Probe(ProbeCommand),
    /// Follow one request hop by hop: where it breaks, the likely cause, the kubectl to confirm.
    Trace(TraceArgs),
}

#[derive(Debug, Args)]
struct TraceArgs {
    /// A URL (https://shop.example.com/api) or svc/NAMESPACE/NAME[:PORT].
    target: String,
    /// Kubeconfig to read the cluster with (read-only). Default: $KUBECONFIG, ~/.kube/config,
    /// then the pod's service account.
    #[arg(long, value_name = "FILE")]
    kubeconfig: Option<PathBuf>,
    /// The resolv.conf whose search list, ndots and options the DNS hop emulates.
    #[arg(long, value_name = "FILE", default_value = "/etc/resolv.conf")]
    resolv_conf: PathBuf,
    /// The stub resolver to emulate: glibc, musl, musl-legacy or go.
    #[arg(long, default_value = "glibc", value_parser = parse_flavor)]
    flavor: Flavor,
    /// Send every DNS query to this server instead of the resolv.conf nameservers.
    #[arg(long, value_name = "IP[:PORT]", value_parser = parse_server)]
    server: Option<SocketAddr>,
    /// The cluster's DNS domain, for svc/ targets.
    #[arg(long, value_name = "DOMAIN", default_value = "cluster.local")]
    cluster_domain: String,
    /// PEM bundle of CAs to verify the Ingress certificate against.
    #[arg(long, value_name = "FILE")]
    ca_file: Option<PathBuf>,
    /// Finish the TLS handshake whatever the certificate; its verdict is still shown.
    #[arg(long)]
    insecure: bool,
    /// Dial this load balancer address instead of what DNS and the Ingress say.
    #[arg(long, value_name = "IP[:PORT]")]
    connect_to: Option<String>,
    /// Whose Ingress path matching to follow: ingress-nginx or gateway-api (both are shown).
    #[arg(long, default_value = "ingress-nginx", value_parser = parse_routing)]
    routing: hopwatch::trace::ingress_match::Semantics,
    /// Give up on each lookup, connect, request and API read after this long.
    #[arg(long, value_name = "N", default_value = "10", value_parser = parse_seconds)]
    timeout_seconds: Duration,
    /// Print one JSON object instead of the hop lines.
    #[arg(long)]
    json: bool,
    /// pod/NAMESPACE/NAME: decide the NetworkPolicies for this pod's connections to the target
    /// and to the cluster DNS. Without it, trace's own pod (POD_NAMESPACE, POD_IP and its
    /// labels file) when a hop fails.
    #[arg(long, value_name = "pod/NAMESPACE/NAME")]
    from: Option<String>,
}

#[derive(Debug, Args)]
struct RunArgs {
    /// Config file, reloaded on SIGHUP and when it changes. Default: the embedded config.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Address to serve on, instead of the config's `listen`.
    #[arg(long, value_name = "ADDR")]
    listen: Option<SocketAddr>,
    /// Web config in exporter-toolkit's format: TLS, basic auth (bcrypt) and, a hopwatch
    /// extension, bearer_token_file. Protects /metrics; /healthz and /readyz stay open.
    #[arg(long = "web.config.file", value_name = "FILE")]
    web_config_file: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
enum ProbeCommand {
    /// Look a name up as a pod's stub resolver would, and print every wire query.
    Dns(DnsArgs),
    /// Connect to HOST:PORT over TCP and say how it went: success, refused, timeout, unreachable.
    Tcp(TcpArgs),
    /// Request a URL on a fresh connection, timing DNS, connect, TLS and first byte.
    Http(HttpArgs),
}

#[derive(Debug, Args)]
struct TcpArgs {
    /// The address, IP:PORT (e.g. a ClusterIP and port, or a pod IP and targetPort).
    address: SocketAddr,
    /// Give up after this long.
    #[arg(long, value_name = "N", default_value = "5", value_parser = parse_seconds)]
    timeout_seconds: Duration,
    /// Print one JSON object instead of a line.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
struct HttpArgs {
    /// The URL, http:// or https://.
    url: String,
    /// Dial this address instead of resolving the host (SNI and Host stay the URL's host).
    #[arg(long, value_name = "IP[:PORT]")]
    connect_to: Option<String>,
    /// PEM bundle of CAs to verify the certificate against, instead of the built-in roots.
    #[arg(long, value_name = "FILE")]
    ca_file: Option<PathBuf>,
    /// Finish the handshake whatever the certificate; its verdict is still printed.
    #[arg(long)]
    insecure: bool,
    /// Give up after this long.
    #[arg(long, value_name = "N", default_value = "10", value_parser = parse_seconds)]
    timeout_seconds: Duration,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
struct DnsArgs {
    /// The name, as an application would pass it to getaddrinfo.
    name: String,
    /// The resolv.conf whose search list, ndots and options are emulated.
    #[arg(long, value_name = "FILE", default_value = "/etc/resolv.conf")]
    resolv_conf: PathBuf,
    /// The stub resolver to emulate: glibc, musl, musl-legacy or go.
    #[arg(long, default_value = "glibc", value_parser = parse_flavor, long_help = flavor_help())]
    flavor: Flavor,
    /// Send every query to this server instead of the resolv.conf nameservers.
    #[arg(long, value_name = "IP[:PORT]", value_parser = parse_server)]
    server: Option<SocketAddr>,
    /// Record types asked at each step: A, AAAA or A,AAAA.
    #[arg(long, default_value = "A,AAAA", value_parser = parse_qtypes)]
    qtypes: QueryTypes,
    /// Give up on the lookup after this long.
    #[arg(long, value_name = "N", default_value = "30", value_parser = parse_seconds)]
    timeout_seconds: Duration,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    json: bool,
}

/// `--flavor`'s long help: the choices, and which one an image needs.
fn flavor_help() -> String {
    format!(
        "The stub resolver to emulate: glibc, musl, musl-legacy or go. Pick the one of the \
         pod's image:\n\n{}",
        dns::image_flavor_lines().trim_end()
    )
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_level, cli.log_format);
    match cli.command {
        Command::Run(args) => match run(args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(err) => {
                eprintln!("hopwatch: {err:#}");
                ExitCode::FAILURE
            }
        },
        Command::CheckConfig {
            file,
            web_config_file,
        } => match check_config(&file) {
            ExitCode::SUCCESS => web_config_file.map_or(ExitCode::SUCCESS, |f| check_web(&f)),
            failed => failed,
        },
        Command::Probe(ProbeCommand::Dns(args)) => probe_dns(&args),
        Command::Probe(ProbeCommand::Tcp(args)) => probe_tcp(&args),
        Command::Probe(ProbeCommand::Http(args)) => probe_http(args),
        Command::Trace(args) => trace(args),
    }
}

fn trace(args: TraceArgs) -> ExitCode {
    let opts = hopwatch::trace::Options {
        target: args.target,
        kubeconfig: args.kubeconfig,
        resolv_conf: args.resolv_conf,
        flavor: args.flavor,
        server: args.server,
        cluster_domain: args.cluster_domain,
        ca_file: args.ca_file,
        insecure: args.insecure,
        connect_to: args.connect_to,
        semantics: args.routing,
        timeout: args.timeout_seconds,
        json: args.json,
        from: args.from,
        me: hopwatch::policy::self_pod(),
    };
    let outcome = match runtime() {
        Ok(rt) => rt.block_on(hopwatch::trace::cli(&opts)),
        Err(err) => {
            eprintln!("hopwatch: {err:#}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    match outcome {
        Ok((text, code)) => {
            print!("{text}");
            ExitCode::from(code)
        }
        Err(err) => {
            eprintln!("hopwatch: {err}");
            ExitCode::from(err.exit_code())
        }
    }
}

fn parse_routing(s: &str) -> Result<hopwatch::trace::ingress_match::Semantics, String> {
    hopwatch::trace::ingress_match::Semantics::parse(s)
        .ok_or_else(|| format!("unknown routing {s:?}: expected ingress-nginx or gateway-api"))
}

fn probe_tcp(args: &TcpArgs) -> ExitCode {
    let report = match runtime() {
        Ok(rt) => rt.block_on(tcp::connect(
            args.address,
            tokio::time::Instant::now() + args.timeout_seconds,
        )),
        Err(err) => {
            eprintln!("hopwatch: {err:#}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    if args.json {
        println!("{}", report.to_json());
    } else {
        println!("{}", report.render_text());
    }
    if report.result.is_ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_NOT_RESOLVED)
    }
}

fn probe_http(args: HttpArgs) -> ExitCode {
    let cli = http::CliArgs {
        url: args.url,
        connect_to: args.connect_to,
        ca_file: args.ca_file,
        insecure: args.insecure,
        json: args.json,
        timeout: args.timeout_seconds,
    };
    let outcome = match runtime() {
        Ok(rt) => rt.block_on(http::cli(&cli)),
        Err(err) => {
            eprintln!("hopwatch: {err:#}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    match outcome {
        Ok((text, code)) => {
            print!("{text}");
            ExitCode::from(code)
        }
        Err(err) => {
            eprintln!("hopwatch: {err}");
            ExitCode::from(err.exit_code())
        }
    }
}

/// Logs go to stderr, filtered by `--log.level`, else `RUST_LOG`, else `info`.
fn init_logging(level: Option<&'static str>, format: log::Format) {
    let filter = match level {
        Some(level) => EnvFilter::new(level),
        None => EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        log::Format::Text => builder.with_ansi(std::io::stderr().is_terminal()).init(),
        log::Format::Logfmt | log::Format::Json => {
            let json = format == log::Format::Json;
            builder
                .with_ansi(false)
                .event_format(log::Structured { json })
                .init();
        }
    }
}

fn parse_log_level(s: &str) -> Result<&'static str, String> {
    ["debug", "info", "warn", "error"]
        .into_iter()
        .find(|level| *level == s)
        .ok_or_else(|| format!("unknown level {s:?}: expected debug, info, warn or error"))
}

fn parse_log_format(s: &str) -> Result<log::Format, String> {
    match s {
        "text" => Ok(log::Format::Text),
        "logfmt" => Ok(log::Format::Logfmt),
        "json" => Ok(log::Format::Json),
        _ => Err(format!(
            "unknown format {s:?}: expected text, logfmt or json"
        )),
    }
}

/// One thread is plenty for probes that mostly wait, and keeps the footprint small.
fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build();
    runtime.context("cannot start the async runtime")
}

fn run(args: RunArgs) -> anyhow::Result<()> {
    let mut config = match &args.config {
        Some(path) => Config::load(path)?,
        None => {
            let in_cluster = std::env::var_os("KUBERNETES_SERVICE_HOST").is_some();
            tracing::info!("no --config: using the embedded default (in a cluster: {in_cluster})");
            agent::default_config(in_cluster)?
        }
    };
    if let Some(listen) = args.listen {
        config.listen = listen;
    }
    let web = match &args.web_config_file {
        Some(path) => Web::load(path)?,
        None => Web::open(),
    };
    runtime()?.block_on(async {
        let shutdown = shutdown_signal().context("cannot handle SIGTERM and SIGINT")?;
        agent::run(config, args.config, web, shutdown).await?;
        Ok(())
    })
}

/// Completes on SIGTERM (Kubernetes stopping the pod) or SIGINT (Ctrl-C).
fn shutdown_signal() -> std::io::Result<impl Future<Output = ()>> {
    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    Ok(async move {
        let name = tokio::select! {
            _ = terminate.recv() => "SIGTERM",
            _ = interrupt.recv() => "SIGINT",
        };
        tracing::info!("{name} received");
    })
}

fn check_config(file: &Path) -> ExitCode {
    match Config::load(file) {
        Ok(config) => {
            let n = agent::targets(&config).len();
            println!(
                "{}: ok ({n} {})",
                file.display(),
                if n == 1 { "target" } else { "targets" }
            );
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("{err}");
            ExitCode::from(EXIT_USAGE)
        }
    }
}

/// Prints "FILE: ok (what it turns on)" and the keys ignored, or the error and exits 2.
fn check_web(file: &Path) -> ExitCode {
    match hopwatch::webconfig::load(file) {
        Ok(web) => {
            for warning in &web.warnings {
                eprintln!("{}: {warning}", file.display());
            }
            let tls = if web.tls.is_some() {
                "TLS"
            } else {
                "plain HTTP"
            };
            let auth = if web.auth.is_open() {
                "no auth"
            } else {
                "auth on /metrics"
            };
            println!("{}: ok ({tls}, {auth})", file.display());
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("{err}");
            ExitCode::from(EXIT_USAGE)
        }
    }
}

fn probe_dns(args: &DnsArgs) -> ExitCode {
    let text = match std::fs::read_to_string(&args.resolv_conf) {
        Ok(text) => text,
        Err(err) => {
            eprintln!(
                "hopwatch: cannot read {}: {err}",
                args.resolv_conf.display()
            );
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let conf = ResolvConf::parse(&text, args.flavor);
    for note in &conf.notes {
        eprintln!("{}: {note}", args.resolv_conf.display());
    }
    let opts = LookupOptions {
        conf,
        flavor: args.flavor,
        qtypes: args.qtypes,
        server: args.server,
    };
    let report = match lookup(&args.name, &opts, args.timeout_seconds) {
        Ok(report) => report,
        Err(err) => {
            eprintln!("hopwatch: {err:#}");
            return ExitCode::FAILURE;
        }
    };
    print!(
        "{}",
        if args.json {
            render_json(&report)
        } else {
            render_text(&report)
        }
    );
    match report.result {
        Ok(()) => ExitCode::SUCCESS,
        Err(_) => ExitCode::from(EXIT_NOT_RESOLVED),
    }
}

fn lookup(name: &str, opts: &LookupOptions, timeout: Duration) -> anyhow::Result<LookupReport> {
    Ok(runtime()?.block_on(async {
        let deadline = tokio::time::Instant::now() + timeout;
        dns::lookup(name, opts, deadline).await
    }))
}

/// Every wire query in order, then the result, the addresses and the totals.
fn render_text(report: &LookupReport) -> String {
    let width = report
        .queries
        .iter()
        .map(|q| q.qname.len())
        .max()
        .unwrap_or(0)
        .max(5);
    let mut out = format!(
        "{:>3} {:width$}  {:5}  {:9}  {:11}  {:>8}\n",
        "#", "QNAME", "QTYPE", "TRANSPORT", "RCODE", "TIME"
    );
    for (i, q) in report.queries.iter().enumerate() {
        out += &format!(
            "{:>3} {:width$}  {:5}  {:9}  {:11}  {:>8.2} ms\n",
            i + 1,
            q.qname,
            q.qtype.as_str(),
            q.transport.as_str(),
            q.status.as_str(),
            millis(q.duration),
        );
    }
    let addresses: Vec<String> = report.addresses.iter().map(IpAddr::to_string).collect();
    out += &format!(
        "result: {} ({})\n",
        result_label(&report.result),
        report.flavor
    );
    out += &format!(
        "addresses: {}\n",
        if addresses.is_empty() {
            "none".into()
        } else {
            addresses.join(" ")
        }
    );
    out += &format!(
        "queries: {}, NXDOMAIN: {}, NODATA: {}, duration: {:.2} ms\n",
        report.wire_count(),
        report.count(QueryStatus::NxDomain),
        nodata(report),
        millis(report.duration),
    );
    out
}

fn millis(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

/// Replies that say the name exists but has no record of the asked type: NOERROR, no answers.
fn nodata(report: &LookupReport) -> usize {
    let nodata = |q: &&QueryRecord| q.status == QueryStatus::NoError && q.answers == 0;
    report.queries.iter().filter(nodata).count()
}

/// The `--json` output: exactly one object, on one line.
#[derive(Serialize)]
struct JsonReport<'a> {
    name: &'a str,
    flavor: &'static str,
    result: &'static str,
    answers: Vec<String>,
    duration_seconds: f64,
    queries: &'a [QueryRecord],
}

fn render_json(report: &LookupReport) -> String {
    let json = JsonReport {
        name: &report.name,
        flavor: report.flavor.as_str(),
        result: result_label(&report.result),
        answers: report.addresses.iter().map(IpAddr::to_string).collect(),
        duration_seconds: report.duration.as_secs_f64(),
        queries: &report.queries,
    };
    // Serializing plain strings and numbers cannot fail.
    let line = serde_json::to_string(&json).unwrap_or_default();
    format!("{line}\n")
}

fn parse_flavor(s: &str) -> Result<Flavor, String> {
    Flavor::parse(s)
        .ok_or_else(|| format!("unknown flavor {s:?}: expected glibc, musl, musl-legacy or go"))
}

/// `IP`, `IP:PORT`, `[IPv6]` or `[IPv6]:PORT`; the port defaults to 53.
fn parse_server(s: &str) -> Result<SocketAddr, String> {
    let bare = s
        .strip_prefix('[')
        .and_then(|rest| rest.strip_suffix(']'))
        .unwrap_or(s);
    let addr = match bare.parse::<IpAddr>() {
        Ok(ip) => SocketAddr::new(ip, 53),
        Err(_) => s
            .parse()
            .map_err(|_| format!("{s:?} is not IP, IP:PORT or [IPv6]:PORT"))?,
    };
    if addr.port() == 0 {
        return Err(format!("{s:?}: port 0 cannot be sent to"));
    }
    Ok(addr)
}

fn parse_qtypes(s: &str) -> Result<QueryTypes, String> {
    let mut types: Vec<String> = s
        .split(',')
        .map(|t| t.trim().to_ascii_uppercase())
        .collect();
    types.sort();
    types.dedup();
    match types.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        ["A"] => Ok(QueryTypes::A),
        ["AAAA"] => Ok(QueryTypes::Aaaa),
        ["A", "AAAA"] => Ok(QueryTypes::Both),
        _ => Err(format!("{s:?}: expected A, AAAA or A,AAAA")),
    }
}

fn parse_seconds(s: &str) -> Result<Duration, String> {
    let seconds: f64 = s
        .parse()
        .map_err(|_| format!("{s:?} is not a number of seconds"))?;
    if !(seconds > 0.0 && seconds <= 86_400.0) {
        return Err(format!(
            "{s}: expected more than 0 and at most 86400 seconds"
        ));
    }
    Ok(Duration::from_secs_f64(seconds))
}

#[cfg(test)]
mod tests {
    use hopwatch::probe::Failure;
    use hopwatch::probe::dns::{Mode, Qtype, Transport};

    use super::*;

    fn query(qname: &str, qtype: Qtype, status: QueryStatus, answers: u16) -> QueryRecord {
        QueryRecord {
            qname: qname.to_string(),
            qtype,
            transport: Transport::Udp,
            server: SocketAddr::from(([127, 0, 0, 1], 53)),
            status,
            duration: Duration::from_micros(1250),
            answers,
            truncated: false,
        }
    }

    fn report() -> LookupReport {
        let nx = QueryStatus::NxDomain;
        LookupReport {
            name: "web".to_string(),
            mode: Mode::Search,
            flavor: Flavor::Musl,
            result: Ok(()),
            addresses: vec![[192, 0, 2, 10].into()],
            duration: Duration::from_micros(3750),
            queries: vec![
                query("web.default.svc.cluster.local.", Qtype::A, nx, 0),
                query("web.default.svc.cluster.local.", Qtype::Aaaa, nx, 0),
                query("web.", Qtype::A, QueryStatus::NoError, 1),
                query("web.", Qtype::Aaaa, QueryStatus::NoError, 0),
            ],
            discarded: hopwatch::probe::dns::Discards::default(),
        }
    }

    #[test]
    fn text_lists_every_query_then_the_totals() {
        let expected = concat!(
            "  # QNAME                           QTYPE  TRANSPORT  RCODE            TIME\n",
            "  1 web.default.svc.cluster.local.  A      udp        NXDOMAIN         1.25 ms\n",
            "  2 web.default.svc.cluster.local.  AAAA   udp        NXDOMAIN         1.25 ms\n",
            "  3 web.                            A      udp        NOERROR          1.25 ms\n",
            "  4 web.                            AAAA   udp        NOERROR          1.25 ms\n",
            "result: success (musl)\n",
            "addresses: 192.0.2.10\n",
            "queries: 4, NXDOMAIN: 2, NODATA: 1, duration: 3.75 ms\n",
        );
        assert_eq!(render_text(&report()), expected);
    }

    #[test]
    fn json_is_one_object_with_the_documented_fields() {
        let mut report = report();
        report.result = Err(Failure::Timeout);
        report.queries[3].status = QueryStatus::Timeout;
        let expected = concat!(
            r#"{"name":"web","flavor":"musl","result":"timeout","answers":["192.0.2.10"],"#,
            r#""duration_seconds":0.00375,"queries":["#,
            r#"{"qname":"web.default.svc.cluster.local.","qtype":"A","transport":"udp","rcode":"NXDOMAIN","duration_seconds":0.00125},"#,
            r#"{"qname":"web.default.svc.cluster.local.","qtype":"AAAA","transport":"udp","rcode":"NXDOMAIN","duration_seconds":0.00125},"#,
            r#"{"qname":"web.","qtype":"A","transport":"udp","rcode":"NOERROR","duration_seconds":0.00125},"#,
            r#"{"qname":"web.","qtype":"AAAA","transport":"udp","rcode":"TIMEOUT","duration_seconds":0.00125}]}"#,
            "\n"
        );
        assert_eq!(render_json(&report), expected);
    }

    #[test]
    fn servers_default_to_port_53() {
        assert_eq!(
            parse_server("10.96.0.10"),
            Ok("10.96.0.10:53".parse().unwrap())
        );
        assert_eq!(
            parse_server("127.0.0.1:5353"),
            Ok("127.0.0.1:5353".parse().unwrap())
        );
        assert_eq!(
            parse_server("[fd00::a]"),
            Ok("[fd00::a]:53".parse().unwrap())
        );
        assert_eq!(parse_server("fd00::a"), Ok("[fd00::a]:53".parse().unwrap()));
        assert_eq!(
            parse_server("[fd00::a]:54"),
            Ok("[fd00::a]:54".parse().unwrap())
        );
        assert_eq!(
            parse_server("kube-dns"),
            Err("\"kube-dns\" is not IP, IP:PORT or [IPv6]:PORT".into())
        );
        assert_eq!(
            parse_server("1.2.3.4:0"),
            Err("\"1.2.3.4:0\": port 0 cannot be sent to".into())
        );
    }

    #[test]
    fn qtypes_flavors_and_seconds() {
        assert_eq!(parse_qtypes("A"), Ok(QueryTypes::A));
        assert_eq!(parse_qtypes("aaaa"), Ok(QueryTypes::Aaaa));
        assert_eq!(parse_qtypes("AAAA,A"), Ok(QueryTypes::Both));
        assert_eq!(
            parse_qtypes("MX"),
            Err("\"MX\": expected A, AAAA or A,AAAA".into())
        );
        assert_eq!(parse_flavor("musl-legacy"), Ok(Flavor::MuslLegacy));
        assert!(parse_flavor("bionic").is_err());
        assert_eq!(parse_seconds("2.5"), Ok(Duration::from_millis(2500)));
        assert!(parse_seconds("0").is_err());
        assert!(parse_seconds("NaN").is_err());
    }

    #[test]
    fn the_command_line_parses() {
        let cli = Cli::try_parse_from([
            "hopwatch",
            "probe",
            "dns",
            "web",
            "--server",
            "127.0.0.1:5353",
        ]);
        let Command::Probe(ProbeCommand::Dns(args)) = cli.unwrap().command else {
            panic!("not probe dns");
        };
        assert_eq!(args.server, Some("127.0.0.1:5353".parse().unwrap()));
        assert_eq!(
            (args.flavor, args.qtypes, args.json),
            (Flavor::Glibc, QueryTypes::Both, false)
        );
        assert_eq!(args.timeout_seconds, Duration::from_secs(30));
        let bad = Cli::try_parse_from(["hopwatch", "probe", "dns", "web", "--flavor", "bionic"]);
        assert_eq!(bad.unwrap_err().exit_code(), 2);
        let run = Cli::try_parse_from(["hopwatch", "run", "--listen", "127.0.0.1:0"]).unwrap();
        assert!(matches!(
            run.command,
            Command::Run(RunArgs {
                config: None,
                listen: Some(_),
                web_config_file: None,
            })
        ));
    }
}
