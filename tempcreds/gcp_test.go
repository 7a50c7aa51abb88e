package tempcreds

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"golang.org/x/oauth2"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/credgate/credgate/api/v1alpha1"
)

// A stand-in source key: GCP minting is faked by the harness's generate, which checks that
// this key, and only it, reaches it.
const gcpSourceKey = `{"type":"service_account","client_email":"minter@platform.iam.gserviceaccount.com","private_key":"-----BEGIN PRIVATE KEY-----\nnot-a-real-key\n-----END PRIVATE KEY-----\n","token_uri":"https://oauth2.googleapis.com/token"}`

const trainerSA = "trainer@ml-project.iam.gserviceaccount.com"

// fakeIAM stands in for IAM Credentials in this package's unit tests (GenerateAccessToken is
// tested against test/standin): it records requests and mints numbered tokens.
type fakeIAM struct {
	now   func() time.Time
	calls []TokenRequest
	err   error
}

func (f *fakeIAM) generate(_ context.Context, key []byte, req TokenRequest) (AccessToken, error) {
	f.calls = append(f.calls, req)
	if f.err != nil {
		return AccessToken{}, f.err
	}
	if string(key) != gcpSourceKey {
		return AccessToken{}, errors.New("wrong source key reached IAM Credentials")
	}
	return AccessToken{Token: fmt.Sprintf("ya29.token-%d", len(f.calls)), Expiry: f.now().Add(req.Lifetime)}, nil
}

func impersonation() v1alpha1.GCP {
	return v1alpha1.GCP{Mode: v1alpha1.GCPImpersonation, ServiceAccountEmail: trainerSA,
		SourceSecretRef: &v1alpha1.SecretReference{Name: "gcp-minter"}}
}

func newGCPHarness(t *testing.T, gcp v1alpha1.GCP, annotations map[string]string) (*harness, *fakeIAM) {
	t.Helper()
	cred := &v1alpha1.Credential{ObjectMeta: metav1.ObjectMeta{Name: "gcs", Namespace: "ml", UID: "uid-2", Generation: 1},
		Spec: v1alpha1.CredentialSpec{Type: v1alpha1.TypeGCP, GCP: &gcp}}
	src := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "gcp-minter", Namespace: "credgate-refresher", Annotations: annotations},
		Data: map[string][]byte{SourceGCPKey: []byte(gcpSourceKey)}}
	h := newHarnessWith(t, cred, src)
	iam := &fakeIAM{now: func() time.Time { return h.now }}
	h.r.generate = iam.generate
	return h, iam
}

func gcpGrant() map[string]string {
	return map[string]string{GrantNamespaces: "ml", GrantServiceAccounts: "*@ml-project.iam.gserviceaccount.com"}
}

// managedToken returns the access token and token.json of the managed Secret.
func (h *harness) managedToken() (string, oauth2.Token) {
	h.t.Helper()
	var s corev1.Secret
	if err := h.client.Get(h.t.Context(), client.ObjectKey{Namespace: "ml", Name: "credgate-gcp-gcs"}, &s); err != nil {
		h.t.Fatal(err)
	}
	var tok oauth2.Token
	if len(s.Data["token.json"]) > 0 {
		if err := json.Unmarshal(s.Data["token.json"], &tok); err != nil {
			h.t.Fatal(err)
		}
	}
	return string(s.Data["access-token"]), tok
}

