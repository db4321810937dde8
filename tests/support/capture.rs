//! Every DNS query on the wire of a network namespace, with what came back for it: a reply's
//! rcode, an ICMP port unreachable, or nothing.
//!
//! An AF_PACKET socket (cooked, `SOCK_DGRAM`, every protocol) sees each packet of every
//! interface in the namespace the test process is in: run it only inside a namespace of the
//! test's own, where the only traffic is the test's. Queries and replies are told apart by the
//! DNS header's QR bit, so servers may listen on any port; DNS over TCP is reassembled per
//! connection and direction. IPv4 only: every test server is on 127.0.0.0/8.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::os::fd::{AsRawFd, OwnedFd};

use hickory_proto::op::{Message, MessageType};
use nix::errno::Errno;
use nix::sys::socket::{
    AddressFamily, LinkAddr, SockFlag, SockProtocol, SockType, recvfrom, setsockopt, socket,
    sockopt,
};

/// `sll_pkttype` of a packet the host sent; on loopback each packet is also seen arriving.
const PACKET_OUTGOING: u8 = 4;

/// One DNS query seen leaving, and its fate.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct WireQuery {
    pub server: SocketAddr,
    /// Lower case, with the trailing dot.
    pub qname: String,
    /// `A`, `AAAA`, …
    pub qtype: String,
    /// `udp` or `tcp`.
    pub transport: &'static str,
    /// The reply's rcode (`NOERROR`, `NXDOMAIN`, …), `UNREACHABLE` for an ICMP port
    /// unreachable, or `TIMEOUT` when nothing came back.
    pub outcome: String,
}

/// A running capture of the current network namespace.
pub struct Capture {
    fd: OwnedFd,
}

/// A DNS message in flight: who sent it to whom, over what.
#[derive(Debug, Clone)]
struct Seen {
    client: SocketAddr,
    server: SocketAddr,
    transport: &'static str,
    id: u16,
    qname: String,
    qtype: String,
    rcode: Option<String>,
}

/// What one packet held.
enum Packet {
    Dns(Vec<Seen>),
    /// An ICMP port unreachable for the UDP datagram client → server with this DNS ID.
    Unreachable {
        client: SocketAddr,
        server: SocketAddr,
        id: u16,
    },
    Other,
}

impl Capture {
    /// Starts capturing at once: every packet sent after this returns is seen.
    pub fn start() -> Capture {
        let fd = socket(
            AddressFamily::Packet,
            SockType::Datagram,
            SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC,
            SockProtocol::EthAll,
        )
        .expect("an AF_PACKET socket (needs root, CAP_NET_RAW)");
        setsockopt(&fd, sockopt::RcvBufForce, &(8 << 20)).expect("an 8 MiB receive buffer");
        Capture { fd }
    }

    /// Every DNS query that left since the last call, each with its fate, in the order sent.
    pub fn take(&self) -> Vec<WireQuery> {
        let mut tcp = TcpStreams::default();
        let mut packets = Vec::new();
        for (bytes, outgoing) in self.drain() {
            if outgoing {
                packets.push(parse(&bytes, &mut tcp));
            }
        }
        packets.push(Packet::Dns(tcp.messages()));
        fates(packets)
    }

    /// The raw packets queued on the socket, and whether each was seen leaving.
    fn drain(&self) -> Vec<(Vec<u8>, bool)> {
        let mut out = Vec::new();
        let mut buf = vec![0u8; 70_000];
        loop {
            match recvfrom::<LinkAddr>(self.fd.as_raw_fd(), &mut buf) {
                Ok((n, from)) => {
                    let outgoing = from.is_some_and(|a| a.pkttype() == PACKET_OUTGOING);
                    out.push((buf[..n].to_vec(), outgoing));
                }
                Err(Errno::EAGAIN) => return out,
                Err(Errno::EINTR) => continue,
                Err(e) => panic!("reading the capture: {e}"),
            }
        }
    }
}

/// Pairs each query with the reply to it (same server, client port, transport and ID) or
/// the ICMP error it caused. Retransmissions share all four; a reply goes to the first of
/// them still without one, which leaves the same (qname, qtype, outcome) counts.
fn fates(packets: Vec<Packet>) -> Vec<WireQuery> {
    let mut queries: Vec<(Seen, Option<String>)> = Vec::new();
    let key = |s: &Seen| (s.server, s.client, s.transport, s.id);
    for packet in packets {
        match packet {
            Packet::Dns(messages) => {
                for seen in messages {
                    match &seen.rcode {
                        None => queries.push((seen, None)),
                        Some(rcode) => {
                            if let Some(q) = queries
                                .iter_mut()
                                .find(|(q, fate)| fate.is_none() && key(q) == key(&seen))
                            {
                                q.1 = Some(rcode.clone());
                            }
                        }
                    }
                }
            }
            Packet::Unreachable { client, server, id } => {
                if let Some(q) = queries
                    .iter_mut()
                    .find(|(q, fate)| fate.is_none() && key(q) == (server, client, "udp", id))
                {
                    q.1 = Some("UNREACHABLE".to_string());
                }
            }
            Packet::Other => {}
        }
    }
    queries
        .into_iter()
        .map(|(q, fate)| WireQuery {
            server: q.server,
            qname: q.qname,
            qtype: q.qtype,
            transport: q.transport,
            outcome: fate.unwrap_or_else(|| "TIMEOUT".to_string()),
        })
        .collect()
}

