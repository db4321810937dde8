//! One OTLP/HTTP POST: connect, TLS for `https`, the request, and what the reply says.
//!
//! Every push opens a fresh connection and closes it: a push every minute or so gains nothing
//! from keeping one open, and a fresh one never meets a connection the collector or a proxy
//! closed while idle. HTTP/1.1 only: collectors and Prometheus serve OTLP/HTTP over it.
//! gRPC is not offered: it needs HTTP/2 and tonic, a second HTTP stack for the same request,
//! and Prometheus' own OTLP receiver only takes HTTP.

use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::future::{Either, select};
use http_body_util::{BodyExt, Full, Limited};
use hyper::header::{
    CONNECTION, CONTENT_TYPE, HOST, HeaderMap, HeaderName, HeaderValue, USER_AGENT,
};
use hyper::{Request, StatusCode};
use hyper_util::rt::TokioIo;
use prost::Message;
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, RootCertStore};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use super::proto::{ExportMetricsServiceResponse, Status};
use crate::probe::http::{HttpUrl, Scheme, UrlError};

/// The media type of OTLP/HTTP binary protobuf.
const PROTOBUF: &str = "application/x-protobuf";

/// Replies are read up to this size: enough for any error message a collector writes.
const MAX_REPLY_BYTES: usize = 64 * 1024;

/// Error text from a reply is cut to this many characters in the log.
const MAX_MESSAGE_CHARS: usize = 300;

/// Why the settings cannot make a client. The config's validation refuses all of these first.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("otlp.endpoint: {0}")]
    Endpoint(#[from] UrlError),
    #[error("otlp.headers: {0:?} is not a valid header name")]
    HeaderName(String),
    #[error("otlp.headers.{0}: not a valid header value")]
    HeaderValue(String),
    #[error("otlp.endpoint: {0:?} is not a valid TLS server name")]
    ServerName(String),
    #[error("otlp: cannot set up TLS: {0}")]
    Tls(#[from] rustls::Error),
}

/// Why a push failed. Logged; the next push is the retry.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("cannot connect: {0}")]
    Connect(std::io::Error),
    #[error("TLS handshake failed: {0}")]
    Tls(std::io::Error),
    #[error("HTTP exchange failed: {0}")]
    Http(#[from] hyper::Error),
    #[error("no reply within {0:?}")]
    Timeout(Duration),
    #[error("the endpoint answered {status}: {message}")]
    Status { status: StatusCode, message: String },
}

impl ExportError {
    /// A snake_case name of the reason, for structured logs.
    pub fn as_str(&self) -> &'static str {
        match self {
            ExportError::Connect(_) => "connect",
            ExportError::Tls(_) => "tls",
            ExportError::Http(_) => "http",
            ExportError::Timeout(_) => "timeout",
            ExportError::Status { .. } => "status",
        }
    }
}

/// A 2xx reply's news: data points the endpoint refused although it took the request.
#[derive(Debug, Clone, PartialEq)]
pub struct Rejected {
    pub data_points: i64,
    pub message: String,
}

/// Where and how requests are posted; built once per exporter.
pub struct Poster {
    url: HttpUrl,
    headers: HeaderMap,
    tls: Option<(TlsConnector, ServerName<'static>)>,
    timeout: Duration,
}

impl Poster {
    /// Parses the endpoint and headers; `https` endpoints are verified against `roots`.
    pub fn new(
        endpoint: &str,
        headers: &[(String, String)],
        timeout: Duration,
        roots: RootCertStore,
    ) -> Result<Poster, SettingsError> {
        let url = HttpUrl::parse(endpoint)?;
        let tls = match url.scheme {
            Scheme::Http => None,
            Scheme::Https => Some(tls(&url.host, roots)?),
        };
        Ok(Poster {
            headers: header_map(headers)?,
            url,
            tls,
            timeout,
        })
    }

    /// The endpoint, for log lines.
    pub fn url(&self) -> &HttpUrl {
        &self.url
    }

