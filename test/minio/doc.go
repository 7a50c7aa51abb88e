// Package minio runs a MinIO server (built from source into bin/minio by make minio) on
// 127.0.0.1 for tests of S3 and STS: the AWS SDK talks to it as to AWS.
package minio
