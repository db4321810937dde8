//! The HTTP server: `/metrics`, `/healthz` and `/readyz`, over HTTP/1.1, or HTTPS with a web
//! config.
//!
//! However many scrapers there are, the exposition is rendered once at a time, off the
//! runtime's thread, and a render finished less than [`REUSE`] ago is served again: the probes
//! keep their schedule under a crowd of scrapers (tests/metrics_load.rs), and the CPU a crowd
//! can take is bounded by one render per [`REUSE`]. The gzip form, for scrapers that ask for
//! it, is made once per render too.
//!
//! The web config ([`crate::webconfig`]) puts TLS on every path and auth on `/metrics` only:
//! `/healthz` and `/readyz` stay open to the kubelet's probes, and tell nothing about targets.
//! Auth follows the web config of each request, so a revoked token fails on a kept-alive
//! connection too.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::future::Future;
use std::io::{self, Write};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{
    ACCEPT_ENCODING, ALLOW, AUTHORIZATION, CONTENT_ENCODING, CONTENT_TYPE, HeaderMap, HeaderValue,
    VARY, WWW_AUTHENTICATE,
};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;

use crate::metrics::{self, Metrics};
use crate::webconfig::{Web, WebConfig};

/// A client that has not sent its request headers by then is dropped.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a rendered exposition is served again to the scrapes that follow it.
pub const REUSE: Duration = Duration::from_millis(100);

/// The server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("cannot listen on {addr}: {reason}")]
    Bind { addr: SocketAddr, reason: String },
}

/// Named conditions that must all hold before `/readyz` answers 200.
///
/// The agent waits for `config` (the first configuration is applied); other parts add their
/// own, e.g. caches that must sync before targets can be derived.
#[derive(Debug, Default)]
pub struct Readiness {
    /// Unmet conditions, each with why it is not met yet.
    unmet: Mutex<BTreeMap<&'static str, String>>,
}

impl Readiness {
    /// Readiness with no conditions: ready.
    pub fn new() -> Readiness {
        Readiness::default()
    }

    /// Adds (or resets) a condition, unmet for the reason `why`.
    pub fn wait_for(&self, condition: &'static str, why: impl Into<String>) {
        self.lock().insert(condition, why.into());
    }

    /// Marks a condition as met.
    pub fn met(&self, condition: &'static str) {
        self.lock().remove(condition);
    }

