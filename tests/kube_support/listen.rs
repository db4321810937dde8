//! Real TCP listeners standing in for ClusterIPs and pods on loopback addresses. Each accepts
//! and closes every connection, counting them; dropping one closes its socket, so the next
//! connect to its address is refused, as with a pod that died.

use std::io::ErrorKind;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

/// A listening socket served by its own thread until dropped.
pub struct Listener {
    addr: SocketAddr,
    accepted: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Listener {
    /// Listens on `ip:port` (port 0: a free one).
    pub fn bind(ip: Ipv4Addr, port: u16) -> std::io::Result<Listener> {
        let socket = TcpListener::bind((ip, port))?;
        socket.set_nonblocking(true)?;
        let addr = socket.local_addr()?;
        let accepted = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (accepted, stop) = (Arc::clone(&accepted), Arc::clone(&stop));
            std::thread::spawn(move || serve(&socket, &accepted, &stop))
        };
        Ok(Listener {
            addr,
            accepted,
            stop,
            thread: Some(thread),
        })
    }

    /// Listens on `ip:port`; fails the test when the address is taken.
    pub fn on(ip: Ipv4Addr, port: u16) -> Listener {
        Listener::bind(ip, port).unwrap_or_else(|e| panic!("cannot listen on {ip}:{port}: {e}"))
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }
}

/// Accepts (and at once closes) connections until told to stop; the socket closes with it.
fn serve(socket: &TcpListener, accepted: &AtomicUsize, stop: &AtomicBool) {
    while !stop.load(Ordering::SeqCst) {
        match socket.accept() {
            Ok(_) => {
                accepted.fetch_add(1, Ordering::SeqCst);
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(_) => std::thread::sleep(Duration::from_millis(5)),
        }
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Listeners on one port shared by every address in `ips`, as a Service's endpoints share
/// their target port. The port is free on the first address; another test may hold it on one
/// of the others, so a few ports are tried.
pub fn same_port(ips: &[Ipv4Addr]) -> Vec<Listener> {
    let Some((first, rest)) = ips.split_first() else {
        return Vec::new();
    };
    for _ in 0..20 {
        let head = Listener::on(*first, 0);
        let port = head.port();
        let others: Result<Vec<Listener>, _> =
            rest.iter().map(|ip| Listener::bind(*ip, port)).collect();
        if let Ok(others) = others {
            return std::iter::once(head).chain(others).collect();
        }
    }
    panic!("no port free on all of {ips:?}");
}
