//! Bucket configurations through boto3: each set, read back, refused when S3 would refuse it,
//! kept across a gateway restart and gone with its bucket; CORS answered on the wire; lifecycle
//! rules carried out by a gateway whose lifecycle day is a second; ACLs kept with their owners
//! and what they let unsigned requests read, and only that.

use std::fs;
use std::process::Command;

use bigfs_tests::{Cluster, Gateway, S3_ACCESS_KEY, S3_SECRET_KEY};

/// The boto3 checks, in phases (see its doc).
const BUCKET_CHECKS: &str = include_str!("s3/bucket_checks.py");

/// A second key pair, of the user `other-id`, given in a keys file.
const OTHER_ACCESS_KEY: &str = "OTHERTESTACCESSKEY";
const OTHER_SECRET_KEY: &str = "other-test-secret-key/0123456789";

/// Runs the boto3 checks (written into the cluster's directory) with the gateway's endpoint,
/// the test keys and `args` (the phase first), failing with its output and the gateway's log.
fn boto3(cluster: &Cluster, gateway: &Gateway, args: &[&str]) {
    let path = cluster.root().join("bucket_checks.py");
    fs::write(&path, BUCKET_CHECKS).unwrap();
    let out = Command::new("python3")
        .arg(&path)
        .args([&gateway.s3_url(), S3_ACCESS_KEY, S3_SECRET_KEY])
        .args(args)
        .output()
        .expect("run python3");
    assert!(
        out.status.success(),
        "bucket_checks.py {args:?} failed:\n{}{}\ngateway log:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        gateway.log_tail()
    );
}

#[test]
fn bucket_configurations_survive_restarts_and_go_with_their_bucket() {
    let cluster = Cluster::start(3);
    let mut gateway = Gateway::start_s3(&cluster);
    boto3(&cluster, &gateway, &["set"]);
    gateway.kill();
    let gateway = Gateway::start_s3(&cluster);
    boto3(&cluster, &gateway, &["kept"]);
    boto3(&cluster, &gateway, &["gone"]);
    cluster.check_logs();
}

#[test]
fn lifecycle_rules_expire_objects_and_abort_uploads() {
    let cluster = Cluster::start(3);
    let gateway = Gateway::start_s3_with(&cluster, &["--s3-lifecycle-day", "1s"]);
    boto3(&cluster, &gateway, &["lifecycle"]);
    cluster.check_logs();
}

#[test]
fn acls_let_unsigned_requests_read_only_what_they_grant() {
    let cluster = Cluster::start(3);
    let keys = cluster.root().join("s3-keys");
    fs::write(
        &keys,
        format!("{OTHER_ACCESS_KEY} {OTHER_SECRET_KEY} other-id Other User\n"),
    )
    .unwrap();
    let keys = keys.to_str().expect("temporary paths are UTF-8");
    let gateway = Gateway::start_s3_with(&cluster, &["--s3-keys-file", keys]);
    boto3(
        &cluster,
        &gateway,
        &["acl", OTHER_ACCESS_KEY, OTHER_SECRET_KEY],
    );
    cluster.check_logs();
}
