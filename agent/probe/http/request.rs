//! One probe's requests: the first, then each redirect followed, every one on a fresh
//! connection (resolve, connect, TLS, response head), their phases laps of one clock; then
//! the verdict on the final response: its code, and its body when patterns are expected.

use std::net::SocketAddr;

use bytes::Bytes;
use hyper::Method;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::time::Instant;

use super::exchange::{self, Protocol};
use super::{Headers, HttpReport, HttpSpec, HttpUrl, Laps, Phase, Scheme, redirect, tls, within};
use crate::probe::Failure;

/// One request as [`HttpSpec`] describes, redirects followed when it says so, giving up at
/// `deadline`. Never fails: every way the request can end is an [`HttpReport`].
pub async fn request(spec: &HttpSpec, deadline: Instant) -> HttpReport {
    let mut report = HttpReport::new(spec.url.to_string());
    report.method = spec.method.clone();
    let mut laps = Laps::start();
    if let Err((phase, failure)) = attempt(spec, deadline, &mut report, &mut laps).await {
        report.result = Err(failure);
        report.failed_phase = Some(phase);
    }
    report.phases = laps.phases;
    report.total = laps.start.elapsed();
    report
}

/// One request of a chain of redirects: where it goes, and what it sends.
struct Step {
    url: HttpUrl,
    method: Method,
    headers: Headers,
    body: Bytes,
}

impl Step {
    fn first(spec: &HttpSpec) -> Step {
        Step {
            url: spec.url.clone(),
            method: spec.method.clone(),
            headers: spec.headers.clone(),
            body: spec.body.clone(),
        }
    }

    /// The request a `code` redirect to `url` asks for. Credentials dropped on the way to
    /// another host stay dropped, as in Go's client.
    fn follow(&self, code: u16, url: HttpUrl) -> Step {
        let (method, keep_body) = redirect::next_method(code, &self.method);
        let headers = if url.host == self.url.host {
            self.headers.clone()
        } else {
            self.headers.for_other_host()
        };
        Step {
            url,
            method,
            headers,
            body: if keep_body {
                self.body.clone()
            } else {
                Bytes::new()
            },
        }
    }

    /// The address to dial without resolving: `connect_to` for the spec's host (with the
    /// step's port when a redirect changed it), or the URL's IP.
    fn dial(&self, spec: &HttpSpec) -> Option<SocketAddr> {
        match spec.connect_to {
            Some(to) if self.url.host == spec.url.host => {
                let port = if self.url.port == spec.url.port {
                    to.port()
                } else {
                    self.url.port
                };
                Some(SocketAddr::new(to.ip(), port))
            }
            _ => self.url.ip().map(|ip| SocketAddr::new(ip, self.url.port)),
        }
    }
}

async fn attempt(
    spec: &HttpSpec,
    deadline: Instant,
    report: &mut HttpReport,
    laps: &mut Laps,
) -> Result<(), (Phase, Failure)> {
    let mut step = Step::first(spec);
    loop {
        let head = send(spec, &step, deadline, report, laps).await?;
        report.status = Some(head.status);
        let location = head.location.as_deref();
        if let Some(location) = location.filter(|_| spec.follows(head.status)) {
            if report.redirects.len() >= redirect::MAX_REDIRECTS {
                return Err((Phase::Ttfb, Failure::HttpTooManyRedirects));
            }
            let url =
                redirect::resolve(&step.url, location).ok_or((Phase::Ttfb, Failure::HttpError))?;
            if spec.may_go_to(&url) {
                report.redirects.push(url.to_string());
                step = step.follow(head.status, url);
                continue;
            }
        }
        if !spec.expects(head.status) {
            return Err((Phase::Ttfb, Failure::HttpStatus));
        }
        if spec.expected_body.is_empty() || step.method == Method::HEAD {
            return Ok(());
        }
        let body = laps.lap(Phase::Transfer, head.read_body(deadline).await)?;
        if !spec.expected_body.iter().all(|p| p.is_match(&body)) {
            return Err((Phase::Transfer, Failure::HttpBodyMismatch));
        }
        return Ok(());
    }
}

