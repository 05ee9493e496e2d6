"""What S3 keeps with an object beside its bytes, and the conditions that guard its writes,
through boto3 against a bigfs-gateway; run by the `s3` suite.

Arguments: ENDPOINT ACCESS_KEY SECRET_KEY. Every check asserts; the first failure ends the
script with a traceback and a non-zero exit.
"""
import datetime
import sys

import boto3
import botocore
from botocore.config import Config

endpoint, access, secret = sys.argv[1:4]
s3 = boto3.client(
    "s3",
    endpoint_url=endpoint,
    aws_access_key_id=access,
    aws_secret_access_key=secret,
    region_name="us-east-1",
    config=Config(retries={"max_attempts": 1}, s3={"addressing_style": "path"}),
)


def error_code(call):
    try:
        call()
    except botocore.exceptions.ClientError as e:
        return e.response["Error"]["Code"]
    raise AssertionError("the call succeeded")


def body(key, bucket="meta"):
    return s3.get_object(Bucket=bucket, Key=key)["Body"].read()


def tags(key, bucket="meta"):
    return {t["Key"]: t["Value"] for t in s3.get_object_tagging(Bucket=bucket, Key=key)["TagSet"]}


s3.create_bucket(Bucket="meta")

# Conditional PUTs: If-None-Match creates only where no object (or none with that ETag) is;
# If-Match replaces only the object with that ETag, and is 404 where there is none.
first = s3.put_object(Bucket="meta", Key="c", Body=b"one", IfNoneMatch="*")["ETag"]
assert error_code(lambda: s3.put_object(Bucket="meta", Key="c", Body=b"x", IfNoneMatch="*")) == "PreconditionFailed"
assert error_code(lambda: s3.put_object(Bucket="meta", Key="c", Body=b"x", IfNoneMatch=first)) == "PreconditionFailed"
assert error_code(lambda: s3.put_object(Bucket="meta", Key="c", Body=b"x", IfMatch='"bad"')) == "PreconditionFailed"
assert body("c") == b"one"
second = s3.put_object(Bucket="meta", Key="c", Body=b"two", IfMatch=first)["ETag"]
assert body("c") == b"two"
assert error_code(lambda: s3.put_object(Bucket="meta", Key="c", Body=b"x", IfMatch=first)) == "PreconditionFailed"
s3.put_object(Bucket="meta", Key="c", Body=b"three", IfNoneMatch=first)
assert error_code(lambda: s3.put_object(Bucket="meta", Key="none", Body=b"x", IfMatch="*")) == "NoSuchKey"

# A Complete with If-Match: refused over another object, the upload kept; done over its own.
etag_c = s3.head_object(Bucket="meta", Key="c")["ETag"]
uid = s3.create_multipart_upload(Bucket="meta", Key="c")["UploadId"]
part = s3.upload_part(Bucket="meta", Key="c", UploadId=uid, PartNumber=1, Body=b"mp")["ETag"]
parts = {"Parts": [{"PartNumber": 1, "ETag": part}]}
complete = lambda match: s3.complete_multipart_upload(
    Bucket="meta", Key="c", UploadId=uid, IfMatch=match, MultipartUpload=parts
)
assert error_code(lambda: complete(second)) == "PreconditionFailed"
assert body("c") == b"three"
complete(etag_c)
assert body("c") == b"mp"

# Conditional deletes: a failing condition leaves the object; a missing object is no error.
head = s3.head_object(Bucket="meta", Key="c")
assert error_code(lambda: s3.delete_object(Bucket="meta", Key="c", IfMatch='"bad"')) == "PreconditionFailed"
assert error_code(lambda: s3.delete_object(Bucket="meta", Key="c", IfMatchSize=99)) == "PreconditionFailed"
old = datetime.datetime(2015, 1, 1, tzinfo=datetime.timezone.utc)
assert error_code(lambda: s3.delete_object(Bucket="meta", Key="c", IfMatchLastModifiedTime=old)) == "PreconditionFailed"
assert body("c") == b"mp"
s3.delete_object(Bucket="meta", Key="c", IfMatch=head["ETag"], IfMatchSize=2)
assert error_code(lambda: s3.head_object(Bucket="meta", Key="c")) == "404"
s3.delete_object(Bucket="meta", Key="c", IfMatch='"bad"')

