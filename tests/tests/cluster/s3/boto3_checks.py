"""S3 API checks through boto3 against a bigfs-gateway; run by the `s3` suite.

Arguments: ENDPOINT ACCESS_KEY SECRET_KEY CHUNK_SIZE. Every check asserts; the first failure
ends the script with a traceback and a non-zero exit.
"""
import datetime
import hashlib
import sys
import urllib.error
import urllib.request

import boto3
import botocore
import botocore.auth
from botocore.config import Config

endpoint, access, secret, chunk = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])


def client(key=access, secret_key=secret):
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=key,
        aws_secret_access_key=secret_key,
        region_name="us-east-1",
        config=Config(retries={"max_attempts": 1}, s3={"addressing_style": "path"}),
    )


def error_code(call):
    try:
        call()
    except botocore.exceptions.ClientError as e:
        return e.response["Error"]["Code"]
    raise AssertionError("the call succeeded")


def data(seed, size):
    out = bytearray()
    block = hashlib.sha256(str(seed).encode()).digest()
    while len(out) < size:
        block = hashlib.sha256(block).digest()
        out += block
    return bytes(out[:size])


s3 = client()
s3.create_bucket(Bucket="bk3")
# Its owner making it again, with the same ACL, succeeds and changes nothing (us-east-1);
# with another ACL it is refused.
s3.create_bucket(Bucket="bk3")
assert error_code(lambda: s3.create_bucket(Bucket="bk3", ACL="public-read")) == "BucketAlreadyExists"
s3.head_bucket(Bucket="bk3")
assert error_code(lambda: s3.head_bucket(Bucket="nobucket")) in ("404", "NoSuchBucket")
names = [b["Name"] for b in s3.list_buckets()["Buckets"]]
assert "bk3" in names and not any(n.startswith(".") for n in names), names
# S3's DNS-label rules that s3s leaves to the gateway.
for bad in ["foo.-bar", "foo-.bar", "data-s3alias"]:
    assert error_code(lambda: s3.create_bucket(Bucket=bad)) == "InvalidBucketName", bad
assert s3.get_bucket_location(Bucket="bk3").get("LocationConstraint") in (None, "")

# Metadata, Content-Type and the ETag (the MD5) come back as stored.
body = data(1, 3 * chunk + 17)
put = s3.put_object(
    Bucket="bk3", Key="dir/obj", Body=body, ContentType="text/x-test", Metadata={"color": "blue"}
)
md5 = hashlib.md5(body).hexdigest()
assert put["ETag"] == f'"{md5}"', put["ETag"]
head = s3.head_object(Bucket="bk3", Key="dir/obj")
assert head["ContentLength"] == len(body)
assert head["ContentType"] == "text/x-test", head
assert head["Metadata"] == {"color": "blue"}, head["Metadata"]
assert head["ETag"] == f'"{md5}"'

# Ranges at chunk edges, a suffix and an open end.
for first, last in [(0, 0), (chunk - 1, chunk), (chunk, 2 * chunk - 1), (2 * chunk - 3, 3 * chunk + 16)]:
    got = s3.get_object(Bucket="bk3", Key="dir/obj", Range=f"bytes={first}-{last}")
    assert got["Body"].read() == body[first : last + 1], (first, last)
    assert got["ContentRange"] == f"bytes {first}-{last}/{len(body)}"
assert s3.get_object(Bucket="bk3", Key="dir/obj", Range="bytes=-5")["Body"].read() == body[-5:]
assert s3.get_object(Bucket="bk3", Key="dir/obj", Range=f"bytes={chunk}-")["Body"].read() == body[chunk:]
assert error_code(lambda: s3.get_object(Bucket="bk3", Key="dir/obj", Range=f"bytes={len(body)}-")) == "InvalidRange"

# Conditional GETs.
assert s3.get_object(Bucket="bk3", Key="dir/obj", IfMatch=md5)["Body"].read() == body
assert error_code(lambda: s3.get_object(Bucket="bk3", Key="dir/obj", IfMatch="0" * 32)) == "PreconditionFailed"
assert error_code(lambda: s3.get_object(Bucket="bk3", Key="dir/obj", IfNoneMatch=md5)) == "304"
# A 304 carries the ETag, so a cache knows which copy is still good.
try:
    s3.get_object(Bucket="bk3", Key="dir/obj", IfNoneMatch=md5)
