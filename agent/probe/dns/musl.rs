//! How musl sends one search step (`src/network/res_msend.c`, `__res_msend_rc`).
//!
//! musl has one time budget per step, `timeout`. Every query goes to every nameserver at once
//! from one unconnected socket (so ICMP errors are never seen), and unanswered queries are
//! sent again every `timeout / attempts`. Only NOERROR and NXDOMAIN replies are accepted: a
//! SERVFAIL is re-sent at once (at most twice per query per interval) and any other rcode is
//! ignored, so both end in waiting out the budget. musl 1.2.4 added TCP for truncated replies;
//! earlier versions take the truncated reply as it is. The socket is bound to port 0, so the
//! kernel picks a new ephemeral source port for every step.

use std::net::SocketAddr;

use tokio::time::{Instant, timeout_at};

use super::accept::{self, Discard};
use super::linger::{self, Arrival};
use super::message::{self, Outgoing, Reply};
use super::plan::StepResult;
use super::walk::{Ctx, Datagram, Step, Stream, Wire};
use super::{QueryStatus, Transport};

/// Sends one step: the queries for `qname`, with musl's retransmissions.
pub(super) async fn step<W: Wire>(ctx: &mut Ctx<'_, W>, qname: &str, tcp_fallback: bool) -> Step {
    let Some(queries) = build(ctx, qname) else {
        // musl skips a name it cannot encode and goes on with the search.
        return Step::of(StepResult::NxDomain);
    };
    let servers = same_family(&ctx.servers);
    let Ok(socket) = ctx.wire.udp(None).await else {
        return Step::of(StepResult::Timeout);
    };
    let mut state = State {
        answers: vec![None; queries.len()],
        errors: vec![None; queries.len()],
        servfail_retry: 0,
        sent: Vec::new(),
    };
    let start = Instant::now();
    let end = ctx.bound(start + ctx.conf.timeout);
    let interval = ctx.conf.timeout / u32::from(ctx.conf.attempts.max(1));
    let mut last_send: Option<Instant> = None;
    while state.answers.iter().any(Option::is_none) {
        let now = Instant::now();
        if now >= end {
            ctx.check_deadline();
            break;
        }
        if last_send.is_none_or(|t| now - t >= interval) {
            send_unanswered(ctx, &socket, &servers, &queries, &mut state).await;
            last_send = Some(now);
            state.servfail_retry = 2 * queries.len();
        }
        let mut wake = end.min(last_send.unwrap_or(now) + interval);
        if let Some(expiry) = linger::next_expiry(&ctx.lingering) {
            wake = wake.min(expiry);
        }
        let arrival = timeout_at(wake, linger::recv_any(Some(&socket), &ctx.lingering)).await;
        match arrival {
            Ok(Arrival::Current(Ok((bytes, from)))) => {
                let mut read = Read {
                    socket: &socket,
                    servers: &servers,
                    queries: &queries,
                    state: &mut state,
                    tcp_fallback,
                    end,
                };
                read.take(ctx, from, &bytes).await;
            }
            Ok(Arrival::Late(index, Ok((bytes, from)))) => {
                linger::take_late(ctx, index, &bytes, from)
            }
            _ => {}
        }
        linger::expire(ctx, Instant::now());
    }
    if state.answers.iter().all(Option::is_some) {
        let sent = std::mem::take(&mut state.sent);
        linger::keep(ctx, socket, servers, queries, sent);
    } else {
        for &index in &state.sent {
            ctx.log.close(index, QueryStatus::Timeout);
        }
    }
    result(&state)
}

struct State {
    answers: Vec<Option<Reply>>,
    /// The last error rcode seen per query, for naming the failure.
    errors: Vec<Option<QueryStatus>>,
    servfail_retry: usize,
    /// This step's queries in the log.
    sent: Vec<usize>,
}

fn build<W: Wire>(ctx: &Ctx<'_, W>, qname: &str) -> Option<Vec<Outgoing>> {
    let first = ctx.id();
    ctx.qtypes
        .iter()
        .enumerate()
        .map(|(i, qtype)| message::build(first.wrapping_add(i as u16), qname, *qtype, None, false))
        .collect()
}

/// One socket serves one address family; musl maps IPv4 servers into an IPv6 socket, which
/// is not emulated: servers of the other family than the first are left out.
fn same_family(servers: &[SocketAddr]) -> Vec<SocketAddr> {
    let v6 = servers.first().is_some_and(SocketAddr::is_ipv6);
    servers
        .iter()
        .copied()
        .filter(|s| s.is_ipv6() == v6)
        .collect()
}

