//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"os"
	"strings"
	"testing"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/google"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/credgate/credgate/api/v1alpha1"
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
