#!/usr/bin/env python3
"""Creates a bucket on an S3-compatible endpoint (AWS Signature V4, stdlib only)."""
import datetime, hashlib, hmac, sys, urllib.request, urllib.error, urllib.parse

def sign(key, msg):
    return hmac.new(key, msg.encode(), hashlib.sha256).digest()

def main(endpoint, bucket, access, secret, region="us-east-1"):
    url = urllib.parse.urlsplit(endpoint)
    host = url.netloc
    now = datetime.datetime.now(datetime.timezone.utc)
    amz_date, day = now.strftime("%Y%m%dT%H%M%SZ"), now.strftime("%Y%m%d")
    payload = hashlib.sha256(b"").hexdigest()
    headers = {"host": host, "x-amz-content-sha256": payload, "x-amz-date": amz_date}
    signed = ";".join(sorted(headers))
    canonical = "\n".join(["PUT", "/" + bucket, "",
                           "".join(f"{k}:{headers[k]}\n" for k in sorted(headers)),
                           signed, payload])
    scope = f"{day}/{region}/s3/aws4_request"
    to_sign = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope,
                         hashlib.sha256(canonical.encode()).hexdigest()])
    k = sign(("AWS4" + secret).encode(), day)
    for part in (region, "s3", "aws4_request"):
        k = sign(k, part)
    signature = hmac.new(k, to_sign.encode(), hashlib.sha256).hexdigest()
    req = urllib.request.Request(f"{endpoint}/{bucket}", method="PUT", data=b"")
    for name, value in headers.items():
        if name != "host":
            req.add_header(name, value)
    req.add_header("Authorization",
                   f"AWS4-HMAC-SHA256 Credential={access}/{scope}, SignedHeaders={signed}, Signature={signature}")
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            print(f"bucket {bucket}: created ({r.status})")
    except urllib.error.HTTPError as e:
        body = e.read().decode(errors="replace")
        if "BucketAlreadyOwnedByYou" in body or "BucketAlreadyExists" in body:
            print(f"bucket {bucket}: already there")
            return
        sys.exit(f"bucket {bucket}: HTTP {e.code}: {body}")

if __name__ == "__main__":
    main(*sys.argv[1:])
