//go:build e2e

package e2e

import (
	"context"
	"crypto/sha1" //nolint:gosec // MinIO derives role ARNs with it
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	smithyhttp "github.com/aws/smithy-go/transport/http"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/credgate/credgate/api/v1alpha1"
	"github.com/credgate/credgate/audit"
	credpkg "github.com/credgate/credgate/credential"
	"github.com/credgate/credgate/tempcreds"
	"github.com/credgate/credgate/test/cluster"
	"github.com/credgate/credgate/test/minio"
	"github.com/credgate/credgate/test/podenv"
)

// awsSession is the lifetime of every assumeRole session in these tests (credgate serve
// --aws-max-session-duration; the tests' MinIO accepts sessions this short): the refresher
// mints new credentials after about 20s, and the first ones expire after 30s.
const awsSession = 30 * time.Second

// dataOnly is the session policy of the tests: list bucket data and read its objects,
// nothing else — though the source keys can read everything.
const dataOnly = `{"Version":"2012-10-17","Statement":[` +
	`{"Effect":"Allow","Action":["s3:GetObject"],"Resource":["arn:aws:s3:::data/*"]},` +
	`{"Effect":"Allow","Action":["s3:ListBucket"],"Resource":["arn:aws:s3:::data"]}]}`

// trainerRoles is the role pattern the tests' sources grant.
const trainerRoles = "arn:aws:iam::000000000000:role/*"

// sourceSecret creates, in the refresher's namespace, a Secret of long-lived keys granted to
// the namespaces given, for the tests' roles, at MinIO's STS.
func sourceSecret(t *testing.T, name, id, secret string, namespaces ...string) {
	t.Helper()
	grantedSource(t, name, id, secret, map[string]string{tempcreds.GrantNamespaces: strings.Join(namespaces, ","),
		tempcreds.GrantRoleARNs: trainerRoles, tempcreds.GrantSTSEndpoint: s3srv.Endpoint})
}

// grantedSource creates a source Secret with the grant annotations given.
func grantedSource(t *testing.T, name, id, secret string, grant map[string]string) {
	t.Helper()
	s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: cluster.RefresherNamespace, Annotations: grant},
		StringData: map[string]string{tempcreds.SourceAccessKeyID: id, tempcreds.SourceSecretAccessKey: secret}}
	if err := c.Client.Create(t.Context(), s); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Client.Delete(context.Background(), s) })
}

// enableRefresher lets the refresher write Secrets in ns, as manifests/refresher/
// tenant-rolebinding.yaml does for a namespace the platform enables.
func enableRefresher(t *testing.T, ns string) {
	t.Helper()
	b := &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "credgate-refresher", Namespace: ns},
		RoleRef: rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "credgate-refresher-secrets"},
		Subjects: []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: cluster.RefresherAccount.Name,
			Namespace: cluster.RefresherAccount.Namespace}}}
	if err := c.Client.Create(t.Context(), b); err != nil {
		t.Fatal(err)
	}
}

// assumeRoleCredential creates an s3-compatible Credential of mode assumeRole against MinIO.
func assumeRoleCredential(t *testing.T, ns, name, source string) {
	t.Helper()
	cred := &v1alpha1.Credential{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: v1alpha1.CredentialSpec{Type: v1alpha1.TypeS3Compatible, AWS: &v1alpha1.AWS{
			Mode: v1alpha1.AWSAssumeRole, RoleARN: "arn:aws:iam::000000000000:role/trainer",
			Region: minio.Region, Endpoint: s3srv.Endpoint,
			SessionPolicy:   &apiextensionsv1.JSON{Raw: []byte(dataOnly)},
			SourceSecretRef: &v1alpha1.SecretReference{Name: source},
			Verify:          &v1alpha1.AWSVerify{Bucket: "data"},
		}}}
	if err := c.Client.Create(t.Context(), cred); err != nil {
		t.Fatal(err)
	}
}

// condition waits until the Credential's condition typ has status want, and returns it.
func condition(t *testing.T, ns, name, typ string, want metav1.ConditionStatus) (*v1alpha1.Credential, metav1.Condition) {
	t.Helper()
	var cred v1alpha1.Credential
	var cond metav1.Condition
	eventually(t, 30*time.Second, func() (bool, string) {
		if err := c.Client.Get(t.Context(), client.ObjectKey{Namespace: ns, Name: name}, &cred); err != nil {
			return false, err.Error()
		}
		got := meta.FindStatusCondition(cred.Status.Conditions, typ)
		if got == nil || got.Status != want {
			return false, fmt.Sprintf("credential %s: condition %s is %+v, want %s", name, typ, got, want)
		}
		cond = *got
		return true, ""
	})
	return &cred, cond
}

