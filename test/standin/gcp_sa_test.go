package standin_test

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/google"

	"github.com/credgate/credgate/test/standin"
)

const (
	srcSA          = "credgate-source@ml-project.iam.gserviceaccount.com"
	otherSA        = "admin@ml-project.iam.gserviceaccount.com"
	jwtBearerGrant = "urn:ietf:params:oauth:grant-type:jwt-bearer"
	formType       = "application/x-www-form-urlencoded"
)

var uniqueIDPattern = regexp.MustCompile(`^1[0-9]{20}$`)

// saStandin is a stand-in without a workload identity pool provider, where the service account
// srcSA has a key, whose file points at the stand-in, and may impersonate gcpSA.
type saStandin struct {
	g       *standin.GoogleSTS
	keyJSON []byte
	key     standin.ServiceAccountKey
	priv    *rsa.PrivateKey // the key file's
}

func startSAStandin(t *testing.T, impersonates map[string][]string) *saStandin {
	t.Helper()
	if impersonates == nil {
		impersonates = map[string][]string{srcSA: {gcpSA}}
	}
	g, err := standin.StartGoogleSTS(t.Context(), standin.GoogleSTSOptions{Impersonates: impersonates})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(g.Close)
	return &saStandin{g: g}
}

// addKey generates a key of email, with its file's token_uri the stand-in's, and registers it.
func (s *saStandin) addKey(t *testing.T, email string) ([]byte, standin.ServiceAccountKey) {
	t.Helper()
	keyJSON, key, err := standin.NewServiceAccountKey(email, s.g.TokenURI())
	if err != nil {
		t.Fatal(err)
	}
	if err := s.g.AddServiceAccountKey(key); err != nil {
		t.Fatal(err)
	}
	return keyJSON, key
}

func startSAStandinWithKey(t *testing.T, impersonates map[string][]string) *saStandin {
	t.Helper()
	s := startSAStandin(t, impersonates)
	s.keyJSON, s.key = s.addKey(t, srcSA)
	s.priv = privateKeyOf(t, s.keyJSON)
	return s
}

// privateKeyOf returns the private key of a key file.
func privateKeyOf(t *testing.T, keyJSON []byte) *rsa.PrivateKey {
	t.Helper()
	var f struct {
		PrivateKey string `json:"private_key"`
	}
	if err := json.Unmarshal(keyJSON, &f); err != nil {
		t.Fatal(err)
	}
	b, rest := pem.Decode([]byte(f.PrivateKey))
	if b == nil || b.Type != "PRIVATE KEY" || len(rest) != 0 {
		t.Fatalf("private_key is not one PKCS #8 PEM block: %q", f.PrivateKey)
	}
	k, err := x509.ParsePKCS8PrivateKey(b.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	rk, ok := k.(*rsa.PrivateKey)
	if !ok {
		t.Fatalf("private_key is a %T", k)
	}
	return rk
}

// serviceAccountToken runs the real golang.org/x/oauth2/google service_account credentials of
// keyJSON, through hc (g's client when nil).
func serviceAccountToken(t *testing.T, g *standin.GoogleSTS, keyJSON []byte, hc *http.Client, scopes ...string) (*oauth2.Token, error) {
	t.Helper()
	if hc == nil {
		hc = g.HTTPClient()
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	ctx = context.WithValue(ctx, oauth2.HTTPClient, hc)
	creds, err := google.CredentialsFromJSONWithType(ctx, keyJSON, google.ServiceAccount, scopes...)
	if err != nil {
		t.Fatal(err)
	}
	return creds.TokenSource.Token()
}

// claims are what x/oauth2 signs for the key of srcSA and the cloud-platform scope.
func (s *saStandin) claims() map[string]any {
	iat := time.Now().Add(-10 * time.Second)
	return map[string]any{"iss": srcSA, "scope": cloudPlatform, "aud": s.g.TokenURI(), "iat": iat.Unix(), "exp": iat.Add(time.Hour).Unix()}
}

func signRS256(t *testing.T, key *rsa.PrivateKey, header map[string]string, claims map[string]any) string {
	t.Helper()
	enc := func(v any) string {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return base64.RawURLEncoding.EncodeToString(b)
	}
	input := enc(header) + "." + enc(claims)
	digest := sha256.Sum256([]byte(input))
	sig, err := rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA256, digest[:])
	if err != nil {
		t.Fatal(err)
	}
	return input + "." + base64.RawURLEncoding.EncodeToString(sig)
}

type oauthError struct {
	Error       string `json:"error"`
	Description string `json:"error_description"`
}

// generate calls generateAccessToken for target with bearer, returning the status and the body.
func generate(t *testing.T, g *standin.GoogleSTS, bearer, target, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), "POST", g.URL+"v1/projects/-/serviceAccounts/"+target+":generateAccessToken", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+bearer)
	resp, err := g.HTTPClient().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

type generated struct {
	AccessToken string `json:"accessToken"`
	ExpireTime  string `json:"expireTime"`
}

func mustGenerate(t *testing.T, g *standin.GoogleSTS, bearer, target, body string) generated {
	t.Helper()
	status, b := generate(t, g, bearer, target, body)
	var got generated
	if err := json.Unmarshal([]byte(b), &got); status != 200 || err != nil || got.AccessToken == "" {
		t.Fatalf("generateAccessToken for %s: %d %s", target, status, b)
	}
	return got
}

