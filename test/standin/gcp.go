package standin

import (
	"context"
	"crypto/rand"
	"crypto/x509"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// The token exchange of RFC 8693, as Google's Security Token Service takes it.
const (
	tokenExchangeGrant   = "urn:ietf:params:oauth:grant-type:token-exchange"
	accessTokenType      = "urn:ietf:params:oauth:token-type:access_token"
	jwtTokenType         = "urn:ietf:params:oauth:token-type:jwt"
	idTokenType          = "urn:ietf:params:oauth:token-type:id_token"
	stsTokenPath         = "/v1/token"
	serviceAccountsPath  = "/v1/projects/-/serviceAccounts/"
	generateAccessToken  = ":generateAccessToken"
	cloudPlatformScope   = "https://www.googleapis.com/auth/cloud-platform"
	maxImpersonationLife = time.Hour // without the org policy constraints/iam.allowServiceAccountCredentialLifetimeExtension
	maxIssuedTokens      = 1000
)

// workloadProvider is the full resource name of a workload identity pool's provider.
var workloadProvider = regexp.MustCompile(`^//iam\.googleapis\.com/projects/[0-9]+/locations/global/workloadIdentityPools/[a-z0-9-]+/providers/[a-z0-9-]+$`)

var serviceAccountEmail = regexp.MustCompile(`^[^@/:\s]+@[^@/:\s]+$`)

// GoogleSTSOptions configure StartGoogleSTS: one workload identity pool provider, for one
// OpenID Connect issuer, trusting one subject, and optionally one service account it may
// impersonate; and service accounts with keys, each optionally allowed to impersonate others.
// Either the provider (Audience, IssuerURL, Subject) or service accounts (ServiceAccountKeys or
// Impersonates) must be given; without a provider, the token exchange refuses every request.
type GoogleSTSOptions struct {
	// Audience is the provider's full resource name, such as
	// "//iam.googleapis.com/projects/123456/locations/global/workloadIdentityPools/ml/providers/k8s":
	// the external_account configuration's audience, which a token exchange must name.
	Audience string
	// TokenAudience, when set, must be one of the subject token's aud, as the provider's one
	// allowed audience. Empty: as a provider with no allowed audiences, one of aud must be
	// Audience, with or without an "https:" prefix ("https://iam.googleapis.com/projects/...").
	TokenAudience string
	// IssuerURL is the provider's issuer URI: a subject token's iss must equal it, and its keys
	// are fetched through its OpenID Connect discovery document, as for EntraOptions.IssuerURL.
	// It must be an https URL.
	IssuerURL string
	// IssuerHTTPClient fetches the issuer's discovery document and keys. Nil: an http.Client
	// with the system's roots.
	IssuerHTTPClient *http.Client
	// Subject is what the provider's attribute condition admits: a subject token's sub must
	// equal it, for a service account "system:serviceaccount:NAMESPACE:NAME".
	Subject string
	// ServiceAccountEmail, when set, is the one service account whose access tokens the
	// federated principal may generate (roles/iam.workloadIdentityUser on it, in Google Cloud).
	ServiceAccountEmail string

	// ServiceAccountKeys are the service account keys whose JWT-bearer assertions POST /token
	// accepts. More can be added with GoogleSTS.AddServiceAccountKey, once GoogleSTS.TokenURI,
	// which a key file's token_uri must name, is known.
	ServiceAccountKeys []ServiceAccountKey
	// Impersonates maps a service account's email to the service accounts whose access tokens
	// it may generate with generateAccessToken (roles/iam.serviceAccountTokenCreator on each of
	// them, granted to serviceAccount:EMAIL, in Google Cloud), authenticated by an access token
	// of its own: one from POST /token, or from generateAccessToken.
	Impersonates map[string][]string
}

// GoogleSTS is a running stand-in for Google's Security Token Service (sts.googleapis.com), the
// IAM Service Account Credentials API's generateAccessToken (iamcredentials.googleapis.com), and
// Google's OAuth 2.0 token and token info endpoints (oauth2.googleapis.com/token and /tokeninfo).
type GoogleSTS struct {
	// URL is "https://127.0.0.1:PORT/": the external_account configuration's token_url is
	// URL+"v1/token", its service_account_impersonation_url
	// URL+"v1/projects/-/serviceAccounts/EMAIL:generateAccessToken"; a service account key
	// file's token_uri is URL+"token" (TokenURI).
	URL string
	// CAPEM is the PEM certificate of the CA that issued the server's certificate.
	CAPEM []byte

	opts      GoogleSTSOptions
	issuerHC  *http.Client
	srv       *http.Server
	stopAfter func() bool
	closeOnce sync.Once

	mu       sync.Mutex
	grants   []GoogleGrant
	refusals []Refusal
	issued   map[string]issuedToken         // the access tokens issued, by token: at most maxIssuedTokens, expired ones forgotten first
	keys     map[string][]ServiceAccountKey // the service accounts' keys, by email
	nkeys    int
}

// GoogleGrant is an access token the stand-in issued: a federated one, from a token exchange;
// a service account's own, from POST /token with an assertion signed by one of its keys; or a
// service account's, from generateAccessToken.
type GoogleGrant struct {
	// Audience, Issuer and Subject name the federated principal: the provider
	// (GoogleSTSOptions.Audience), the subject token's iss and sub. Empty when the principal is
	// a service account.
	Audience string
	Issuer   string
	Subject  string
	// Principal is the service account that authenticated: for POST /token, the account whose
	// key signed the assertion; for generateAccessToken, the account whose access token was the
	// bearer. Empty when the principal is federated.
	Principal string
	// KeyID is the private_key_id of the key that signed the assertion, for POST /token.
	KeyID string
	// Scope is the token's scopes, space-separated: the exchange's scope, the assertion's, or
	// generateAccessToken's.
	Scope string
	// ServiceAccount is the email of the service account whose access token it is: the
	// impersonated one, for generateAccessToken, or Principal, for POST /token; empty for a
	// federated token.
	ServiceAccount string
	Expiry         time.Time
	Time           time.Time // when it was granted
}

// issuedToken is what the stand-in knows of an access token it issued.
type issuedToken struct {
	issuer, subject string // the federated principal, if any
	email           string // the service account whose token it is; empty for a federated token
	scopes          []string
	expiry          time.Time
}

// StartGoogleSTS starts the stand-in on a random port of 127.0.0.1, serving HTTPS with a
// certificate from a CA generated for it. It serves what golang.org/x/oauth2/google's
// external_account credentials call, with a file credential source, and its service_account
// credentials, and Google's token info:
//
//	POST /v1/token
//	POST /v1/projects/-/serviceAccounts/{email}:generateAccessToken
//	POST /token
//	GET  /tokeninfo?access_token=TOKEN (or POST, form-encoded)
//
// and refuses anything else. It stops when ctx is done or on Close.
func StartGoogleSTS(ctx context.Context, opts GoogleSTSOptions) (*GoogleSTS, error) {
	if err := opts.validate(); err != nil {
		return nil, err
	}
	hc := opts.IssuerHTTPClient
	if hc == nil {
		hc = &http.Client{Timeout: issuerFetchTimeout}
	}
	imp := make(map[string][]string, len(opts.Impersonates))
	for src, targets := range opts.Impersonates {
		imp[src] = slices.Clone(targets)
	}
	opts.Impersonates = imp
	g := &GoogleSTS{opts: opts, issuerHC: hc, issued: map[string]issuedToken{}, keys: map[string][]ServiceAccountKey{}}
	for _, k := range opts.ServiceAccountKeys {
		if err := g.AddServiceAccountKey(k); err != nil {
			return nil, err
		}
	}
	ts, err := startTLSServer(ctx, "Google STS", g)
	if err != nil {
		return nil, fmt.Errorf("stand-in Google STS: %w", err)
	}
	g.URL, g.CAPEM, g.srv = ts.url, ts.caPEM, ts.srv
	g.stopAfter = context.AfterFunc(ctx, g.Close)
	return g, nil
}

// federated reports whether the options configure a workload identity pool provider.
func (o *GoogleSTSOptions) federated() bool {
	return o.Audience != "" || o.IssuerURL != "" || o.Subject != ""
}

func (o *GoogleSTSOptions) validate() error {
	for src, targets := range o.Impersonates {
		if !serviceAccountEmail.MatchString(src) {
			return fmt.Errorf("stand-in Google STS: Impersonates's key %s is not an email address", quote(src))
		}
		for _, t := range targets {
			if !serviceAccountEmail.MatchString(t) {
				return fmt.Errorf("stand-in Google STS: Impersonates[%s] has %s, not an email address", quote(src), quote(t))
			}
		}
	}
	if !o.federated() && (len(o.ServiceAccountKeys) > 0 || len(o.Impersonates) > 0) {
		return nil // service accounts only; the keys are checked as they are added
	}
	var missing []string
	for _, f := range []struct{ name, v string }{{"Audience", o.Audience}, {"IssuerURL", o.IssuerURL}, {"Subject", o.Subject}} {
		if f.v == "" {
			missing = append(missing, f.name)
		}
	}
	if len(missing) > 0 {
		if !o.federated() {
			return fmt.Errorf("stand-in Google STS: GoogleSTSOptions lacks %s, for a workload identity pool provider, "+
				"or ServiceAccountKeys or Impersonates, for service accounts", strings.Join(missing, ", "))
		}
		return fmt.Errorf("stand-in Google STS: GoogleSTSOptions lacks %s", strings.Join(missing, ", "))
	}
	if !workloadProvider.MatchString(o.Audience) {
		return fmt.Errorf("stand-in Google STS: Audience %s is not a workload identity pool provider's full resource name, "+
			"//iam.googleapis.com/projects/NUMBER/locations/global/workloadIdentityPools/POOL/providers/PROVIDER", quote(o.Audience))
	}
	u, err := url.Parse(o.IssuerURL)
	if err != nil || u.Scheme != "https" || u.Host == "" {
		return fmt.Errorf("stand-in Google STS: IssuerURL %s is not an https URL, as Google requires of an issuer", quote(o.IssuerURL))
	}
	if o.ServiceAccountEmail != "" && !serviceAccountEmail.MatchString(o.ServiceAccountEmail) {
		return fmt.Errorf("stand-in Google STS: ServiceAccountEmail %s is not an email address", quote(o.ServiceAccountEmail))
	}
	return nil
}

// tokenAudiences are the aud values a subject token may carry, one of which it must.
func (o *GoogleSTSOptions) tokenAudiences() []string {
	if o.TokenAudience != "" {
		return []string{o.TokenAudience}
	}
	return []string{"https:" + o.Audience, o.Audience}
}

// Close stops the server. It may be called more than once.
func (g *GoogleSTS) Close() {
	g.closeOnce.Do(func() {
		if g.stopAfter != nil {
			g.stopAfter()
		}
		_ = g.srv.Close()
	})
}

// CertPool returns a new pool holding the CA of the server's certificate.
func (g *GoogleSTS) CertPool() *x509.CertPool { return certPool(g.CAPEM) }

// HTTPClient returns a client that trusts the server's CA and no other: put it in the context
// of the credentials' calls as oauth2.HTTPClient.
func (g *GoogleSTS) HTTPClient() *http.Client { return clientTrusting(g.CAPEM) }

// Grants returns the access tokens issued so far (the last 1000), oldest first.
func (g *GoogleSTS) Grants() []GoogleGrant {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]GoogleGrant(nil), g.grants...)
}