// processCredentials reads the temporary credentials in the managed Secret.
func processCredentials(t *testing.T, s *corev1.Secret) (id string, expires time.Time) {
	t.Helper()
	var out struct{ AccessKeyId, Expiration string } //nolint:revive // the credential_process field names
	if err := json.Unmarshal(s.Data[credpkg.AWSProcessKey], &out); err != nil {
		t.Fatal(err)
	}
	exp, err := time.Parse(time.RFC3339, out.Expiration)
	if err != nil {
		t.Fatal(err)
	}
	return out.AccessKeyId, exp
}

// seedBuckets creates buckets data and other, each with object x ("data bytes", "other bytes").
func seedBuckets(t *testing.T) {
	t.Helper()
	root := s3srv.Root()
	for _, b := range []string{"data", "other"} {
		if _, err := root.CreateBucket(t.Context(), &s3.CreateBucketInput{Bucket: aws.String(b)}); err != nil &&
			!strings.Contains(err.Error(), "BucketAlreadyOwnedByYou") {
			t.Fatal(err)
		}
		if _, err := root.PutObject(t.Context(), &s3.PutObjectInput{Bucket: aws.String(b), Key: aws.String("x"),
			Body: strings.NewReader(b + " bytes")}); err != nil {
			t.Fatal(err)
		}
	}
}

// sdkFromEnv builds an aws-sdk-go-v2 configuration and S3 client the way a program in the
// container would, from env and nothing else: every other AWS_ variable is unset, and HOME
// is empty (no ~/.aws).
func sdkFromEnv(t *testing.T, env map[string]string) (aws.Config, *s3.Client) {
	t.Helper()
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); strings.HasPrefix(k, "AWS_") {
			t.Setenv(k, "")
			os.Unsetenv(k)
		}
	}
	t.Setenv("HOME", t.TempDir())
	for k, v := range env {
		t.Setenv(k, v)
	}
	cfg, err := config.LoadDefaultConfig(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return cfg, s3.NewFromConfig(cfg)
}

