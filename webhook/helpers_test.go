package webhook

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	jsonpatch "github.com/evanphx/json-patch/v5"
	"github.com/go-logr/logr"
	"github.com/go-logr/logr/funcr"
	"github.com/google/go-cmp/cmp"
	admissionv1 "k8s.io/api/admission/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	crwebhook "sigs.k8s.io/controller-runtime/pkg/webhook"

	"github.com/credgate/credgate/api/v1alpha1"
	"github.com/credgate/credgate/credential"
	"github.com/credgate/credgate/policies"
	"github.com/credgate/credgate/review"
)

// testNamespace is the namespace of every fixture under testdata/.
const testNamespace = "ml-team"

// testScheme is credgate serve's scheme (the built-in kinds and the credgate.dev API), built
// once: building one registers every client-go type.
var testScheme = sync.OnceValues(func() (*runtime.Scheme, error) {
	s := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(s); err != nil {
		return nil, err
	}
	if err := v1alpha1.AddToScheme(s); err != nil {
		return nil, err
	}
	return s, nil
})

// testCredentials are the Credentials the fixtures request: the presets users reach for
// first (W&B, Hugging Face, AWS with a region), one that mounts files (Kaggle), and one whose
// Secret is missing (MLflow, not ready).
func testCredentials() []*v1alpha1.Credential {
	ready := v1alpha1.CredentialStatus{Conditions: []metav1.Condition{
		{Type: v1alpha1.ConditionReady, Status: metav1.ConditionTrue, Reason: "SecretFound"},
	}}
	return []*v1alpha1.Credential{
		{
			ObjectMeta: metav1.ObjectMeta{Name: "wandb", Namespace: testNamespace},
			Spec: v1alpha1.CredentialSpec{
				Type:      v1alpha1.TypeWandB,
				SecretRef: &v1alpha1.SecretReference{Name: "wandb-secret"},
				Env: []v1alpha1.EnvVar{
					{Name: "WANDB_PROJECT", Value: new("experiments"), Overridable: true},
					{Name: "WANDB_ENTITY", Value: new("ml-team")},
				},
				Access: v1alpha1.Access{Level: v1alpha1.AccessReadWrite},
			},
			Status: ready,
		},
		{
			ObjectMeta: metav1.ObjectMeta{Name: "hf", Namespace: testNamespace},
			Spec: v1alpha1.CredentialSpec{
				Type:      v1alpha1.TypeHuggingFace,
				SecretRef: &v1alpha1.SecretReference{Name: "hf-secret"},
				Access:    v1alpha1.Access{Level: v1alpha1.AccessReadOnly},
			},
			Status: ready,
		},
		{
			ObjectMeta: metav1.ObjectMeta{Name: "aws", Namespace: testNamespace},
			Spec: v1alpha1.CredentialSpec{
				Type:      v1alpha1.TypeAWS,
				SecretRef: &v1alpha1.SecretReference{Name: "aws-data-secret"},
				AWS:       &v1alpha1.AWS{Region: "eu-west-1"},
				Access:    v1alpha1.Access{Level: v1alpha1.AccessReadOnly},
			},
			Status: ready,
		},
		{
			ObjectMeta: metav1.ObjectMeta{Name: "kaggle", Namespace: testNamespace},
			Spec: v1alpha1.CredentialSpec{
				Type:      v1alpha1.TypeKaggle,
				SecretRef: &v1alpha1.SecretReference{Name: "kaggle-secret"},
			},
			Status: ready,
		},
		{
			ObjectMeta: metav1.ObjectMeta{Name: "mlflow", Namespace: testNamespace},
			Spec: v1alpha1.CredentialSpec{
				Type:      v1alpha1.TypeMLflow,
				SecretRef: &v1alpha1.SecretReference{Name: "mlflow-secret"},
			},
			Status: v1alpha1.CredentialStatus{Conditions: []metav1.Condition{{
				Type: v1alpha1.ConditionReady, Status: metav1.ConditionFalse,
				Reason: "SecretMissing", Message: "Secret ml-team/mlflow-secret not found",
			}}},
		},
		// In another namespace: never offered to, nor listed for, ml-team's pods.
		{
			ObjectMeta: metav1.ObjectMeta{Name: "openai", Namespace: "other-team"},
			Spec: v1alpha1.CredentialSpec{
				Type:      v1alpha1.TypeGeneric,
				SecretRef: &v1alpha1.SecretReference{Name: "openai-secret"},
				Env:       []v1alpha1.EnvVar{{Name: "OPENAI_API_KEY", Key: new("api-key")}},
			},
		},
	}
}

