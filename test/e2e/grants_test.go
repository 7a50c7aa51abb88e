//go:build e2e

package e2e

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/credgate/credgate/api/v1alpha1"
	"github.com/credgate/credgate/tempcreds"
	"github.com/credgate/credgate/test/cluster"
	"github.com/credgate/credgate/test/minio"
)

// stsCounter is a reverse proxy in front of MinIO that counts the AssumeRole requests it
// passes on, by role session name (credgate@<namespace>.<credential>).
type stsCounter struct {
	*httptest.Server
	mu       sync.Mutex
	sessions map[string]int
}

func newSTSCounter(t *testing.T) *stsCounter {
	t.Helper()
	target, err := url.Parse(s3srv.Endpoint)
	if err != nil {
		t.Fatal(err)
	}
	// The Host header is passed on as the client signed it (SigV4 covers it).
	proxy := httputil.NewSingleHostReverseProxy(target)
	p := &stsCounter{sessions: map[string]int{}}
	p.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		if form, err := url.ParseQuery(string(body)); err == nil && form.Get("Action") == "AssumeRole" {
			p.mu.Lock()
			p.sessions[form.Get("RoleSessionName")]++
			p.mu.Unlock()
		}
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(p.Close)
	return p
}

// calls is how many AssumeRole requests named a session of namespace ns.
func (p *stsCounter) calls(ns string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for s, k := range p.sessions {
		if strings.HasPrefix(s, "credgate@"+ns+".") {
			n += k
		}
	}
	return n
}

// grantCredential creates an assumeRole Credential naming source at endpoint.
func grantCredential(t *testing.T, ns, name, source, endpoint string) {
	t.Helper()
	cred := &v1alpha1.Credential{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: v1alpha1.CredentialSpec{Type: v1alpha1.TypeS3Compatible, AWS: &v1alpha1.AWS{
			Mode: v1alpha1.AWSAssumeRole, RoleARN: "arn:aws:iam::000000000000:role/trainer",
			Region: minio.Region, Endpoint: endpoint,
			SessionPolicy:   &apiextensionsv1.JSON{Raw: []byte(dataOnly)},
			SourceSecretRef: &v1alpha1.SecretReference{Name: source},
		}}}
	if err := c.Client.Create(t.Context(), cred); err != nil {
		t.Fatal(err)
	}
}

