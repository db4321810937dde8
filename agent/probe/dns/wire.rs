//! The real wire: tokio UDP sockets and TCP connections.

use std::io::{self, IoSlice};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::{AsRawFd, RawFd};

use nix::sys::socket::{MsgFlags, MultiHeaders, SockaddrStorage, sendmmsg};
use tokio::io::{AsyncReadExt, AsyncWriteExt, Interest};
use tokio::net::{TcpStream, UdpSocket};

use super::walk::{Datagram, Stream, Wire};

/// Largest UDP reply read; EDNS0 payloads are at most this.
const MAX_DATAGRAM: usize = 65_535;

/// Sockets on the host's network stack.
#[derive(Debug, Default, Clone, Copy)]
pub struct NetWire;

/// A UDP socket, connected for glibc and Go, unconnected for musl.
#[derive(Debug)]
pub struct NetUdp {
    socket: UdpSocket,
    connected: bool,
}

/// A TCP connection with DNS's two-byte length framing.
#[derive(Debug)]
pub struct NetTcp(TcpStream);

impl Wire for NetWire {
    type Udp = NetUdp;
    type Tcp = NetTcp;

    /// Bound to port 0: every query socket gets a source port the kernel picks from its
    /// ephemeral range, as glibc, musl and Go get theirs, and a new one for every socket, so
    /// a forger must guess the port as well as the 16-bit ID. Connected to `peer` (glibc, Go),
    /// the kernel delivers only datagrams from that address and port: the walk never sees
    /// another source's, as those resolvers never do. Unconnected (musl), it gets datagrams
    /// from anywhere, and the walk checks the source as musl does.
    async fn udp(&self, peer: Option<SocketAddr>) -> io::Result<NetUdp> {
        let v6 = peer.is_some_and(|p| p.is_ipv6());
        let local: SocketAddr = if v6 {
            (Ipv6Addr::UNSPECIFIED, 0).into()
        } else {
            (Ipv4Addr::UNSPECIFIED, 0).into()
        };
        let socket = UdpSocket::bind(local).await?;
        if let Some(peer) = peer {
            socket.connect(peer).await?;
        }
        Ok(NetUdp {
            socket,
            connected: peer.is_some(),
        })
    }

    async fn tcp(&self, server: SocketAddr) -> io::Result<NetTcp> {
        let stream = TcpStream::connect(server).await?;
        stream.set_nodelay(true)?;
        Ok(NetTcp(stream))
    }
}

impl Datagram for NetUdp {
    async fn send_to(&self, bytes: &[u8], to: SocketAddr) -> io::Result<()> {
        if self.connected {
            self.socket.send(bytes).await?;
        } else {
            self.socket.send_to(bytes, to).await?;
        }
        Ok(())
    }

    async fn send_all(&self, messages: &[&[u8]]) -> io::Result<usize> {
        if !self.connected {
            return Err(io::ErrorKind::NotConnected.into());
        }
        let fd = self.socket.as_raw_fd();
        self.socket
            .async_io(Interest::WRITABLE, || send_many(fd, messages))
            .await
    }

    async fn recv_from(&self) -> io::Result<(Vec<u8>, SocketAddr)> {
        // Received into spare capacity, never zeroed, and only the reply's bytes are kept: a
        // zeroed 64 KiB buffer per reply was half the CPU of a lookup (docs/PERFORMANCE.md).
        // `recv_buf_from` also wakes on a socket error, so an ICMP port unreachable on a
        // connected socket still ends the wait at once.
        let mut buf = Vec::with_capacity(MAX_DATAGRAM);
        let (n, from) = self.socket.recv_buf_from(&mut buf).await?;
        Ok((buf[..n].to_vec(), from))
    }
}

