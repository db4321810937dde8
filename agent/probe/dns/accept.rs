//! Which datagrams each resolver takes as a reply, and why it drops the others.
//!
//! A resolver's UDP socket receives whatever reaches its port: the replies it waits for, but
//! also a reply with another ID, a reply to another question, a stale reply to an earlier
//! step, a duplicate, a forgery, garbage. Each real resolver has its own rules for what it
//! takes; these functions are those rules, read from the sources, and what a flavor drops is
//! counted by [`Discard`] reason in the lookup's [`Discards`]. A dropped datagram never ends
//! the wait: like the real resolver, the walk reads on until its reply or its timeout (glibc's
//! undersized datagram is the one exception, and glibc's own).
//!
//! | datagram                        | glibc `send_dg`         | musl `__res_msend_rc`    | Go `dnsPacketRoundTrip` |
//! |---------------------------------|-------------------------|--------------------------|-------------------------|
//! | wrong ID                        | dropped                 | dropped                  | dropped                 |
//! | right ID, other question        | dropped                 | **taken**                | dropped                 |
//! | other source address or port    | never seen (connected)  | dropped                  | never seen (connected)  |
//! | stale reply to an earlier step  | dropped (its ID)        | dropped (its ID)         | dropped (its ID)        |
//! | under 4 bytes                   | **ends the try**        | dropped                  | dropped                 |
//! | 4 to 11 bytes, right ID         | **ends the try**        | **taken** (no records)   | dropped                 |
//! | unparseable, wrong ID           | dropped                 | dropped                  | dropped                 |
//! | a query (QR=0), right ID and Q  | **taken** (lame: next)  | **taken**                | dropped                 |
//! | unknown opcode, right ID and Q  | taken                   | taken                    | taken                   |
//!
//! glibc and Go connect their sockets, so the kernel drops datagrams from any other address
//! or port before the resolver reads (glibc's current `send_dg` no longer calls its old
//! `res_ourserver_p` check; the connected socket makes it moot). musl's socket is unconnected
//! and musl compares the sender with its nameservers itself.
//!
//! Over TCP each resolver reads the messages of the connection it opened for the query:
//!
//! | message on the connection       | glibc `send_vc`         | musl `__res_msend_rc`    | Go `dnsStreamRoundTrip` |
//! |---------------------------------|-------------------------|--------------------------|-------------------------|
//! | wrong ID                        | dropped, reads on       | **taken** (no ID check)  | **ends the exchange**   |
//! | right ID, other question        | **taken** (ID only)     | **taken**                | **ends the exchange**   |
//! | under 12 bytes (13 for musl)    | **ends the try**        | **ends the exchange**    | **ends the exchange**   |
//! | unparseable, right ID           | taken (no records)      | taken (no records)       | **ends the exchange**   |
//!
//! What ends an exchange or is dropped is counted like a dropped datagram.

use std::net::SocketAddr;

use super::message::{self, Outgoing, Reply};

/// Why a datagram read by a lookup was not taken as a reply. Becomes the `reason` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Discard {
    /// Its ID is that of no query still waiting on the socket: a forgery, a stale reply to an
    /// earlier query, a duplicate.
    IdMismatch,
    /// Its ID is right but its question (name, type, class) is not the query's.
    QuestionMismatch,
    /// It came from an address or port that is no nameserver (unconnected sockets: musl).
    WrongSource,
    /// It is not a response the resolver can read: too short, unparseable, or a query.
    Malformed,
}

impl Discard {
    pub const ALL: [Discard; 4] = [
        Discard::IdMismatch,
        Discard::QuestionMismatch,
        Discard::WrongSource,
        Discard::Malformed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Discard::IdMismatch => "id_mismatch",
            Discard::QuestionMismatch => "question_mismatch",
            Discard::WrongSource => "wrong_source",
            Discard::Malformed => "malformed",
        }
    }

    fn index(self) -> usize {
        match self {
            Discard::IdMismatch => 0,
            Discard::QuestionMismatch => 1,
            Discard::WrongSource => 2,
            Discard::Malformed => 3,
        }
    }
}