// read gets bucket/key through c, returning the body or the HTTP status of the failure.
func read(t *testing.T, c *s3.Client, bucket, key string) (string, int, error) {
	t.Helper()
	out, err := c.GetObject(t.Context(), &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	if err != nil {
		var re *smithyhttp.ResponseError
		if errors.As(err, &re) {
			return "", re.HTTPStatusCode(), err
		}
		return "", 0, err
	}
	defer out.Body.Close()
	b, err := io.ReadAll(out.Body)
	return string(b), 200, err
}

// TestTemporaryAWSCredentials: an assumeRole Credential against a real S3/STS server. The
// refresher mints down-scoped session credentials into a Secret of the tenant namespace; a
// Job's pod, materialised as its container would see it, gets a real aws-sdk-go-v2 client
// configured only by its environment that reads data/x and is refused other/x; the refresher
// rotates the credentials, the same client goes on working after the first ones expire, and
// those no longer work at all.
func TestTemporaryAWSCredentials(t *testing.T) {
	seedBuckets(t)
	ns := namespace(t)
	enableRefresher(t, ns)
	sourceSecret(t, "minio-trainer-keys", minio.RootUser, minio.RootPassword, ns)
	assumeRoleCredential(t, ns, "s3", "minio-trainer-keys")

	cred, ready := condition(t, ns, "s3", v1alpha1.ConditionReady, metav1.ConditionTrue)
	if ready.Reason != tempcreds.ReasonMinted || cred.Status.ExpiresAt == nil || cred.Status.SecretName != "credgate-aws-s3" {
		t.Fatalf("status after minting: %+v", cred.Status)
	}
	if _, verified := condition(t, ns, "s3", v1alpha1.ConditionVerified, metav1.ConditionTrue); !strings.Contains(verified.Message, "HeadBucket data") {
		t.Errorf("Verified: %+v", verified)
	}
	var managed corev1.Secret
	if err := c.Client.Get(t.Context(), client.ObjectKey{Namespace: ns, Name: "credgate-aws-s3"}, &managed); err != nil {
		t.Fatal(err)
	}
	if ref := metav1.GetControllerOf(&managed); ref == nil || ref.Kind != "Credential" || ref.UID != cred.UID {
		t.Errorf("the managed Secret is not owned by the Credential: %v", ref)
	}
	firstKey, firstExpires := processCredentials(t, &managed)
	firstJSON := slices.Clone(managed.Data[credpkg.AWSProcessKey])
	if firstKey == minio.RootUser {
		t.Fatal("the managed Secret holds the source keys")
	}

	// One AssumeRole per Credential, not per pod.
	minted := metricSumAt(t, c.RefresherMetrics, `credgate_aws_refreshes_total{result="Minted"}`)
	for _, name := range []string{"train", "train-2"} {
		if err := c.Client.Create(t.Context(), job(ns, name, []string{"s3"})); err != nil {
			t.Fatalf("create Job: %v", err)
		}
	}
	pod := jobPod(t, ns, "train")
	jobPod(t, ns, "train-2")
	if now := metricSumAt(t, c.RefresherMetrics, `credgate_aws_refreshes_total{result="Minted"}`); now != minted || minted < 1 {
		t.Errorf("credgate_aws_refreshes_total{result=\"Minted\"} went from %v to %v for two pods; want no STS call per pod", minted, now)
	}
	spec, err := json.Marshal(pod.Spec)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(spec), minio.RootPassword) || strings.Contains(string(spec), firstKey) {
		t.Fatal("the pod spec holds a key")
	}

	// The kubelet's part: env from the API server's Secrets, secret volumes written under a
	// temporary root; again whenever the Secret changes.
	materialise := kubelet(t, ns, &pod, "trainer")
	ctr := materialise()
	for _, k := range []string{"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"} {
		if _, ok := ctr.Env[k]; ok {
			t.Errorf("the container's environment sets %s: temporary credentials come through AWS_CONFIG_FILE", k)
		}
	}
	cfg, trainer := sdkFromEnv(t, ctr.Env)
	if body, _, err := read(t, trainer, "data", "x"); err != nil || body != "data bytes" {
		t.Fatalf("read data/x as the pod: %q, %v", body, err)
	}
	if _, status, err := read(t, trainer, "other", "x"); status != 403 {
		t.Errorf("read other/x as the pod: status %d (%v), want 403", status, err)
	}
	if got, err := cfg.Credentials.Retrieve(t.Context()); err != nil || got.AccessKeyID != firstKey {
		t.Fatalf("the SDK holds %q (%v), want the minted %q", got.AccessKeyID, err, firstKey)
	}

	// The refresher mints new credentials at about two thirds of the session.
	var secondKey string
	eventually(t, awsSession, func() (bool, string) {
		if err := c.Client.Get(t.Context(), client.ObjectKey{Namespace: ns, Name: "credgate-aws-s3"}, &managed); err != nil {
			return false, err.Error()
		}
		secondKey, _ = processCredentials(t, &managed)
		return secondKey != firstKey, "the refresher has not rotated the credentials"
	})
	if time.Now().After(firstExpires) {
		t.Errorf("rotated only after the first credentials expired (%s)", firstExpires)
	}
	materialise()

	// Once the first credentials expire, the same client runs credential_process again.
	time.Sleep(time.Until(firstExpires) + 2*time.Second)
	if body, _, err := read(t, trainer, "data", "x"); err != nil || body != "data bytes" {
		t.Fatalf("read data/x with the same client after the first credentials expired: %q, %v", body, err)
	}
	if got, err := cfg.Credentials.Retrieve(t.Context()); err != nil || got.AccessKeyID != secondKey {
		t.Errorf("the SDK holds %q (%v), want the rotated %q", got.AccessKeyID, err, secondKey)
	}
	// The first credentials themselves no longer work.
	var first struct{ AccessKeyId, SecretAccessKey, SessionToken string } //nolint:revive // the credential_process field names
	if err := json.Unmarshal(firstJSON, &first); err != nil {
		t.Fatal(err)
	}
	old := s3srv.S3(first.AccessKeyId, first.SecretAccessKey, first.SessionToken)
	if _, status, err := read(t, old, "data", "x"); err == nil || status != 403 {
		t.Errorf("read data/x with the expired first credentials: status %d, err %v; want 403", status, err)
	}
	notInLogs(t, minio.RootPassword, first.SecretAccessKey, first.SessionToken)
}

