//! A wire whose replies come from the fuzzer, under a real walker.
//!
//! Input layout: byte 0 picks the flavor (bits 0–1), the query types (bits 2–3) and the
//! options `edns0`, `use-vc`, `single-request`, `rotate` (bits 4–7); byte 1 picks the name
//! (bit 0: through the search list or fully qualified), the nameservers (bits 1–2), the
//! options `single-request-reopen`, `trust-ad`, `no-aaaa` (bits 3–5), whether late replies
//! are collected (bit 6) and `attempts` (bit 7). The rest is a list of replies, each a control
//! byte, a length (two bytes, little-endian) and that many bytes. Every query sent, over UDP
//! or TCP, takes the next reply:
//!
//! - `0x01`: its ID is set to the query's, so the walker does not drop it as a stranger;
//! - `0x02`: the query's question is spliced in after the reply's 12-byte header;
//! - `0x04`: nothing comes back (the reply is consumed);
//! - `0x08`: an ICMP port unreachable comes back instead;
//! - `0x10`: the reply comes from an address that is not the nameserver;
//! - `0x20`: the next reply answers the same query too (duplicates, late and stray replies).
//!
//! Once the replies run out, nothing answers and the walker times out. The walk runs in
//! virtual time, so every wait is free and the lookup always ends at its deadline.

use std::collections::VecDeque;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::probe::dns::walk::{self, Datagram, Stream, Wire};
use crate::probe::dns::{Flavor, LookupOptions, QueryTypes, ResolvConf};

const PATCH_ID: u8 = 0x01;
const SPLICE_QUESTION: u8 = 0x02;
const SILENT: u8 = 0x04;
const UNREACHABLE: u8 = 0x08;
const STRANGER: u8 = 0x10;
const AGAIN: u8 = 0x20;

/// The DNS message header is 12 bytes; the question follows it.
const HEADER: usize = 12;

/// Looks a name up as the flavor `data` picks, against the replies it holds.
pub(super) async fn lookup(data: &[u8]) {
    let [setup, more, replies @ ..] = data else {
        return;
    };
    let flavor = Flavor::ALL[usize::from(setup & 3)];
    let conf = ResolvConf::parse(&resolv_conf(*setup, *more), flavor);
    let qtypes = [
        QueryTypes::Both,
        QueryTypes::A,
        QueryTypes::Aaaa,
        QueryTypes::Both,
    ];
    let opts = LookupOptions {
        conf,
        flavor,
        qtypes: qtypes[usize::from(setup >> 2 & 3)],
        server: None,
    };
    let name = if more & 1 == 0 {
        "svc"
    } else {
        "svc.default.svc.cluster.local."
    };
    let wire = FuzzWire(Arc::new(Mutex::new(split(replies))));
    let deadline = Instant::now() + Duration::from_secs(60);
    if more & 0x40 == 0 {
        walk::lookup(&wire, name, &opts, deadline).await;
    } else {
        walk::answer(&wire, name, &opts, deadline).await;
    }
}

/// The resolv.conf the two setup bytes describe, written out so each flavor parses it.
fn resolv_conf(setup: u8, more: u8) -> String {
    let servers = match more >> 1 & 3 {
        0 => "nameserver 10.96.0.10\n",
        1 => "nameserver 10.96.0.10\nnameserver 10.96.0.11\n",
        2 => "nameserver 10.96.0.10\nnameserver 10.96.0.11\nnameserver 10.96.0.12\n",
        _ => "nameserver 10.96.0.10\nnameserver fd00::10\n",
    };
    let flags = [
        (setup & 0x10, "edns0"),
        (setup & 0x20, "use-vc"),
        (setup & 0x40, "single-request"),
        (setup & 0x80, "rotate"),
        (more & 0x08, "single-request-reopen"),
        (more & 0x10, "trust-ad"),
        (more & 0x20, "no-aaaa"),
    ];
    let mut options = format!("options ndots:5 attempts:{}", 1 + (more >> 7));
    for (_, flag) in flags.iter().filter(|(bit, _)| *bit != 0) {
        options.push(' ');
        options.push_str(flag);
    }
    format!(
        "{servers}search default.svc.cluster.local svc.cluster.local cluster.local\n{options}\n"
    )
}

/// One scripted reply.
#[derive(Debug)]
struct Reply {
    control: u8,
    bytes: Vec<u8>,
}

