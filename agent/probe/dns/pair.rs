//! How glibc sends an A+AAAA pair on one UDP socket and reads its replies (`send_dg`).
//!
//! Both queries leave in one `sendmmsg` (or one after the other with `single-request`, on a
//! new socket each with `single-request-reopen`), and the socket is read until every query has
//! its reply, a reply is truncated, the port is found closed, or the try's time is up. Which
//! datagrams are replies is glibc's rule ([`accept::glibc`]): the others are counted and the
//! wait goes on, but for one under 12 bytes, which ends the try.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::time::{Instant, timeout_at};

use super::accept::{self, Discard, Glibc};
use super::message::{Outgoing, Reply};
use super::walk::{Ctx, Datagram, Wire};
use super::{QueryStatus, Transport};

/// Whether every query gets a socket of its own: `single-request-reopen`, set in
/// resolv.conf or switched on after replies went missing.
pub(super) fn reopen<W: Wire>(ctx: &Ctx<'_, W>) -> bool {
    ctx.conf.single_request_reopen || ctx.sticky_single_request_reopen
}

/// How waiting for replies ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum End {
    Answered,
    Truncated,
    PortClosed,
    Waited,
    /// A datagram too short for a DNS header: glibc closes the socket and moves on.
    Undersized,
}

/// Sends every query at once on one socket and waits for all replies.
pub(super) async fn parallel_pair<W: Wire>(
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
pub(super) async fn sequential_pair<W: Wire>(
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
    let mut taken = accept::glibc(bytes, queries, &waiting);
    if let Glibc::Reply(_, reply) = &taken
        && ctx.log.answered(reply, server, Transport::Udp).is_none()
    {
        taken = Glibc::Dropped(Discard::IdMismatch);
    }
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