    /// Posts `body` and reads the reply, all within the timeout. `Ok` for a 2xx reply, with
    /// what it says was rejected, if anything.
    pub async fn post(&self, body: Vec<u8>) -> Result<Option<Rejected>, ExportError> {
        let request = self.request(body);
        let exchange = async {
            let tcp = TcpStream::connect((self.url.host.as_str(), self.url.port))
                .await
                .map_err(ExportError::Connect)?;
            // The request is one write; do not let Nagle hold its tail back.
            let _ = tcp.set_nodelay(true);
            match &self.tls {
                None => exchange(tcp, request).await,
                Some((connector, name)) => {
                    let tls = connector
                        .connect(name.clone(), tcp)
                        .await
                        .map_err(ExportError::Tls)?;
                    exchange(tls, request).await
                }
            }
        };
        let reply = tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| ExportError::Timeout(self.timeout))??;
        reply.verdict()
    }

    fn request(&self, body: Vec<u8>) -> Request<Full<Bytes>> {
        let mut request = Request::new(Full::new(Bytes::from(body)));
        *request.method_mut() = hyper::Method::POST;
        // A path from a parsed URL is a valid URI; "/" is the fallback that cannot fail.
        *request.uri_mut() = self.url.path.parse().unwrap_or_default();
        let headers = request.headers_mut();
        let fixed = [
            (HOST, self.url.host_header()),
            (CONTENT_TYPE, PROTOBUF.to_string()),
            (
                USER_AGENT,
                concat!("hopwatch/", env!("CARGO_PKG_VERSION")).to_string(),
            ),
            (CONNECTION, "close".to_string()),
        ];
        for (name, value) in fixed {
            if let Ok(value) = HeaderValue::try_from(value) {
                headers.insert(name, value);
            }
        }
        for (name, value) in &self.headers {
            headers.append(name, value.clone());
        }
        request
    }
}

fn header_map(headers: &[(String, String)]) -> Result<HeaderMap, SettingsError> {
    let mut map = HeaderMap::new();
    for (name, value) in headers {
        let header = HeaderName::try_from(name.as_str())
            .map_err(|_| SettingsError::HeaderName(name.clone()))?;
        let value = HeaderValue::try_from(value.as_str())
            .map_err(|_| SettingsError::HeaderValue(name.clone()))?;
        map.append(header, value);
    }
    Ok(map)
}

/// A rustls client on the ring provider, verifying against `roots`, speaking HTTP/1.1.
fn tls(
    host: &str,
    roots: RootCertStore,
) -> Result<(TlsConnector, ServerName<'static>), SettingsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let name = ServerName::try_from(host.to_string())
        .map_err(|_| SettingsError::ServerName(host.to_string()))?;
    Ok((TlsConnector::from(Arc::new(config)), name))
}

/// A reply as read: status, content type and the first [`MAX_REPLY_BYTES`] of the body.
struct Reply {
    status: StatusCode,
    content_type: String,
    body: Bytes,
}

/// Sends `request` on `io` and reads the whole reply.
async fn exchange<T>(io: T, request: Request<Full<Bytes>>) -> Result<Reply, ExportError>
where
    T: AsyncRead + AsyncWrite + Unpin + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io)).await?;
    let reply = async move {
        let response = sender.send_request(request).await?;
        let status = response.status();
        let content_type = response
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        // The status decides; a body cut short only loses detail for the log.
        let body = Limited::new(response.into_body(), MAX_REPLY_BYTES)
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        Ok(Reply {
            status,
            content_type,
            body,
        })
    };
    match select(pin!(reply), pin!(conn)).await {
        Either::Left((reply, _conn)) => reply,
        // The connection ended first (the server closed it): the reply settles now.
        Either::Right((_ended, reply)) => reply.await,
    }
}

impl Reply {
    /// 2xx is success, partial or not; anything else is an error with the endpoint's message.
    fn verdict(self) -> Result<Option<Rejected>, ExportError> {
        if !self.status.is_success() {
            return Err(ExportError::Status {
                status: self.status,
                message: self.error_message(),
            });
        }
        if !self.is_protobuf() {
            return Ok(None);
        }
        let response = ExportMetricsServiceResponse::decode(self.body).ok();
        let partial = response.and_then(|r| r.partial_success);
        Ok(partial
            .filter(|p| p.rejected_data_points > 0 || !p.error_message.is_empty())
            .map(|p| Rejected {
                data_points: p.rejected_data_points,
                message: printable(&p.error_message),
            }))
    }

    fn is_protobuf(&self) -> bool {
        self.content_type.starts_with(PROTOBUF)
    }

