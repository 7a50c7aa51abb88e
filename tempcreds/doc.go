// Package tempcreds keeps the temporary credentials that credgate refresher mints: AWS
// credentials from STS AssumeRole (aws-sdk-go-v2), down-scoped by a session policy, and GCP
// access tokens of an impersonated service account from IAM Credentials generateAccessToken.
// The long-lived source keys stay in the refresher's namespace; pods get credentials that
// expire and can do only what the target role or service account (and session policy)
// allows. It works against AWS, S3-compatible servers with an STS endpoint (MinIO) and
// Google Cloud.
package tempcreds