type apiErr struct {
	Error struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
		Status  string `json:"status"`
	} `json:"error"`
}

func wantAPIError(t *testing.T, status int, body string, wantStatus int, wantCode, reason string) {
	t.Helper()
	var e apiErr
	if err := json.Unmarshal([]byte(body), &e); err != nil || status != wantStatus || e.Error.Code != wantStatus || e.Error.Status != wantCode ||
		!strings.Contains(e.Error.Message, reason) {
		t.Errorf("%d %s, want %d %s ...%s...", status, body, wantStatus, wantCode, reason)
	}
}

// tokenInfo asks the stand-in's token info about token, by GET or POST.
func tokenInfo(t *testing.T, g *standin.GoogleSTS, method, token string) (int, map[string]any) {
	t.Helper()
	q := url.Values{"access_token": {token}}.Encode()
	var (
		resp *http.Response
		body string
	)
	if method == "GET" {
		resp, body = do(t, g.HTTPClient(), "GET", g.URL+"tokeninfo?"+q, "", "")
	} else {
		resp, body = do(t, g.HTTPClient(), "POST", g.URL+"tokeninfo", formType, q)
	}
	var got map[string]any
	if err := json.Unmarshal([]byte(body), &got); err != nil {
		t.Fatalf("token info: %s %s", resp.Status, body)
	}
	return resp.StatusCode, got
}

func wantInvalidToken(t *testing.T, status int, got map[string]any) {
	t.Helper()
	if status != 400 || len(got) != 2 || got["error"] != "invalid_token" || got["error_description"] != "Invalid Value" {
		t.Errorf("token info: %d %v, want 400 invalid_token Invalid Value", status, got)
	}
}

// TestServiceAccountKeyFile: the key file is Google's, as x/oauth2/google reads it.
func TestServiceAccountKeyFile(t *testing.T) {
	const tokenURI = "https://127.0.0.1:8443/token"
	keyJSON, key, err := standin.NewServiceAccountKey(gcpSA, tokenURI)
	if err != nil {
		t.Fatal(err)
	}
	// Google's members, in Google's order, indented by two spaces; every value a string.
	d := json.NewDecoder(strings.NewReader(string(keyJSON)))
	if tok, err := d.Token(); err != nil || tok != json.Delim('{') {
		t.Fatalf("key file %s", keyJSON)
	}
	var names []string
	for d.More() {
		name, err := d.Token()
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, name.(string))
		if v, err := d.Token(); err != nil {
			t.Fatal(err)
		} else if _, ok := v.(string); !ok {
			t.Errorf("%s is %v, not a string", name, v)
		}
	}
	want := []string{"type", "project_id", "private_key_id", "private_key", "client_email", "client_id", "auth_uri", "token_uri",
		"auth_provider_x509_cert_url", "client_x509_cert_url", "universe_domain"}
	if strings.Join(names, ",") != strings.Join(want, ",") {
		t.Errorf("members %v, want %v", names, want)
	}
	if !strings.HasPrefix(string(keyJSON), "{\n  \"type\": \"service_account\",\n  \"project_id\": \"ml-project\",\n") ||
		!strings.Contains(string(keyJSON), `"private_key": "-----BEGIN PRIVATE KEY-----\n`) || !strings.HasSuffix(string(keyJSON), "}\n") {
		t.Errorf("key file not laid out as Google's:\n%s", keyJSON)
	}
	var f map[string]string
	if err := json.Unmarshal(keyJSON, &f); err != nil {
		t.Fatal(err)
	}
	for k, v := range map[string]string{
		"type": "service_account", "project_id": "ml-project", "client_email": gcpSA, "token_uri": tokenURI,
		"auth_uri": "https://accounts.google.com/o/oauth2/auth", "auth_provider_x509_cert_url": "https://www.googleapis.com/oauth2/v1/certs",
		"client_x509_cert_url": "https://www.googleapis.com/robot/v1/metadata/x509/trainer%40ml-project.iam.gserviceaccount.com",
		"universe_domain":      "googleapis.com", "private_key_id": key.KeyID,
	} {
		if f[k] != v {
			t.Errorf("%s %q, want %q", k, f[k], v)
		}
	}
	if !regexp.MustCompile(`^[0-9a-f]{40}$`).MatchString(key.KeyID) || !uniqueIDPattern.MatchString(f["client_id"]) {
		t.Errorf("private_key_id %q, client_id %q", key.KeyID, f["client_id"])
	}
	if !strings.HasSuffix(f["private_key"], "-----END PRIVATE KEY-----\n") {
		t.Errorf("private_key %q", f["private_key"])
	}
	priv := privateKeyOf(t, keyJSON)
	if priv.N.BitLen() != 2048 || !priv.PublicKey.Equal(key.PublicKey) || key.Email != gcpSA {
		t.Errorf("key %d bits, public key matches: %v, email %q", priv.N.BitLen(), priv.PublicKey.Equal(key.PublicKey), key.Email)
	}

	// x/oauth2/google reads it as a service account key.
	cfg, err := google.JWTConfigFromJSON(keyJSON, cloudPlatform)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Email != gcpSA || cfg.PrivateKeyID != key.KeyID || cfg.TokenURL != tokenURI {
		t.Errorf("jwt config %+v", cfg)
	}
	creds, err := google.CredentialsFromJSONWithType(t.Context(), keyJSON, google.ServiceAccount, cloudPlatform)
	if err != nil {
		t.Fatal(err)
	}
	if ud, err := creds.GetUniverseDomain(); creds.ProjectID != "ml-project" || err != nil || ud != "googleapis.com" {
		t.Errorf("project %q, universe domain %q %v", creds.ProjectID, ud, err)
	}

	// Another key of the same account: another key ID, the same unique ID.
	keyJSON2, key2, err := standin.NewServiceAccountKey(gcpSA, tokenURI)
	if err != nil {
		t.Fatal(err)
	}
	var f2 map[string]string
	if err := json.Unmarshal(keyJSON2, &f2); err != nil {
		t.Fatal(err)
	}
	if key2.KeyID == key.KeyID || f2["client_id"] != f["client_id"] || key2.PublicKey.Equal(key.PublicKey) {
		t.Errorf("second key %s, client_id %s", key2.KeyID, f2["client_id"])
	}

	for _, c := range []struct{ email, uri, want string }{
		{"trainer@example.com", tokenURI, "is not a user-managed service account's email"},
		{"123-compute@developer.gserviceaccount.com", tokenURI, "is not a user-managed service account's email"},
		{gcpSA, "http://127.0.0.1:8080/token", "is not an https URL"},
		{gcpSA, "", "is not an https URL"},
	} {
		if _, _, err := standin.NewServiceAccountKey(c.email, c.uri); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("NewServiceAccountKey(%q, %q): %v, want %q", c.email, c.uri, err, c.want)
		}
	}
}

