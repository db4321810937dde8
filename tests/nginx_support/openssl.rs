//! Client certificates for the mTLS tests, made by the real `openssl` command line: a client
//! CA that nginx trusts (`ssl_client_certificate`), a client certificate it signed, and a
//! stranger's certificate signed by another CA. All files land in the lab's directory.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The files of the client PKI.
#[derive(Debug, Clone)]
pub struct ClientPki {
    /// The CA nginx verifies client certificates against, PEM.
    pub ca: PathBuf,
    /// A client certificate `ca` signed, and its key.
    pub cert: PathBuf,
    pub key: PathBuf,
    /// A client certificate signed by a CA nginx does not trust, and its key.
    pub stranger_cert: PathBuf,
    pub stranger_key: PathBuf,
}

impl ClientPki {
    /// Runs openssl in `dir`; fails the test with openssl's output if a step fails.
    pub fn generate(dir: &Path) -> ClientPki {
        let binary = openssl_binary();
        let run = |args: &[&str]| {
            let out = Command::new(&binary)
                .args(args)
                .current_dir(dir)
                .output()
                .unwrap_or_else(|e| panic!("cannot run {}: {e}", binary.display()));
            assert!(
                out.status.success(),
                "openssl {}: {}{}",
                args.join(" "),
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        };
        let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"];
        for (ca, subject) in [
            ("client-ca", "hopwatch client CA"),
            ("stranger-ca", "stranger CA"),
        ] {
            let (key, crt, subj) = (
                format!("{ca}.key"),
                format!("{ca}.pem"),
                format!("/CN={subject}"),
            );
            let mut args = vec!["req", "-x509", "-nodes", "-days", "2"];
            args.extend(ec);
            args.extend(["-keyout", &key, "-out", &crt, "-subj", &subj]);
            run(&args);
        }
        // X.509 v3 with a client-auth usage: `x509 -req` alone makes a v1 certificate, which
        // WebPKI (and so rustls) refuses.
        std::fs::write(
            dir.join("client.ext"),
            "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=clientAuth\n",
        )
        .unwrap();
        for (name, ca) in [("client", "client-ca"), ("stranger", "stranger-ca")] {
            let (key, csr, crt) = (
                format!("{name}.key"),
                format!("{name}.csr"),
                format!("{name}.crt"),
            );
            let subj = format!("/CN=hopwatch {name}");
            let mut args = vec!["req", "-nodes"];
            args.extend(ec);
            args.extend(["-keyout", &key, "-out", &csr, "-subj", &subj]);
            run(&args);
            let (ca_crt, ca_key) = (format!("{ca}.pem"), format!("{ca}.key"));
            run(&[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                &ca_crt,
                "-CAkey",
                &ca_key,
                "-CAcreateserial",
                "-days",
                "2",
                "-extfile",
                "client.ext",
                "-out",
                &crt,
            ]);
        }
        ClientPki {
            ca: dir.join("client-ca.pem"),
            cert: dir.join("client.crt"),
            key: dir.join("client.key"),
            stranger_cert: dir.join("stranger.crt"),
            stranger_key: dir.join("stranger.key"),
        }
    }
}

/// The openssl binary, or a failed test saying what to install.
fn openssl_binary() -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&path).chain(["/usr/bin".into()]) {
        let candidate = dir.join("openssl");
        if candidate.is_file() {
            return candidate;
        }
    }
    panic!("this test needs openssl: apt-get install openssl");
}
