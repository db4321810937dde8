//! Network-namespace labs for integration tests: namespaces, veth pairs, commands and
//! processes inside them, all removed by Drop guards, and this test binary re-run inside one.
//!
//! # Running Rust code inside a namespace
//!
//! Moving a thread into a namespace takes `setns(2)`, which needs `unsafe`, and the crate forbids
//! it. Instead a test re-runs its own binary as
//! `ip netns exec NS <this test binary> --exact <test> --nocapture` with [`ROLE_ENV`] set to a
//! role such as `connect 1000 10.96.0.50:80`. The test's first statement is
//! `if let Some(role) = netns_support::role() { return child(&role); }`, so the copy plays the
//! role instead of building a lab. It reports back by printing lines that start with
//! [`MARKER`] (see [`say`]); libtest's own output around them is ignored.
//!
//! No test is `#[ignore]`d and none can pass by doing nothing: without the variable a test builds
//! its lab and checks what its children printed; a child that prints nothing fails the parent.
//!
//! # Cleanup
//!
//! [`Netns`] deletes its namespace on drop, which destroys every veth end in it too (a veth pair
//! dies with either end). [`NsProcess`] kills its process by PID (SIGKILL) and reaps it on drop,
//! and borrows its `Netns`, so the compiler makes every process end before its namespace goes.
//! Drops also run while a failed assertion unwinds. Only a test binary killed from outside can
//! leave namespaces behind; they are named `hwt-<pid>-<n>-<label>` (`ip netns list`).
//!
//! # What the lab may touch
//!
//! Nothing is created in the root namespace except the namespace names. Labs use 10.0.0.0/8
//! addresses inside namespaces that have no link to the root namespace, so no packet leaves them.
//! Every `ip` and `iptables` command here runs with `-n NS` or under `ip netns exec NS`.

#![allow(
    dead_code,
    reason = "shared by several test binaries; each uses a part"
)]

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Set in a re-run test binary's environment: the role it plays.
pub const ROLE_ENV: &str = "HWT_NETNS_ROLE";

/// Starts every line a child prints for its parent.
pub const MARKER: &str = "HWT-NETNS ";

/// The role this process plays, when it is a test binary re-run inside a namespace.
pub fn role() -> Option<String> {
    std::env::var(ROLE_ENV).ok()
}

/// Prints one line for the parent test to read.
pub fn say(line: &str) {
    println!("{MARKER}{line}");
}

/// What a child said on a line of its stdout. Not always at the line's start: libtest prints
/// `test NAME ... ` without a newline before the test runs.
fn said(line: &str) -> Option<&str> {
    line.find(MARKER).map(|at| &line[at + MARKER.len()..])
}

/// Fails the test unless it runs as root with every `(program, Debian package)` on PATH.
pub fn require_root_and(tools: &[(&str, &str)]) {
    assert!(
        effective_uid() == Some(0),
        "this test builds network namespaces and needs root (CAP_NET_ADMIN): run it as root"
    );
    let missing: Vec<String> = tools
        .iter()
        .filter(|(program, _)| !on_path(program))
        .map(|(program, package)| format!("`{program}` (apt-get install {package})"))
        .collect();
    assert!(
        missing.is_empty(),
        "this test needs {} on PATH",
        missing.join(", ")
    );
}

fn effective_uid() -> Option<u32> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("Uid:"))?;
    line.split_whitespace().nth(2)?.parse().ok()
}

fn on_path(program: &str) -> bool {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path).any(|dir| dir.join(program).is_file())
}

/// Names of the network namespaces `ip netns list` shows.
pub fn namespaces() -> Vec<String> {
    let out = run(Command::new("ip").args(["netns", "list"]), None);
    out.lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_string)
        .collect()
}

/// A command line split at spaces; no argument in these labs contains one.
fn words(command_line: &str) -> Vec<&str> {
    command_line.split_whitespace().collect()
}