// TestGoogleServiceAccountImpersonation is credgate's impersonation: the real service_account
// credentials get the source account's token; that token generates the target's, and no
// other's; token info tells the target's token's account, scope and expiry.
func TestGoogleServiceAccountImpersonation(t *testing.T) {
	s := startSAStandinWithKey(t, nil)
	hc := s.g.HTTPClient()
	rec := &recorder{next: hc.Transport}
	hc.Transport = rec
	tok, err := serviceAccountToken(t, s.g, s.keyJSON, hc, cloudPlatform)
	if err != nil {
		t.Fatal(err)
	}
	if tok.AccessToken == "" || tok.Type() != "Bearer" {
		t.Errorf("token %+v", tok)
	}
	if d := time.Until(tok.Expiry); d < 59*time.Minute || d > 3599*time.Second {
		t.Errorf("the access token expires in %s, not 3599s", d)
	}

	// What x/oauth2 sent, as the stand-in reads it.
	if len(rec.reqs) != 1 {
		t.Fatalf("requests %+v, want one", rec.reqs)
	}
	r := rec.reqs[0]
	if r.method != "POST" || r.path != "/token" || r.header.Get("Content-Type") != formType || r.header.Get("Authorization") != "" {
		t.Errorf("token request %s %s %v", r.method, r.path, r.header)
	}
	form, err := url.ParseQuery(r.body)
	if err != nil {
		t.Fatal(err)
	}
	if len(form) != 2 || form.Get("grant_type") != jwtBearerGrant {
		t.Errorf("token request form %v", form)
	}
	parts := strings.Split(form.Get("assertion"), ".")
	if len(parts) != 3 {
		t.Fatalf("assertion %q", form.Get("assertion"))
	}
	var header map[string]string
	var claims map[string]any
	for i, v := range []any{&header, &claims} {
		b, err := base64.RawURLEncoding.DecodeString(parts[i])
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(b, v); err != nil {
			t.Fatal(err)
		}
	}
	if len(header) != 3 || header["alg"] != "RS256" || header["typ"] != "JWT" || header["kid"] != s.key.KeyID {
		t.Errorf("assertion header %v", header)
	}
	iat, _ := claims["iat"].(float64)
	exp, _ := claims["exp"].(float64)
	if len(claims) != 5 || claims["iss"] != srcSA || claims["aud"] != s.g.TokenURI() || claims["scope"] != cloudPlatform || exp-iat != 3600 {
		t.Errorf("assertion claims %v", claims)
	}
	if gr := s.g.Grants(); len(gr) != 1 || gr[0].Principal != srcSA || gr[0].ServiceAccount != srcSA || gr[0].KeyID != s.key.KeyID ||
		gr[0].Scope != cloudPlatform || gr[0].Expiry.Sub(tok.Expiry).Abs() > 2*time.Second || gr[0].Audience+gr[0].Issuer+gr[0].Subject != "" {
		t.Errorf("grants %+v", gr)
	}

	// The source's token generates the target's, for the scopes asked.
	target := mustGenerate(t, s.g, tok.AccessToken, gcpSA, `{"lifetime":"1800s","scope":["`+storageRead+`"]}`)
	expire, err := time.Parse(time.RFC3339, target.ExpireTime)
	if err != nil || time.Until(expire) < 29*time.Minute || time.Until(expire) > 30*time.Minute {
		t.Errorf("expireTime %q", target.ExpireTime)
	}
	if target.AccessToken == tok.AccessToken {
		t.Error("the target's token is the source's")
	}
	// And no other account's.
	status, body := generate(t, s.g, tok.AccessToken, otherSA, `{"scope":["`+cloudPlatform+`"]}`)
	wantAPIError(t, status, body, 403, "PERMISSION_DENIED", `Permission 'iam.serviceAccounts.getAccessToken' denied on resource (or it may not exist): the service account "`+
		srcSA+`" may impersonate "`+gcpSA+`", not "`+otherSA+`".`)

	// Token info tells the target's token's account, scope and expiry.
	status, info := tokenInfo(t, s.g, "GET", target.AccessToken)
	left, _ := strconv.Atoi(info["expires_in"].(string))
	if status != 200 || len(info) != 8 || info["email"] != gcpSA || info["scope"] != storageRead || info["exp"] != strconv.FormatInt(expire.Unix(), 10) ||
		left < 1790 || left > 1800 || info["email_verified"] != "true" || info["access_type"] != "online" ||
		!uniqueIDPattern.MatchString(info["azp"].(string)) || info["aud"] != info["azp"] {
		t.Errorf("token info of the target's token: %d %v", status, info)
	}
	var key struct {
		ClientID string `json:"client_id"`
	}
	if err := json.Unmarshal(s.keyJSON, &key); err != nil {
		t.Fatal(err)
	}
	if info["azp"] == key.ClientID {
		t.Error("the target's token's azp is the source's unique ID")
	}
	// and the source's, by POST.
	status, info = tokenInfo(t, s.g, "POST", tok.AccessToken)
	if status != 200 || info["email"] != srcSA || info["scope"] != cloudPlatform || info["azp"] != key.ClientID || info["aud"] != key.ClientID ||
		info["exp"] != strconv.FormatInt(gr(t, s.g, 0).Expiry.Unix(), 10) {
		t.Errorf("token info of the source's token: %d %v", status, info)
	}
	// and nothing of a token it did not issue.
	status, info = tokenInfo(t, s.g, "GET", "ya29."+rand.Text())
	wantInvalidToken(t, status, info)

	want := standin.GoogleGrant{Principal: srcSA, Scope: storageRead, ServiceAccount: gcpSA}
	g1 := gr(t, s.g, 1)
	if g1.Expiry.Sub(expire).Abs() > time.Second || time.Since(g1.Time) > time.Minute {
		t.Errorf("grant expiry %s, time %s", g1.Expiry, g1.Time)
	}
	g1.Expiry, g1.Time = time.Time{}, time.Time{}
	if g1 != want || len(s.g.Grants()) != 2 {
		t.Errorf("grant %+v, want %+v (grants %+v)", g1, want, s.g.Grants())
	}
	if rf := s.g.Refusals(); len(rf) != 2 || rf[0].Status != 403 || rf[1].Error != "invalid_token" || rf[1].Path != "/tokeninfo" {
		t.Errorf("refusals %+v", rf)
	}
}

