//! `hopwatch probe tcp` and `hopwatch probe http` through the real binary: output, JSON shape
//! and exit codes (0 success, 1 failed probe, 2 usage error), against loopback listeners.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::process::{Command, Output};
use std::thread;

fn hopwatch(args: &[&str]) -> Output {
    let output = Command::new(env!("CARGO_BIN_EXE_hopwatch"))
        .args(args)
        .output();
    output.unwrap_or_else(|err| panic!("cannot run hopwatch: {err}"))
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// A port on 127.0.0.1 that nothing listens on (the listener is closed before returning).
fn closed_port() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap()
}

/// Answers every connection with one fixed HTTP response, `count` times, on a thread.
fn http_server(status_line: &'static str, count: usize) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    thread::spawn(move || {
        for stream in listener.incoming().take(count) {
            let Ok(mut stream) = stream else { continue };
            let mut request = [0u8; 2048];
            let _ = stream.read(&mut request);
            let response =
                format!("{status_line}\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok");
            let _ = stream.write_all(response.as_bytes());
        }
    });
    addr
}

#[test]
fn tcp_success_prints_the_connect_and_exits_0() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let out = hopwatch(&["probe", "tcp", &addr]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    assert!(stdout(&out).contains("success"), "{}", stdout(&out));

    let out = hopwatch(&["probe", "tcp", &addr, "--json"]);
    assert_eq!(out.status.code(), Some(0));
    let json: serde_json::Value = serde_json::from_str(stdout(&out).trim()).unwrap();
    assert_eq!(json["address"], addr.as_str());
    assert_eq!(json["result"], "success");
    assert!(json["duration_seconds"].as_f64().unwrap() > 0.0);
}

#[test]
fn tcp_refused_exits_1_with_the_reason() {
    let addr = closed_port().to_string();
    let out = hopwatch(&["probe", "tcp", &addr, "--json"]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let json: serde_json::Value = serde_json::from_str(stdout(&out).trim()).unwrap();
    assert_eq!(json["result"], "refused");
}

#[test]
fn tcp_usage_errors_exit_2() {
    for args in [
        &["probe", "tcp", "not-an-address"][..],
        &["probe", "tcp", "127.0.0.1:1", "--timeout-seconds", "x"],
    ] {
        let out = hopwatch(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
    }
}

#[test]
fn http_reports_status_and_phases() {
    let addr = http_server("HTTP/1.1 200 OK", 1);
    let url = format!("http://shop.example.test:{}/healthz", addr.port());
    let connect_to = addr.ip().to_string();
    let out = hopwatch(&["probe", "http", &url, "--connect-to", &connect_to, "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    let json: serde_json::Value = serde_json::from_str(stdout(&out).trim()).unwrap();
    assert_eq!(json["result"], "success", "{json}");
    assert_eq!(json["status"], 200, "{json}");
}

#[test]
fn http_unexpected_status_exits_1() {
    let addr = http_server("HTTP/1.1 503 Service Unavailable", 1);
    let url = format!("http://{addr}/");
    let out = hopwatch(&["probe", "http", &url]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(stdout(&out).contains("503"), "{}", stdout(&out));
}

#[test]
fn http_usage_errors_exit_2() {
    let missing = "/nonexistent/hopwatch-ca.pem";
    let cases: [&[&str]; 3] = [
        &["probe", "http", "ftp://example.test/"],
        &[
            "probe",
            "http",
            "https://example.test/",
            "--ca-file",
            missing,
        ],
        &[
            "probe",
            "http",
            "https://example.test/",
            "--connect-to",
            "not-an-ip",
        ],
    ];
    for args in cases {
        let out = hopwatch(args);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
