//! Running the S3 clients the suites drive (aws-cli, rclone, s3cmd) against an endpoint with a
//! key pair, isolated from whatever the user running the tests configured: no config or
//! credentials file of theirs is read. `scripts/test.sh` installs the clients when missing.

use std::process::Command;

/// `aws --endpoint-url ENDPOINT` with the key pair `access`/`secret` in its environment and
/// the user's aws configuration kept out; add the subcommand's arguments.
pub fn aws_command(endpoint: &str, access: &str, secret: &str) -> Command {
    let mut cmd = Command::new("aws");
    cmd.args(["--endpoint-url", endpoint])
        .env("AWS_ACCESS_KEY_ID", access)
        .env("AWS_SECRET_ACCESS_KEY", secret)
        .env("AWS_DEFAULT_REGION", "us-east-1")
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .env_remove("AWS_ENDPOINT_URL")
        .env_remove("AWS_PROFILE");
    cmd
}

/// `rclone` with a remote named `bigfs` for the endpoint (configured in the environment, no
/// file), failing fast: one try, short timeouts, so that a broken gateway fails the test
/// instead of being retried for minutes.
pub fn rclone_command(endpoint: &str, access: &str, secret: &str) -> Command {
    let mut cmd = Command::new("rclone");
    cmd.args([
        "--config",
        "/dev/null",
        "--retries",
        "1",
        "--low-level-retries",
        "1",
        "--contimeout",
        "5s",
        "--timeout",
        "60s",
    ])
    .env("RCLONE_CONFIG_BIGFS_TYPE", "s3")
    .env("RCLONE_CONFIG_BIGFS_PROVIDER", "Other")
    .env("RCLONE_CONFIG_BIGFS_ENDPOINT", endpoint)
    .env("RCLONE_CONFIG_BIGFS_ACCESS_KEY_ID", access)
    .env("RCLONE_CONFIG_BIGFS_SECRET_ACCESS_KEY", secret)
    // rclone 1.60 cannot start an S3 remote at all with this set, even over plain HTTP.
    .env_remove("AWS_CA_BUNDLE");
    cmd
}

/// `s3cmd` for the endpoint, path-style, over plain HTTP; the region is given because s3cmd
/// signs with its default location `US` otherwise, which is no valid region name.
pub fn s3cmd_command(endpoint: &str, access: &str, secret: &str) -> Command {
    let host = endpoint.strip_prefix("http://").unwrap_or(endpoint);
    let mut cmd = Command::new("s3cmd");
    cmd.args([
        "-c",
        "/dev/null",
        "--no-ssl",
        "--region",
        "us-east-1",
        "--host",
        host,
        "--host-bucket",
        host,
        "--access_key",
        access,
        "--secret_key",
        secret,
    ]);
    cmd
}