// Refusals returns the requests refused so far (the last 1000), oldest first.
func (g *GoogleSTS) Refusals() []Refusal {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]Refusal(nil), g.refusals...)
}

const googleServed = "the stand-in serves only POST /v1/token, POST /v1/projects/-/serviceAccounts/{email}:generateAccessToken, " +
	"POST /token and GET or POST /tokeninfo"

// ServeHTTP routes the four endpoints and refuses everything else: in the token services' error
// shape, {"error","error_description"}, or, for the Service Account Credentials API, in
// Google APIs' {"error":{"code","message","status"}}.
func (g *GoogleSTS) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p := r.URL.Path
	switch {
	case p == stsTokenPath:
		if r.Method != http.MethodPost {
			g.refuse(w, r, stsError(http.StatusMethodNotAllowed, "invalid_request", "%s accepts only POST, not %s", stsTokenPath, quote(r.Method)), false)
			return
		}
		if ref := g.token(w, r); ref != nil {
			g.refuse(w, r, ref, false)
		}
	case p == oauthTokenPath:
		if r.Method != http.MethodPost {
			g.refuse(w, r, stsError(http.StatusMethodNotAllowed, "invalid_request", "%s accepts only POST, not %s", oauthTokenPath, quote(r.Method)), false)
			return
		}
		if ref := g.jwtBearer(w, r); ref != nil {
			g.refuse(w, r, ref, false)
		}
	case p == tokenInfoPath:
		if r.Method != http.MethodGet && r.Method != http.MethodPost {
			g.refuse(w, r, stsError(http.StatusMethodNotAllowed, "invalid_request", "%s accepts only GET and POST, not %s", tokenInfoPath, quote(r.Method)), false)
			return
		}
		if ref := g.tokenInfo(w, r); ref != nil {
			g.refuse(w, r, ref, false)
		}
	case strings.HasPrefix(p, "/v1/projects/") && strings.HasSuffix(p, generateAccessToken):
		if r.Method != http.MethodPost {
			g.refuse(w, r, apiError(http.StatusMethodNotAllowed, "%s accepts only POST, not %s", quote(p), quote(r.Method)), true)
			return
		}
		if ref := g.generateAccessToken(w, r); ref != nil {
			g.refuse(w, r, ref, true)
		}
	default:
		g.refuse(w, r, stsError(http.StatusNotFound, "invalid_request", "%s %s is not served: %s", r.Method, quote(p), googleServed), false)
	}
}

