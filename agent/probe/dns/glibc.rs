//! How glibc sends one search step (`resolv/res_send.c`).
//!
//! A and AAAA go out back to back on one connected UDP socket. Each try waits `timeout`
//! (shifted and divided for later nameservers); `attempts` rounds go over the nameservers.
//! SERVFAIL, NOTIMP and REFUSED make glibc ask the next server unless the other reply of the
//! pair is usable. A truncated reply sends both queries again over one TCP connection. When
//! one reply of a pair goes missing, glibc switches to `single-request`, then to
//! `single-request-reopen`, and sends again.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::time::{Instant, timeout_at};

use super::accept::{self, Discard, Glibc};
use super::message::{self, Outgoing, Reply};
use super::plan::StepResult;
use super::walk::{Ctx, Datagram, Step, Stream, Wire, classify, failed_tries, is_server_error};
use super::{QueryStatus, Transport};

/// glibc's `options edns0` advertises this payload size (`RESOLV_EDNS_BUFFER_SIZE`).
const EDNS_PAYLOAD: u16 = 1200;

/// How one try at one server ended.
enum Try {
    Replies(Vec<Reply>),
    Truncated,
    NoReply,
    PortClosed,
}

/// Sends one step: the queries for `qname`, with glibc's retries.
pub(super) async fn step<W: Wire>(ctx: &mut Ctx<'_, W>, qname: &str) -> Step {
    let Some(queries) = build(ctx, qname) else {
        return Step {
            status: Some(QueryStatus::FormErr),
            ..Step::of(StepResult::Error)
        };
    };
    let servers = rotated(ctx);
    let mut last_error: Option<Reply> = None;
    let mut port_closed = false;
    let mut tcp = ctx.conf.use_vc;
    for _ in 0..ctx.conf.attempts {
        for (ns, &server) in servers.iter().enumerate() {
            let wait = try_wait(ctx.conf.timeout, ns, servers.len());
            loop {
                let outcome = if tcp {
                    tcp_try(ctx, server, &queries, wait).await
                } else {
                    udp_try(ctx, server, &queries, wait).await
                };
                if ctx.expired {
                    return Step::of(StepResult::Timeout);
                }
                match outcome {
                    Try::Truncated => tcp = true,
                    Try::Replies(replies) => {
                        let usable: Vec<&Reply> =
                            replies.iter().filter(|r| !is_server_error(r)).collect();
                        if !usable.is_empty() {
                            return classify(&usable);
                        }
                        last_error = replies.into_iter().last();
                        break;
                    }
                    Try::NoReply => break,
                    Try::PortClosed => {
                        port_closed = true;
                        break;
                    }
                }
            }
        }
    }
    failed_tries(last_error.as_ref(), port_closed)
}

fn build<W: Wire>(ctx: &Ctx<'_, W>, qname: &str) -> Option<Vec<Outgoing>> {
    let edns = ctx.conf.edns0.then_some(EDNS_PAYLOAD);
    let first = ctx.id();
    let mut queries = Vec::new();
    for (i, qtype) in ctx.qtypes.iter().enumerate() {
        let id = first.wrapping_add(i as u16);
        queries.push(message::build(id, qname, *qtype, edns, ctx.conf.trust_ad)?);
    }
    Some(queries)
}

/// With `rotate`, each step starts at a random nameserver.
fn rotated<W: Wire>(ctx: &Ctx<'_, W>) -> Vec<SocketAddr> {
    let mut servers = ctx.servers.clone();
    if ctx.conf.rotate && servers.len() > 1 {
        let offset = rand::random_range(0..servers.len());
        servers.rotate_left(offset);
    }
    servers
}

/// `retrans << ns`, divided by the server count for all but the first server, at least 1 s.
fn try_wait(timeout: Duration, ns: usize, count: usize) -> Duration {
    let mut seconds = timeout.as_secs().checked_shl(ns as u32).unwrap_or(u64::MAX);
    if ns > 0 {
        seconds /= count as u64;
    }
    Duration::from_secs(seconds.max(1))
}

async fn udp_try<W: Wire>(
    ctx: &mut Ctx<'_, W>,
    server: SocketAddr,
    queries: &[Outgoing],
    wait: Duration,
) -> Try {
    loop {
        let sequential = ctx.conf.single_request || ctx.sticky_single_request || reopen(ctx);
        let mut replies = vec![None; queries.len()];
        let end = if sequential {
            sequential_pair(ctx, server, queries, &mut replies, wait).await
        } else {
            parallel_pair(ctx, server, queries, &mut replies, wait).await
        };
        match end {
            End::Truncated => return Try::Truncated,
            End::PortClosed => return Try::PortClosed,
            End::Answered => return Try::Replies(replies.into_iter().flatten().collect()),
            // `close_and_return_error`: this server is done for this attempt, replies and all.
            End::Undersized => return Try::NoReply,
            End::Waited => {}
        }
        if ctx.expired || replies.iter().all(Option::is_none) {
            return Try::NoReply;
        }
        // One reply of the pair went missing: glibc blames the network and retries the same
        // server one query at a time, then with a new socket for each query.
        if !ctx.sticky_single_request {
            ctx.sticky_single_request = true;
        } else if !ctx.sticky_single_request_reopen {
            ctx.sticky_single_request_reopen = true;
        } else {
            return Try::Replies(replies.into_iter().flatten().collect());
        }
    }
}