// TestSourceGrants: a source Secret is usable only where the platform granted it. team-a's
// source mints for team-a; a Credential in team-b naming it is not Ready (SourceNotGranted),
// no AssumeRole for team-b reaches the STS server, and team-b's Jobs are refused; a team-a
// Credential pointing the source's keys at another host never sends them there; a granted
// namespace the platform did not enable gets no Secret written (NamespaceNotEnabled).
func TestSourceGrants(t *testing.T) {
	seedBuckets(t)
	sts := newSTSCounter(t)
	var attacker struct {
		sync.Mutex
		n int
	}
	evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		attacker.Lock()
		attacker.n++
		attacker.Unlock()
		w.WriteHeader(http.StatusForbidden)
	}))
	t.Cleanup(evil.Close)

	teamA, teamB, teamC := namespace(t), namespace(t), namespace(t)
	for _, ns := range []string{teamA, teamB} {
		enableRefresher(t, ns)
	}
	grantedSource(t, "team-a-keys", minio.RootUser, minio.RootPassword, map[string]string{
		tempcreds.GrantNamespaces: teamA + "," + teamC, tempcreds.GrantRoleARNs: trainerRoles, tempcreds.GrantSTSEndpoint: sts.URL})

	grantCredential(t, teamA, "s3", "team-a-keys", sts.URL)
	if _, ready := condition(t, teamA, "s3", v1alpha1.ConditionReady, metav1.ConditionTrue); ready.Reason != tempcreds.ReasonMinted {
		t.Fatalf("team-a's Credential: %+v", ready)
	}
	if n := sts.calls(teamA); n < 1 {
		t.Fatalf("%d AssumeRole requests for team-a reached the STS server, want at least 1", n)
	}

	// team-b names team-a's source.
	grantCredential(t, teamB, "s3", "team-a-keys", sts.URL)
	_, ready := condition(t, teamB, "s3", v1alpha1.ConditionReady, metav1.ConditionFalse)
	if ready.Reason != tempcreds.ReasonSourceNotGranted || !strings.Contains(ready.Message, "namespace "+teamB+" is not granted") {
		t.Errorf("team-b's Credential: %+v, want %s", ready, tempcreds.ReasonSourceNotGranted)
	}
	if strings.Contains(ready.Message, teamA) {
		t.Errorf("the condition tells team-b whom the source is granted to: %s", ready.Message)
	}
	err := c.Client.Create(t.Context(), job(teamB, "train", []string{"s3"}))
	if err == nil || !strings.Contains(err.Error(), "[credential-not-ready]") || !strings.Contains(err.Error(), tempcreds.ReasonSourceNotGranted) {
		t.Errorf("team-b's Job: %v, want a credential-not-ready refusal naming %s", err, tempcreds.ReasonSourceNotGranted)
	}
	var managed corev1.Secret
	if err := c.Client.Get(t.Context(), client.ObjectKey{Namespace: teamB, Name: "credgate-aws-s3"}, &managed); !apierrors.IsNotFound(err) {
		t.Errorf("team-b got a managed Secret: %v", err)
	}

	// team-a points the source's keys at a host of its own.
	grantCredential(t, teamA, "exfiltrate", "team-a-keys", evil.URL)
	_, ready = condition(t, teamA, "exfiltrate", v1alpha1.ConditionReady, metav1.ConditionFalse)
	if ready.Reason != tempcreds.ReasonSourceNotGranted || !strings.Contains(ready.Message, "not the STS endpoint") {
		t.Errorf("Credential with the tenant's endpoint: %+v", ready)
	}

	// team-c is granted but not enabled: the refresher may not write its Secret.
	grantCredential(t, teamC, "s3", "team-a-keys", sts.URL)
	if _, ready := condition(t, teamC, "s3", v1alpha1.ConditionReady, metav1.ConditionFalse); ready.Reason != tempcreds.ReasonNamespaceNotEnabled {
		t.Errorf("team-c's Credential: %+v, want %s", ready, tempcreds.ReasonNamespaceNotEnabled)
	}

	if n := sts.calls(teamB); n != 0 {
		t.Errorf("%d AssumeRole requests for team-b reached the STS server, want 0", n)
	}
	attacker.Lock()
	if attacker.n != 0 {
		t.Errorf("%d requests reached the tenant's host, want 0", attacker.n)
	}
	attacker.Unlock()
	notInLogs(t, minio.RootPassword)
}

// TestServingIdentityHoldsNoSecrets: with the RBAC of manifests/, credgate serve's identity
// (the process that faces the API server) can neither write a Secret anywhere nor read a
// source Secret; the refresher's can write only in namespaces the platform enabled.
func TestServingIdentityHoldsNoSecrets(t *testing.T) {
	ns := namespace(t)
	enabled := namespace(t)
	enableRefresher(t, enabled)
	grantedSource(t, "some-keys", "id", "long-lived", nil)
	serving, err := c.ClientAs(cluster.ServingAccount)
	if err != nil {
		t.Fatal(err)
	}
	refresher, err := c.ClientAs(cluster.RefresherAccount)
	if err != nil {
		t.Fatal(err)
	}
	secret := func(ns string) *corev1.Secret {
		return &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "credgate-aws-x", Namespace: ns}, StringData: map[string]string{"k": "v"}}
	}
	for _, target := range []string{ns, enabled, cluster.Namespace, cluster.RefresherNamespace} {
		if err := serving.Create(t.Context(), secret(target)); !apierrors.IsForbidden(err) {
			t.Errorf("credgate serve's identity creates a Secret in %s: %v, want Forbidden", target, err)
		}
	}
	var src corev1.Secret
	if err := serving.Get(t.Context(), client.ObjectKey{Namespace: cluster.RefresherNamespace, Name: "some-keys"}, &src); !apierrors.IsForbidden(err) {
		t.Errorf("credgate serve's identity reads a source Secret: %v, want Forbidden", err)
	}
	if err := refresher.Create(t.Context(), secret(ns)); !apierrors.IsForbidden(err) {
		t.Errorf("the refresher's identity creates a Secret in a namespace not enabled: %v, want Forbidden", err)
	}
	if err := refresher.Create(t.Context(), secret(enabled)); err != nil {
		t.Errorf("the refresher's identity creates a Secret in an enabled namespace: %v", err)
	}
}