// notInLogs fails t if credgate's or the refresher's log or the audit file holds any of
// values.
func notInLogs(t *testing.T, values ...string) {
	t.Helper()
	for _, f := range []string{filepath.Join(c.WorkDir, "credgate.log"), filepath.Join(c.WorkDir, "credgate-refresher.log"), c.AuditPath} {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range values {
			if strings.Contains(string(b), v) {
				t.Errorf("%s holds a secret value", f)
			}
		}
	}
}

// TestAssumeRoleWrongSourceKey: a wrong long-lived key makes the Credential Ready=False with
// the STS error as reason, never quoting the key; a Job requesting it is refused, audited.
func TestAssumeRoleWrongSourceKey(t *testing.T) {
	ns := namespace(t)
	const wrong = "not-the-minio-secret-key"
	enableRefresher(t, ns)
	sourceSecret(t, "minio-wrong-keys", minio.RootUser, wrong, ns)
	assumeRoleCredential(t, ns, "s3-wrong", "minio-wrong-keys")
	cred, ready := condition(t, ns, "s3-wrong", v1alpha1.ConditionReady, metav1.ConditionFalse)
	if ready.Reason != tempcreds.ReasonAssumeRoleFailed || !strings.Contains(ready.Message, "assume role") {
		t.Errorf("Ready: %+v, want reason %s with the STS error", ready, tempcreds.ReasonAssumeRoleFailed)
	}
	if strings.Contains(ready.Message, wrong) {
		t.Errorf("the condition quotes the source secret key: %s", ready.Message)
	}
	if cred.Status.ExpiresAt != nil {
		t.Errorf("expiresAt set without credentials: %v", cred.Status.ExpiresAt)
	}
	err := c.Client.Create(t.Context(), job(ns, "train", []string{"s3-wrong"}))
	if err == nil || !strings.Contains(err.Error(), "[credential-not-ready]") || !strings.Contains(err.Error(), tempcreds.ReasonAssumeRoleFailed) {
		t.Fatalf("create a Job using it: %v, want a credential-not-ready refusal naming %s", err, tempcreds.ReasonAssumeRoleFailed)
	}
	eventually(t, 10*time.Second, func() (bool, string) {
		records, err := auditRecords()
		if err != nil {
			return false, err.Error()
		}
		for _, r := range records {
			if r.Namespace == ns && r.Kind == "Job" && slices.ContainsFunc(r.Violations, func(v audit.Violation) bool {
				return v.Rule == "credential-not-ready" && v.Credential == "s3-wrong"
			}) {
				return true, ""
			}
		}
		return false, "no audit record of the refusal"
	})
	eventually(t, 10*time.Second, func() (bool, string) {
		var evs eventsv1.EventList
		if err := c.Client.List(t.Context(), &evs, client.InNamespace(ns)); err != nil {
			return false, err.Error()
		}
		for _, e := range evs.Items {
			if e.Regarding.Kind == "Credential" && e.Regarding.Name == "s3-wrong" && e.Reason == tempcreds.ReasonAssumeRoleFailed {
				if strings.Contains(e.Note, wrong) {
					t.Errorf("the Event quotes the source secret key: %s", e.Note)
				}
				return true, ""
			}
		}
		return false, "no AssumeRoleFailed Event on the Credential"
	})
	notInLogs(t, wrong)
}

