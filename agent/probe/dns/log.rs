//! The record of one lookup: every query in the order sent, what became of it, and the
//! datagrams the resolver read and dropped.

use std::net::SocketAddr;

use tokio::time::Instant;

use super::accept::{Discard, Discards};
use super::message::{Outgoing, Reply};
use super::{QueryRecord, QueryStatus, Transport};

/// Every query of one lookup, in the order sent.
#[derive(Debug)]
pub(super) struct Log {
    queries: Vec<QueryRecord>,
    pending: Vec<Pending>,
    discarded: Discards,
}

#[derive(Debug, Clone, Copy)]
struct Pending {
    id: u16,
    sent: Instant,
    open: bool,
}

impl Log {
    pub(super) fn new() -> Log {
        Log {
            queries: Vec::new(),
            pending: Vec::new(),
            discarded: Discards::default(),
        }
    }

    /// The queries in the order sent, and the datagrams dropped.
    pub(super) fn into_parts(self) -> (Vec<QueryRecord>, Discards) {
        (self.queries, self.discarded)
    }

    /// Counts a datagram read and dropped, as the emulated resolver drops it.
    pub(super) fn discard(&mut self, reason: Discard) {
        self.discarded.add(reason);
    }

    /// Appends the queries of another log, keeping the whole log in the order sent.
    pub(super) fn merge(&mut self, other: Log) {
        let mut all: Vec<(QueryRecord, Pending)> =
            self.queries.drain(..).zip(self.pending.drain(..)).collect();
        all.extend(other.queries.into_iter().zip(other.pending));
        all.sort_by_key(|(_, p)| p.sent);
        (self.queries, self.pending) = all.into_iter().unzip();
        self.discarded.merge(other.discarded);
    }

    /// Records a query as sent; it counts as TIMEOUT until a reply is attributed to it.
    pub(super) fn sent(
        &mut self,
        out: &Outgoing,
        transport: Transport,
        server: SocketAddr,
    ) -> usize {
        self.queries.push(QueryRecord {
            qname: out.qname.clone(),
            qtype: out.qtype,
            transport,
            server,
            status: QueryStatus::Timeout,
            duration: std::time::Duration::ZERO,
            answers: 0,
            truncated: false,
        });
        self.pending.push(Pending {
            id: out.id,
            sent: Instant::now(),
            open: true,
        });
        self.queries.len() - 1
    }

    /// Attributes `reply` to the latest open query with its ID sent to `server` over
    /// `transport`. Returns that query's index, or `None` for a stray reply.
    pub(super) fn answered(
        &mut self,
        reply: &Reply,
        server: SocketAddr,
        transport: Transport,
    ) -> Option<usize> {
        let index = (0..self.queries.len()).rev().find(|&i| {
            let (q, p) = (&self.queries[i], &self.pending[i]);
            p.open && p.id == reply.id && q.server == server && q.transport == transport
        })?;
        self.answered_at(index, reply);
        Some(index)
    }

    /// Attributes `reply` to the query at `index` whatever its ID: musl's TCP connection
    /// carries one query, and musl takes its first message without looking at the ID.
    pub(super) fn answered_at(&mut self, index: usize, reply: &Reply) {
        self.close(index, reply.status);
        if let Some(query) = self.queries.get_mut(index) {
            query.answers = reply.answers;
            query.truncated = reply.truncated;
        }
    }

    /// Marks a query recorded by [`Log::sent`] as never sent: its send failed.
    pub(super) fn not_sent(&mut self, index: usize) {
        if let (Some(query), Some(pending)) =
            (self.queries.get_mut(index), self.pending.get_mut(index))
        {
            pending.open = false;
            query.status = QueryStatus::SendError;
            query.duration = std::time::Duration::ZERO;
        }
    }

    /// Whether the query at `index` still waits for its reply.
    pub(super) fn is_open(&self, index: usize) -> bool {
        self.pending.get(index).is_some_and(|p| p.open)
    }

    /// Closes a query that got no reply, with `status` TIMEOUT or UNREACHABLE.
    pub(super) fn close(&mut self, index: usize, status: QueryStatus) {
        if let (Some(query), Some(pending)) =
            (self.queries.get_mut(index), self.pending.get_mut(index))
            && pending.open
        {
            pending.open = false;
            query.status = status;
            query.duration = pending.sent.elapsed();
        }
    }

    /// Closes every query still waiting: the resolver has stopped waiting for them.
    pub(super) fn give_up_all(&mut self) {
        for index in 0..self.queries.len() {
            self.close(index, QueryStatus::Timeout);
        }
    }
}