fn split(mut data: &[u8]) -> VecDeque<Reply> {
    let mut replies = VecDeque::new();
    while let [control, lo, hi, rest @ ..] = data {
        let len = usize::from(u16::from_le_bytes([*lo, *hi])).min(rest.len());
        let (bytes, after) = rest.split_at(len);
        replies.push_back(Reply {
            control: *control,
            bytes: bytes.to_vec(),
        });
        data = after;
    }
    replies
}

/// What answers one query: datagrams, or an ICMP error, in order.
type Delivery = io::Result<(Vec<u8>, SocketAddr)>;

/// The scripted network. Cloning shares the script.
#[derive(Debug, Clone)]
struct FuzzWire(Arc<Mutex<VecDeque<Reply>>>);

impl FuzzWire {
    fn lock(&self) -> MutexGuard<'_, VecDeque<Reply>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// What comes back for `query` sent to `server`.
    fn answer(&self, query: &[u8], server: SocketAddr) -> Vec<Delivery> {
        let mut script = self.lock();
        let mut out = Vec::new();
        while let Some(reply) = script.pop_front() {
            let from = if reply.control & STRANGER != 0 {
                SocketAddr::from(([192, 0, 2, 99], 53))
            } else {
                server
            };
            if reply.control & UNREACHABLE != 0 {
                out.push(Err(io::ErrorKind::ConnectionRefused.into()));
            } else if reply.control & SILENT == 0 {
                out.push(Ok((shape(&reply, query), from)));
            }
            if reply.control & AGAIN == 0 {
                break;
            }
        }
        out
    }
}

/// The reply's bytes, with the query's ID and question put in when the control asks.
fn shape(reply: &Reply, query: &[u8]) -> Vec<u8> {
    let mut bytes = reply.bytes.clone();
    if reply.control & SPLICE_QUESTION != 0 {
        bytes.resize(bytes.len().max(HEADER), 0);
        let question = query.get(HEADER..question_end(query)).unwrap_or_default();
        bytes.splice(HEADER..HEADER, question.iter().copied());
    }
    if reply.control & PATCH_ID != 0
        && let (Some(id), Some(to)) = (query.get(..2), bytes.get_mut(..2))
    {
        to.copy_from_slice(id);
    }
    bytes
}

/// Where the query's one question ends: its name's labels, the root label, type and class.
fn question_end(query: &[u8]) -> usize {
    let mut at = HEADER;
    while let Some(&len) = query.get(at) {
        at += 1 + usize::from(len);
        if len == 0 {
            break;
        }
    }
    at + 4
}

impl Wire for FuzzWire {
    type Udp = FuzzUdp;
    type Tcp = FuzzTcp;

    async fn udp(&self, peer: Option<SocketAddr>) -> io::Result<FuzzUdp> {
        let (tx, rx) = mpsc::unbounded_channel();
        Ok(FuzzUdp {
            wire: self.clone(),
            peer,
            tx,
            rx: tokio::sync::Mutex::new(rx),
        })
    }

    async fn tcp(&self, server: SocketAddr) -> io::Result<FuzzTcp> {
        Ok(FuzzTcp {
            wire: self.clone(),
            server,
            replies: VecDeque::new(),
        })
    }
}

#[derive(Debug)]
struct FuzzUdp {
    wire: FuzzWire,
    peer: Option<SocketAddr>,
    tx: mpsc::UnboundedSender<Delivery>,
    rx: tokio::sync::Mutex<mpsc::UnboundedReceiver<Delivery>>,
}

impl Datagram for FuzzUdp {
    async fn send_to(&self, bytes: &[u8], to: SocketAddr) -> io::Result<()> {
        for delivery in self.wire.answer(bytes, to) {
            // Only a connected socket hears about ICMP errors.
            if delivery.is_ok() || self.peer.is_some() {
                let _ = self.tx.send(delivery);
            }
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
            Some(delivery) => delivery,
            None => std::future::pending().await,
        }
    }
}

#[derive(Debug)]
struct FuzzTcp {
    wire: FuzzWire,
    server: SocketAddr,
    replies: VecDeque<Delivery>,
}

impl Stream for FuzzTcp {
    async fn send(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.replies.extend(self.wire.answer(bytes, self.server));
        Ok(())
    }

    async fn recv(&mut self) -> io::Result<Vec<u8>> {
        match self.replies.pop_front() {
            Some(delivery) => delivery.map(|(bytes, _)| bytes),
            None => std::future::pending().await,
        }
    }
}
