//! Configuration reload: on SIGHUP, and when the config file's content changes.
//!
//! The file is polled every [`POLL_INTERVAL`] and its content compared with the last content
//! seen. Comparing content rather than modification times also catches a Kubernetes ConfigMap
//! update, which swaps a symlink to a new directory and leaves the old file untouched.

use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio::time::{Interval, MissedTickBehavior};

use crate::config::{Config, ConfigError};

/// How often the config file is read to look for a change.
pub const POLL_INTERVAL: Duration = Duration::from_secs(2);

/// How long a file seen changing is left alone before it is read for good. A file rewritten
/// in place is empty or half-written for a moment, and an empty file is a valid config (one
/// without targets), which would stop every probe and drop its series.
pub const SETTLE: Duration = Duration::from_millis(200);

/// A config file and the content last seen in it.
#[derive(Debug)]
pub struct ConfigFile {
    path: PathBuf,
    /// The text last read, or the error reading it gave; `None` before the first read.
    last: Option<Result<String, String>>,
}

impl ConfigFile {
    /// Watches `path`, whose content is now running as `running`. If the file already holds
    /// something else (it changed since it was loaded), the first [`ConfigFile::check`]
    /// reports it. `listen` is left out of the comparison: it may be overridden on the command
    /// line, and a reload cannot change it anyway.
    pub fn new(path: &Path, running: &Config) -> ConfigFile {
        let mut file = ConfigFile {
            path: path.to_path_buf(),
            last: None,
        };
        // Config files are small and local: a blocking read is shorter than a thread hop.
        if let Ok(text) = std::fs::read_to_string(path) {
            let parsed = Config::parse(&text, &file.origin());
            let same = parsed.is_ok_and(|c| {
                Config {
                    listen: running.listen,
                    ..c
                } == *running
            });
            if same {
                file.last = Some(Ok(text));
            }
        }
        file
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reads the file. `None` when its content is the same as last time and `force` is false;
    /// otherwise the config it now holds, or why it cannot be used. A file that stays broken
    /// is reported once, not on every poll.
    pub fn check(&mut self, force: bool) -> Option<Result<Config, ConfigError>> {
        let now = std::fs::read_to_string(&self.path);
        let seen = seen(&now);
        if !force && self.last.as_ref() == Some(&seen) {
            return None;
        }
        self.last = Some(seen);
        Some(match now {
            Ok(text) => Config::parse(&text, &self.origin()),
            Err(err) => Err(ConfigError::io(&self.path, &err)),
        })
    }

    /// Whether the file holds something else than when last checked.
    pub fn changed(&self) -> bool {
        self.last.as_ref() != Some(&seen(&std::fs::read_to_string(&self.path)))
    }

    fn origin(&self) -> String {
        self.path.display().to_string()
    }
}

/// A read of the file in a form that can be compared with the next one.
fn seen(read: &std::io::Result<String>) -> Result<String, String> {
    read.as_ref().cloned().map_err(|err| err.to_string())
}

/// Why a reload was attempted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    Hangup,
    FileChanged,
}

impl Trigger {
    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::Hangup => "SIGHUP",
            Trigger::FileChanged => "file change",
        }
    }
}

/// Waits for SIGHUP and for changes of the config file, if there is one.
pub struct Reloader {
    file: Option<ConfigFile>,
    hangup: Signal,
    poll: Interval,
}

impl Reloader {
    /// Installs the SIGHUP handler. Without a file (the embedded default config is running),
    /// SIGHUP is logged and otherwise ignored; it must still be handled, or it would end the
    /// process.
    pub fn new(file: Option<ConfigFile>) -> std::io::Result<Reloader> {
        let hangup = signal(SignalKind::hangup())?;
        let mut poll = tokio::time::interval(POLL_INTERVAL);
        poll.set_missed_tick_behavior(MissedTickBehavior::Delay);
        Ok(Reloader { file, hangup, poll })
    }