/// Runs a command to completion; panics with its stderr if it fails. Returns stdout.
fn run(command: &mut Command, input: Option<&str>) -> String {
    let shown = format!("{command:?}");
    let mut child = command
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {shown}: {e}"));
    if let (Some(text), Some(mut stdin)) = (input, child.stdin.take()) {
        stdin
            .write_all(text.as_bytes())
            .unwrap_or_else(|e| panic!("cannot feed {shown}: {e}"));
    }
    let out = child
        .wait_with_output()
        .unwrap_or_else(|e| panic!("cannot wait for {shown}: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{shown} failed ({}):\n{stderr}{stdout}",
        out.status
    );
    stdout
}

/// A network namespace this test created; deleted on drop.
#[derive(Debug)]
pub struct Netns {
    name: String,
}

impl Netns {
    /// Creates `hwt-<pid>-<n>-<label>`, with its loopback up.
    pub fn new(label: &str) -> Netns {
        static COUNT: AtomicUsize = AtomicUsize::new(0);
        let n = COUNT.fetch_add(1, Ordering::Relaxed);
        let name = format!("hwt-{}-{n}-{label}", std::process::id());
        run(Command::new("ip").args(["netns", "add", &name]), None);
        let ns = Netns { name };
        ns.ip("link set lo up");
        ns
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// `ip -n NS <args>`.
    pub fn ip(&self, args: &str) {
        run(
            Command::new("ip")
                .args(["-n", &self.name])
                .args(words(args)),
            None,
        );
    }

    /// Runs a command line inside the namespace to completion and returns its stdout.
    pub fn exec(&self, command_line: &str) -> String {
        run(&mut self.command(&words(command_line)), None)
    }

    /// Like [`Netns::exec`], with `input` on the program's stdin.
    pub fn exec_with_input(&self, command_line: &str, input: &str) -> String {
        run(&mut self.command(&words(command_line)), Some(input))
    }

    /// Loads iptables-restore text (`*filter … COMMIT`) into the namespace's tables.
    pub fn iptables_restore(&self, rules: &str) {
        self.exec_with_input("iptables-restore -w --noflush", rules);
    }

    /// Sets a sysctl of this namespace, e.g. `net.ipv4.icmp_ratelimit`. Writing /proc/sys/net
    /// from inside the namespace reaches the namespace's own copy.
    pub fn sysctl(&self, key: &str, value: &str) {
        let path = format!("/proc/sys/{}", key.replace('.', "/"));
        self.exec_with_input(&format!("tee {path}"), value);
    }

    /// `ip netns exec NS <argv>`: `ip` enters the namespace, then execs the program.
    fn command(&self, argv: &[&str]) -> Command {
        let mut command = Command::new("ip");
        command.args(["netns", "exec", &self.name]).args(argv);
        command
    }

    /// Starts a command line inside the namespace; it is killed when the guard drops.
    pub fn spawn(&self, command_line: &str) -> NsProcess<'_> {
        NsProcess::start(self, self.command(&words(command_line)))
    }

    /// Starts this test binary inside the namespace as `role` (see the module docs) and waits
    /// until it says `ready`.
    pub fn spawn_self(&self, test: &str, role: &str) -> NsProcess<'_> {
        let mut process = NsProcess::start(self, self.self_command(test, role));
        let line = process.next_line(Duration::from_secs(10));
        assert_eq!(line, "ready", "{} in {} did not get ready", role, self.name);
        process
    }

    /// Runs this test binary inside the namespace as `role` and returns the lines it said.
    pub fn run_self(&self, test: &str, role: &str, timeout: Duration) -> Vec<String> {
        let lines = NsProcess::start(self, self.self_command(test, role)).finish(timeout);
        assert!(
            !lines.is_empty(),
            "`{role}` in {} said nothing: is `{test}` the name of the test function that \
             calls netns_support::role()?",
            self.name
        );
        lines
    }

    fn self_command(&self, test: &str, role: &str) -> Command {
        let exe = std::env::current_exe().expect("the test binary's path");
        let exe = exe.to_str().expect("a UTF-8 path to the test binary");
        let mut command = self.command(&[exe, "--exact", test, "--nocapture", "--test-threads=1"]);
        command.env(ROLE_ENV, role);
        command
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        // Not `run`: panicking while a failed test unwinds would abort and hide its message.
        match Command::new("ip")
            .args(["netns", "delete", &self.name])
            .output()
        {
            Ok(out) if out.status.success() => {}
            Ok(out) => eprintln!(
                "ip netns delete {}: {}",
                self.name,
                String::from_utf8_lossy(&out.stderr)
            ),
            Err(e) => eprintln!("ip netns delete {}: {e}", self.name),
        }
    }
}

/// One end of a veth pair: (namespace, interface name, address/prefix length).
pub type End<'a> = (&'a Netns, &'a str, &'a str);

/// Joins two namespaces with a veth pair, addressed and up. The pair is created inside `a`
/// with its peer moved straight into `b`, so it never exists in the root namespace.
pub fn veth((a, a_name, a_cidr): End<'_>, (b, b_name, b_cidr): End<'_>) {
    a.ip(&format!(
        "link add {a_name} type veth peer name {b_name} netns {}",
        b.name()
    ));
    for (ns, name, cidr) in [(a, a_name, a_cidr), (b, b_name, b_cidr)] {
        ns.ip(&format!("addr add {cidr} dev {name}"));
        ns.ip(&format!("link set {name} up"));
    }
}

