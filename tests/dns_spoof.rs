//! Spoofed and stray DNS replies: every flavor against a hostile responder on loopback.
//!
//! Before its true reply to each query, the responder sends what a forger or a broken network
//! would: a reply with another ID, one with the right ID and another question, one from another
//! port, garbage, a flood of 1,000 garbage datagrams, and a stale reply to a query of an
//! earlier step. What each real resolver does with them (from glibc `resolv/res_send.c`
//! `send_dg` and `res_queriesmatch`, musl `src/network/res_msend.c`, Go
//! `net/dnsclient_unix.go` `dnsPacketRoundTrip` and `checkResponse`), which the walker must do
//! too:
//!
//! | datagram                          | glibc                    | musl                    | Go           |
//! |-----------------------------------|--------------------------|-------------------------|--------------|
//! | wrong ID                          | dropped                  | dropped                 | dropped      |
//! | right ID, another question        | dropped                  | **taken**               | dropped      |
//! | from another port                 | never read (connected)   | dropped                 | never read   |
//! | garbage (12+ bytes), wrong ID     | dropped (ID)             | dropped (ID)            | dropped      |
//! | stale reply to an earlier step    | dropped (ID)             | dropped (ID)            | dropped (ID) |
//! | under 12 bytes                    | **ends the try**         | dropped, or **taken** from 4 bytes with the right ID | dropped |
//! | the query echoed back (QR=0)      | **taken**, a lame referral | **taken**, NODATA     | dropped      |
//!
//! Every dropped datagram is counted by reason in the report (and so in
//! `hopwatch_dns_discarded_replies_total`). The flood is paced by the client socket's receive
//! queue (`/proc/net/udp`) so the kernel drops none of it and the counts are exact.

mod support;

use std::collections::BTreeSet;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use hopwatch::probe::Failure;
use hopwatch::probe::dns::{Discard, Flavor, LookupReport, QueryTypes};
use support::walk::{addresses, lookup_at};

/// One search domain: `web` is NXDOMAIN in it (step 1), then found as-is (step 2).
const CONF: &str = "nameserver 127.0.0.1\nsearch a.test\noptions ndots:5 timeout:10 attempts:1\n";
const TRUE_V4: &str = "10.0.0.1";
const TRUE_V6: &str = "fd00::1";
const FLOOD: usize = 1000;

/// What the responder sends to a query before its true reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Spoof {
    /// The true answer under another ID.
    WrongId,
    /// The right ID, a reply about `evil.example.` with 192.0.2.2 / 2001:db8::2.
    OtherQuestion,
    /// The right ID and question with 192.0.2.3, sent from another port.
    OtherPort,
    /// 40 bytes that are no DNS message, under another ID.
    Garbage,
    /// [`FLOOD`] of those.
    Flood,
    /// A reply to the query of an earlier step (its ID and question) with 192.0.2.4.
    Stale,
    /// A datagram of this many bytes, under 12, under another ID.
    Short(usize),
    /// The query itself, sent back.
    Echo,
}

const HOSTILE: [Spoof; 6] = [
    Spoof::WrongId,
    Spoof::OtherQuestion,
    Spoof::OtherPort,
    Spoof::Garbage,
    Spoof::Flood,
    Spoof::Stale,
];

/// One query the responder got, and what it sent before the true reply.
#[derive(Debug, Clone)]
struct Seen {
    from: SocketAddr,
    id: u16,
    qname: String,
    qtype: RecordType,
    sent: Vec<Spoof>,
}