async fn send_unanswered<D: Datagram, W: Wire>(
    ctx: &mut Ctx<'_, W>,
    socket: &D,
    servers: &[SocketAddr],
    queries: &[Outgoing],
    state: &mut State,
) {
    for (query, answer) in queries.iter().zip(&state.answers) {
        if answer.is_some() {
            continue;
        }
        for &server in servers {
            state.sent.extend(send(ctx, socket, query, server).await);
        }
    }
}

/// Sends one query to one server; a failed send is recorded as never sent. Returns the
/// query's place in the log.
async fn send<D: Datagram, W: Wire>(
    ctx: &mut Ctx<'_, W>,
    socket: &D,
    query: &Outgoing,
    server: SocketAddr,
) -> Option<usize> {
    let index = ctx.log.sent(query, Transport::Udp, server);
    if socket.send_to(&query.bytes, server).await.is_err() {
        ctx.log.not_sent(index);
        return None;
    }
    Some(index)
}

/// What reading one step's replies needs.
struct Read<'a, D> {
    socket: &'a D,
    servers: &'a [SocketAddr],
    queries: &'a [Outgoing],
    state: &'a mut State,
    tcp_fallback: bool,
    end: Instant,
}

impl<D: Datagram> Read<'_, D> {
    /// Handles one datagram: musl takes it by source and ID alone ([`accept::musl`]); what
    /// it drops is counted. A nameserver's reply to a query another server answered first
    /// is recorded, and ignored as musl ignores it.
    async fn take<W: Wire>(&mut self, ctx: &mut Ctx<'_, W>, from: SocketAddr, bytes: &[u8]) {
        let (i, reply) = match accept::musl(bytes, from, self.servers, self.queries) {
            Ok(taken) => taken,
            Err(reason) => return ctx.log.discard(reason),
        };
        if ctx.log.answered(&reply, from, Transport::Udp).is_none() {
            return ctx.log.discard(Discard::IdMismatch);
        }
        if self.state.answers[i].is_some() {
            return;
        }
        let query = &self.queries[i];
        match reply.status {
            QueryStatus::NoError | QueryStatus::NxDomain
                if reply.truncated && self.tcp_fallback =>
            {
                self.state.answers[i] = over_tcp(ctx, from, query, self.end).await;
            }
            QueryStatus::NoError | QueryStatus::NxDomain => self.state.answers[i] = Some(reply),
            QueryStatus::ServFail => {
                self.state.errors[i] = Some(reply.status);
                if self.state.servfail_retry > 0 {
                    self.state.servfail_retry -= 1;
                    let index = send(ctx, self.socket, query, from).await;
                    self.state.sent.extend(index);
                }
            }
            other => self.state.errors[i] = Some(other),
        }
    }
}

async fn over_tcp<W: Wire>(
    ctx: &mut Ctx<'_, W>,
    server: SocketAddr,
    query: &Outgoing,
    end: Instant,
) -> Option<Reply> {
    let mut conn = timeout_at(end, ctx.wire.tcp(server)).await.ok()?.ok()?;
    let index = ctx.log.sent(query, Transport::Tcp, server);
    if conn.send(&query.bytes).await.is_err() {
        ctx.log.not_sent(index);
        return None;
    }
    let reply = super::glibc::read_reply(&mut conn, end, &mut ctx.log, accept::musl_tcp).await;
    match reply {
        Some(reply) => {
            ctx.log.answered_at(index, &reply);
            Some(reply)
        }
        None => {
            ctx.log.close(index, QueryStatus::Timeout);
            None
        }
    }
}

/// `name_from_dns`: in query order, no reply or SERVFAIL fails the lookup (EAI_AGAIN),
/// NXDOMAIN goes on with the search, any other rcode fails; then addresses, or NODATA.
fn result(state: &State) -> Step {
    for (answer, error) in state.answers.iter().zip(&state.errors) {
        match answer.as_ref().map(|a| a.status) {
            None => {
                let result = match error {
                    Some(QueryStatus::ServFail) => StepResult::ServFail,
                    Some(_) => StepResult::Error,
                    None => StepResult::Timeout,
                };
                return Step {
                    result,
                    addresses: Vec::new(),
                    status: *error,
                };
            }
            Some(QueryStatus::NxDomain) => return Step::of(StepResult::NxDomain),
            Some(QueryStatus::NoError) => {}
            Some(status) => {
                return Step {
                    status: Some(status),
                    ..Step::of(StepResult::Error)
                };
            }
        }
    }
    let replies: Vec<&Reply> = state.answers.iter().flatten().collect();
    let addresses: Vec<_> = replies
        .iter()
        .flat_map(|r| r.addresses.iter().copied())
        .collect();
    let result = if !addresses.is_empty() || replies.iter().any(|r| r.has_answer()) {
        StepResult::Answer {
            addresses: !addresses.is_empty(),
        }
    } else {
        StepResult::NoData
    };
    Step {
        result,
        addresses,
        status: None,
    }
}
