#!/usr/bin/env bash
# LocalStack init hook (runs inside the container once S3 is ready): creates the bucket the
# examples and .env.example use. Idempotent.
set -euo pipefail
bucket="${CAIRN_TEST_BUCKET:-cairn-test}"
if awslocal s3api head-bucket --bucket "$bucket" >/dev/null 2>&1; then
  echo "bucket $bucket already exists"
else
  awslocal s3api create-bucket --bucket "$bucket" >/dev/null
  echo "created bucket $bucket"
fi