/// A process running inside a [`Netns`]: killed (SIGKILL, by its PID) and reaped on drop.
pub struct NsProcess<'ns> {
    ns: &'ns Netns,
    shown: String,
    child: Child,
    /// Every line the process writes to stdout, read by a thread so the pipe never fills.
    lines: Receiver<String>,
    /// All the process wrote to stderr, once it exits.
    stderr: Option<JoinHandle<String>>,
}

impl<'ns> NsProcess<'ns> {
    fn start(ns: &'ns Netns, mut command: Command) -> NsProcess<'ns> {
        let shown = format!("{command:?}");
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {shown}: {e}"));
        let (tx, lines) = mpsc::channel();
        let stdout = child.stdout.take().expect("piped stdout");
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut stderr_pipe = child.stderr.take().expect("piped stderr");
        let stderr = Some(std::thread::spawn(move || {
            let mut text = String::new();
            let _ = stderr_pipe.read_to_string(&mut text);
            text
        }));
        NsProcess {
            ns,
            shown,
            child,
            lines,
            stderr,
        }
    }

    /// The PID of the process (`ip netns exec` execs the program, so it is the program's).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits for the next line said with [`say`], skipping everything else.
    pub fn next_line(&mut self, timeout: Duration) -> String {
        let until = Instant::now() + timeout;
        loop {
            let left = until.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => match said(&line) {
                    Some(said) => return said.to_string(),
                    None => continue,
                },
                Err(RecvTimeoutError::Timeout) => {
                    panic!("{} said nothing in {timeout:?}", self.shown)
                }
                Err(RecvTimeoutError::Disconnected) => {
                    let stderr = self.stop_and_read_stderr();
                    panic!("{} exited before saying anything:\n{stderr}", self.shown)
                }
            }
        }
    }

    /// Waits for the process to exit and returns the lines it said; panics if it fails or
    /// runs longer than `timeout`.
    pub fn finish(mut self, timeout: Duration) -> Vec<String> {
        let status = self.wait(timeout);
        let stderr = self.stop_and_read_stderr();
        let lines = self.drain(Duration::from_secs(5));
        assert!(
            status.success(),
            "{} failed ({status}):\n{stderr}{}",
            self.shown,
            lines.join("\n")
        );
        lines
            .iter()
            .filter_map(|l| said(l))
            .map(str::to_string)
            .collect()
    }

    /// Every stdout line left once the process has exited, up to the pipe's end.
    fn drain(&self, timeout: Duration) -> Vec<String> {
        let until = Instant::now() + timeout;
        let mut lines = Vec::new();
        loop {
            match self
                .lines
                .recv_timeout(until.saturating_duration_since(Instant::now()))
            {
                Ok(line) => lines.push(line),
                Err(RecvTimeoutError::Disconnected) => return lines,
                Err(RecvTimeoutError::Timeout) => {
                    panic!("{} exited but its stdout stays open", self.shown)
                }
            }
        }
    }

    fn wait(&mut self, timeout: Duration) -> std::process::ExitStatus {
        let until = Instant::now() + timeout;
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) => return status,
                Ok(None) if Instant::now() < until => std::thread::sleep(Duration::from_millis(5)),
                Ok(None) => panic!("{} still runs after {timeout:?}", self.shown),
                Err(e) => panic!("cannot wait for {}: {e}", self.shown),
            }
        }
    }

    /// Ends the process if it still runs and returns all it wrote to stderr.
    fn stop_and_read_stderr(&mut self) -> String {
        self.kill_and_reap();
        self.stderr
            .take()
            .and_then(|h| h.join().ok())
            .unwrap_or_default()
    }

    fn kill_and_reap(&mut self) {
        // A process that already exited is only reaped: its PID may be someone else's now.
        if let Ok(None) = self.child.try_wait()
            && let Err(e) = self.child.kill()
        {
            eprintln!(
                "cannot kill {} (pid {}) in {}: {e}",
                self.shown,
                self.pid(),
                self.ns.name()
            );
        }
        if let Err(e) = self.child.wait() {
            eprintln!("cannot reap {} (pid {}): {e}", self.shown, self.pid());
        }
    }
}

impl Drop for NsProcess<'_> {
    fn drop(&mut self) {
        self.kill_and_reap();
    }
}
