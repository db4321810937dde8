//! How glibc sends one search step (`resolv/res_send.c`).
//!
//! A and AAAA go out back to back on one connected UDP socket. Each try waits `timeout`
//! (shifted and divided for later nameservers); `attempts` rounds go over the nameservers.
//! SERVFAIL, NOTIMP and REFUSED make glibc ask the next server unless the other reply of the
//! pair is usable. A truncated reply sends both queries again over one TCP connection. When
//! one reply of a pair goes missing, glibc switches to `single-request`, then to
//! `single-request-reopen`, and sends again. How a pair is sent on one UDP socket and its
//! replies read is [`super::pair`].

use std::net::SocketAddr;
use std::time::Duration;

use tokio::time::{Instant, timeout_at};

use super::accept;
use super::log::Log;
use super::message::{self, Outgoing, Reply};
use super::pair::{End, parallel_pair, reopen, sequential_pair};
use super::plan::StepResult;
use super::walk::{Ctx, Step, Stream, Wire, classify, failed_tries, is_server_error};
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
        match read_reply(&mut conn, until, &mut ctx.log, |b| {
            accept::glibc_tcp(b, query)
        })
        .await
        {
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

/// Reads messages until `accept` takes one as the reply or ends the exchange, or until
/// `until`. What it drops or ends on is counted in `log`.
pub(super) async fn read_reply<S: Stream>(
    conn: &mut S,
    until: Instant,
    log: &mut Log,
    mut accept: impl FnMut(&[u8]) -> accept::OnStream,
) -> Option<Reply> {
    loop {
        let bytes = timeout_at(until, conn.recv()).await.ok()?.ok()?;
        match accept(&bytes) {
            accept::OnStream::Reply(reply) => return Some(reply),
            accept::OnStream::Dropped(reason) => log.discard(reason),
            accept::OnStream::Ends(reason) => {
                log.discard(reason);
                return None;
            }
        }
    }
}
