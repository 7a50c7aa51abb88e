package tempcreds

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/google"

	"github.com/credgate/credgate/api/v1alpha1"
	"github.com/credgate/credgate/credential"
)

// SourceGCPKey is the key of a GCP source Secret: the source service account's key file
// (type service_account), with which credgate impersonates the Credentials' service accounts.
const SourceGCPKey = "key.json"

// DefaultIAMCredentialsEndpoint is the IAM Service Account Credentials API.
const DefaultIAMCredentialsEndpoint = "https://iamcredentials.googleapis.com"

// Bounds of one mint: the key file read, the answer read, and the calls' time.
const (
	maxKeyFileBytes  = 64 << 10
	maxResponseBytes = 64 << 10
	gcpCallTimeout   = 30 * time.Second
)

// cloudPlatformScope is the scope generateAccessToken requires of the caller's token.
const cloudPlatformScope = "https://www.googleapis.com/auth/cloud-platform"

// TokenRequest is one generateAccessToken.
type TokenRequest struct {
	// ServiceAccount is the email of the service account impersonated.
	ServiceAccount string
	Scopes         []string
	Lifetime       time.Duration
	// Endpoint is the IAM Credentials API's base URL; empty for Google's.
	Endpoint string
}

// AccessToken is a service account's short-lived OAuth 2.0 access token.
type AccessToken struct {
	Token  string
	Expiry time.Time
}

// serviceAccountKey is what credgate checks of a source key file before using it.
type serviceAccountKey struct {
	Type        string `json:"type"`
	ClientEmail string `json:"client_email"`
	PrivateKey  string `json:"private_key"`
	TokenURI    string `json:"token_uri"`
}

// checkServiceAccountKey reports what makes key unusable as a source, never its content.
func checkServiceAccountKey(key []byte) error {
	if len(key) == 0 {
		return errors.New("missing: want a service account key file (type service_account)")
	}
	if len(key) > maxKeyFileBytes {
		return fmt.Errorf("%d bytes: a service account key file is a few KiB, at most %d", len(key), maxKeyFileBytes)
	}
	var k serviceAccountKey
	if err := json.Unmarshal(key, &k); err != nil {
		return errors.New("not JSON: want a service account key file (type service_account)")
	}
	var problems []string
	if k.Type != "service_account" {
		problems = append(problems, fmt.Sprintf("type is %q, not service_account", k.Type))
	}
	if k.ClientEmail == "" || k.PrivateKey == "" {
		problems = append(problems, "client_email and private_key are required")
	}
	if k.TokenURI != "" {
		if u, err := url.Parse(k.TokenURI); err != nil || u.Scheme != "https" || u.Host == "" {
			problems = append(problems, "token_uri is not an https URL")
		}
	}
	if len(problems) > 0 {
		return errors.New(strings.Join(problems, "; "))
	}
	return nil
}

// GenerateAccessToken mints an access token of req.ServiceAccount: it signs in as the source
// service account of key (the OAuth 2.0 JWT-bearer grant at the key's token_uri, by
// golang.org/x/oauth2/google) and calls IAM Credentials generateAccessToken with req's
// scopes and lifetime, through the *http.Client of ctx's oauth2.HTTPClient value if it has
// one. Neither the key, nor the source's token, nor the minted token appear in its errors.
func GenerateAccessToken(ctx context.Context, key []byte, req TokenRequest) (AccessToken, error) {
	ctx, cancel := context.WithTimeout(ctx, gcpCallTimeout)
	defer cancel()
	// As x/oauth2 does, a client in ctx makes the calls (tests trust a stand-in's CA with it).
	hc, _ := ctx.Value(oauth2.HTTPClient).(*http.Client)
	if hc == nil {
		// No redirect is followed: neither the assertion nor the source's token go anywhere
		// but where the key and the grant say.
		hc = &http.Client{Timeout: gcpCallTimeout, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		ctx = context.WithValue(ctx, oauth2.HTTPClient, hc)
	}
	creds, err := google.CredentialsFromJSONWithType(ctx, key, google.ServiceAccount, cloudPlatformScope)
	if err != nil {
		// x/oauth2 names the field it could not parse, not its value.
		return AccessToken{}, fmt.Errorf("read the source key: %w", err)
	}
	source, err := creds.TokenSource.Token()
	if err != nil {
		return AccessToken{}, fmt.Errorf("sign in as the source service account: %w", oauthError(err))
	}
	endpoint := req.Endpoint
	if endpoint == "" {
		endpoint = DefaultIAMCredentialsEndpoint
	}
	u := strings.TrimRight(endpoint, "/") + "/v1/projects/-/serviceAccounts/" + url.PathEscape(req.ServiceAccount) + ":generateAccessToken"
	body, err := json.Marshal(map[string]any{"scope": req.Scopes, "lifetime": fmt.Sprintf("%ds", int64(req.Lifetime/time.Second))})
	if err != nil {
		return AccessToken{}, err
	}
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(body))
	if err != nil {
		return AccessToken{}, fmt.Errorf("generateAccessToken for %s: %w", req.ServiceAccount, err)
	}
	hreq.Header.Set("Content-Type", "application/json")
	hreq.Header.Set("Authorization", "Bearer "+source.AccessToken)
	resp, err := hc.Do(hreq)
	if err != nil {
		return AccessToken{}, redact(fmt.Errorf("generateAccessToken for %s: %w", req.ServiceAccount, err), source.AccessToken)
	}
	defer func() { _ = resp.Body.Close() }()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes+1))
	if err != nil {
		return AccessToken{}, fmt.Errorf("generateAccessToken for %s: read the answer: %w", req.ServiceAccount, err)
	}
	if len(raw) > maxResponseBytes {
		return AccessToken{}, fmt.Errorf("generateAccessToken for %s: the answer exceeds %d bytes", req.ServiceAccount, maxResponseBytes)
	}
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Error struct {
				Message string `json:"message"`
				Status  string `json:"status"`
			} `json:"error"`
		}
		_ = json.Unmarshal(raw, &e)
		msg := fmt.Sprintf("generateAccessToken for %s: %s", req.ServiceAccount, resp.Status)
		if e.Error.Status != "" || e.Error.Message != "" {
			// Redacted whole, then cut: a cut token would escape its redaction.
			text := redactJWTs(redact(errors.New(e.Error.Status+" "+e.Error.Message), source.AccessToken).Error())
			msg += ": " + truncate(text, 512)
		}
		return AccessToken{}, errors.New(msg)
	}
	var out struct {
		AccessToken string `json:"accessToken"`
		ExpireTime  string `json:"expireTime"`
	}
	if err := json.Unmarshal(raw, &out); err != nil || out.AccessToken == "" {
		return AccessToken{}, fmt.Errorf("generateAccessToken for %s: the answer has no accessToken", req.ServiceAccount)
	}
	expiry, err := time.Parse(time.RFC3339Nano, out.ExpireTime)
	if err != nil {
		return AccessToken{}, fmt.Errorf("generateAccessToken for %s: the answer's expireTime is not RFC 3339", req.ServiceAccount)
	}
	return AccessToken{Token: out.AccessToken, Expiry: expiry}, nil
}

