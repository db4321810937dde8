//! One lookup, walked as the emulated resolver walks it, with every wire query recorded.
//!
//! The walk is generic over a [`Wire`], so the same code runs on real sockets ([`super::wire`])
//! and, in unit tests, on a simulated network in virtual time. Which names are tried and when
//! the walk stops comes from [`super::plan`]; how one step is sent (sockets, retries, TCP
//! fallback) is each flavor's own: [`super::glibc`], [`super::musl`], [`super::golang`].

use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};

use tokio::time::Instant;

use super::log::Log;
use super::message::Reply;
use super::plan::{self, Next, Origin, StepResult};
use super::{
    Flavor, LookupOptions, LookupReport, Mode, Qtype, QueryStatus, QueryTypes, ResolvConf,
};
use crate::probe::Failure;

/// The network a walk talks to.
pub trait Wire: Sync {
    type Udp: Datagram + Send + Sync;
    type Tcp: Stream + Send;

    /// A new UDP socket; connected to `peer` when given, so ICMP errors are reported.
    fn udp(&self, peer: Option<SocketAddr>) -> impl Future<Output = io::Result<Self::Udp>> + Send;

    /// A new TCP connection.
    fn tcp(&self, server: SocketAddr) -> impl Future<Output = io::Result<Self::Tcp>> + Send;
}

/// A UDP socket.
pub trait Datagram {
    fn send_to(&self, bytes: &[u8], to: SocketAddr) -> impl Future<Output = io::Result<()>> + Send;

    /// Sends every message to the connected peer in one system call (`sendmmsg`), as glibc
    /// sends an A+AAAA pair, so all of them leave before an ICMP error can come back.
    /// Returns how many left, in order; an error only when none did.
    fn send_all(&self, messages: &[&[u8]]) -> impl Future<Output = io::Result<usize>> + Send;

    /// The next datagram. Cancel-safe.
    fn recv_from(&self) -> impl Future<Output = io::Result<(Vec<u8>, SocketAddr)>> + Send;
}

/// A TCP connection carrying length-prefixed DNS messages.
pub trait Stream {
    fn send(&mut self, bytes: &[u8]) -> impl Future<Output = io::Result<()>> + Send;
    fn recv(&mut self) -> impl Future<Output = io::Result<Vec<u8>>> + Send;
}

/// How one step ended, with the addresses of its answer.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Step {
    pub result: StepResult,
    pub addresses: Vec<IpAddr>,
    /// The most telling error status seen, to name the failure (REFUSED vs FORMERR …).
    pub status: Option<QueryStatus>,
}

impl Step {
    pub(super) fn of(result: StepResult) -> Step {
        Step {
            result,
            addresses: Vec::new(),
            status: None,
        }
    }
}

/// What a flavor's step needs: the wire, the configuration, the clock and the log.
pub(super) struct Ctx<'a, W: Wire> {
    pub wire: &'a W,
    pub conf: &'a ResolvConf,
    pub servers: Vec<SocketAddr>,
    pub qtypes: &'static [Qtype],
    pub deadline: Instant,
    pub log: Log,
    /// Set when the lookup's deadline passed: the walk ends at once.
    pub expired: bool,
    /// glibc switches a resolver to single-request mode after a reply went missing.
    pub sticky_single_request: bool,
    pub sticky_single_request_reopen: bool,
    /// musl's finished steps whose other servers' replies are still due.
    pub lingering: Vec<super::linger::Lingering<W::Udp>>,
}

impl<W: Wire> Ctx<'_, W> {
    /// `until`, or the lookup's deadline if that comes first.
    pub(super) fn bound(&self, until: Instant) -> Instant {
        until.min(self.deadline)
    }

    /// Marks the lookup as out of time when `now` is at the deadline.
    pub(super) fn check_deadline(&mut self) -> bool {
        if Instant::now() >= self.deadline {
            self.expired = true;
        }
        self.expired
    }

    /// A fresh random query ID.
    pub(super) fn id(&self) -> u16 {
        rand::random()
    }
}

/// Looks `name` up as `opts.flavor` would, sending through `wire`, until `deadline`. Replies
/// still due when the answer is known (musl's other nameservers) are collected after it.
pub async fn lookup<W: Wire>(
    wire: &W,
    name: &str,
    opts: &LookupOptions,
    deadline: Instant,
) -> LookupReport {
    run(wire, name, opts, deadline, Late::Collect).await
}