/// A UDP server on loopback answering every query after its script of spoofs.
struct Responder {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Responder {
    fn start(script: &'static [Spoof]) -> Responder {
        let ip = support::loopback_ip();
        let socket = UdpSocket::bind((ip, 0)).expect("bind the responder");
        let other = UdpSocket::bind((ip, 0)).expect("bind the other port");
        socket
            .set_read_timeout(Some(Duration::from_millis(50)))
            .expect("a read timeout");
        let addr = socket.local_addr().expect("its address");
        let (seen, stop) = (Arc::default(), Arc::new(AtomicBool::new(false)));
        let thread = {
            let (seen, stop) = (Arc::clone(&seen), Arc::clone(&stop));
            std::thread::spawn(move || serve(&socket, &other, script, &seen, &stop))
        };
        Responder {
            addr,
            seen,
            stop,
            thread: Some(thread),
        }
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().expect("the responder's record").clone()
    }
}

impl Drop for Responder {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn serve(
    socket: &UdpSocket,
    other: &UdpSocket,
    script: &[Spoof],
    seen: &Mutex<Vec<Seen>>,
    stop: &AtomicBool,
) {
    let mut buf = vec![0u8; 65535];
    while !stop.load(Ordering::Relaxed) {
        let Ok((len, from)) = socket.recv_from(&mut buf) else {
            continue;
        };
        let Ok(query) = Message::from_vec(&buf[..len]) else {
            continue;
        };
        let Some(q) = query.queries.first() else {
            continue;
        };
        let mut now = Seen {
            from,
            id: query.metadata.id,
            qname: q.name().to_ascii(),
            qtype: q.query_type(),
            sent: Vec::new(),
        };
        let earlier = seen.lock().expect("the record").clone();
        for &spoof in script {
            if send_spoof(socket, other, &now, &earlier, &buf[..len], spoof) {
                now.sent.push(spoof);
            }
        }
        let _ = socket.send_to(&truth(&now), from);
        seen.lock().expect("the record").push(now);
    }
}

/// Sends one spoof; false when there is nothing to send (no earlier step to be stale from).
fn send_spoof(
    socket: &UdpSocket,
    other: &UdpSocket,
    now: &Seen,
    earlier: &[Seen],
    query: &[u8],
    spoof: Spoof,
) -> bool {
    let to = now.from;
    let not_id = now.id ^ 0x8000;
    let bytes = match spoof {
        Spoof::WrongId => reply(not_id, &now.qname, now.qtype, Some(1)),
        Spoof::OtherQuestion => reply(now.id, "evil.example.", now.qtype, Some(2)),
        Spoof::OtherPort => {
            let _ = other.send_to(&reply(now.id, &now.qname, now.qtype, Some(3)), to);
            return true;
        }
        Spoof::Garbage => garbage(not_id),
        Spoof::Flood => {
            flood(socket, to, not_id);
            return true;
        }
        Spoof::Stale => {
            let Some(old) = earlier
                .iter()
                .rev()
                .find(|e| e.qtype == now.qtype && e.qname != now.qname && !near(e.id, now.id))
            else {
                return false;
            };
            reply(old.id, &old.qname, old.qtype, Some(4))
        }
        Spoof::Short(n) => garbage(not_id)[..n].to_vec(),
        Spoof::Echo => query.to_vec(),
    };
    let _ = socket.send_to(&bytes, to);
    true
}

/// Whether `a` could be the ID of a query waiting next to `b` on its socket: glibc and musl
/// number a step's queries from one random ID.
fn near(a: u16, b: u16) -> bool {
    matches!(a.wrapping_sub(b), 0 | 1 | u16::MAX)
}

/// The true reply: NXDOMAIN in the search domain, the address as-is.
fn truth(q: &Seen) -> Vec<u8> {
    if q.qname.ends_with(".a.test.") {
        reply(q.id, &q.qname, q.qtype, None)
    } else {
        reply(q.id, &q.qname, q.qtype, Some(0))
    }
}

/// A response to `qname` with one address of `qtype` (`192.0.2.n` / `2001:db8::n`, or the
/// true one for 0), or NXDOMAIN for `None`.
fn reply(id: u16, qname: &str, qtype: RecordType, n: Option<u8>) -> Vec<u8> {
    let name = Name::from_ascii(qname).expect("a name");
    let mut msg = Message::new(id, MessageType::Response, OpCode::Query);
    msg.metadata.recursion_desired = true;
    msg.metadata.recursion_available = true;
    msg.add_query(Query::query(name.clone(), qtype));
    match n {
        None => msg.metadata.response_code = ResponseCode::NXDomain,
        Some(n) => {
            let data = match (qtype, n) {
                (RecordType::A, 0) => RData::A(A(TRUE_V4.parse().expect("v4"))),
                (RecordType::A, n) => RData::A(A(Ipv4Addr::new(192, 0, 2, n))),
                (_, 0) => RData::AAAA(AAAA(TRUE_V6.parse().expect("v6"))),
                (_, n) => RData::AAAA(AAAA(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, n.into()))),
            };
            msg.add_answer(Record::from_rdata(name, 30, data));
        }
    }
    msg.to_vec().expect("encode a reply")
}

/// 40 bytes under `id`: a response header claiming 65,535 questions, then compression
/// pointers to nowhere. No resolver can read a question from it.
fn garbage(id: u16) -> Vec<u8> {
    let mut bytes = id.to_be_bytes().to_vec();
    bytes.extend([0x81, 0x80, 0xff, 0xff, 0, 0, 0, 0, 0, 0]);
    bytes.resize(40, 0xc0);
    bytes
}

/// [`FLOOD`] garbage datagrams, 50 at a time, each batch once the client has read the last.
fn flood(socket: &UdpSocket, to: SocketAddr, id: u16) {
    let bytes = garbage(id);
    for batch in 0..FLOOD / 50 {
        for _ in 0..50 {
            let _ = socket.send_to(&bytes, to);
        }
        if batch + 1 < FLOOD / 50 {
            wait_read(to.port());
        }
    }
    wait_read(to.port());
}

/// Waits (at most 5 s) until the local UDP socket on `port` has nothing left to read, and
/// checks that the kernel dropped nothing on it.
fn wait_read(port: u16) {
    let give_up = Instant::now() + Duration::from_secs(5);
    while Instant::now() < give_up {
        let Some((queued, drops)) = receive_queue(port) else {
            return;
        };
        assert_eq!(drops, 0, "the kernel dropped datagrams to port {port}");
        if queued == 0 {
            return;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// The receive queue (bytes) and drop count of the IPv4 UDP socket bound to `port`, from
/// `/proc/net/udp`; `None` once it is closed.
fn receive_queue(port: u16) -> Option<(u64, u64)> {
    let table = std::fs::read_to_string("/proc/net/udp").ok()?;
    table.lines().skip(1).find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let local = fields.get(1)?;
        let (_, hex_port) = local.split_once(':')?;
        if u16::from_str_radix(hex_port, 16).ok()? != port {
            return None;
        }
        let (_, rx) = fields.get(4)?.split_once(':')?;
        let drops = fields.last()?.parse().ok()?;
        Some((u64::from_str_radix(rx, 16).ok()?, drops))
    })
}

/// Looks `name` up with `flavor` against a fresh responder playing `script`.
async fn against(
    flavor: Flavor,
    script: &'static [Spoof],
    conf: &str,
    name: &str,
) -> (LookupReport, Vec<Seen>) {
    let responder = Responder::start(script);
    let report = lookup_at(responder.addr, conf, flavor, QueryTypes::Both, name).await;
    // Whatever the responder still sends goes to closed ports.
    std::thread::sleep(Duration::from_millis(50));
    let seen = responder.seen();
    (report, seen)
}

/// The discards `report` counted, as `[id_mismatch, question_mismatch, wrong_source, malformed]`.
fn counted(report: &LookupReport) -> [u64; 4] {
    Discard::ALL.map(|r| report.discarded.get(r))
}

/// What a resolver that reads every spoof (and takes none) drops, by reason.
fn dropped_reading_all(flavor: Flavor, seen: &[Seen]) -> [u64; 4] {
    let mut out = [0u64; 4];
    let musl = flavor.is_musl();
    for spoof in seen.iter().flat_map(|s| &s.sent) {
        let (reason, n) = match spoof {
            Spoof::WrongId | Spoof::Stale => (0, 1),
            Spoof::OtherQuestion => (1, 1),
            Spoof::OtherPort if musl => (2, 1),
            Spoof::OtherPort => continue,
            Spoof::Garbage if flavor == Flavor::Go => (3, 1),
            Spoof::Flood if flavor == Flavor::Go => (3, FLOOD as u64),
            Spoof::Garbage => (0, 1),
            Spoof::Flood => (0, FLOOD as u64),
            Spoof::Short(_) | Spoof::Echo => unreachable!("not in a reading-all script"),
        };
        out[reason] += n;
    }
    out
}

#[tokio::test]
async fn glibc_and_go_take_only_the_true_reply_and_count_every_spoof() {
    for flavor in [Flavor::Glibc, Flavor::Go] {
        let (report, seen) = against(flavor, &HOSTILE, CONF, "web").await;
        assert_eq!(report.result, Ok(()), "{flavor}: {report:#?}");
        assert_eq!(addresses(&report), [TRUE_V4, TRUE_V6], "{flavor}");
        assert_eq!(seen.len(), 4, "{flavor}: two steps of A and AAAA");
        // Step 2's queries got a reply to step 1's, unless its ID was too near theirs.
        let stale = seen.iter().filter(|s| s.sent.contains(&Spoof::Stale));
        let stale = stale.count() as u64;
        assert!(stale >= 1, "{flavor}: {seen:?}");
        assert_eq!(
            counted(&report),
            dropped_reading_all(flavor, &seen),
            "{flavor}"
        );
        // Per query: a wrong ID, another question, garbage and the flood; and the stale ones.
        // The other port's reply never reaches a connected socket.
        let total = 4 * (3 + FLOOD as u64) + stale;
        assert_eq!(report.discarded.total(), total, "{flavor}");
        assert_eq!(report.discarded.get(Discard::WrongSource), 0, "{flavor}");
    }
}

#[tokio::test]
async fn musl_takes_a_reply_to_another_question_under_the_right_id() {
    for flavor in [Flavor::Musl, Flavor::MuslLegacy] {
        let (report, _) = against(flavor, &HOSTILE, CONF, "web").await;
        assert_eq!(report.result, Ok(()), "{flavor}: {report:#?}");
        assert_eq!(addresses(&report), ["192.0.2.2", "2001:db8::2"], "{flavor}");
        assert_eq!(
            report.wire_count(),
            2,
            "{flavor}: the first step ends the walk"
        );
        // The A query's wrong ID, garbage, flood and its own true reply, which comes after
        // the spoof musl took, then the AAAA query's wrong ID: musl has both answers and
        // reads no more. The A query's reply from the other port is dropped.
        let ids = 1 + 1 + FLOOD as u64 + 1 + 1;
        assert_eq!(counted(&report), [ids, 0, 1, 0], "{flavor}");
    }
}

/// Every spoof but the one musl takes.
const NO_RIGHT_ID: [Spoof; 5] = [
    Spoof::WrongId,
    Spoof::OtherPort,
    Spoof::Garbage,
    Spoof::Flood,
    Spoof::Stale,
];

#[tokio::test]
async fn musl_drops_every_other_spoof_and_counts_it() {
    for flavor in [Flavor::Musl, Flavor::MuslLegacy] {
        let (report, seen) = against(flavor, &NO_RIGHT_ID, CONF, "web").await;
        assert_eq!(report.result, Ok(()), "{flavor}: {report:#?}");
        assert_eq!(addresses(&report), [TRUE_V4, TRUE_V6], "{flavor}");
        assert_eq!(
            counted(&report),
            dropped_reading_all(flavor, &seen),
            "{flavor}"
        );
        assert_eq!(report.discarded.get(Discard::WrongSource), 4, "{flavor}");
    }
}

#[tokio::test]
async fn every_lookup_and_socket_has_new_ids_and_a_kernel_chosen_port() {
    let range = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .expect("the ephemeral port range");
    let bounds: Vec<u16> = range
        .split_whitespace()
        .map(|p| p.parse().expect("a port"))
        .collect();
    let ephemeral = bounds[0]..=bounds[1];
    for flavor in Flavor::ALL {
        let (_, first) = against(flavor, &[], CONF, "web").await;
        let (_, second) = against(flavor, &[], CONF, "web").await;
        let ids = |s: &[Seen]| s.iter().map(|q| q.id).collect::<Vec<_>>();
        let ports = |s: &[Seen]| s.iter().map(|q| q.from.port()).collect::<Vec<_>>();
        assert_ne!(ids(&first), ids(&second), "{flavor}");
        assert_ne!(ports(&first), ports(&second), "{flavor}");
        for port in ports(&first).into_iter().chain(ports(&second)) {
            assert!(ephemeral.contains(&port), "{flavor}: port {port}");
        }
        // Go opens a socket per query; glibc and musl one per step.
        let sockets = ports(&first).into_iter().collect::<BTreeSet<_>>().len();
        let expected = if flavor == Flavor::Go { 4 } else { 2 };
        assert_eq!(sockets, expected, "{flavor}: {first:?}");
    }
}

/// One step (an FQDN), two tries of 10 s each.
const ONE_STEP: &str = "nameserver 127.0.0.1\noptions timeout:10 attempts:2\n";

#[tokio::test]
async fn a_datagram_under_a_header_ends_glibc_s_try_and_not_the_others_wait() {
    const SHORT: [Spoof; 2] = [Spoof::Short(3), Spoof::Short(5)];
    for flavor in Flavor::ALL {
        let (report, _) = against(flavor, &SHORT, ONE_STEP, "web.").await;
        if flavor == Flavor::Glibc {
            // `close_and_return_error` at each try's first short datagram: the pair is sent
            // twice and the lookup fails at once, not after 2 × 10 s.
            assert_eq!(report.result, Err(Failure::Timeout), "{report:#?}");
            assert_eq!(report.wire_count(), 4);
            assert!(report.duration < Duration::from_secs(5), "{report:#?}");
            assert_eq!(counted(&report), [0, 0, 0, 2]);
            continue;
        }
        assert_eq!(report.result, Ok(()), "{flavor}: {report:#?}");
        assert_eq!(addresses(&report), [TRUE_V4, TRUE_V6], "{flavor}");
        // musl reads the 5-byte one as a header with another ID; Go reads neither.
        let expected = if flavor.is_musl() {
            [2, 0, 0, 2]
        } else {
            [0, 0, 0, 4]
        };
        assert_eq!(counted(&report), expected, "{flavor}");
    }
}

#[tokio::test]
async fn an_echoed_query_is_a_reply_to_glibc_and_musl_and_nothing_to_go() {
    for flavor in Flavor::ALL {
        let (report, _) = against(flavor, &[Spoof::Echo], ONE_STEP, "web.").await;
        let ctx = format!("{flavor}: {report:#?}");
        match flavor {
            // No answer, not authoritative, no recursion: a lame referral, so glibc asks
            // again, gets the same, and fails. The A query's true reply comes after its echo.
            Flavor::Glibc => {
                assert_eq!(report.result, Err(Failure::DnsError), "{ctx}");
                assert_eq!(report.wire_count(), 4, "{ctx}");
                assert_eq!(counted(&report), [2, 0, 0, 0], "{ctx}");
            }
            // NOERROR without an address: NODATA, and the true replies come too late.
            Flavor::Musl | Flavor::MuslLegacy => {
                assert_eq!(report.result, Err(Failure::Nodata), "{ctx}");
                assert_eq!(report.wire_count(), 2, "{ctx}");
                assert_eq!(counted(&report), [1, 0, 0, 0], "{ctx}");
            }
            Flavor::Go => {
                assert_eq!(report.result, Ok(()), "{ctx}");
                assert_eq!(addresses(&report), [TRUE_V4, TRUE_V6], "{ctx}");
                assert_eq!(counted(&report), [0, 0, 0, 2], "{ctx}");
            }
        }
    }
}

/// A server whose UDP replies are truncated (TC, no records) and whose TCP answer to every
/// query is first the answer under another ID (192.0.2.5 / 2001:db8::5), then the true reply.
struct TcpSpoofer {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl TcpSpoofer {
    fn start() -> TcpSpoofer {
        let ip = support::loopback_ip();
        // The TCP listener takes the UDP socket's port; another port if that one is taken.
        let (udp, tcp) = (0..20)
            .find_map(|_| {
                let udp = UdpSocket::bind((ip, 0)).ok()?;
                let port = udp.local_addr().ok()?.port();
                Some((udp, std::net::TcpListener::bind((ip, port)).ok()?))
            })
            .expect("a UDP and a TCP socket on one port");
        let addr = udp.local_addr().expect("its address");
        udp.set_read_timeout(Some(Duration::from_millis(50)))
            .expect("a read timeout");
        tcp.set_nonblocking(true).expect("a non-blocking listener");
        let stop = Arc::new(AtomicBool::new(false));
        let udp_thread = {
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || {
                let mut buf = vec![0u8; 65535];
                while !stop.load(Ordering::Relaxed) {
                    let Ok((len, from)) = udp.recv_from(&mut buf) else {
                        continue;
                    };
                    if let Some(reply) = truncated(&buf[..len]) {
                        let _ = udp.send_to(&reply, from);
                    }
                }
            })
        };
        let tcp_thread = {
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || {
                let mut conns = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    match tcp.accept() {
                        Ok((conn, _)) => conns.push(std::thread::spawn(move || serve_tcp(conn))),
                        Err(_) => std::thread::sleep(Duration::from_millis(5)),
                    }
                }
                for conn in conns {
                    let _ = conn.join();
                }
            })
        };
        TcpSpoofer {
            addr,
            stop,
            threads: vec![udp_thread, tcp_thread],
        }
    }
}

