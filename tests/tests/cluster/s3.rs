//! The S3 API of `bigfs-gateway`, driven by the clients people use: aws-cli and boto3 (from
//! PyPI; `scripts/test.sh` installs them when missing). Each test starts a cluster and a
//! gateway with `--s3-listen` and a test key pair, and checks what the clients read against
//! what they wrote, byte for byte, and against what the `bigfs` CLI sees.

use std::fs;
use std::path::Path;
use std::process::{Command, Output};

use bigfs_tests::s3::aws_command;
use bigfs_tests::{pseudo_random, Cluster, Gateway, KIB, MIB, S3_ACCESS_KEY, S3_SECRET_KEY};

use crate::s;

/// The boto3 checks: buckets, metadata and ETags, ranges at chunk edges, conditional GETs,
/// copies, multipart (UploadPartCopy, ListParts, Complete, Abort, part-size and order errors),
/// listing (V1, V2, delimiter, pages of one, start-after), directory markers, DeleteObjects,
/// a presigned GET, and a wrong signature and an unknown key refused.
const BOTO3_CHECKS: &str = include_str!("s3/boto3_checks.py");

fn aws(gateway: &Gateway, args: &[&str]) -> Output {
    aws_command(&gateway.s3_url(), S3_ACCESS_KEY, S3_SECRET_KEY)
        .args(args)
        .output()
        .expect("run aws (scripts/test.sh installs aws-cli)")
}

/// Runs `aws ARGS`, failing the test with its stderr and the gateway's log if it fails.
fn must_aws(gateway: &Gateway, args: &[&str]) -> String {
    let out = aws(gateway, args);
    assert!(
        out.status.success(),
        "aws {args:?} failed: {}\ngateway log:\n{}",
        String::from_utf8_lossy(&out.stderr),
        gateway.log_tail()
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn write(path: &Path, bytes: &[u8]) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, bytes).unwrap();
}

#[test]
fn boto3_covers_the_core_operations() {
    let cluster = Cluster::start(3);
    let gateway = Gateway::start_s3(&cluster);
    let script = cluster.root().join("boto3_checks.py");
    fs::write(&script, BOTO3_CHECKS).unwrap();
    let out = Command::new("python3")
        .arg(&script)
        .args([
            &gateway.s3_url(),
            S3_ACCESS_KEY,
            S3_SECRET_KEY,
            &cluster.chunk_size().to_string(),
        ])
        .output()
        .expect("run python3");
    assert!(
        out.status.success(),
        "boto3 checks failed:\n{}{}\ngateway log:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        gateway.log_tail()
    );
    // What S3 wrote is what the CLI sees, and the uploads' directory is gone once done.
    let ls = cluster.bigfs(["ls", "/bk3/dir", "--json"]);
    assert!(String::from_utf8_lossy(&ls.stdout).contains("/bk3/dir/obj"));
    let uploads = cluster.bigfs(["ls", "/.bigfs-multipart"]);
    assert!(String::from_utf8_lossy(&uploads.stdout).trim().is_empty());
    cluster.check_logs();
}

#[test]
fn aws_cli_round_trips_objects_listings_and_trees() {
    let cluster = Cluster::start(3);
    let gateway = Gateway::start_s3(&cluster);
    let local = cluster.root().join("local");
    must_aws(&gateway, &["s3", "mb", "s3://bucket"]);
    assert!(must_aws(&gateway, &["s3", "ls"]).contains(" bucket"));

    // 0 B, 2 KiB, 5 MiB and 10 MiB (aws-cli puts that one in parts), under keys with spaces,
    // `&+-é"`, unicode and deep prefixes.
    let objects = [
        ("empty", 0),
        ("two kib.bin", 2 * KIB),
        ("odd &+-é\".bin", 5 * MIB),
        ("日本/深い/a/b/c/d/ten.bin", 10 * MIB),
    ];
    for (i, (key, size)) in objects.iter().enumerate() {
        let data = pseudo_random(i as u64, *size);
        let file = local.join(format!("up{i}"));
        write(&file, &data);
        must_aws(
            &gateway,
            &["s3", "cp", s(&file), &format!("s3://bucket/{key}")],
        );
        let back = local.join(format!("down{i}"));
        must_aws(
            &gateway,
            &["s3", "cp", &format!("s3://bucket/{key}"), s(&back)],
        );
        assert!(
            fs::read(&back).unwrap() == data,
            "{key} came back different"
        );
    }
    let listed = must_aws(&gateway, &["s3", "ls", "--recursive", "s3://bucket"]);
    for (key, _) in &objects {
        assert!(listed.contains(key), "{key} not in:\n{listed}");
    }
    // Pages of one key each still list every key once, in order.
    let paged = must_aws(
        &gateway,
        &[
            "s3api",
            "list-objects-v2",
            "--bucket",
            "bucket",
            "--page-size",
            "1",
            "--query",
            "Contents[].Key",
            "--output",
            "text",
        ],
    );
    let keys: Vec<&str> = paged
        .split(['\t', '\n'])
        .filter(|k| !k.is_empty())
        .collect();
    let mut sorted: Vec<&str> = objects.iter().map(|(k, _)| *k).collect();
    sorted.sort();
    assert_eq!(keys, sorted);
    let top = must_aws(&gateway, &["s3", "ls", "s3://bucket/"]);
    assert!(top.contains("PRE 日本/"), "{top}");

    // A tree synced up and back down is the same tree.
    let tree = local.join("tree");
    for (i, name) in ["a.txt", "sub/b.bin", "sub/deeper/c d.bin"]
        .iter()
        .enumerate()
    {
        write(
            &tree.join(name),
            &pseudo_random(100 + i as u64, (i + 1) * 300 * KIB),
        );
    }
    must_aws(&gateway, &["s3", "sync", s(&tree), "s3://bucket/tree"]);
    let again = local.join("again");
    must_aws(&gateway, &["s3", "sync", "s3://bucket/tree", s(&again)]);
    for name in ["a.txt", "sub/b.bin", "sub/deeper/c d.bin"] {
        assert!(
            fs::read(tree.join(name)).unwrap() == fs::read(again.join(name)).unwrap(),
            "{name}"
        );
    }
    // A second sync finds nothing to send.
    assert_eq!(
        must_aws(&gateway, &["s3", "sync", s(&tree), "s3://bucket/tree"]).trim(),
        ""
    );

    // A bucket goes only once it is empty.
    assert!(!aws(&gateway, &["s3", "rb", "s3://bucket"]).status.success());
    must_aws(&gateway, &["s3", "rm", "--recursive", "s3://bucket"]);
    must_aws(&gateway, &["s3", "rb", "s3://bucket"]);
    assert!(!must_aws(&gateway, &["s3", "ls"]).contains(" bucket"));
    cluster.check_logs();
}