func gr(t *testing.T, g *standin.GoogleSTS, i int) standin.GoogleGrant {
	t.Helper()
	grants := g.Grants()
	if len(grants) <= i {
		t.Fatalf("grants %+v, want a grant %d", grants, i)
	}
	return grants[i]
}

// TestGoogleServiceAccountRefused: each case breaks one of the token endpoint's checks of an
// assertion or a request; each fails without its check.
func TestGoogleServiceAccountRefused(t *testing.T) {
	s := startSAStandinWithKey(t, nil)
	other, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	head := map[string]string{"alg": "RS256", "typ": "JWT", "kid": s.key.KeyID}
	sign := func(key *rsa.PrivateKey, h map[string]string, change func(map[string]any)) string {
		c := s.claims()
		if change != nil {
			change(c)
		}
		return signRS256(t, key, h, c)
	}
	body := func(assertion string) string {
		return url.Values{"grant_type": {jwtBearerGrant}, "assertion": {assertion}}.Encode()
	}
	with := func(change func(map[string]any)) string { return body(sign(s.priv, head, change)) }
	noKid := map[string]string{"alg": "RS256", "typ": "JWT"}
	now := time.Now()
	const shortLived = "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe. Check your iat and exp values in the JWT claim: "
	tokenURL := s.g.TokenURI()

	for _, c := range []struct {
		name, method, contentType, body string
		status                          int
		error, reason                   string
	}{
		{name: "account not found", body: with(func(c map[string]any) { c["iss"] = otherSA }), error: "invalid_grant",
			reason: `Invalid grant: account not found: the stand-in has no key of the service account "` + otherSA + `" (the assertion's iss).`},
		{name: "another key", body: body(sign(other, head, nil)), error: "invalid_grant",
			reason: `Invalid JWT Signature: the signature does not verify with the key "` + s.key.KeyID + `" of the service account "` + srcSA + `".`},
		{name: "another key without kid", body: body(sign(other, noKid, nil)), error: "invalid_grant",
			reason: `Invalid JWT Signature: the signature does not verify with the key "` + s.key.KeyID + `" of the service account "` + srcSA + `".`},
		{name: "unknown kid", body: body(sign(s.priv, map[string]string{"alg": "RS256", "typ": "JWT", "kid": "0123456789abcdef0123456789abcdef01234567"}, nil)),
			error: "invalid_grant", reason: `Invalid JWT Signature: the service account "` + srcSA + `" has no key "0123456789abcdef0123456789abcdef01234567" (the assertion's kid).`},
		{name: "alg none", body: body(sign(s.priv, map[string]string{"alg": "none", "kid": s.key.KeyID}, nil)), error: "invalid_grant",
			reason: `Invalid JWT Signature: the assertion's alg "none" is not RS256`},
		{name: "Google's audience", body: with(func(c map[string]any) { c["aud"] = "https://oauth2.googleapis.com/token" }), error: "invalid_grant",
			reason: `Invalid JWT: Failed audience check. The right audience is ` + tokenURL + ` (the assertion's aud is "https://oauth2.googleapis.com/token").`},
		{name: "two audiences", body: with(func(c map[string]any) { c["aud"] = []string{tokenURL, "https://sts.googleapis.com"} }), error: "invalid_grant",
			reason: `Invalid JWT: Failed audience check.`},
		{name: "expired", body: with(func(c map[string]any) {
			c["iat"], c["exp"] = now.Add(-2*time.Hour).Unix(), now.Add(-time.Hour).Unix()
		}), error: "invalid_grant", reason: shortLived + "it expired at "},
		{name: "longer than an hour", body: with(func(c map[string]any) { c["exp"] = now.Add(2 * time.Hour).Unix() }), error: "invalid_grant",
			reason: shortLived + "its exp is 2h0m"},
		{name: "exp before iat", body: with(func(c map[string]any) { c["exp"] = now.Add(-time.Minute).Unix() }), error: "invalid_grant",
			reason: shortLived + "its exp "},
		{name: "no iat", body: with(func(c map[string]any) { delete(c, "iat") }), error: "invalid_grant", reason: shortLived + "it has no iat claim."},
		{name: "no exp", body: with(func(c map[string]any) { delete(c, "exp") }), error: "invalid_grant", reason: shortLived + "it has no exp claim."},
		{name: "issued in the future", body: with(func(c map[string]any) {
			c["iat"], c["exp"] = now.Add(time.Hour).Unix(), now.Add(90*time.Minute).Unix()
		}), error: "invalid_grant", reason: shortLived + "it was issued at "},
		{name: "domain-wide delegation", body: with(func(c map[string]any) { c["sub"] = "user@example.com" }), error: "unauthorized_client",
			reason: "Client is unauthorized to retrieve access tokens using this method"},
		{name: "no scope", body: with(func(c map[string]any) { delete(c, "scope") }), error: "invalid_scope", reason: "Empty or missing scope not allowed."},
		{name: "blank scope", body: with(func(c map[string]any) { c["scope"] = " " }), error: "invalid_scope", reason: "Empty or missing scope not allowed."},
		{name: "ID token", body: with(func(c map[string]any) { delete(c, "scope"); c["target_audience"] = "https://run.app" }), error: "invalid_scope",
			reason: "Empty or missing scope not allowed: the stand-in issues no ID tokens"},
		{name: "not a Google scope", body: with(func(c map[string]any) { c["scope"] = cloudPlatform + " storage" }), error: "invalid_scope",
			reason: `Invalid OAuth scope or ID token audience provided: "storage" is not a Google OAuth scope`},
		{name: "malformed assertion", body: body("not.a-jwt"), error: "invalid_grant", reason: "Invalid JWT: the assertion has 2 dot-separated parts"},
		{name: "scope not a string", body: with(func(c map[string]any) { c["scope"] = []string{cloudPlatform} }), error: "invalid_grant",
			reason: "Invalid JWT: the assertion's payload is not a JSON object of JWT claims"},
		{name: "token exchange grant", body: url.Values{"grant_type": {"urn:ietf:params:oauth:grant-type:token-exchange"}, "assertion": {sign(s.priv, head, nil)}}.Encode(),
			error: "unsupported_grant_type", reason: `Invalid grant_type: "urn:ietf:params:oauth:grant-type:token-exchange"`},
		{name: "client credentials", body: "grant_type=client_credentials&client_id=a&client_secret=b", error: "unsupported_grant_type",
			reason: `Invalid grant_type: "client_credentials"`},
		{name: "no grant_type", body: url.Values{"assertion": {sign(s.priv, head, nil)}}.Encode(), error: "invalid_request", reason: "Missing required parameter: grant_type"},
		{name: "no assertion", body: "grant_type=" + url.QueryEscape(jwtBearerGrant), error: "invalid_request", reason: "Missing required parameter: assertion"},
		{name: "repeated assertion", body: with(nil) + "&assertion=x", error: "invalid_request", reason: `the parameter "assertion" appears 2 times`},
		{name: "JSON body", contentType: "application/json", body: `{"grant_type":"` + jwtBearerGrant + `"}`, error: "invalid_request", reason: `the token request's Content-Type is "application/json"`},
		{name: "GET", method: "GET", status: 405, error: "invalid_request", reason: `/token accepts only POST, not "GET"`},
	} {
		t.Run(c.name, func(t *testing.T) {
			before := len(s.g.Refusals())
			method, ct, status := c.method, c.contentType, c.status
			if method == "" {
				method = "POST"
			}
			if ct == "" && method == "POST" {
				ct = formType
			}
			if status == 0 {
				status = 400
			}
			resp, b := do(t, s.g.HTTPClient(), method, tokenURL, ct, c.body)
			var got oauthError
			if err := json.Unmarshal([]byte(b), &got); err != nil || resp.StatusCode != status || got.Error != c.error || !strings.HasPrefix(got.Description, c.reason) {
				t.Errorf("%s %s, want %d %s %q...", resp.Status, b, status, c.error, c.reason)
			}
			rf := s.g.Refusals()
			if len(rf) != before+1 {
				t.Fatalf("refusals %+v, want one more", rf)
			}
			if r := rf[len(rf)-1]; r.Path != "/token" || r.Method != method || r.Status != status || r.Error != c.error || r.Description != got.Description {
				t.Errorf("refusal %+v", r)
			}
			if form, err := url.ParseQuery(c.body); err == nil {
				if parts := strings.Split(form.Get("assertion"), "."); len(parts) == 3 && (strings.Contains(b, parts[1]) || strings.Contains(b, parts[2])) {
					t.Error("the response echoes the assertion")
				}
			}
		})
	}
	if g := s.g.Grants(); len(g) != 0 {
		t.Errorf("grants %+v", g)
	}

	// What the checks admit: the key's assertion, with or without kid, expired within the leeway.
	for _, c := range []struct {
		name   string
		header map[string]string
		change func(map[string]any)
	}{
		{"as x/oauth2 signs", head, nil},
		{"without kid", noKid, nil},
		{"expired a minute ago", head, func(c map[string]any) {
			c["iat"], c["exp"] = now.Add(-61*time.Minute).Unix(), now.Add(-time.Minute).Unix()
		}},
		{"OpenID scopes", head, func(c map[string]any) { c["scope"] = "openid email " + storageRead }},
	} {
		resp, b := do(t, s.g.HTTPClient(), "POST", tokenURL, formType, body(sign(s.priv, c.header, c.change)))
		var tok map[string]any
		if err := json.Unmarshal([]byte(b), &tok); err != nil || resp.StatusCode != 200 || len(tok) != 3 || tok["expires_in"] != 3599.0 ||
			tok["token_type"] != "Bearer" || tok["access_token"] == "" {
			t.Errorf("%s: %s %s", c.name, resp.Status, b)
		}
	}
	if g := s.g.Grants(); len(g) != 4 || g[3].Scope != "openid email "+storageRead {
		t.Errorf("grants %+v", g)
	}
}

