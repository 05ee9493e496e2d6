"""Large bodies moving at once, to measure the gateway's memory: run by the `s3` suite.

Arguments: ENDPOINT ACCESS_KEY SECRET_KEY FILE [sse-c]. Puts FILE as one PutObject, reads it back
with 8 GETs at once (each streamed in 1 MiB reads and compared with FILE), then uploads it with 4
multipart uploads at once (boto3's upload_file: 8 MiB parts, 10 at a time each); with `sse-c`,
all of it under an SSE-C key (the gateway encrypts and decrypts every byte). Prints "done".
"""
import concurrent.futures
import hashlib
import sys

import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config

endpoint, access, secret, path = sys.argv[1:5]
sse = {"SSECustomerAlgorithm": "AES256", "SSECustomerKey": b"k" * 32} if sys.argv[5:] == ["sse-c"] else {}
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
with open(path, "rb") as f:
    want = hashlib.sha256(f.read()).hexdigest()
s3.create_bucket(Bucket="big")
with open(path, "rb") as f:
    s3.put_object(Bucket="big", Key="one", Body=f, **sse)


def get(_):
    body = s3.get_object(Bucket="big", Key="one", **sse)["Body"]
    got = hashlib.sha256()
    while block := body.read(1 << 20):
        got.update(block)
    assert got.hexdigest() == want, "a GET read different bytes"


def upload(i):
    s3.upload_file(path, "big", f"parts{i}", ExtraArgs=sse, Config=TransferConfig(max_concurrency=10))


with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
    list(pool.map(get, range(8)))
    list(pool.map(upload, range(4)))
print("done")