// oauthError keeps what a token endpoint said about a refused sign-in, without the raw body
// x/oauth2 would quote whole.
func oauthError(err error) error {
	var re *oauth2.RetrieveError
	if errors.As(err, &re) {
		code, desc := re.ErrorCode, re.ErrorDescription
		if code == "" { // x/oauth2/jwt leaves the body unparsed
			var e struct {
				Error       string `json:"error"`
				Description string `json:"error_description"`
			}
			if json.Unmarshal(re.Body, &e) == nil {
				code, desc = e.Error, e.Description
			}
		}
		msg := "status " + re.Response.Status
		if code != "" {
			msg += ": " + truncate(redactJWTs(code), 64)
		}
		if desc != "" {
			// An endpoint that quotes the request would quote the assertion, a JWT.
			msg += ": " + truncate(redactJWTs(desc), 512)
		}
		return errors.New(msg)
	}
	return err
}

// jwtPattern matches a JWT (or its first two parts): what a sign-in sends.
var jwtPattern = regexp.MustCompile(`eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*(\.[A-Za-z0-9_-]*)?`)

// redactJWTs replaces every JWT in s.
func redactJWTs(s string) string { return jwtPattern.ReplaceAllString(s, "[redacted]") }

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// gcpMinter impersonates a Credential's service account with a source's key.
type gcpMinter struct {
	r     *Refresher
	key   []byte
	grant Grant
}

// limit caps d at the grant's credgate.dev/max-token-lifetime: Google cannot revoke an access
// token, so its lifetime is how long a leaked one works.
func (m gcpMinter) limit(d time.Duration) time.Duration {
	if m.grant.MaxLifetime > 0 && d > m.grant.MaxLifetime {
		return m.grant.MaxLifetime
	}
	return d
}

// mint generates an access token of c's service account with its scopes for d, at the
// granted endpoint: never one a tenant names.
func (m gcpMinter) mint(ctx context.Context, c *v1alpha1.Credential, d time.Duration) (minted, string, error) {
	g := c.Spec.GCP
	req := TokenRequest{ServiceAccount: g.ServiceAccountEmail, Scopes: credential.GCPScopes(g), Lifetime: d, Endpoint: m.grant.IAMEndpoint}
	generate := m.r.generate
	if generate == nil {
		generate = GenerateAccessToken
	}
	tok, err := generate(ctx, m.key, req)
	if err != nil {
		return minted{}, ReasonGenerateAccessTokenFailed, err
	}
	return minted{
		data:    gcpSecretData(tok),
		expires: tok.Expiry,
		what:    fmt.Sprintf("impersonated %s with scopes %s", g.ServiceAccountEmail, strings.Join(req.Scopes, " ")),
	}, "", nil
}

// gcpSecretData is the managed Secret of an impersonation Credential holding tok: the token
// alone (for gcloud) and as JSON with its expiry (for the client libraries' refresh hooks);
// both empty for the zero token.
func gcpSecretData(tok AccessToken) map[string][]byte {
	data := map[string][]byte{credential.GCPAccessTokenKey: {}, credential.GCPTokenJSONKey: {}}
	if tok.Token == "" {
		return data
	}
	j, _ := json.Marshal(struct { // strings only
		AccessToken string `json:"access_token"`
		TokenType   string `json:"token_type"`
		Expiry      string `json:"expiry"`
	}{tok.Token, "Bearer", tok.Expiry.UTC().Format(time.RFC3339)})
	data[credential.GCPAccessTokenKey] = []byte(tok.Token)
	data[credential.GCPTokenJSONKey] = j
	return data
}
