//! The canary responder on loopback: what it answers, and that every hostile client is
//! bounded and counted while it keeps answering.

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::oneshot;

use super::*;

/// Sends `raw` and returns everything read until the server closes.
async fn exchange(addr: SocketAddr, raw: &[u8]) -> String {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(raw).await.unwrap();
    let mut out = Vec::new();
    let _ = stream.read_to_end(&mut out).await;
    String::from_utf8_lossy(&out).into_owned()
}

async fn get(addr: SocketAddr, method: &str, path: &str) -> (u16, String) {
    let head = format!("{method} {path} HTTP/1.1\r\nHost: canary\r\n\r\n");
    let raw = exchange(addr, head.as_bytes()).await;
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    let status = head.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
    (status, body.to_string())
}

async fn start() -> (SocketAddr, Arc<Metrics>, oneshot::Sender<()>) {
    let metrics = Arc::new(Metrics::new());
    let addr = SocketAddr::from(([127, 0, 0, 1], 0));
    let responder = Responder::bind(addr, "node-1", Arc::clone(&metrics))
        .await
        .unwrap();
    let addr = responder.local_addr();
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(responder.serve(async move {
        let _ = stopped.await;
    }));
    (addr, metrics, stop)
}

fn faults(metrics: &Metrics, fault: Fault) -> String {
    let text = metrics.encode();
    let series = format!(
        "hopwatch_canary_errors_total{{reason=\"{}\"}} ",
        fault.as_str()
    );
    text.lines()
        .find_map(|l| l.strip_prefix(series.as_str()))
        .unwrap_or("absent")
        .to_string()
}

#[tokio::test]
async fn any_path_gets_200_and_the_node_and_nothing_else_is_served() {
    let (addr, metrics, _stop) = start().await;
    for path in ["/", "/shop/api", "/metrics", "/healthz"] {
        let (status, body) = get(addr, "GET", path).await;
        assert_eq!(
            (status, body.as_str()),
            (200, "hopwatch canary on node node-1\n"),
            "{path}"
        );
    }
    assert_eq!(get(addr, "HEAD", "/").await, (200, String::new()));
    let raw = exchange(
        addr,
        b"POST / HTTP/1.1\r\nHost: c\r\nContent-Length: 3\r\n\r\nabc",
    )
    .await;
    assert!(raw.starts_with("HTTP/1.1 405"), "{raw}");
    assert!(raw.to_lowercase().contains("allow: get, head"), "{raw}");
    let text = metrics.encode();
    assert!(
        text.contains("hopwatch_canary_requests_total 6\n"),
        "{text}"
    );
    assert_eq!(faults(&metrics, Fault::Request), "0");
}

#[tokio::test]
async fn a_connect_without_a_request_is_no_fault() {
    // The Service and Pod hops connect and close, as hopwatch's own TCP probes do.
    let (addr, metrics, _stop) = start().await;
    for _ in 0..3 {
        drop(TcpStream::connect(addr).await.unwrap());
    }
    assert_eq!(get(addr, "GET", "/").await.0, 200);
    for fault in Fault::ALL {
        assert_eq!(faults(&metrics, fault), "0", "{fault:?}");
    }
}

#[tokio::test]
async fn an_oversized_head_is_refused_and_counted() {
    let (addr, metrics, _stop) = start().await;
    let head = format!(
        "GET / HTTP/1.1\r\nHost: c\r\nX-Big: {}\r\n\r\n",
        "a".repeat(2 * MAX_HEAD_BYTES)
    );
    let raw = exchange(addr, head.as_bytes()).await;
    assert!(!raw.starts_with("HTTP/1.1 200"), "{raw}");
    assert_eq!(faults(&metrics, Fault::Request), "1");
    assert_eq!(get(addr, "GET", "/").await.0, 200, "still answering");
}

#[tokio::test(start_paused = true)]
async fn a_slow_head_is_dropped_at_the_header_timeout() {
    let (addr, metrics, _stop) = start().await;
    let started = tokio::time::Instant::now();
    let raw = exchange(addr, b"GET / HTTP/1.1\r\nHost: c\r\n").await;
    assert!(!raw.contains("200 OK"), "{raw}");
    let waited = started.elapsed();
    assert!(
        (HEADER_READ_TIMEOUT..CONNECTION_TIMEOUT).contains(&waited),
        "{waited:?}"
    );
    assert_eq!(faults(&metrics, Fault::Timeout), "1");
}

#[tokio::test]
async fn connections_beyond_the_limit_are_closed_and_counted() {
    let (addr, metrics, _stop) = start().await;
    let mut idle = Vec::new();
    for _ in 0..MAX_CONNECTIONS {
        idle.push(TcpStream::connect(addr).await.unwrap());
    }
    // The one over the limit is closed without an answer, long before any timeout.
    let extra = tokio::time::timeout(Duration::from_secs(3), get(addr, "GET", "/")).await;
    assert_eq!(extra.map(|(status, _)| status), Ok(0));
    assert_eq!(faults(&metrics, Fault::OverLimit), "1");
    drop(idle);
    for _ in 0..100 {
        if get(addr, "GET", "/").await.0 == 200 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("no answer once the idle connections closed");
}

#[tokio::test(start_paused = true)]
async fn a_busy_port_is_counted_and_bound_once_free() {
    let busy = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = busy.local_addr().unwrap();
    let metrics = Arc::new(Metrics::new());
    let (stop, stopped) = oneshot::channel::<()>();
    let running = tokio::spawn(run(addr, "node-1".into(), Arc::clone(&metrics), stopped));
    while faults(&metrics, Fault::Bind) == "absent" {
        tokio::task::yield_now().await;
    }
    assert_eq!(faults(&metrics, Fault::Bind), "1");
    drop(busy);
    tokio::time::sleep(BIND_RETRY + Duration::from_millis(1)).await;
    for _ in 0..100 {
        tokio::task::yield_now().await;
    }
    assert_eq!(get(addr, "GET", "/").await.0, 200);
    let _ = stop.send(());
    running.await.unwrap();
}
