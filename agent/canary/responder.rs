//! The canary responder: answers every `GET` and `HEAD`, whatever the path, with 200 and the
//! node's name, on a port of its own (never the metrics port), and nothing else.
//!
//! It faces whatever the canary Service and Ingress let in, so every resource is bounded: a
//! request head of at most [`MAX_HEAD_BYTES`] read within [`HEADER_READ_TIMEOUT`], no body
//! read, one request per connection, a connection closed after [`CONNECTION_TIMEOUT`] and at
//! most [`MAX_CONNECTIONS`] open (more are closed at once). A fault is logged and counted in
//! `hopwatch_canary_errors_total`; none stops the agent, its probes or `/metrics`.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{ALLOW, CONTENT_TYPE, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::metrics::Metrics;

/// The largest request head read; hyper's smallest allowed buffer.
pub const MAX_HEAD_BYTES: usize = 8192;
/// A client that has not sent its request head by then is dropped.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(5);
/// No connection stays open longer, whatever it does.
pub const CONNECTION_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections served at once; one more is closed as soon as it is accepted.
pub const MAX_CONNECTIONS: usize = 64;
/// The wait before binding again after the address could not be bound.
const BIND_RETRY: Duration = Duration::from_secs(5);
/// The wait after a failed accept (mostly EMFILE), instead of spinning.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// A fault of the responder, as the `reason` of `hopwatch_canary_errors_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The address could not be bound; tried again every few seconds.
    Bind,
    /// A connection could not be accepted.
    Accept,
    /// A connection beyond [`MAX_CONNECTIONS`], closed at once.
    OverLimit,
    /// A connection without a complete request head in time, or open too long.
    Timeout,
    /// A connection that ended without a complete, valid request: a malformed or oversized
    /// head, a reset.
    Request,
}

impl Fault {
    pub const ALL: [Fault; 5] = [
        Fault::Bind,
        Fault::Accept,
        Fault::OverLimit,
        Fault::Timeout,
        Fault::Request,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Fault::Bind => "bind",
            Fault::Accept => "accept",
            Fault::OverLimit => "over_limit",
            Fault::Timeout => "timeout",
            Fault::Request => "request",
        }
    }
}

/// What every connection shares.
struct Shared {
    body: Bytes,
    metrics: Arc<Metrics>,
}

/// A bound, not yet serving, canary responder.
pub struct Responder {
    listener: TcpListener,
    local_addr: SocketAddr,
    shared: Arc<Shared>,
}

impl Responder {
    /// Binds `addr`; answers name `node`.
    pub async fn bind(
        addr: SocketAddr,
        node: &str,
        metrics: Arc<Metrics>,
    ) -> std::io::Result<Responder> {
        let listener = TcpListener::bind(addr).await?;
        let local_addr = listener.local_addr()?;
        metrics.canary.responder_started();
        let body = Bytes::from(format!("hopwatch canary on node {node}\n"));
        Ok(Responder {
            listener,
            local_addr,
            shared: Arc::new(Shared { body, metrics }),
        })
    }

    /// The address actually bound.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Serves until `shutdown` completes, then drops every open connection.
    pub async fn serve(self, shutdown: impl Future<Output = ()>) {
        let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
        let mut connections = JoinSet::new();
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                () = &mut shutdown => break,
                accepted = self.listener.accept() => match accepted {
                    Ok((stream, _)) => match Arc::clone(&slots).try_acquire_owned() {
                        Ok(slot) => {
                            let shared = Arc::clone(&self.shared);
                            connections.spawn(async move {
                                serve_connection(stream, shared).await;
                                drop(slot);
                            });
                        }
                        Err(_) => {
                            drop(stream);
                            self.shared.metrics.canary.fault(Fault::OverLimit);
                            tracing::debug!("canary: {MAX_CONNECTIONS} connections open, one closed");
                        }
                    },
                    Err(err) => {
                        self.shared.metrics.canary.fault(Fault::Accept);
                        tracing::warn!("canary: cannot accept a connection: {err}");
                        tokio::time::sleep(ACCEPT_BACKOFF).await;
                    }
                },
                Some(_) = connections.join_next(), if !connections.is_empty() => {}
            }
        }
        connections.abort_all();
    }
}

/// Binds `addr` and serves until `shutdown`. An address that cannot be bound (in use, not on
/// this host) is logged, counted and tried again every few seconds: the canary never stops
/// the agent.
pub async fn run(addr: SocketAddr, node: String, metrics: Arc<Metrics>, shutdown: impl Future) {
    tokio::pin!(shutdown);
    let responder = loop {
        match Responder::bind(addr, &node, Arc::clone(&metrics)).await {
            Ok(responder) => break responder,
            Err(err) => {
                metrics.canary.fault(Fault::Bind);
                tracing::error!(
                    "canary: cannot listen on {addr}, trying again in {BIND_RETRY:?}: {err}"
                );
            }
        }
        tokio::select! {
            _ = &mut shutdown => return,
            () = tokio::time::sleep(BIND_RETRY) => {}
        }
    };
    tracing::info!("answering the canary on http://{}/", responder.local_addr());
    responder
        .serve(async move {
            shutdown.await;
        })
        .await;
}

async fn serve_connection(stream: TcpStream, shared: Arc<Shared>) {
    let metrics = Arc::clone(&shared.metrics);
    let service = service_fn(move |request: Request<Incoming>| {
        let response = respond(request.method(), &shared.body);
        shared.metrics.canary.served();
        async move { Ok::<_, Infallible>(response) }
    });
    let connection = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .max_buf_size(MAX_HEAD_BYTES)
        .keep_alive(false)
        .serve_connection(TokioIo::new(stream), service);
    match tokio::time::timeout(CONNECTION_TIMEOUT, connection).await {
        Ok(Ok(())) => {}
        Ok(Err(err)) if err.is_timeout() => {
            metrics.canary.fault(Fault::Timeout);
            tracing::debug!("canary: connection dropped: {err}");
        }
        Ok(Err(err)) => {
            metrics.canary.fault(Fault::Request);
            tracing::debug!("canary: connection ended: {err}");
        }
        Err(_) => {
            metrics.canary.fault(Fault::Timeout);
            tracing::debug!("canary: connection open for {CONNECTION_TIMEOUT:?}, closed");
        }
    }
}

/// 200 with `body` for `GET` and `HEAD` (hyper leaves the body out of a `HEAD`'s answer),
/// 405 for any other method. The path is never looked at, so any Ingress path rule works.
fn respond(method: &Method, body: &Bytes) -> Response<Full<Bytes>> {
    let allowed = method == Method::GET || method == Method::HEAD;
    let (status, body) = if allowed {
        (StatusCode::OK, body.clone())
    } else {
        (
            StatusCode::METHOD_NOT_ALLOWED,
            Bytes::from_static(b"method not allowed\n"),
        )
    };
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    if !allowed {
        headers.insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
    }
    response
}

#[cfg(test)]
#[path = "responder_tests.rs"]
mod tests;