impl Drop for TcpSpoofer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

/// The truncated reply to the query in `bytes`: its ID and question, TC set, no records.
fn truncated(bytes: &[u8]) -> Option<Vec<u8>> {
    let query = Message::from_vec(bytes).ok()?;
    let q = query.queries.first()?;
    let mut msg = Message::new(query.metadata.id, MessageType::Response, OpCode::Query);
    msg.metadata.recursion_desired = true;
    msg.metadata.recursion_available = true;
    msg.metadata.truncation = true;
    msg.add_query(q.clone());
    msg.to_vec().ok()
}

/// One TCP connection: to each query, the answer under another ID, then the true reply.
fn serve_tcp(mut conn: std::net::TcpStream) {
    use std::io::{Read, Write};
    let _ = conn.set_read_timeout(Some(Duration::from_secs(5)));
    loop {
        let mut len = [0u8; 2];
        if conn.read_exact(&mut len).is_err() {
            return;
        }
        let mut query = vec![0u8; usize::from(u16::from_be_bytes(len))];
        if conn.read_exact(&mut query).is_err() {
            return;
        }
        let Ok(msg) = Message::from_vec(&query) else {
            return;
        };
        let Some(q) = msg.queries.first() else {
            return;
        };
        let (id, qname, qtype) = (msg.metadata.id, q.name().to_ascii(), q.query_type());
        for bytes in [
            reply(id ^ 0x8000, &qname, qtype, Some(5)),
            reply(id, &qname, qtype, Some(0)),
        ] {
            let framed: Vec<u8> = (bytes.len() as u16)
                .to_be_bytes()
                .into_iter()
                .chain(bytes)
                .collect();
            if conn.write_all(&framed).is_err() {
                return;
            }
        }
    }
}

