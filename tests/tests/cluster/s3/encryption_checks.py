"""Server-side encryption checks through boto3 against a bigfs-gateway; run by the
`s3_encryption` suite.

Arguments: ENDPOINT ACCESS_KEY SECRET_KEY PHASE MARKER. PHASE `encrypted` stores and checks
objects under SSE-C, SSE-S3 and SSE-KMS (`testkey-1`), put in one piece and in parts, and copies
between them; each object's bytes hold MARKER, which the suite then looks for in the nodes'
files. `plain` then stores plain objects (the search's control) and copies between plain and
SSE-C, and reads everything back; `reread` (a restarted gateway, the same keys) reads it all
again; `no-keys` (a gateway started without --sse-master-key-file or --sse-kms-keys) must
refuse what needs them.
"""
import hashlib
import sys

import boto3
import botocore
from botocore.config import Config

endpoint, access, secret, phase, marker = sys.argv[1:6]
marker = marker.encode()
MIB = 1 << 20

s3 = boto3.client(
    "s3",
    endpoint_url=endpoint,
    aws_access_key_id=access,
    aws_secret_access_key=secret,
    region_name="us-east-1",
    config=Config(retries={"max_attempts": 1}, s3={"addressing_style": "path"}),
)


def error(call):
    try:
        call()
    except botocore.exceptions.ClientError as e:
        return e.response["ResponseMetadata"]["HTTPStatusCode"], e.response["Error"]["Code"]
    raise AssertionError("the call succeeded")


def data(seed, size):
    """`size` bytes that hold the marker every 4 KiB (and nowhere by chance)."""
    out = bytearray()
    block = hashlib.sha256(str(seed).encode()).digest()
    while len(out) < size:
        block = hashlib.sha256(block).digest()
        out += marker + block * 127
    return bytes(out[:size])


