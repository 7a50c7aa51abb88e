package tempcreds

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/credgate/credgate/api/v1alpha1"
)

const sourceSecret = "long-lived-secret-key"

// fakeSTS stands in for STS in this package's unit tests (the e2e tests use MinIO): it
// records requests and mints numbered credentials, or fails with err.
type fakeSTS struct {
	now   func() time.Time
	calls []Request
	err   error
}

func (f *fakeSTS) assume(_ context.Context, src Source, req Request) (Credentials, error) {
	f.calls = append(f.calls, req)
	if f.err != nil {
		return Credentials{}, f.err
	}
	if src.SecretAccessKey != sourceSecret {
		return Credentials{}, errors.New("wrong source keys reached STS")
	}
	n := string(rune('0' + len(f.calls)))
	return Credentials{AccessKeyID: "ASIA" + n, SecretAccessKey: "session-secret-" + n, SessionToken: "token-" + n,
		Expiration: f.now().Add(req.Duration)}, nil
}

// eventLog records Events.
type eventLog struct{ reasons, notes []string }

func (l *eventLog) Eventf(_, _ runtime.Object, _, reason, _, note string, args ...any) {
	l.reasons = append(l.reasons, reason)
	l.notes = append(l.notes, fmt.Sprintf(note, args...))
}

type harness struct {
	t      *testing.T
	events *eventLog
	client client.Client
	sts    *fakeSTS
	now    time.Time
	r      *Refresher
	key    client.ObjectKey
}

func newHarness(t *testing.T, aws v1alpha1.AWS) *harness {
	t.Helper()
	cred := &v1alpha1.Credential{ObjectMeta: metav1.ObjectMeta{Name: "s3", Namespace: "ml", UID: "uid-1", Generation: 1},
		Spec: v1alpha1.CredentialSpec{Type: v1alpha1.TypeAWS, AWS: &aws}}
	src := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "keys", Namespace: "credgate-refresher",
		Annotations: map[string]string{GrantNamespaces: "ml", GrantRoleARNs: "arn:aws:iam::1:role/*"}},
		Data: map[string][]byte{SourceAccessKeyID: []byte("AKIALONGLIVED"), SourceSecretAccessKey: []byte(sourceSecret)}}
	return newHarnessWith(t, cred, src)
}

// newHarnessWith is a refresher of a fake cluster holding cred, its source Secret src and
// namespace ml.
func newHarnessWith(t *testing.T, cred *v1alpha1.Credential, src *corev1.Secret) *harness {
	t.Helper()
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	if err := v1alpha1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "ml", Labels: map[string]string{"team": "ml"}}}
	c := fake.NewClientBuilder().WithScheme(scheme).WithObjects(cred, src, ns).WithStatusSubresource(cred).Build()
	h := &harness{t: t, client: c, now: time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC), key: client.ObjectKeyFromObject(cred),
		events: &eventLog{}}
	h.sts = &fakeSTS{now: func() time.Time { return h.now }}
	m, err := NewMetrics(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	h.r = &Refresher{Client: c, Reader: c, Namespace: "credgate-refresher", Log: logr.Discard(), Metrics: m, Events: h.events,
		now: func() time.Time { return h.now }, assume: h.sts.assume,
		verify: func(context.Context, *v1alpha1.AWS, Credentials) (string, string, bool) {
			return ReasonProbeSucceeded, "probed", true
		}}
	return h
}

func assumeRole() v1alpha1.AWS {
	return v1alpha1.AWS{Mode: v1alpha1.AWSAssumeRole, RoleARN: "arn:aws:iam::1:role/train",
		SourceSecretRef: &v1alpha1.SecretReference{Name: "keys"}, DurationSeconds: new(int32(3600)),
		SessionPolicy: &apiextensionsv1.JSON{Raw: []byte(`{"Statement":[]}`)}}
}

func (h *harness) reconcile() (reconcile.Result, error) {
	return h.r.Reconcile(h.t.Context(), reconcile.Request{NamespacedName: h.key})
}

func (h *harness) credential() *v1alpha1.Credential {
	var c v1alpha1.Credential
	if err := h.client.Get(h.t.Context(), h.key, &c); err != nil {
		h.t.Fatal(err)
	}
	return &c
}

func (h *harness) minted() string {
	var s corev1.Secret
	if err := h.client.Get(h.t.Context(), client.ObjectKey{Namespace: "ml", Name: "credgate-aws-s3"}, &s); err != nil {
		h.t.Fatal(err)
	}
	var out processOutput
	if err := json.Unmarshal(s.Data["credentials.json"], &out); err != nil {
		h.t.Fatal(err)
	}
	return out.AccessKeyID
}

