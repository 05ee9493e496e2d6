//! Finding the binaries under test, building them first so that a test never runs stale ones.
//!
//! `cargo test -p bigfs-tests` only builds this package and its dependencies, and the servers are
//! not dependencies (they are run, not linked). So once per test process the harness runs
//! `cargo build -p bigfs-meta -p bigfs-node -p bigfs-client -p bigfs-gateway --bins --features
//! bigfs-node/failpoints` with the same profile and target directory as the running test
//! executable, then uses the binaries next to it. Cargo releases its build lock while tests run,
//! so the nested build does not deadlock.
//!
//! The `failpoints` feature compiles the `fail` crate's failpoints into the storage node; they
//! stay inert unless a node is started with `FAILPOINTS=…` (see
//! [`crate::ClusterBuilder::failpoints`]). Note that a plain `cargo build` afterwards rebuilds
//! `bigfs-node` without them (and the next test run rebuilds it with them).
//!
//! `BIGFS_BIN_DIR=/some/dir` skips the build and uses the binaries in that directory (the
//! failpoint tests then need a `bigfs-node` built with the feature).

use std::env;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// Name of the metadata server binary.
pub const META: &str = "bigfs-meta";
/// Name of the storage node binary.
pub const NODE: &str = "bigfs-node";
/// Name of the CLI binary.
pub const CLI: &str = "bigfs";
/// Name of the gateway binary (the web console).
pub const GATEWAY: &str = "bigfs-gateway";

/// The directory holding the four binaries, built (once per process) if needed.
///
/// Panics with the reason if the build fails or a binary is missing; the outcome is cached, so
/// every test of the process fails the same way without rebuilding.
pub fn bin_dir() -> &'static Path {
    static DIR: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    match DIR.get_or_init(locate) {
        Ok(dir) => dir,
        Err(e) => panic!("{e}"),
    }
}

/// The full path of binary `name` (one of [`META`], [`NODE`], [`CLI`], [`GATEWAY`]).
pub fn bin(name: &str) -> PathBuf {
    bin_dir().join(name)
}

fn locate() -> Result<PathBuf, String> {
    let dir = match env::var_os("BIGFS_BIN_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => build()?,
    };
    for name in [META, NODE, CLI, GATEWAY] {
        let path = dir.join(name);
        if !path.is_file() {
            return Err(format!(
                "binary {} not found (set BIGFS_BIN_DIR to a directory holding {META}, {NODE}, {CLI} \
                 and {GATEWAY})",
                path.display()
            ));
        }
    }
    Ok(dir)
}

/// Builds the binaries into the profile directory of the running test executable and returns it.
fn build() -> Result<PathBuf, String> {
    let exe = env::current_exe().map_err(|e| format!("cannot find the test executable: {e}"))?;
    // The test executable is TARGET/PROFILE/deps/cluster-HASH; binaries go to TARGET/PROFILE.
    let mut profile_dir = exe
        .parent()
        .ok_or_else(|| format!("test executable {} has no parent", exe.display()))?
        .to_path_buf();
    if profile_dir.ends_with("deps") {
        profile_dir.pop();
    }
    let profile_name = profile_dir
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| {
            format!(
                "cannot tell the cargo profile from {}",
                profile_dir.display()
            )
        })?;
    // Cargo names the output directory of the `dev` profile "debug".
    let profile = if profile_name == "debug" {
        "dev"
    } else {
        profile_name
    };
    let target_dir = profile_dir
        .parent()
        .ok_or_else(|| format!("{} has no parent", profile_dir.display()))?;

    let cargo = env::var_os("CARGO")
        .or_else(|| option_env!("CARGO").map(OsString::from))
        .unwrap_or_else(|| OsString::from("cargo"));
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the tests package lives inside the workspace");
    let mut cmd = Command::new(&cargo);
    cmd.current_dir(workspace)
        .args([
            "build",
            "-p",
            "bigfs-meta",
            "-p",
            "bigfs-node",
            "-p",
            "bigfs-client",
            "-p",
            "bigfs-gateway",
            "--bins",
            "--features",
            "bigfs-node/failpoints",
        ])
        .arg("--profile")
        .arg(profile)
        .arg("--target-dir")
        .arg(target_dir);
    eprintln!("bigfs-tests: building the binaries: {cmd:?}");
    let status = cmd
        .status()
        .map_err(|e| format!("cannot run {}: {e}", Path::new(&cargo).display()))?;
    if !status.success() {
        return Err(format!(
            "building the BigFS binaries failed ({status}); see cargo's output above, \
             or set BIGFS_BIN_DIR to use prebuilt binaries"
        ));
    }
    Ok(profile_dir)
}