func TestRefresherImpersonates(t *testing.T) {
	annotations := gcpGrant()
	annotations[GrantIAMCredentialsEndpoint] = "https://IAM.example.com/"
	h, iam := newGCPHarness(t, impersonation(), annotations)
	// An AWS Verified condition left from an earlier spec does not describe a GCP token.
	c := h.credential()
	c.Status.Conditions = []metav1.Condition{{Type: v1alpha1.ConditionVerified, Status: metav1.ConditionTrue, Reason: ReasonProbeSucceeded, LastTransitionTime: metav1.Now()}}
	if err := h.client.Status().Update(t.Context(), c); err != nil {
		t.Fatal(err)
	}
	res, err := h.reconcile()
	if err != nil {
		t.Fatal(err)
	}
	if len(iam.calls) != 1 {
		t.Fatalf("%d generateAccessToken calls, want 1", len(iam.calls))
	}
	req := iam.calls[0]
	if req.ServiceAccount != trainerSA || req.Lifetime != time.Hour || req.Endpoint != "https://iam.example.com" ||
		len(req.Scopes) != 1 || req.Scopes[0] != "https://www.googleapis.com/auth/cloud-platform" {
		t.Errorf("generateAccessToken request: %+v", req)
	}
	c = h.credential()
	ready := meta.FindStatusCondition(c.Status.Conditions, v1alpha1.ConditionReady)
	if ready == nil || ready.Status != metav1.ConditionTrue || ready.Reason != ReasonMinted ||
		!strings.Contains(ready.Message, "impersonated "+trainerSA) || !strings.Contains(ready.Message, "credgate-gcp-gcs") {
		t.Fatalf("Ready: %+v", ready)
	}
	if v := meta.FindStatusCondition(c.Status.Conditions, v1alpha1.ConditionVerified); v != nil {
		t.Errorf("Verified: %+v, want none (no probe for GCP)", v)
	}
	if c.Status.SecretName != "credgate-gcp-gcs" || !c.Status.ExpiresAt.Equal(&metav1.Time{Time: h.now.Add(time.Hour)}) {
		t.Errorf("status: %+v", c.Status)
	}
	raw, tok := h.managedToken()
	if raw != "ya29.token-1" || tok.AccessToken != raw || tok.TokenType != "Bearer" || !tok.Expiry.Equal(h.now.Add(time.Hour)) {
		t.Errorf("managed Secret: %q, %+v", raw, tok)
	}
	if res.RequeueAfter > 40*time.Minute || res.RequeueAfter < 34*time.Minute {
		t.Errorf("requeue after %s, want 34m to 40m", res.RequeueAfter)
	}
	h.now = h.now.Add(res.RequeueAfter)
	if _, err := h.reconcile(); err != nil {
		t.Fatal(err)
	}
	if raw, _ := h.managedToken(); len(iam.calls) != 2 || raw != "ya29.token-2" {
		t.Errorf("at the refresh point: %d calls, Secret holds %q", len(iam.calls), raw)
	}
	if n := testutil.ToFloat64(h.r.Metrics.gcp.WithLabelValues(ReasonMinted)); n != 2 {
		t.Errorf("credgate_gcp_refreshes_total{result=Minted} = %v, want 2", n)
	}
	if n := testutil.ToFloat64(h.r.Metrics.assumeRole.WithLabelValues(ReasonMinted)); n != 0 {
		t.Errorf("credgate_aws_refreshes_total{result=Minted} = %v, want 0", n)
	}
	if got, want := testutil.ToFloat64(h.r.Metrics.gcpExpiry.WithLabelValues("ml", "gcs")), float64(h.credential().Status.ExpiresAt.Unix()); got != want {
		t.Errorf("expiry gauge = %v, want %v", got, want)
	}
}

func TestRefresherImpersonationScopesAndLifetime(t *testing.T) {
	g := impersonation()
	g.Scopes = []string{"https://www.googleapis.com/auth/devstorage.read_only"}
	g.LifetimeSeconds = new(int32(1800))
	h, iam := newGCPHarness(t, g, gcpGrant())
	h.r.MaxGCPLifetime = 20 * time.Minute
	h.r.MaxDuration = time.Minute // the AWS cap does not apply
	if _, err := h.reconcile(); err != nil {
		t.Fatal(err)
	}
	if req := iam.calls[0]; req.Lifetime != 20*time.Minute || len(req.Scopes) != 1 || req.Scopes[0] != g.Scopes[0] {
		t.Errorf("generateAccessToken request: %+v", req)
	}
}