except botocore.exceptions.ClientError as e:
    assert e.response["ResponseMetadata"]["HTTPHeaders"]["etag"].strip('"') == md5.strip('"'), e.response
assert error_code(lambda: s3.get_object(Bucket="bk3", Key="dir/obj", IfModifiedSince=head["LastModified"])) == "304"
assert error_code(lambda: s3.get_object(Bucket="bk3", Key="nokey")) == "NoSuchKey"

# A Content-MD5 that does not match the body: refused, nothing stored.
assert error_code(
    lambda: s3.put_object(Bucket="bk3", Key="bad-md5", Body=b"abc", ContentMD5="AAAAAAAAAAAAAAAAAAAAAA==")
) == "BadDigest"
assert error_code(lambda: s3.head_object(Bucket="bk3", Key="bad-md5")) == "404"

# Keys BigFS cannot hold are refused with the reason.
code = error_code(lambda: s3.put_object(Bucket="bk3", Key="a//b", Body=b"x"))
assert code == "InvalidArgument", code
code = error_code(lambda: s3.put_object(Bucket="bk3", Key="x" * 256, Body=b"x"))
assert code == "KeyTooLongError", code

# Copy: metadata only; COPY keeps the metadata, REPLACE sets new.
s3.copy_object(Bucket="bk3", Key="copy", CopySource={"Bucket": "bk3", "Key": "dir/obj"})
assert s3.get_object(Bucket="bk3", Key="copy")["Body"].read() == body
assert s3.head_object(Bucket="bk3", Key="copy")["Metadata"] == {"color": "blue"}
s3.copy_object(
    Bucket="bk3", Key="copy", CopySource={"Bucket": "bk3", "Key": "copy"},
    MetadataDirective="REPLACE", Metadata={"color": "red"}, ContentType="text/plain",
)
head = s3.head_object(Bucket="bk3", Key="copy")
assert head["Metadata"] == {"color": "red"} and head["ContentType"] == "text/plain", head

# Multipart: parts uploaded and copied from ranges, listed, completed without moving bytes.
part1 = data(2, 5 * 1024 * 1024 + 3)
mpu = s3.create_multipart_upload(Bucket="bk3", Key="multi", Metadata={"kind": "mp"})
uid = mpu["UploadId"]
p1 = s3.upload_part(Bucket="bk3", Key="multi", UploadId=uid, PartNumber=1, Body=part1)
p2 = s3.upload_part_copy(
    Bucket="bk3", Key="multi", UploadId=uid, PartNumber=2,
    CopySource={"Bucket": "bk3", "Key": "dir/obj"}, CopySourceRange=f"bytes={chunk - 5}-{2 * chunk + 4}",
)
parts = s3.list_parts(Bucket="bk3", Key="multi", UploadId=uid)["Parts"]
assert [p["PartNumber"] for p in parts] == [1, 2], parts
assert parts[1]["Size"] == chunk + 10
uploads = s3.list_multipart_uploads(Bucket="bk3")["Uploads"]
assert [u["UploadId"] for u in uploads] == [uid], uploads
etags = [p1["ETag"], p2["CopyPartResult"]["ETag"]]
done = s3.complete_multipart_upload(
    Bucket="bk3", Key="multi", UploadId=uid,
    MultipartUpload={"Parts": [{"PartNumber": i + 1, "ETag": e} for i, e in enumerate(etags)]},
)
whole = part1 + body[chunk - 5 : 2 * chunk + 5]
want = hashlib.md5(b"".join(bytes.fromhex(e.strip('"')) for e in etags)).hexdigest() + "-2"
assert done["ETag"] == f'"{want}"', done["ETag"]
assert s3.get_object(Bucket="bk3", Key="multi")["Body"].read() == whole
got = s3.get_object(Bucket="bk3", Key="multi", Range=f"bytes={len(part1) - 2}-{len(part1) + 2}")
assert got["Body"].read() == whole[len(part1) - 2 : len(part1) + 3]
assert s3.head_object(Bucket="bk3", Key="multi")["Metadata"] == {"kind": "mp"}
assert s3.list_multipart_uploads(Bucket="bk3").get("Uploads", []) == []
# The same Complete again (its answer lost, say) answers as the first did; with other parts, the
# upload is unknown.
again = s3.complete_multipart_upload(
    Bucket="bk3", Key="multi", UploadId=uid,
    MultipartUpload={"Parts": [{"PartNumber": i + 1, "ETag": e} for i, e in enumerate(etags)]},
)
assert again["ETag"] == done["ETag"], again
assert error_code(lambda: s3.complete_multipart_upload(
    Bucket="bk3", Key="multi", UploadId=uid, MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": p1["ETag"]}]},
)) == "NoSuchUpload"

