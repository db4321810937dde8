//! How Go's pure resolver sends one search step (`src/net/dnsclient_unix.go`).
//!
//! Each query type runs on its own (in parallel unless `single-request`), and each exchange
//! uses a new connected UDP socket with EDNS0 (1232 bytes). `tryOneName` goes over
//! `attempts` × nameservers: NXDOMAIN and NODATA end it, SERVFAIL and other rcodes, lame
//! referrals and errors move to the next server. A truncated reply is asked again over TCP.
//! Every query has its own random ID and its own socket, on a port the kernel picks.

use std::net::SocketAddr;

use tokio::time::{Instant, timeout_at};

use super::accept;
use super::log::Log;
use super::message::{self, Outgoing, Reply};
use super::plan::StepResult;
use super::walk::{Ctx, Datagram, Step, Stream, Wire};
use super::{Qtype, QueryStatus, ResolvConf, Transport};

/// Go always advertises this EDNS0 payload size.
const EDNS_PAYLOAD: u16 = 1232;

/// How `tryOneName` ended for one query type.
#[derive(Debug)]
enum Outcome {
    /// A reply that ends the try: an answer, NODATA or NXDOMAIN.
    Reply(Reply),
    /// Every exchange failed; the last failure.
    Failed(Failure),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Failure {
    Timeout,
    PortClosed,
    Status(QueryStatus),
    /// A message over TCP that is not the reply (`errInvalidDNSResponse`).
    Invalid,
}

/// What one query type's tries need, shared read-only between the parallel types.
struct Shared<'a, W: Wire> {
    wire: &'a W,
    conf: &'a ResolvConf,
    servers: &'a [SocketAddr],
    qname: &'a str,
    deadline: Instant,
}

/// Sends one step: every query type for `qname`, each with Go's retries.
pub(super) async fn step<W: Wire>(ctx: &mut Ctx<'_, W>, qname: &str) -> Step {
    let shared = Shared {
        wire: ctx.wire,
        conf: ctx.conf,
        servers: &ctx.servers,
        qname,
        deadline: ctx.deadline,
    };
    let mut outcomes = Vec::new();
    let mut logs = Vec::new();
    if ctx.conf.single_request || ctx.conf.single_request_reopen || ctx.qtypes.len() == 1 {
        for qtype in ctx.qtypes {
            let (outcome, log) = try_one_name(&shared, *qtype).await;
            outcomes.push(outcome);
            logs.push(log);
        }
    } else {
        // Go starts the two lookups on goroutines and which takes the next rotate offset
        // first is up to its scheduler; here A does (it is polled first).
        let (a, b) = futures::join!(
            try_one_name(&shared, Qtype::A),
            try_one_name(&shared, Qtype::Aaaa)
        );
        outcomes.extend([a.0, b.0]);
        logs.extend([a.1, b.1]);
    }
    for log in logs {
        ctx.log.merge(log);
    }
    ctx.check_deadline();
    result(&outcomes)
}

async fn try_one_name<W: Wire>(shared: &Shared<'_, W>, qtype: Qtype) -> (Outcome, Log) {
    let mut log = Log::new();
    let mut last = Failure::Timeout;
    let offset = if shared.conf.rotate {
        shared.conf.server_offset.next()
    } else {
        0
    };
    for _ in 0..shared.conf.attempts {
        for server in rotated(shared.servers, offset) {
            if Instant::now() >= shared.deadline {
                return (Outcome::Failed(Failure::Timeout), log);
            }
            let until = shared.deadline.min(Instant::now() + shared.conf.timeout);
            match exchange(shared, &mut log, server, qtype, until).await {
                Err(failure) => last = failure,
                Ok(reply) if reply.status == QueryStatus::NxDomain => {
                    return (Outcome::Reply(reply), log);
                }
                Ok(reply) if reply.status != QueryStatus::NoError => {
                    last = Failure::Status(reply.status)
                }
                Ok(reply) if reply.is_lame() => last = Failure::Status(QueryStatus::NoError),
                Ok(reply) => return (Outcome::Reply(reply), log),
            }
        }
    }
    (Outcome::Failed(last), log)
}

/// The servers in the order `tryOneName` asks them: from `offset`, wrapping around.
fn rotated(servers: &[SocketAddr], offset: u32) -> impl Iterator<Item = SocketAddr> + '_ {
    let count = u32::try_from(servers.len()).unwrap_or(u32::MAX).max(1);
    (0..count).filter_map(move |j| {
        let at = offset.wrapping_add(j) % count;
        servers.get(usize::try_from(at).ok()?).copied()
    })
}