/// An IPv4 packet: UDP carrying DNS, a TCP segment (kept for reassembly), or ICMP.
fn parse(ip: &[u8], tcp: &mut TcpStreams) -> Packet {
    let Some((src, dst, protocol, payload)) = ipv4(ip) else {
        return Packet::Other;
    };
    match protocol {
        17 => {
            let Some((sport, dport, data)) = udp(payload) else {
                return Packet::Other;
            };
            let from = SocketAddr::V4(SocketAddrV4::new(src, sport));
            let to = SocketAddr::V4(SocketAddrV4::new(dst, dport));
            Packet::Dns(dns(data, from, to, "udp").into_iter().collect())
        }
        6 => {
            tcp.segment(src, dst, payload);
            Packet::Other
        }
        1 => icmp_unreachable(payload).unwrap_or(Packet::Other),
        _ => Packet::Other,
    }
}

fn ipv4(ip: &[u8]) -> Option<(Ipv4Addr, Ipv4Addr, u8, &[u8])> {
    if ip.first()? >> 4 != 4 {
        return None;
    }
    let header = usize::from(ip[0] & 0x0f) * 4;
    let total = usize::from(u16::from_be_bytes([*ip.get(2)?, *ip.get(3)?]));
    let src = Ipv4Addr::new(*ip.get(12)?, ip[13], ip[14], ip[15]);
    let dst = Ipv4Addr::new(*ip.get(16)?, ip[17], ip[18], ip[19]);
    Some((src, dst, ip[9], ip.get(header..total.min(ip.len()))?))
}

fn udp(segment: &[u8]) -> Option<(u16, u16, &[u8])> {
    let sport = u16::from_be_bytes([*segment.first()?, *segment.get(1)?]);
    let dport = u16::from_be_bytes([*segment.get(2)?, *segment.get(3)?]);
    Some((sport, dport, segment.get(8..)?))
}

/// ICMP destination unreachable, port unreachable (type 3, code 3), quoting a DNS query.
fn icmp_unreachable(icmp: &[u8]) -> Option<Packet> {
    if (*icmp.first()?, *icmp.get(1)?) != (3, 3) {
        return None;
    }
    let quoted = icmp.get(8..)?;
    let header = usize::from(quoted.first()? & 0x0f) * 4;
    let src = Ipv4Addr::new(*quoted.get(12)?, quoted[13], quoted[14], quoted[15]);
    let dst = Ipv4Addr::new(*quoted.get(16)?, quoted[17], quoted[18], quoted[19]);
    let (sport, dport, data) = udp(quoted.get(header..)?)?;
    let id = u16::from_be_bytes([*data.first()?, *data.get(1)?]);
    Some(Packet::Unreachable {
        client: SocketAddr::V4(SocketAddrV4::new(src, sport)),
        server: SocketAddr::V4(SocketAddrV4::new(dst, dport)),
        id,
    })
}

/// One DNS message from `from` to `to`: a query (QR 0) is client → server, a reply server →
/// client.
fn dns(data: &[u8], from: SocketAddr, to: SocketAddr, transport: &'static str) -> Option<Seen> {
    let message = Message::from_vec(data).ok()?;
    let question = message.queries.first()?;
    let reply = message.metadata.message_type == MessageType::Response;
    let (client, server) = if reply { (to, from) } else { (from, to) };
    Some(Seen {
        client,
        server,
        transport,
        id: message.metadata.id,
        qname: question.name().to_ascii().to_ascii_lowercase(),
        qtype: question.query_type().to_string(),
        rcode: reply.then(|| rcode_name(u16::from(message.metadata.response_code))),
    })
}

/// CoreDNS's rcode strings, as hopwatch reports them.
fn rcode_name(rcode: u16) -> String {
    match rcode {
        0 => "NOERROR",
        1 => "FORMERR",
        2 => "SERVFAIL",
        3 => "NXDOMAIN",
        4 => "NOTIMP",
        5 => "REFUSED",
        _ => "OTHER",
    }
    .to_string()
}

/// TCP payloads per direction of each connection, in arrival order (loopback neither drops
/// nor reorders), split into DNS messages by their two-byte length prefix.
#[derive(Default)]
struct TcpStreams(BTreeMap<(SocketAddr, SocketAddr), Vec<u8>>);

impl TcpStreams {
    fn segment(&mut self, src: Ipv4Addr, dst: Ipv4Addr, tcp: &[u8]) {
        let (Some(ports), Some(offset)) = (tcp.get(..4), tcp.get(12)) else {
            return;
        };
        let from = SocketAddr::V4(SocketAddrV4::new(
            src,
            u16::from_be_bytes([ports[0], ports[1]]),
        ));
        let to = SocketAddr::V4(SocketAddrV4::new(
            dst,
            u16::from_be_bytes([ports[2], ports[3]]),
        ));
        let data = tcp.get(usize::from(offset >> 4) * 4..).unwrap_or_default();
        self.0
            .entry((from, to))
            .or_default()
            .extend_from_slice(data);
    }

    /// Every whole message in every stream; queries before replies.
    fn messages(&self) -> Vec<Seen> {
        let mut all = Vec::new();
        for ((from, to), bytes) in &self.0 {
            let mut rest = bytes.as_slice();
            while rest.len() >= 2 {
                let len = usize::from(u16::from_be_bytes([rest[0], rest[1]]));
                let Some(message) = rest.get(2..2 + len) else {
                    break;
                };
                all.extend(dns(message, *from, *to, "tcp"));
                rest = &rest[2 + len..];
            }
        }
        all.sort_by_key(|s| s.rcode.is_some());
        all
    }
}