fn reopen<W: Wire>(ctx: &Ctx<'_, W>) -> bool {
    ctx.conf.single_request_reopen || ctx.sticky_single_request_reopen
}

/// How waiting for replies ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    Answered,
    Truncated,
    PortClosed,
    Waited,
    /// A datagram too short for a DNS header: glibc closes the socket and moves on.
    Undersized,
}

/// Sends every query at once on one socket and waits for all replies.
async fn parallel_pair<W: Wire>(
    ctx: &mut Ctx<'_, W>,
    server: SocketAddr,
    queries: &[Outgoing],
    replies: &mut [Option<Reply>],
    wait: Duration,
) -> End {
    let Ok(socket) = ctx.wire.udp(Some(server)).await else {
        return End::Waited;
    };
    let sent: Vec<usize> = queries
        .iter()
        .map(|q| ctx.log.sent(q, Transport::Udp, server))
        .collect();
    if let Err(error) = send_pair(&socket, queries).await {
        return failed_send(ctx, &sent, error);
    }
    let until = ctx.bound(Instant::now() + wait);
    let end = receive(ctx, &socket, server, queries, replies, until).await;
    close(ctx, &sent, no_reply(end));
    end
}

/// A send that failed after `left` of the queries went out.
#[derive(Debug)]
struct SendFailed {
    left: usize,
    error: std::io::Error,
}

/// glibc's `send_dg`: the whole pair in one `sendmmsg`; if only the first message left, the
/// second goes on its own with `send`.
async fn send_pair<D: Datagram>(socket: &D, queries: &[Outgoing]) -> Result<(), SendFailed> {
    let messages: Vec<&[u8]> = queries.iter().map(|q| q.bytes.as_slice()).collect();
    let mut left = socket
        .send_all(&messages)
        .await
        .map_err(|error| SendFailed { left: 0, error })?;
    while left < messages.len() {
        socket
            .send_all(&messages[left..=left])
            .await
            .map_err(|error| SendFailed { left, error })?;
        left += 1;
    }
    Ok(())
}

/// Records a failed send: the queries that never left are `SEND_ERROR`, and those that did
/// get no reply (glibc closes the socket). A refused send is the ICMP port unreachable of an
/// earlier query coming back.
fn failed_send<W: Wire>(ctx: &mut Ctx<'_, W>, sent: &[usize], failed: SendFailed) -> End {
    let refused = failed.error.kind() == std::io::ErrorKind::ConnectionRefused;
    for &index in &sent[failed.left..] {
        ctx.log.not_sent(index);
    }
    let end = if refused {
        End::PortClosed
    } else {
        End::Waited
    };
    close(ctx, &sent[..failed.left], no_reply(end));
    end
}

/// The status of queries left without a reply when waiting ended with `end`.
fn no_reply(end: End) -> QueryStatus {
    if end == End::PortClosed {
        QueryStatus::Unreachable
    } else {
        QueryStatus::Timeout
    }
}

/// Sends one query, waits for its reply, then sends the next (`single-request`), on a new
/// socket each time with `single-request-reopen`.
async fn sequential_pair<W: Wire>(
    ctx: &mut Ctx<'_, W>,
    server: SocketAddr,
    queries: &[Outgoing],
    replies: &mut [Option<Reply>],
    wait: Duration,
) -> End {
    let until = ctx.bound(Instant::now() + wait);
    let mut socket = None;
    for i in 0..queries.len() {
        if socket.is_none() || reopen(ctx) {
            socket = ctx.wire.udp(Some(server)).await.ok();
        }
        let Some(sock) = socket.as_ref() else {
            return End::Waited;
        };
        let sent = [ctx.log.sent(&queries[i], Transport::Udp, server)];
        let end = match sock.send_to(&queries[i].bytes, server).await {
            Ok(()) => {
                receive(
                    ctx,
                    sock,
                    server,
                    &queries[i..=i],
                    &mut replies[i..=i],
                    until,
                )
                .await
            }
            Err(error) => failed_send(ctx, &sent, SendFailed { left: 0, error }),
        };
        close(ctx, &sent, no_reply(end));
        if end != End::Answered {
            return end;
        }
    }
    End::Answered
}

