//! Compiles `proto/bigfs.proto` with protox, so a fresh machine needs nothing but cargo, and
//! records the git commit being built for every binary's `--version` (`BIGFS_GIT_COMMIT`).

use std::path::Path;
use std::process::Command;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto/bigfs.proto");
    let descriptors = protox::compile(["proto/bigfs.proto"], ["proto"])?;
    tonic_prost_build::configure()
        // Chunk payloads are handed from the decoder to disk and to the next hop without a copy.
        .bytes(".bigfs.v1.PutChunkRequest.data")
        .bytes(".bigfs.v1.GetChunkResponse.data")
        .bytes(".bigfs.v1.ChunkData.data")
        .bytes(".bigfs.v1.ChunkRead.data")
        .codec_path("crate::codec::BigfsCodec")
        .compile_fds(descriptors)?;
    let commit = git(&["rev-parse", "--short", "HEAD"]).unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=BIGFS_GIT_COMMIT={commit}");
    watch_head();
    Ok(())
}

/// Makes cargo run this script again when HEAD moves: a commit rewrites the ref HEAD points
/// to (a loose file, or packed-refs once git has packed it), a checkout rewrites HEAD itself.
/// Git names the files, as a worktree keeps its HEAD apart from the shared refs.
fn watch_head() {
    let Some(head) = git(&["rev-parse", "--path-format=absolute", "--git-path", "HEAD"]) else {
        return;
    };
    println!("cargo:rerun-if-changed={head}");
    let Some(branch) = git(&["symbolic-ref", "-q", "HEAD"]) else {
        return; // a detached HEAD holds the commit itself
    };
    for file in [branch.as_str(), "packed-refs"] {
        if let Some(path) = git(&["rev-parse", "--path-format=absolute", "--git-path", file]) {
            if Path::new(&path).exists() {
                println!("cargo:rerun-if-changed={path}");
            }
        }
    }
}

/// What `git ARGS…` prints, trimmed; `None` where git is missing or this is no repository.
fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    let text = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (out.status.success() && !text.is_empty()).then_some(text)
}
