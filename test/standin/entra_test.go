package standin_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/asn1"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/credgate/credgate/test/standin"
)

const (
	tenantID = "6b8c2f4e-1d3a-4e5b-9c7d-0a1b2c3d4e5f"
	clientID = "0f9e8d7c-6b5a-4c3d-8e2f-1a0b9c8d7e6f"
	subject  = "system:serviceaccount:ml:trainer"
	scope    = "https://storage.azure.com/.default"
)

// issuer is a fake service-account issuer: an OpenID Connect discovery document and a JWKS,
// served over TLS, and the private key that signs its tokens.
type issuer struct {
	srv  *httptest.Server
	url  string // as the API server's --service-account-issuer: with a trailing slash
	alg  string
	kid  string // of the key the JWKS publishes
	key  crypto.Signer
	hits atomic.Int32 // requests served
	// headerKid, when set, is the kid sign puts in the header instead of kid.
	headerKid string
}

func newIssuer(t *testing.T, alg string) *issuer { return newIssuerNaming(t, alg, "") }

// newIssuerNaming returns an issuer whose discovery document names discoveryIssuer, when set,
// rather than itself.
func newIssuerNaming(t *testing.T, alg, discoveryIssuer string) *issuer {
	t.Helper()
	is := &issuer{alg: alg, kid: "key-" + alg, key: newKey(t, alg)}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/openid-configuration", func(w http.ResponseWriter, _ *http.Request) {
		is.hits.Add(1)
		name := is.url
		if discoveryIssuer != "" {
			name = discoveryIssuer
		}
		writeJSON(t, w, map[string]any{
			"issuer": name, "jwks_uri": is.srv.URL + "/openid/v1/jwks",
			"response_types_supported": []string{"id_token"}, "subject_types_supported": []string{"public"},
			"id_token_signing_alg_values_supported": []string{alg},
		})
	})
	mux.HandleFunc("GET /openid/v1/jwks", func(w http.ResponseWriter, _ *http.Request) {
		is.hits.Add(1)
		writeJSON(t, w, map[string]any{"keys": []any{publicJWK(t, is.kid, alg, is.key.Public())}})
	})
	is.srv = httptest.NewTLSServer(mux)
	t.Cleanup(is.srv.Close)
	is.url = is.srv.URL + "/"
	return is
}