// stored gives creds what the API server gives every object it stores: a UID, a
// resourceVersion (which the policy input's value cache keys on) and a generation (which the
// schema check's cache keys on).
func stored(creds []*v1alpha1.Credential) []*v1alpha1.Credential {
	for _, c := range creds {
		c.UID = types.UID("uid-" + c.Namespace + "-" + c.Name)
		c.ResourceVersion = "1"
		c.Generation = 1
	}
	return creds
}

func testStore() *credential.StaticStore {
	return credential.NewStaticStore(testNamespace, stored(testCredentials())...)
}

// builtinPolicies are credgate's built-in Rego policies, compiled once for every test: a
// revision, once prepared, does not depend on the context it was compiled with.
var builtinPolicies = sync.OnceValues(func() (*policies.Revision, error) {
	return policies.Load(context.Background(), "")
})

// newReviewer returns the Reviewer the webhook runs, with the built-in policies at their
// default enforcement, reading Credentials from store.
func newReviewer(t testing.TB, store credential.Store) *review.Reviewer {
	t.Helper()
	rev, err := builtinPolicies()
	if err != nil {
		t.Fatal(err)
	}
	return reviewerFor(rev, store)
}

// reviewerFor returns the Reviewer the webhook runs with policies rev.
func reviewerFor(rev *policies.Revision, store credential.Store) *review.Reviewer {
	return &review.Reviewer{Store: store, Policy: policies.NewEngine(rev), Values: &policies.ValueCache{}}
}

// fakeStore is a credential.Store whose reads fail on demand, standing in for an informer
// cache that has not synced or an API server that times out. Unset errors fall through to
// Store.
type fakeStore struct {
	credential.Store
	getErr   error
	namesErr error
}

var _ credential.Store = (*fakeStore)(nil)

func (s *fakeStore) Get(ctx context.Context, namespace, name string) (*v1alpha1.Credential, error) {
	if s.getErr != nil {
		return nil, s.getErr
	}
	return s.Store.Get(ctx, namespace, name)
}

func (s *fakeStore) Names(ctx context.Context, namespace string) ([]string, error) {
	if s.namesErr != nil {
		return nil, s.namesErr
	}
	return s.Store.Names(ctx, namespace)
}

// logBuffer collects log lines; it is safe for concurrent use.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) write(prefix, args string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.b.WriteString(prefix + " " + args + "\n")
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// newLogger returns a logger that writes every line, at any verbosity, to buf.
func newLogger(buf *logBuffer) logr.Logger {
	return funcr.New(buf.write, funcr.Options{Verbosity: 10})
}

// kindNamed returns the entry of Kinds for kind ("Pod", "Job", "CronJob").
func kindNamed(t testing.TB, kind string) Kind {
	t.Helper()
	for _, k := range Kinds {
		if k.GVK.Kind == kind {
			return k
		}
	}
	t.Fatalf("no entry in Kinds for %s", kind)
	return Kind{}
}

// newHandler returns the handler that serves kind, mutating, with r.
func newHandler(t testing.TB, kind string, r *review.Reviewer) *Handler {
	t.Helper()
	return &Handler{Kind: kindNamed(t, kind), Handlers: Handlers{Reviewer: r}}
}

// newWebhook returns m served as Register serves it, in an Endpoint, with log, and with panic
// recovery off: a panic fails the test.
func newWebhook(t testing.TB, m *Handler, log logr.Logger) http.Handler {
	t.Helper()
	m.Log = log.WithName("mutator")
	return &Endpoint{Handler: m}
}

func readFixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// serve posts body to h as the API server does and returns the AdmissionResponse it answers
// with, and the raw response body.
func serve(t testing.TB, h http.Handler, body []byte) (*admissionv1.AdmissionResponse, []byte) {
	t.Helper()
	req := httptest.NewRequestWithContext(t.Context(), http.MethodPost, "/mutate", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusOK {
		t.Fatalf("HTTP status %d, want 200 (admission outcomes travel in the body): %s", rec.Code, rec.Body)
	}
	resp, err := decodeResponse(rec.Body.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	return resp, rec.Body.Bytes()
}

// decodeResponse decodes an AdmissionReview response strictly: unknown fields or a missing
// response are errors.
func decodeResponse(body []byte) (*admissionv1.AdmissionResponse, error) {
	var ar admissionv1.AdmissionReview
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&ar); err != nil {
		return nil, &responseError{"decode the AdmissionReview response", err, body}
	}
	if ar.Response == nil {
		return nil, &responseError{"the AdmissionReview has no response", nil, body}
	}
	if ar.Response.Result == nil {
		return nil, &responseError{"the response has no result", nil, body}
	}
	return ar.Response, nil
}

type responseError struct {
	what string
	err  error
	body []byte
}

func (e *responseError) Error() string {
	if e.err != nil {
		return e.what + ": " + e.err.Error() + "\n" + string(e.body)
	}
	return e.what + "\n" + string(e.body)
}

// requestOf decodes the AdmissionRequest of an AdmissionReview fixture.
func requestOf(t testing.TB, body []byte) *admissionv1.AdmissionRequest {
	t.Helper()
	var ar admissionv1.AdmissionReview
	if err := json.Unmarshal(body, &ar); err != nil {
		t.Fatal(err)
	}
	if ar.Request == nil {
		t.Fatal("fixture has no request")
	}
	return ar.Request
}

// withObject returns the AdmissionReview body with request.object replaced by obj.
func withObject(t testing.TB, body, obj []byte) []byte {
	t.Helper()
	return editRequest(t, body, func(req map[string]any) {
		var o any
		if err := json.Unmarshal(obj, &o); err != nil {
			t.Fatal(err)
		}
		req["object"] = o
	})
}

// editRequest decodes the AdmissionReview body, lets edit change its request, and encodes it.
func editRequest(t testing.TB, body []byte, edit func(req map[string]any)) []byte {
	t.Helper()
	var ar map[string]any
	if err := json.Unmarshal(body, &ar); err != nil {
		t.Fatal(err)
	}
	edit(ar["request"].(map[string]any))
	out, err := json.Marshal(ar)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// applyPatch applies the response's JSON patch to the request object, as the API server does.
func applyPatch(object []byte, resp *admissionv1.AdmissionResponse) ([]byte, error) {
	p, err := jsonpatch.DecodePatch(resp.Patch)
	if err != nil {
		return nil, err
	}
	return p.Apply(object)
}

// newWebhookServer serves the webhooks Register wires, from a controller-runtime webhook
// server's mux, over HTTPS.
func newWebhookServer(t *testing.T, store credential.Store) *httptest.Server {
	t.Helper()
	srv := crwebhook.NewServer(crwebhook.Options{})
	Handlers{Reviewer: newReviewer(t, store), Log: logr.Discard()}.Register(srv)
	ts := httptest.NewTLSServer(srv.WebhookMux())
	t.Cleanup(ts.Close)
	return ts
}

// post sends an AdmissionReview to url on ts, as the API server does, and returns the response.
func post(t *testing.T, ts *httptest.Server, url string, body []byte) *admissionv1.AdmissionResponse {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	res, err := ts.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != http.StatusOK {
		t.Fatalf("HTTP status %d: %s", res.StatusCode, b)
	}
	resp, err := decodeResponse(b)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

// checkOutcome compares resp with want (its UID ignored) and checks that its message holds
// each of wantMsg.
func checkOutcome(t *testing.T, resp *admissionv1.AdmissionResponse, want outcome, wantMsg []string) {
	t.Helper()
	got := outcomeOf(resp)
	got.UID = ""
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("response (-want +got):\n%s\nmessage: %s", diff, resp.Result.Message)
	}
	for _, s := range wantMsg {
		if !strings.Contains(resp.Result.Message, s) {
			t.Errorf("message %q does not contain %q", resp.Result.Message, s)
		}
	}
}

// withUserPolicy compiles the built-in policies with one user module, source, at path.
func withUserPolicy(t testing.TB, path, source string) *policies.Revision {
	t.Helper()
	src, err := policies.Merge(policies.Builtin(), policies.Source{Modules: map[string]string{path: source}})
	if err != nil {
		t.Fatal(err)
	}
	rev, err := policies.Compile(context.Background(), src)
	if err != nil {
		t.Fatal(err)
	}
	return rev
}
