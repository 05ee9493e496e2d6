//! Server-side encryption through the gateway's S3 API: SSE-C, SSE-S3 (the master key) and
//! SSE-KMS (a keyring file), put whole and in parts, read whole and in ranges, copied between
//! encryptions, with wrong and missing keys refused (`s3/encryption_checks.py`, boto3), and
//! aws-cli's `--sse-c` round trip; the nodes' files never hold the plaintext; SSE-S3 objects
//! read again after the gateway restarts with its master key, and are refused without it; the
//! CLI and the console refuse to hand out an encrypted object's ciphertext as its bytes.

use std::fs;
use std::path::Path;

use bigfs_tests::s3::aws_command;
use bigfs_tests::{http_get, pseudo_random, Cluster, Gateway, MIB, S3_ACCESS_KEY, S3_SECRET_KEY};

use crate::s;
use crate::s3::run_boto3_checks;

const CHECKS: &str = include_str!("s3/encryption_checks.py");

/// In every 4 KiB of the objects the checks store.
const MARKER: &str = "BIGFS-SSE-PLAINTEXT-MARKER-7f3a";

/// Runs the checks' `phase` against `gateway`.
fn checks(cluster: &Cluster, gateway: &Gateway, phase: &str) {
    run_boto3_checks(
        cluster,
        gateway,
        "encryption_checks.py",
        CHECKS,
        &[phase, MARKER],
    );
}

/// How many of the nodes' files hold `needle` somewhere in their bytes.
fn files_holding(cluster: &Cluster, needle: &[u8]) -> usize {
    fn walk(dir: &Path, needle: &[u8], found: &mut usize) {
        for entry in fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, needle, found);
            } else if let Ok(bytes) = fs::read(&path) {
                if bytes.windows(needle.len()).any(|w| w == needle) {
                    *found += 1;
                }
            }
        }
    }
    let mut found = 0;
    for i in 0..cluster.node_count() {
        walk(&cluster.root().join(cluster.node_id(i)), needle, &mut found);
    }
    found
}

#[test]
fn encrypted_objects_round_trip_and_never_reach_the_nodes_in_the_clear() {
    let cluster = Cluster::start(3);
    let master = cluster.root().join("sse-master-key");
    fs::write(&master, pseudo_random(7, 32)).unwrap();
    let named = cluster.root().join("sse-kms-keys");
    let hex: String = pseudo_random(8, 32)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    fs::write(&named, format!("testkey-1 {hex}\n")).unwrap();
    let flags = [
        "--sse-master-key-file",
        s(&master),
        "--sse-kms-keys",
        s(&named),
    ];
    let mut gateway = Gateway::start_s3_with(&cluster, &flags);
    checks(&cluster, &gateway, "encrypted");

    // The CLI and the console refuse an encrypted object rather than hand out its ciphertext
    // as the file; nothing is written locally.
    let dir = tempfile::tempdir().unwrap();
    let cipher = dir.path().join("cipher");
    let out = cluster.bigfs(["get", "/enc/s3/small", s(&cipher)]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("stored encrypted by the S3 gateway"),
        "bigfs get of an SSE-S3 object: {stderr}"
    );
    assert!(!cipher.exists(), "bigfs get wrote {cipher:?}");
    let console = http_get(&format!(
        "{}/api/download?path=%2Fenc%2Fs3%2Fsmall",
        gateway.url()
    ));
    assert_eq!(
        console.status,
        409,
        "{}",
        String::from_utf8_lossy(&console.body)
    );

    // aws-cli's SSE-C: a 20 MiB upload goes in parts, each with the key.
    let key = dir.path().join("key");
    fs::write(&key, pseudo_random(9, 32)).unwrap();
    let local = dir.path().join("big");
    let mut big = pseudo_random(10, 20 * MIB);
    for block in big.chunks_mut(4096) {
        block[..MARKER.len()].copy_from_slice(MARKER.as_bytes());
    }
    fs::write(&local, &big).unwrap();
    let key_arg = format!("fileb://{}", s(&key));
    let sse_c = ["--sse-c", "AES256", "--sse-c-key", key_arg.as_str()];
    let aws = |args: &[&str]| {
        let out = aws_command(&gateway.s3_url(), S3_ACCESS_KEY, S3_SECRET_KEY)
            .args(args)
            .output()
            .expect("run aws");
        assert!(
            out.status.success(),
            "aws {args:?}: {}\ngateway log:\n{}",
            String::from_utf8_lossy(&out.stderr),
            gateway.log_tail()
        );
    };
    aws(&[&["s3", "cp", s(&local), "s3://enc/cli/big"], &sse_c[..]].concat());
    let back = dir.path().join("back");
    aws(&[&["s3", "cp", "s3://enc/cli/big", s(&back)], &sse_c[..]].concat());
    assert!(fs::read(&back).unwrap() == big, "aws-cli read other bytes");

    // Every object so far holds the marker hundreds of times, and is encrypted: no node's
    // file holds it. Once plain objects are stored, they do (the search finds what is there).
    assert_eq!(files_holding(&cluster, MARKER.as_bytes()), 0);
    checks(&cluster, &gateway, "plain");
    assert!(files_holding(&cluster, MARKER.as_bytes()) > 0);

    // A restarted gateway with the same master key reads SSE-S3 objects again; one without
    // any key refuses them (501), and refuses new ones rather than store them in the clear.
    gateway.kill();
    let gateway = Gateway::start_s3_with(&cluster, &flags);
    checks(&cluster, &gateway, "reread");
    drop(gateway);
    let gateway = Gateway::start_s3(&cluster);
    checks(&cluster, &gateway, "no-keys");
    cluster.check_logs();
}
