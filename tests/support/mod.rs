//! Shared helpers for the DNS integration tests: a real Knot DNS server, a UDP blackhole, a
//! closed port, temporary files, the agent as a child process and a Prometheus text parser.
//!
//! - [`capture`]: every DNS query on the wire of a network namespace, and its fate.
//! - [`knot`]: `knotd` on loopback with the test zones, and its own per-query counters.
//! - [`net`]: a server that never answers, a port nobody listens on, raw DNS queries.
//! - [`process`]: a child process killed by PID when its guard drops, and a plain HTTP GET.
//! - [`prom`]: the Prometheus text exposition format, parsed for assertions.
//! - [`walk`]: a DNS lookup against a test server, and assertions on every query it sent.
//!
//! Every guard cleans up in `Drop`, so a failed assertion still stops `knotd` and the agent
//! and removes their directories. Nothing here sends a packet outside 127.0.0.0/8.

#![allow(
    dead_code,
    reason = "shared by several test binaries; each uses a part"
)]

pub mod capture;
pub mod knot;
pub mod net;
pub mod process;
pub mod prom;
mod tempdir;
pub mod walk;

pub use tempdir::TempDir;

use std::net::{Ipv4Addr, SocketAddr, TcpListener, UdpSocket};
use std::sync::atomic::{AtomicUsize, Ordering};

/// A pod's resolv.conf as kubelet writes it on a node whose own search domain is
/// `node.internal`. The nameserver is never used: tests send every query to their own server
/// with `--server` or `LookupOptions.server`, because resolv.conf has no port syntax. It is a
/// loopback address so that a test that forgot the override cannot reach another machine.
pub const POD_RESOLV_CONF: &str = "nameserver 127.0.0.1\n\
     search default.svc.cluster.local svc.cluster.local cluster.local node.internal\n\
     options ndots:5\n";

/// A loopback address of its own for each server a test starts: 127.<pid>.<n>.
///
/// knotd binds UDP with SO_REUSEPORT, so two instances given the same free-looking port on
/// the same address would both bind and the kernel would split the queries between them,
/// corrupting both servers' counters. A distinct address per server rules that out.
pub fn loopback_ip() -> Ipv4Addr {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let pid = std::process::id();
    Ipv4Addr::new(
        127,
        (pid % 251 + 2) as u8,
        (n / 250 % 256) as u8,
        (n % 250 + 2) as u8,
    )
}

/// A port free for both UDP and TCP on `ip` at the time of the call.
pub fn free_port(ip: Ipv4Addr) -> u16 {
    for _ in 0..50 {
        let udp = UdpSocket::bind((ip, 0)).expect("bind a UDP socket on loopback");
        let port = udp.local_addr().expect("local address").port();
        if TcpListener::bind((ip, port)).is_ok() {
            return port;
        }
    }
    panic!("no port free for both UDP and TCP on {ip}");
}

/// A free TCP address for a server the test starts (the agent's `listen`).
pub fn free_tcp_addr() -> SocketAddr {
    let listener = TcpListener::bind((loopback_ip(), 0)).expect("bind a TCP socket on loopback");
    listener.local_addr().expect("local address")
}
