//go:build e2e

package e2e

import (
	"crypto/tls"
	"crypto/x509"
	"net/http"
	"os"
	"strings"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/credgate/credgate/api/v1alpha1"
	"github.com/credgate/credgate/test/podenv"
	"github.com/credgate/credgate/test/standin"
)

const (
	azureClientID = "6b0c0a3e-1f7e-4d8a-9a49-0c1f0b2f7a11"
	azureTenantID = "72f988bf-86f1-41af-91ab-2d7cd011db47"
)

// TestAzureWorkloadIdentity: a Job requesting an Azure workload-identity Credential gets, in
// the pod the real Job controller creates, no Secret but a projected service-account token
// and the variables Azure's SDKs read. Given only that environment and those files (the token
// issued by the API server's TokenRequest, as the kubelet would), the real azidentity
// exchanges the token at a stand-in for Entra ID (test/standin), which checks it as Entra
// checks a federated identity credential: signed by this cluster's issuer, for this service
// account, for api://AzureADTokenExchange. A token of another audience is refused, and without
// the projected token the SDK has nothing to present.
func TestAzureWorkloadIdentity(t *testing.T) {
	ns := trainerNamespace(t)
	iss, issClient := issuer()
	entra, err := standin.StartEntra(t.Context(), standin.EntraOptions{
		TenantID: azureTenantID, ClientID: azureClientID, IssuerURL: iss, IssuerHTTPClient: issClient,
		Subject: "system:serviceaccount:" + ns + ":trainer",
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(entra.Close)

	credential := func(name, audience string) {
		t.Helper()
		cred := &v1alpha1.Credential{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
			Spec: v1alpha1.CredentialSpec{Type: v1alpha1.TypeAzure, AllowedServiceAccounts: []string{"trainer"},
				Azure: &v1alpha1.Azure{Mode: v1alpha1.AzureWorkloadIdentity, ClientID: azureClientID, TenantID: azureTenantID,
					AuthorityHost: entra.URL}}}
		if audience != "" {
			cred.Spec.Azure.Token = &v1alpha1.ProjectedToken{Audience: audience}
		}
		if err := c.Client.Create(t.Context(), cred); err != nil {
			t.Fatal(err)
		}
	}
	credential("blob", "")
	credential("blob-other-audience", "api://SomethingElse")

	// exchange runs a job requesting cred, materialises its pod (tokens: whether the projected
	// token is written) and asks azidentity, configured by that environment alone, for a token.
	exchange := func(jobName, cred string, tokens bool) (*podenv.Container, error) {
		t.Helper()
		j := job(ns, jobName, []string{cred})
		j.Spec.Template.Spec.ServiceAccountName = "trainer"
		if err := c.Client.Create(t.Context(), j); err != nil {
			t.Fatalf("create job: %v", err)
		}
		p := jobPod(t, ns, jobName)
		src := podenv.Sources{}
		if tokens {
			src.Tokens = tokenRequests(t, ns)
		}
		ctr, err := podenv.MaterialiseWith(&p.Spec, "trainer", src, t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		for _, kv := range os.Environ() {
			if k, _, _ := strings.Cut(kv, "="); strings.HasPrefix(k, "AZURE_") {
				t.Setenv(k, "")
				os.Unsetenv(k)
			}
		}
		for k, v := range ctr.Env {
			t.Setenv(k, v)
		}
		// Only the test's plumbing: trust the stand-in's CA, and no instance discovery (which
		// would ask login.microsoftonline.com about the authority).
		az, err := azidentity.NewWorkloadIdentityCredential(&azidentity.WorkloadIdentityCredentialOptions{
			ClientOptions:            azcore.ClientOptions{Transport: entra.HTTPClient()},
			DisableInstanceDiscovery: true,
		})
		if err != nil {
			return ctr, err
		}
		_, err = az.GetToken(t.Context(), policy.TokenRequestOptions{Scopes: []string{"https://storage.azure.com/.default"}})
		return ctr, err
	}

	ctr, err := exchange("train", "blob", true)
	if err != nil {
		t.Fatalf("azidentity with the pod's environment: %v\nrefusals: %+v", err, entra.Refusals())
	}
	for _, k := range []string{"AZURE_CLIENT_SECRET", "AZURE_CLIENT_CERTIFICATE_PATH"} {
		if _, ok := ctr.Env[k]; ok {
			t.Errorf("a workload-identity pod has %s", k)
		}
	}
	if want := "/var/run/secrets/credgate/blob/azure-identity-token"; !strings.HasSuffix(ctr.Env["AZURE_FEDERATED_TOKEN_FILE"], want) {
		t.Errorf("AZURE_FEDERATED_TOKEN_FILE = %q, want the projected token at %s", ctr.Env["AZURE_FEDERATED_TOKEN_FILE"], want)
	}
	grants := entra.Grants()
	if len(grants) != 1 || grants[0].Subject != "system:serviceaccount:"+ns+":trainer" || grants[0].ClientID != azureClientID {
		t.Errorf("grants = %+v, want one for the pod's service account", grants)
	}

	if _, err := exchange("train-other-audience", "blob-other-audience", true); err == nil {
		t.Error("a token of another audience was exchanged")
	} else if refusals := entra.Refusals(); len(refusals) == 0 || !strings.Contains(refusals[len(refusals)-1].Description, "aud") {
		t.Errorf("refused for %+v, want the audience", refusals)
	}
	if _, err := exchange("train-no-token", "blob", false); err == nil {
		t.Error("azidentity got a token without the projected token file")
	}
	if n := len(entra.Grants()); n != 1 {
		t.Errorf("%d grants, want only the first exchange's", n)
	}
}

// trainerNamespace creates a namespace with the service account trainer, for the identity
// tests: the subject of its tokens is system:serviceaccount:<namespace>:trainer.
func trainerNamespace(t *testing.T) string {
	t.Helper()
	ns := namespace(t)
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "trainer", Namespace: ns}}
	if err := c.Client.Create(t.Context(), sa); err != nil {
		t.Fatal(err)
	}
	return ns
}

// issuer is the cluster's service-account issuer, as a token's iss names it, and a client
// that reaches its discovery document and keys over TLS (anonymous: TestMain binds
// system:service-account-issuer-discovery).
func issuer() (string, *http.Client) {
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(c.Config.CAData)
	return strings.TrimSuffix(c.Config.Host, "/") + "/",
		&http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}}
}

// tokenRequests issues the projected tokens of pods in ns as the kubelet does, through the
// API server's TokenRequest.
func tokenRequests(t *testing.T, ns string) podenv.TokenSource {
	return func(account, audience string, exp int64) ([]byte, error) {
		tr := &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{Audiences: []string{audience}, ExpirationSeconds: &exp}}
		sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: account, Namespace: ns}}
		if err := c.Client.SubResource("token").Create(t.Context(), sa, tr); err != nil {
			return nil, err
		}
		return []byte(tr.Status.Token), nil
	}
}
