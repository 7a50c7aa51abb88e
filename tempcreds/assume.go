package tempcreds

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/sts"
)

// STS bounds on a role session's duration.
const (
	MinDuration = 15 * time.Minute
	MaxDuration = 12 * time.Hour
)

// Source is the long-lived identity credgate assumes roles with. It never leaves credgate.
type Source struct {
	AccessKeyID, SecretAccessKey string
}

// Request is one AssumeRole.
type Request struct {
	RoleARN    string
	ExternalID string
	// SessionName attributes the session (SessionName builds one from namespace and
	// credential).
	SessionName string
	// Duration is bounded to [MinDuration, MaxDuration] unless AllowShort (tests of rotation
	// against servers that accept shorter sessions).
	Duration   time.Duration
	AllowShort bool
	// SessionPolicy, an IAM policy document, narrows what the session may do.
	SessionPolicy string
	Region        string
	// Endpoint is the STS endpoint of an S3-compatible server; empty for AWS.
	Endpoint string
}

// Credentials are a session's temporary keys.
type Credentials struct {
	AccessKeyID, SecretAccessKey, SessionToken string
	Expiration                                 time.Time
}

// ErrInvalid marks a request credgate refuses before calling STS.
var ErrInvalid = errors.New("invalid AssumeRole request")

// AssumeRole mints temporary credentials for req with src.
func AssumeRole(ctx context.Context, src Source, req Request) (Credentials, error) {
	d, err := boundDuration(req.Duration, req.AllowShort)
	if err != nil {
		return Credentials{}, err
	}
	if !validSessionName.MatchString(req.SessionName) {
		return Credentials{}, fmt.Errorf("%w: session name %q: 2 to 64 of A-Z a-z 0-9 and +=,.@-", ErrInvalid, req.SessionName)
	}
	client := sts.New(sts.Options{
		Region:       regionOrDefault(req.Region),
		Credentials:  credentials.NewStaticCredentialsProvider(src.AccessKeyID, src.SecretAccessKey, ""),
		BaseEndpoint: optional(req.Endpoint),
	})
	in := &sts.AssumeRoleInput{
		RoleArn:         aws.String(req.RoleARN),
		RoleSessionName: aws.String(req.SessionName),
		DurationSeconds: aws.Int32(int32(d / time.Second)),
	}
	if req.ExternalID != "" {
		in.ExternalId = aws.String(req.ExternalID)
	}
	if req.SessionPolicy != "" {
		in.Policy = aws.String(req.SessionPolicy)
	}
	out, err := client.AssumeRole(ctx, in)
	if err != nil {
		return Credentials{}, fmt.Errorf("assume role %s: %w", req.RoleARN, err)
	}
	c := out.Credentials
	if c == nil || c.AccessKeyId == nil || c.SecretAccessKey == nil || c.SessionToken == nil {
		return Credentials{}, fmt.Errorf("assume role %s: the answer holds no credentials", req.RoleARN)
	}
	creds := Credentials{AccessKeyID: *c.AccessKeyId, SecretAccessKey: *c.SecretAccessKey, SessionToken: *c.SessionToken}
	if c.Expiration != nil {
		creds.Expiration = *c.Expiration
	}
	return creds, nil
}

func boundDuration(d time.Duration, allowShort bool) (time.Duration, error) {
	switch {
	case d == 0:
		return time.Hour, nil
	case d > MaxDuration:
		return 0, fmt.Errorf("%w: duration %s is over STS's maximum of %s", ErrInvalid, d, MaxDuration)
	case d < MinDuration && !allowShort:
		return 0, fmt.Errorf("%w: duration %s is under STS's minimum of %s", ErrInvalid, d, MinDuration)
	}
	return d.Truncate(time.Second), nil
}

var (
	validSessionName = regexp.MustCompile(`^[\w+=,.@-]{2,64}$`)
	invalidInName    = regexp.MustCompile(`[^\w+=,.@-]`)
)

// SessionName is an attributable role session name for a credential in a namespace:
// "credgate@<namespace>.<credential>", invalid characters replaced by "-", cut to 64
// characters (CloudTrail shows it beside every call the session makes).
func SessionName(namespace, credential string) string {
	s := invalidInName.ReplaceAllString("credgate@"+namespace+"."+credential, "-")
	if len(s) > 64 {
		s = s[:64]
	}
	return strings.TrimRight(s, "-")
}