// TestWebIdentityPods: a webIdentity Credential gives pods a role ARN and a projected
// service-account token for the audience it names, which the API server accepts; no Secret.
func TestWebIdentityPods(t *testing.T) {
	ns := namespace(t)
	cred := &v1alpha1.Credential{ObjectMeta: metav1.ObjectMeta{Name: "irsa", Namespace: ns},
		Spec: v1alpha1.CredentialSpec{Type: v1alpha1.TypeAWS, AWS: &v1alpha1.AWS{
			Mode: v1alpha1.AWSWebIdentity, RoleARN: "arn:aws:iam::123456789012:role/trainer", Region: "eu-west-1",
			WebIdentity: &v1alpha1.WebIdentity{Audience: "sts.example.com", ExpirationSeconds: new(int64(900))},
		}}}
	if err := c.Client.Create(t.Context(), cred); err != nil {
		t.Fatal(err)
	}
	p := pod(ns, "train", map[string]string{"credentials.credgate.dev/irsa": "true"})
	// A cluster's ServiceAccount admission plugin sets it before webhooks run; envtest's
	// API server runs without it.
	p.Spec.ServiceAccountName = "default"
	if err := c.Client.Create(t.Context(), p); err != nil {
		t.Fatalf("create pod: %v", err)
	}
	env := map[string]string{}
	for _, e := range p.Spec.Containers[0].Env {
		env[e.Name] = e.Value
	}
	if env["AWS_ROLE_ARN"] != cred.Spec.AWS.RoleARN || env["AWS_WEB_IDENTITY_TOKEN_FILE"] != "/var/run/secrets/credgate/irsa/token" {
		t.Errorf("env: %v", env)
	}
	i := slices.IndexFunc(p.Spec.Volumes, func(v corev1.Volume) bool { return v.Name == "credgate-irsa" })
	if i < 0 || p.Spec.Volumes[i].Projected == nil || len(p.Spec.Volumes[i].Projected.Sources) != 1 {
		t.Fatalf("no projected token volume: %+v", p.Spec.Volumes)
	}
	tok := p.Spec.Volumes[i].Projected.Sources[0].ServiceAccountToken
	if tok == nil || tok.Audience != "sts.example.com" || tok.ExpirationSeconds == nil || *tok.ExpirationSeconds != 900 || tok.Path != "token" {
		t.Errorf("token projection: %+v", tok)
	}
	for _, v := range p.Spec.Volumes {
		if v.Secret != nil {
			t.Errorf("a webIdentity credential mounted Secret %s", v.Secret.SecretName)
		}
	}
}

// TestAWSModesValidated: the API server refuses, with the CRD's messages, AWS modes without
// what they need, and keys handed to a temporary mode.
func TestAWSModesValidated(t *testing.T) {
	ns := namespace(t)
	for _, tt := range []struct {
		name string
		aws  v1alpha1.AWS
		ref  *v1alpha1.SecretReference
		want string
	}{
		{"no-role", v1alpha1.AWS{Mode: v1alpha1.AWSAssumeRole, SourceSecretRef: &v1alpha1.SecretReference{Name: "k"}},
			nil, "modes assumeRole and webIdentity need spec.aws.roleArn"},
		{"no-source", v1alpha1.AWS{Mode: v1alpha1.AWSAssumeRole, RoleARN: "arn:aws:iam::1:role/r"},
			nil, "spec.aws.sourceSecretRef is required for mode assumeRole"},
		{"tenant-keys", v1alpha1.AWS{Mode: v1alpha1.AWSWebIdentity, RoleARN: "arn:aws:iam::1:role/r"},
			&v1alpha1.SecretReference{Name: "keys"}, "take no spec.secretRef"},
		{"short", v1alpha1.AWS{Mode: v1alpha1.AWSAssumeRole, RoleARN: "arn:aws:iam::1:role/r",
			SourceSecretRef: &v1alpha1.SecretReference{Name: "k"}, DurationSeconds: new(int32(60))}, nil, "spec.aws.durationSeconds"},
		{"policy-on-webidentity", v1alpha1.AWS{Mode: v1alpha1.AWSWebIdentity, RoleARN: "arn:aws:iam::1:role/r",
			SessionPolicy: &apiextensionsv1.JSON{Raw: []byte(`{"Statement":[]}`)}}, nil, "apply to mode assumeRole only"},
	} {
		cred := &v1alpha1.Credential{ObjectMeta: metav1.ObjectMeta{Name: tt.name, Namespace: ns},
			Spec: v1alpha1.CredentialSpec{Type: v1alpha1.TypeAWS, SecretRef: tt.ref, AWS: &tt.aws}}
		err := c.Client.Create(t.Context(), cred)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: create = %v, want a refusal saying %q", tt.name, err, tt.want)
		}
		if errs := credpkg.Validate(cred); len(errs) == 0 {
			t.Errorf("%s: the API server refuses it but credential.Validate (credgate eval) does not", tt.name)
		}
	}
}

// webIdentityAudience is the audience MinIO's OpenID provider (the test cluster's
// service-account issuer) accepts: MinIO's client ID.
const webIdentityAudience = "minio-e2e"

// minioRoleARN is the role MinIO derives for an OpenID provider with a role policy.
func minioRoleARN(clientID string) string {
	sum := sha1.Sum([]byte(clientID)) //nolint:gosec // MinIO's own derivation, not a security use
	return "arn:minio:iam:::role/" + base64.RawURLEncoding.EncodeToString(sum[:])
}