/// Waits until every query has its reply, a reply is truncated, the port is found closed, a
/// datagram too short for a header ends the try, or `until`. Which datagrams are replies is
/// glibc's rule ([`accept::glibc`]); the others are counted and the wait goes on.
async fn receive<D: Datagram, W: Wire>(
    ctx: &mut Ctx<'_, W>,
    socket: &D,
    server: SocketAddr,
    queries: &[Outgoing],
    replies: &mut [Option<Reply>],
    until: Instant,
) -> End {
    while replies.iter().any(Option::is_none) {
        let bytes = match timeout_at(until, socket.recv_from()).await {
            Err(_) => {
                ctx.check_deadline();
                return End::Waited;
            }
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                return End::PortClosed;
            }
            Ok(Err(_)) => continue,
            Ok(Ok((bytes, _))) => bytes,
        };
        let (i, reply) = match take(ctx, &bytes, server, queries, replies) {
            Glibc::Reply(i, reply) => (i, reply),
            Glibc::Dropped(_) => continue,
            Glibc::EndTry => return End::Undersized,
        };
        let truncated = reply.truncated;
        replies[i] = Some(reply);
        if truncated {
            linger(ctx, socket, server, queries, replies, until).await;
            return End::Truncated;
        }
    }
    End::Answered
}

/// What glibc makes of one datagram read on the pair's socket; what it drops, or what ends
/// the try, is counted. A reply is recorded in the log.
fn take<W: Wire>(
    ctx: &mut Ctx<'_, W>,
    bytes: &[u8],
    server: SocketAddr,
    queries: &[Outgoing],
    replies: &[Option<Reply>],
) -> Glibc {
    let waiting: Vec<bool> = replies.iter().map(Option::is_none).collect();
    let taken = match accept::glibc(bytes, queries, &waiting) {
        Glibc::Reply(_, reply) if ctx.log.answered(&reply, server, Transport::Udp).is_none() => {
            Glibc::Dropped(Discard::IdMismatch)
        }
        taken => taken,
    };
    match &taken {
        Glibc::Dropped(reason) => ctx.log.discard(*reason),
        Glibc::EndTry => ctx.log.discard(Discard::Malformed),
        Glibc::Reply(..) => {}
    }
    taken
}

/// After a truncated reply glibc goes to TCP at once. Replies to the pair's other query that
/// are already on their way are still recorded for one more round trip; the wait is bounded
/// so the emulated timing stays glibc's.
async fn linger<D: Datagram, W: Wire>(
    ctx: &mut Ctx<'_, W>,
    socket: &D,
    server: SocketAddr,
    queries: &[Outgoing],
    replies: &mut [Option<Reply>],
    until: Instant,
) {
    let grace = ctx.bound(until.min(Instant::now() + LINGER));
    while replies.iter().any(Option::is_none) {
        let Ok(Ok((bytes, _))) = timeout_at(grace, socket.recv_from()).await else {
            return;
        };
        match take(ctx, &bytes, server, queries, replies) {
            Glibc::Reply(i, reply) => replies[i] = Some(reply),
            Glibc::Dropped(_) => {}
            Glibc::EndTry => return,
        }
    }
}

/// How long replies still in flight after a truncated one are recorded.
const LINGER: Duration = Duration::from_millis(2);

fn close<W: Wire>(ctx: &mut Ctx<'_, W>, sent: &[usize], status: QueryStatus) {
    for &index in sent {
        ctx.log.close(index, status);
    }
}

/// Sends every query over one TCP connection, one after the other (`send_vc`).
async fn tcp_try<W: Wire>(
    ctx: &mut Ctx<'_, W>,
    server: SocketAddr,
    queries: &[Outgoing],
    wait: Duration,
) -> Try {
    let until = ctx.bound(Instant::now() + wait);
    let mut conn = match timeout_at(until, ctx.wire.tcp(server)).await {
        Ok(Ok(conn)) => conn,
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => return Try::PortClosed,
        _ => {
            ctx.check_deadline();
            return Try::NoReply;
        }
    };
    let mut replies = Vec::new();
    for query in queries {
        let index = ctx.log.sent(query, Transport::Tcp, server);
        if conn.send(&query.bytes).await.is_err() {
            ctx.log.not_sent(index);
            break;
        }
        match read_reply(&mut conn, query, until).await {
            Some(reply) if ctx.log.answered(&reply, server, Transport::Tcp).is_some() => {
                replies.push(reply)
            }
            _ => {
                ctx.log.close(index, QueryStatus::Timeout);
                ctx.check_deadline();
                break;
            }
        }
    }
    if replies.is_empty() {
        Try::NoReply
    } else {
        Try::Replies(replies)
    }
}

/// Reads messages until the one answering `query` arrives, or `until`.
pub(super) async fn read_reply<S: Stream>(
    conn: &mut S,
    query: &Outgoing,
    until: Instant,
) -> Option<Reply> {
    loop {
        let bytes = timeout_at(until, conn.recv()).await.ok()?.ok()?;
        if let Some(reply) = message::parse(&bytes).filter(|r| r.matches(query)) {
            return Some(reply);
        }
    }
}