KEY_A = b"A" * 16 + b"a" * 16
KEY_B = b"B" * 16 + b"b" * 16
SSE_A = {"SSECustomerAlgorithm": "AES256", "SSECustomerKey": KEY_A}
SSE_B = {"SSECustomerAlgorithm": "AES256", "SSECustomerKey": KEY_B}
COPY_A = {"CopySourceSSECustomerAlgorithm": "AES256", "CopySourceSSECustomerKey": KEY_A}
KMS = {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": "testkey-1"}
SMALL = data("small", 3 * MIB + 11)
PARTS = [data("part1", 5 * MIB), data("part2", 5 * MIB + 7), data("part3", MIB + 3)]
BIG = b"".join(PARTS)


def get(key, range_=None, **kwargs):
    if range_:
        kwargs["Range"] = range_
    return s3.get_object(Bucket="enc", Key=key, **kwargs)["Body"].read()


def check_reads():
    """What `write` stored reads back whole and in ranges, with the right keys only."""
    assert get("c/small", **SSE_A) == SMALL
    # Ranges starting inside an AES block, crossing chunk and part edges.
    for start, end in [(0, 0), (5, 40), (MIB - 3, 2 * MIB + 5), (len(SMALL) - 1, len(SMALL) - 1)]:
        assert get("c/small", f"bytes={start}-{end}", **SSE_A) == SMALL[start : end + 1], (start, end)
    assert get("s3/small") == SMALL
    assert get("kms/small") == SMALL
    assert get("c/multi", **SSE_A) == BIG
    edge = 5 * MIB
    for start, end in [(edge - 9, edge + 9), (2 * edge - 1, 2 * edge + 100), (3, len(BIG) - 2)]:
        assert get("c/multi", f"bytes={start}-{end}", **SSE_A) == BIG[start : end + 1], (start, end)
    assert get("s3/multi", f"bytes={edge - 9}-{edge + 9}") == BIG[edge - 9 : edge + 10]
    # SSE-C without the key: 400; with another: 403; a key for an object without one: 400.
    assert error(lambda: s3.get_object(Bucket="enc", Key="c/small")) == (400, "InvalidRequest")
    assert error(lambda: s3.head_object(Bucket="enc", Key="c/small"))[0] == 400
    assert error(lambda: get("c/small", **SSE_B)) == (403, "AccessDenied")
    assert error(lambda: s3.head_object(Bucket="enc", Key="c/small", **SSE_B))[0] == 403
    assert error(lambda: get("s3/small", **SSE_A)) == (400, "InvalidRequest")
    # What HEAD says about each.
    head = s3.head_object(Bucket="enc", Key="c/small", **SSE_A)
    assert head["SSECustomerAlgorithm"] == "AES256", head
    assert head["SSECustomerKeyMD5"], head
    assert head["ContentLength"] == len(SMALL)
    assert s3.head_object(Bucket="enc", Key="s3/small")["ServerSideEncryption"] == "AES256"
    head = s3.head_object(Bucket="enc", Key="kms/small")
    assert (head["ServerSideEncryption"], head["SSEKMSKeyId"]) == ("aws:kms", "testkey-1"), head
    # Copies between encryptions read back as their source.
    assert get("copy/c-same", **SSE_A) == SMALL
    assert get("copy/c-to-b", **SSE_B) == SMALL
    assert get("copy/c-to-s3") == SMALL
    if phase != "encrypted":
        assert get("copy/c-to-plain") == SMALL
        assert get("copy/plain-to-c", **SSE_A) == SMALL
    assert get("copy/multi-to-kms") == BIG
    assert get("copy/parts", **SSE_B) == BIG[: 5 * MIB] + BIG[:MIB]


def write():
    s3.create_bucket(Bucket="enc")
    put = s3.put_object(Bucket="enc", Key="c/small", Body=SMALL, **SSE_A)
    assert put["SSECustomerAlgorithm"] == "AES256" and put["SSECustomerKeyMD5"], put
    # SSE-C's ETag is not the plaintext's MD5 (it would tell a guess of the content right).
    assert put["ETag"].strip('"') != hashlib.md5(SMALL).hexdigest()
    put = s3.put_object(Bucket="enc", Key="s3/small", Body=SMALL, ServerSideEncryption="AES256")
    assert put["ServerSideEncryption"] == "AES256", put
    assert put["ETag"].strip('"') == hashlib.md5(SMALL).hexdigest()
    put = s3.put_object(Bucket="enc", Key="kms/small", Body=SMALL, **KMS)
    assert (put["ServerSideEncryption"], put["SSEKMSKeyId"]) == ("aws:kms", "testkey-1"), put

    # Refused: a wrong key MD5, a key of the wrong size, an unknown KMS key, a KMS key id
    # without aws:kms, SSE-C and SSE-S3 at once; nothing is stored.
    def with_headers(headers):
        client = boto3.client(
            "s3", endpoint_url=endpoint, aws_access_key_id=access, aws_secret_access_key=secret,
            region_name="us-east-1", config=Config(retries={"max_attempts": 1}, s3={"addressing_style": "path"}))
        client.meta.events.register(
            "before-call.s3.PutObject", lambda params, **_: params["headers"].update(headers))
        return client
    bad_md5 = with_headers({
        "x-amz-server-side-encryption-customer-algorithm": "AES256",
        "x-amz-server-side-encryption-customer-key": "pO3upElrwuEXSoFwCfnZPdSsmt/xWeFa0N9KgDijwVs=",
        "x-amz-server-side-encryption-customer-key-md5": "AAAAAAAAAAAAAAAAAAAAAA==",
    })
    assert error(lambda: bad_md5.put_object(Bucket="enc", Key="bad", Body=b"x"))[0] == 400
    assert error(lambda: s3.put_object(Bucket="enc", Key="bad", Body=b"x", SSECustomerAlgorithm="AES256",
                                       SSECustomerKey=b"short"))[0] == 400
    assert error(lambda: s3.put_object(Bucket="enc", Key="bad", Body=b"x", ServerSideEncryption="aws:kms",
                                       SSEKMSKeyId="nokey"))[0] == 400
    assert error(lambda: s3.put_object(Bucket="enc", Key="bad", Body=b"x", SSEKMSKeyId="testkey-1"))[0] == 400
    assert error(lambda: s3.put_object(Bucket="enc", Key="bad", Body=b"x", ServerSideEncryption="AES256",
                                       **SSE_A))[0] == 400
    assert error(lambda: s3.put_object(Bucket="enc", Key="bad", Body=b"x", SSEKMSEncryptionContext="e30=",
                                       **KMS)) == (501, "NotImplemented")
    assert error(lambda: s3.head_object(Bucket="enc", Key="bad"))[0] == 404

    # A bucket's default encryption applies to what asks for none: puts, multipart, copies.
    s3.create_bucket(Bucket="dflt")
    assert error(lambda: s3.get_bucket_encryption(Bucket="dflt")) == (
        404, "ServerSideEncryptionConfigurationNotFoundError")
    rule = lambda by_default: {"Rules": [{"ApplyServerSideEncryptionByDefault": by_default}]}
    s3.put_bucket_encryption(Bucket="dflt", ServerSideEncryptionConfiguration=rule({"SSEAlgorithm": "AES256"}))
    got = s3.get_bucket_encryption(Bucket="dflt")["ServerSideEncryptionConfiguration"]
    assert got["Rules"][0]["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256", got
    assert s3.put_object(Bucket="dflt", Key="s3", Body=SMALL)["ServerSideEncryption"] == "AES256"
    # SSE-C asked explicitly wins over the default.
    assert "ServerSideEncryption" not in s3.put_object(Bucket="dflt", Key="c", Body=SMALL, **SSE_A)
    uid = s3.create_multipart_upload(Bucket="dflt", Key="multi")["UploadId"]
    part = s3.upload_part(Bucket="dflt", Key="multi", UploadId=uid, PartNumber=1, Body=SMALL)
    done = s3.complete_multipart_upload(Bucket="dflt", Key="multi", UploadId=uid, MultipartUpload={
        "Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]})
    assert done["ServerSideEncryption"] == "AES256", done
    s3.put_bucket_encryption(Bucket="dflt", ServerSideEncryptionConfiguration=rule(
        {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": "testkey-1"}))
    copied = s3.copy_object(Bucket="dflt", Key="kms", CopySource={"Bucket": "dflt", "Key": "s3"})
    assert (copied["ServerSideEncryption"], copied["SSEKMSKeyId"]) == ("aws:kms", "testkey-1"), copied
    for key in ["s3", "multi", "kms"]:
        assert s3.get_object(Bucket="dflt", Key=key)["Body"].read() == SMALL, key
    assert error(lambda: s3.put_bucket_encryption(Bucket="dflt", ServerSideEncryptionConfiguration=rule(
        {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": "nokey"})))[0] == 400
    s3.delete_bucket_encryption(Bucket="dflt")
    assert error(lambda: s3.get_bucket_encryption(Bucket="dflt"))[0] == 404

    # Multipart under SSE-C: every part needs the upload's key.
    uid = s3.create_multipart_upload(Bucket="enc", Key="c/multi", **SSE_A)["UploadId"]
    assert error(lambda: s3.upload_part(Bucket="enc", Key="c/multi", UploadId=uid, PartNumber=1,
                                        Body=PARTS[0]))[0] == 400
    assert error(lambda: s3.upload_part(Bucket="enc", Key="c/multi", UploadId=uid, PartNumber=1,
                                        Body=PARTS[0], **SSE_B))[0] == 400
    etags = []
    for n, part in enumerate(PARTS, 1):
        done = s3.upload_part(Bucket="enc", Key="c/multi", UploadId=uid, PartNumber=n, Body=part, **SSE_A)
        assert done["SSECustomerAlgorithm"] == "AES256", done
        etags.append({"PartNumber": n, "ETag": done["ETag"]})
    # A Complete needs no key (as in S3), but one given must be the upload's.
    assert error(lambda: s3.complete_multipart_upload(Bucket="enc", Key="c/multi", UploadId=uid,
                                                      MultipartUpload={"Parts": etags}, **SSE_B))[0] == 400
    s3.complete_multipart_upload(Bucket="enc", Key="c/multi", UploadId=uid, MultipartUpload={"Parts": etags})
    # Multipart under SSE-S3.
    uid = s3.create_multipart_upload(Bucket="enc", Key="s3/multi", ServerSideEncryption="AES256")["UploadId"]
    etags = [{"PartNumber": n, "ETag": s3.upload_part(Bucket="enc", Key="s3/multi", UploadId=uid,
                                                       PartNumber=n, Body=part)["ETag"]}
             for n, part in enumerate(PARTS, 1)]
    done = s3.complete_multipart_upload(Bucket="enc", Key="s3/multi", UploadId=uid,
                                        MultipartUpload={"Parts": etags})
    assert done["ServerSideEncryption"] == "AES256", done

    # Copies: from SSE-C only with the source's key; any other encryption re-encrypts.
    source = {"Bucket": "enc", "Key": "c/small"}
    assert error(lambda: s3.copy_object(Bucket="enc", Key="copy/x", CopySource=source, **SSE_A))[0] == 400
    assert error(lambda: s3.copy_object(Bucket="enc", Key="copy/x", CopySource=source,
                                        CopySourceSSECustomerAlgorithm="AES256",
                                        CopySourceSSECustomerKey=KEY_B, **SSE_A))[0] == 403
    same = s3.copy_object(Bucket="enc", Key="copy/c-same", CopySource=source, **COPY_A, **SSE_A)
    # The same key: a metadata-only copy, the same stored bytes and ETag.
    assert same["CopyObjectResult"]["ETag"] == s3.head_object(Bucket="enc", Key="c/small", **SSE_A)["ETag"]
    s3.copy_object(Bucket="enc", Key="copy/c-to-b", CopySource=source, **COPY_A, **SSE_B)
    to_s3 = s3.copy_object(Bucket="enc", Key="copy/c-to-s3", CopySource=source, **COPY_A,
                           ServerSideEncryption="AES256")
    assert to_s3["ServerSideEncryption"] == "AES256", to_s3
    s3.copy_object(Bucket="enc", Key="copy/multi-to-kms", CopySource={"Bucket": "enc", "Key": "s3/multi"}, **KMS)
    # UploadPartCopy from an SSE-C object into an upload under another key.
    source = {"Bucket": "enc", "Key": "c/multi"}
    uid = s3.create_multipart_upload(Bucket="enc", Key="copy/parts", **SSE_B)["UploadId"]
    p1 = s3.upload_part_copy(Bucket="enc", Key="copy/parts", UploadId=uid, PartNumber=1, CopySource=source,
                             CopySourceRange=f"bytes=0-{5 * MIB - 1}", **COPY_A, **SSE_B)
    p2 = s3.upload_part_copy(Bucket="enc", Key="copy/parts", UploadId=uid, PartNumber=2, CopySource=source,
                             CopySourceRange=f"bytes=0-{MIB - 1}", **COPY_A, **SSE_B)
    s3.complete_multipart_upload(Bucket="enc", Key="copy/parts", UploadId=uid, MultipartUpload={"Parts": [
        {"PartNumber": 1, "ETag": p1["CopyPartResult"]["ETag"]},
        {"PartNumber": 2, "ETag": p2["CopyPartResult"]["ETag"]}]})
    check_reads()


def write_plain():
    # The control: a plain object, whose marker the nodes' files do hold.
    s3.put_object(Bucket="enc", Key="plain/small", Body=SMALL)
    source = {"Bucket": "enc", "Key": "c/small"}
    s3.copy_object(Bucket="enc", Key="copy/c-to-plain", CopySource=source, **COPY_A)
    head = s3.head_object(Bucket="enc", Key="copy/c-to-plain")
    assert "ServerSideEncryption" not in head and "SSECustomerAlgorithm" not in head, head
    s3.copy_object(Bucket="enc", Key="copy/plain-to-c", CopySource={"Bucket": "enc", "Key": "plain/small"}, **SSE_A)
    check_reads()


if phase == "encrypted":
    write()
elif phase == "plain":
    write_plain()
elif phase == "reread":
    check_reads()
elif phase == "no-keys":
    # SSE-C needs no gateway key; SSE-S3 and SSE-KMS objects cannot be read, and new ones are
    # refused with 501 (never stored in the clear).
    assert get("c/small", **SSE_A) == SMALL
    assert error(lambda: get("s3/small"))[0] == 501
    assert error(lambda: get("kms/small"))[0] == 501
    assert error(lambda: s3.put_object(Bucket="enc", Key="new", Body=b"x", ServerSideEncryption="AES256")) \
        == (501, "NotImplemented")
    assert error(lambda: s3.put_object(Bucket="enc", Key="new", Body=b"x", **KMS)) == (501, "NotImplemented")
    assert error(lambda: s3.head_object(Bucket="enc", Key="new"))[0] == 404
else:
    raise SystemExit(f"unknown phase {phase}")
print("ok")