func TestRefresherMintsAndRefreshesAtTwoThirds(t *testing.T) {
	h := newHarness(t, assumeRole())
	res, err := h.reconcile()
	if err != nil {
		t.Fatal(err)
	}
	if len(h.sts.calls) != 1 {
		t.Fatalf("%d AssumeRole calls, want 1", len(h.sts.calls))
	}
	req := h.sts.calls[0]
	if req.SessionName != "credgate@ml.s3" || req.Duration != time.Hour || req.SessionPolicy != `{"Statement":[]}` {
		t.Errorf("AssumeRole request: %+v", req)
	}
	c := h.credential()
	ready := meta.FindStatusCondition(c.Status.Conditions, v1alpha1.ConditionReady)
	if ready == nil || ready.Status != metav1.ConditionTrue || ready.Reason != ReasonMinted {
		t.Fatalf("Ready: %+v", ready)
	}
	if v := meta.FindStatusCondition(c.Status.Conditions, v1alpha1.ConditionVerified); v == nil || v.Status != metav1.ConditionTrue {
		t.Errorf("Verified: %+v", v)
	}
	if !c.Status.ExpiresAt.Equal(&metav1.Time{Time: h.now.Add(time.Hour)}) || c.Status.SecretName != "credgate-aws-s3" {
		t.Errorf("status: %+v", c.Status)
	}
	if h.minted() != "ASIA1" {
		t.Errorf("the Secret holds %s, want ASIA1", h.minted())
	}
	// Next refresh: 40 minutes in, less up to 6 minutes of jitter.
	if res.RequeueAfter > 40*time.Minute || res.RequeueAfter < 34*time.Minute {
		t.Errorf("requeue after %s, want 34m to 40m", res.RequeueAfter)
	}

	// Woken early (a resync), nothing is minted.
	h.now = h.now.Add(10 * time.Minute)
	if _, err := h.reconcile(); err != nil || len(h.sts.calls) != 1 {
		t.Fatalf("reconcile before the refresh point: err %v, %d calls", err, len(h.sts.calls))
	}
	h.now = h.now.Add(res.RequeueAfter - 10*time.Minute)
	if _, err := h.reconcile(); err != nil {
		t.Fatal(err)
	}
	if len(h.sts.calls) != 2 || h.minted() != "ASIA2" {
		t.Errorf("at the refresh point: %d calls, Secret holds %s", len(h.sts.calls), h.minted())
	}
	if n := testutil.ToFloat64(h.r.Metrics.assumeRole.WithLabelValues(ReasonMinted)); n != 2 {
		t.Errorf("credgate_aws_refreshes_total{result=Minted} = %v, want 2", n)
	}
	want := float64(h.credential().Status.ExpiresAt.Unix())
	if got := testutil.ToFloat64(h.r.Metrics.expiry.WithLabelValues("ml", "s3")); got != want {
		t.Errorf("expiry gauge = %v, want %v", got, want)
	}
}

func TestRefresherSpecChangeMintsAgain(t *testing.T) {
	h := newHarness(t, assumeRole())
	if _, err := h.reconcile(); err != nil {
		t.Fatal(err)
	}
	c := h.credential()
	c.Spec.AWS.SessionPolicy = &apiextensionsv1.JSON{Raw: []byte(`{"Statement":[{"Effect":"Allow"}]}`)}
	c.Generation = 2 // the API server bumps it; the fake client does not
	if err := h.client.Update(t.Context(), c); err != nil {
		t.Fatal(err)
	}
	// At once, but not sooner than MinMintInterval after the last mint: a tenant editing its
	// Credential in a loop does not spend the source's STS quota.
	res, err := h.reconcile()
	if err != nil {
		t.Fatal(err)
	}
	if len(h.sts.calls) != 1 || res.RequeueAfter != MinMintInterval {
		t.Fatalf("a spec change right after minting: %d calls, requeue after %s", len(h.sts.calls), res.RequeueAfter)
	}
	h.now = h.now.Add(res.RequeueAfter)
	if _, err := h.reconcile(); err != nil {
		t.Fatal(err)
	}
	if len(h.sts.calls) != 2 || h.sts.calls[1].SessionPolicy != `{"Statement":[{"Effect":"Allow"}]}` {
		t.Errorf("after a spec change: %+v", h.sts.calls)
	}
}