# A part too small, parts out of order, and Abort.
mpu = s3.create_multipart_upload(Bucket="bk3", Key="small")
uid = mpu["UploadId"]
e1 = s3.upload_part(Bucket="bk3", Key="small", UploadId=uid, PartNumber=1, Body=b"tiny")["ETag"]
e2 = s3.upload_part(Bucket="bk3", Key="small", UploadId=uid, PartNumber=2, Body=b"end")["ETag"]
complete = lambda parts: s3.complete_multipart_upload(  # noqa: E731
    Bucket="bk3", Key="small", UploadId=uid, MultipartUpload={"Parts": parts}
)
assert error_code(lambda: complete([{"PartNumber": 1, "ETag": e1}, {"PartNumber": 2, "ETag": e2}])) == "EntityTooSmall"
assert error_code(lambda: complete([{"PartNumber": 2, "ETag": e2}, {"PartNumber": 1, "ETag": e1}])) == "InvalidPartOrder"
s3.abort_multipart_upload(Bucket="bk3", Key="small", UploadId=uid)
assert error_code(lambda: s3.list_parts(Bucket="bk3", Key="small", UploadId=uid)) == "NoSuchUpload"
assert error_code(lambda: s3.head_object(Bucket="bk3", Key="small")) == "404"

# Listing: V1 and V2, delimiter, pages of one, start-after.
for key in ["l/a", "l/b/c", "l/b/d", "l/c", "l/d/e/f"]:
    s3.put_object(Bucket="bk3", Key=key, Body=key.encode())
v2 = s3.list_objects_v2(Bucket="bk3", Prefix="l/", Delimiter="/")
assert [c["Key"] for c in v2["Contents"]] == ["l/a", "l/c"]
assert [p["Prefix"] for p in v2["CommonPrefixes"]] == ["l/b/", "l/d/"]
keys, token = [], None
while True:
    kwargs = {"ContinuationToken": token} if token else {}
    page = s3.list_objects_v2(Bucket="bk3", Prefix="l/", MaxKeys=1, **kwargs)
    keys += [c["Key"] for c in page.get("Contents", [])]
    if not page["IsTruncated"]:
        break
    token = page["NextContinuationToken"]
assert keys == ["l/a", "l/b/c", "l/b/d", "l/c", "l/d/e/f"], keys
# An empty delimiter is none (every key, no Delimiter echoed); FetchOwner names the owner.
flat = s3.list_objects(Bucket="bk3", Prefix="l/", Delimiter="")
assert "Delimiter" not in flat and len(flat["Contents"]) == 5 and "CommonPrefixes" not in flat, flat
owned = s3.list_objects_v2(Bucket="bk3", Prefix="l/", FetchOwner=True)["Contents"]
assert all(o["Owner"]["ID"] == "bigfs" for o in owned), owned
assert "Owner" not in s3.list_objects_v2(Bucket="bk3", Prefix="l/")["Contents"][0]
# max-keys=0: an empty page, not truncated, as S3 answers.
for listed in [s3.list_objects_v2(Bucket="bk3", Prefix="l/", MaxKeys=0), s3.list_objects(Bucket="bk3", MaxKeys=0)]:
    assert "Contents" not in listed and not listed["IsTruncated"], listed