func newKey(t *testing.T, alg string) crypto.Signer {
	t.Helper()
	var (
		k   crypto.Signer
		err error
	)
	switch alg {
	case "RS256":
		k, err = rsa.GenerateKey(rand.Reader, 2048)
	case "ES256":
		k, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	default:
		t.Fatalf("alg %s", alg)
	}
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func publicJWK(t *testing.T, kid, alg string, pub crypto.PublicKey) map[string]string {
	t.Helper()
	b64 := base64.RawURLEncoding.EncodeToString
	switch p := pub.(type) {
	case *rsa.PublicKey:
		return map[string]string{"use": "sig", "kty": "RSA", "kid": kid, "alg": alg,
			"n": b64(p.N.Bytes()), "e": b64(big.NewInt(int64(p.E)).Bytes())}
	case *ecdsa.PublicKey:
		point, err := p.Bytes() // 0x04 || X || Y
		if err != nil {
			t.Fatal(err)
		}
		return map[string]string{"use": "sig", "kty": "EC", "kid": kid, "alg": alg, "crv": "P-256",
			"x": b64(point[1:33]), "y": b64(point[33:])}
	}
	t.Fatalf("key type %T", pub)
	return nil
}

// claims are a projected service-account token's claims, valid for the stand-in's credential.
func (is *issuer) claims() map[string]any {
	now := time.Now()
	return map[string]any{
		"iss": is.url, "sub": subject, "aud": []string{standin.DefaultAudience},
		"iat": now.Unix(), "nbf": now.Unix(), "exp": now.Add(time.Hour).Unix(),
		"kubernetes.io": map[string]any{"namespace": "ml", "serviceaccount": map[string]string{"name": "trainer", "uid": "3c1e"}},
	}
}

// sign signs claims with key as the issuer's kid, using only the standard library.
func (is *issuer) sign(t *testing.T, key crypto.Signer, claims map[string]any) string {
	t.Helper()
	enc := func(v any) string {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return base64.RawURLEncoding.EncodeToString(b)
	}
	kid := is.kid
	if is.headerKid != "" {
		kid = is.headerKid
	}
	input := enc(map[string]string{"alg": is.alg, "kid": kid}) + "." + enc(claims)
	digest := sha256.Sum256([]byte(input))
	var sig []byte
	switch k := key.(type) {
	case *rsa.PrivateKey:
		s, err := rsa.SignPKCS1v15(rand.Reader, k, crypto.SHA256, digest[:])
		if err != nil {
			t.Fatal(err)
		}
		sig = s
	case *ecdsa.PrivateKey:
		der, err := ecdsa.SignASN1(rand.Reader, k, digest[:])
		if err != nil {
			t.Fatal(err)
		}
		var rs struct{ R, S *big.Int }
		if _, err := asn1.Unmarshal(der, &rs); err != nil {
			t.Fatal(err)
		}
		sig = make([]byte, 64) // JWS: R || S, each 32 bytes
		rs.R.FillBytes(sig[:32])
		rs.S.FillBytes(sig[32:])
	}
	return input + "." + base64.RawURLEncoding.EncodeToString(sig)
}

func startEntra(t *testing.T, is *issuer) *standin.Entra {
	t.Helper()
	e, err := standin.StartEntra(t.Context(), standin.EntraOptions{
		TenantID: tenantID, ClientID: clientID, Subject: subject,
		IssuerURL: is.url, IssuerHTTPClient: is.srv.Client(),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	return e
}

// getToken runs the real azidentity WorkloadIdentityCredential against e with token as the
// projected service-account token.
func getToken(t *testing.T, e *standin.Entra, token, client, tenant string) (azcore.AccessToken, error) {
	t.Helper()
	file := filepath.Join(t.TempDir(), "azure-identity-token")
	if err := os.WriteFile(file, []byte(token), 0o600); err != nil {
		t.Fatal(err)
	}
	cred, err := azidentity.NewWorkloadIdentityCredential(&azidentity.WorkloadIdentityCredentialOptions{
		ClientOptions: azcore.ClientOptions{
			Cloud:     cloud.Configuration{ActiveDirectoryAuthorityHost: e.URL},
			Transport: e.HTTPClient(),
		},
		ClientID: client, TenantID: tenant, TokenFilePath: file,
		DisableInstanceDiscovery: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	return cred.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{scope}})
}

func checkGrant(t *testing.T, e *standin.Entra, is *issuer, tok azcore.AccessToken) {
	t.Helper()
	if tok.Token == "" {
		t.Error("no access token")
	}
	if d := time.Until(tok.ExpiresOn); d < 55*time.Minute || d > time.Hour {
		t.Errorf("the access token expires in %s, not an hour", d)
	}
	want := standin.Grant{Tenant: tenantID, ClientID: clientID, Issuer: is.url, Subject: subject, Scope: scope}
	g := e.Grants()
	if len(g) != 1 {
		t.Fatalf("grants: %+v, want one", g)
	}
	got := g[0]
	if time.Since(got.Time) > time.Minute {
		t.Errorf("grant time %s", got.Time)
	}
	got.Time = time.Time{}
	if got != want {
		t.Errorf("grant %+v, want %+v", got, want)
	}
	if r := e.Refusals(); len(r) != 0 {
		t.Errorf("refusals: %+v", r)
	}
}

// TestWorkloadIdentityFromEnvironment configures azidentity as a pod's process is configured,
// from AZURE_CLIENT_ID, AZURE_TENANT_ID, AZURE_FEDERATED_TOKEN_FILE and AZURE_AUTHORITY_HOST,
// with only the test plumbing of doc.go as options; the issuer signs RS256.
func TestWorkloadIdentityFromEnvironment(t *testing.T) {
	is := newIssuer(t, "RS256")
	e := startEntra(t, is)
	file := filepath.Join(t.TempDir(), "azure-identity-token")
	if err := os.WriteFile(file, []byte(is.sign(t, is.key, is.claims())), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("AZURE_CLIENT_ID", clientID)
	t.Setenv("AZURE_TENANT_ID", tenantID)
	t.Setenv("AZURE_FEDERATED_TOKEN_FILE", file)
	t.Setenv("AZURE_AUTHORITY_HOST", e.URL)
	cred, err := azidentity.NewWorkloadIdentityCredential(&azidentity.WorkloadIdentityCredentialOptions{
		ClientOptions:            azcore.ClientOptions{Transport: e.HTTPClient()},
		DisableInstanceDiscovery: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	tok, err := cred.GetToken(t.Context(), policy.TokenRequestOptions{Scopes: []string{scope}})
	if err != nil {
		t.Fatal(err)
	}
	checkGrant(t, e, is, tok)
	if n := is.hits.Load(); n != 2 {
		t.Errorf("the issuer served %d requests, want its discovery document and JWKS", n)
	}
}

// TestWorkloadIdentityES256: an issuer with an EC P-256 key, as envtest's API server has, and
// an aud that is a single string.
func TestWorkloadIdentityES256(t *testing.T) {
	is := newIssuer(t, "ES256")
	e := startEntra(t, is)
	c := is.claims()
	c["aud"] = standin.DefaultAudience
	tok, err := getToken(t, e, is.sign(t, is.key, c), clientID, tenantID)
	if err != nil {
		t.Fatal(err)
	}
	checkGrant(t, e, is, tok)
}

// TestRefused: each case breaks one check, which azidentity reports with the stand-in's reason.
func TestRefused(t *testing.T) {
	for _, alg := range []string{"RS256", "ES256"} {
		t.Run(alg, func(t *testing.T) { testRefused(t, alg) })
	}
}

func testRefused(t *testing.T, alg string) {
	is := newIssuer(t, alg)
	other := newKey(t, alg)
	type tc struct {
		name          string
		claims        func(map[string]any)
		key           crypto.Signer // signs instead of the issuer's key
		client        string
		tenant        string
		status        int
		error, reason string
	}
	const (
		fic     = "No matching federated identity record found for presented assertion "
		expired = "AADSTS700024: Client assertion is not within its valid time range: it expired at "
	)
	cases := []tc{
		{name: "wrong audience", claims: func(c map[string]any) { c["aud"] = []string{"https://kubernetes.default.svc", "sts.amazonaws.com"} },
			status: 401, error: "invalid_client",
			reason: `AADSTS700212: ` + fic + `audience "https://kubernetes.default.svc, sts.amazonaws.com": the federated credential's audience is "api://AzureADTokenExchange".`},
		{name: "wrong subject", claims: func(c map[string]any) { c["sub"] = "system:serviceaccount:ml:default" },
			status: 401, error: "invalid_client",
			reason: `AADSTS700213: ` + fic + `subject "system:serviceaccount:ml:default": the federated credential's subject is "system:serviceaccount:ml:trainer".`},
		{name: "wrong issuer", claims: func(c map[string]any) { c["iss"] = "https://kubernetes.default.svc.cluster.local" },
			status: 401, error: "invalid_client",
			reason: `AADSTS700211: ` + fic + `issuer "https://kubernetes.default.svc.cluster.local": the federated credential's issuer is "` + is.url + `".`},
		{name: "expired", claims: func(c map[string]any) {
			now := time.Now()
			c["iat"], c["nbf"], c["exp"] = now.Add(-2*time.Hour).Unix(), now.Add(-2*time.Hour).Unix(), now.Add(-time.Hour).Unix()
		}, status: 401, error: "invalid_client", reason: expired},
		{name: "not yet valid", claims: func(c map[string]any) { c["nbf"] = time.Now().Add(time.Hour).Unix() },
			status: 401, error: "invalid_client",
			reason: "AADSTS700024: Client assertion is not within its valid time range: it is not valid before "},
		{name: "no exp", claims: func(c map[string]any) { delete(c, "exp") },
			status: 401, error: "invalid_client",
			reason: "AADSTS700024: Client assertion is not within its valid time range: it has no exp claim."},
		{name: "bad signature", key: other, status: 401, error: "invalid_client",
			reason: `AADSTS50013: Assertion failed signature validation: the signature (alg ` + alg + `, kid "key-` + alg + `") does not verify with the issuer's key.`},
		{name: "wrong client id", client: "11111111-2222-3333-4444-555555555555", status: 401, error: "invalid_client",
			reason: `AADSTS700016: Application with identifier "11111111-2222-3333-4444-555555555555" was not found in the directory "` + tenantID + `"`},
		{name: "wrong tenant", tenant: "99999999-8888-7777-6666-555555555555", status: 400, error: "invalid_tenant",
			reason: `AADSTS90002: Tenant "99999999-8888-7777-6666-555555555555" not found: the stand-in's only tenant is "` + tenantID + `".`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := startEntra(t, is)
			claims := is.claims()
			if c.claims != nil {
				c.claims(claims)
			}
			key := is.key
			if c.key != nil {
				key = c.key
			}
			client, tenant := clientID, tenantID
			if c.client != "" {
				client = c.client
			}
			if c.tenant != "" {
				tenant = c.tenant
			}
			token := is.sign(t, key, claims)
			_, err := getToken(t, e, token, client, tenant)
			if err == nil {
				t.Fatal("azidentity got a token")
			}
			var afe *azidentity.AuthenticationFailedError
			if !errors.As(err, &afe) || afe.RawResponse == nil {
				t.Fatalf("not an authentication failure with Entra's response: %v", err)
			}
			if afe.RawResponse.StatusCode != c.status {
				t.Errorf("status %d, want %d", afe.RawResponse.StatusCode, c.status)
			}
			// azidentity quotes Entra's JSON, indented.
			if !strings.Contains(err.Error(), `"error": "`+c.error+`"`) {
				t.Errorf("azidentity's error does not carry error %q:\n%v", c.error, err)
			}
			if want, _ := json.Marshal(c.reason); !strings.Contains(err.Error(), strings.TrimSuffix(string(want), `"`)) {
				t.Errorf("azidentity's error does not carry the reason %q:\n%v", c.reason, err)
			}
			r := e.Refusals()
			if len(r) != 1 {
				t.Fatalf("refusals %+v, want one", r)
			}
			if r[0].Status != c.status || r[0].Error != c.error || !strings.HasPrefix(r[0].Description, c.reason) {
				t.Errorf("refusal %+v, want %d %s %q", r[0], c.status, c.error, c.reason)
			}
			sig := token[strings.LastIndex(token, ".")+1:]
			payload := strings.Split(token, ".")[1]
			if strings.Contains(err.Error(), sig) || strings.Contains(err.Error(), payload) {
				t.Error("the response echoes the assertion")
			}
			if g := e.Grants(); len(g) != 0 {
				t.Errorf("grants %+v", g)
			}
		})
	}
}

// TestIssuerChecks: the issuer's keys are fetched through its discovery document, with
// IssuerHTTPClient, and that document must name the issuer.
func TestIssuerChecks(t *testing.T) {
	t.Run("untrusted issuer", func(t *testing.T) {
		is := newIssuer(t, "ES256")
		e, err := standin.StartEntra(t.Context(), standin.EntraOptions{TenantID: tenantID, ClientID: clientID, Subject: subject,
			IssuerURL: is.url, IssuerHTTPClient: &http.Client{}}) // the system's roots
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(e.Close)
		_, err = getToken(t, e, is.sign(t, is.key, is.claims()), clientID, tenantID)
		wantRefusal(t, e, err, "AADSTS50166: Request to External OIDC endpoint failed: the issuer's discovery document: GET "+is.srv.URL+"/.well-known/openid-configuration: ")
	})
	t.Run("discovery names another issuer", func(t *testing.T) {
		is := newIssuerNaming(t, "ES256", "https://elsewhere.example/")
		e := startEntra(t, is)
		_, err := getToken(t, e, is.sign(t, is.key, is.claims()), clientID, tenantID)
		wantRefusal(t, e, err, "AADSTS50166: Request to External OIDC endpoint failed: the discovery document at "+is.srv.URL+
			`/.well-known/openid-configuration names issuer "https://elsewhere.example/", not "`+is.url+`".`)
	})
	t.Run("alg none", func(t *testing.T) {
		is := newIssuer(t, "RS256")
		e := startEntra(t, is)
		good := is.sign(t, is.key, is.claims())
		parts := strings.Split(good, ".")
		none := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","kid":"key-RS256"}`)) + "." + parts[1] + "."
		_, err := getToken(t, e, none, clientID, tenantID)
		wantRefusal(t, e, err, `AADSTS50013: Assertion failed signature validation: the client assertion's alg "none" is not supported (RS256 or ES256 are).`)
	})
	t.Run("unknown kid", func(t *testing.T) {
		is := newIssuer(t, "ES256")
		e := startEntra(t, is)
		is.headerKid = "rotated-away"
		_, err := getToken(t, e, is.sign(t, is.key, is.claims()), clientID, tenantID)
		wantRefusal(t, e, err, `AADSTS50013: Assertion failed signature validation: no key of the issuer's JWKS has kid "rotated-away" and fits alg ES256.`)
	})
}

func wantRefusal(t *testing.T, e *standin.Entra, err error, reason string) {
	t.Helper()
	if err == nil {
		t.Fatal("azidentity got a token")
	}
	r := e.Refusals()
	if len(r) != 1 || !strings.HasPrefix(r[0].Description, reason) {
		t.Fatalf("refusals %+v, want one for %q", r, reason)
	}
	if !strings.Contains(err.Error(), "AADSTS") {
		t.Errorf("azidentity's error does not carry the reason: %v", err)
	}
	if g := e.Grants(); len(g) != 0 {
		t.Errorf("grants %+v", g)
	}
}

// TestProtocol: the discovery document, and requests MSAL does not make, refused in Entra's
// error shape.
func TestProtocol(t *testing.T) {
	is := newIssuer(t, "ES256")
	e := startEntra(t, is)
	hc := e.HTTPClient()
	base := strings.TrimSuffix(e.URL, "/")

	resp, body := do(t, hc, http.MethodGet, base+"/"+tenantID+"/v2.0/.well-known/openid-configuration?", "", "")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("discovery: %s %s", resp.Status, body)
	}
	var doc map[string]string
	if err := json.Unmarshal([]byte(body), &doc); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"issuer":                 e.URL + tenantID + "/v2.0",
		"token_endpoint":         e.URL + tenantID + "/oauth2/v2.0/token",
		"authorization_endpoint": e.URL + tenantID + "/oauth2/v2.0/authorize",
	}
	if len(doc) != len(want) {
		t.Errorf("discovery document %v, want %v", doc, want)
	}
	for k, v := range want {
		if doc[k] != v {
			t.Errorf("discovery %s = %q, want %q", k, doc[k], v)
		}
	}

	tokenURL := base + "/" + tenantID + "/oauth2/v2.0/token"
	good := url.Values{"grant_type": {"client_credentials"}, "client_id": {clientID}, "client_info": {"1"},
		"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"},
		"client_assertion":      {is.sign(t, is.key, is.claims())}, "scope": {scope + " openid offline_access profile"}}
	with := func(k, v string) string {
		f := url.Values{}
		for n, vs := range good {
			f[n] = vs
		}
		if v == "" {
			delete(f, k)
		} else {
			f.Set(k, v)
		}
		return f.Encode()
	}
	const form = "application/x-www-form-urlencoded; charset=utf-8"
	for _, c := range []struct {
		name, method, url, contentType, body string
		status                               int
		error, reason                        string
	}{
		{"instance discovery", "GET", base + "/common/discovery/instance?api-version=1.1", "", "", 400, "invalid_request", `GET "/common/discovery/instance" is not served`},
		{"root", "GET", base + "/", "", "", 400, "invalid_request", `GET "/" is not served`},
		{"GET token", "GET", tokenURL, "", "", 400, "invalid_request", `/{tenant}/oauth2/v2.0/token accepts only POST, not "GET"`},
		{"POST discovery", "POST", base + "/" + tenantID + "/v2.0/.well-known/openid-configuration", form, "a=b", 400, "invalid_request", "accepts only GET"},
		{"JSON body", "POST", tokenURL, "application/json", "{}", 400, "invalid_request", `Content-Type is "application/json"`},
		{"huge body", "POST", tokenURL, form, with("scope", strings.Repeat("x", 70<<10)), 400, "invalid_request", "body is more than 65536 bytes"},
		{"password grant", "POST", tokenURL, form, with("grant_type", "password"), 400, "unsupported_grant_type", `AADSTS70003: The app requested an unsupported grant type "password"`},
		{"no client_id", "POST", tokenURL, form, with("client_id", ""), 400, "invalid_request", `AADSTS900144: The request body must contain the following parameter: "client_id".`},
		{"client secret", "POST", tokenURL, form, with("client_secret", "s3cret"), 401, "invalid_client", "the application has no client secret"},
		{"no assertion", "POST", tokenURL, form, with("client_assertion", ""), 401, "invalid_client", "AADSTS7000218"},
		{"assertion type", "POST", tokenURL, form, with("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:saml2-bearer"), 400, "invalid_request", "client_assertion_type is"},
		{"huge assertion", "POST", tokenURL, form, with("client_assertion", strings.Repeat("a", 17<<10)), 401, "invalid_client", "the client assertion is 17408 bytes, more than the 16384 accepted"},
		{"malformed assertion", "POST", tokenURL, form, with("client_assertion", "not.a-jwt"), 401, "invalid_client", "AADSTS50027: JWT token is invalid or malformed: the client assertion has 2 dot-separated parts"},
		{"no .default", "POST", tokenURL, form, with("scope", "https://storage.azure.com/user_impersonation"), 400, "invalid_scope", "AADSTS1002012"},
		{"two resources", "POST", tokenURL, form, with("scope", scope+" https://vault.azure.net/.default"), 400, "invalid_scope", "AADSTS1002012"},
		{"repeated client_id", "POST", tokenURL, form, good.Encode() + "&client_id=" + clientID, 400, "invalid_request", `the parameter "client_id" appears 2 times`},
	} {
		t.Run(c.name, func(t *testing.T) {
			resp, body := do(t, hc, c.method, c.url, c.contentType, c.body)
			if resp.StatusCode != c.status {
				t.Errorf("status %s, want %d", resp.Status, c.status)
			}
			if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
				t.Errorf("Content-Type %q", ct)
			}
			var got struct {
				Error         string `json:"error"`
				Description   string `json:"error_description"`
				CorrelationID string `json:"correlation_id"`
				Timestamp     string `json:"timestamp"`
			}
			if err := json.Unmarshal([]byte(body), &got); err != nil {
				t.Fatalf("not JSON: %v: %s", err, body)
			}
			if got.Error != c.error || !strings.Contains(got.Description, c.reason) {
				t.Errorf("%s: %s, want %s: ...%s...", got.Error, got.Description, c.error, c.reason)
			}
			if got.CorrelationID == "" || got.Timestamp == "" {
				t.Errorf("no correlation_id or timestamp: %s", body)
			}
		})
	}
	if g := e.Grants(); len(g) != 0 {
		t.Errorf("grants %+v", g)
	}

	// And the form MSAL sends is granted.
	resp, body = do(t, hc, "POST", tokenURL, form, good.Encode())
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("token: %s %s", resp.Status, body)
	}
	var tok map[string]any
	if err := json.Unmarshal([]byte(body), &tok); err != nil {
		t.Fatal(err)
	}
	if tok["token_type"] != "Bearer" || tok["expires_in"] != 3600.0 || tok["ext_expires_in"] != 3600.0 || tok["access_token"] == "" || len(tok) != 4 {
		t.Errorf("token response %s", body)
	}
	if g := e.Grants(); len(g) != 1 || g[0].Scope != scope {
		t.Errorf("grants %+v", g)
	}
}

