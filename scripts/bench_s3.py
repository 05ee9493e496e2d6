#!/usr/bin/env python3
"""The S3 client of scripts/bench-s3.sh: one boto3 workload, the same for every S3 server.

    bench_s3.py put FILE KEY      upload FILE (boto3's upload_file: parts of 8 MiB, 10 at once)
    bench_s3.py get KEY           download KEY (download_fileobj, same parts) to nowhere
    bench_s3.py sum KEY           print the SHA-256 of KEY's bytes (untimed checks)
    bench_s3.py put-many DIR PREFIX THREADS   put_object of every file in DIR under PREFIX
    bench_s3.py get-many DIR PREFIX THREADS   get_object of PREFIX+name for every name in DIR,
                                              written to DIR/../got/ (each file whole)
    bench_s3.py delete PREFIX     delete every object under PREFIX

The endpoint, keys and bucket come from BENCH_S3_ENDPOINT, BENCH_S3_ACCESS_KEY,
BENCH_S3_SECRET_KEY and BENCH_S3_BUCKET. put/get/put-many/get-many print "T0 T1": the wall
clock (epoch seconds) after the client was made and when the work ended, so that the
interpreter's start-up is not timed and several processes at once are timed from the first
start to the last end.
"""

import concurrent.futures
import hashlib
import os
import sys
import time

import boto3
from botocore.config import Config


def client():
    config = Config(
        s3={"addressing_style": "path"},
        signature_version="s3v4",
        retries={"max_attempts": 1},
        max_pool_connections=64,
    )
    return boto3.client(
        "s3",
        endpoint_url=os.environ["BENCH_S3_ENDPOINT"],
        aws_access_key_id=os.environ["BENCH_S3_ACCESS_KEY"],
        aws_secret_access_key=os.environ["BENCH_S3_SECRET_KEY"],
        region_name="us-east-1",
        config=config,
    )


class Sink:
    """A file object that keeps nothing, or only a running hash."""

    def __init__(self, digest=None):
        self.digest = digest

    def write(self, data):
        if self.digest is not None:
            self.digest.update(data)
        return len(data)


def pool(threads, fn, items):
    with concurrent.futures.ThreadPoolExecutor(max_workers=threads) as ex:
        for _ in ex.map(fn, items):
            pass


def main(argv):
    s3, bucket = client(), os.environ["BENCH_S3_BUCKET"]
    op, args = argv[1], argv[2:]
    t0 = time.time()
    if op == "put":
        s3.upload_file(args[0], bucket, args[1])
    elif op == "get":
        s3.download_fileobj(bucket, args[0], Sink())
    elif op == "sum":
        sink = Sink(hashlib.sha256())
        s3.download_fileobj(bucket, args[0], sink)
        print(sink.digest.hexdigest())
        return
    elif op == "put-many":
        folder, prefix, threads = args[0], args[1], int(args[2])

        def put(name):
            with open(os.path.join(folder, name), "rb") as f:
                s3.put_object(Bucket=bucket, Key=prefix + name, Body=f.read())

        pool(threads, put, sorted(os.listdir(folder)))
    elif op == "get-many":
        folder, prefix, threads = args[0], args[1], int(args[2])
        out = os.path.join(os.path.dirname(os.path.abspath(folder)), "got")
        os.makedirs(out, exist_ok=True)

        def get(name):
            body = s3.get_object(Bucket=bucket, Key=prefix + name)["Body"].read()
            with open(os.path.join(out, name), "wb") as f:
                f.write(body)

        pool(threads, get, sorted(os.listdir(folder)))
    elif op == "delete":
        pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=args[0])
        for page in pages:
            keys = [{"Key": o["Key"]} for o in page.get("Contents", [])]
            if keys:
                s3.delete_objects(Bucket=bucket, Delete={"Objects": keys, "Quiet": True})
        return
    else:
        sys.exit(f"bench_s3.py: unknown operation {op!r}")
    print(f"{t0:.6f} {time.time():.6f}")


if __name__ == "__main__":
    main(sys.argv)