func TestRefresherClearsStatusWhenNoLongerAssumeRole(t *testing.T) {
	h := newHarness(t, assumeRole())
	if _, err := h.reconcile(); err != nil {
		t.Fatal(err)
	}
	c := h.credential()
	c.Spec.AWS = &v1alpha1.AWS{Region: "eu-west-1"}
	c.Spec.SecretRef = &v1alpha1.SecretReference{Name: "static-keys"}
	if err := h.client.Update(t.Context(), c); err != nil {
		t.Fatal(err)
	}
	if _, err := h.reconcile(); err != nil {
		t.Fatal(err)
	}
	if st := h.credential().Status; st.ExpiresAt != nil || len(st.Conditions) > 0 || st.SecretName != "" {
		t.Errorf("status of a credential that is no longer assumeRole: %+v", st)
	}
}

func TestRefresherClearsFailureWhenNoLongerAssumeRole(t *testing.T) {
	h := newHarness(t, assumeRole())
	h.sts.err = errors.New("AccessDenied")
	_, _ = h.reconcile()
	c := h.credential()
	if !hasRefresherStatus(c) {
		t.Fatalf("no failure recorded: %+v", c.Status)
	}
	c.Spec.AWS = &v1alpha1.AWS{}
	c.Spec.SecretRef = &v1alpha1.SecretReference{Name: "static-keys"}
	if err := h.client.Update(t.Context(), c); err != nil {
		t.Fatal(err)
	}
	if _, err := h.reconcile(); err != nil {
		t.Fatal(err)
	}
	if st := h.credential().Status; len(st.Conditions) > 0 {
		t.Errorf("a static credential kept the refresher's Ready=False: %+v", st)
	}
}

func TestRefresherMaxDuration(t *testing.T) {
	h := newHarness(t, assumeRole())
	h.r.MaxDuration = 30 * time.Second
	res, err := h.reconcile()
	if err != nil {
		t.Fatal(err)
	}
	if req := h.sts.calls[0]; req.Duration != 30*time.Second || !req.AllowShort {
		t.Errorf("request: %+v, want 30s allowed short", req)
	}
	if res.RequeueAfter > 20*time.Second || res.RequeueAfter < 17*time.Second {
		t.Errorf("requeue after %s, want about 20s", res.RequeueAfter)
	}
}

func TestRefresherFailures(t *testing.T) {
	t.Run("STS error: Ready=False, the key redacted", func(t *testing.T) {
		h := newHarness(t, assumeRole())
		h.sts.err = errors.New("InvalidClientTokenId: signature of " + sourceSecret + " does not match")
		if _, err := h.reconcile(); err == nil {
			t.Fatal("no error: the refresher would not back off")
		}
		ready := meta.FindStatusCondition(h.credential().Status.Conditions, v1alpha1.ConditionReady)
		if ready == nil || ready.Status != metav1.ConditionFalse || ready.Reason != ReasonAssumeRoleFailed {
			t.Fatalf("Ready: %+v", ready)
		}
		if strings.Contains(ready.Message, sourceSecret) || !strings.Contains(ready.Message, "[redacted]") {
			t.Errorf("message: %s", ready.Message)
		}
		if len(h.events.notes) != 1 || h.events.reasons[0] != ReasonAssumeRoleFailed || strings.Contains(h.events.notes[0], sourceSecret) {
			t.Errorf("Events: %q %q", h.events.reasons, h.events.notes)
		}
		if n := testutil.ToFloat64(h.r.Metrics.assumeRole.WithLabelValues(ReasonAssumeRoleFailed)); n != 1 {
			t.Errorf("credgate_aws_refreshes_total{result=AssumeRoleFailed} = %v, want 1", n)
		}
	})
	t.Run("missing source Secret", func(t *testing.T) {
		a := assumeRole()
		a.SourceSecretRef.Name = "absent"
		h := newHarness(t, a)
		_, _ = h.reconcile()
		ready := meta.FindStatusCondition(h.credential().Status.Conditions, v1alpha1.ConditionReady)
		if ready == nil || ready.Reason != ReasonSourceSecretNotFound || !strings.Contains(ready.Message, "the refresher's namespace, credgate-refresher") {
			t.Errorf("Ready: %+v", ready)
		}
		if len(h.sts.calls) != 0 {
			t.Error("STS called without keys")
		}
	})
	t.Run("refresh fails while the minted credentials are valid: still Ready", func(t *testing.T) {
		h := newHarness(t, assumeRole())
		res, err := h.reconcile()
		if err != nil {
			t.Fatal(err)
		}
		h.now = h.now.Add(res.RequeueAfter)
		h.sts.err = errors.New("Throttling")
		if _, err := h.reconcile(); err == nil {
			t.Fatal("no error")
		}
		c := h.credential()
		ready := meta.FindStatusCondition(c.Status.Conditions, v1alpha1.ConditionReady)
		if ready == nil || ready.Status != metav1.ConditionTrue || ready.Reason != ReasonRefreshRetrying || !strings.Contains(ready.Message, "Throttling") {
			t.Errorf("Ready: %+v", ready)
		}
		// Until a minute before they expire.
		h.now = c.Status.ExpiresAt.Add(-30 * time.Second)
		_, _ = h.reconcile()
		if ready := meta.FindStatusCondition(h.credential().Status.Conditions, v1alpha1.ConditionReady); ready.Status != metav1.ConditionFalse {
			t.Errorf("Ready near expiry: %+v", ready)
		}
	})
}

