//! The real wire: tokio UDP sockets and TCP connections.

use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
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

    async fn recv_from(&self) -> io::Result<(Vec<u8>, SocketAddr)> {
        let mut buf = vec![0; MAX_DATAGRAM];
        let (n, from) = self.socket.recv_from(&mut buf).await?;
        buf.truncate(n);
        Ok((buf, from))
    }
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
