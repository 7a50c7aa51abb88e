//go:build e2e

package tempcreds_test

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"

	"github.com/credgate/credgate/tempcreds"
	"github.com/credgate/credgate/test/minio"
)

var srv *minio.Server

func TestMain(m *testing.M) {
	root, err := filepath.Abs("..")
	if err == nil {
		srv, err = minio.Start(context.Background(), root)
	}
	if err != nil {
		os.Stderr.WriteString("tempcreds: " + err.Error() + "\n")
		os.Exit(1)
	}
	code := m.Run()
	srv.Stop()
	os.Exit(code)
}

// dataOnly is the session policy of the tests: read objects of bucket data, nothing else.
const dataOnly = `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["s3:GetObject"],"Resource":["arn:aws:s3:::data/*"]}]}`

func put(t *testing.T, c *s3.Client, bucket, key, body string) {
	t.Helper()
	if _, err := c.CreateBucket(t.Context(), &s3.CreateBucketInput{Bucket: aws.String(bucket)}); err != nil &&
		!strings.Contains(err.Error(), "BucketAlreadyOwnedByYou") {
		t.Fatal(err)
	}
	if _, err := c.PutObject(t.Context(), &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(key),
		Body: strings.NewReader(body)}); err != nil {
		t.Fatal(err)
	}
}

func get(ctx context.Context, c *s3.Client, bucket, key string) (string, error) {
	out, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	if err != nil {
		return "", err
	}
	defer out.Body.Close()
	b, err := io.ReadAll(out.Body)
	return string(b), err
}

// TestAssumeRoleDownScoped mints session credentials from long-lived keys against a real
// S3/STS server: the session reads data/x and is refused other/x, which the keys could read.
func TestAssumeRoleDownScoped(t *testing.T) {
	root := srv.Root()
	put(t, root, "data", "x", "training data")
	put(t, root, "other", "x", "someone else's")
	if _, err := get(t.Context(), root, "other", "x"); err != nil {
		t.Fatalf("the long-lived keys cannot read other/x themselves: %v", err)
	}

	creds, err := tempcreds.AssumeRole(t.Context(), tempcreds.Source{AccessKeyID: minio.RootUser, SecretAccessKey: minio.RootPassword},
		tempcreds.Request{RoleARN: "arn:aws:iam::000000000000:role/trainer", SessionName: tempcreds.SessionName("ml-team", "s3-data"),
			Duration: 15 * time.Minute, SessionPolicy: dataOnly, Endpoint: srv.Endpoint})
	if err != nil {
		t.Fatal(err)
	}
	if creds.AccessKeyID == minio.RootUser || creds.SessionToken == "" {
		t.Fatalf("not temporary credentials: %+v", creds.AccessKeyID)
	}
	if left := time.Until(creds.Expiration); left <= 0 || left > 16*time.Minute {
		t.Errorf("credentials expire in %s, want about 15m", left)
	}
	session := srv.S3(creds.AccessKeyID, creds.SecretAccessKey, creds.SessionToken)
	if body, err := get(t.Context(), session, "data", "x"); err != nil || body != "training data" {
		t.Errorf("read data/x with the session: %q, %v", body, err)
	}
	_, err = get(t.Context(), session, "other", "x")
	var apiErr smithy.APIError
	if !errors.As(err, &apiErr) || apiErr.ErrorCode() != "AccessDenied" {
		t.Errorf("read other/x with the session: err = %v, want AccessDenied", err)
	}
}

// TestAssumeRoleWrongSourceKey: a wrong long-lived key is an STS error, not credentials.
func TestAssumeRoleWrongSourceKey(t *testing.T) {
	_, err := tempcreds.AssumeRole(t.Context(), tempcreds.Source{AccessKeyID: minio.RootUser, SecretAccessKey: "wrong"},
		tempcreds.Request{RoleARN: "arn:aws:iam::000000000000:role/trainer", SessionName: "credgate@t.wrong",
			Duration: 15 * time.Minute, Endpoint: srv.Endpoint})
	if err == nil {
		t.Fatal("AssumeRole succeeded with a wrong secret key")
	}
	if strings.Contains(err.Error(), "wrong") {
		t.Errorf("the error quotes the secret: %v", err)
	}
}
