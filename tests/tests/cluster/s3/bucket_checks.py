"""Bucket configurations through boto3 against a bigfs-gateway; run by the `s3_buckets` suite.

Arguments: ENDPOINT ACCESS_KEY SECRET_KEY PHASE [OTHER_ACCESS_KEY OTHER_SECRET_KEY]. Phases:
  set        every configuration set, read back equal, bad ones refused; CORS on the wire
  kept       (run by a new gateway process) every configuration still there
  gone       each deleted; set again, the bucket deleted and created again: none is left
  acl        what an ACL lets an unsigned request read, and only that; owners and grants kept
             (OTHER_* is a key of the user `other-id`, "Other User"; the test key is `bigfs`)
  lifecycle  (a gateway whose lifecycle day is one second) objects and an upload under `old/`
             expire after a day, and `tagged/yes` (by its tag); those under `keep/` (a disabled
             rule), `big/small` (a size filter it does not pass) and `tagged/no` stay
Every check asserts; the first failure ends the script with a traceback and a non-zero exit.
"""
import datetime
import sys
import time
import urllib.error
import urllib.request

import boto3
import botocore
from botocore import UNSIGNED
from botocore.config import Config

endpoint, access, secret, phase = sys.argv[1:5]


def client(key=access, secret_key=secret, signed=True):
    extra = {} if signed else {"signature_version": UNSIGNED}
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=key,
        aws_secret_access_key=secret_key,
        region_name="us-east-1",
        config=Config(retries={"max_attempts": 1}, s3={"addressing_style": "path"}, **extra),
    )


s3 = client()
BUCKET = "configs"


def error(call):
    try:
        call()
    except botocore.exceptions.ClientError as e:
        return e.response["ResponseMetadata"]["HTTPStatusCode"], e.response["Error"]["Code"]
    raise AssertionError("the call succeeded")