/// Like [`lookup`], but returns as soon as the answer is known: queries still waiting for a
/// reply then are `TIMEOUT`. For callers that want the answer, not the query accounting.
pub async fn answer<W: Wire>(
    wire: &W,
    name: &str,
    opts: &LookupOptions,
    deadline: Instant,
) -> LookupReport {
    run(wire, name, opts, deadline, Late::Ignore).await
}

/// What to do with replies still due once the application has its answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Late {
    Collect,
    Ignore,
}

async fn run<W: Wire>(
    wire: &W,
    name: &str,
    opts: &LookupOptions,
    deadline: Instant,
    late: Late,
) -> LookupReport {
    let start = Instant::now();
    let mode = if name.ends_with('.') {
        Mode::Fqdn
    } else {
        Mode::Search
    };
    let mut ctx = Ctx {
        wire,
        conf: &opts.conf,
        servers: opts
            .server
            .map_or_else(|| opts.conf.nameservers.clone(), |s| vec![s]),
        qtypes: qtypes(opts),
        deadline,
        log: Log::new(),
        expired: false,
        sticky_single_request: false,
        sticky_single_request_reopen: false,
        lingering: Vec::new(),
    };
    let (result, addresses) = walk_with_buffer(&mut ctx, name, opts.flavor).await;
    // The application has its answer now; late replies are read after, off its clock.
    let duration = start.elapsed();
    if late == Late::Collect {
        super::linger::finish(&mut ctx).await;
    }
    ctx.log.give_up_all();
    let (queries, discarded) = ctx.log.into_parts();
    LookupReport {
        name: name.to_string(),
        mode,
        flavor: opts.flavor,
        result,
        addresses,
        duration,
        queries,
        discarded,
    }
}

fn qtypes(opts: &LookupOptions) -> &'static [Qtype] {
    if opts.flavor == Flavor::Glibc && opts.conf.no_aaaa {
        return QueryTypes::A.types();
    }
    opts.qtypes.types()
}

/// glibc's getaddrinfo starts with a 1 KiB buffer for the answer's addresses and, when they do
/// not fit, doubles it and walks the whole search list again.
const GLIBC_FIRST_BUFFER: usize = 1024;
const GLIBC_LAST_BUFFER: usize = 64 * 1024;

/// Bytes glibc needs for `addresses` answers to `qname`: one 40-byte `gaih_addrtuple` each,
/// plus the name.
fn glibc_buffer_needed(addresses: usize, qname_len: usize) -> usize {
    40 * addresses + qname_len + 1
}

async fn walk_with_buffer<W: Wire>(
    ctx: &mut Ctx<'_, W>,
    name: &str,
    flavor: Flavor,
) -> (Result<(), Failure>, Vec<IpAddr>) {
    let mut buffer = GLIBC_FIRST_BUFFER;
    loop {
        let (result, addresses, qname) = walk(ctx, name, flavor).await;
        let needed = glibc_buffer_needed(addresses.len(), qname.len());
        if flavor != Flavor::Glibc
            || result.is_err()
            || needed <= buffer
            || buffer >= GLIBC_LAST_BUFFER
        {
            return (result, addresses);
        }
        buffer *= 2;
    }
}

/// One pass over the candidates. Returns the result, the addresses, and the answering name.
async fn walk<W: Wire>(
    ctx: &mut Ctx<'_, W>,
    name: &str,
    flavor: Flavor,
) -> (Result<(), Failure>, Vec<IpAddr>, String) {
    let mut steps: Vec<(Origin, Step)> = Vec::new();
    let mut leaving_search = false;
    for candidate in plan::candidates(name, ctx.conf, flavor) {
        if leaving_search && matches!(candidate.origin, Origin::Search(_) | Origin::TooLong) {
            continue;
        }
        let step = match candidate.origin {
            Origin::TooLong => Step {
                status: Some(QueryStatus::FormErr),
                ..Step::of(StepResult::Error)
            },
            _ => send_step(ctx, &candidate.qname, flavor).await,
        };
        if ctx.expired {
            return (Err(Failure::Timeout), Vec::new(), candidate.qname);
        }
        let next = plan::next(flavor, candidate.origin, step.result);
        if matches!(step.result, StepResult::Answer { .. }) && next == Next::Stop {
            let result = if step.addresses.is_empty() {
                Err(Failure::NoAddress)
            } else {
                Ok(())
            };
            return (result, step.addresses, candidate.qname);
        }
        steps.push((candidate.origin, step));
        match next {
            Next::Stop => break,
            Next::Continue => {}
            Next::LeaveSearch => leaving_search = true,
        }
    }
    (
        Err(final_failure(flavor, &steps)),
        Vec::new(),
        String::new(),
    )
}

