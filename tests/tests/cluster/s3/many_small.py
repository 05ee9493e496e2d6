"""Many small requests at once through one gateway, whose lookups and commits then share
metadata calls: each must still get its own answer. Run by the `s3` suite.

Arguments: ENDPOINT ACCESS_KEY SECRET_KEY GO. 32 threads put 96 objects of distinct sizes;
then it prints "ready" and waits for the file GO (the test stops the metadata server meanwhile,
so that the requests below pile up and leave in batches when it goes on); then, all at once and
shuffled, HEAD and GET each object, HEAD as many keys that do not exist and the "directories"
above the objects, and put over a third of the objects with new bytes; every answer is checked
against what that request alone must answer. Prints "done".
"""
import concurrent.futures
import hashlib
import os
import random
import sys
import time

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

endpoint, access, secret, go = sys.argv[1:5]
s3 = boto3.client(
    "s3",
    endpoint_url=endpoint,
    aws_access_key_id=access,
    aws_secret_access_key=secret,
    region_name="us-east-1",
    config=Config(
        retries={"max_attempts": 1},
        s3={"addressing_style": "path"},
        max_pool_connections=64,
    ),
)
BUCKET = "many"
s3.create_bucket(Bucket=BUCKET)


def body(i, round_):
    return hashlib.sha256(f"{i}/{round_}".encode()).digest() * (i + 1)


def key(i):
    return f"dir{i % 4}/obj{i}"


def run(tasks):
    with concurrent.futures.ThreadPoolExecutor(max_workers=32) as ex:
        for result in ex.map(lambda task: task(), tasks):
            assert result is None, result


def put(i, round_):
    def task():
        s3.put_object(Bucket=BUCKET, Key=key(i), Body=body(i, round_))

    return task


def head(i):
    def task():
        got = s3.head_object(Bucket=BUCKET, Key=key(i))
        # The first bytes or the rewrite's: a HEAD racing the rewrite may see either, never
        # another object's size.
        if got["ContentLength"] != 32 * (i + 1):
            return f"HEAD {key(i)}: {got['ContentLength']} bytes"

    return task


def get(i, rewritten):
    def task():
        data = s3.get_object(Bucket=BUCKET, Key=key(i))["Body"].read()
        allowed = [body(i, 0)] + ([body(i, 1)] if rewritten else [])
        if data not in allowed:
            return f"GET {key(i)}: {len(data)} bytes of something else"

    return task


def missing(name):
    def task():
        try:
            s3.head_object(Bucket=BUCKET, Key=name)
        except ClientError as e:
            code = e.response["Error"]["Code"]
            if code != "404":
                return f"HEAD {name}: {code}, not 404"
            return None
        return f"HEAD {name} found an object"

    return task


N = 96
run([put(i, 0) for i in range(N)])
print("ready", flush=True)
while not os.path.exists(go):
    time.sleep(0.01)
rewritten = set(range(0, N, 3))
tasks = [head(i) for i in range(N)]
tasks += [get(i, i in rewritten) for i in range(N)]
tasks += [missing(f"dir{i % 4}/none{i}") for i in range(N)]
tasks += [missing(f"dir{i}") for i in range(4)]
tasks += [put(i, 1) for i in rewritten]
random.Random(7).shuffle(tasks)
run(tasks)
for i in range(N):
    want = body(i, 1 if i in rewritten else 0)
    assert s3.get_object(Bucket=BUCKET, Key=key(i))["Body"].read() == want, key(i)
print("done")
