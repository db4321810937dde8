//! A simulated network and authoritative server for the walk's unit tests, run in tokio's
//! virtual time. It answers like the Knot setup the resolvers were measured against:
//! authoritative NXDOMAIN and NODATA, REFUSED outside its zones, SERVFAIL for a zone without
//! data, and TC when an answer does not fit the advertised UDP size.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};

use hickory_proto::op::{Message, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA, CNAME};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use tokio::sync::mpsc;

use super::walk::{Datagram, Stream, Wire};
use super::{Qtype, Transport};

/// How a simulated server address behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Behavior {
    /// Answers from the zones.
    Zone,
    /// Reads and never answers.
    Blackhole,
    /// Nothing listens: ICMP port unreachable.
    Closed,
}

#[derive(Debug, Clone)]
enum Rec {
    Addr(IpAddr),
    Cname(String),
}

/// A query as it arrived at a server's address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    pub server: SocketAddr,
    pub qname: String,
    pub qtype: Qtype,
    pub transport: Transport,
}

#[derive(Debug, Default)]
struct Inner {
    servers: HashMap<SocketAddr, Behavior>,
    records: HashMap<String, Vec<Rec>>,
    zones: Vec<String>,
    broken_zones: Vec<String>,
    seen: Vec<Seen>,
    /// Replies of this type are dropped this many more times.
    drop_replies: HashMap<Qtype, usize>,
    /// Answer NXDOMAIN, not REFUSED, for names outside the zones (a root zone is loaded).
    root: bool,
}

/// The simulated network. Cloning shares it.
#[derive(Debug, Clone, Default)]
pub struct SimNet(Arc<Mutex<Inner>>);

/// The lab's nameserver address in these tests.
pub const NS: &str = "10.96.0.10:53";

impl SimNet {
    /// A network with one server, [`NS`], serving the test zones.
    pub fn lab() -> SimNet {
        let net = SimNet::default();
        net.server(NS, Behavior::Zone);
        {
            let mut inner = net.lock();
            inner.zones = ["cluster.local.", "example.com.", "node.internal."]
                .map(String::from)
                .to_vec();
            inner.broken_zones = vec!["broken.test.".to_string()];
        }
        net.addr("kubernetes.default.svc.cluster.local.", "10.96.0.1");
        net.addr("kube-dns.kube-system.svc.cluster.local.", "10.96.0.10");
        net.addr("dual.default.svc.cluster.local.", "10.96.0.20");
        net.addr("dual.default.svc.cluster.local.", "fd00::20");
        net.addr("api.example.com.", "192.0.2.10");
        net.addr("api.example.com.", "2001:db8::10");
        net.cname("ext.default.svc.cluster.local.", "api.example.net.");
        net.many("big.default.svc.cluster.local.", 60);
        net.many("huge.default.svc.cluster.local.", 120);
        net
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Serves the root zone too, so names outside the test zones get NXDOMAIN.
    pub fn with_root(self) -> SimNet {
        self.lock().root = true;
        self
    }

    pub fn server(&self, addr: &str, behavior: Behavior) {
        self.lock()
            .servers
            .insert(addr.parse().expect("test address"), behavior);
    }

    pub fn addr(&self, name: &str, ip: &str) {
        let ip = ip.parse().expect("test address");
        self.lock()
            .records
            .entry(name.to_string())
            .or_default()
            .push(Rec::Addr(ip));
    }

    fn cname(&self, name: &str, target: &str) {
        self.lock()
            .records
            .entry(name.to_string())
            .or_default()
            .push(Rec::Cname(target.to_string()));
    }

    fn many(&self, name: &str, count: u8) {
        for i in 0..count {
            self.addr(name, &format!("10.1.{}.{}", i / 200, i % 200 + 1));
        }
    }

    /// Drops the next `times` replies to queries of `qtype`.
    pub fn drop_replies(&self, qtype: Qtype, times: usize) {
        self.lock().drop_replies.insert(qtype, times);
    }

    /// Every query the servers received, in order.
    pub fn seen(&self) -> Vec<Seen> {
        self.lock().seen.clone()
    }

    /// Handles one query; `None` when nothing answers.
    fn serve(
        &self,
        server: SocketAddr,
        bytes: &[u8],
        transport: Transport,
    ) -> Result<Option<Vec<u8>>, io::Error> {
        let mut inner = self.lock();
        let behavior = inner
            .servers
            .get(&server)
            .copied()
            .unwrap_or(Behavior::Closed);
        let Ok(query) = Message::from_vec(bytes) else {
            return Ok(None);
        };
        let Some(q) = query.queries.first() else {
            return Ok(None);
        };
        let qname = q.name().to_ascii().to_ascii_lowercase();
        let qtype = if q.query_type() == RecordType::AAAA {
            Qtype::Aaaa
        } else {
            Qtype::A
        };
        inner.seen.push(Seen {
            server,
            qname: qname.clone(),
            qtype,
            transport,
        });
        if behavior == Behavior::Closed {
            return Err(io::ErrorKind::ConnectionRefused.into());
        }
        if behavior == Behavior::Blackhole {
            return Ok(None);
        }
        if let Some(left) = inner.drop_replies.get_mut(&qtype).filter(|n| **n > 0) {
            *left -= 1;
            return Ok(None);
        }
        let limit = match transport {
            Transport::Tcp => usize::MAX,
            Transport::Udp => query
                .edns
                .as_ref()
                .map_or(512, |e| usize::from(e.max_payload())),
        };
        Ok(Some(inner.answer(&query, &qname, qtype, limit)))
    }
}

impl Inner {
    fn answer(&self, query: &Message, qname: &str, qtype: Qtype, limit: usize) -> Vec<u8> {
        let mut reply = Message::response(query.metadata.id, OpCode::Query);
        reply.metadata.message_type = MessageType::Response;
        reply.metadata.recursion_desired = query.metadata.recursion_desired;
        reply.add_queries(query.queries.clone());
        let in_zone = |z: &String| qname == z || qname.ends_with(&format!(".{z}"));
        if self.broken_zones.iter().any(in_zone) {
            reply.metadata.response_code = ResponseCode::ServFail;
        } else if !self.root && !self.zones.iter().any(in_zone) {
            reply.metadata.response_code = ResponseCode::Refused;
        } else {
            reply.metadata.authoritative = true;
            self.fill(&mut reply, qname, qtype);
        }
        let bytes = reply.to_vec().unwrap_or_default();
        if bytes.len() <= limit {
            return bytes;
        }
        reply.answers.clear();
        reply.metadata.truncation = true;
        reply.to_vec().unwrap_or_default()
    }