async fn send_step<W: Wire>(ctx: &mut Ctx<'_, W>, qname: &str, flavor: Flavor) -> Step {
    match flavor {
        Flavor::Glibc => super::glibc::step(ctx, qname).await,
        Flavor::Musl => super::musl::step(ctx, qname, true).await,
        Flavor::MuslLegacy => super::musl::step(ctx, qname, false).await,
        Flavor::Go => super::golang::step(ctx, qname).await,
    }
}

/// The failure the application sees when no step answered.
///
/// glibc reports the as-is-first try's error if there was one, else NODATA if any step had
/// it, else SERVFAIL if any step had it, else the last step's. Go reports the first error
/// unless the as-is name failed. musl reports the step it stopped at.
fn final_failure(flavor: Flavor, steps: &[(Origin, Step)]) -> Failure {
    let pick = match flavor {
        Flavor::Glibc => steps
            .iter()
            .find(|(o, _)| *o == Origin::AsIsFirst)
            .or_else(|| steps.iter().find(|(_, s)| s.result == StepResult::NoData))
            .or_else(|| steps.iter().find(|(_, s)| s.result == StepResult::ServFail))
            .or(steps.last()),
        Flavor::Go => steps
            .iter()
            .find(|(o, _)| matches!(o, Origin::AsIsFirst | Origin::AsIsLast))
            .or(steps.first()),
        Flavor::Musl | Flavor::MuslLegacy => steps.last(),
    };
    pick.map_or(Failure::Nxdomain, |(_, step)| failure(step))
}

fn failure(step: &Step) -> Failure {
    match step.result {
        StepResult::Answer { .. } => Failure::NoAddress,
        StepResult::NxDomain => Failure::Nxdomain,
        StepResult::NoData => Failure::Nodata,
        StepResult::ServFail => Failure::Servfail,
        StepResult::Timeout => Failure::Timeout,
        StepResult::ConnRefused => Failure::Unreachable,
        StepResult::Error if step.status == Some(QueryStatus::Refused) => Failure::Refused,
        StepResult::Error => Failure::DnsError,
    }
}

/// The step result of the replies to one step's queries, as glibc and Go read a pair: an
/// answer if any reply has one, else the first non-NOERROR rcode in query order, else NODATA.
pub(super) fn classify(replies: &[&Reply]) -> Step {
    let addresses: Vec<IpAddr> = replies
        .iter()
        .flat_map(|r| r.addresses.iter().copied())
        .collect();
    if replies.iter().any(|r| r.has_answer()) {
        return Step {
            result: StepResult::Answer {
                addresses: !addresses.is_empty(),
            },
            addresses,
            status: None,
        };
    }
    let status = replies
        .iter()
        .map(|r| r.status)
        .find(|s| *s != QueryStatus::NoError);
    let result = match status {
        None => StepResult::NoData,
        Some(QueryStatus::NxDomain) => StepResult::NxDomain,
        Some(QueryStatus::ServFail) => StepResult::ServFail,
        Some(_) => StepResult::Error,
    };
    Step {
        result,
        addresses: Vec::new(),
        status,
    }
}

/// SERVFAIL, NOTIMP and REFUSED make glibc and Go ask the next server.
pub(super) fn is_server_error(reply: &Reply) -> bool {
    matches!(
        reply.status,
        QueryStatus::ServFail | QueryStatus::NotImp | QueryStatus::Refused
    ) || reply.is_lame()
}

/// The step result when every try failed: the last server error, else a closed port, else
/// a timeout.
pub(super) fn failed_tries(last_error: Option<&Reply>, refused: bool) -> Step {
    match last_error {
        Some(reply) if reply.status == QueryStatus::ServFail => Step {
            status: Some(reply.status),
            ..Step::of(StepResult::ServFail)
        },
        Some(reply) => Step {
            status: Some(reply.status),
            ..Step::of(StepResult::Error)
        },
        None if refused => Step::of(StepResult::ConnRefused),
        None => Step::of(StepResult::Timeout),
    }
}
