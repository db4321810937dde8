//! The Service and Pod hops: one TCP connect, timed, then closed without sending data.
//!
//! Both hops are the same probe; only the target differs. A Service target is a ClusterIP:port,
//! so the connect goes through this node's kube-proxy rules (DNAT to an endpoint, or REJECT when
//! the Service has none); a Pod target is a ready endpoint's podIP:targetPort.
//!
//! # How a failed connect is named
//!
//! The kernel's errno decides, read through [`std::io::ErrorKind`] where std names it. Observed on
//! Linux 6.18 in network namespaces (`tests/tcp_netns.rs` asserts each row):
//!
//! | what happened                                            | errno        | result        |
//! |----------------------------------------------------------|--------------|---------------|
//! | RST: nothing listens; `REJECT --reject-with tcp-reset`   | ECONNREFUSED | `refused`     |
//! | ICMP port unreachable: kube-proxy's no-endpoints REJECT  | ECONNREFUSED | `refused`     |
//! | SYNs dropped (`-j DROP`, policy, CNI) until the deadline | none         | `timeout`     |
//! | ICMP host unreachable, host/admin prohibited (IPv4)      | EHOSTUNREACH | `unreachable` |
//! | ICMP net unreachable, net prohibited                     | ENETUNREACH  | `unreachable` |
//! | ICMP protocol unreachable                                | ENOPROTOOPT  | `unreachable` |
//! | an `unreachable` route                                   | EHOSTUNREACH | `unreachable` |
//! | no route at all                                          | ENETUNREACH  | `unreachable` |
//! | a `blackhole` route (Calico's route for an IPAM block)   | EINVAL       | `unreachable` |
//! | an on-link address nobody answers ARP for, after ~3 s    | EHOSTUNREACH | `unreachable` |
//! | a `prohibit` route                                       | EACCES       | `prohibited`  |
//!
//! Not produced in the lab but mapped the same way: ECONNRESET (a RST; Linux reports a RST in
//! SYN-SENT as ECONNREFUSED) → `refused`; ETIMEDOUT (the kernel gave up retrying SYNs before the
//! deadline) → `timeout`; ENETDOWN, EHOSTDOWN, ENONET (other ICMP codes) → `unreachable`; EPERM
//! (a cgroup BPF or LSM hook on connect) and EACCES from ICMPv6 administratively prohibited →
//! `prohibited`; anything else (EADDRNOTAVAIL, EMFILE, ENOBUFS, …) → `connect_error`.
//!
//! Linux rate-limits the ICMP errors a host sends (6 at once, then one per second per peer), so
//! a burst of probes to one unreachable destination can see `timeout` where a lone one sees
//! `unreachable`.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::TcpStream;
use tokio::time::Instant;

use super::{Detail, Failure, Outcome, TargetKey, result_label};
use crate::config::Schedule;

/// One TCP connect: where to, what became of it and how long the handshake took.
///
/// Addresses are for humans (the CLI); they never become label values.
#[derive(Debug, Clone, PartialEq)]
pub struct TcpReport {
    pub address: SocketAddr,
    pub result: Result<(), Failure>,
    /// From starting the connect to the handshake's end, the error, or the deadline.
    pub duration: Duration,
    /// The source address the kernel chose; `Some` only when connected.
    pub local: Option<SocketAddr>,
    /// The errno behind a failure; `None` on success and when the deadline passed.
    pub os_error: Option<i32>,
}

/// Connects to `address`, giving up at `deadline`, then closes the connection without sending
/// anything. Never fails: every way the connect can end is a [`TcpReport`].
pub async fn connect(address: SocketAddr, deadline: Instant) -> TcpReport {
    let start = Instant::now();
    if deadline <= start {
        // No time left: do not send a SYN whose answer nobody would wait for.
        return TcpReport::failed(address, Failure::Timeout, Duration::ZERO, None);
    }
    let attempt = tokio::time::timeout_at(deadline, TcpStream::connect(address)).await;
    let duration = start.elapsed();
    match attempt {
        Ok(Ok(stream)) => TcpReport::connected(address, duration, stream),
        Ok(Err(err)) => TcpReport::failed(address, classify(&err), duration, err.raw_os_error()),
        Err(_elapsed) => TcpReport::failed(address, Failure::Timeout, duration, None),
    }
}

/// One probe attempt of a single address.
pub async fn probe(address: SocketAddr, deadline: Instant) -> Outcome {
    connect(address, deadline).await.outcome()
}