/// How many datagrams a lookup read and dropped, by reason.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Discards([u64; 4]);

impl Discards {
    /// How many were dropped for `reason`.
    pub fn get(&self, reason: Discard) -> u64 {
        self.0[reason.index()]
    }

    /// How many were dropped in all.
    pub fn total(&self) -> u64 {
        self.0.iter().sum()
    }

    /// The reasons with a count above zero.
    pub fn iter(&self) -> impl Iterator<Item = (Discard, u64)> + '_ {
        Discard::ALL
            .into_iter()
            .map(|r| (r, self.get(r)))
            .filter(|(_, n)| *n > 0)
    }

    /// Counts one more datagram dropped for `reason`.
    pub fn add(&mut self, reason: Discard) {
        self.0[reason.index()] += 1;
    }

    pub(super) fn merge(&mut self, other: Discards) {
        for reason in Discard::ALL {
            self.0[reason.index()] += other.get(reason);
        }
    }
}

/// What glibc makes of one datagram.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Glibc {
    /// The reply to `queries[index]`.
    Reply(usize, Reply),
    Dropped(Discard),
    /// Under 12 bytes: glibc closes the socket and asks the next server or tries again
    /// (`close_and_return_error`), whatever else it was waiting for.
    EndTry,
}

/// glibc's `send_dg` on a step's connected socket: a datagram under a header's 12 bytes ends
/// the try; one whose ID and question (`res_queriesmatch`: one question, the same name
/// ignoring case, type and class) are those of no query in `waiting` is dropped. glibc checks
/// neither QR nor the opcode, so an echoed query is taken (and is then a lame referral).
/// A right ID on a message hickory cannot parse is dropped as malformed: glibc would take it
/// if its question read right, and then fail to parse its answer.
pub(super) fn glibc(bytes: &[u8], queries: &[Outgoing], waiting: &[bool]) -> Glibc {
    const HEADER: usize = 12;
    if bytes.len() < HEADER {
        return Glibc::EndTry;
    }
    let open = |i: usize| waiting.get(i).copied().unwrap_or(false);
    let id = message::id_of(bytes);
    if !queries
        .iter()
        .enumerate()
        .any(|(i, q)| open(i) && Some(q.id) == id)
    {
        return Glibc::Dropped(Discard::IdMismatch);
    }
    let Some(reply) = message::parse(bytes) else {
        return Glibc::Dropped(Discard::Malformed);
    };
    let found = queries
        .iter()
        .enumerate()
        .position(|(i, q)| open(i) && q.id == reply.id && reply.questions == 1 && reply.asks(q));
    match found {
        Some(index) => Glibc::Reply(index, reply),
        None => Glibc::Dropped(Discard::QuestionMismatch),
    }
}

/// Go's `dnsPacketRoundTrip` on an exchange's connected socket: a datagram whose header or
/// first question does not parse, that is not a response (QR=0), or whose ID or question
/// (`checkResponse`: type, class, name ignoring ASCII case) differs is dropped. Go does not
/// look at the opcode.
pub(super) fn go(bytes: &[u8], query: &Outgoing) -> Result<Reply, Discard> {
    let reply = message::parse(bytes).ok_or(Discard::Malformed)?;
    if reply.question.is_none() || !reply.response {
        return Err(Discard::Malformed);
    }
    if reply.id != query.id {
        return Err(Discard::IdMismatch);
    }
    if !reply.asks(query) {
        return Err(Discard::QuestionMismatch);
    }
    Ok(reply)
}

/// musl's `__res_msend_rc` on a step's unconnected socket: a datagram under 4 bytes, from an
/// address and port that is none of `servers`, or whose ID is none of `queries`' is dropped.
/// Anything else is that query's reply: musl looks at neither QR, the opcode nor the
/// question. A reply hickory cannot parse is kept as its header, as musl's `__dns_parse`
/// finds no record in it. Returns the query's position and the reply.
pub(super) fn musl(
    bytes: &[u8],
    from: SocketAddr,
    servers: &[SocketAddr],
    queries: &[Outgoing],
) -> Result<(usize, Reply), Discard> {
    let header = Reply::from_header(bytes).ok_or(Discard::Malformed)?;
    if !servers.contains(&from) {
        return Err(Discard::WrongSource);
    }
    let index = queries
        .iter()
        .position(|q| q.id == header.id)
        .ok_or(Discard::IdMismatch)?;
    Ok((index, message::parse(bytes).unwrap_or(header)))
}