// TestGoogleServiceAccountRefusedLibrary: the real service_account credentials, refused, report
// the stand-in's reason.
func TestGoogleServiceAccountRefusedLibrary(t *testing.T) {
	s := startSAStandinWithKey(t, nil)
	// A key of an account the stand-in does not know, and a key of srcSA it does not know
	// (deleted, say).
	unknownAccount, _, err := standin.NewServiceAccountKey(otherSA, s.g.TokenURI())
	if err != nil {
		t.Fatal(err)
	}
	unknownKey, key2, err := standin.NewServiceAccountKey(srcSA, s.g.TokenURI())
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name    string
		keyJSON []byte
		scopes  []string
		want    string
	}{
		{"account not found", unknownAccount, []string{cloudPlatform}, `{"error":"invalid_grant","error_description":"Invalid grant: account not found`},
		{"key not registered", unknownKey, []string{cloudPlatform}, `{"error":"invalid_grant","error_description":"Invalid JWT Signature: the service account \"` +
			srcSA + `\" has no key \"` + key2.KeyID + `\"`},
		{"no scopes", s.keyJSON, nil, `{"error":"invalid_scope","error_description":"Empty or missing scope not allowed."}`},
	} {
		t.Run(c.name, func(t *testing.T) {
			tok, err := serviceAccountToken(t, s.g, c.keyJSON, nil, c.scopes...)
			if err == nil {
				t.Fatalf("x/oauth2 got a token %+v", tok)
			}
			var re *oauth2.RetrieveError
			if !errors.As(err, &re) || re.Response.StatusCode != 400 || !strings.HasPrefix(string(re.Body), c.want) {
				t.Errorf("%v, want 400 %s", err, c.want)
			}
		})
	}
	if g := s.g.Grants(); len(g) != 0 {
		t.Errorf("grants %+v", g)
	}
	if r := s.g.Refusals(); len(r) != 3 {
		t.Errorf("refusals %+v", r)
	}
}