func TestRefresherIgnoresOtherModes(t *testing.T) {
	h := newHarness(t, v1alpha1.AWS{Region: "eu-west-1"})
	if res, err := h.reconcile(); err != nil || !res.IsZero() || len(h.sts.calls) != 0 {
		t.Errorf("static credential: %+v, %v, %d calls", res, err, len(h.sts.calls))
	}
}

func TestProcessOutput(t *testing.T) {
	b, err := ProcessOutput(Credentials{AccessKeyID: "ASIA", SecretAccessKey: "s", SessionToken: "t",
		Expiration: time.Date(2026, 12, 1, 10, 0, 0, 0, time.FixedZone("x", 3600))})
	if err != nil {
		t.Fatal(err)
	}
	want := `{"Version":1,"AccessKeyId":"ASIA","SecretAccessKey":"s","SessionToken":"t","Expiration":"2026-12-01T09:00:00Z"}`
	if string(b) != want {
		t.Errorf("got %s, want %s", b, want)
	}
}

// The spec-change rate limit never holds back a refresh on schedule, however short sessions are.
func TestRefresherShortSessionsRefreshOnSchedule(t *testing.T) {
	h := newHarness(t, assumeRole())
	h.r.MaxDuration = 30 * time.Second
	res, err := h.reconcile()
	if err != nil {
		t.Fatal(err)
	}
	if res.RequeueAfter >= MinMintInterval {
		t.Fatalf("next refresh in %s: not before the session ends", res.RequeueAfter)
	}
	h.now = h.now.Add(res.RequeueAfter)
	if _, err := h.reconcile(); err != nil {
		t.Fatal(err)
	}
	if len(h.sts.calls) != 2 {
		t.Errorf("%d AssumeRole calls by %s into a 30s session, want 2", len(h.sts.calls), res.RequeueAfter)
	}
}

// A namespace mints at most NamespaceMintBurst Credentials at once, then NamespaceMintRate a
// second, however many it creates (and deletes) in a loop.
func TestRefresherNamespaceMintBudget(t *testing.T) {
	h := newHarness(t, assumeRole())
	for range NamespaceMintBurst {
		if !h.r.namespaceMayMint("ml", h.now) {
			t.Fatal("a mint within the burst was refused")
		}
	}
	if h.r.namespaceMayMint("ml", h.now) {
		t.Fatal("a mint past the burst was allowed at once")
	}
	if !h.r.namespaceMayMint("other", h.now) {
		t.Error("another namespace's budget was spent")
	}
	res, err := h.reconcile()
	if err != nil {
		t.Fatal(err)
	}
	if len(h.sts.calls) != 0 || res.RequeueAfter <= 0 {
		t.Fatalf("%d AssumeRole calls, requeue after %s: want none yet", len(h.sts.calls), res.RequeueAfter)
	}
	h.now = h.now.Add(res.RequeueAfter)
	if _, err := h.reconcile(); err != nil {
		t.Fatal(err)
	}
	if len(h.sts.calls) != 1 {
		t.Errorf("%d AssumeRole calls once the budget refilled, want 1", len(h.sts.calls))
	}
}

// Deleting the source Secret withdraws what was minted with it, like a revoked grant.
func TestRefresherSourceRemoved(t *testing.T) {
	h := newHarness(t, assumeRole())
	if _, err := h.reconcile(); err != nil {
		t.Fatal(err)
	}
	src := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "keys", Namespace: "credgate-refresher"}}
	if err := h.client.Delete(t.Context(), src); err != nil {
		t.Fatal(err)
	}
	_, _ = h.reconcile()
	ready := meta.FindStatusCondition(h.credential().Status.Conditions, v1alpha1.ConditionReady)
	if ready == nil || ready.Status != metav1.ConditionFalse || ready.Reason != ReasonSourceSecretNotFound {
		t.Fatalf("Ready: %+v", ready)
	}
	var managed corev1.Secret
	if err := h.client.Get(t.Context(), client.ObjectKey{Namespace: "ml", Name: "credgate-aws-s3"}, &managed); err != nil {
		t.Fatal(err)
	}
	if n := len(managed.Data["credentials.json"]); n != 0 {
		t.Errorf("%d bytes of credentials left after the source was removed", n)
	}
}
