"""PutObject requests that send part of their body and wait: run by the `s3` suite to kill the
gateway in the middle of a streamed upload.

Arguments: ENDPOINT ACCESS_KEY SECRET_KEY BUCKET SIZE SENT KEY... For each KEY, opens a PUT
announcing SIZE bytes (SigV4-signed with an unsigned payload, as clients stream bodies) and
sends the first SENT of them; prints "sent"; then, for each, prints "answered STATUS" if the
gateway answers, or "broken" if the connection breaks first.

With STALLED_PUT_HEADERS (a JSON object) in the environment, each PUT carries those headers
too (If-Match, say). With STALLED_PUT_FINISH set, after "sent" it waits for a line on stdin,
then sends the rest of each body before waiting for the answers.
"""
import http.client
import json
import os
import sys
import urllib.parse

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

endpoint, access, secret, bucket = sys.argv[1:5]
size, sent = int(sys.argv[5]), int(sys.argv[6])
keys = sys.argv[7:]
host = urllib.parse.urlparse(endpoint).netloc
block = bytes(range(256)) * 4096  # 1 MiB


def send(connection, count):
    while count > 0:
        piece = block[: min(count, len(block))]
        connection.send(piece)
        count -= len(piece)


connections = []
for key in keys:
    path = f"/{bucket}/{urllib.parse.quote(key)}"
    request = AWSRequest(
        method="PUT",
        url=endpoint + path,
        headers={
            "Content-Length": str(size),
            "X-Amz-Content-SHA256": "UNSIGNED-PAYLOAD",
            **json.loads(os.environ.get("STALLED_PUT_HEADERS", "{}")),
        },
    )
    SigV4Auth(Credentials(access, secret), "s3", "us-east-1").add_auth(request)
    connection = http.client.HTTPConnection(host, timeout=120)
    connection.putrequest("PUT", path, skip_host=True, skip_accept_encoding=True)
    connection.putheader("Host", host)
    for name, value in request.headers.items():
        if name.lower() != "host":
            connection.putheader(name, value)
    connection.endheaders()
    send(connection, sent)
    connections.append(connection)
print("sent", flush=True)
if os.environ.get("STALLED_PUT_FINISH"):
    sys.stdin.readline()
    for connection in connections:
        send(connection, size - sent)
for connection in connections:
    try:
        print("answered", connection.getresponse().status, flush=True)
    except (OSError, http.client.HTTPException):
        print("broken", flush=True)