    /// An OTLP error reply holds a `google.rpc.Status`; others (proxies, Prometheus) hold text.
    fn error_message(&self) -> String {
        let status = self
            .is_protobuf()
            .then(|| Status::decode(self.body.clone()));
        let text = match status {
            Some(Ok(status)) => status.message,
            _ => String::from_utf8_lossy(&self.body).into_owned(),
        };
        let text = printable(text.trim());
        if text.is_empty() {
            "(no message)".to_string()
        } else {
            text
        }
    }
}

/// `text` on one line, control characters escaped, at most [`MAX_MESSAGE_CHARS`] long.
fn printable(text: &str) -> String {
    let mut out: String = text
        .chars()
        .take(MAX_MESSAGE_CHARS)
        .flat_map(|c| {
            if c.is_control() {
                c.escape_default().collect::<Vec<_>>()
            } else {
                vec![c]
            }
        })
        .collect();
    if text.chars().count() > MAX_MESSAGE_CHARS {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::otlp::proto::ExportMetricsPartialSuccess;

    fn reply(status: u16, content_type: &str, body: Vec<u8>) -> Reply {
        Reply {
            status: StatusCode::from_u16(status).unwrap(),
            content_type: content_type.to_string(),
            body: Bytes::from(body),
        }
    }

    #[test]
    fn a_2xx_is_success_and_a_partial_success_names_what_was_rejected() {
        assert!(matches!(reply(200, "", vec![]).verdict(), Ok(None)));
        let partial = ExportMetricsServiceResponse {
            partial_success: Some(ExportMetricsPartialSuccess {
                rejected_data_points: 3,
                error_message: "too old".to_string(),
            }),
        };
        let verdict = reply(200, PROTOBUF, partial.encode_to_vec()).verdict();
        let rejected = Rejected {
            data_points: 3,
            message: "too old".to_string(),
        };
        assert_eq!(verdict.ok(), Some(Some(rejected)));
        let empty = ExportMetricsServiceResponse::default().encode_to_vec();
        assert!(matches!(reply(200, PROTOBUF, empty).verdict(), Ok(None)));
    }

    #[test]
    fn an_error_reply_gives_the_status_and_the_message_in_either_form() {
        let status = Status {
            code: 3,
            message: "bad\nmetric".to_string(),
        };
        let cases = [
            reply(400, PROTOBUF, status.encode_to_vec()),
            reply(503, "text/plain", b"  overloaded \n".to_vec()),
            reply(404, "text/html", vec![]),
        ];
        let messages: Vec<String> = cases
            .into_iter()
            .map(|r| match r.verdict() {
                Err(err) => err.to_string(),
                Ok(ok) => panic!("{ok:?}"),
            })
            .collect();
        assert_eq!(
            messages,
            [
                "the endpoint answered 400 Bad Request: bad\\nmetric",
                "the endpoint answered 503 Service Unavailable: overloaded",
                "the endpoint answered 404 Not Found: (no message)",
            ]
        );
    }

    #[test]
    fn long_messages_are_cut() {
        let long = "x".repeat(MAX_MESSAGE_CHARS + 5);
        let cut = printable(&long);
        assert_eq!(cut.chars().count(), MAX_MESSAGE_CHARS + 1);
        assert!(cut.ends_with('…'));
    }

    #[test]
    fn bad_settings_are_refused_with_the_field_named() {
        let roots = RootCertStore::empty;
        let timeout = Duration::from_secs(1);
        let refused = |endpoint: &str, headers: &[(String, String)]| match Poster::new(
            endpoint,
            headers,
            timeout,
            roots(),
        ) {
            Err(err) => err.to_string(),
            Ok(_) => panic!("{endpoint} accepted"),
        };
        assert!(refused("ftp://x/v1/metrics", &[]).starts_with("otlp.endpoint: "));
        let bad_name = [("bad name".to_string(), "v".to_string())];
        assert_eq!(
            refused("http://x/v1/metrics", &bad_name),
            "otlp.headers: \"bad name\" is not a valid header name"
        );
        let bad_value = [("authorization".to_string(), "a\nb".to_string())];
        assert_eq!(
            refused("http://x/v1/metrics", &bad_value),
            "otlp.headers.authorization: not a valid header value"
        );
        assert!(Poster::new("https://[::1]:4318/v1/metrics", &[], timeout, roots()).is_ok());
    }
}