#[tokio::test]
async fn over_tcp_glibc_reads_past_a_wrong_id_musl_takes_it_and_go_fails_the_exchange() {
    for flavor in Flavor::ALL {
        let spoofer = TcpSpoofer::start();
        let report = lookup_at(spoofer.addr, ONE_STEP, flavor, QueryTypes::Both, "web.").await;
        drop(spoofer);
        let ctx = format!("{flavor}: {report:#?}");
        let tcp = report
            .queries
            .iter()
            .filter(|q| q.transport == hopwatch::probe::dns::Transport::Tcp)
            .count();
        match flavor {
            // `send_vc` compares IDs only, drops the wrong one and reads the true reply.
            Flavor::Glibc => {
                assert_eq!(report.result, Ok(()), "{ctx}");
                assert_eq!(addresses(&report), [TRUE_V4, TRUE_V6], "{ctx}");
                assert_eq!(tcp, 2, "{ctx}");
                assert_eq!(counted(&report), [2, 0, 0, 0], "{ctx}");
            }
            // One connection per query and no ID check: the first message is the reply.
            Flavor::Musl => {
                assert_eq!(report.result, Ok(()), "{ctx}");
                assert_eq!(addresses(&report), ["192.0.2.5", "2001:db8::5"], "{ctx}");
                assert_eq!(tcp, 2, "{ctx}");
                assert_eq!(counted(&report), [0, 0, 0, 0], "{ctx}");
            }
            // Before 1.2.4 musl has no TCP: the truncated reply is NODATA.
            Flavor::MuslLegacy => {
                assert_eq!(report.result, Err(Failure::Nodata), "{ctx}");
                assert_eq!(tcp, 0, "{ctx}");
            }
            // `errInvalidDNSResponse` on each exchange, two attempts per query type.
            Flavor::Go => {
                assert_eq!(report.result, Err(Failure::DnsError), "{ctx}");
                assert_eq!(tcp, 4, "{ctx}");
                assert_eq!(counted(&report), [4, 0, 0, 0], "{ctx}");
            }
        }
    }
}
