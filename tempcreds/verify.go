package tempcreds

import (
	"context"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sts"

	"github.com/credgate/credgate/api/v1alpha1"
)

// probeTimeout bounds the call behind the Verified condition.
const probeTimeout = 10 * time.Second

// Verify makes one real call with creds, as a pod would: HeadBucket on spec.verify.bucket
// when set, else STS GetCallerIdentity against AWS. S3-compatible servers mostly lack
// GetCallerIdentity: without verify.bucket their credentials are not probed (reason
// NoProbe). It returns the Verified condition's reason and message.
func Verify(ctx context.Context, a *v1alpha1.AWS, creds Credentials) (reason, message string, ok bool) {
	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	provider := credentials.NewStaticCredentialsProvider(creds.AccessKeyID, creds.SecretAccessKey, creds.SessionToken)
	region := regionOrDefault(a.Region)
	switch {
	case a.Verify != nil:
		client := s3.New(s3.Options{Region: region, Credentials: provider, UsePathStyle: a.Endpoint != "",
			BaseEndpoint: optional(a.Endpoint)})
		if _, err := client.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: aws.String(a.Verify.Bucket)}); err != nil {
			return ReasonProbeFailed, fmt.Sprintf("HeadBucket %s with the temporary credentials: %v", a.Verify.Bucket, err), false
		}
		return ReasonProbeSucceeded, fmt.Sprintf("HeadBucket %s succeeded with the temporary credentials", a.Verify.Bucket), true
	case a.Endpoint == "":
		client := sts.New(sts.Options{Region: region, Credentials: provider})
		out, err := client.GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
		if err != nil {
			return ReasonProbeFailed, fmt.Sprintf("STS GetCallerIdentity with the temporary credentials: %v", err), false
		}
		return ReasonProbeSucceeded, fmt.Sprintf("STS GetCallerIdentity: %s", aws.ToString(out.Arn)), true
	}
	return ReasonNoProbe, "S3-compatible endpoint without spec.aws.verify.bucket: nothing to probe", false
}

// regionOrDefault is region, or us-east-1 (where AWS's global STS and S3 endpoints live;
// S3-compatible servers take any region).
func regionOrDefault(region string) string {
	if region == "" {
		return "us-east-1"
	}
	return region
}

func optional(s string) *string {
	if s == "" {
		return nil
	}
	return aws.String(s)
}
