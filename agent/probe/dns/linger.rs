//! Replies still due after musl took its answer.
//!
//! musl asks every nameserver at once and stops reading at the first good reply to each
//! query, but the other servers answer all the same: a capture shows their NXDOMAIN or
//! NOERROR coming back. Recording those queries as `TIMEOUT` would make every resolv.conf
//! with two nameservers look like a DNS server dropping packets. So a finished step's socket
//! stays open for [`LINGER`], its late replies are read while the next steps run, and
//! whatever is still due when the lookup ends is read after its duration was taken. A query
//! with no reply by then is `TIMEOUT`.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::time::Duration;

use tokio::time::{Instant, timeout_at};

use super::Transport;
use super::accept::{self, Discard};
use super::message::Outgoing;
use super::walk::{Ctx, Datagram, Wire};

/// How long after a step's answer the other servers' replies are still collected.
pub(super) const LINGER: Duration = Duration::from_millis(200);

/// A finished step's socket, kept open for the replies still due on it.
pub(super) struct Lingering<D> {
    socket: D,
    servers: Vec<SocketAddr>,
    queries: Vec<Outgoing>,
    /// The step's queries in the log.
    indices: Vec<usize>,
    until: Instant,
}

/// A datagram, from the step's own socket or from a lingering one (by position).
pub(super) enum Arrival {
    Current(io::Result<(Vec<u8>, SocketAddr)>),
    Late(usize, io::Result<(Vec<u8>, SocketAddr)>),
}

type Recv<'a> = Pin<Box<dyn Future<Output = io::Result<(Vec<u8>, SocketAddr)>> + Send + 'a>>;

/// The next datagram on `current` or on any lingering socket. Cancel-safe.
pub(super) async fn recv_any<D: Datagram + Sync>(
    current: Option<&D>,
    lingering: &[Lingering<D>],
) -> Arrival {
    let mut all: Vec<Recv<'_>> = Vec::with_capacity(lingering.len() + 1);
    if let Some(socket) = current {
        all.push(Box::pin(socket.recv_from()));
    }
    all.extend(
        lingering
            .iter()
            .map(|l| -> Recv<'_> { Box::pin(l.socket.recv_from()) }),
    );
    if all.is_empty() {
        return std::future::pending().await;
    }
    let (got, index, _) = futures::future::select_all(all).await;
    match (current.is_some(), index) {
        (true, 0) => Arrival::Current(got),
        (true, i) => Arrival::Late(i - 1, got),
        (false, i) => Arrival::Late(i, got),
    }
}

/// When the next lingering socket is due to close, if any.
pub(super) fn next_expiry<D>(lingering: &[Lingering<D>]) -> Option<Instant> {
    lingering.iter().map(|l| l.until).min()
}

/// Keeps a finished step's socket open when some of its queries still wait for a reply.
pub(super) fn keep<W: Wire>(
    ctx: &mut Ctx<'_, W>,
    socket: W::Udp,
    servers: Vec<SocketAddr>,
    queries: Vec<Outgoing>,
    indices: Vec<usize>,
) {
    if indices.iter().any(|&i| ctx.log.is_open(i)) {
        ctx.lingering.push(Lingering {
            socket,
            servers,
            queries,
            indices,
            until: Instant::now() + LINGER,
        });
    }
}

/// Records a late datagram from the lingering socket at `index`; the socket closes once
/// none of its queries waits any more.
pub(super) fn take_late<W: Wire>(
    ctx: &mut Ctx<'_, W>,
    index: usize,
    bytes: &[u8],
    from: SocketAddr,
) {
    let Some(lingering) = ctx.lingering.get(index) else {
        return;
    };
    match accept::musl(bytes, from, &lingering.servers, &lingering.queries) {
        Ok((_, reply)) => {
            if ctx.log.answered(&reply, from, Transport::Udp).is_none() {
                ctx.log.discard(Discard::IdMismatch);
            }
        }
        Err(reason) => ctx.log.discard(reason),
    }
    let done = lingering.indices.iter().all(|&i| !ctx.log.is_open(i));
    if done {
        ctx.lingering.swap_remove(index);
    }
}

/// Closes the lingering sockets due to close by `before`; their unanswered queries are
/// `TIMEOUT`.
pub(super) fn expire<W: Wire>(ctx: &mut Ctx<'_, W>, before: Instant) {
    let (over, keep): (Vec<_>, Vec<_>) = std::mem::take(&mut ctx.lingering)
        .into_iter()
        .partition(|l| l.until <= before);
    ctx.lingering = keep;
    for lingering in over {
        for index in lingering.indices {
            ctx.log.close(index, super::QueryStatus::Timeout);
        }
    }
}

/// After the lookup: reads the replies still due until each socket's time is up, or the
/// lookup's deadline.
pub(super) async fn finish<W: Wire>(ctx: &mut Ctx<'_, W>) {
    while let Some(expiry) = next_expiry(&ctx.lingering) {
        let wake = expiry.min(ctx.deadline);
        let arrival = timeout_at(wake, recv_any(None, &ctx.lingering)).await;
        if let Ok(Arrival::Late(index, Ok((bytes, from)))) = arrival {
            take_late(ctx, index, &bytes, from);
        }
        let now = Instant::now();
        // Past the deadline every socket closes: none lingers longer than LINGER from now.
        let before = if now >= ctx.deadline {
            now + LINGER
        } else {
            now
        };
        expire(ctx, before);
    }
}