// TestGoogleImpersonationRefused: generateAccessToken, with a service account's token, checks
// the token's scope and the account's permission; a target's token impersonates as its account.
func TestGoogleImpersonationRefused(t *testing.T) {
	s := startSAStandinWithKey(t, map[string][]string{srcSA: {gcpSA}, gcpSA: {otherSA}})
	otherJSON, _ := s.addKey(t, otherSA) // otherSA may impersonate no one
	body := `{"scope":["` + cloudPlatform + `"]}`

	storageOnly, err := serviceAccountToken(t, s.g, s.keyJSON, nil, storageRead)
	if err != nil {
		t.Fatal(err)
	}
	status, b := generate(t, s.g, storageOnly.AccessToken, gcpSA, body)
	wantAPIError(t, status, b, 403, "PERMISSION_DENIED", `Request had insufficient authentication scopes: the access token's scopes "`+storageRead+`" lack `+cloudPlatform+`.`)

	src, err := serviceAccountToken(t, s.g, s.keyJSON, nil, cloudPlatform)
	if err != nil {
		t.Fatal(err)
	}
	status, b = generate(t, s.g, src.AccessToken, srcSA, body)
	wantAPIError(t, status, b, 403, "PERMISSION_DENIED", `the service account "`+srcSA+`" may impersonate "`+gcpSA+`", not "`+srcSA+`".`)
	status, b = generate(t, s.g, src.AccessToken, gcpSA, `{"scope":["`+cloudPlatform+`"],"lifetime":"3601s"}`)
	wantAPIError(t, status, b, 400, "INVALID_ARGUMENT", `lifetime "3601s" is not a duration`)
	status, b = generate(t, s.g, src.AccessToken, gcpSA, `{"lifetime":"60s"}`)
	wantAPIError(t, status, b, 400, "INVALID_ARGUMENT", "Scope required.")

	other, err := serviceAccountToken(t, s.g, otherJSON, nil, cloudPlatform)
	if err != nil {
		t.Fatal(err)
	}
	status, b = generate(t, s.g, other.AccessToken, gcpSA, body)
	wantAPIError(t, status, b, 403, "PERMISSION_DENIED", `Permission 'iam.serviceAccounts.getAccessToken' denied on resource (or it may not exist): the service account "`+
		otherSA+`" may impersonate no service account, not "`+gcpSA+`".`)

	// The target's token, as its account, may impersonate what the target may.
	target := mustGenerate(t, s.g, src.AccessToken, gcpSA, body)
	mustGenerate(t, s.g, target.AccessToken, otherSA, `{"scope":["`+storageRead+`"]}`)
	status, b = generate(t, s.g, target.AccessToken, srcSA, body)
	wantAPIError(t, status, b, 403, "PERMISSION_DENIED", `the service account "`+gcpSA+`" may impersonate "`+otherSA+`", not "`+srcSA+`".`)

	grants := s.g.Grants()
	if len(grants) != 5 || grants[4].Principal != gcpSA || grants[4].ServiceAccount != otherSA || grants[3].Principal != srcSA || grants[3].ServiceAccount != gcpSA {
		t.Errorf("grants %+v", grants)
	}
	if r := s.g.Refusals(); len(r) != 6 {
		t.Errorf("refusals %+v", r)
	}
}

