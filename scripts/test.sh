#!/usr/bin/env bash
# The test command: installs the system tools the tests need where they are missing, then runs
# every test (cargo test --workspace, then the storage node's unit tests again with its
# failpoints compiled in). Extra arguments go to cargo test.
#
# Tools:
# - promtool (Prometheus's metrics checker, for the observability suite): from Debian's
#   `prometheus` package, of which only /usr/bin/promtool is installed, as
#   /usr/local/bin/promtool. The package is downloaded and unpacked, not installed, so no
#   Prometheus service is set up or started on this machine.
# - chromium and chromedriver (the web console's browser tests): Debian's `chromium` and
#   `chromium-driver` packages (and fonts-liberation, so pages render real glyphs). No browser
#   is ever downloaded from anywhere else.
# - aws-cli and boto3 (the S3 gateway's tests): `pip install awscli boto3` from PyPI, for
#   the user running the tests.
# - rclone and s3cmd (the S3 gateway's tests too): Debian's `rclone` and `s3cmd` packages.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

# Runs a command as root: directly, or through sudo.
as_root() {
    if [[ $(id -u) -eq 0 ]]; then
        "$@"
    elif command -v sudo >/dev/null; then
        sudo "$@"
    else
        echo "test.sh: installing needs root (or sudo): $*" >&2
        return 1
    fi
}

install_promtool() {
    echo "test.sh: promtool is missing; installing /usr/local/bin/promtool from Debian's prometheus package" >&2
    local tmp
    tmp=$(mktemp -d)
    # apt-get download runs as the unprivileged _apt user where it can: let it write here.
    chmod 755 "$tmp"
    if ! (cd "$tmp" && apt-get download prometheus >/dev/null 2>&1); then
        as_root apt-get update -qq
        (cd "$tmp" && apt-get download prometheus)
    fi
    dpkg-deb -x "$tmp"/prometheus_*.deb "$tmp/root"
    as_root install -m 755 "$tmp/root/usr/bin/promtool" /usr/local/bin/promtool
    rm -rf "$tmp"
    promtool --version | head -1 >&2
}

install_chromium() {
    echo "test.sh: chromium or chromedriver is missing; installing Debian's chromium and chromium-driver" >&2
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver fonts-liberation >/dev/null
    chromium --version >&2
}

install_s3_clients() {
    echo "test.sh: aws-cli or boto3 is missing; installing them from PyPI (pip install awscli boto3)" >&2
    python3 -m pip install -q awscli boto3 >&2
    # Under pyenv, a new console script is on PATH only once its shim exists.
    if command -v pyenv >/dev/null; then pyenv rehash; fi
    aws --version >&2
}

install_rclone_s3cmd() {
    echo "test.sh: rclone or s3cmd is missing; installing Debian's rclone and s3cmd packages" >&2
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq rclone s3cmd >/dev/null
    rclone version | sed -n 1p >&2 # sed reads it all: no SIGPIPE under pipefail
    s3cmd --version >&2
}

command -v promtool >/dev/null || install_promtool
if ! command -v aws >/dev/null || ! python3 -c 'import boto3' 2>/dev/null; then
    install_s3_clients
fi
if ! command -v rclone >/dev/null || ! command -v s3cmd >/dev/null; then
    install_rclone_s3cmd
fi
# The browser tests run these two paths (Debian's packages), not whatever is first on PATH.
if [[ ! -x /usr/bin/chromium || ! -x /usr/bin/chromedriver ]]; then
    install_chromium
fi

cargo test --workspace "$@"
# The storage node's own failpoint tests (chunk_store and its volumes: failed, torn and synced
# writes, crashes at each compaction step) compile only with its `failpoints` feature, which
# the workspace run above leaves off for the library's unit tests.
cargo test -p bigfs-node --features failpoints --lib "$@"
