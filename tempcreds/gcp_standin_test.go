package tempcreds

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/credgate/credgate/test/standin"
)

const minterSA = "minter@platform-project.iam.gserviceaccount.com"

// startGoogle starts the stand-in for Google's OAuth 2.0 token endpoint and IAM Credentials
// with the source account minterSA, allowed to impersonate trainerSA, and returns its key
// file and a context whose calls trust the stand-in.
func startGoogle(t *testing.T) (*standin.GoogleSTS, []byte, context.Context) {
	t.Helper()
	g, err := standin.StartGoogleSTS(t.Context(), standin.GoogleSTSOptions{Impersonates: map[string][]string{minterSA: {trainerSA}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(g.Close)
	key, pub, err := standin.NewServiceAccountKey(minterSA, g.TokenURI())
	if err != nil {
		t.Fatal(err)
	}
	if err := g.AddServiceAccountKey(pub); err != nil {
		t.Fatal(err)
	}
	return g, key, context.WithValue(t.Context(), oauth2.HTTPClient, g.HTTPClient())
}

// TestGenerateAccessToken: signed in with the source key by x/oauth2, credgate gets a token of
// the target with the scopes and lifetime asked, which Google's tokeninfo attributes to it.
func TestGenerateAccessToken(t *testing.T) {
	g, key, ctx := startGoogle(t)
	if err := checkServiceAccountKey(key); err != nil {
		t.Fatalf("a key file as Google writes it: %v", err)
	}
	tok, err := GenerateAccessToken(ctx, key, TokenRequest{ServiceAccount: trainerSA,
		Scopes: []string{"https://www.googleapis.com/auth/devstorage.read_only"}, Lifetime: 10 * time.Minute, Endpoint: g.URL})
	if err != nil {
		t.Fatalf("GenerateAccessToken: %v\nrefusals: %+v", err, g.Refusals())
	}
	if tok.Token == "" || tok.Expiry.Before(time.Now().Add(9*time.Minute)) || tok.Expiry.After(time.Now().Add(11*time.Minute)) {
		t.Errorf("token expiring %s, want in 10 minutes", tok.Expiry)
	}
	res, err := g.HTTPClient().Get(g.URL + "tokeninfo?access_token=" + url.QueryEscape(tok.Token))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = res.Body.Close() }()
	var info map[string]string
	if err := json.NewDecoder(res.Body).Decode(&info); err != nil || res.StatusCode != http.StatusOK {
		t.Fatalf("tokeninfo: %d %v", res.StatusCode, err)
	}
	if info["email"] != trainerSA || info["scope"] != "https://www.googleapis.com/auth/devstorage.read_only" {
		t.Errorf("tokeninfo = %v, want %s with the scope asked", info, trainerSA)
	}
	grants := g.Grants()
	if len(grants) != 2 || grants[0].ServiceAccount != minterSA || grants[1].Principal != minterSA || grants[1].ServiceAccount != trainerSA {
		t.Errorf("grants = %+v, want the source's sign-in, then the target's token", grants)
	}
}

// TestGenerateAccessTokenRefused: Google's refusals reach the error, with the status and
// Google's message, and no token.
func TestGenerateAccessTokenRefused(t *testing.T) {
	g, key, ctx := startGoogle(t)
	_, err := GenerateAccessToken(ctx, key, TokenRequest{ServiceAccount: "admin@platform-project.iam.gserviceaccount.com",
		Scopes: []string{cloudPlatformScope}, Lifetime: time.Hour, Endpoint: g.URL})
	if err == nil || !strings.Contains(err.Error(), "403") || !strings.Contains(err.Error(), "PERMISSION_DENIED") {
		t.Errorf("impersonating an account the source may not: %v", err)
	}
	for _, gr := range g.Grants() {
		if gr.ServiceAccount == minterSA && strings.Contains(err.Error(), "ya29") {
			t.Errorf("the error quotes a token: %v", err)
		}
	}

	// Another key of the same account, unknown to Google: the sign-in is refused.
	other, _, err := standin.NewServiceAccountKey(minterSA, g.TokenURI())
	if err != nil {
		t.Fatal(err)
	}
	_, err = GenerateAccessToken(ctx, other, TokenRequest{ServiceAccount: trainerSA, Scopes: []string{cloudPlatformScope}, Lifetime: time.Hour, Endpoint: g.URL})
	if err == nil || !strings.Contains(err.Error(), "sign in as the source service account") || !strings.Contains(err.Error(), "invalid_grant") {
		t.Errorf("an unknown key: %v", err)
	}
	if strings.Contains(err.Error(), "PRIVATE KEY") {
		t.Errorf("the error quotes the key: %v", err)
	}
}

// echoServer answers every request with status and an error, in Google APIs' shape or, if
// oauth, in OAuth's, its message quoting the request's Authorization header and form after
// padding: what a hostile or broken endpoint could do.
func echoServer(t *testing.T, status int, oauth bool) *httptest.Server {
	t.Helper()
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = r.ParseForm()
		quoted := strings.Repeat("x", 470) + " " + r.Header.Get("Authorization") + " " + r.Form.Encode()
		body := map[string]any{"error": map[string]any{"code": status, "status": "PERMISSION_DENIED", "message": quoted}}
		if oauth {
			body = map[string]any{"error": "invalid_grant", "error_description": quoted}
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(body)
	}))
	t.Cleanup(srv.Close)
	return srv
}