// A source grants what its annotations say, for its cloud: a GCP source without service
// accounts, an AWS source, another namespace or another service account mint nothing.
func TestRefresherImpersonationGrant(t *testing.T) {
	for name, tc := range map[string]struct {
		annotations map[string]string
		gcp         func(*v1alpha1.GCP)
		want        string
	}{
		"no service accounts":     {map[string]string{GrantNamespaces: "ml"}, nil, "service account " + trainerSA + " is not among"},
		"an AWS source's grant":   {map[string]string{GrantNamespaces: "ml", GrantRoleARNs: "*"}, nil, "is not among the service accounts"},
		"another namespace":       {map[string]string{GrantNamespaces: "other", GrantServiceAccounts: "*"}, nil, "namespace ml is not granted"},
		"another service account": {gcpGrant(), func(g *v1alpha1.GCP) { g.ServiceAccountEmail = "admin@other-project.iam.gserviceaccount.com" }, "is not among"},
		"an http endpoint":        {map[string]string{GrantNamespaces: "ml", GrantServiceAccounts: "*", GrantIAMCredentialsEndpoint: "http://iam.example.com"}, nil, "malformed grant"},
	} {
		t.Run(name, func(t *testing.T) {
			g := impersonation()
			if tc.gcp != nil {
				tc.gcp(&g)
			}
			h, iam := newGCPHarness(t, g, tc.annotations)
			_, err := h.reconcile()
			if err == nil || len(iam.calls) != 0 {
				t.Fatalf("err %v, %d calls", err, len(iam.calls))
			}
			ready := meta.FindStatusCondition(h.credential().Status.Conditions, v1alpha1.ConditionReady)
			if ready == nil || ready.Status != metav1.ConditionFalse || ready.Reason != ReasonSourceNotGranted || !strings.Contains(ready.Message, tc.want) {
				t.Errorf("Ready: %+v, want SourceNotGranted saying %q", ready, tc.want)
			}
		})
	}
}

// An AWS credential naming a GCP source is not granted either.
func TestRefresherAssumeRoleWithGCPSource(t *testing.T) {
	h := newHarness(t, assumeRole())
	src := &corev1.Secret{}
	if err := h.client.Get(t.Context(), client.ObjectKey{Namespace: "credgate-refresher", Name: "keys"}, src); err != nil {
		t.Fatal(err)
	}
	src.Annotations = gcpGrant()
	src.Data = map[string][]byte{SourceGCPKey: []byte(gcpSourceKey)}
	if err := h.client.Update(t.Context(), src); err != nil {
		t.Fatal(err)
	}
	if _, err := h.reconcile(); err == nil || len(h.sts.calls) != 0 {
		t.Fatalf("err %v, %d AssumeRole calls", err, len(h.sts.calls))
	}
	if ready := meta.FindStatusCondition(h.credential().Status.Conditions, v1alpha1.ConditionReady); ready == nil || ready.Reason != ReasonSourceNotGranted {
		t.Errorf("Ready: %+v", ready)
	}
}

func TestRefresherImpersonationBadKey(t *testing.T) {
	for name, key := range map[string]string{
		"missing":         "",
		"not JSON":        "-----BEGIN PRIVATE KEY-----",
		"an AWS key":      `{"aws_access_key_id":"AKIA"}`,
		"a user":          `{"type":"authorized_user","client_id":"x","client_secret":"s3cr3t-value","refresh_token":"r"}`,
		"http token_uri":  `{"type":"service_account","client_email":"a@b","private_key":"s3cr3t-value","token_uri":"http://evil.example.com/token"}`,
		"an external one": `{"type":"external_account","audience":"x"}`,
	} {
		t.Run(name, func(t *testing.T) {
			h, iam := newGCPHarness(t, impersonation(), gcpGrant())
			src := &corev1.Secret{}
			if err := h.client.Get(t.Context(), client.ObjectKey{Namespace: "credgate-refresher", Name: "gcp-minter"}, src); err != nil {
				t.Fatal(err)
			}
			src.Data = map[string][]byte{SourceGCPKey: []byte(key)}
			if err := h.client.Update(t.Context(), src); err != nil {
				t.Fatal(err)
			}
			if _, err := h.reconcile(); err == nil || len(iam.calls) != 0 {
				t.Fatalf("err %v, %d calls", err, len(iam.calls))
			}
			ready := meta.FindStatusCondition(h.credential().Status.Conditions, v1alpha1.ConditionReady)
			if ready == nil || ready.Reason != ReasonSourceSecretInvalid {
				t.Fatalf("Ready: %+v", ready)
			}
			if strings.Contains(ready.Message, "s3cr3t-value") {
				t.Errorf("the condition quotes the key: %s", ready.Message)
			}
		})
	}
}