/// One request of the chain on a fresh connection: resolve, connect, TLS, response head.
async fn send(
    spec: &HttpSpec,
    step: &Step,
    deadline: Instant,
    report: &mut HttpReport,
    laps: &mut Laps,
) -> Result<exchange::Head, (Phase, Failure)> {
    let address = match step.dial(spec) {
        Some(address) => address,
        None => {
            let answers = spec.resolver.resolve(&step.url.host, deadline).await;
            let answers = laps.lap(Phase::Dns, answers)?;
            let first = *answers.first().ok_or((Phase::Dns, Failure::NoAddress))?;
            report.answers = answers;
            SocketAddr::new(first, step.url.port)
        }
    };
    report.address = Some(address);
    let tcp = laps.lap(Phase::Connect, connect(address, deadline).await)?;
    let ask = exchange::Ask {
        url: &step.url,
        method: &step.method,
        headers: &step.headers,
        body: &step.body,
    };
    let build = |protocol| exchange::build(&ask, protocol).map_err(|f| (Phase::Ttfb, f));
    match step.url.scheme {
        Scheme::Http => {
            let request = build(Protocol::Http1)?;
            report.protocol = Some(Protocol::Http1);
            let head = exchange::send(tcp, Protocol::Http1, request, deadline).await;
            laps.lap(Phase::Ttfb, head)
        }
        Scheme::Https => {
            let tls = (&spec.ca, spec.insecure);
            let host = &step.url.host;
            let handshake =
                tls::handshake(tcp, host, tls, spec.client_cert.as_ref(), deadline).await;
            report.tls = handshake.info;
            let stream = match (handshake.stream, handshake.failure) {
                (Some(stream), None) => Ok(stream),
                (_, failure) => Err(failure.unwrap_or(Failure::TlsHandshake)),
            };
            let stream = laps.lap(Phase::Tls, stream)?;
            let protocol = if handshake.h2 {
                Protocol::Http2
            } else {
                Protocol::Http1
            };
            let request = build(protocol)?;
            report.protocol = Some(protocol);
            let head = exchange::send(stream, protocol, request, deadline).await;
            laps.lap(Phase::Ttfb, head)
        }
    }
}

async fn connect(address: SocketAddr, deadline: Instant) -> Result<TcpStream, Failure> {
    let stream = within(deadline, TcpStream::connect(address))
        .await?
        .map_err(|err| crate::probe::tcp::classify(&err))?;
    // The request is one small write; do not let Nagle hold it back.
    let _ = stream.set_nodelay(true);
    Ok(stream)
}

/// Sends a plain `GET` of `url` over HTTP/1.1 on `io` and waits for the response head: its
/// status code. The fuzz targets read responses through here.
pub(crate) async fn first_response<T>(
    io: T,
    url: &HttpUrl,
    deadline: Instant,
) -> Result<u16, Failure>
where
    T: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let ask = exchange::Ask {
        url,
        method: &Method::GET,
        headers: &Headers::default(),
        body: &Bytes::new(),
    };
    let request = exchange::build(&ask, Protocol::Http1)?;
    let head = exchange::send(io, Protocol::Http1, request, deadline).await?;
    Ok(head.status)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(text: &str) -> HttpUrl {
        HttpUrl::parse(text).unwrap()
    }

    #[test]
    fn credentials_stay_behind_once_a_redirect_leaves_the_host() {
        let spec = HttpSpec {
            headers: Headers::parse([("Authorization", "Bearer t"), ("X-Probe", "1")]).unwrap(),
            method: Method::POST,
            body: Bytes::from_static(b"x"),
            ..HttpSpec::new(url("https://a.test/login"))
        };
        let names = |step: &Step| -> Vec<String> {
            step.headers.iter().map(|(n, _)| n.to_string()).collect()
        };
        let first = Step::first(&spec);
        let same = first.follow(307, url("https://a.test/next"));
        assert_eq!(names(&same), ["authorization", "x-probe"]);
        assert_eq!((same.method.clone(), same.body.len()), (Method::POST, 1));
        let away = same.follow(302, url("https://b.test/"));
        assert_eq!(names(&away), ["x-probe"]);
        assert_eq!((away.method.clone(), away.body.len()), (Method::GET, 0));
        let back = away.follow(302, url("https://a.test/done"));
        assert_eq!(names(&back), ["x-probe"]);
    }

    #[test]
    fn connect_to_is_dialled_for_the_spec_host_on_the_step_port() {
        let spec = HttpSpec {
            connect_to: Some("127.0.0.9:8443".parse().unwrap()),
            ..HttpSpec::new(url("https://a.test:8443/"))
        };
        let dial = |text: &str| {
            Step::first(&HttpSpec {
                url: url(text),
                ..spec.clone()
            })
            .dial(&spec)
        };
        assert_eq!(
            dial("https://a.test:8443/x"),
            Some("127.0.0.9:8443".parse().unwrap())
        );
        assert_eq!(
            dial("http://a.test/x"),
            Some("127.0.0.9:80".parse().unwrap())
        );
        assert_eq!(dial("https://b.test/"), None, "another host is resolved");
        assert_eq!(
            dial("http://10.1.2.3:81/"),
            Some("10.1.2.3:81".parse().unwrap())
        );
    }
}
