//! Loopback network fixtures: raw DNS queries, a server that never answers, a closed port.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream, UdpSocket};
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use hickory_proto::op::{Edns, Message, Query};
use hickory_proto::rr::{Name, RecordType};

/// The parts of a reply the harness checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// The numeric rcode (0 NOERROR, 2 SERVFAIL, 3 NXDOMAIN, 5 REFUSED).
    pub rcode: u16,
    pub answers: usize,
    /// Record types in the answer section, in order: `"A"`, `"CNAME"`.
    pub answer_types: Vec<String>,
    pub truncated: bool,
    pub authoritative: bool,
}

impl Reply {
    fn from_message(message: &Message) -> Reply {
        Reply {
            rcode: u16::from(message.metadata.response_code),
            answers: message.answers.len(),
            answer_types: message
                .answers
                .iter()
                .map(|r| r.record_type().to_string())
                .collect(),
            truncated: message.metadata.truncation,
            authoritative: message.metadata.authoritative,
        }
    }
}

/// Encodes a recursive query for `name` (with its trailing dot) and `qtype` (`"A"`, `"SOA"`),
/// with an EDNS OPT advertising `payload` bytes when given.
pub fn encode_query(name: &str, qtype: &str, payload: Option<u16>) -> (u16, Vec<u8>) {
    let name = Name::from_ascii(name).expect("a valid query name");
    let qtype = RecordType::from_str(qtype).expect("a known record type");
    let mut message = Message::query();
    message.metadata.recursion_desired = true;
    message.add_query(Query::query(name, qtype));
    if let Some(payload) = payload {
        let mut edns = Edns::new();
        edns.set_max_payload(payload);
        message.set_edns(edns);
    }
    let bytes = message.to_vec().expect("encode a query");
    (message.metadata.id, bytes)
}

/// One query over UDP without EDNS, as glibc and musl send it; `None` if no reply came in time.
pub fn udp_query(server: SocketAddr, name: &str, qtype: &str, wait: Duration) -> Option<Reply> {
    udp_exchange(server, name, qtype, None, wait)
}

/// One query over UDP, with an EDNS payload size when given.
pub fn udp_exchange(
    server: SocketAddr,
    name: &str,
    qtype: &str,
    payload: Option<u16>,
    wait: Duration,
) -> Option<Reply> {
    let (id, bytes) = encode_query(name, qtype, payload);
    let socket = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind a UDP socket");
    socket.send_to(&bytes, server).ok()?;
    let give_up = Instant::now() + wait;
    let mut buf = vec![0u8; 65535];
    loop {
        let left = give_up.checked_duration_since(Instant::now())?;
        socket
            .set_read_timeout(Some(left.max(Duration::from_millis(1))))
            .ok()?;
        let (len, _) = socket.recv_from(&mut buf).ok()?;
        match Message::from_vec(&buf[..len]) {
            Ok(message) if message.metadata.id == id => return Some(Reply::from_message(&message)),
            _ => continue,
        }
    }
}

/// One query over TCP (two-byte length prefix); `None` if no reply came in time.
pub fn tcp_query(server: SocketAddr, name: &str, qtype: &str, wait: Duration) -> Option<Reply> {
    let (_, bytes) = encode_query(name, qtype, None);
    let mut stream = TcpStream::connect_timeout(&server, wait).ok()?;
    stream.set_read_timeout(Some(wait)).ok()?;
    let len = u16::try_from(bytes.len()).expect("a short query");
    stream.write_all(&len.to_be_bytes()).ok()?;
    stream.write_all(&bytes).ok()?;
    let mut prefix = [0u8; 2];
    stream.read_exact(&mut prefix).ok()?;
    let mut reply = vec![0u8; usize::from(u16::from_be_bytes(prefix))];
    stream.read_exact(&mut reply).ok()?;
    Message::from_vec(&reply)
        .ok()
        .map(|m| Reply::from_message(&m))
}

/// The question of a query datagram as `(qname with trailing dot, qtype)`, or `("?", "?")`
/// when the datagram is not a DNS message.
pub fn question(datagram: &[u8]) -> (String, String) {
    Message::from_vec(datagram)
        .ok()
        .and_then(|m| m.queries.first().cloned())
        .map_or(("?".into(), "?".into()), |q| {
            (q.name().to_ascii(), q.query_type().to_string())
        })
}

/// A UDP socket on loopback that reads every datagram and never replies: a dead server, so
/// every query times out. It records what it received; drop stops its thread.
pub struct Blackhole {
    addr: SocketAddr,
    received: Arc<Mutex<Vec<(String, String)>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Blackhole {
    pub fn start() -> Blackhole {
        let socket = UdpSocket::bind((super::loopback_ip(), 0)).expect("bind the blackhole");
        socket
            .set_read_timeout(Some(Duration::from_millis(50)))
            .expect("set a read timeout");
        let addr = socket.local_addr().expect("local address");
        let received = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (received, stop) = (received.clone(), stop.clone());
            std::thread::spawn(move || swallow(&socket, &received, &stop))
        };
        Blackhole {
            addr,
            received,
            stop,
            thread: Some(thread),
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Every query received so far, in arrival order, as `(qname, qtype)`.
    pub fn received(&self) -> Vec<(String, String)> {
        self.received.lock().expect("blackhole lock").clone()
    }
}

fn swallow(socket: &UdpSocket, received: &Mutex<Vec<(String, String)>>, stop: &AtomicBool) {
    let mut buf = vec![0u8; 65535];
    while !stop.load(Ordering::Relaxed) {
        if let Ok((len, _)) = socket.recv_from(&mut buf) {
            let q = question(&buf[..len]);
            received.lock().expect("blackhole lock").push(q);
        }
    }
}

impl Drop for Blackhole {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A loopback UDP address nobody listens on: the kernel answers every datagram sent there
/// with ICMP port unreachable (a connected socket then reads ECONNREFUSED).
pub fn closed_udp_port() -> SocketAddr {
    let socket = UdpSocket::bind((super::loopback_ip(), 0)).expect("bind a UDP socket");
    socket.local_addr().expect("local address")
}