    /// The next config to apply, or to reject. Cancel-safe: it can lose a `select!`.
    pub async fn next(&mut self) -> (Trigger, Result<Config, ConfigError>) {
        loop {
            let trigger = tokio::select! {
                _ = self.hangup.recv() => Trigger::Hangup,
                _ = self.poll.tick() => Trigger::FileChanged,
            };
            let Some(file) = self.file.as_mut() else {
                if trigger == Trigger::Hangup {
                    tracing::info!("SIGHUP ignored: the embedded default config is running");
                }
                continue;
            };
            let forced = trigger == Trigger::Hangup;
            if !forced {
                if !file.changed() {
                    continue;
                }
                tokio::time::sleep(SETTLE).await;
            }
            if let Some(result) = file.check(forced) {
                let path = file.path().display();
                tracing::info!("reloading {path} on {}", trigger.as_str());
                return (trigger, result);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::fs;

    use super::*;

    /// A temporary directory removed on drop.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new(name: &str) -> TempDir {
            let dir = std::env::temp_dir().join(format!("hopwatch-{name}-{}", std::process::id()));
            let _ = fs::remove_dir_all(&dir);
            fs::create_dir_all(&dir).unwrap();
            TempDir(dir)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    fn config_text(names: &[&str]) -> String {
        let mut text = "listen: 127.0.0.1:0\ndns:\n".to_string();
        for name in names {
            text.push_str(&format!("  - name: {name}\n    server: 127.0.0.1:5353\n"));
        }
        text
    }

    fn write(path: &Path, text: &str) -> Config {
        fs::write(path, text).unwrap();
        Config::load(path).unwrap_or_else(|err| panic!("{err}"))
    }

    #[test]
    fn reports_each_new_content_once() {
        let dir = TempDir::new("reload-content");
        let path = dir.0.join("config.yaml");
        let running = write(&path, &config_text(&["web"]));
        let mut file = ConfigFile::new(&path, &running);
        assert_eq!(file.check(false), None, "unchanged since loaded");

        let two = write(&path, &config_text(&["web", "api"]));
        assert_eq!(file.check(false), Some(Ok(two.clone())));
        assert_eq!(file.check(false), None);
        assert_eq!(
            file.check(true),
            Some(Ok(two)),
            "SIGHUP rereads the same content"
        );

        fs::write(&path, "dns: [").unwrap();
        let err = file.check(false).unwrap().unwrap_err();
        assert!(
            err.to_string().starts_with(&format!("{}:", path.display())),
            "{err}"
        );
        assert_eq!(file.check(false), None, "a broken file is reported once");

        fs::remove_file(&path).unwrap();
        let err = file.check(false).unwrap().unwrap_err();
        assert!(err.to_string().contains("cannot read"), "{err}");
        assert_eq!(file.check(false), None);
    }

    #[test]
    fn a_file_changed_since_it_was_loaded_is_reported_at_once() {
        let dir = TempDir::new("reload-early");
        let path = dir.0.join("config.yaml");
        let running = write(&path, &config_text(&["web"]));
        let newer = write(&path, &config_text(&["api"]));
        let mut file = ConfigFile::new(&path, &running);
        assert_eq!(file.check(false), Some(Ok(newer)));
    }

    #[test]
    fn a_listen_address_overridden_on_the_command_line_is_no_change() {
        let dir = TempDir::new("reload-listen");
        let path = dir.0.join("config.yaml");
        let mut running = write(&path, &config_text(&["web"]));
        running.listen = "127.0.0.1:9999".parse().unwrap();
        let mut file = ConfigFile::new(&path, &running);
        assert_eq!(file.check(false), None);
    }

    #[tokio::test]
    async fn sighup_rereads_the_file() {
        let dir = TempDir::new("reload-hup");
        let path = dir.0.join("config.yaml");
        let running = write(&path, &config_text(&["web"]));
        let mut reloader = Reloader::new(Some(ConfigFile::new(&path, &running))).unwrap();
        let pid = std::process::id().to_string();
        let status = std::process::Command::new("kill")
            .args(["-HUP", &pid])
            .status();
        assert!(
            status.unwrap().success(),
            "kill -HUP failed; install procps"
        );

        let (trigger, result) = reloader.next().await;
        assert_eq!((trigger, result), (Trigger::Hangup, Ok(running)));
    }

    #[tokio::test(start_paused = true)]
    async fn a_changed_file_is_picked_up_by_polling() {
        let dir = TempDir::new("reload-poll");
        let path = dir.0.join("config.yaml");
        let running = write(&path, &config_text(&["web"]));
        let mut reloader = Reloader::new(Some(ConfigFile::new(&path, &running))).unwrap();
        let quiet = tokio::time::timeout(Duration::from_millis(100), reloader.next()).await;
        assert!(
            quiet.is_err(),
            "nothing to report while the file is unchanged"
        );
        let newer = write(&path, &config_text(&["web", "api"]));
        let changed = tokio::time::Instant::now();

        let (trigger, result) = reloader.next().await;

        assert_eq!((trigger, result), (Trigger::FileChanged, Ok(newer)));
        let settled = POLL_INTERVAL - Duration::from_millis(100) + SETTLE;
        assert_eq!(changed.elapsed(), settled);
    }
}
