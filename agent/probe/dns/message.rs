//! DNS messages on the wire: building queries and reading replies with hickory-proto.

use std::net::IpAddr;

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query};
use hickory_proto::rr::{DNSClass, Name, RData, RecordType};

use super::{Qtype, QueryStatus};

/// A query ready to send, with what is needed to match its reply.
#[derive(Debug, Clone)]
pub struct Outgoing {
    pub id: u16,
    pub qname: String,
    pub qtype: Qtype,
    pub bytes: Vec<u8>,
}

/// The parts of a reply the walk looks at.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    pub id: u16,
    /// The QR bit: a response, not a query. glibc and musl never look at it.
    pub response: bool,
    pub status: QueryStatus,
    pub truncated: bool,
    pub authoritative: bool,
    pub recursion_available: bool,
    /// Records in the answer section, of any type.
    pub answers: u16,
    /// Records in the additional section, not counting OPT.
    pub additionals: u16,
    pub addresses: Vec<IpAddr>,
    /// The first question: name lower-cased with its trailing dot, type and class.
    pub question: Option<(String, u16, u16)>,
    /// How many questions the reply carries (glibc's `res_queriesmatch` wants as many as
    /// the query had: one).
    pub questions: u16,
}

impl Reply {
    /// NOERROR with answer records (a CNAME alone counts, as in glibc).
    pub fn has_answer(&self) -> bool {
        self.status == QueryStatus::NoError && self.answers > 0
    }

    /// A referral from a server that is neither authoritative nor recursive: glibc and Go
    /// treat it as a failure of that server.
    pub fn is_lame(&self) -> bool {
        self.status == QueryStatus::NoError
            && self.answers == 0
            && !self.authoritative
            && !self.recursion_available
            && self.additionals == 0
    }

    /// Whether this reply's first question is `out`'s: the same name ignoring ASCII case,
    /// type and class (IN), as both glibc's `res_nameinquery` and Go's `checkResponse` compare.
    pub fn asks(&self, out: &Outgoing) -> bool {
        self.question.as_ref().is_some_and(|(name, qtype, qclass)| {
            *qtype == u16::from(record_type(out.qtype))
                && *qclass == u16::from(DNSClass::IN)
                && name.eq_ignore_ascii_case(&out.qname)
        })
    }

    /// A reply read from its header alone, as musl reads one it cannot parse further: ID,
    /// flags and rcode from the first four bytes, no records. `None` under four bytes.
    pub fn from_header(bytes: &[u8]) -> Option<Reply> {
        let [id0, id1, flags, codes, ..] = *bytes else {
            return None;
        };
        Some(Reply {
            id: u16::from_be_bytes([id0, id1]),
            response: flags & 0x80 != 0,
            status: QueryStatus::from_rcode(u16::from(codes & 0x0f)),
            truncated: flags & 0x02 != 0,
            authoritative: flags & 0x04 != 0,
            recursion_available: codes & 0x80 != 0,
            answers: 0,
            additionals: 0,
            addresses: Vec::new(),
            question: None,
            questions: 0,
        })
    }
}

/// The ID of a datagram: its first two bytes, if it has them.
pub fn id_of(bytes: &[u8]) -> Option<u16> {
    let [id0, id1, ..] = *bytes else {
        return None;
    };
    Some(u16::from_be_bytes([id0, id1]))
}

fn record_type(qtype: Qtype) -> RecordType {
    match qtype {
        Qtype::A => RecordType::A,
        Qtype::Aaaa => RecordType::AAAA,
    }
}

/// Builds a recursive query for `qname` (fully qualified, with its trailing dot).
/// `edns` is the advertised UDP payload size, if any. Fails only for names that cannot be
/// encoded (a label over 63 octets, a name over 255).
pub fn build(id: u16, qname: &str, qtype: Qtype, edns: Option<u16>, ad: bool) -> Option<Outgoing> {
    let name = Name::from_ascii(qname).ok()?;
    let mut msg = Message::new(id, MessageType::Query, OpCode::Query);
    msg.metadata.recursion_desired = true;
    msg.metadata.authentic_data = ad;
    msg.add_query(Query::query(name, record_type(qtype)));
    if let Some(payload) = edns {
        let mut opt = Edns::new();
        opt.set_max_payload(payload);
        msg.set_edns(opt);
    }
    let bytes = msg.to_vec().ok()?;
    Some(Outgoing {
        id,
        qname: qname.to_string(),
        qtype,
        bytes,
    })
}

/// Reads a DNS message, response or not: which datagrams count as a reply is each
/// resolver's own rule ([`super::accept`]). Returns `None` for bytes that do not parse.
pub fn parse(bytes: &[u8]) -> Option<Reply> {
    let msg = Message::from_vec(bytes).ok()?;
    let question = msg.queries.first().map(|q| {
        (
            q.name().to_ascii().to_ascii_lowercase(),
            u16::from(q.query_type()),
            u16::from(q.query_class()),
        )
    });
    let addresses = msg
        .answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::A(a) => Some(IpAddr::V4(a.0)),
            RData::AAAA(a) => Some(IpAddr::V6(a.0)),
            _ => None,
        })
        .collect();
    Some(Reply {
        id: msg.metadata.id,
        response: msg.metadata.message_type == MessageType::Response,
        status: QueryStatus::from_rcode(u16::from(msg.metadata.response_code)),
        truncated: msg.metadata.truncation,
        authoritative: msg.metadata.authoritative,
        recursion_available: msg.metadata.recursion_available,
        answers: clamp_count(msg.answers.len()),
        additionals: clamp_count(msg.additionals.len()),
        addresses,
        question,
        questions: clamp_count(msg.queries.len()),
    })
}

fn clamp_count(n: usize) -> u16 {
    u16::try_from(n).unwrap_or(u16::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_and_reads_back_a_query() {
        let out = build(
            0x1234,
            "kubernetes.default.svc.cluster.local.",
            Qtype::Aaaa,
            Some(1232),
            false,
        )
        .unwrap();
        let msg = Message::from_vec(&out.bytes).unwrap();
        assert_eq!(msg.metadata.id, 0x1234);
        assert!(msg.metadata.recursion_desired);
        assert_eq!(msg.queries[0].query_type(), RecordType::AAAA);
        assert_eq!(msg.edns.as_ref().map(|e| e.max_payload()), Some(1232));
    }

    #[test]
    fn refuses_names_that_cannot_be_encoded() {
        let long_label = format!("{}.example.", "a".repeat(64));
        assert!(build(1, &long_label, Qtype::A, None, false).is_none());
        let long_name = format!("{}.", vec!["abcdefghi"; 26].join("."));
        assert!(build(1, &long_name, Qtype::A, None, false).is_none());
    }

    #[test]
    fn a_query_is_not_a_reply() {
        let out = build(7, "a.example.", Qtype::A, None, false).unwrap();
        let echo = parse(&out.bytes).unwrap();
        assert!(!echo.response);
        assert!(echo.asks(&out));
    }

    #[test]
    fn a_header_is_read_from_four_bytes_and_no_fewer() {
        assert_eq!(Reply::from_header(&[0x12, 0x34, 0x82]), None);
        let reply = Reply::from_header(&[0x12, 0x34, 0x82, 0x83]).unwrap();
        assert_eq!(reply.id, 0x1234);
        assert!(reply.response && reply.truncated && reply.recursion_available);
        assert_eq!(reply.status, QueryStatus::NxDomain);
        assert_eq!(id_of(&[0xab]), None);
        assert_eq!(id_of(&[0xab, 0xcd]), Some(0xabcd));
    }
}