/// A Service-hop or Pod-hop target: the addresses one round connects to. The Service hop has
/// one (the ClusterIP); the Pod hop has the ready endpoints rendezvous hashing gave this node.
#[derive(Debug, Clone, PartialEq)]
pub struct ConnectTarget {
    pub key: TargetKey,
    pub addresses: Vec<SocketAddr>,
    pub schedule: Schedule,
}

/// One connect of a round, without its address.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Connect {
    pub result: Result<(), Failure>,
    pub duration: Duration,
}

/// Connects to every address of `target` at once. The round fails with the first failure in
/// address order; each connect is reported in [`Detail::Connects`], since every connect is one
/// probe to `metrics.rs`.
pub async fn probe_all(target: &ConnectTarget, deadline: Instant) -> Outcome {
    let reports =
        futures::future::join_all(target.addresses.iter().map(|a| connect(*a, deadline))).await;
    let connects: Vec<Connect> = reports
        .iter()
        .map(|r| Connect {
            result: r.result,
            duration: r.duration,
        })
        .collect();
    Outcome {
        result: connects
            .iter()
            .map(|c| c.result)
            .find(Result::is_err)
            .unwrap_or(Ok(())),
        duration: connects
            .iter()
            .map(|c| c.duration)
            .max()
            .unwrap_or_default(),
        detail: Detail::Connects(connects),
    }
}

/// Names the failure of a connect; the table in the module docs lists what each means.
pub fn classify(err: &io::Error) -> Failure {
    use io::ErrorKind as K;
    match err.kind() {
        K::ConnectionRefused | K::ConnectionReset => Failure::Refused,
        K::TimedOut => Failure::Timeout,
        K::HostUnreachable | K::NetworkUnreachable | K::NetworkDown => Failure::Unreachable,
        // EINVAL from connect on a valid socket address means a blackhole route.
        K::InvalidInput => Failure::Unreachable,
        K::PermissionDenied => Failure::Prohibited,
        _ if is_icmp_errno(err.raw_os_error()) => Failure::Unreachable,
        _ => Failure::ConnectError,
    }
}

/// Errnos that only an ICMP destination-unreachable sets on a connecting socket, for which std
/// has no `ErrorKind`: ENONET (host isolated), ENOPROTOOPT (protocol unreachable), EHOSTDOWN
/// (host unknown). The numbers are Linux's.
fn is_icmp_errno(errno: Option<i32>) -> bool {
    cfg!(target_os = "linux") && matches!(errno, Some(64 | 92 | 112))
}

impl TcpReport {
    fn connected(address: SocketAddr, duration: Duration, stream: TcpStream) -> TcpReport {
        let local = stream.local_addr().ok();
        // Dropping closes the socket: a FIN after the handshake, no data, no RST.
        drop(stream);
        TcpReport {
            address,
            result: Ok(()),
            duration,
            local,
            os_error: None,
        }
    }

    fn failed(
        address: SocketAddr,
        failure: Failure,
        duration: Duration,
        os_error: Option<i32>,
    ) -> TcpReport {
        TcpReport {
            address,
            result: Err(failure),
            duration,
            local: None,
            os_error,
        }
    }

    /// The plain data the scheduler and `metrics.rs` use; the addresses stay behind.
    pub fn outcome(&self) -> Outcome {
        Outcome {
            result: self.result,
            duration: self.duration,
            detail: Detail::None,
        }
    }

    /// One line for a terminal, e.g. `10.96.0.10:53 success in 0.412 ms (from 10.244.0.5:40112)`
    /// or `10.96.0.20:80 refused in 0.101 ms (Connection refused (os error 111))`.
    pub fn render_text(&self) -> String {
        let head = format!(
            "{} {} in {:.3} ms",
            self.address,
            result_label(&self.result),
            self.duration.as_secs_f64() * 1e3
        );
        match (self.local, self.os_error, self.result) {
            (Some(local), _, _) => format!("{head} (from {local})"),
            (None, Some(errno), _) => format!("{head} ({})", io::Error::from_raw_os_error(errno)),
            (None, None, Err(Failure::Timeout)) => {
                format!("{head} (no answer before the deadline)")
            }
            (None, None, _) => head,
        }
    }

    /// `{"address": "10.96.0.10:53", "result": "success", "duration_seconds": 0.000412}`.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "address": self.address.to_string(),
            "result": result_label(&self.result),
            "duration_seconds": self.duration.as_secs_f64(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn in_one_second() -> Instant {
        Instant::now() + Duration::from_secs(1)
    }

    #[tokio::test]
    async fn connects_to_a_listener_and_times_the_handshake() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let report = connect(address, in_one_second()).await;
        assert_eq!(report.result, Ok(()));
        assert!(report.duration > Duration::ZERO);
        assert!(report.duration < Duration::from_secs(1));
        assert_eq!(report.local.map(|l| l.ip()), Some(address.ip()));
        assert_eq!(report.os_error, None);
        // The connection reached the listener's queue and was closed without data.
        let (mut accepted, _) = listener.accept().await.unwrap();
        let mut buf = [0u8; 1];
        let read = tokio::io::AsyncReadExt::read(&mut accepted, &mut buf)
            .await
            .unwrap();
        assert_eq!(read, 0, "the probe closes with a FIN and sends nothing");
    }