// TestGoogleTokenInfo: token info answers for service accounts' tokens while they last,
// whatever the principal; for no federated token; and refuses malformed requests.
func TestGoogleTokenInfo(t *testing.T) {
	is := newIssuer(t, "RS256")
	g := startSTS(t, is, func(o *standin.GoogleSTSOptions) { o.Impersonates = map[string][]string{srcSA: {gcpSA}} })
	s := &saStandin{g: g}
	keyJSON, _ := s.addKey(t, srcSA)

	// A federated token is no account's.
	federated, err := googleToken(t, g, is.sign(t, is.key, gcpClaims(is)), externalAccount{})
	if err != nil {
		t.Fatal(err)
	}
	status, info := tokenInfo(t, g, "GET", federated.AccessToken)
	wantInvalidToken(t, status, info)
	// The service account's token the federated principal generated is.
	imp, err := googleToken(t, g, is.sign(t, is.key, gcpClaims(is)), externalAccount{email: gcpSA, scope: storageRead})
	if err != nil {
		t.Fatal(err)
	}
	status, info = tokenInfo(t, g, "POST", imp.AccessToken)
	if status != 200 || info["email"] != gcpSA || info["scope"] != storageRead || info["exp"] != strconv.FormatInt(imp.Expiry.Unix(), 10) {
		t.Errorf("token info of the impersonated token: %d %v", status, info)
	}
	if grants := g.Grants(); len(grants) != 3 || grants[2].Principal != "" || grants[2].Audience != gcpProvider || grants[2].Subject != subject || grants[2].ServiceAccount != gcpSA {
		t.Errorf("grants %+v", grants)
	}

	// A token lasts what generateAccessToken gave it.
	src, err := serviceAccountToken(t, g, keyJSON, nil, cloudPlatform)
	if err != nil {
		t.Fatal(err)
	}
	short := mustGenerate(t, g, src.AccessToken, gcpSA, `{"scope":["`+cloudPlatform+`"],"lifetime":"1s"}`)
	deadline, err := time.Parse(time.RFC3339, short.ExpireTime)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Until(deadline.Add(1100 * time.Millisecond)))
	status, info = tokenInfo(t, g, "GET", short.AccessToken)
	wantInvalidToken(t, status, info)
	status, b := generate(t, g, short.AccessToken, gcpSA, `{"scope":["`+cloudPlatform+`"]}`)
	wantAPIError(t, status, b, 401, "UNAUTHENTICATED", "Request had invalid authentication credentials")

	tokenURL := g.URL + "tokeninfo"
	for _, c := range []struct {
		name, method, url, contentType, body string
		status                               int
		error, reason                        string
	}{
		{"no access_token", "GET", tokenURL, "", "", 400, "invalid_request", "Missing required parameter: access_token"},
		{"empty access_token", "GET", tokenURL + "?access_token=", "", "", 400, "invalid_request", "Missing required parameter: access_token"},
		{"repeated", "GET", tokenURL + "?access_token=a&access_token=" + url.QueryEscape(src.AccessToken), "", "", 400, "invalid_request", `"access_token" appears 2 times`},
		{"id_token", "GET", tokenURL + "?id_token=a.b.c", "", "", 400, "invalid_request", "takes access_token only"},
		{"PUT", "PUT", tokenURL, formType, "access_token=" + url.QueryEscape(src.AccessToken), 405, "invalid_request", `/tokeninfo accepts only GET and POST, not "PUT"`},
		{"POST JSON", "POST", tokenURL, "application/json", `{"access_token":"` + src.AccessToken + `"}`, 400, "invalid_request", `Content-Type is "application/json"`},
		{"tokeninfo path", "GET", g.URL + "oauth2/v3/tokeninfo?access_token=" + url.QueryEscape(src.AccessToken), "", "", 404, "invalid_request", `is not served: the stand-in serves only`},
	} {
		t.Run(c.name, func(t *testing.T) {
			resp, b := do(t, g.HTTPClient(), c.method, c.url, c.contentType, c.body)
			var got oauthError
			if err := json.Unmarshal([]byte(b), &got); err != nil || resp.StatusCode != c.status || got.Error != c.error || !strings.Contains(got.Description, c.reason) {
				t.Errorf("%s %s, want %d %s ...%s...", resp.Status, b, c.status, c.error, c.reason)
			}
			if strings.Contains(b, src.AccessToken) {
				t.Error("the response echoes the token")
			}
		})
	}
	// The source's token, still, by GET.
	if status, info := tokenInfo(t, g, "GET", src.AccessToken); status != 200 || info["email"] != srcSA {
		t.Errorf("token info of the source's token: %d %v", status, info)
	}
}