func stsError(status int, code, format string, args ...any) *refusal {
	return &refusal{status: status, err: code, description: fmt.Sprintf(format, args...)}
}

// apiError is a Google API error; its err is the canonical status named for the HTTP status.
func apiError(status int, format string, args ...any) *refusal {
	s := map[int]string{
		http.StatusBadRequest:       "INVALID_ARGUMENT",
		http.StatusUnauthorized:     "UNAUTHENTICATED",
		http.StatusForbidden:        "PERMISSION_DENIED",
		http.StatusNotFound:         "NOT_FOUND",
		http.StatusMethodNotAllowed: "INVALID_ARGUMENT",
	}[status]
	return &refusal{status: status, err: s, description: fmt.Sprintf(format, args...)}
}

// token serves the token exchange: a subject token from the provider's issuer for a federated
// access token.
func (g *GoogleSTS) token(w http.ResponseWriter, r *http.Request) *refusal {
	form, ref := readForm(w, r)
	if ref != nil {
		return ref
	}
	fields := map[string]string{}
	for _, name := range []string{"grant_type", "audience", "scope", "requested_token_type", "subject_token_type", "subject_token"} {
		switch v := form[name]; len(v) {
		case 0:
		case 1:
			fields[name] = v[0]
		default:
			return stsError(http.StatusBadRequest, "invalid_request", "the parameter %s appears %d times; at most once is allowed", quote(name), len(v))
		}
	}
	for _, name := range []string{"grant_type", "audience", "scope", "requested_token_type", "subject_token_type", "subject_token"} {
		if fields[name] == "" {
			return stsError(http.StatusBadRequest, "invalid_request", "the request lacks the parameter %s", quote(name))
		}
	}
	if v := fields["grant_type"]; v != tokenExchangeGrant {
		return stsError(http.StatusBadRequest, "unsupported_grant_type", "grant_type %s is not supported: the stand-in grants only %s", quote(v), tokenExchangeGrant)
	}
	if v := fields["requested_token_type"]; v != accessTokenType {
		return stsError(http.StatusBadRequest, "invalid_request", "requested_token_type %s is not supported: only %s is", quote(v), accessTokenType)
	}
	if v := fields["subject_token_type"]; v != jwtTokenType && v != idTokenType {
		return stsError(http.StatusBadRequest, "invalid_request", "subject_token_type %s is not one an OIDC provider takes (%s or %s)", quote(v), jwtTokenType, idTokenType)
	}
	if !g.opts.federated() {
		return stsError(http.StatusBadRequest, "invalid_target", "The target service indicated by the \"audience\" parameter, %s, is invalid: "+
			"the stand-in has no workload identity pool provider.", quote(fields["audience"]))
	}
	if v := fields["audience"]; v != g.opts.Audience {
		return stsError(http.StatusBadRequest, "invalid_target", "The target service indicated by the \"audience\" parameter, %s, is invalid: "+
			"the stand-in's only workload identity pool provider is %s.", quote(v), quote(g.opts.Audience))
	}
	a, jerr := verifyJWT(r.Context(), g.issuerHC, g.opts.IssuerURL, "the subject token", fields["subject_token"])
	if jerr != nil {
		switch jerr.check {
		case checkForm:
			return stsError(http.StatusBadRequest, "invalid_grant", "The subject token is not a valid JWT: %v.", jerr)
		case checkIssuer:
			return stsError(http.StatusBadRequest, "invalid_grant", "The issuer %s of the subject token does not match the provider's issuer %s.", quote(a.claims.Iss), quote(g.opts.IssuerURL))
		case checkKeys:
			return stsError(http.StatusBadRequest, "invalid_grant", "The provider's issuer keys could not be fetched: %v.", jerr)
		case checkSignature:
			return stsError(http.StatusBadRequest, "invalid_grant", "Invalid JWT signature: %v.", jerr)
		default:
			return stsError(http.StatusBadRequest, "invalid_grant", "The subject token is not within its valid time range: %v.", jerr)
		}
	}
	if !containsAny(a.claims.Aud, g.opts.tokenAudiences()) {
		return stsError(http.StatusBadRequest, "invalid_grant", "The audience %s of the subject token does not match the expected audience %s.",
			quote(strings.Join(a.claims.Aud, ", ")), quoteEach(g.opts.tokenAudiences(), " or "))
	}
	if a.claims.Sub != g.opts.Subject {
		return stsError(http.StatusBadRequest, "unauthorized_client", "The given credential is rejected by the attribute condition: the subject token's sub %s is not %s.",
			quote(a.claims.Sub), quote(g.opts.Subject))
	}
	now := time.Now()
	tok := rand.Text() + rand.Text()
	scopes := strings.Fields(fields["scope"])
	grant := GoogleGrant{Audience: g.opts.Audience, Issuer: a.claims.Iss, Subject: a.claims.Sub, Scope: strings.Join(scopes, " "),
		Expiry: now.Add(accessTokenLifetime * time.Second), Time: now}
	g.mu.Lock()
	g.rememberLocked(tok, issuedToken{issuer: grant.Issuer, subject: grant.Subject, scopes: scopes, expiry: grant.Expiry}, now)
	g.grants = appendBounded(g.grants, grant)
	g.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{
		"access_token":      tok,
		"issued_token_type": accessTokenType,
		"token_type":        "Bearer",
		"expires_in":        accessTokenLifetime,
	})
	return nil
}

