//! Running the S3 clients the suites drive (aws-cli now; rclone and s3cmd beside it) against an
//! endpoint with a key pair, isolated from whatever the user running the tests configured:
//! no config or credentials file of theirs is read.

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