// TestStartGoogleSTSServiceAccounts: options with service accounts, and keys added later.
func TestStartGoogleSTSServiceAccounts(t *testing.T) {
	keyJSON, key, err := standin.NewServiceAccountKey(srcSA, "https://127.0.0.1:1/token")
	if err != nil {
		t.Fatal(err)
	}
	small, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		opts standin.GoogleSTSOptions
		want string
	}{
		{"nothing", standin.GoogleSTSOptions{}, "GoogleSTSOptions lacks Audience, IssuerURL, Subject, for a workload identity pool provider, or ServiceAccountKeys or Impersonates"},
		{"part of a provider", standin.GoogleSTSOptions{Audience: gcpProvider, ServiceAccountKeys: []standin.ServiceAccountKey{key}}, "GoogleSTSOptions lacks IssuerURL, Subject"},
		{"bad source", standin.GoogleSTSOptions{Impersonates: map[string][]string{"a/b": {gcpSA}}}, `Impersonates's key "a/b" is not an email address`},
		{"bad target", standin.GoogleSTSOptions{Impersonates: map[string][]string{srcSA: {"x"}}}, `has "x", not an email address`},
		{"no public key", standin.GoogleSTSOptions{ServiceAccountKeys: []standin.ServiceAccountKey{{Email: srcSA, KeyID: "k"}}}, "has no PublicKey"},
		{"no key ID", standin.GoogleSTSOptions{ServiceAccountKeys: []standin.ServiceAccountKey{{Email: srcSA, PublicKey: key.PublicKey}}}, `has KeyID "", not 1 to 128`},
		{"bad email", standin.GoogleSTSOptions{ServiceAccountKeys: []standin.ServiceAccountKey{{Email: "x", KeyID: "k", PublicKey: key.PublicKey}}}, `Email "x" is not an email address`},
		{"small key", standin.GoogleSTSOptions{ServiceAccountKeys: []standin.ServiceAccountKey{{Email: srcSA, KeyID: "k", PublicKey: &small.PublicKey}}}, "has 1024 bits, fewer than 2048"},
		{"same key twice", standin.GoogleSTSOptions{ServiceAccountKeys: []standin.ServiceAccountKey{key, key}}, "already has a key"},
	} {
		t.Run(c.name, func(t *testing.T) {
			g, err := standin.StartGoogleSTS(t.Context(), c.opts)
			if err == nil {
				g.Close()
				t.Fatal("started")
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Errorf("%v, want %q", err, c.want)
			}
		})
	}

	// A key given at the start signs what the token endpoint takes; the stand-in has no provider.
	g, err := standin.StartGoogleSTS(t.Context(), standin.GoogleSTSOptions{ServiceAccountKeys: []standin.ServiceAccountKey{key}})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	if g.TokenURI() != g.URL+"token" {
		t.Errorf("TokenURI %s", g.TokenURI())
	}
	if err := g.AddServiceAccountKey(key); err == nil || !strings.Contains(err.Error(), "already has a key") {
		t.Errorf("adding the key again: %v", err)
	}
	if err := g.AddServiceAccountKey(standin.ServiceAccountKey{Email: srcSA, KeyID: "k2"}); err == nil || !strings.Contains(err.Error(), "has no PublicKey") {
		t.Errorf("adding no key: %v", err)
	}
	s := &saStandin{g: g}
	assertion := signRS256(t, privateKeyOf(t, keyJSON), map[string]string{"alg": "RS256", "typ": "JWT", "kid": key.KeyID}, s.claims())
	resp, b := do(t, g.HTTPClient(), "POST", g.TokenURI(), formType, url.Values{"grant_type": {jwtBearerGrant}, "assertion": {assertion}}.Encode())
	if resp.StatusCode != 200 || !strings.Contains(b, `"expires_in":3599`) {
		t.Errorf("the key given at the start: %s %s", resp.Status, b)
	}
	exchange := url.Values{"grant_type": {"urn:ietf:params:oauth:grant-type:token-exchange"}, "audience": {gcpProvider}, "scope": {cloudPlatform},
		"requested_token_type": {"urn:ietf:params:oauth:token-type:access_token"}, "subject_token_type": {jwtSubjectType}, "subject_token": {"a.b.c"}}
	resp, b = do(t, g.HTTPClient(), "POST", g.URL+"v1/token", formType, exchange.Encode())
	if resp.StatusCode != 400 || !strings.Contains(b, `"error":"invalid_target"`) || !strings.Contains(b, "the stand-in has no workload identity pool provider") {
		t.Errorf("token exchange without a provider: %s %s", resp.Status, b)
	}
}