    /// `Ok` when every condition is met, else the reasons of the unmet ones, joined by `; `.
    pub fn check(&self) -> Result<(), String> {
        let unmet = self.lock();
        if unmet.is_empty() {
            return Ok(());
        }
        Err(unmet.values().cloned().collect::<Vec<_>>().join("; "))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<&'static str, String>> {
        self.unmet.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The last exposition rendered, when, and its gzip form once a scraper asked for it.
struct Rendered {
    at: Instant,
    plain: Bytes,
    gzip: Option<Bytes>,
}

/// What the handlers read.
struct State {
    metrics: Arc<Metrics>,
    readiness: Arc<Readiness>,
    web: Web,
    /// The last exposition rendered. Held across a render: the scrapes that arrive meanwhile
    /// wait for it instead of rendering their own.
    rendered: tokio::sync::Mutex<Option<Rendered>>,
}

impl State {
    /// The exposition, gzipped if asked, rendered on a blocking thread unless the last one is
    /// recent enough.
    async fn exposition(&self, gzip: bool) -> Option<Bytes> {
        let mut last = self.rendered.lock().await;
        let fresh = last.as_ref().is_some_and(|r| r.at.elapsed() < REUSE);
        if !fresh {
            let metrics = Arc::clone(&self.metrics);
            let plain = match tokio::task::spawn_blocking(move || metrics.encode()).await {
                Ok(text) => Bytes::from(text),
                Err(err) => {
                    tracing::error!("rendering the exposition failed: {err}");
                    return None;
                }
            };
            *last = Some(Rendered {
                at: Instant::now(),
                plain,
                gzip: None,
            });
        }
        let rendered = last.as_mut()?;
        if !gzip {
            return Some(rendered.plain.clone());
        }
        if rendered.gzip.is_none() {
            let plain = rendered.plain.clone();
            match tokio::task::spawn_blocking(move || compress(&plain)).await {
                Ok(Ok(body)) => rendered.gzip = Some(body),
                Ok(Err(err)) => tracing::error!("compressing the exposition failed: {err}"),
                Err(err) => tracing::error!("compressing the exposition failed: {err}"),
            }
        }
        rendered.gzip.clone()
    }
}

/// gzip at the fastest level: an exposition is repetitive enough to shrink ~10x even so.
fn compress(plain: &[u8]) -> io::Result<Bytes> {
    let out = Vec::with_capacity(plain.len() / 8);
    let mut encoder = flate2::write::GzEncoder::new(out, flate2::Compression::fast());
    encoder.write_all(plain)?;
    Ok(Bytes::from(encoder.finish()?))
}

/// Whether `Accept-Encoding` accepts gzip (`gzip`, `x-gzip` or `*`, with a q-value above 0).
fn wants_gzip(headers: &HeaderMap) -> bool {
    let accepts = |item: &str| {
        let mut parts = item.split(';').map(str::trim);
        let coding = parts.next().unwrap_or("");
        let named = ["gzip", "x-gzip", "*"]
            .iter()
            .any(|c| coding.eq_ignore_ascii_case(c));
        let refused = parts.any(|p| {
            p.strip_prefix("q=")
                .is_some_and(|q| q.trim().parse::<f32>().map_or(true, |q| q <= 0.0))
        });
        named && !refused
    };
    headers
        .get_all(ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(accepts)
}

/// A bound, not yet serving, HTTP server.
pub struct Server {
    listener: TcpListener,
    local_addr: SocketAddr,
    state: Arc<State>,
}

impl Server {
    /// Binds `addr`. Binding early lets a bad address fail the start with a clear message.
    pub async fn bind(
        addr: SocketAddr,
        metrics: Arc<Metrics>,
        readiness: Arc<Readiness>,
        web: Web,
    ) -> Result<Server, ServerError> {
        let bind_error = |err: io::Error| ServerError::Bind {
            addr,
            reason: reason(&err),
        };
        let listener = TcpListener::bind(addr).await.map_err(bind_error)?;
        let local_addr = listener.local_addr().map_err(bind_error)?;
        let state = Arc::new(State {
            metrics,
            readiness,
            web,
            rendered: tokio::sync::Mutex::new(None),
        });
        Ok(Server {
            listener,
            local_addr,
            state,
        })
    }

    /// The address actually bound (the port is known even when 0 was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// `https` with a TLS web config, else `http`.
    pub fn scheme(&self) -> &'static str {
        if self.state.web.is_tls() {
            "https"
        } else {
            "http"
        }
    }

    /// Serves until `shutdown` completes, then drops every open connection.
    pub async fn serve(self, shutdown: impl Future<Output = ()>) {
        let mut connections = JoinSet::new();
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                () = &mut shutdown => break,
                accepted = self.listener.accept() => match accepted {
                    Ok((stream, _)) => {
                        connections.spawn(serve_connection(stream, Arc::clone(&self.state)));
                    }
                    Err(err) => {
                        // Mostly EMFILE: back off instead of spinning.
                        tracing::warn!("cannot accept a connection: {err}");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                },
                Some(_) = connections.join_next(), if !connections.is_empty() => {}
            }
        }
        connections.abort_all();
    }
}

/// A bind error in words an operator acts on, e.g. "address in use".
fn reason(err: &io::Error) -> String {
    match err.kind() {
        io::ErrorKind::AddrInUse => "address in use".to_string(),
        io::ErrorKind::AddrNotAvailable => "address not available on this host".to_string(),
        io::ErrorKind::PermissionDenied => "permission denied".to_string(),
        _ => err.to_string(),
    }
}

async fn serve_connection(stream: TcpStream, state: Arc<State>) {
    let web = state.web.current();
    let Some(tls) = web.tls.clone() else {
        return serve_http(stream, state).await;
    };
    let handshake = TlsAcceptor::from(tls).accept(stream);
    match tokio::time::timeout(HEADER_READ_TIMEOUT, handshake).await {
        Ok(Ok(stream)) => serve_http(stream, state).await,
        Ok(Err(err)) => tracing::debug!("TLS handshake failed: {err}"),
        Err(_) => tracing::debug!("TLS handshake timed out"),
    }
}

/// Auth and headers follow the web config of each request, not of the connection: a token
/// revoked is refused on a scraper's kept-alive connection too.
async fn serve_http<S>(io: S, state: Arc<State>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = service_fn(move |request: Request<Incoming>| {
        let state = Arc::clone(&state);
        async move {
            let web = state.web.current();
            let mut response = respond(&state, &web, &request).await;
            for (name, value) in &web.headers {
                response.headers_mut().insert(name, value.clone());
            }
            Ok::<_, Infallible>(response)
        }
    });
    let connection = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .serve_connection(TokioIo::new(io), service);
    if let Err(err) = connection.await {
        tracing::debug!("HTTP connection ended: {err}");
    }
}

/// Whether the request may read `/metrics`. The bcrypt check runs off the runtime's thread.
async fn authorized<B>(web: &Arc<WebConfig>, request: &Request<B>) -> bool {
    if web.auth.is_open() {
        return true;
    }
    let web = Arc::clone(web);
    let authorization = request.headers().get(AUTHORIZATION).cloned();
    let check = move || web.auth.allows(authorization.as_ref());
    tokio::task::spawn_blocking(check).await.unwrap_or(false)
}

/// The response to a request. Pure apart from reading metrics, readiness and the auth cache.
async fn respond<B>(
    state: &State,
    web: &Arc<WebConfig>,
    request: &Request<B>,
) -> Response<Full<Bytes>> {
    let (method, path) = (request.method(), request.uri().path());
    let known = matches!(path, "/metrics" | "/healthz" | "/readyz");
    if !known {
        return text(StatusCode::NOT_FOUND, "not found\n".to_string());
    }
    if method != Method::GET && method != Method::HEAD {
        let mut response = text(
            StatusCode::METHOD_NOT_ALLOWED,
            "method not allowed\n".into(),
        );
        response
            .headers_mut()
            .insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
        return response;
    }
    match path {
        "/metrics" => {
            if !authorized(web, request).await {
                return unauthorized(web);
            }
            metrics_response(state, wants_gzip(request.headers())).await
        }
        "/readyz" => match state.readiness.check() {
            Ok(()) => text(StatusCode::OK, "ok\n".to_string()),
            Err(why) => text(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("not ready: {why}\n"),
            ),
        },
        _ => text(StatusCode::OK, "ok\n".to_string()),
    }
}

async fn metrics_response(state: &State, gzip: bool) -> Response<Full<Bytes>> {
    let Some(body) = state.exposition(gzip).await else {
        return text(
            StatusCode::INTERNAL_SERVER_ERROR,
            "rendering failed\n".into(),
        );
    };
    let mut response = Response::new(Full::new(body));
    let headers = response.headers_mut();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static(metrics::CONTENT_TYPE),
    );
    headers.insert(VARY, HeaderValue::from_static("Accept-Encoding"));
    if gzip {
        headers.insert(CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    }
    response
}

/// A 401 naming every scheme the web config accepts.
fn unauthorized(web: &WebConfig) -> Response<Full<Bytes>> {
    let mut response = text(StatusCode::UNAUTHORIZED, "unauthorized\n".into());
    for challenge in web.auth.challenges() {
        response.headers_mut().append(WWW_AUTHENTICATE, challenge);
    }
    response
}

fn text(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    let plain = HeaderValue::from_static("text/plain; charset=utf-8");
    response.headers_mut().insert(CONTENT_TYPE, plain);
    response
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::sync::oneshot;

    use super::*;

    /// Sends one HTTP/1.1 request and returns the status code, the head and the body.
    async fn request(addr: SocketAddr, method: &str, path: &str) -> (u16, String, String) {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        let head = format!("{method} {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n");
        stream.write_all(head.as_bytes()).await.unwrap();
        let mut raw = String::new();
        stream.read_to_string(&mut raw).await.unwrap();
        let (head, body) = raw.split_once("\r\n\r\n").unwrap();
        let status = head[9..12].parse().unwrap();
        (status, head.to_lowercase(), body.to_string())
    }

    async fn start(readiness: Arc<Readiness>) -> (SocketAddr, oneshot::Sender<()>) {
        let metrics = Arc::new(Metrics::new());
        let addr = SocketAddr::from(([127, 0, 0, 1], 0));
        let server = Server::bind(addr, metrics, readiness, Web::open())
            .await
            .unwrap();
        let addr = server.local_addr();
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(server.serve(async move {
            let _ = stopped.await;
        }));
        (addr, stop)
    }

    #[test]
    fn readiness_lists_every_unmet_condition() {
        let readiness = Readiness::new();
        assert_eq!(readiness.check(), Ok(()));
        readiness.wait_for("config", "config not applied yet");
        readiness.wait_for("kube", "kube stores not synced");
        assert_eq!(
            readiness.check(),
            Err("config not applied yet; kube stores not synced".into())
        );
        readiness.met("config");
        assert_eq!(readiness.check(), Err("kube stores not synced".into()));
        readiness.met("kube");
        assert_eq!(readiness.check(), Ok(()));
    }

    #[tokio::test]
    async fn serves_metrics_health_and_readiness() {
        let readiness = Arc::new(Readiness::new());
        readiness.wait_for("config", "config not applied yet");
        let (addr, _stop) = start(Arc::clone(&readiness)).await;

        let (status, head, body) = request(addr, "GET", "/metrics").await;
        assert_eq!(status, 200);
        assert!(
            head.contains("content-type: text/plain; version=0.0.4"),
            "{head}"
        );
        assert!(body.contains("hopwatch_build_info{revision=\""), "{body}");

        assert_eq!(request(addr, "GET", "/healthz").await.2, "ok\n");
        let (status, _, body) = request(addr, "GET", "/readyz").await;
        assert_eq!(
            (status, body.as_str()),
            (503, "not ready: config not applied yet\n")
        );
        readiness.met("config");
        assert_eq!(request(addr, "GET", "/readyz").await.0, 200);

        assert_eq!(request(addr, "GET", "/").await.0, 404);
        assert_eq!(request(addr, "GET", "/metrics/x").await.0, 404);
        let (status, head, _) = request(addr, "POST", "/metrics").await;
        assert_eq!(status, 405);
        assert!(head.contains("allow: get, head"), "{head}");
    }

    #[test]
    fn gzip_only_when_accepted() {
        let accepts = |value: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(ACCEPT_ENCODING, HeaderValue::from_str(value).unwrap());
            wants_gzip(&headers)
        };
        assert!(accepts("gzip"));
        assert!(accepts("br, GZIP;q=0.5"));
        assert!(accepts("*"));
        assert!(!accepts("identity"));
        assert!(!accepts("gzip;q=0"));
        assert!(!accepts("gzip; q=0.0, br"));
        assert!(!accepts("gzipped"));
        assert!(!wants_gzip(&HeaderMap::new()));
    }