    fn fill(&self, reply: &mut Message, qname: &str, qtype: Qtype) {
        let name = Name::from_ascii(qname).unwrap_or_default();
        match self.records.get(qname) {
            Some(records) => {
                for rec in records {
                    let rdata = match (rec, qtype) {
                        (Rec::Cname(target), _) => {
                            RData::CNAME(CNAME(Name::from_ascii(target).unwrap_or_default()))
                        }
                        (Rec::Addr(IpAddr::V4(ip)), Qtype::A) => RData::A(A(*ip)),
                        (Rec::Addr(IpAddr::V6(ip)), Qtype::Aaaa) => RData::AAAA(AAAA(*ip)),
                        _ => continue,
                    };
                    reply.add_answer(Record::from_rdata(name.clone(), 30, rdata));
                }
            }
            None if self
                .records
                .keys()
                .any(|k| k.ends_with(&format!(".{qname}"))) => {}
            None => reply.metadata.response_code = ResponseCode::NXDomain,
        }
    }
}

/// What a simulated socket receives: a datagram and its sender, or an ICMP error.
type Delivery = io::Result<(Vec<u8>, SocketAddr)>;

/// A simulated UDP socket: replies are queued as the server produces them.
#[derive(Debug)]
pub struct SimUdp {
    net: SimNet,
    peer: Option<SocketAddr>,
    tx: mpsc::UnboundedSender<Delivery>,
    rx: tokio::sync::Mutex<mpsc::UnboundedReceiver<Delivery>>,
}

/// A simulated TCP connection.
#[derive(Debug)]
pub struct SimTcp {
    net: SimNet,
    server: SocketAddr,
    replies: std::collections::VecDeque<Vec<u8>>,
}

impl Wire for SimNet {
    type Udp = SimUdp;
    type Tcp = SimTcp;

    async fn udp(&self, peer: Option<SocketAddr>) -> io::Result<SimUdp> {
        let (tx, rx) = mpsc::unbounded_channel();
        Ok(SimUdp {
            net: self.clone(),
            peer,
            tx,
            rx: tokio::sync::Mutex::new(rx),
        })
    }

    async fn tcp(&self, server: SocketAddr) -> io::Result<SimTcp> {
        let behavior = self.lock().servers.get(&server).copied();
        match behavior {
            Some(Behavior::Zone) => Ok(SimTcp {
                net: self.clone(),
                server,
                replies: Default::default(),
            }),
            Some(Behavior::Blackhole) => std::future::pending().await,
            _ => Err(io::ErrorKind::ConnectionRefused.into()),
        }
    }
}

impl Datagram for SimUdp {
    async fn send_to(&self, bytes: &[u8], to: SocketAddr) -> io::Result<()> {
        match self.net.serve(to, bytes, Transport::Udp) {
            Ok(Some(reply)) => drop(self.tx.send(Ok((reply, to)))),
            Ok(None) => {}
            // Only a connected socket hears about ICMP errors.
            Err(e) if self.peer.is_some() => drop(self.tx.send(Err(e))),
            Err(_) => {}
        }
        Ok(())
    }

    async fn send_all(&self, messages: &[&[u8]]) -> io::Result<usize> {
        let peer = self.peer.ok_or(io::ErrorKind::NotConnected)?;
        for message in messages {
            self.send_to(message, peer).await?;
        }
        Ok(messages.len())
    }

    async fn recv_from(&self) -> io::Result<(Vec<u8>, SocketAddr)> {
        let mut rx = self.rx.lock().await;
        match rx.recv().await {
            Some(item) => item,
            None => std::future::pending().await,
        }
    }
}

impl Stream for SimTcp {
    async fn send(&mut self, bytes: &[u8]) -> io::Result<()> {
        if let Some(reply) = self.net.serve(self.server, bytes, Transport::Tcp)? {
            self.replies.push_back(reply);
        }
        Ok(())
    }

    async fn recv(&mut self) -> io::Result<Vec<u8>> {
        match self.replies.pop_front() {
            Some(reply) => Ok(reply),
            None => std::future::pending().await,
        }
    }
}