# Tags: with the PUT, counted on GET and HEAD, replaced and removed on their own without
# touching Last-Modified; S3's limits refused as InvalidTag.
s3.put_object(Bucket="meta", Key="t", Body=b"tagged", Tagging="a=1&b=two%20words")
assert tags("t") == {"a": "1", "b": "two words"}
assert s3.get_object(Bucket="meta", Key="t")["TagCount"] == 2
head = s3.head_object(Bucket="meta", Key="t")
assert head["ResponseMetadata"]["HTTPHeaders"]["x-amz-tagging-count"] == "2", head
s3.put_object_tagging(Bucket="meta", Key="t", Tagging={"TagSet": [{"Key": "k", "Value": "v"}]})
assert tags("t") == {"k": "v"}
assert s3.head_object(Bucket="meta", Key="t")["LastModified"] == head["LastModified"]
assert s3.head_object(Bucket="meta", Key="t")["ETag"] == head["ETag"]
eleven = {"TagSet": [{"Key": str(i), "Value": ""} for i in range(11)]}
assert error_code(lambda: s3.put_object_tagging(Bucket="meta", Key="t", Tagging=eleven)) == "InvalidTag"
long_key = {"TagSet": [{"Key": "k" * 129, "Value": ""}]}
assert error_code(lambda: s3.put_object_tagging(Bucket="meta", Key="t", Tagging=long_key)) == "InvalidTag"
assert error_code(lambda: s3.put_object(Bucket="meta", Key="t2", Body=b"x", Tagging="a=1&a=2")) == "InvalidTag"
assert tags("t") == {"k": "v"}

# A copy keeps the source's tags (COPY, the default) or takes its own (REPLACE).
s3.copy_object(Bucket="meta", Key="copied", CopySource={"Bucket": "meta", "Key": "t"})
assert tags("copied") == {"k": "v"}
s3.copy_object(
    Bucket="meta", Key="retagged", CopySource={"Bucket": "meta", "Key": "t"},
    TaggingDirective="REPLACE", Tagging="new=tag",
)
assert tags("retagged") == {"new": "tag"}
s3.delete_object_tagging(Bucket="meta", Key="t")
assert tags("t") == {} and "TagCount" not in s3.get_object(Bucket="meta", Key="t")

# Standard headers: kept as sent, returned on GET and HEAD, copied or replaced with the
# metadata, overridden for one GET by response-*.
expires = datetime.datetime(2037, 10, 21, 7, 28, tzinfo=datetime.timezone.utc)
sent = {
    "CacheControl": "public, max-age=14400",
    "ContentDisposition": 'attachment; filename="x.txt"',
    "ContentEncoding": "gzip",
    "ContentLanguage": "fr",
    "Expires": expires,
}
s3.put_object(Bucket="meta", Key="h", Body=b"headers", ContentType="text/plain", **sent)


def stored(key):
    head = s3.head_object(Bucket="meta", Key=key)
    return {name: head.get(name) for name in sent}


assert stored("h") == sent, stored("h")
got = s3.get_object(Bucket="meta", Key="h")
assert {name: got.get(name) for name in sent} == sent
s3.copy_object(Bucket="meta", Key="h2", CopySource={"Bucket": "meta", "Key": "h"})
assert stored("h2") == sent
s3.copy_object(
    Bucket="meta", Key="h3", CopySource={"Bucket": "meta", "Key": "h"},
    MetadataDirective="REPLACE", CacheControl="no-store",
)
assert stored("h3") == {**{name: None for name in sent}, "CacheControl": "no-store"}, stored("h3")
over = s3.get_object(Bucket="meta", Key="h", ResponseCacheControl="no-cache", ResponseContentType="a/b")
assert (over["CacheControl"], over["ContentType"]) == ("no-cache", "a/b")

# A multipart upload keeps its headers and tags through the Complete, and its part sizes:
# partNumber and GetObjectAttributes find each part.
uid = s3.create_multipart_upload(
    Bucket="meta", Key="mp", CacheControl="max-age=1", Tagging="mp=yes"
)["UploadId"]
sizes = [5 * 1024 * 1024, 1234]
etags = [
    s3.upload_part(Bucket="meta", Key="mp", UploadId=uid, PartNumber=i + 1, Body=bytes([i + 1]) * size)["ETag"]
    for i, size in enumerate(sizes)
]
done = s3.complete_multipart_upload(
    Bucket="meta", Key="mp", UploadId=uid,
    MultipartUpload={"Parts": [{"PartNumber": i + 1, "ETag": e} for i, e in enumerate(etags)]},
)
assert tags("mp") == {"mp": "yes"}
assert s3.head_object(Bucket="meta", Key="mp")["CacheControl"] == "max-age=1"
part2 = s3.get_object(Bucket="meta", Key="mp", PartNumber=2)
assert (part2["PartsCount"], part2["ContentLength"]) == (2, 1234)
assert part2["Body"].read() == bytes([2]) * 1234
attributes = s3.get_object_attributes(
    Bucket="meta", Key="mp", ObjectAttributes=["ETag", "ObjectSize", "ObjectParts", "StorageClass"], MaxParts=1
)
assert attributes["ETag"] == done["ETag"].strip('"'), attributes
assert attributes["ObjectSize"] == sum(sizes)
listed = attributes["ObjectParts"]
assert (listed["TotalPartsCount"], listed["IsTruncated"], listed["NextPartNumberMarker"]) == (2, True, 1)
assert [(p["PartNumber"], p["Size"]) for p in listed["Parts"]] == [(1, sizes[0])]
print("ok")
