//! The servers the lab benchmarks measure against, besides Knot and nginx (from the test
//! support): blackbox_exporter from Debian, a TCP acceptor, and pinning processes to a core.
//! Every child is killed by its PID when its guard drops.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Where Debian's `prometheus-blackbox-exporter` package puts the binary.
const BLACKBOX: &str = "/usr/bin/prometheus-blackbox-exporter";
const BLACKBOX_INSTALL: &str = "apt-get install prometheus-blackbox-exporter \
    (benches/run installs it with the packaged service kept from starting)";

/// A child process, killed by PID and reaped on drop.
pub struct Guard(pub Child);

impl Guard {
    pub fn pid(&self) -> u32 {
        self.0.id()
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A `Command` that runs `program` pinned to `core` with taskset(1).
pub fn pinned(core: usize, program: &Path) -> Command {
    let mut cmd = Command::new("taskset");
    cmd.arg("-c").arg(core.to_string()).arg(program);
    cmd
}

/// Pins every thread of a running process to `core`.
pub fn pin_pid(pid: u32, core: usize) {
    let status = Command::new("taskset")
        .args(["-a", "-p", "-c", &core.to_string(), &pid.to_string()])
        .stdout(Stdio::null())
        .status()
        .unwrap_or_else(|e| panic!("cannot run taskset ({e}): apt-get install util-linux"));
    assert!(status.success(), "taskset -p {pid} failed: {status}");
}

/// The PID of the process whose command line contains `needle`.
pub fn find_pid(needle: &str) -> Option<u32> {
    std::fs::read_dir("/proc")
        .ok()?
        .flatten()
        .find_map(|entry| {
            let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
            let cmdline = std::fs::read(entry.path().join("cmdline")).ok()?;
            String::from_utf8_lossy(&cmdline)
                .contains(needle)
                .then_some(pid)
        })
}

/// A running blackbox_exporter with the lab's modules.
pub struct Blackbox {
    pub addr: SocketAddr,
    pub version: String,
    guard: Guard,
}

impl Blackbox {
    /// Starts blackbox_exporter pinned to `core`, with `modules` (YAML under `modules:`)
    /// written to `dir`, and waits until it answers.
    pub fn start(dir: &Path, modules: &str, core: usize) -> Blackbox {
        assert!(
            Path::new(BLACKBOX).is_file(),
            "{BLACKBOX} missing: {BLACKBOX_INSTALL}"
        );
        let config = dir.join("blackbox.yml");
        std::fs::write(&config, format!("modules:\n{modules}")).expect("write blackbox.yml");
        let addr = crate::common::free_loopback_port();
        let log = std::fs::File::create(dir.join("blackbox.log")).expect("create blackbox.log");
        let child = pinned(core, Path::new(BLACKBOX))
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--web.listen-address={addr}"))
            .arg("--log.level=warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {BLACKBOX}: {e}"));
        let guard = Guard(child);
        wait_http(addr, "/-/healthy", &dir.join("blackbox.log"));
        Blackbox {
            addr,
            version: blackbox_version(),
            guard,
        }
    }

    /// The PID to read CPU time from (taskset execs, so it is blackbox's own).
    pub fn pid(&self) -> u32 {
        self.guard.pid()
    }

    /// The `/probe` path for `module` and `target`.
    pub fn path(module: &str, target: &str) -> String {
        format!("/probe?module={module}&target={}", encode(target))
    }
}

fn blackbox_version() -> String {
    let out = Command::new(BLACKBOX).arg("--version").output();
    let text = out.map_or_else(
        |_| String::new(),
        |o| {
            let mut all = String::from_utf8_lossy(&o.stdout).to_string();
            all.push_str(&String::from_utf8_lossy(&o.stderr));
            all
        },
    );
    text.lines()
        .next()
        .and_then(|l| l.split_whitespace().nth(2))
        .unwrap_or("unknown")
        .to_string()
}

/// Percent-encodes what a URL query value cannot hold as is.
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Waits up to 15 s until `GET path` on `addr` answers 200.
fn wait_http(addr: SocketAddr, path: &str, log: &Path) {
    let give_up = Instant::now() + Duration::from_secs(15);
    loop {
        if let Ok(mut conn) = HttpConn::open(addr)
            && conn.get(path).is_ok_and(|(code, _)| code == 200)
        {
            return;
        }
        assert!(
            Instant::now() < give_up,
            "{addr} did not answer {path} within 15 s:\n{}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A blocking HTTP/1.1 keep-alive connection: the load generator's client.
pub struct HttpConn {
    addr: SocketAddr,
    reader: BufReader<TcpStream>,
}

impl HttpConn {
    pub fn open(addr: SocketAddr) -> std::io::Result<HttpConn> {
        let stream = TcpStream::connect(addr)?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(Duration::from_secs(30)))?;
        Ok(HttpConn {
            addr,
            reader: BufReader::new(stream),
        })
    }

    /// `GET path`: the status code and the body (Content-Length or chunked).
    pub fn get(&mut self, path: &str) -> std::io::Result<(u16, String)> {
        let request = format!("GET {path} HTTP/1.1\r\nHost: {}\r\n\r\n", self.addr);
        self.reader.get_mut().write_all(request.as_bytes())?;
        let mut line = String::new();
        self.reader.read_line(&mut line)?;
        let code = line
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .ok_or_else(|| std::io::Error::other(format!("bad status line {line:?}")))?;
        let (mut length, mut chunked) = (None, false);
        loop {
            line.clear();
            self.reader.read_line(&mut line)?;
            let header = line.trim_end();
            if header.is_empty() {
                break;
            }
            let lower = header.to_ascii_lowercase();
            if let Some(v) = lower.strip_prefix("content-length:") {
                length = v.trim().parse().ok();
            }
            chunked |= lower.starts_with("transfer-encoding:") && lower.contains("chunked");
        }
        let body = if chunked {
            self.chunked_body()?
        } else {
            let mut body = vec![0; length.unwrap_or(0)];
            self.reader.read_exact(&mut body)?;
            body
        };
        Ok((code, String::from_utf8_lossy(&body).into_owned()))
    }

    fn chunked_body(&mut self) -> std::io::Result<Vec<u8>> {
        let mut body = Vec::new();
        let mut line = String::new();
        loop {
            line.clear();
            self.reader.read_line(&mut line)?;
            let size = usize::from_str_radix(line.trim(), 16)
                .map_err(|_| std::io::Error::other(format!("bad chunk size {line:?}")))?;
            let mut chunk = vec![0; size + 2];
            self.reader.read_exact(&mut chunk)?;
            if size == 0 {
                return Ok(body);
            }
            body.extend_from_slice(&chunk[..size]);
        }
    }
}

/// The value of the sample `name` (with its labels, exactly as exposed) in an exposition.
pub fn sample(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
}

/// Listening ports of the acceptor. Each destination has its own ephemeral ports, and a port
/// is only reused a second after its connection closed (`tcp_tw_reuse`), so one destination
/// tops out near 28,000 connects a second; connect loops spread over these.
pub const ACCEPTOR_PORTS: usize = 32;

/// A TCP acceptor in a child process of its own, pinned to `core`: accepts and closes as fast
/// as it can, so connect probes measure the client side only.
pub struct Acceptor {
    pub addrs: Vec<SocketAddr>,
    _guard: Guard,
}

impl Acceptor {
    pub fn start(exe: &Path, core: usize) -> Acceptor {
        let mut child = pinned(core, exe)
            .arg("acceptor")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start the acceptor: {e}"));
        let stdout = child.stdout.take().expect("piped stdout");
        let guard = Guard(child);
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("the acceptor prints its address");
        let addrs = parse_addrs(&line);
        Acceptor {
            addrs,
            _guard: guard,
        }
    }

    /// The first listening address.
    pub fn addr(&self) -> SocketAddr {
        self.addrs[0]
    }
}

/// `ADDR,ADDR,…`
pub fn parse_addrs(list: &str) -> Vec<SocketAddr> {
    list.trim()
        .split(',')
        .map(|a| a.parse().expect("an acceptor address"))
        .collect()
}

/// The acceptor's own main: prints its addresses on one line, then accepts and drops on every
/// one of them until killed.
pub fn acceptor_main() {
    let listeners: Vec<TcpListener> = (0..ACCEPTOR_PORTS)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("bind the acceptor"))
        .collect();
    let addrs: Vec<String> = listeners
        .iter()
        .map(|l| l.local_addr().expect("local address").to_string())
        .collect();
    println!("{}", addrs.join(","));
    let _ = std::io::stdout().flush();
    let threads: Vec<_> = listeners
        .into_iter()
        .map(|listener| {
            std::thread::spawn(move || {
                for conn in listener.incoming() {
                    drop(conn);
                }
            })
        })
        .collect();
    for thread in threads {
        let _ = thread.join();
    }
}

/// This binary, to start helper processes from.
pub fn this_exe() -> PathBuf {
    std::env::current_exe().expect("the bench binary's path")
}
