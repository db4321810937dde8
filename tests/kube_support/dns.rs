//! A small cluster DNS server on loopback: UDP sockets that answer A queries for the names it
//! is given, NODATA for their other types and NXDOMAIN for every other name, as CoreDNS does for
//! `*.svc.cluster.local`. Its answers can be changed while the agent runs, to make a headless
//! Service's DNS disagree with its endpoints.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use hickory_proto::op::{Message, MessageType, ResponseCode};
use hickory_proto::rr::rdata::A;
use hickory_proto::rr::{RData, Record, RecordType};

/// Addresses per FQDN (lowercase, trailing dot).
type Zone = Arc<Mutex<HashMap<String, Vec<Ipv4Addr>>>>;

/// A DNS server answering on several addresses (the Service's ClusterIP and each replica)
/// from one zone; its threads stop on drop.
pub struct DnsServer {
    zone: Zone,
    queries: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl DnsServer {
    /// Answers on every one of `addrs`.
    pub fn start(addrs: &[SocketAddr]) -> DnsServer {
        let zone: Zone = Arc::default();
        let queries = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let threads = addrs
            .iter()
            .map(|addr| {
                let socket = UdpSocket::bind(addr)
                    .unwrap_or_else(|e| panic!("cannot bind the DNS server to {addr}: {e}"));
                socket
                    .set_read_timeout(Some(Duration::from_millis(20)))
                    .expect("set a read timeout");
                let (zone, queries, stop) = (zone.clone(), queries.clone(), stop.clone());
                std::thread::spawn(move || serve(&socket, &zone, &queries, &stop))
            })
            .collect();
        DnsServer {
            zone,
            queries,
            stop,
            threads,
        }
    }

    /// From now on, `name` (an FQDN) has exactly the A records `ips`.
    pub fn set(&self, name: &str, ips: &[Ipv4Addr]) {
        let mut zone = self.zone.lock().expect("zone lock");
        zone.insert(name.to_ascii_lowercase(), ips.to_vec());
    }

    /// Queries answered so far.
    pub fn queries(&self) -> usize {
        self.queries.load(Ordering::SeqCst)
    }
}

impl Drop for DnsServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

fn serve(socket: &UdpSocket, zone: &Zone, queries: &AtomicUsize, stop: &AtomicBool) {
    let mut buf = vec![0u8; 4096];
    while !stop.load(Ordering::SeqCst) {
        let Ok((len, from)) = socket.recv_from(&mut buf) else {
            continue;
        };
        let Some(reply) = answer(&buf[..len], zone) else {
            continue;
        };
        queries.fetch_add(1, Ordering::SeqCst);
        let _ = socket.send_to(&reply, from);
    }
}

/// The reply to one query datagram; `None` for anything that is not a query.
fn answer(datagram: &[u8], zone: &Zone) -> Option<Vec<u8>> {
    let query = Message::from_vec(datagram).ok()?;
    if query.metadata.message_type != MessageType::Query {
        return None;
    }
    let question = query.queries.first()?.clone();
    let mut reply = Message::response(query.metadata.id, query.metadata.op_code);
    reply.metadata.recursion_desired = query.metadata.recursion_desired;
    reply.metadata.recursion_available = true;
    reply.metadata.authoritative = true;
    reply.add_query(question.clone());
    let name = question.name().to_ascii().to_ascii_lowercase();
    let known = zone.lock().ok()?.get(&name).cloned();
    match known {
        None => reply.metadata.response_code = ResponseCode::NXDomain,
        Some(ips) if question.query_type() == RecordType::A => {
            for ip in ips {
                let record = Record::from_rdata(question.name().clone(), 5, RData::A(A(ip)));
                reply.add_answer(record);
            }
        }
        Some(_) => {}
    }
    reply.to_vec().ok()
}
