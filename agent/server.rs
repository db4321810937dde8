//! The HTTP server: `/metrics`, `/healthz` and `/readyz`, over HTTP/1.1.
//!
//! However many scrapers there are, the exposition is rendered once at a time, off the
//! runtime's thread, and a render finished less than [`REUSE`] ago is served again: the probes
//! keep their schedule under a crowd of scrapers (tests/metrics_load.rs), and the CPU a crowd
//! can take is bounded by one render per [`REUSE`].

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{ALLOW, CONTENT_TYPE, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

use crate::metrics::{self, Metrics};

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

/// What the handlers read.
struct State {
    metrics: Arc<Metrics>,
    readiness: Arc<Readiness>,
    /// The last exposition rendered, and when. Held across a render: the scrapes that arrive
    /// meanwhile wait for it instead of rendering their own.
    rendered: tokio::sync::Mutex<Option<(Instant, Bytes)>>,
}

impl State {
    /// The exposition, rendered on a blocking thread unless the last one is recent enough.
    async fn exposition(&self) -> Option<Bytes> {
        let mut last = self.rendered.lock().await;
        if let Some((at, body)) = &*last
            && at.elapsed() < REUSE
        {
            return Some(body.clone());
        }
        let metrics = Arc::clone(&self.metrics);
        let body = match tokio::task::spawn_blocking(move || metrics.encode()).await {
            Ok(text) => Bytes::from(text),
            Err(err) => {
                tracing::error!("rendering the exposition failed: {err}");
                return None;
            }
        };
        *last = Some((Instant::now(), body.clone()));
        Some(body)
    }
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
    let service = service_fn(move |request: Request<Incoming>| {
        let state = Arc::clone(&state);
        async move {
            let response = respond(&state, request.method(), request.uri().path()).await;
            Ok::<_, Infallible>(response)
        }
    });
    let connection = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .serve_connection(TokioIo::new(stream), service);
    if let Err(err) = connection.await {
        tracing::debug!("HTTP connection ended: {err}");
    }
}

/// The response to `method path`. Pure apart from reading metrics and readiness.
async fn respond(state: &State, method: &Method, path: &str) -> Response<Full<Bytes>> {
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
            let Some(body) = state.exposition().await else {
                return text(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "rendering failed\n".into(),
                );
            };
            let mut response = Response::new(Full::new(body));
            let content_type = HeaderValue::from_static(metrics::CONTENT_TYPE);
            response.headers_mut().insert(CONTENT_TYPE, content_type);
            response
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
        let server = Server::bind(addr, metrics, readiness).await.unwrap();
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
        assert!(body.contains("hopwatch_build_info{version=\""), "{body}");

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

    #[tokio::test]
    async fn a_busy_port_is_a_clear_error() {
        let (addr, _stop) = start(Arc::new(Readiness::new())).await;
        let metrics = Arc::new(Metrics::new());
        let err = Server::bind(addr, metrics, Arc::new(Readiness::new()))
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
