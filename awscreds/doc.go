// Package awscreds mints temporary, down-scoped AWS credentials with STS AssumeRole
// (aws-sdk-go-v2): long-lived keys stay with credgate, pods get credentials that expire and
// can do only what a session policy allows. It works against AWS and S3-compatible servers
// with an STS endpoint (MinIO).
package awscreds