// Neither the source's token nor the signed assertion reach an error, whatever an endpoint
// quotes back, and however long.
func TestGenerateAccessTokenErrorsQuoteNoSecret(t *testing.T) {
	g, key, _ := startGoogle(t)
	echo, signInEcho := echoServer(t, http.StatusForbidden, false), echoServer(t, http.StatusBadRequest, true)
	pool := g.CertPool()
	pool.AddCert(echo.Certificate())
	pool.AddCert(signInEcho.Certificate())
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}}
	ctx := context.WithValue(t.Context(), oauth2.HTTPClient, hc)

	_, err := GenerateAccessToken(ctx, key, TokenRequest{ServiceAccount: trainerSA, Scopes: []string{cloudPlatformScope}, Lifetime: time.Hour, Endpoint: echo.URL})
	if err == nil || !strings.Contains(err.Error(), "403") {
		t.Fatalf("an IAM endpoint refusing: %v", err)
	}
	grants := g.Grants()
	if len(grants) != 1 {
		t.Fatalf("grants = %+v, want the sign-in", grants)
	}
	if regexp.MustCompile(`Bearer [A-Za-z0-9]`).MatchString(err.Error()) {
		t.Errorf("the error quotes the source's token: %v", err)
	}

	signIn, _, err := standin.NewServiceAccountKey(minterSA, signInEcho.URL+"/token")
	if err != nil {
		t.Fatal(err)
	}
	_, err = GenerateAccessToken(ctx, signIn, TokenRequest{ServiceAccount: trainerSA, Scopes: []string{cloudPlatformScope}, Lifetime: time.Hour, Endpoint: g.URL})
	if err == nil || !strings.Contains(err.Error(), "sign in as the source service account") {
		t.Fatalf("a token endpoint refusing: %v", err)
	}
	if strings.Contains(err.Error(), "eyJ") {
		t.Errorf("the error quotes the assertion: %v", err)
	}
}

// No redirect is followed: neither the assertion nor the source's token leave for where an
// endpoint points.
func TestGenerateAccessTokenFollowsNoRedirect(t *testing.T) {
	var reached atomic.Int32
	elsewhere := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { reached.Add(1) }))
	t.Cleanup(elsewhere.Close)
	redirect := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/token" && r.URL.Query().Get("signed-in") == "" {
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write([]byte(`{"access_token":"source-token","token_type":"Bearer","expires_in":3599}`))
			return
		}
		http.Redirect(w, r, elsewhere.URL+r.URL.Path, http.StatusTemporaryRedirect)
	}))
	t.Cleanup(redirect.Close)
	// keyAt is a key file whose token_uri is uri, plain http (which a source Secret may not
	// hold): the default client, which trusts no test CA, makes the calls.
	keyAt := func(uri string) []byte {
		t.Helper()
		key, _, err := standin.NewServiceAccountKey(minterSA, "https://token.invalid/token")
		if err != nil {
			t.Fatal(err)
		}
		return []byte(strings.Replace(string(key), "https://token.invalid/token", uri, 1))
	}
	_, err := GenerateAccessToken(t.Context(), keyAt(redirect.URL+"/token"), TokenRequest{ServiceAccount: trainerSA, Scopes: []string{cloudPlatformScope}, Lifetime: time.Hour, Endpoint: redirect.URL})
	if err == nil || !strings.Contains(err.Error(), "307") {
		t.Errorf("an IAM endpoint redirecting: %v, want its 307", err)
	}
	if n := reached.Load(); n != 0 {
		t.Errorf("the redirect was followed %d times", n)
	}
	if _, err := GenerateAccessToken(t.Context(), keyAt(redirect.URL+"/elsewhere"), TokenRequest{ServiceAccount: trainerSA, Scopes: []string{cloudPlatformScope}, Lifetime: time.Hour, Endpoint: redirect.URL}); err == nil {
		t.Error("a token endpoint redirecting signed in")
	}
	if n := reached.Load(); n != 0 {
		t.Errorf("the sign-in's redirect was followed %d times", n)
	}
}