    #[tokio::test]
    async fn metrics_are_gzipped_when_asked() {
        let (addr, _stop) = start(Arc::new(Readiness::new())).await;
        let mut stream = TcpStream::connect(addr).await.unwrap();
        let head = "GET /metrics HTTP/1.1\r\nHost: t\r\nAccept-Encoding: gzip\r\nConnection: close\r\n\r\n";
        stream.write_all(head.as_bytes()).await.unwrap();
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).await.unwrap();
        let at = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
        let head = String::from_utf8_lossy(&raw[..at]).to_lowercase();
        assert!(head.contains("content-encoding: gzip"), "{head}");
        let mut text = String::new();
        let mut decoder = flate2::read::GzDecoder::new(&raw[at + 4..]);
        std::io::Read::read_to_string(&mut decoder, &mut text).unwrap();
        assert!(text.contains("# TYPE hopwatch_build_info gauge"), "{text}");
    }

    /// Reads one response off a kept-alive connection: its status and body.
    async fn response(stream: &mut TcpStream) -> (u16, String) {
        let mut raw = Vec::new();
        let mut byte = [0u8; 1];
        while !raw.ends_with(b"\r\n\r\n") {
            stream.read_exact(&mut byte).await.unwrap();
            raw.push(byte[0]);
        }
        let head = String::from_utf8(raw).unwrap().to_lowercase();
        let length: usize = head
            .split("content-length: ")
            .nth(1)
            .and_then(|rest| rest.split("\r\n").next())
            .unwrap()
            .parse()
            .unwrap();
        let mut body = vec![0u8; length];
        stream.read_exact(&mut body).await.unwrap();
        (
            head[9..12].parse().unwrap(),
            String::from_utf8(body).unwrap(),
        )
    }

    #[tokio::test]
    async fn a_rotated_token_applies_to_kept_alive_connections() {
        let dir = std::env::temp_dir().join(format!("hopwatch-rotate-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("token"), "first\n").unwrap();
        let web = dir.join("web.yaml");
        std::fs::write(&web, "bearer_token_file: token\n").unwrap();
        let addr = SocketAddr::from(([127, 0, 0, 1], 0));
        let metrics = Arc::new(Metrics::new());
        let readiness = Arc::new(Readiness::new());
        let server = Server::bind(addr, metrics, readiness, Web::load(&web).unwrap());
        let server = server.await.unwrap();
        let addr = server.local_addr();
        tokio::spawn(server.serve(std::future::pending::<()>()));
        let mut stream = TcpStream::connect(addr).await.unwrap();
        let get = |token: &str| {
            format!("GET /metrics HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {token}\r\n\r\n")
        };

        stream.write_all(get("first").as_bytes()).await.unwrap();
        assert_eq!(response(&mut stream).await.0, 200);
        std::fs::write(dir.join("token"), "second\n").unwrap();
        tokio::time::sleep(crate::webconfig::RECHECK + Duration::from_millis(100)).await;
        stream.write_all(get("first").as_bytes()).await.unwrap();
        let (status, body) = response(&mut stream).await;
        assert_eq!((status, body.as_str()), (401, "unauthorized\n"));
        stream.write_all(get("second").as_bytes()).await.unwrap();
        assert_eq!(response(&mut stream).await.0, 200);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn a_busy_port_is_a_clear_error() {
        let (addr, _stop) = start(Arc::new(Readiness::new())).await;
        let metrics = Arc::new(Metrics::new());
        let err = Server::bind(addr, metrics, Arc::new(Readiness::new()), Web::open())
            .await
            .err()
            .unwrap();
        assert_eq!(
            err.to_string(),
            format!("cannot listen on {addr}: address in use")
        );
    }

    #[tokio::test]
    async fn shutdown_closes_the_listener() {
        let (addr, stop) = start(Arc::new(Readiness::new())).await;
        assert_eq!(request(addr, "GET", "/healthz").await.0, 200);
        stop.send(()).unwrap();
        for _ in 0..100 {
            if TcpStream::connect(addr).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("{addr} still accepts connections after shutdown");
    }
}