func do(t *testing.T, hc *http.Client, method, u, contentType, body string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, u, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(b)
}

func TestStartEntraOptions(t *testing.T) {
	ok := standin.EntraOptions{TenantID: tenantID, ClientID: clientID, Subject: subject, IssuerURL: "https://127.0.0.1:6443/"}
	for _, c := range []struct {
		name   string
		change func(*standin.EntraOptions)
		want   string
	}{
		{"nothing", func(o *standin.EntraOptions) { *o = standin.EntraOptions{} }, "EntraOptions lacks TenantID, ClientID, IssuerURL, Subject"},
		{"http issuer", func(o *standin.EntraOptions) { o.IssuerURL = "http://127.0.0.1:6443/" }, "is not an https URL"},
		{"bad tenant", func(o *standin.EntraOptions) { o.TenantID = "a/b" }, "is not a tenant ID"},
	} {
		t.Run(c.name, func(t *testing.T) {
			o := ok
			c.change(&o)
			e, err := standin.StartEntra(t.Context(), o)
			if err == nil {
				e.Close()
				t.Fatal("started")
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Errorf("%v, want %q", err, c.want)
			}
		})
	}
	// A context that ends stops the server.
	ctx, cancel := context.WithCancel(t.Context())
	e, err := standin.StartEntra(ctx, ok)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	cancel()
	stopsServing(t, e.URL, e.HTTPClient())
}

// stopsServing waits until the server at url refuses connections, for up to 5 seconds.
func stopsServing(t *testing.T, url string, client *http.Client) {
	t.Helper()
	refused := func(context.Context) (bool, error) {
		// t's context, not the poll's: a request the poll's deadline cuts short is no refusal.
		req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, url, http.NoBody)
		if err != nil {
			return false, err
		}
		resp, err := client.Do(req)
		if err != nil {
			return true, nil
		}
		_ = resp.Body.Close()
		return false, nil
	}
	if err := wait.PollUntilContextTimeout(t.Context(), 10*time.Millisecond, 5*time.Second, true, refused); err != nil {
		t.Fatalf("still serving after its context ended (%v)", err)
	}
}

func writeJSON(t *testing.T, w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	if err := json.NewEncoder(w).Encode(v); err != nil {
		t.Error(err)
	}
}