/// One exchange with one server: UDP, then TCP if the reply was truncated (or TCP only
/// with `use-vc`).
async fn exchange<W: Wire>(
    shared: &Shared<'_, W>,
    log: &mut Log,
    server: SocketAddr,
    qtype: Qtype,
    until: Instant,
) -> Result<Reply, Failure> {
    let id: u16 = rand::random();
    let query = message::build(
        id,
        shared.qname,
        qtype,
        Some(EDNS_PAYLOAD),
        shared.conf.trust_ad,
    )
    .ok_or(Failure::Status(QueryStatus::FormErr))?;
    if !shared.conf.use_vc {
        let reply = over_udp(shared.wire, log, server, &query, until).await?;
        if !reply.truncated {
            return Ok(reply);
        }
    }
    over_tcp(shared.wire, log, server, &query, until).await
}

async fn over_udp<W: Wire>(
    wire: &W,
    log: &mut Log,
    server: SocketAddr,
    query: &Outgoing,
    until: Instant,
) -> Result<Reply, Failure> {
    let socket = wire
        .udp(Some(server))
        .await
        .map_err(|_| Failure::PortClosed)?;
    let index = log.sent(query, Transport::Udp, server);
    if socket.send_to(&query.bytes, server).await.is_err() {
        log.not_sent(index);
        return Err(Failure::PortClosed);
    }
    loop {
        match timeout_at(until, socket.recv_from()).await {
            Err(_) => {
                log.close(index, QueryStatus::Timeout);
                return Err(Failure::Timeout);
            }
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                log.close(index, QueryStatus::Unreachable);
                return Err(Failure::PortClosed);
            }
            Ok(Err(_)) => continue,
            // Go ignores what is not the reply and reads on (golang.org/issue/13281).
            Ok(Ok((bytes, _))) => match accept::go(&bytes, query) {
                Ok(reply) => {
                    log.answered(&reply, server, Transport::Udp);
                    return Ok(reply);
                }
                Err(reason) => log.discard(reason),
            },
        }
    }
}

async fn over_tcp<W: Wire>(
    wire: &W,
    log: &mut Log,
    server: SocketAddr,
    query: &Outgoing,
    until: Instant,
) -> Result<Reply, Failure> {
    let mut conn = match timeout_at(until, wire.tcp(server)).await {
        Ok(Ok(conn)) => conn,
        Ok(Err(_)) => return Err(Failure::PortClosed),
        Err(_) => return Err(Failure::Timeout),
    };
    let index = log.sent(query, Transport::Tcp, server);
    if conn.send(&query.bytes).await.is_err() {
        log.not_sent(index);
        return Err(Failure::PortClosed);
    }
    let mut invalid = false;
    let reply = super::glibc::read_reply(&mut conn, until, log, |bytes| {
        let taken = accept::go_tcp(bytes, query);
        invalid = matches!(taken, accept::OnStream::Ends(_));
        taken
    })
    .await;
    match reply {
        Some(reply) if !reply.truncated => {
            log.answered(&reply, server, Transport::Tcp);
            Ok(reply)
        }
        Some(reply) => {
            log.answered(&reply, server, Transport::Tcp);
            Err(Failure::Status(reply.status))
        }
        None => {
            log.close(index, QueryStatus::Timeout);
            Err(if invalid {
                Failure::Invalid
            } else {
                Failure::Timeout
            })
        }
    }
}

/// The step ends with addresses if any type found some; otherwise its result names the first
/// type's reason, as Go's `lastErr` does.
fn result(outcomes: &[Outcome]) -> Step {
    let replies: Vec<&Reply> = outcomes
        .iter()
        .filter_map(|o| match o {
            Outcome::Reply(r) => Some(r),
            Outcome::Failed(_) => None,
        })
        .collect();
    let addresses: Vec<_> = replies
        .iter()
        .flat_map(|r| r.addresses.iter().copied())
        .collect();
    if !addresses.is_empty() {
        return Step {
            result: StepResult::Answer { addresses: true },
            addresses,
            status: None,
        };
    }
    let first = outcomes.first().map(|o| match o {
        Outcome::Reply(r) if r.has_answer() => Step::of(StepResult::Answer { addresses: false }),
        Outcome::Reply(r) if r.status == QueryStatus::NxDomain => Step::of(StepResult::NxDomain),
        Outcome::Reply(_) => Step::of(StepResult::NoData),
        Outcome::Failed(Failure::Timeout) => Step::of(StepResult::Timeout),
        Outcome::Failed(Failure::PortClosed) => Step::of(StepResult::ConnRefused),
        Outcome::Failed(Failure::Status(QueryStatus::ServFail)) => Step {
            status: Some(QueryStatus::ServFail),
            ..Step::of(StepResult::ServFail)
        },
        Outcome::Failed(Failure::Invalid) => Step::of(StepResult::Error),
        Outcome::Failed(Failure::Status(s)) => Step {
            status: Some(*s),
            ..Step::of(StepResult::Error)
        },
    });
    first.unwrap_or_else(|| Step::of(StepResult::NoData))
}