// A failed mint keeps the token minted for the current spec while it is valid; a revoked
// grant withdraws it at once.
func TestRefresherImpersonationFailureAndRevocation(t *testing.T) {
	h, iam := newGCPHarness(t, impersonation(), gcpGrant())
	if _, err := h.reconcile(); err != nil {
		t.Fatal(err)
	}
	iam.err = errors.New("generateAccessToken for " + trainerSA + ": 403 Forbidden: PERMISSION_DENIED")
	h.now = h.now.Add(45 * time.Minute)
	if _, err := h.reconcile(); err == nil {
		t.Fatal("a failed mint reconciled without error")
	}
	ready := meta.FindStatusCondition(h.credential().Status.Conditions, v1alpha1.ConditionReady)
	if ready == nil || ready.Status != metav1.ConditionTrue || ready.Reason != ReasonRefreshRetrying || !strings.Contains(ready.Message, ReasonGenerateAccessTokenFailed) {
		t.Fatalf("Ready after a failed refresh: %+v", ready)
	}
	if n := testutil.ToFloat64(h.r.Metrics.gcp.WithLabelValues(ReasonGenerateAccessTokenFailed)); n != 1 {
		t.Errorf("credgate_gcp_refreshes_total{result=GenerateAccessTokenFailed} = %v, want 1", n)
	}
	if raw, _ := h.managedToken(); raw != "ya29.token-1" {
		t.Errorf("the Secret holds %q after a failed refresh, want the valid token", raw)
	}

	src := &corev1.Secret{}
	if err := h.client.Get(t.Context(), client.ObjectKey{Namespace: "credgate-refresher", Name: "gcp-minter"}, src); err != nil {
		t.Fatal(err)
	}
	src.Annotations[GrantServiceAccounts] = "other@ml-project.iam.gserviceaccount.com"
	if err := h.client.Update(t.Context(), src); err != nil {
		t.Fatal(err)
	}
	_, _ = h.reconcile()
	ready = meta.FindStatusCondition(h.credential().Status.Conditions, v1alpha1.ConditionReady)
	if ready == nil || ready.Status != metav1.ConditionFalse || ready.Reason != ReasonSourceNotGranted {
		t.Fatalf("Ready after the grant was revoked: %+v", ready)
	}
	if raw, tok := h.managedToken(); raw != "" || tok.AccessToken != "" {
		t.Errorf("the Secret still holds a token after the grant was revoked")
	}
}

// A Credential no longer in mode impersonation loses the refresher's status.
func TestRefresherClearsStatusWhenNoLongerImpersonation(t *testing.T) {
	h, _ := newGCPHarness(t, impersonation(), gcpGrant())
	if _, err := h.reconcile(); err != nil {
		t.Fatal(err)
	}
	c := h.credential()
	c.Spec.GCP = &v1alpha1.GCP{Mode: v1alpha1.GCPKeyFile}
	if err := h.client.Update(t.Context(), c); err != nil {
		t.Fatal(err)
	}
	if _, err := h.reconcile(); err != nil {
		t.Fatal(err)
	}
	if st := h.credential().Status; st.SecretName != "" || len(st.Conditions) != 0 || st.ExpiresAt != nil {
		t.Errorf("status: %+v", st)
	}
}

// A Credential that leaves mode impersonation (or the cloud) gets its minted token emptied, so
// that a grant revoked later cannot leave it serving; the same for assumeRole.
func TestRefresherWithdrawsWhenTheModeChanges(t *testing.T) {
	h, _ := newGCPHarness(t, impersonation(), gcpGrant())
	if _, err := h.reconcile(); err != nil {
		t.Fatal(err)
	}
	c := h.credential()
	c.Spec.GCP = &v1alpha1.GCP{Mode: v1alpha1.GCPKeyFile}
	c.Spec.SecretRef = &v1alpha1.SecretReference{Name: "gcs-key"}
	if err := h.client.Update(t.Context(), c); err != nil {
		t.Fatal(err)
	}
	if _, err := h.reconcile(); err != nil {
		t.Fatal(err)
	}
	if raw, tok := h.managedToken(); raw != "" || tok.AccessToken != "" {
		t.Errorf("the managed Secret still holds a token after the Credential left mode impersonation")
	}
	if st := h.credential().Status; st.SecretName != "" || len(st.Conditions) != 0 {
		t.Errorf("status: %+v", st)
	}

	a := newHarness(t, assumeRole())
	if _, err := a.reconcile(); err != nil {
		t.Fatal(err)
	}
	c = a.credential()
	c.Spec.AWS = &v1alpha1.AWS{Mode: v1alpha1.AWSStatic}
	c.Spec.SecretRef = &v1alpha1.SecretReference{Name: "keys"}
	if err := a.client.Update(t.Context(), c); err != nil {
		t.Fatal(err)
	}
	if _, err := a.reconcile(); err != nil {
		t.Fatal(err)
	}
	var managed corev1.Secret
	if err := a.client.Get(t.Context(), client.ObjectKey{Namespace: "ml", Name: "credgate-aws-s3"}, &managed); err != nil {
		t.Fatal(err)
	}
	if n := len(managed.Data["credentials.json"]); n != 0 {
		t.Errorf("%d bytes of credentials left after the Credential left mode assumeRole", n)
	}
}