/// One `sendmmsg(2)` of `messages` on a connected socket: how many left.
fn send_many(fd: RawFd, messages: &[&[u8]]) -> io::Result<usize> {
    let slices: Vec<[IoSlice<'_>; 1]> = messages.iter().map(|m| [IoSlice::new(m)]).collect();
    let peers: Vec<Option<SockaddrStorage>> = vec![None; messages.len()];
    let mut headers = MultiHeaders::<SockaddrStorage>::preallocate(messages.len(), None);
    let sent = sendmmsg(
        fd,
        &mut headers,
        &slices,
        &peers,
        [],
        MsgFlags::MSG_NOSIGNAL,
    )?;
    Ok(sent.count())
}

impl Stream for NetTcp {
    async fn send(&mut self, bytes: &[u8]) -> io::Result<()> {
        let len = u16::try_from(bytes.len())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "message over 64 KiB"))?;
        let mut framed = Vec::with_capacity(bytes.len() + 2);
        framed.extend_from_slice(&len.to_be_bytes());
        framed.extend_from_slice(bytes);
        self.0.write_all(&framed).await
    }

    async fn recv(&mut self) -> io::Result<Vec<u8>> {
        let len = self.0.read_u16().await?;
        let mut buf = vec![0; usize::from(len)];
        self.0.read_exact(&mut buf).await?;
        Ok(buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A loopback UDP server and a connected client socket of the wire; the server has
    /// learnt the client's address from one datagram.
    async fn pair() -> (UdpSocket, NetUdp, SocketAddr) {
        let server = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let peer = server.local_addr().unwrap();
        let client = NetWire.udp(Some(peer)).await.unwrap();
        client.send_to(b"hello", peer).await.unwrap();
        let mut buf = [0u8; 16];
        let (_, from) = server.recv_from(&mut buf).await.unwrap();
        (server, client, from)
    }

    #[tokio::test]
    async fn a_reply_arrives_whole_whatever_its_size() {
        let (server, client, to) = pair().await;
        let peer = server.local_addr().unwrap();
        for size in [12, 512, 1232, 4096, 65_507] {
            let payload: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
            server.send_to(&payload, to).await.unwrap();
            let (got, from) = client.recv_from().await.unwrap();
            assert_eq!(from, peer);
            assert_eq!(got.len(), size);
            assert_eq!(got, payload, "a {size}-byte reply");
        }
    }

    #[tokio::test]
    async fn a_closed_port_ends_the_wait_with_connection_refused() {
        let closed = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let peer = closed.local_addr().unwrap();
        drop(closed);
        let client = NetWire.udp(Some(peer)).await.unwrap();
        client.send_to(b"query", peer).await.unwrap();
        let wait = std::time::Duration::from_secs(2);
        let got = tokio::time::timeout(wait, client.recv_from()).await;
        let err = got.expect("the ICMP error ends the wait").unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::ConnectionRefused);
    }

    /// Two `send` calls to a closed port: the first one's ICMP error comes back before the
    /// second, which fails and never leaves. glibc's way gets both out: one `sendmmsg`, and
    /// if the kernel stopped after the first message (the error had come back and ended the
    /// call, which also clears it), the rest on its own.
    #[tokio::test]
    async fn a_pair_to_a_closed_port_leaves_whole_the_way_glibc_sends_it() {
        let closed = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let peer = closed.local_addr().unwrap();
        drop(closed);
        let two_sends = NetWire.udp(Some(peer)).await.unwrap();
        two_sends.send_to(b"a", peer).await.unwrap();
        let second = two_sends.send_to(b"aaaa", peer).await.unwrap_err();
        assert_eq!(second.kind(), io::ErrorKind::ConnectionRefused);

        let glibc = NetWire.udp(Some(peer)).await.unwrap();
        let left = glibc.send_all(&[b"a", b"aaaa"]).await.unwrap();
        assert!(left >= 1, "sendmmsg sent nothing");
        if left == 1 {
            assert_eq!(glibc.send_all(&[b"aaaa"]).await.unwrap(), 1);
        }
    }

    #[tokio::test]
    async fn sockets_sharing_a_thread_each_get_their_own_replies() {
        let (server_a, client_a, to_a) = pair().await;
        let (server_b, client_b, to_b) = pair().await;
        let (got_a, got_b) = tokio::join!(client_a.recv_from(), async {
            server_b.send_to(b"for b", to_b).await.unwrap();
            server_a.send_to(b"for a", to_a).await.unwrap();
            client_b.recv_from().await
        });
        assert_eq!(got_a.unwrap().0, b"for a");
        assert_eq!(got_b.unwrap().0, b"for b");
    }
}