/// What a resolver makes of one message read on its TCP connection.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum OnStream {
    /// The reply to the query.
    Reply(Reply),
    /// Dropped: the resolver reads the next message (glibc, a wrong ID).
    Dropped(Discard),
    /// The exchange ends without a reply, the message counted for this reason.
    Ends(Discard),
}

/// glibc's `send_vc`: a message under a header's 12 bytes ends the try; one with another ID
/// is dropped and the next read ("the server has got itself confused"); a right ID is the
/// reply whatever its question, since `send_vc` compares IDs only.
pub(super) fn glibc_tcp(bytes: &[u8], query: &Outgoing) -> OnStream {
    const HEADER: usize = 12;
    if bytes.len() < HEADER {
        return OnStream::Ends(Discard::Malformed);
    }
    if message::id_of(bytes) != Some(query.id) {
        return OnStream::Dropped(Discard::IdMismatch);
    }
    match message::parse(bytes).or_else(|| Reply::from_header(bytes)) {
        Some(reply) => OnStream::Reply(reply),
        None => OnStream::Ends(Discard::Malformed),
    }
}

/// Go's `dnsStreamRoundTrip`: the first message is the reply if [`go`] would take it as a
/// datagram; anything else fails the exchange (`errInvalidDNSResponse`), and Go moves on to
/// the next server.
pub(super) fn go_tcp(bytes: &[u8], query: &Outgoing) -> OnStream {
    match go(bytes, query) {
        Ok(reply) => OnStream::Reply(reply),
        Err(reason) => OnStream::Ends(reason),
    }
}