after = s3.list_objects_v2(Bucket="bk3", Prefix="l/", StartAfter="l/b/c")
assert [c["Key"] for c in after["Contents"]] == ["l/b/d", "l/c", "l/d/e/f"]
# No versions are kept: each object is its own only version, "null", as S3 lists them for an
# unversioned bucket (what tools that empty a bucket ask).
versions = s3.list_object_versions(Bucket="bk3", Prefix="l/", MaxKeys=4)
assert [(v["Key"], v["VersionId"], v["IsLatest"]) for v in versions["Versions"]] == [
    (k, "null", True) for k in ["l/a", "l/b/c", "l/b/d", "l/c"]
], versions
assert versions["IsTruncated"] and versions["NextKeyMarker"] == "l/c", versions
rest = s3.list_object_versions(Bucket="bk3", Prefix="l/", KeyMarker="l/c")
assert [v["Key"] for v in rest["Versions"]] == ["l/d/e/f"] and not rest["IsTruncated"], rest
v1 = s3.list_objects(Bucket="bk3", Prefix="l/", Delimiter="/", MaxKeys=2)
assert v1["IsTruncated"] and v1["NextMarker"] == "l/b/", v1
v1 = s3.list_objects(Bucket="bk3", Prefix="l/", Delimiter="/", Marker="l/b/")
assert [c["Key"] for c in v1["Contents"]] == ["l/c"] and [p["Prefix"] for p in v1["CommonPrefixes"]] == ["l/d/"]

# A directory marker is an empty directory; it lists as the key with a '/'.
s3.put_object(Bucket="bk3", Key="folder/", Body=b"")
listed = s3.list_objects_v2(Bucket="bk3", Prefix="folder")["Contents"]
assert [(c["Key"], c["Size"]) for c in listed] == [("folder/", 0)], listed

# DeleteObjects, and a bucket that is not empty stays.
assert error_code(lambda: s3.delete_bucket(Bucket="bk3")) == "BucketNotEmpty"
gone = s3.delete_objects(Bucket="bk3", Delete={"Objects": [{"Key": "l/a"}, {"Key": "l/b/c"}, {"Key": "missing"}]})
assert sorted(d["Key"] for d in gone["Deleted"]) == ["l/a", "l/b/c", "missing"], gone
assert [c["Key"] for c in s3.list_objects_v2(Bucket="bk3", Prefix="l/")["Contents"]] == ["l/b/d", "l/c", "l/d/e/f"]