    #[tokio::test]
    async fn a_closed_port_is_refused() {
        let (_bound, address) = closed_port();
        let report = connect(address, in_one_second()).await;
        assert_eq!(report.result, Err(Failure::Refused));
        assert_eq!(
            report
                .os_error
                .map(|e| io::Error::from_raw_os_error(e).kind()),
            Some(io::ErrorKind::ConnectionRefused)
        );
        assert_eq!(report.local, None);
        assert!(report.duration < Duration::from_secs(1));
    }

    /// A loopback port bound but not listening: nobody else can take it, and a SYN to it is
    /// answered with a RST for as long as the socket lives.
    fn closed_port() -> (tokio::net::TcpSocket, SocketAddr) {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let address = socket.local_addr().unwrap();
        (socket, address)
    }

    #[tokio::test]
    async fn a_spent_deadline_sends_nothing_and_is_a_timeout() {
        let (_bound, address) = closed_port();
        let report = connect(address, Instant::now()).await;
        assert_eq!(report.result, Err(Failure::Timeout));
        assert_eq!(report.duration, Duration::ZERO);
        assert_eq!(report.os_error, None);
    }

    #[test]
    fn errnos_map_to_a_closed_set_of_reasons() {
        // Linux errno numbers, as the kernel returns them from connect.
        let cases = [
            (111, Failure::Refused),      // ECONNREFUSED
            (104, Failure::Refused),      // ECONNRESET
            (110, Failure::Timeout),      // ETIMEDOUT
            (113, Failure::Unreachable),  // EHOSTUNREACH
            (101, Failure::Unreachable),  // ENETUNREACH
            (100, Failure::Unreachable),  // ENETDOWN
            (22, Failure::Unreachable),   // EINVAL: blackhole route
            (92, Failure::Unreachable),   // ENOPROTOOPT
            (112, Failure::Unreachable),  // EHOSTDOWN
            (64, Failure::Unreachable),   // ENONET
            (13, Failure::Prohibited),    // EACCES
            (1, Failure::Prohibited),     // EPERM
            (99, Failure::ConnectError),  // EADDRNOTAVAIL
            (24, Failure::ConnectError),  // EMFILE
            (105, Failure::ConnectError), // ENOBUFS
        ];
        for (errno, want) in cases {
            assert_eq!(
                classify(&io::Error::from_raw_os_error(errno)),
                want,
                "errno {errno}"
            );
        }
    }

    fn report(
        result: Result<(), Failure>,
        local: Option<&str>,
        os_error: Option<i32>,
    ) -> TcpReport {
        TcpReport {
            address: "10.96.0.10:53".parse().unwrap(),
            result,
            duration: Duration::from_micros(412),
            local: local.map(|l| l.parse().unwrap()),
            os_error,
        }
    }

    #[test]
    fn text_is_one_line_per_connect() {
        let ok = report(Ok(()), Some("10.244.0.5:40112"), None);
        assert_eq!(
            ok.render_text(),
            "10.96.0.10:53 success in 0.412 ms (from 10.244.0.5:40112)"
        );
        let refused = report(Err(Failure::Refused), None, Some(111));
        assert_eq!(
            refused.render_text(),
            "10.96.0.10:53 refused in 0.412 ms (Connection refused (os error 111))"
        );
        let timeout = report(Err(Failure::Timeout), None, None);
        assert_eq!(
            timeout.render_text(),
            "10.96.0.10:53 timeout in 0.412 ms (no answer before the deadline)"
        );
    }

    #[test]
    fn json_has_address_result_and_seconds() {
        let json = report(Err(Failure::Unreachable), None, Some(113)).to_json();
        assert_eq!(
            json,
            serde_json::json!({
                "address": "10.96.0.10:53",
                "result": "unreachable",
                "duration_seconds": 0.000412,
            })
        );
    }

    #[test]
    fn the_outcome_keeps_result_and_duration_only() {
        let outcome = report(Err(Failure::Prohibited), None, Some(13)).outcome();
        assert_eq!(
            outcome,
            Outcome {
                result: Err(Failure::Prohibited),
                duration: Duration::from_micros(412),
                detail: Detail::None
            }
        );
    }
}