/// musl's TCP fallback: one connection per query, and its first message of 13 bytes or more
/// is the reply, with no check of ID or question; a shorter one ends the exchange.
pub(super) fn musl_tcp(bytes: &[u8]) -> OnStream {
    const SHORTEST: usize = 13;
    if bytes.len() < SHORTEST {
        return OnStream::Ends(Discard::Malformed);
    }
    match message::parse(bytes).or_else(|| Reply::from_header(bytes)) {
        Some(reply) => OnStream::Reply(reply),
        None => OnStream::Ends(Discard::Malformed),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::dns::Qtype;
    use hickory_proto::op::{Message, MessageType, OpCode, Query};
    use hickory_proto::rr::{DNSClass, Name, RecordType};

    fn query(id: u16, qtype: Qtype) -> Outgoing {
        message::build(id, "web.example.", qtype, None, false).unwrap()
    }

    /// A reply with `id` to `name`, of type `rtype` and class `class`.
    fn reply(id: u16, name: &str, rtype: RecordType, class: DNSClass) -> Vec<u8> {
        let mut msg = Message::new(id, MessageType::Response, OpCode::Query);
        let mut q = Query::query(Name::from_ascii(name).unwrap(), rtype);
        q.set_query_class(class);
        msg.add_query(q);
        msg.to_vec().unwrap()
    }

    fn ok(id: u16) -> Vec<u8> {
        reply(id, "WEB.example.", RecordType::A, DNSClass::IN)
    }

    const SERVER: ([u8; 4], u16) = ([10, 96, 0, 10], 53);

    #[test]
    fn each_resolver_takes_the_right_reply_whatever_the_case_of_its_name() {
        let q = [query(7, Qtype::A), query(8, Qtype::Aaaa)];
        assert!(matches!(
            glibc(&ok(7), &q, &[true, true]),
            Glibc::Reply(0, _)
        ));
        assert!(go(&ok(7), &q[0]).is_ok());
        let from = SERVER.into();
        assert_eq!(musl(&ok(7), from, &[from], &q).map(|(i, _)| i), Ok(0));
    }

    #[test]
    fn a_wrong_id_is_dropped_by_all() {
        let q = [query(7, Qtype::A)];
        assert_eq!(
            glibc(&ok(9), &q, &[true]),
            Glibc::Dropped(Discard::IdMismatch)
        );
        assert_eq!(go(&ok(9), &q[0]), Err(Discard::IdMismatch));
        let from = SERVER.into();
        assert_eq!(musl(&ok(9), from, &[from], &q), Err(Discard::IdMismatch));
    }

    #[test]
    fn a_reply_to_a_query_already_answered_is_dropped_by_glibc() {
        let q = [query(7, Qtype::A)];
        assert_eq!(
            glibc(&ok(7), &q, &[false]),
            Glibc::Dropped(Discard::IdMismatch)
        );
    }

    #[test]
    fn another_question_is_dropped_by_glibc_and_go_and_taken_by_musl() {
        let q = [query(7, Qtype::A)];
        let from = SERVER.into();
        for other in [
            reply(7, "evil.example.", RecordType::A, DNSClass::IN),
            reply(7, "web.example.", RecordType::AAAA, DNSClass::IN),
            reply(7, "web.example.", RecordType::A, DNSClass::CH),
        ] {
            let dropped = Glibc::Dropped(Discard::QuestionMismatch);
            assert_eq!(glibc(&other, &q, &[true]), dropped);
            assert_eq!(go(&other, &q[0]), Err(Discard::QuestionMismatch));
            assert!(musl(&other, from, &[from], &q).is_ok());
        }
    }

    #[test]
    fn musl_drops_what_comes_from_another_port() {
        let q = [query(7, Qtype::A)];
        let server: SocketAddr = SERVER.into();
        let other = SocketAddr::new(server.ip(), 5353);
        assert_eq!(
            musl(&ok(7), other, &[server], &q),
            Err(Discard::WrongSource)
        );
    }

    #[test]
    fn short_datagrams_end_glibc_s_try_and_are_dropped_or_read_as_a_header_by_the_others() {
        let q = [query(7, Qtype::A)];
        let from = SERVER.into();
        let five = [0, 7, 0x80, 0, 0];
        assert_eq!(glibc(&five, &q, &[true]), Glibc::EndTry);
        assert_eq!(go(&five, &q[0]), Err(Discard::Malformed));
        let (_, header) = musl(&five, from, &[from], &q).unwrap();
        assert_eq!((header.id, header.answers), (7, 0));
        assert_eq!(musl(&five[..3], from, &[from], &q), Err(Discard::Malformed));
    }

    #[test]
    fn an_echoed_query_is_taken_by_glibc_and_musl_and_dropped_by_go() {
        let q = [query(7, Qtype::A)];
        let from = SERVER.into();
        let echo = q[0].bytes.clone();
        assert!(matches!(glibc(&echo, &q, &[true]), Glibc::Reply(0, r) if r.is_lame()));
        assert_eq!(go(&echo, &q[0]), Err(Discard::Malformed));
        assert!(musl(&echo, from, &[from], &q).is_ok());
    }

    #[test]
    fn no_resolver_looks_at_the_opcode() {
        let q = [query(7, Qtype::A)];
        let from = SERVER.into();
        let mut msg = Message::from_vec(&ok(7)).unwrap();
        msg.metadata.op_code = OpCode::Status;
        let status = msg.to_vec().unwrap();
        assert!(matches!(glibc(&status, &q, &[true]), Glibc::Reply(0, _)));
        assert!(go(&status, &q[0]).is_ok());
        assert!(musl(&status, from, &[from], &q).is_ok());
    }

    #[test]
    fn discards_count_by_reason_and_merge() {
        let mut a = Discards::default();
        a.add(Discard::IdMismatch);
        a.add(Discard::IdMismatch);
        let mut b = Discards::default();
        b.add(Discard::Malformed);
        a.merge(b);
        assert_eq!(a.total(), 3);
        let listed: Vec<_> = a.iter().collect();
        assert_eq!(listed, [(Discard::IdMismatch, 2), (Discard::Malformed, 1)]);
    }
}