// rememberLocked records an access token issued, first forgetting expired ones, and, if
// maxIssuedTokens remain, others, when there are maxIssuedTokens. g.mu must be held.
func (g *GoogleSTS) rememberLocked(tok string, it issuedToken, now time.Time) {
	if len(g.issued) >= maxIssuedTokens {
		for t, old := range g.issued {
			if !now.Before(old.expiry) || len(g.issued) >= maxIssuedTokens {
				delete(g.issued, t)
			}
		}
	}
	g.issued[tok] = it
}

// lookup returns the access token tok, if the stand-in issued it and it has not expired.
func (g *GoogleSTS) lookup(tok string) (issuedToken, bool) {
	g.mu.Lock()
	it, known := g.issued[tok]
	g.mu.Unlock()
	return it, known && time.Now().Before(it.expiry)
}

func quoteEach(s []string, sep string) string {
	q := make([]string, len(s))
	for i, v := range s {
		q[i] = quote(v)
	}
	return strings.Join(q, sep)
}

func containsAny(aud audience, want []string) bool {
	for _, w := range want {
		if aud.contains(w) {
			return true
		}
	}
	return false
}

// generateAccessToken serves the Service Account Credentials API's generateAccessToken,
// authorized by an access token the stand-in issued: a federated one, for the one service
// account GoogleSTSOptions.ServiceAccountEmail, or a service account's, for the service accounts
// GoogleSTSOptions.Impersonates lets it impersonate.
func (g *GoogleSTS) generateAccessToken(w http.ResponseWriter, r *http.Request) *refusal {
	email, ok := strings.CutPrefix(r.URL.Path, serviceAccountsPath)
	if !ok {
		return apiError(http.StatusBadRequest, "%s: the project must be the wildcard \"-\": /v1/projects/-/serviceAccounts/{email}:generateAccessToken", quote(r.URL.Path))
	}
	email = strings.TrimSuffix(email, generateAccessToken)
	bearer, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	it, known := g.lookup(bearer)
	if !ok || !known {
		w.Header().Set("WWW-Authenticate", `Bearer realm="https://accounts.google.com/"`)
		return apiError(http.StatusUnauthorized, "Request had invalid authentication credentials: expected an OAuth 2 access token the stand-in issued, and unexpired, as Authorization: Bearer.")
	}
	if !slices.Contains(it.scopes, cloudPlatformScope) {
		return apiError(http.StatusForbidden, "Request had insufficient authentication scopes: the access token's scopes %s lack %s.", quote(strings.Join(it.scopes, " ")), cloudPlatformScope)
	}
	switch {
	case it.email == "" && (g.opts.ServiceAccountEmail == "" || email != g.opts.ServiceAccountEmail):
		return apiError(http.StatusForbidden, "Permission 'iam.serviceAccounts.getAccessToken' denied on resource (or it may not exist): the federated principal %s may impersonate %s, not %s.",
			quote(it.subject), quote(g.opts.ServiceAccountEmail), quote(email))
	case it.email != "" && !slices.Contains(g.opts.Impersonates[it.email], email):
		may := "no service account"
		if targets := g.opts.Impersonates[it.email]; len(targets) > 0 {
			may = quoteEach(targets, ", ")
		}
		return apiError(http.StatusForbidden, "Permission 'iam.serviceAccounts.getAccessToken' denied on resource (or it may not exist): the service account %s may impersonate %s, not %s.",
			quote(it.email), may, quote(email))
	}
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		return apiError(http.StatusBadRequest, "the request's Content-Type is %s, not application/json", quote(r.Header.Get("Content-Type")))
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxFormBytes))
	if err != nil {
		return apiError(http.StatusBadRequest, "the request's body could not be read (at most %d bytes): %v", maxFormBytes, err)
	}
	var req struct {
		Delegates []string `json:"delegates"`
		Scope     []string `json:"scope"`
		Lifetime  string   `json:"lifetime"`
	}
	if err := strictUnmarshal(body, &req); err != nil {
		return apiError(http.StatusBadRequest, "the request's body is not a JSON object {delegates, scope, lifetime}: %v", err)
	}
	if len(req.Delegates) > 0 {
		return apiError(http.StatusBadRequest, "delegates are not supported: the stand-in has no delegation chain")
	}
	if len(req.Scope) == 0 {
		return apiError(http.StatusBadRequest, "Scope required.")
	}
	life := maxImpersonationLife
	if req.Lifetime != "" {
		secs, ok := strings.CutSuffix(req.Lifetime, "s")
		f, err := strconv.ParseFloat(secs, 64)
		if !ok || err != nil || f <= 0 || f > maxImpersonationLife.Seconds() {
			return apiError(http.StatusBadRequest, "lifetime %s is not a duration in seconds, such as \"3600s\", from 0 to %s", quote(req.Lifetime), maxImpersonationLife)
		}
		life = time.Duration(f * float64(time.Second))
	}
	now := time.Now()
	grant := GoogleGrant{Issuer: it.issuer, Subject: it.subject, Principal: it.email, Scope: strings.Join(req.Scope, " "),
		ServiceAccount: email, Expiry: now.Add(life), Time: now}
	if it.email == "" {
		grant.Audience = g.opts.Audience
	}
	tok := rand.Text() + rand.Text()
	g.mu.Lock()
	g.rememberLocked(tok, issuedToken{issuer: it.issuer, subject: it.subject, email: email, scopes: slices.Clone(req.Scope), expiry: grant.Expiry}, now)
	g.grants = appendBounded(g.grants, grant)
	g.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]string{
		"accessToken": tok,
		"expireTime":  grant.Expiry.UTC().Format(time.RFC3339),
	})
	return nil
}

// refuse writes the error response, in the token service's shape or, when api, in Google APIs',
// and records the refusal.
func (g *GoogleSTS) refuse(w http.ResponseWriter, r *http.Request, ref *refusal, api bool) {
	now := time.Now().UTC()
	g.mu.Lock()
	g.refusals = appendBounded(g.refusals, Refusal{Method: r.Method, Path: r.URL.Path, Status: ref.status,
		Error: ref.err, Description: ref.description, Time: now})
	g.mu.Unlock()
	if api {
		writeJSON(w, ref.status, map[string]any{"error": map[string]any{"code": ref.status, "message": ref.description, "status": ref.err}})
		return
	}
	writeJSON(w, ref.status, map[string]string{"error": ref.err, "error_description": ref.description})
}
