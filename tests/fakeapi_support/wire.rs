//! Wire level of the fake-apiserver test client: one HTTP/1.1 exchange per connection (plain or
//! TLS), with a chunked-encoding reader that can tell a clean end of a watch from a cut one.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use serde_json::Value;

pub(super) enum Conn {
    Plain(TcpStream),
    Tls(Box<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>),
}

impl Conn {
    fn tcp(&self) -> &TcpStream {
        match self {
            Conn::Plain(s) => s,
            Conn::Tls(s) => s.get_ref(),
        }
    }
}

impl Read for Conn {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Conn::Plain(s) => s.read(buf),
            Conn::Tls(s) => s.read(buf),
        }
    }
}

impl Write for Conn {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Conn::Plain(s) => s.write(buf),
            Conn::Tls(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Conn::Plain(s) => s.flush(),
            Conn::Tls(s) => s.flush(),
        }
    }
}

/// A connection plus the bytes read from it but not consumed yet.
pub(super) struct Wire {
    pub(super) conn: Conn,
    pub(super) buf: Vec<u8>,
}

pub(super) type Headers = Vec<(String, String)>;

pub(super) fn header<'a>(headers: &'a Headers, name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

impl Wire {
    /// Reads more bytes; Ok(0) is end of stream.
    fn fill(&mut self) -> io::Result<usize> {
        let mut tmp = [0u8; 64 * 1024];
        let n = self.conn.read(&mut tmp)?;
        self.buf.extend_from_slice(&tmp[..n]);
        Ok(n)
    }

    pub(super) fn read_head(&mut self) -> io::Result<(u16, Headers)> {
        let end = loop {
            if let Some(pos) = find(&self.buf, b"\r\n\r\n") {
                break pos;
            }
            if self.fill()? == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "connection closed before headers",
                ));
            }
        };
        let head = String::from_utf8_lossy(&self.buf[..end]).into_owned();
        self.buf.drain(..end + 4);
        let mut lines = head.split("\r\n");
        let status = lines
            .next()
            .and_then(|l| l.split(' ').nth(1))
            .and_then(|s| s.parse().ok());
        let status =
            status.ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, head.clone()))?;
        let headers = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
            .collect();
        Ok((status, headers))
    }

    pub(super) fn read_body(&mut self, headers: &Headers) -> io::Result<Vec<u8>> {
        if header(headers, "transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
            let mut out = Vec::new();
            loop {
                match self.next_chunk()? {
                    Some(chunk) => out.extend_from_slice(&chunk),
                    None => return Ok(out),
                }
            }
        }
        let len: usize = header(headers, "content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        while self.buf.len() < len {
            if self.fill()? == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "body shorter than Content-Length",
                ));
            }
        }
        Ok(self.buf.drain(..len).collect())
    }

    /// The next chunk's data, or None after the terminating zero-length chunk.
    fn next_chunk(&mut self) -> io::Result<Option<Vec<u8>>> {
        loop {
            if let Some(chunk) = self.parse_chunk()? {
                return Ok(chunk);
            }
            if self.fill()? == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "stream ended before the last chunk",
                ));
            }
        }
    }

    /// Some(Some(data)) for a complete chunk, Some(None) for the last chunk, None if incomplete.
    #[allow(clippy::option_option)] // three distinct outcomes of parsing a buffer
    fn parse_chunk(&mut self) -> io::Result<Option<Option<Vec<u8>>>> {
        let Some(line_end) = find(&self.buf, b"\r\n") else {
            return Ok(None);
        };
        let size_text = String::from_utf8_lossy(&self.buf[..line_end]).into_owned();
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
            .map_err(|e| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("chunk size {size_text:?}: {e}"),
                )
            })?;
        let need = line_end + 2 + size + 2;
        if self.buf.len() < need {
            return Ok(None);
        }
        let data = self.buf[line_end + 2..line_end + 2 + size].to_vec();
        self.buf.drain(..need);
        Ok(Some((size > 0).then_some(data)))
    }
}

/// How a watch stream ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WatchEnd {
    /// The server sent the terminating chunk (timeoutSeconds, or after an ERROR event).
    Clean,
    /// The connection closed or reset mid-stream; the text says how.
    Broken(String),
}

/// One step of a raw watch.
#[derive(Debug)]
pub enum WatchItem {
    /// A decoded `{"type": ..., "object": ...}` event.
    Event(Value),
    /// The stream is over.
    Ended(WatchEnd),
    /// Nothing arrived in time.
    TimedOut,
}

/// A raw watch response read event by event.
pub struct WatchStream {
    wire: Wire,
    data: Vec<u8>,
    ended: Option<WatchEnd>,
}

impl WatchStream {
    pub(super) fn new(wire: Wire) -> WatchStream {
        WatchStream {
            wire,
            data: Vec::new(),
            ended: None,
        }
    }

    /// The next event, the end of the stream, or `TimedOut` after `timeout`.
    pub fn next_item(&mut self, timeout: Duration) -> WatchItem {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(pos) = self.data.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = self.data.drain(..=pos).collect();
                let event = serde_json::from_slice(&line).unwrap_or_else(|e| {
                    panic!(
                        "watch line is not JSON ({e}): {}",
                        String::from_utf8_lossy(&line)
                    )
                });
                return WatchItem::Event(event);
            }
            if let Some(end) = &self.ended {
                return WatchItem::Ended(end.clone());
            }
            match self.wire.parse_chunk() {
                Ok(Some(Some(chunk))) => self.data.extend_from_slice(&chunk),
                Ok(Some(None)) => self.ended = Some(WatchEnd::Clean),
                Ok(None) => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return WatchItem::TimedOut;
                    }
                    if let Some(timed_out) = self.read_more(left) {
                        return timed_out;
                    }
                }
                Err(e) => self.ended = Some(WatchEnd::Broken(e.to_string())),
            }
        }
    }

    fn read_more(&mut self, left: Duration) -> Option<WatchItem> {
        self.wire
            .conn
            .tcp()
            .set_read_timeout(Some(left))
            .expect("set read timeout");
        match self.wire.fill() {
            Ok(0) => self.ended = Some(WatchEnd::Broken("EOF before the last chunk".into())),
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                return Some(WatchItem::TimedOut);
            }
            Err(e) => self.ended = Some(WatchEnd::Broken(format!("{:?}: {e}", e.kind()))),
        }
        None
    }

    /// The next event, skipping BOOKMARKs; panics on end of stream or timeout.
    pub fn next_event(&mut self, timeout: Duration) -> Value {
        loop {
            match self.next_item(timeout) {
                WatchItem::Event(ev) if ev["type"] == "BOOKMARK" => continue,
                WatchItem::Event(ev) => return ev,
                other => panic!("expected a watch event, got {other:?}"),
            }
        }
    }

    /// Reads until the stream ends (skipping events), panicking after `timeout`.
    pub fn expect_end(&mut self, timeout: Duration) -> WatchEnd {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.next_item(left) {
                WatchItem::Ended(end) => return end,
                WatchItem::TimedOut => panic!("watch did not end within {timeout:?}"),
                WatchItem::Event(_) => {}
            }
        }
    }
}