// TestWebIdentityAgainstMinIO: a webIdentity Credential, no secret anywhere. The pod's
// projected service-account token (issued by the API server's TokenRequest, as the kubelet
// would) is exchanged by a real aws-sdk-go-v2, configured only by the pod's environment, at
// MinIO's STS (AssumeRoleWithWebIdentity; MinIO trusts the cluster's issuer, role policy
// readonly): it reads data/x and may not write.
func TestWebIdentityAgainstMinIO(t *testing.T) {
	seedBuckets(t)
	ns := namespace(t)
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "trainer", Namespace: ns}}
	if err := c.Client.Create(t.Context(), sa); err != nil {
		t.Fatal(err)
	}
	cred := &v1alpha1.Credential{ObjectMeta: metav1.ObjectMeta{Name: "minio-wi", Namespace: ns},
		Spec: v1alpha1.CredentialSpec{Type: v1alpha1.TypeS3Compatible, AWS: &v1alpha1.AWS{
			Mode: v1alpha1.AWSWebIdentity, RoleARN: minioRoleARN(webIdentityAudience),
			Region: minio.Region, Endpoint: s3srv.Endpoint,
			WebIdentity: &v1alpha1.WebIdentity{Audience: webIdentityAudience, ExpirationSeconds: new(int64(600))},
		}}}
	if err := c.Client.Create(t.Context(), cred); err != nil {
		t.Fatal(err)
	}
	p := pod(ns, "train", map[string]string{"credentials.credgate.dev/minio-wi": "true"})
	p.Spec.ServiceAccountName = sa.Name
	p.Spec.Containers[0].Name = "trainer"
	if err := c.Client.Create(t.Context(), p); err != nil {
		t.Fatalf("create pod: %v", err)
	}
	issued := 0
	ctr, err := podenv.MaterialiseWith(&p.Spec, "trainer", podenv.Sources{
		Tokens: func(account, audience string, exp int64) ([]byte, error) {
			tr := &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{
				Audiences: []string{audience}, ExpirationSeconds: &exp}}
			sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: account, Namespace: ns}}
			if err := c.Client.SubResource("token").Create(t.Context(), sa, tr); err != nil {
				return nil, err
			}
			issued++
			return []byte(tr.Status.Token), nil
		},
	}, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if issued != 1 {
		t.Fatalf("%d tokens issued for the pod, want its one projected token", issued)
	}
	for _, k := range []string{"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_CONFIG_FILE"} {
		if _, ok := ctr.Env[k]; ok {
			t.Errorf("a webIdentity pod has %s", k)
		}
	}
	cfg, trainer := sdkFromEnv(t, ctr.Env)
	if body, _, err := read(t, trainer, "data", "x"); err != nil || body != "data bytes" {
		t.Fatalf("read data/x with the exchanged web identity: %q, %v\nMinIO's log:\n%s", body, err, s3srv.Log())
	}
	got, err := cfg.Credentials.Retrieve(t.Context())
	if err != nil || got.SessionToken == "" || got.Source != "WebIdentityCredentials" {
		t.Errorf("credentials from %q (session token %t, %v): want STS web-identity session credentials", got.Source, got.SessionToken != "", err)
	}
	_, err = trainer.PutObject(t.Context(), &s3.PutObjectInput{Bucket: aws.String("data"), Key: aws.String("y"), Body: strings.NewReader("no")})
	var re *smithyhttp.ResponseError
	if !errors.As(err, &re) || re.HTTPStatusCode() != 403 {
		t.Errorf("write data/y with the readonly role: %v, want 403", err)
	}
}

// kubelet returns what the kubelet does for container of pod in ns, to be called again whenever
// its Secrets change: the container's environment from the API server's Secrets, and its secret
// volumes written under a temporary root.
func kubelet(t *testing.T, ns string, pod *corev1.Pod, container string) func() *podenv.Container {
	t.Helper()
	root := t.TempDir()
	return func() *podenv.Container {
		t.Helper()
		var secrets corev1.SecretList
		if err := c.Client.List(t.Context(), &secrets, client.InNamespace(ns)); err != nil {
			t.Fatal(err)
		}
		ptrs := make([]*corev1.Secret, len(secrets.Items))
		for i := range secrets.Items {
			ptrs[i] = &secrets.Items[i]
		}
		ctr, err := podenv.Materialise(&pod.Spec, container, ptrs, root)
		if err != nil {
			t.Fatal(err)
		}
		return ctr
	}
}
