//! Build-time facts for `hopwatch_build_info`: the git revision and the rustc version.
//!
//! The revision is `HOPWATCH_REVISION` when set (an image built from a tarball), else what git
//! says of the checkout, else `unknown`. Only git and rustc are run; nothing is downloaded.

use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=HOPWATCH_REVISION");
    let revision = std::env::var("HOPWATCH_REVISION")
        .ok()
        .filter(|r| !r.trim().is_empty())
        .or_else(git_revision)
        .unwrap_or_else(|| "unknown".to_string());
    println!("cargo:rustc-env=HOPWATCH_REVISION={}", revision.trim());
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".to_string());
    let version = output(&rustc, &["--version"])
        .and_then(|v| v.split_whitespace().nth(1).map(str::to_string))
        .unwrap_or_else(|| "unknown".to_string());
    println!("cargo:rustc-env=HOPWATCH_RUSTC_VERSION={version}");
}

/// The commit checked out, 12 hex digits; rebuilt when HEAD or its branch moves.
fn git_revision() -> Option<String> {
    let revision = output("git", &["rev-parse", "--short=12", "HEAD"])?;
    let mut watched = vec!["HEAD".to_string(), "packed-refs".to_string()];
    watched.extend(output("git", &["symbolic-ref", "-q", "HEAD"]));
    for name in watched {
        // A path that does not exist would rerun this script, and rebuild the crate, every time.
        if let Some(path) = output("git", &["rev-parse", "--git-path", &name])
            && std::path::Path::new(&path).exists()
        {
            println!("cargo:rerun-if-changed={path}");
        }
    }
    println!("cargo:rerun-if-changed=build.rs");
    Some(revision)
}

/// A command's trimmed stdout, when it ran and succeeded.
fn output(program: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(program).args(args).output().ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8(out.stdout).ok()?;
    Some(text.trim().to_string()).filter(|t| !t.is_empty())
}
