//! One request and its response on a connection the probe has just opened: HTTP/1.1, or
//! HTTP/2 when TLS negotiated `h2` by ALPN. The request head is built here, the response head
//! is waited for, and the body is read only when something is to be matched in it.
//!
//! The connection is driven by a task of its own, aborted when the [`Head`] is dropped, so a
//! server that never closes holds nothing once the probe is done with it.

use bytes::{Bytes, BytesMut};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{CONNECTION, HOST, LOCATION, USER_AGENT};
use hyper::{Method, Request};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::{Headers, HttpUrl, within};
use crate::probe::Failure;

/// At most this much of a body is read for [`super::HttpSpec::expected_body`]; the patterns
/// are matched against this prefix.
pub const BODY_LIMIT: usize = 1 << 20;

/// The protocol a request went over. Becomes the `protocol` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Protocol {
    Http1,
    Http2,
}

impl Protocol {
    pub const ALL: [Protocol; 2] = [Protocol::Http1, Protocol::Http2];

    /// The ALPN name: `http/1.1` or `h2`.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Http1 => "http/1.1",
            Protocol::Http2 => "h2",
        }
    }
}

/// What to send.
pub(super) struct Ask<'a> {
    pub url: &'a HttpUrl,
    pub method: &'a Method,
    pub headers: &'a Headers,
    pub body: &'a Bytes,
}

/// The request head and body as they go on the wire: for HTTP/1.1 the path, `Host` and
/// `Connection: close` (one request per connection); for HTTP/2 the absolute URL, whose
/// authority hyper sends as `:authority`. Configured headers replace the defaults of the same
/// name (a `User-Agent`, say).
pub(super) fn build(ask: &Ask, protocol: Protocol) -> Result<Request<Full<Bytes>>, Failure> {
    let builder = match protocol {
        Protocol::Http1 => Request::builder()
            .uri(ask.url.path.as_str())
            .header(HOST, ask.url.host_header())
            .header(CONNECTION, "close"),
        Protocol::Http2 => Request::builder()
            .uri(ask.url.to_string())
            .version(hyper::Version::HTTP_2),
    };
    let mut request = builder
        .method(ask.method.clone())
        .header(USER_AGENT, concat!("hopwatch/", env!("CARGO_PKG_VERSION")))
        .body(Full::new(ask.body.clone()))
        .map_err(|_| Failure::Config)?;
    for (name, value) in ask.headers.iter() {
        request.headers_mut().insert(name.clone(), value.clone());
    }
    Ok(request)
}

/// A response head, with the body still to be read and the connection still driven.
pub(super) struct Head {
    pub status: u16,
    /// The `Location` header, for a redirect.
    pub location: Option<String>,
    body: Incoming,
    _driver: Driver,
}

/// Aborts the connection's task when dropped.
struct Driver(JoinHandle<()>);

impl Drop for Driver {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Sends `request` on `io` with `protocol` and waits for the response head.
pub(super) async fn send<T>(
    io: T,
    protocol: Protocol,
    request: Request<Full<Bytes>>,
    deadline: Instant,
) -> Result<Head, Failure>
where
    T: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let exchange = async {
        let io = TokioIo::new(io);
        let (response, driver) = match protocol {
            Protocol::Http1 => {
                let (mut sender, conn) = hyper::client::conn::http1::handshake(io)
                    .await
                    .map_err(|_| Failure::HttpError)?;
                let driver = Driver(tokio::spawn(async move {
                    let _ = conn.await;
                }));
                (sender.send_request(request).await, driver)
            }
            Protocol::Http2 => {
                let (mut sender, conn) =
                    hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
                        .await
                        .map_err(|_| Failure::HttpError)?;
                let driver = Driver(tokio::spawn(async move {
                    let _ = conn.await;
                }));
                (sender.send_request(request).await, driver)
            }
        };
        let response = response.map_err(|err| classify(&err))?;
        let location = response
            .headers()
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        Ok(Head {
            status: response.status().as_u16(),
            location,
            body: response.into_body(),
            _driver: driver,
        })
    };
    within(deadline, exchange).await?
}

/// Names a failed exchange: a TLS alert from the server, which a TLS 1.3 server sends after the
/// handshake to refuse a missing or untrusted client certificate, is `tls_handshake`; anything
/// else is `http_error`.
fn classify(err: &hyper::Error) -> Failure {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = cause {
        let inner = e
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref());
        if inner.is_some_and(|i| i.downcast_ref::<rustls::Error>().is_some())
            || e.downcast_ref::<rustls::Error>().is_some()
        {
            return Failure::TlsHandshake;
        }
        cause = e.source();
    }
    Failure::HttpError
}

impl Head {
    /// Reads the body up to [`BODY_LIMIT`] bytes; what is beyond is left unread. A body cut
    /// short by the server is `http_error`.
    pub async fn read_body(mut self, deadline: Instant) -> Result<Bytes, Failure> {
        let read = async {
            let mut out = BytesMut::new();
            while out.len() < BODY_LIMIT {
                match self.body.frame().await {
                    None => break,
                    Some(Err(_)) => return Err(Failure::HttpError),
                    Some(Ok(frame)) => {
                        if let Ok(data) = frame.into_data() {
                            let room = BODY_LIMIT - out.len();
                            out.extend_from_slice(&data[..data.len().min(room)]);
                        }
                    }
                }
            }
            Ok(out.freeze())
        };
        within(deadline, read).await?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ask_of<'a>(url: &'a HttpUrl, method: &'a Method, headers: &'a Headers) -> Ask<'a> {
        static EMPTY: Bytes = Bytes::new();
        Ask {
            url,
            method,
            headers,
            body: &EMPTY,
        }
    }

    #[test]
    fn http1_sends_the_path_and_host_http2_the_absolute_url() {
        let url = HttpUrl::parse("https://a.test:8443/x?y=1").unwrap();
        let headers = Headers::parse([("user-agent", "probe/1"), ("x-token", "s")]).unwrap();
        let ask = ask_of(&url, &Method::HEAD, &headers);
        let h1 = build(&ask, Protocol::Http1).unwrap();
        assert_eq!(h1.uri(), "/x?y=1");
        assert_eq!(h1.method(), Method::HEAD);
        assert_eq!(h1.headers()[HOST], "a.test:8443");
        assert_eq!(h1.headers()[CONNECTION], "close");
        assert_eq!(h1.headers()[USER_AGENT], "probe/1", "configured wins");
        assert_eq!(h1.headers()["x-token"], "s");
        let h2 = build(&ask, Protocol::Http2).unwrap();
        assert_eq!(h2.uri(), "https://a.test:8443/x?y=1");
        assert_eq!(h2.version(), hyper::Version::HTTP_2);
        assert!(h2.headers().get(CONNECTION).is_none(), "illegal in h2");
        assert!(h2.headers().get(HOST).is_none(), "the authority says it");
    }

    #[test]
    fn protocols_are_named_as_alpn_names_them() {
        assert_eq!(Protocol::ALL.map(Protocol::as_str), ["http/1.1", "h2"]);
    }
}
