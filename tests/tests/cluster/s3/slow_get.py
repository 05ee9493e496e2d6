"""A GET that pauses: run by the `s3` suite to kill a storage node in the middle of it.

Arguments: ENDPOINT ACCESS_KEY SECRET_KEY BUCKET KEY OUT GO_FILE. Reads the first MiB of the
object into OUT, prints "reading", waits until GO_FILE exists, then reads the rest. botocore
fails the read if fewer bytes arrive than the Content-Length announced.
"""
import os
import sys
import time

import boto3
from botocore.config import Config

endpoint, access, secret, bucket, key, out, go = sys.argv[1:8]
s3 = boto3.client(
    "s3",
    endpoint_url=endpoint,
    aws_access_key_id=access,
    aws_secret_access_key=secret,
    region_name="us-east-1",
    config=Config(retries={"max_attempts": 1}, s3={"addressing_style": "path"}, read_timeout=60),
)
body = s3.get_object(Bucket=bucket, Key=key)["Body"]
with open(out, "wb") as f:
    f.write(body.read(1 << 20))
    print("reading", flush=True)
    while not os.path.exists(go):
        time.sleep(0.05)
    while True:
        block = body.read(1 << 20)
        if not block:
            break
        f.write(block)
