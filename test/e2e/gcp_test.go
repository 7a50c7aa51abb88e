//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/google"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/credgate/credgate/api/v1alpha1"
	"github.com/credgate/credgate/tempcreds"
	"github.com/credgate/credgate/test/cluster"
	"github.com/credgate/credgate/test/podenv"
	"github.com/credgate/credgate/test/standin"
)

const (
	gcpProvider = "//iam.googleapis.com/projects/123456789/locations/global/workloadIdentityPools/ml/providers/k8s"
	gcpAccount  = "trainer@ml-project.iam.gserviceaccount.com"
)

// TestGCPWorkloadIdentityFederation: a Job requesting a GCP workload-identity-federation
// Credential gets, in the pod the real Job controller creates, no Secret: a projected
// service-account token and an external_account credential configuration, projected from a pod
// annotation credgate writes. Given only that environment and those files (the token issued by
// the API server's TokenRequest, the configuration read from the pod's annotation, as the
// kubelet would), the real golang.org/x/oauth2/google exchanges the token at a stand-in for
// Google's STS (test/standin), which checks it against this cluster's issuer, and impersonates
// the service account. A token of another audience is refused, and without the projected
// volume the library finds no credentials.
func TestGCPWorkloadIdentityFederation(t *testing.T) {
	ns := trainerNamespace(t)
	iss, issClient := issuer()
	sts, err := standin.StartGoogleSTS(t.Context(), standin.GoogleSTSOptions{
		Audience: gcpProvider, TokenAudience: "https:" + gcpProvider, IssuerURL: iss, IssuerHTTPClient: issClient,
		Subject: "system:serviceaccount:" + ns + ":trainer", ServiceAccountEmail: gcpAccount,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sts.Close)

	credential := func(name, audience string) {
		t.Helper()
		cred := &v1alpha1.Credential{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
			Spec: v1alpha1.CredentialSpec{Type: v1alpha1.TypeGCP, AllowedServiceAccounts: []string{"trainer"},
				GCP: &v1alpha1.GCP{Mode: v1alpha1.GCPWorkloadIdentityFederation, Audience: gcpProvider,
					ServiceAccountEmail: gcpAccount, TokenURL: sts.URL + "v1/token",
					ImpersonationURL: sts.URL + "v1/projects/-/serviceAccounts/" + gcpAccount + ":generateAccessToken"}}}
		if audience != "" {
			cred.Spec.GCP.Token = &v1alpha1.ProjectedToken{Audience: audience}
		}
		if err := c.Client.Create(t.Context(), cred); err != nil {
			t.Fatal(err)
		}
	}
	credential("gcs", "")
	credential("gcs-other-audience", "https://example.com/other")

	// exchange runs a job requesting cred, materialises its pod (projected: whether its
	// projected volume is written) and asks oauth2/google, configured by that environment
	// alone, for a token.
	exchange := func(jobName, cred string, projected bool) (*podenv.Container, corev1.Pod, error) {
		t.Helper()
		j := job(ns, jobName, []string{cred})
		j.Spec.Template.Spec.ServiceAccountName = "trainer"
		if err := c.Client.Create(t.Context(), j); err != nil {
			t.Fatalf("create job: %v", err)
		}
		p := jobPod(t, ns, jobName)
		src := podenv.Sources{Annotations: p.Annotations}
		if projected {
			src.Tokens = tokenRequests(t, ns)
		}
		ctr, err := podenv.MaterialiseWith(&p.Spec, "trainer", src, t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range []string{"GOOGLE_APPLICATION_CREDENTIALS", "CLOUDSDK_AUTH_CREDENTIAL_FILE_OVERRIDE"} {
			t.Setenv(k, "")
			os.Unsetenv(k)
		}
		for k, v := range ctr.Env {
			t.Setenv(k, v)
		}
		// Only the test's plumbing: trust the stand-in's CA.
		ctx := context.WithValue(t.Context(), oauth2.HTTPClient, sts.HTTPClient())
		creds, err := google.FindDefaultCredentials(ctx, "https://www.googleapis.com/auth/devstorage.read_only")
		if err != nil {
			return ctr, p, err
		}
		_, err = creds.TokenSource.Token()
		return ctr, p, err
	}

	ctr, p, err := exchange("train", "gcs", true)
	if err != nil {
		t.Fatalf("oauth2/google with the pod's environment: %v\nrefusals: %+v", err, sts.Refusals())
	}
	for _, v := range p.Spec.Volumes {
		if v.Secret != nil {
			t.Errorf("a workload-identity-federation pod mounts Secret %s", v.Secret.SecretName)
		}
	}
	var cfg map[string]any
	if err := json.Unmarshal([]byte(p.Annotations["credgate.dev/credgate-gcs"]), &cfg); err != nil || cfg["type"] != "external_account" || cfg["audience"] != gcpProvider {
		t.Errorf("the pod's configuration annotation: %v %v", cfg, err)
	}
	if !strings.HasSuffix(ctr.Env["GOOGLE_APPLICATION_CREDENTIALS"], "/var/run/secrets/credgate/gcs/credential-configuration.json") {
		t.Errorf("GOOGLE_APPLICATION_CREDENTIALS = %q", ctr.Env["GOOGLE_APPLICATION_CREDENTIALS"])
	}
	grants := sts.Grants()
	if len(grants) != 2 || grants[0].Subject != "system:serviceaccount:"+ns+":trainer" || grants[1].ServiceAccount != gcpAccount {
		t.Errorf("grants = %+v, want the token exchange for the pod's service account, then %s impersonated", grants, gcpAccount)
	}

	if _, _, err := exchange("train-no-volume", "gcs", false); err == nil {
		t.Error("oauth2/google got a token without the projected volume (token and configuration)")
	}
	if _, _, err := exchange("train-other-audience", "gcs-other-audience", true); err == nil {
		t.Error("a token of another audience was exchanged")
	} else if refusals := sts.Refusals(); len(refusals) == 0 || !strings.Contains(refusals[len(refusals)-1].Description, "aud") {
		t.Errorf("refused for %+v, want the audience", refusals)
	}
	if n := len(sts.Grants()); n != 2 {
		t.Errorf("%d grants, want only the first exchange's two", n)
	}
}

// gcpMinter is the source service account of TestGCPImpersonation: its key stays in the
// refresher's namespace, and it may impersonate gcpAccount only.
const gcpMinter = "minter@platform-project.iam.gserviceaccount.com"

// gcpTokenLifetime is the impersonation tokens' lifetime in TestGCPImpersonation
// (--gcp-max-token-lifetime): the refresher mints a new one after about 20s.
const gcpTokenLifetime = 30 * time.Second

// tokenFile is the token source docs/gcp.md gives Go programs: token.json, read again
// whenever the token held expires.
type tokenFile string

func (f tokenFile) Token() (*oauth2.Token, error) {
	b, err := os.ReadFile(string(f))
	if err != nil {
		return nil, err
	}
	t := new(oauth2.Token)
	return t, json.Unmarshal(b, t)
}

// TestGCPImpersonation: credgate refresher signs in with a source service-account key kept in
// its namespace (the real golang.org/x/oauth2/google, JWT-bearer grant) and impersonates the
// granted service account at a stand-in for Google's OAuth and IAM Credentials endpoints
// (test/standin), which checks the key's signature and the impersonation grant. The pod the
// real Job controller creates gets the managed Secret and CLOUDSDK_AUTH_ACCESS_TOKEN_FILE, no
// key; given that pod's files (as the kubelet writes them, again after each refresh), the
// token source of docs/gcp.md holds a token that Google's tokeninfo attributes to the service
// account with the scope asked, and the same source moves to the next token when the first
// expires. A revoked grant empties the token and refuses new Jobs.
func TestGCPImpersonation(t *testing.T) {
	sts, err := standin.StartGoogleSTS(t.Context(), standin.GoogleSTSOptions{Impersonates: map[string][]string{gcpMinter: {gcpAccount}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sts.Close)
	key, pub, err := standin.NewServiceAccountKey(gcpMinter, sts.TokenURI())
	if err != nil {
		t.Fatal(err)
	}
	if err := sts.AddServiceAccountKey(pub); err != nil {
		t.Fatal(err)
	}
	// Only the test's plumbing: the refresher trusts the stand-in's CA (SSL_CERT_FILE, as for
	// a private endpoint) and mints short-lived tokens.
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, sts.CAPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	c.StopRefresher()
	t.Cleanup(func() {
		c.StopRefresher()
		if err := c.StartRefresher(context.Background()); err != nil {
			t.Errorf("restart the refresher: %v", err)
		}
	})
	if err := c.StartRefresherWith(t.Context(), []string{"SSL_CERT_FILE=" + ca}, "--gcp-max-token-lifetime="+gcpTokenLifetime.String()); err != nil {
		t.Fatal(err)
	}

	ns := namespace(t)
	enableRefresher(t, ns)
	src := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "gcp-minter", Namespace: cluster.RefresherNamespace,
		Annotations: map[string]string{tempcreds.GrantNamespaces: ns, tempcreds.GrantServiceAccounts: "trainer@*.iam.gserviceaccount.com",
			tempcreds.GrantIAMCredentialsEndpoint: sts.URL}},
		Data: map[string][]byte{tempcreds.SourceGCPKey: key}}
	if err := c.Client.Create(t.Context(), src); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Client.Delete(context.Background(), src) })
	const scope = "https://www.googleapis.com/auth/devstorage.read_only"
	cred := &v1alpha1.Credential{ObjectMeta: metav1.ObjectMeta{Name: "gcs", Namespace: ns},
		Spec: v1alpha1.CredentialSpec{Type: v1alpha1.TypeGCP, GCP: &v1alpha1.GCP{Mode: v1alpha1.GCPImpersonation,
			ServiceAccountEmail: gcpAccount, SourceSecretRef: &v1alpha1.SecretReference{Name: "gcp-minter"}, Scopes: []string{scope}}}}
	if err := c.Client.Create(t.Context(), cred); err != nil {
		t.Fatal(err)
	}
	minted, ready := condition(t, ns, "gcs", v1alpha1.ConditionReady, metav1.ConditionTrue)
	if ready.Reason != tempcreds.ReasonMinted || minted.Status.SecretName != "credgate-gcp-gcs" || minted.Status.ExpiresAt == nil {
		t.Fatalf("status after minting: %+v", minted.Status)
	}

	if err := c.Client.Create(t.Context(), job(ns, "train", []string{"gcs"})); err != nil {
		t.Fatalf("create Job: %v", err)
	}
	pod := jobPod(t, ns, "train")
	spec, err := json.Marshal(pod.Spec)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(spec), "PRIVATE KEY") || strings.Contains(string(spec), "gcp-minter") {
		t.Fatal("the pod spec holds or names the source key")
	}
	// The kubelet's part: secret volumes written under a temporary root, again whenever the
	// Secret changes.
	materialise := kubelet(t, ns, &pod, "trainer")
	ctr := materialise()
	tokenPath := ctr.Env["CLOUDSDK_AUTH_ACCESS_TOKEN_FILE"]
	if !strings.HasSuffix(tokenPath, "/var/run/secrets/credgate/gcs/access-token") || ctr.Env["GOOGLE_APPLICATION_CREDENTIALS"] != "" {
		t.Fatalf("the container's environment: %v", ctr.Env)
	}
	ts := oauth2.ReuseTokenSource(nil, tokenFile(filepath.Join(filepath.Dir(tokenPath), "token.json")))
	first, err := ts.Token()
	if err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(tokenPath)
	if err != nil || string(raw) != first.AccessToken {
		t.Fatalf("access-token %q (%v) is not token.json's token", raw, err)
	}
	tokeninfo := func(tok string) (map[string]string, int) {
		t.Helper()
		res, err := sts.HTTPClient().Get(sts.URL + "tokeninfo?access_token=" + url.QueryEscape(tok))
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = res.Body.Close() }()
		var info map[string]string
		_ = json.NewDecoder(res.Body).Decode(&info)
		return info, res.StatusCode
	}
	if info, status := tokeninfo(first.AccessToken); status != 200 || info["email"] != gcpAccount || info["scope"] != scope {
		t.Fatalf("tokeninfo of the pod's token: %d %v, want %s with %s", status, info, gcpAccount, scope)
	}
	grants := sts.Grants()
	if len(grants) < 2 || grants[0].ServiceAccount != gcpMinter || grants[1].Principal != gcpMinter || grants[1].ServiceAccount != gcpAccount {
		t.Errorf("grants = %+v, want the source's sign-in, then %s impersonated", grants, gcpAccount)
	}

	// The refresher mints a new token at about two thirds of the lifetime; the pod's token
	// source reads it once the first expires.
	var managed corev1.Secret
	eventually(t, gcpTokenLifetime, func() (bool, string) {
		if err := c.Client.Get(t.Context(), client.ObjectKey{Namespace: ns, Name: "credgate-gcp-gcs"}, &managed); err != nil {
			return false, err.Error()
		}
		return string(managed.Data["access-token"]) != first.AccessToken, "the refresher has not minted a new token"
	})
	if time.Now().After(first.Expiry) {
		t.Errorf("refreshed only after the first token expired (%s)", first.Expiry)
	}
	second := string(managed.Data["access-token"])
	materialise()
	time.Sleep(time.Until(first.Expiry) + time.Second)
	if tok, err := ts.Token(); err != nil || tok.AccessToken != second {
		t.Fatalf("after the first token expired the token source holds another (%v), want the refreshed one", err)
	}
	if _, status := tokeninfo(first.AccessToken); status != 400 {
		t.Errorf("tokeninfo of the expired first token: status %d, want 400", status)
	}
	if info, status := tokeninfo(second); status != 200 || info["email"] != gcpAccount {
		t.Errorf("tokeninfo of the refreshed token: %d %v", status, info)
	}

	// Revoking the grant empties the token and refuses new Jobs.
	if err := c.Client.Get(t.Context(), client.ObjectKeyFromObject(src), src); err != nil {
		t.Fatal(err)
	}
	src.Annotations[tempcreds.GrantServiceAccounts] = "reader@*.iam.gserviceaccount.com"
	if err := c.Client.Update(t.Context(), src); err != nil {
		t.Fatal(err)
	}
	if _, ready := condition(t, ns, "gcs", v1alpha1.ConditionReady, metav1.ConditionFalse); ready.Reason != tempcreds.ReasonSourceNotGranted {
		t.Errorf("Ready after the grant was revoked: %+v", ready)
	}
	eventually(t, 10*time.Second, func() (bool, string) {
		if err := c.Client.Get(t.Context(), client.ObjectKey{Namespace: ns, Name: "credgate-gcp-gcs"}, &managed); err != nil {
			return false, err.Error()
		}
		return len(managed.Data["access-token"]) == 0 && len(managed.Data["token.json"]) == 0, "the managed Secret still holds a token"
	})
	err = c.Client.Create(t.Context(), job(ns, "train-revoked", []string{"gcs"}))
	if err == nil || !strings.Contains(err.Error(), "[credential-not-ready]") || !strings.Contains(err.Error(), tempcreds.ReasonSourceNotGranted) {
		t.Errorf("create a Job after the grant was revoked: %v, want a credential-not-ready refusal", err)
	}
	notInLogs(t, first.AccessToken, second, "PRIVATE KEY")
}
