//! An OTLP/HTTP receiver: a hyper HTTP/1.1 server on 127.0.0.1, plain or TLS, on its own
//! thread and runtime so that sync and async tests can use it alike. It records every request
//! and answers as told ([`Answer`]); dropping it stops the server and joins its thread.

use std::net::{SocketAddr, TcpListener as StdListener};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use prost::Message;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::oneshot;

/// One request as the receiver got it.
#[derive(Debug, Clone)]
pub struct Received {
    pub method: String,
    pub path: String,
    /// Names lowercase, in the order sent.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Received {
    /// The value of header `name` (lowercase); fails the test when it is missing.
    pub fn header(&self, name: &str) -> &str {
        let found = self.headers.iter().find(|(n, _)| n == name);
        match found {
            Some((_, value)) => value,
            None => panic!("no header {name} in {:?}", self.headers),
        }
    }

    /// The body, decoded with the official OTLP types.
    pub fn decode(&self) -> ExportMetricsServiceRequest {
        ExportMetricsServiceRequest::decode(self.body.as_slice())
            .unwrap_or_else(|err| panic!("the body is not an ExportMetricsServiceRequest: {err}"))
    }
}

/// How the receiver answers.
#[derive(Debug, Clone)]
pub enum Answer {
    /// 200 with an empty body, as the OpenTelemetry Collector and Prometheus answer.
    Ok,
    /// This status, content type and body.
    Reply(u16, &'static str, Vec<u8>),
    /// Nothing, ever: the client must give up on its own.
    Silent,
}

/// A running receiver; see the module documentation.
pub struct Receiver {
    addr: SocketAddr,
    tls: bool,
    answer: Arc<Mutex<Answer>>,
    requests: mpsc::Receiver<Received>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Receiver {
    /// A plain HTTP receiver answering [`Answer::Ok`].
    pub fn start() -> Receiver {
        Receiver::launch(None)
    }

    /// An HTTPS receiver presenting `config`'s certificate.
    pub fn start_tls(config: rustls::ServerConfig) -> Receiver {
        Receiver::launch(Some(tokio_rustls::TlsAcceptor::from(Arc::new(config))))
    }

    fn launch(tls: Option<tokio_rustls::TlsAcceptor>) -> Receiver {
        let listener = StdListener::bind("127.0.0.1:0").expect("bind the receiver");
        listener
            .set_nonblocking(true)
            .expect("non-blocking listener");
        let addr = listener.local_addr().expect("receiver address");
        let answer = Arc::new(Mutex::new(Answer::Ok));
        let (sent, requests) = mpsc::channel();
        let (stop, stopped) = oneshot::channel();
        let state = Serve {
            answer: Arc::clone(&answer),
            sent,
            tls: tls.clone(),
        };
        let thread = std::thread::spawn(move || serve(listener, state, stopped));
        Receiver {
            addr,
            tls: tls.is_some(),
            answer,
            requests,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// The endpoint URL to configure: `/v1/metrics` on this receiver (`localhost` for TLS,
    /// the name its certificate is for).
    pub fn endpoint(&self) -> String {
        match self.tls {
            false => format!("http://{}/v1/metrics", self.addr),
            true => format!("https://localhost:{}/v1/metrics", self.addr.port()),
        }
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Answers the next requests with `answer`.
    pub fn answer(&self, answer: Answer) {
        *self.answer.lock().expect("answer lock") = answer;
    }

    /// The next request; fails the test when none comes within `wait`.
    pub fn next(&self, wait: Duration) -> Received {
        self.requests
            .recv_timeout(wait)
            .unwrap_or_else(|_| panic!("no request reached the receiver within {wait:?}"))
    }

    /// The next request if one has come.
    pub fn try_next(&self) -> Option<Received> {
        self.requests.try_recv().ok()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// What every connection of the receiver shares.
#[derive(Clone)]
struct Serve {
    answer: Arc<Mutex<Answer>>,
    sent: mpsc::Sender<Received>,
    tls: Option<tokio_rustls::TlsAcceptor>,
}

/// The receiver thread: accepts until `stopped`; dropping the runtime ends every connection.
fn serve(listener: StdListener, state: Serve, mut stopped: oneshot::Receiver<()>) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("receiver runtime");
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::from_std(listener).expect("tokio listener");
        loop {
            tokio::select! {
                _ = &mut stopped => return,
                accepted = listener.accept() => {
                    let Ok((tcp, _)) = accepted else { continue };
                    tokio::spawn(connection(tcp, state.clone()));
                }
            }
        }
    });
}

async fn connection(tcp: tokio::net::TcpStream, state: Serve) {
    match state.tls.clone() {
        None => http(tcp, state).await,
        Some(acceptor) => {
            // A client that refuses the certificate ends here, which is its test's point.
            if let Ok(tls) = acceptor.accept(tcp).await {
                http(tls, state).await;
            }
        }
    }
}

async fn http<T>(io: T, state: Serve)
where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = service_fn(move |request| respond(request, state.clone()));
    let _ = hyper::server::conn::http1::Builder::new()
        .serve_connection(TokioIo::new(io), service)
        .await;
}

async fn respond(
    request: Request<Incoming>,
    state: Serve,
) -> Result<Response<Full<Bytes>>, hyper::Error> {
    let (parts, body) = request.into_parts();
    let body = body.collect().await?.to_bytes().to_vec();
    let headers = parts
        .headers
        .iter()
        .map(|(n, v)| {
            (
                n.as_str().to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let _ = state.sent.send(Received {
        method: parts.method.to_string(),
        path: parts.uri.to_string(),
        headers,
        body,
    });
    let answer = state.answer.lock().expect("answer lock").clone();
    let (status, content_type, body) = match answer {
        Answer::Ok => (200, "application/x-protobuf", Vec::new()),
        Answer::Reply(status, content_type, body) => (status, content_type, body),
        Answer::Silent => std::future::pending().await,
    };
    let response = Response::builder()
        .status(status)
        .header("content-type", content_type)
        .body(Full::new(Bytes::from(body)))
        .expect("a valid response");
    Ok(response)
}
