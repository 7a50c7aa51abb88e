package standin_test

import (
	"context"
	"crypto"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/google"

	"github.com/credgate/credgate/test/standin"
)

const (
	gcpProvider    = "//iam.googleapis.com/projects/123456/locations/global/workloadIdentityPools/ml/providers/k8s"
	gcpTokenAud    = "https://iam.googleapis.com/projects/123456/locations/global/workloadIdentityPools/ml/providers/k8s"
	gcpSA          = "trainer@ml-project.iam.gserviceaccount.com"
	cloudPlatform  = "https://www.googleapis.com/auth/cloud-platform"
	storageRead    = "https://www.googleapis.com/auth/devstorage.read_only"
	jwtSubjectType = "urn:ietf:params:oauth:token-type:jwt"
)

// gcpClaims are a projected service-account token's claims, requested with the audience
// Google expects by default.
func gcpClaims(is *issuer) map[string]any {
	c := is.claims()
	c["aud"] = []string{gcpTokenAud}
	return c
}

func startSTS(t *testing.T, is *issuer, change func(*standin.GoogleSTSOptions)) *standin.GoogleSTS {
	t.Helper()
	o := standin.GoogleSTSOptions{Audience: gcpProvider, IssuerURL: is.url, IssuerHTTPClient: is.srv.Client(), Subject: subject, ServiceAccountEmail: gcpSA}
	if change != nil {
		change(&o)
	}
	g, err := standin.StartGoogleSTS(t.Context(), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(g.Close)
	return g
}

// externalAccount is what `gcloud iam workload-identity-pools create-cred-config` writes for a
// file-sourced OIDC credential, pointed at g.
type externalAccount struct {
	audience string // the config's audience: gcpProvider unless set
	email    string // impersonate this service account, when set
	scope    string // cloudPlatform unless set
	hc       *http.Client
}

// googleToken runs the real golang.org/x/oauth2/google external_account credentials against g
// with token as the projected service-account token.
func googleToken(t *testing.T, g *standin.GoogleSTS, token string, ea externalAccount) (*oauth2.Token, error) {
	t.Helper()
	dir := t.TempDir()
	file := filepath.Join(dir, "token")
	if err := os.WriteFile(file, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if ea.audience == "" {
		ea.audience = gcpProvider
	}
	if ea.scope == "" {
		ea.scope = cloudPlatform
	}
	cfg := map[string]any{
		"type":               "external_account",
		"audience":           ea.audience,
		"subject_token_type": jwtSubjectType,
		"token_url":          g.URL + "v1/token",
		"credential_source":  map[string]string{"file": file},
	}
	if ea.email != "" {
		cfg["service_account_impersonation_url"] = g.URL + "v1/projects/-/serviceAccounts/" + ea.email + ":generateAccessToken"
	}
	js, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	hc := ea.hc
	if hc == nil {
		hc = g.HTTPClient()
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	ctx = context.WithValue(ctx, oauth2.HTTPClient, hc)
	// CredentialsFromJSONWithType is CredentialsFromJSON (deprecated) checking the type first.
	creds, err := google.CredentialsFromJSONWithType(ctx, js, google.ExternalAccount, ea.scope)
	if err != nil {
		t.Fatal(err)
	}
	return creds.TokenSource.Token()
}

// TestGoogleExternalAccount: the real external_account credentials get an access token, with
// and without service account impersonation, from issuers signing RS256 and ES256.
func TestGoogleExternalAccount(t *testing.T) {
	for _, c := range []struct {
		name, alg, email, scope string
		aud                     any
	}{
		{name: "RS256", alg: "RS256"},
		{name: "ES256 aud string", alg: "ES256", aud: gcpTokenAud},
		{name: "aud without https", alg: "ES256", aud: gcpProvider},
		{name: "RS256 impersonation", alg: "RS256", email: gcpSA},
		{name: "ES256 impersonation storage", alg: "ES256", email: gcpSA, scope: storageRead},
	} {
		t.Run(c.name, func(t *testing.T) {
			is := newIssuer(t, c.alg)
			g := startSTS(t, is, nil)
			claims := gcpClaims(is)
			if c.aud != nil {
				claims["aud"] = c.aud
			}
			tok, err := googleToken(t, g, is.sign(t, is.key, claims), externalAccount{email: c.email, scope: c.scope})
			if err != nil {
				t.Fatal(err)
			}
			if tok.AccessToken == "" || tok.Type() != "Bearer" {
				t.Errorf("token %+v", tok)
			}
			if d := time.Until(tok.Expiry); d < 55*time.Minute || d > time.Hour {
				t.Errorf("the access token expires in %s, not an hour", d)
			}
			scope := c.scope
			if scope == "" {
				scope = cloudPlatform
			}
			want := []standin.GoogleGrant{{Audience: gcpProvider, Issuer: is.url, Subject: subject, Scope: scope}}
			if c.email != "" {
				// x/oauth2 asks the STS for cloud-platform, the service account for the scopes.
				want = []standin.GoogleGrant{{Audience: gcpProvider, Issuer: is.url, Subject: subject, Scope: cloudPlatform},
					{Audience: gcpProvider, Issuer: is.url, Subject: subject, Scope: scope, ServiceAccount: c.email}}
			}
			got := g.Grants()
			if len(got) != len(want) {
				t.Fatalf("grants %+v, want %+v", got, want)
			}
			for i := range got {
				if time.Since(got[i].Time) > time.Minute || time.Until(got[i].Expiry) < 55*time.Minute {
					t.Errorf("grant %d: time %s, expiry %s", i, got[i].Time, got[i].Expiry)
				}
				if i == len(got)-1 && got[i].Expiry.Sub(tok.Expiry).Abs() > 2*time.Second {
					t.Errorf("grant's expiry %s, token's %s", got[i].Expiry, tok.Expiry)
				}
				got[i].Time, got[i].Expiry = time.Time{}, time.Time{}
				if got[i] != want[i] {
					t.Errorf("grant %d: %+v, want %+v", i, got[i], want[i])
				}
			}
			if r := g.Refusals(); len(r) != 0 {
				t.Errorf("refusals %+v", r)
			}
			if n := is.hits.Load(); n != 2 {
				t.Errorf("the issuer served %d requests, want its discovery document and JWKS", n)
			}
		})
	}
}

// recorder records the requests an http.Client sends, with their bodies.
type recorder struct {
	mu   sync.Mutex
	reqs []recorded
	next http.RoundTripper
}

type recorded struct {
	method, path string
	header       http.Header
	body         string
}

func (rec *recorder) RoundTrip(r *http.Request) (*http.Response, error) {
	var body []byte
	if r.Body != nil {
		b, err := io.ReadAll(r.Body)
		if err != nil {
			return nil, err
		}
		_ = r.Body.Close()
		body = b
		r.Body = io.NopCloser(strings.NewReader(string(b)))
	}
	rec.mu.Lock()
	rec.reqs = append(rec.reqs, recorded{r.Method, r.URL.Path, r.Header.Clone(), string(body)})
	rec.mu.Unlock()
	return rec.next.RoundTrip(r)
}

// TestGoogleExternalAccountCalls pins the two calls x/oauth2 makes, as the stand-in reads them.
func TestGoogleExternalAccountCalls(t *testing.T) {
	is := newIssuer(t, "ES256")
	g := startSTS(t, is, nil)
	hc := g.HTTPClient()
	rec := &recorder{next: hc.Transport}
	hc.Transport = rec
	token := is.sign(t, is.key, gcpClaims(is))
	tok, err := googleToken(t, g, token, externalAccount{email: gcpSA, scope: storageRead, hc: hc})
	if err != nil {
		t.Fatal(err)
	}
	if len(rec.reqs) != 2 {
		t.Fatalf("requests %+v, want two", rec.reqs)
	}
	sts, imp := rec.reqs[0], rec.reqs[1]
	if sts.method != "POST" || sts.path != "/v1/token" || sts.header.Get("Content-Type") != "application/x-www-form-urlencoded" ||
		!strings.Contains(sts.header.Get("X-Goog-Api-Client"), "google-byoid-sdk source/file sa-impersonation/true") || sts.header.Get("Authorization") != "" {
		t.Errorf("token exchange %s %s %v", sts.method, sts.path, sts.header)
	}
	form, err := url.ParseQuery(sts.body)
	if err != nil {
		t.Fatal(err)
	}
	want := url.Values{
		"grant_type": {"urn:ietf:params:oauth:grant-type:token-exchange"}, "audience": {gcpProvider}, "scope": {cloudPlatform},
		"requested_token_type": {"urn:ietf:params:oauth:token-type:access_token"}, "subject_token_type": {jwtSubjectType},
		"subject_token": {token}, // the file's content, trimmed
	}
	if form.Encode() != want.Encode() {
		t.Errorf("token exchange form\n%v\nwant\n%v", form, want)
	}
	if imp.method != "POST" || imp.path != "/v1/projects/-/serviceAccounts/"+gcpSA+":generateAccessToken" ||
		imp.header.Get("Content-Type") != "application/json" || !strings.HasPrefix(imp.header.Get("Authorization"), "Bearer ") {
		t.Errorf("generateAccessToken %s %s %v", imp.method, imp.path, imp.header)
	}
	if imp.body != `{"lifetime":"3600s","scope":["`+storageRead+`"]}` {
		t.Errorf("generateAccessToken body %s", imp.body)
	}
	if tok.AccessToken == strings.TrimPrefix(imp.header.Get("Authorization"), "Bearer ") {
		t.Error("the service account's token is the federated one")
	}
}

// TestGoogleRefused: each case breaks one check, which x/oauth2 reports with the stand-in's
// reason; each fails without its check.
func TestGoogleRefused(t *testing.T) {
	for _, alg := range []string{"RS256", "ES256"} {
		t.Run(alg, func(t *testing.T) { testGoogleRefused(t, alg) })
	}
}

func testGoogleRefused(t *testing.T, alg string) {
	is := newIssuer(t, alg)
	other := newKey(t, alg)
	const otherProvider = "//iam.googleapis.com/projects/123456/locations/global/workloadIdentityPools/ml/providers/other"
	cases := []struct {
		name   string
		claims func(map[string]any)
		key    crypto.Signer
		opts   func(*standin.GoogleSTSOptions)
		ea     externalAccount
		status int
		error  string
		reason string
	}{
		{name: "wrong JWT audience", claims: func(c map[string]any) { c["aud"] = []string{"https://kubernetes.default.svc", "sts.amazonaws.com"} },
			status: 400, error: "invalid_grant",
			reason: `The audience "https://kubernetes.default.svc, sts.amazonaws.com" of the subject token does not match the expected audience "` + gcpTokenAud + `" or "` + gcpProvider + `".`},
		{name: "default audience when TokenAudience is set", opts: func(o *standin.GoogleSTSOptions) { o.TokenAudience = "my-audience" },
			status: 400, error: "invalid_grant",
			reason: `The audience "` + gcpTokenAud + `" of the subject token does not match the expected audience "my-audience".`},
		{name: "wrong subject", claims: func(c map[string]any) { c["sub"] = "system:serviceaccount:ml:default" },
			status: 400, error: "unauthorized_client",
			reason: `The given credential is rejected by the attribute condition: the subject token's sub "system:serviceaccount:ml:default" is not "` + subject + `".`},
		{name: "wrong issuer", claims: func(c map[string]any) { c["iss"] = "https://kubernetes.default.svc.cluster.local" },
			status: 400, error: "invalid_grant",
			reason: `The issuer "https://kubernetes.default.svc.cluster.local" of the subject token does not match the provider's issuer "` + is.url + `".`},
		{name: "expired", claims: func(c map[string]any) {
			now := time.Now()
			c["iat"], c["nbf"], c["exp"] = now.Add(-2*time.Hour).Unix(), now.Add(-2*time.Hour).Unix(), now.Add(-time.Hour).Unix()
		}, status: 400, error: "invalid_grant", reason: "The subject token is not within its valid time range: it expired at "},
		{name: "not yet valid", claims: func(c map[string]any) { c["nbf"] = time.Now().Add(time.Hour).Unix() },
			status: 400, error: "invalid_grant", reason: "The subject token is not within its valid time range: it is not valid before "},
		{name: "bad signature", key: other, status: 400, error: "invalid_grant",
			reason: `Invalid JWT signature: the signature (alg ` + alg + `, kid "key-` + alg + `") does not verify with the issuer's key.`},
		{name: "wrong pool audience in the config", ea: externalAccount{audience: otherProvider}, status: 400, error: "invalid_target",
			reason: `The target service indicated by the "audience" parameter, "` + otherProvider + `", is invalid: the stand-in's only workload identity pool provider is "` + gcpProvider + `".`},
		{name: "another service account", ea: externalAccount{email: "admin@ml-project.iam.gserviceaccount.com"}, status: 403, error: "PERMISSION_DENIED",
			reason: `Permission 'iam.serviceAccounts.getAccessToken' denied on resource (or it may not exist): the federated principal "` + subject +
				`" may impersonate "` + gcpSA + `", not "admin@ml-project.iam.gserviceaccount.com".`},
		{name: "no service account to impersonate", opts: func(o *standin.GoogleSTSOptions) { o.ServiceAccountEmail = "" }, ea: externalAccount{email: gcpSA},
			status: 403, error: "PERMISSION_DENIED",
			reason: `Permission 'iam.serviceAccounts.getAccessToken' denied on resource (or it may not exist): the federated principal "` + subject + `" may impersonate "", not "` + gcpSA + `".`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			g := startSTS(t, is, c.opts)
			claims := gcpClaims(is)
			if c.claims != nil {
				c.claims(claims)
			}
			key := is.key
			if c.key != nil {
				key = c.key
			}
			token := is.sign(t, key, claims)
			tok, err := googleToken(t, g, token, c.ea)
			if err == nil {
				t.Fatalf("x/oauth2 got a token %+v", tok)
			}
			// x/oauth2 quotes the response's body.
			var shape string
			if c.status == 403 {
				shape = `{"error":{"code":403,"message":` + jsonString(t, c.reason)
			} else {
				shape = `{"error":"` + c.error + `","error_description":` + jsonString(t, c.reason)
			}
			if !strings.Contains(err.Error(), "status code "+strconv.Itoa(c.status)+": "+strings.TrimSuffix(shape, `"`)) {
				t.Errorf("x/oauth2's error does not carry status %d and %s:\n%v", c.status, shape, err)
			}
			r := g.Refusals()
			if len(r) != 1 {
				t.Fatalf("refusals %+v, want one", r)
			}
			if r[0].Status != c.status || r[0].Error != c.error || !strings.HasPrefix(r[0].Description, c.reason) {
				t.Errorf("refusal %+v, want %d %s %q", r[0], c.status, c.error, c.reason)
			}
			parts := strings.Split(token, ".")
			if strings.Contains(err.Error(), parts[1]) || strings.Contains(err.Error(), parts[2]) {
				t.Error("the response echoes the subject token")
			}
			wantGrants := 0
			if c.status == 403 {
				wantGrants = 1 // the federated token, not the service account's
			}
			if gr := g.Grants(); len(gr) != wantGrants || (wantGrants == 1 && gr[0].ServiceAccount != "") {
				t.Errorf("grants %+v", gr)
			}
		})
	}
}

func jsonString(t *testing.T, s string) string {
	t.Helper()
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestGoogleProtocol: requests x/oauth2 does not make, refused in Google's error shapes.
func TestGoogleProtocol(t *testing.T) {
	is := newIssuer(t, "RS256")
	g := startSTS(t, is, nil)
	hc := g.HTTPClient()
	base := strings.TrimSuffix(g.URL, "/")
	tokenURL := base + "/v1/token"
	impURL := base + "/v1/projects/-/serviceAccounts/" + gcpSA + ":generateAccessToken"
	const form = "application/x-www-form-urlencoded"
	good := url.Values{"grant_type": {"urn:ietf:params:oauth:grant-type:token-exchange"}, "audience": {gcpProvider}, "scope": {cloudPlatform},
		"requested_token_type": {"urn:ietf:params:oauth:token-type:access_token"}, "subject_token_type": {jwtSubjectType},
		"subject_token": {is.sign(t, is.key, gcpClaims(is))}}
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
	exchange := func(body string) string {
		t.Helper()
		resp, b := do(t, hc, "POST", tokenURL, form, body)
		if resp.StatusCode != 200 {
			t.Fatalf("token exchange: %s %s", resp.Status, b)
		}
		var tok map[string]any
		if err := json.Unmarshal([]byte(b), &tok); err != nil {
			t.Fatal(err)
		}
		if tok["token_type"] != "Bearer" || tok["expires_in"] != 3600.0 || tok["issued_token_type"] != "urn:ietf:params:oauth:token-type:access_token" || len(tok) != 4 {
			t.Errorf("token response %s", b)
		}
		return tok["access_token"].(string)
	}
	federated := exchange(good.Encode())
	storageOnly := exchange(with("scope", storageRead))

	for _, c := range []struct {
		name, method, url, contentType, auth, body string
		status                                     int
		error, reason                              string
	}{
		{"GET token", "GET", tokenURL, "", "", "", 405, "invalid_request", `/v1/token accepts only POST, not "GET"`},
		{"root", "GET", base + "/", "", "", "", 404, "invalid_request", `GET "/" is not served`},
		{"JSON body", "POST", tokenURL, "application/json", "", "{}", 400, "invalid_request", `Content-Type is "application/json"`},
		{"password grant", "POST", tokenURL, form, "", with("grant_type", "password"), 400, "unsupported_grant_type", `grant_type "password" is not supported`},
		{"no subject token", "POST", tokenURL, form, "", with("subject_token", ""), 400, "invalid_request", `the request lacks the parameter "subject_token"`},
		{"no scope", "POST", tokenURL, form, "", with("scope", ""), 400, "invalid_request", `the request lacks the parameter "scope"`},
		{"requested id token", "POST", tokenURL, form, "", with("requested_token_type", "urn:ietf:params:oauth:token-type:id_token"), 400, "invalid_request", "requested_token_type"},
		{"saml subject", "POST", tokenURL, form, "", with("subject_token_type", "urn:ietf:params:oauth:token-type:saml2"), 400, "invalid_request", "subject_token_type"},
		{"repeated audience", "POST", tokenURL, form, "", good.Encode() + "&audience=" + url.QueryEscape(gcpProvider), 400, "invalid_request", `the parameter "audience" appears 2 times`},
		{"malformed subject token", "POST", tokenURL, form, "", with("subject_token", "not.a-jwt"), 400, "invalid_grant", "The subject token is not a valid JWT: the subject token has 2 dot-separated parts"},
		{"no bearer", "POST", impURL, "application/json", "", `{"scope":["` + cloudPlatform + `"]}`, 401, "UNAUTHENTICATED", "Request had invalid authentication credentials"},
		{"unknown bearer", "POST", impURL, "application/json", "Bearer ya29.unknown", `{"scope":["` + cloudPlatform + `"]}`, 401, "UNAUTHENTICATED", "Request had invalid authentication credentials"},
		{"bearer without cloud-platform", "POST", impURL, "application/json", "Bearer " + storageOnly, `{"scope":["` + cloudPlatform + `"]}`, 403, "PERMISSION_DENIED", "Request had insufficient authentication scopes"},
		{"project not -", "POST", base + "/v1/projects/ml-project/serviceAccounts/" + gcpSA + ":generateAccessToken", "application/json", "Bearer " + federated, `{"scope":["` + cloudPlatform + `"]}`, 400, "INVALID_ARGUMENT", `the project must be the wildcard "-"`},
		{"no scope to impersonate", "POST", impURL, "application/json", "Bearer " + federated, `{"lifetime":"3600s"}`, 400, "INVALID_ARGUMENT", "Scope required."},
		{"long lifetime", "POST", impURL, "application/json", "Bearer " + federated, `{"scope":["` + cloudPlatform + `"],"lifetime":"7200s"}`, 400, "INVALID_ARGUMENT", `lifetime "7200s" is not a duration`},
		{"delegates", "POST", impURL, "application/json", "Bearer " + federated, `{"scope":["` + cloudPlatform + `"],"delegates":["projects/-/serviceAccounts/a@b"]}`, 400, "INVALID_ARGUMENT", "delegates are not supported"},
		{"GET impersonation", "GET", impURL, "", "Bearer " + federated, "", 405, "INVALID_ARGUMENT", "accepts only POST"},
	} {
		t.Run(c.name, func(t *testing.T) {
			req, err := http.NewRequestWithContext(t.Context(), c.method, c.url, strings.NewReader(c.body))
			if err != nil {
				t.Fatal(err)
			}
			if c.contentType != "" {
				req.Header.Set("Content-Type", c.contentType)
			}
			if c.auth != "" {
				req.Header.Set("Authorization", c.auth)
			}
			resp, err := hc.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer func() { _ = resp.Body.Close() }()
			b, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != c.status {
				t.Errorf("status %s, want %d: %s", resp.Status, c.status, b)
			}
			var errCode, desc string
			if strings.Contains(c.url, ":generateAccessToken") {
				var got struct {
					Error struct {
						Code    int    `json:"code"`
						Message string `json:"message"`
						Status  string `json:"status"`
					} `json:"error"`
				}
				if err := json.Unmarshal(b, &got); err != nil || got.Error.Code != c.status {
					t.Fatalf("not a Google API error: %v: %s", err, b)
				}
				errCode, desc = got.Error.Status, got.Error.Message
			} else {
				var got struct {
					Error       string `json:"error"`
					Description string `json:"error_description"`
				}
				if err := json.Unmarshal(b, &got); err != nil {
					t.Fatalf("not JSON: %v: %s", err, b)
				}
				errCode, desc = got.Error, got.Description
			}
			if errCode != c.error || !strings.Contains(desc, c.reason) {
				t.Errorf("%s: %s, want %s: ...%s...", errCode, desc, c.error, c.reason)
			}
			if strings.Contains(desc, federated) || strings.Contains(desc, storageOnly) {
				t.Error("the response echoes the bearer token")
			}
		})
	}
	if gr := g.Grants(); len(gr) != 2 || slices.ContainsFunc(gr, func(x standin.GoogleGrant) bool { return x.ServiceAccount != "" }) {
		t.Errorf("grants %+v", gr)
	}

	// And the request x/oauth2 sends is granted.
	req, err := http.NewRequestWithContext(t.Context(), "POST", impURL, strings.NewReader(`{"lifetime":"1800s","scope":["`+storageRead+`"]}`))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+federated)
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	b, _ := io.ReadAll(resp.Body)
	var got map[string]string
	if err := json.Unmarshal(b, &got); err != nil || resp.StatusCode != 200 || got["accessToken"] == "" || len(got) != 2 {
		t.Fatalf("generateAccessToken: %s %s", resp.Status, b)
	}
	exp, err := time.Parse(time.RFC3339, got["expireTime"])
	if err != nil || time.Until(exp) < 29*time.Minute || time.Until(exp) > 30*time.Minute {
		t.Errorf("expireTime %q", got["expireTime"])
	}
}

func TestStartGoogleSTSOptions(t *testing.T) {
	ok := standin.GoogleSTSOptions{Audience: gcpProvider, Subject: subject, IssuerURL: "https://127.0.0.1:6443/"}
	for _, c := range []struct {
		name   string
		change func(*standin.GoogleSTSOptions)
		want   string
	}{
		{"nothing", func(o *standin.GoogleSTSOptions) { *o = standin.GoogleSTSOptions{} }, "GoogleSTSOptions lacks Audience, IssuerURL, Subject"},
		{"https audience", func(o *standin.GoogleSTSOptions) { o.Audience = gcpTokenAud }, "is not a workload identity pool provider's full resource name"},
		{"http issuer", func(o *standin.GoogleSTSOptions) { o.IssuerURL = "http://127.0.0.1:6443/" }, "is not an https URL"},
		{"bad email", func(o *standin.GoogleSTSOptions) { o.ServiceAccountEmail = "a/b" }, "is not an email address"},
	} {
		t.Run(c.name, func(t *testing.T) {
			o := ok
			c.change(&o)
			g, err := standin.StartGoogleSTS(t.Context(), o)
			if err == nil {
				g.Close()
				t.Fatal("started")
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Errorf("%v, want %q", err, c.want)
			}
		})
	}
	ctx, cancel := context.WithCancel(t.Context())
	g, err := standin.StartGoogleSTS(ctx, ok)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	cancel()
	stopsServing(t, g.URL, g.HTTPClient())
}

// TestGoogleDefaultCredentials: GOOGLE_APPLICATION_CREDENTIALS naming the configuration, as a
// pod's process finds it, with only the client as test plumbing.
func TestGoogleDefaultCredentials(t *testing.T) {
	is := newIssuer(t, "RS256")
	g := startSTS(t, is, nil)
	dir := t.TempDir()
	token := filepath.Join(dir, "token")
	if err := os.WriteFile(token, []byte(is.sign(t, is.key, gcpClaims(is))), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := json.Marshal(map[string]any{
		"type": "external_account", "audience": gcpProvider, "subject_token_type": jwtSubjectType,
		"token_url": g.URL + "v1/token", "credential_source": map[string]string{"file": token},
		"service_account_impersonation_url": g.URL + "v1/projects/-/serviceAccounts/" + gcpSA + ":generateAccessToken",
	})
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "credentials.json")
	if err := os.WriteFile(file, cfg, 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("GOOGLE_APPLICATION_CREDENTIALS", file)
	ctx := context.WithValue(t.Context(), oauth2.HTTPClient, g.HTTPClient())
	creds, err := google.FindDefaultCredentials(ctx, storageRead)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := creds.TokenSource.Token(); err != nil {
		t.Fatal(err)
	}
	if gr := g.Grants(); len(gr) != 2 || gr[1].ServiceAccount != gcpSA || gr[1].Scope != storageRead {
		t.Errorf("grants %+v", gr)
	}
}