# What BigFS cannot honour is refused, never done half: no SSE-S3 or SSE-KMS on a gateway
# without their keys (never stored in the clear), at most 1,000 keys in one DeleteObjects.
# Conditions that fail refuse the write and change nothing.
for asked in [{"ServerSideEncryption": "AES256"}, {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": "k"}]:
    code = error_code(lambda: s3.put_object(Bucket="bk3", Key="secret", Body=b"x", **asked))
    assert code == "NotImplemented", (asked, code)
assert error_code(lambda: s3.head_object(Bucket="bk3", Key="secret")) in ("404", "NoSuchKey")
assert error_code(lambda: s3.put_object(Bucket="bk3", Key="l/c", Body=b"y", IfMatch=md5)) == "PreconditionFailed"
assert s3.get_object(Bucket="bk3", Key="l/c")["Body"].read() == b"l/c"
etag_l_c = s3.head_object(Bucket="bk3", Key="l/c")["ETag"]
assert error_code(lambda: s3.put_object(Bucket="bk3", Key="l/c", Body=b"y", IfNoneMatch=etag_l_c)) == "PreconditionFailed"
assert s3.get_object(Bucket="bk3", Key="l/c")["Body"].read() == b"l/c"
# An SSE-C key without its algorithm header is refused (400), not taken for no encryption.
def with_customer_key(params, **_):
    params["headers"]["x-amz-server-side-encryption-customer-key"] = "pO3upElrwuEXSoFwCfnZPdSsmt/xWeFa0N9KgDijwVs="
keyed = client()
keyed.meta.events.register("before-call.s3.PutObject", with_customer_key)
assert error_code(lambda: keyed.put_object(Bucket="bk3", Key="secret", Body=b"x")) == "InvalidArgument"
# A Complete with If-None-Match: * where an object is: refused, the upload kept.
uid = s3.create_multipart_upload(Bucket="bk3", Key="l/c")["UploadId"]
e1 = s3.upload_part(Bucket="bk3", Key="l/c", UploadId=uid, PartNumber=1, Body=b"new")["ETag"]
assert error_code(lambda: s3.complete_multipart_upload(
    Bucket="bk3", Key="l/c", UploadId=uid, IfNoneMatch="*", MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": e1}]},
)) == "PreconditionFailed"
assert s3.get_object(Bucket="bk3", Key="l/c")["Body"].read() == b"l/c"
s3.abort_multipart_upload(Bucket="bk3", Key="l/c", UploadId=uid)
# partNumber: a single-part object is its own part 1; a multipart object's parts are where
# their sizes put them.
assert s3.get_object(Bucket="bk3", Key="l/c", PartNumber=1)["Body"].read() == b"l/c"
assert error_code(lambda: s3.get_object(Bucket="bk3", Key="l/c", PartNumber=2)) == "InvalidPart"
second = s3.get_object(Bucket="bk3", Key="multi", PartNumber=2)
assert second["PartsCount"] == 2 and second["ContentLength"] == chunk + 10, second
assert second["Body"].read() == body[chunk - 5 : 2 * chunk + 5]
assert s3.head_object(Bucket="bk3", Key="multi", PartNumber=1)["ContentLength"] == len(part1)
too_many = {"Objects": [{"Key": f"k{i}"} for i in range(1001)]}
assert error_code(lambda: s3.delete_objects(Bucket="bk3", Delete=too_many)) == "MalformedXML"
# A DeleteObjects key whose condition fails is refused alone and stays; the others go.
s3.put_object(Bucket="bk3", Key="cond/a", Body=b"a")
s3.put_object(Bucket="bk3", Key="cond/b", Body=b"b")
answer = s3.delete_objects(Bucket="bk3", Delete={"Objects": [{"Key": "cond/a", "ETag": "bad"}, {"Key": "cond/b"}]})
assert [(e["Key"], e["Code"]) for e in answer["Errors"]] == [("cond/a", "PreconditionFailed")], answer
assert [d["Key"] for d in answer["Deleted"]] == ["cond/b"], answer
assert s3.get_object(Bucket="bk3", Key="cond/a")["Body"].read() == b"a"

# Presigned GET, with no credentials on the request itself.
url = s3.generate_presigned_url("get_object", Params={"Bucket": "bk3", "Key": "dir/obj"}, ExpiresIn=300)
assert urllib.request.urlopen(url).read() == body
# Refused as S3 refuses them: a validity over seven days, and one that ended before it began.
v4 = boto3.client(
    "s3", endpoint_url=endpoint, aws_access_key_id=access, aws_secret_access_key=secret, region_name="us-east-1",
    config=Config(signature_version="s3v4", s3={"addressing_style": "path"}),
)
for expires in [7 * 24 * 3600 + 1, -7]:
    url = v4.generate_presigned_url("get_object", Params={"Bucket": "bk3", "Key": "dir/obj"}, ExpiresIn=expires)
    try:
        urllib.request.urlopen(url)
        raise AssertionError(f"a presigned URL with X-Amz-Expires={expires} was served")
    except urllib.error.HTTPError as e:
        assert e.code == 403 and b"AccessDenied" in e.read(), (expires, e)

# Refused: a wrong secret, an unknown key.
assert error_code(lambda: client(secret_key="wrong").list_buckets()) == "SignatureDoesNotMatch"
assert error_code(lambda: client(key="UNKNOWNKEY").list_buckets()) == "InvalidAccessKeyId"

# Refused: a request signed with a clock 20 minutes behind or ahead (S3 allows 15).
real_now = botocore.auth.get_current_datetime
for skew in (-20, 20):
    botocore.auth.get_current_datetime = lambda: real_now() + datetime.timedelta(minutes=skew)
    try:
        assert error_code(lambda: client().list_buckets()) == "RequestTimeTooSkewed", skew
    finally:
        botocore.auth.get_current_datetime = real_now
s3.list_buckets()

# Anything not implemented is 501, never a success.
assert error_code(lambda: s3.get_bucket_policy(Bucket="bk3")) == "NotImplemented"
print("boto3 checks passed")