LIFECYCLE = [
    {"ID": "old", "Expiration": {"Days": 31}, "Prefix": "old/", "Status": "Enabled"},
    {"ID": "uploads", "Filter": {"Prefix": "tmp/"}, "Status": "Disabled",
     "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 2}},
]
CORS = [{"AllowedMethods": ["GET", "PUT"], "AllowedOrigins": ["*.example.com"],
         "ExposeHeaders": ["ETag"], "MaxAgeSeconds": 60}]
TAGS = [{"Key": "team", "Value": "storage"}]
BLOCK = {"BlockPublicAcls": True, "IgnorePublicAcls": True, "BlockPublicPolicy": True,
         "RestrictPublicBuckets": False}
OWNERSHIP = [{"ObjectOwnership": "BucketOwnerPreferred"}]


def set_all():
    s3.put_bucket_lifecycle_configuration(Bucket=BUCKET, LifecycleConfiguration={"Rules": LIFECYCLE})
    s3.put_bucket_cors(Bucket=BUCKET, CORSConfiguration={"CORSRules": CORS})
    s3.put_bucket_tagging(Bucket=BUCKET, Tagging={"TagSet": TAGS})
    s3.put_public_access_block(Bucket=BUCKET, PublicAccessBlockConfiguration=BLOCK)
    s3.put_bucket_ownership_controls(Bucket=BUCKET, OwnershipControls={"Rules": OWNERSHIP})


def check_all():
    assert s3.get_bucket_lifecycle_configuration(Bucket=BUCKET)["Rules"] == LIFECYCLE
    assert s3.get_bucket_cors(Bucket=BUCKET)["CORSRules"] == CORS
    assert s3.get_bucket_tagging(Bucket=BUCKET)["TagSet"] == TAGS
    assert s3.get_public_access_block(Bucket=BUCKET)["PublicAccessBlockConfiguration"] == BLOCK
    assert s3.get_bucket_ownership_controls(Bucket=BUCKET)["OwnershipControls"]["Rules"] == OWNERSHIP


def check_none():
    for call, code in [
        (s3.get_bucket_lifecycle_configuration, "NoSuchLifecycleConfiguration"),
        (s3.get_bucket_cors, "NoSuchCORSConfiguration"),
        (s3.get_bucket_tagging, "NoSuchTagSet"),
        (s3.get_public_access_block, "NoSuchPublicAccessBlockConfiguration"),
        (s3.get_bucket_ownership_controls, "OwnershipControlsNotFoundError"),
    ]:
        assert error(lambda: call(Bucket=BUCKET)) == (404, code), (call, code)


def bad_lifecycle(rule):
    return error(lambda: s3.put_bucket_lifecycle_configuration(
        Bucket=BUCKET, LifecycleConfiguration={"Rules": [rule]}))


def request(method, url, headers):
    """Status and headers of a plain HTTP request (a browser's, unsigned or presigned)."""
    try:
        with urllib.request.urlopen(urllib.request.Request(url, method=method, headers=headers)) as r:
            return r.status, r.headers
    except urllib.error.HTTPError as e:
        return e.code, e.headers


def phase_set():
    s3.create_bucket(Bucket=BUCKET)
    check_none()
    set_all()
    check_all()
    s3.put_object(Bucket=BUCKET, Key="k", Body=b"v")
    # Bad configurations are refused as S3 refuses them, and keep the one stored.
    rule = {"ID": "r", "Expiration": {"Days": 1}, "Prefix": "p/", "Status": "Enabled"}
    assert bad_lifecycle(dict(rule, Expiration={"Days": 0})) == (400, "InvalidArgument")
    assert bad_lifecycle(dict(rule, ID="a" * 256)) == (400, "InvalidArgument")
    assert bad_lifecycle(dict(rule, Status="enabled")) == (400, "MalformedXML")
    midnight = datetime.datetime(2030, 1, 1, 12, tzinfo=datetime.timezone.utc)
    assert bad_lifecycle(dict(rule, Expiration={"Date": midnight})) == (400, "InvalidArgument")
    assert error(lambda: s3.put_bucket_lifecycle_configuration(
        Bucket=BUCKET, LifecycleConfiguration={"Rules": [rule, rule]})) == (400, "InvalidArgument")
    # What BigFS cannot honour is not accepted.
    assert bad_lifecycle(dict(rule, Transitions=[{"Days": 1, "StorageClass": "GLACIER"}]))[0] == 501
    assert error(lambda: s3.put_bucket_cors(Bucket=BUCKET, CORSConfiguration={"CORSRules": [
        {"AllowedMethods": ["PATCH"], "AllowedOrigins": ["*"]}]}))[0] == 400
    assert error(lambda: s3.put_bucket_tagging(Bucket=BUCKET, Tagging={"TagSet": TAGS + TAGS}))[1] == "InvalidTag"
    check_all()
    # Never versioned, never public.
    assert "Status" not in s3.get_bucket_versioning(Bucket=BUCKET)
    assert s3.get_bucket_policy_status(Bucket=BUCKET)["PolicyStatus"]["IsPublic"] is False
    assert error(lambda: s3.get_bucket_cors(Bucket="nobucket"))[1] == "NoSuchBucket"
    # CORS on the wire: a preflight answered from the rules, headers on an allowed GET.
    url = f"{endpoint}/{BUCKET}/k"
    status, headers = request("OPTIONS", url, {"Origin": "https://app.example.com",
                                               "Access-Control-Request-Method": "PUT"})
    assert status == 200, status
    assert headers["Access-Control-Allow-Origin"] == "https://app.example.com", headers
    assert headers["Access-Control-Allow-Methods"] == "GET, PUT", headers
    assert headers["Access-Control-Max-Age"] == "60", headers
    for origin, method in [("https://evil.com", "GET"), ("https://app.example.com", "DELETE")]:
        status, _ = request("OPTIONS", url, {"Origin": origin, "Access-Control-Request-Method": method})
        assert status == 403, (origin, method, status)
    assert request("OPTIONS", url, {"Origin": "https://app.example.com"})[0] == 400
    presigned = s3.generate_presigned_url("get_object", Params={"Bucket": BUCKET, "Key": "k"})
    status, headers = request("GET", presigned, {"Origin": "https://app.example.com"})
    assert status == 200 and headers["Access-Control-Allow-Origin"] == "https://app.example.com"
    assert headers["Access-Control-Expose-Headers"] == "ETag", headers
    status, headers = request("GET", presigned, {"Origin": "https://evil.com"})
    assert status == 200 and "Access-Control-Allow-Origin" not in headers, headers


def phase_kept():
    check_all()


def phase_gone():
    s3.delete_bucket_lifecycle(Bucket=BUCKET)
    s3.delete_bucket_cors(Bucket=BUCKET)
    s3.delete_bucket_tagging(Bucket=BUCKET)
    s3.delete_public_access_block(Bucket=BUCKET)
    s3.delete_bucket_ownership_controls(Bucket=BUCKET)
    check_none()
    # Deleting what is not there succeeds, as in S3.
    assert s3.delete_bucket_lifecycle(Bucket=BUCKET)["ResponseMetadata"]["HTTPStatusCode"] == 204
    set_all()
    s3.delete_object(Bucket=BUCKET, Key="k")
    s3.delete_bucket(Bucket=BUCKET)
    s3.create_bucket(Bucket=BUCKET)
    check_none()


ALL_USERS = "http://acs.amazonaws.com/groups/global/AllUsers"


def grants(acl):
    return sorted((g["Grantee"].get("ID") or g["Grantee"].get("URI"), g["Permission"])
                  for g in acl["Grants"])


def denied(call):
    assert error(call) == (403, "AccessDenied"), call


def phase_acl():
    other = client(*sys.argv[5:7])
    anonymous = client(signed=False)
    # A public-read bucket lists for anyone; its objects are as their own ACLs say.
    s3.create_bucket(Bucket="open", ACL="public-read")
    acl = s3.get_bucket_acl(Bucket="open")
    assert acl["Owner"] == {"ID": "bigfs", "DisplayName": "bigfs"}, acl["Owner"]
    assert grants(acl) == [("bigfs", "FULL_CONTROL"), (ALL_USERS, "READ")], grants(acl)
    assert s3.get_bucket_policy_status(Bucket="open")["PolicyStatus"]["IsPublic"] is True
    s3.put_object(Bucket="open", Key="public", Body=b"for all", ACL="public-read")
    s3.put_object(Bucket="open", Key="private", Body=b"mine")
    assert [o["Key"] for o in anonymous.list_objects_v2(Bucket="open")["Contents"]] == ["private", "public"]
    assert anonymous.get_object(Bucket="open", Key="public")["Body"].read() == b"for all"
    denied(lambda: anonymous.get_object(Bucket="open", Key="private"))
    # A missing key is told to whoever may list the bucket, as S3 does.
    assert error(lambda: anonymous.get_object(Bucket="open", Key="missing")) == (404, "NoSuchKey")
    denied(lambda: anonymous.get_bucket_acl(Bucket="open"))
    denied(lambda: anonymous.put_object(Bucket="open", Key="x", Body=b"x"))
    denied(lambda: anonymous.delete_object(Bucket="open", Key="public"))
    assert grants(s3.get_object_acl(Bucket="open", Key="private")) == [("bigfs", "FULL_CONTROL")]

    # A copy, or a new write of the key, does not inherit a public ACL.
    s3.copy_object(Bucket="open", Key="copy", CopySource={"Bucket": "open", "Key": "public"})
    denied(lambda: anonymous.get_object(Bucket="open", Key="copy"))
    s3.put_object(Bucket="open", Key="public", Body=b"now private")
    denied(lambda: anonymous.get_object(Bucket="open", Key="public"))
    s3.put_object_acl(Bucket="open", Key="public", ACL="public-read")
    assert anonymous.get_object(Bucket="open", Key="public")["Body"].read() == b"now private"

    # Made private, the bucket keeps anonymous requests out; its public object stays readable.
    s3.put_bucket_acl(Bucket="open", ACL="private")
    denied(lambda: anonymous.list_objects_v2(Bucket="open"))
    denied(lambda: anonymous.get_object(Bucket="open", Key="missing"))
    assert anonymous.get_object(Bucket="open", Key="public")["Body"].read() == b"now private"
    assert s3.get_bucket_policy_status(Bucket="open")["PolicyStatus"]["IsPublic"] is False

    # A public access block ignores public ACLs, or refuses them.
    s3.put_public_access_block(Bucket="open", PublicAccessBlockConfiguration={
        "IgnorePublicAcls": True, "BlockPublicAcls": False})
    denied(lambda: anonymous.get_object(Bucket="open", Key="public"))
    s3.put_public_access_block(Bucket="open", PublicAccessBlockConfiguration={
        "IgnorePublicAcls": False, "BlockPublicAcls": True})
    assert error(lambda: s3.put_bucket_acl(Bucket="open", ACL="public-read")) == (403, "AccessDenied")
    assert error(lambda: s3.put_object(Bucket="open", Key="new", Body=b"x", ACL="public-read"))[0] == 403
    assert error(lambda: s3.head_object(Bucket="open", Key="new"))[0] == 404
    s3.delete_public_access_block(Bucket="open")

    # Anonymous writes are not taken; grants name known users by ID.
    assert error(lambda: s3.put_bucket_acl(Bucket="open", ACL="public-read-write"))[0] == 501
    assert error(lambda: s3.put_bucket_acl(Bucket="open", GrantRead='id="nobody"')) == (400, "InvalidArgument")
    assert error(lambda: s3.put_bucket_acl(Bucket="open", GrantRead='emailAddress="a@b.c"'))[1] == \
        "UnresolvableGrantByEmailAddress"
    # A body's grants are kept, groups listed first as S3 lists them.
    s3.put_bucket_acl(Bucket="open", AccessControlPolicy={
        "Owner": {"ID": "bigfs"},
        "Grants": [{"Grantee": {"Type": "CanonicalUser", "ID": "bigfs"}, "Permission": "FULL_CONTROL"},
                   {"Grantee": {"Type": "Group", "URI": ALL_USERS}, "Permission": "READ"}]})
    acl = s3.get_bucket_acl(Bucket="open")
    assert [g["Permission"] for g in acl["Grants"]] == ["READ", "FULL_CONTROL"], acl["Grants"]
    s3.put_bucket_acl(Bucket="open", GrantRead='id="other-id"', GrantFullControl='id="bigfs"')
    acl = s3.get_bucket_acl(Bucket="open")
    assert grants(acl) == [("bigfs", "FULL_CONTROL"), ("other-id", "READ")], grants(acl)
    assert {g["Grantee"].get("DisplayName") for g in acl["Grants"]} == {"bigfs", "Other User"}

    # Ownership controls that disable ACLs refuse public ones.
    s3.put_bucket_acl(Bucket="open", ACL="public-read")
    assert error(lambda: s3.put_bucket_ownership_controls(Bucket="open", OwnershipControls={
        "Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]}))[1] == "InvalidBucketAclWithObjectOwnership"
    s3.put_bucket_acl(Bucket="open", ACL="private")
    s3.put_bucket_ownership_controls(Bucket="open", OwnershipControls={
        "Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]})
    assert error(lambda: s3.put_object_acl(Bucket="open", Key="private", ACL="public-read"))[1] == \
        "AccessControlListNotSupported"

    # Buckets are owned by the user of the key that made them; names are shared by all users.
    other.create_bucket(Bucket="theirs")
    assert s3.get_bucket_acl(Bucket="theirs")["Owner"]["ID"] == "other-id"
    other.create_bucket(Bucket="theirs")
    assert error(lambda: s3.create_bucket(Bucket="theirs")) == (409, "BucketAlreadyExists")


def phase_lifecycle():
    B = "expiring"
    s3.create_bucket(Bucket=B)
    for key in ["old/a", "old/deep/b", "keep/c", "big/small"]:
        s3.put_object(Bucket=B, Key=key, Body=b"12345")
    s3.put_object(Bucket=B, Key="big/large", Body=b"x" * 100)
    s3.put_object(Bucket=B, Key="tagged/yes", Body=b"1", Tagging="expire=yes&team=a")
    s3.put_object(Bucket=B, Key="tagged/no", Body=b"1", Tagging="expire=no")
    old_upload = s3.create_multipart_upload(Bucket=B, Key="old/part")["UploadId"]
    kept_upload = s3.create_multipart_upload(Bucket=B, Key="keep/part")["UploadId"]
    s3.put_bucket_lifecycle_configuration(Bucket=B, LifecycleConfiguration={"Rules": [
        {"ID": "old", "Filter": {"Prefix": "old/"}, "Status": "Enabled",
         "Expiration": {"Days": 1}, "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 1}},
        {"ID": "big", "Filter": {"And": {"Prefix": "big/", "ObjectSizeGreaterThan": 50}},
         "Status": "Enabled", "Expiration": {"Days": 1}},
        {"ID": "off", "Prefix": "keep/", "Status": "Disabled", "Expiration": {"Days": 1}},
        {"ID": "tags", "Filter": {"And": {"Prefix": "tagged/", "Tags": [
            {"Key": "expire", "Value": "yes"}]}}, "Status": "Enabled", "Expiration": {"Days": 1}},
    ]})

    def keys():
        return sorted(o["Key"] for o in s3.list_objects_v2(Bucket=B).get("Contents", []))

    def uploads():
        return sorted(u["UploadId"] for u in s3.list_multipart_uploads(Bucket=B).get("Uploads", []))

    want = ["big/small", "keep/c", "tagged/no"]
    deadline = time.time() + 30
    while (keys() != want or uploads() != [kept_upload]) and time.time() < deadline:
        time.sleep(0.5)
    assert keys() == want, keys()
    assert uploads() == [kept_upload], (uploads(), old_upload, kept_upload)


{"set": phase_set, "kept": phase_kept, "gone": phase_gone, "acl": phase_acl,
 "lifecycle": phase_lifecycle}[phase]()
print("ok")