// The grant's credgate.dev/max-token-lifetime caps what a Credential asks, and the refresh is
// scheduled for the lifetime minted.
func TestRefresherImpersonationGrantCapsLifetime(t *testing.T) {
	g := impersonation()
	g.LifetimeSeconds = new(int32(43200))
	annotations := gcpGrant()
	annotations[GrantMaxTokenLifetime] = "15m"
	h, iam := newGCPHarness(t, g, annotations)
	res, err := h.reconcile()
	if err != nil {
		t.Fatal(err)
	}
	if req := iam.calls[0]; req.Lifetime != 15*time.Minute {
		t.Errorf("lifetime %s, want the grant's 15m", req.Lifetime)
	}
	if res.RequeueAfter > 10*time.Minute || res.RequeueAfter < 8*time.Minute {
		t.Errorf("requeue after %s, want two thirds of 15m, less jitter", res.RequeueAfter)
	}
	annotations[GrantMaxTokenLifetime] = "forever"
	if _, err := ParseGrant(&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Annotations: annotations}}); err == nil {
		t.Error("a malformed max-token-lifetime was accepted")
	}
}

// A refresher that finds credentials minted by another (a new leader) exports their expiry
// without minting them again.
func TestRefresherExportsExpiryOfWhatAnotherMinted(t *testing.T) {
	h, iam := newGCPHarness(t, impersonation(), gcpGrant())
	if _, err := h.reconcile(); err != nil {
		t.Fatal(err)
	}
	m, err := NewMetrics(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	h.r.Metrics = m // another replica's, which minted nothing
	h.now = h.now.Add(5 * time.Minute)
	if _, err := h.reconcile(); err != nil {
		t.Fatal(err)
	}
	if len(iam.calls) != 1 {
		t.Errorf("%d mints, want the first only", len(iam.calls))
	}
	if got, want := testutil.ToFloat64(m.gcpExpiry.WithLabelValues("ml", "gcs")), float64(h.credential().Status.ExpiresAt.Unix()); got != want {
		t.Errorf("expiry gauge = %v, want %v", got, want)
	}
}

// A status naming another Credential's managed Secret (whoever may write statuses wrote it)
// does not make the refresher withdraw, or write, that Secret.
func TestRefresherWithdrawsOnlyItsOwnSecret(t *testing.T) {
	h, _ := newGCPHarness(t, impersonation(), gcpGrant())
	other := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "credgate-gcp-other", Namespace: "ml"},
		Data: map[string][]byte{"access-token": []byte("ya29.other")}}
	if err := h.client.Create(t.Context(), other); err != nil {
		t.Fatal(err)
	}
	c := h.credential()
	c.Status.SecretName = "credgate-gcp-other"
	if err := h.client.Status().Update(t.Context(), c); err != nil {
		t.Fatal(err)
	}
	if _, err := h.reconcile(); err != nil {
		t.Fatal(err)
	}
	if err := h.client.Get(t.Context(), client.ObjectKeyFromObject(other), other); err != nil {
		t.Fatal(err)
	}
	if string(other.Data["access-token"]) != "ya29.other" || len(other.OwnerReferences) != 0 {
		t.Errorf("another Credential's Secret was written: %v, owners %v", other.Data, other.OwnerReferences)
	}
	if st := h.credential().Status; st.SecretName != "credgate-gcp-gcs" {
		t.Errorf("status names %s after the mint, want its own Secret", st.SecretName)
	}
}