// TestServingIdentityKeepsItsWebhooks: credgate serve's identity may write the CA bundle of its
// webhook configurations (certificate rotation keeps doing so throughout these tests) and
// nothing else of them: the API server's ValidatingAdmissionPolicy of the self-managed overlay
// refuses widening what the webhooks are sent.
func TestServingIdentityKeepsItsWebhooks(t *testing.T) {
	serving, err := c.ClientAs(cluster.ServingAccount)
	if err != nil {
		t.Fatal(err)
	}
	for name, edit := range map[string]func(*admissionregistrationv1.MutatingWebhookConfiguration){
		"drop the namespace selector": func(m *admissionregistrationv1.MutatingWebhookConfiguration) {
			m.Webhooks[0].NamespaceSelector = &metav1.LabelSelector{}
		},
		"drop the match conditions": func(m *admissionregistrationv1.MutatingWebhookConfiguration) {
			m.Webhooks[0].MatchConditions = nil
		},
		"be sent Secrets": func(m *admissionregistrationv1.MutatingWebhookConfiguration) {
			m.Webhooks[0].Rules[0].Resources = append(m.Webhooks[0].Rules[0].Resources, "secrets")
		},
		"add a webhook": func(m *admissionregistrationv1.MutatingWebhookConfiguration) {
			w := *m.Webhooks[0].DeepCopy()
			w.Name = "more.credgate.dev"
			m.Webhooks = append(m.Webhooks, w)
		},
	} {
		t.Run(name, func(t *testing.T) {
			var m admissionregistrationv1.MutatingWebhookConfiguration
			if err := serving.Get(t.Context(), client.ObjectKey{Name: "credgate"}, &m); err != nil {
				t.Fatal(err)
			}
			edit(&m)
			err := serving.Update(t.Context(), &m, client.DryRunAll)
			if err == nil || !strings.Contains(err.Error(), "may change only the CA bundle") {
				t.Errorf("update as credgate serve: %v, want a refusal by the policy", err)
			}
		})
	}
	t.Run("the CA bundle", func(t *testing.T) {
		var m admissionregistrationv1.MutatingWebhookConfiguration
		if err := serving.Get(t.Context(), client.ObjectKey{Name: "credgate"}, &m); err != nil {
			t.Fatal(err)
		}
		m.Webhooks[0].ClientConfig.CABundle = append([]byte(nil), m.Webhooks[1].ClientConfig.CABundle...)
		if err := serving.Update(t.Context(), &m, client.DryRunAll); err != nil {
			t.Errorf("update of the CA bundle as credgate serve: %v", err)
		}
	})
}

// TestRightsSuffice: what credgate serve and credgate refresher log — client-go's output
// included — is one JSON document a line, and none of it says the RBAC of manifests/ forbade
// something they do (leader election records Events on its Lease, for one).
func TestRightsSuffice(t *testing.T) {
	for _, name := range []string{"credgate.log", "credgate-refresher.log"} {
		data, err := os.ReadFile(filepath.Join(c.WorkDir, name))
		if err != nil {
			t.Fatal(err)
		}
		for i, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
			if !json.Valid([]byte(line)) {
				t.Errorf("%s:%d is not JSON: %.160s", name, i+1, line)
			}
			// (A namespace the platform did not enable is forbidden on purpose: TestSourceGrants.
			// An Event in a namespace a finished test deletes is refused by the namespace
			// lifecycle, not by RBAC.)
			if strings.Contains(line, "forbidden") && !strings.Contains(line, tempcreds.ReasonNamespaceNotEnabled) &&
				!strings.Contains(line, "because it is being terminated") {
				t.Errorf("%s:%d: %.300s", name, i+1, line)
			}
		}
	}
}
