package standin

import (
	"context"
	"crypto/rand"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
)

// DefaultAudience is the audience Entra expects of a federated credential's assertion.
const DefaultAudience = "api://AzureADTokenExchange"

const (
	clientCredentialsGrant = "client_credentials"
	jwtBearerAssertionType = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
	discoveryPath          = "v2.0/.well-known/openid-configuration"
	tokenPath              = "oauth2/v2.0/token"
	maxFormBytes           = 64 << 10
	maxHeaderBytes         = 32 << 10
	maxRecords             = 1000
	// accessTokenLifetime is expires_in of the access tokens granted, in seconds.
	accessTokenLifetime = 3600
	certValidity        = 24 * time.Hour
)

// EntraOptions configure StartEntra: the one application, in one tenant, with one federated
// identity credential, that the stand-in knows.
type EntraOptions struct {
	// TenantID is the directory (tenant) ID; token requests for any other tenant are refused.
	// Compared case-insensitively, as MSAL lowercases the tenant of the authority.
	TenantID string
	// ClientID is the application (client) ID.
	ClientID string
	// IssuerURL is the federated credential's issuer: an assertion's iss must equal it exactly,
	// and its keys are fetched through its OpenID Connect discovery document,
	// strings.TrimSuffix(IssuerURL, "/")+"/.well-known/openid-configuration", which must name
	// this issuer, and that document's jwks_uri. It must be an https URL. For a cluster it is
	// the API server's --service-account-issuer.
	IssuerURL string
	// IssuerHTTPClient fetches the issuer's discovery document and keys, for instance trusting
	// the cluster's CA. Nil: an http.Client with the system's roots.
	IssuerHTTPClient *http.Client
	// Subject is the federated credential's subject: an assertion's sub must equal it, for a
	// service account "system:serviceaccount:NAMESPACE:NAME".
	Subject string
	// Audience must be one of an assertion's aud. Empty: DefaultAudience.
	Audience string
}

// Entra is a running stand-in for the Microsoft identity platform's token service.
type Entra struct {
	// URL is "https://127.0.0.1:PORT/": the authority host (AZURE_AUTHORITY_HOST).
	URL string
	// CAPEM is the PEM certificate of the CA that issued the server's certificate.
	CAPEM []byte

	opts      EntraOptions
	issuerHC  *http.Client
	srv       *http.Server
	stopAfter func() bool
	closeOnce sync.Once

	mu       sync.Mutex
	grants   []Grant
	refusals []Refusal
}

// Grant is an access token the stand-in issued.
type Grant struct {
	Tenant   string    // the tenant (EntraOptions.TenantID; the path's matched it, case aside)
	ClientID string    // the form's client_id
	Issuer   string    // the assertion's iss
	Subject  string    // the assertion's sub
	Scope    string    // the resource's scope, such as "https://storage.azure.com/.default"
	Time     time.Time // when it was granted
}

// Refusal is a request the stand-in refused, and why.
type Refusal struct {
	Method, Path string
	Status       int
	// Error and Description are the response's error and error_description.
	Error, Description string
	Time               time.Time
}

// StartEntra starts the stand-in on a random port of 127.0.0.1, serving HTTPS with a
// certificate from a CA generated for it. It serves what MSAL for Go (under azidentity's
// WorkloadIdentityCredential and ClientAssertionCredential) calls for a client-credentials grant
// with a client assertion, once instance discovery is disabled:
//
//	GET  /{tenant}/v2.0/.well-known/openid-configuration
//	POST /{tenant}/oauth2/v2.0/token
//
// and refuses anything else with Entra's error shape. It stops when ctx is done or on Close.
func StartEntra(ctx context.Context, opts EntraOptions) (*Entra, error) {
	if err := opts.validate(); err != nil {
		return nil, err
	}
	if opts.Audience == "" {
		opts.Audience = DefaultAudience
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	hc := opts.IssuerHTTPClient
	if hc == nil {
		hc = &http.Client{Timeout: issuerFetchTimeout}
	}
	e := &Entra{opts: opts, issuerHC: hc}
	ts, err := startTLSServer(ctx, "Entra", e)
	if err != nil {
		return nil, fmt.Errorf("stand-in Entra: %w", err)
	}
	e.URL, e.CAPEM, e.srv = ts.url, ts.caPEM, ts.srv
	e.stopAfter = context.AfterFunc(ctx, e.Close)
	return e, nil
}

func (o *EntraOptions) validate() error {
	var missing []string
	for _, f := range []struct{ name, v string }{{"TenantID", o.TenantID}, {"ClientID", o.ClientID}, {"IssuerURL", o.IssuerURL}, {"Subject", o.Subject}} {
		if f.v == "" {
			missing = append(missing, f.name)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("stand-in Entra: EntraOptions lacks %s", strings.Join(missing, ", "))
	}
	for _, r := range o.TenantID {
		if (r < '0' || r > '9') && (r < 'a' || r > 'z') && (r < 'A' || r > 'Z') && r != '-' && r != '.' {
			return fmt.Errorf("stand-in Entra: TenantID %s is not a tenant ID (letters, digits, '-' and '.')", quote(o.TenantID))
		}
	}
	u, err := url.Parse(o.IssuerURL)
	if err != nil || u.Scheme != "https" || u.Host == "" {
		return fmt.Errorf("stand-in Entra: IssuerURL %s is not an https URL, as Entra requires of an issuer", quote(o.IssuerURL))
	}
	return nil
}

// Close stops the server. It may be called more than once.
func (e *Entra) Close() {
	e.closeOnce.Do(func() {
		if e.stopAfter != nil {
			e.stopAfter()
		}
		_ = e.srv.Close()
	})
}

// CertPool returns a new pool holding the CA of the server's certificate.
func (e *Entra) CertPool() *x509.CertPool {
	return certPool(e.CAPEM)
}

// HTTPClient returns a client that trusts the server's CA and no other: use it as
// azcore.ClientOptions.Transport.
func (e *Entra) HTTPClient() *http.Client {
	return clientTrusting(e.CAPEM)
}

// Grants returns the access tokens issued so far (the last 1000), oldest first.
func (e *Entra) Grants() []Grant {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]Grant(nil), e.grants...)
}

// Refusals returns the requests refused so far (the last 1000), oldest first.
func (e *Entra) Refusals() []Refusal {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]Refusal(nil), e.refusals...)
}

// entraError is the body of Entra's error responses.
type entraError struct {
	Error         string `json:"error"`
	Description   string `json:"error_description"`
	Codes         []int  `json:"error_codes,omitempty"`
	Timestamp     string `json:"timestamp"`
	TraceID       string `json:"trace_id"`
	CorrelationID string `json:"correlation_id"`
}

// refusal is a failed check: the response's status, error and description, and the AADSTS code
// Entra gives the same failure, if any.
type refusal struct {
	status      int
	err         string
	code        int
	description string
}

func badRequest(code int, format string, args ...any) *refusal {
	return &refusal{http.StatusBadRequest, "invalid_request", code, fmt.Sprintf(format, args...)}
}

func badClient(code int, format string, args ...any) *refusal {
	return &refusal{http.StatusUnauthorized, "invalid_client", code, fmt.Sprintf(format, args...)}
}

const served = "the stand-in serves only GET /{tenant}/v2.0/.well-known/openid-configuration and POST /{tenant}/oauth2/v2.0/token"

// ServeHTTP routes the two endpoints and refuses everything else.
func (e *Entra) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	tenant, rest, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/"), "/")
	var (
		method string
		handle func(http.ResponseWriter, *http.Request) *refusal
	)
	switch rest {
	case discoveryPath:
		method, handle = http.MethodGet, e.discovery
	case tokenPath:
		method, handle = http.MethodPost, e.token
	default:
		e.refuse(w, r, badRequest(0, "%s %s is not served: %s (instance discovery is not: set DisableInstanceDiscovery)", r.Method, quote(r.URL.Path), served))
		return
	}
	if r.Method != method {
		e.refuse(w, r, badRequest(0, "/{tenant}/%s accepts only %s, not %s", rest, method, quote(r.Method)))
		return
	}
	if !strings.EqualFold(tenant, e.opts.TenantID) {
		ref := badRequest(90002, "AADSTS90002: Tenant %s not found: the stand-in's only tenant is %s.", quote(tenant), quote(e.opts.TenantID))
		if rest == discoveryPath {
			ref.err = "invalid_tenant"
		}
		e.refuse(w, r, ref)
		return
	}
	if ref := handle(w, r); ref != nil {
		e.refuse(w, r, ref)
	}
}

// discovery serves the tenant's OpenID configuration: of it, MSAL requires and reads
// authorization_endpoint, token_endpoint and issuer (whose host must be the authority's).
func (e *Entra) discovery(w http.ResponseWriter, _ *http.Request) *refusal {
	base := e.URL + e.opts.TenantID
	writeJSON(w, http.StatusOK, map[string]string{
		"issuer":                 base + "/v2.0",
		"token_endpoint":         base + "/oauth2/v2.0/token",
		"authorization_endpoint": base + "/oauth2/v2.0/authorize",
	})
	return nil
}

// token serves a client-credentials grant whose client authenticates with a client assertion:
// a JWT from the federated credential's issuer.
func (e *Entra) token(w http.ResponseWriter, r *http.Request) *refusal {
	form, ref := readForm(w, r)
	if ref != nil {
		return ref
	}
	get := func(name string) (string, *refusal) {
		switch v := form[name]; len(v) {
		case 0:
			return "", nil
		case 1:
			return v[0], nil
		default:
			return "", badRequest(0, "the parameter %s appears %d times; at most once is allowed", quote(name), len(v))
		}
	}
	fields := map[string]string{}
	for _, name := range []string{"grant_type", "client_id", "client_assertion_type", "client_assertion", "client_secret", "scope"} {
		v, ref := get(name)
		if ref != nil {
			return ref
		}
		fields[name] = v
	}
	for _, name := range []string{"grant_type", "client_id", "scope"} {
		if fields[name] == "" {
			return badRequest(900144, "AADSTS900144: The request body must contain the following parameter: %s.", quote(name))
		}
	}
	if g := fields["grant_type"]; g != clientCredentialsGrant {
		return &refusal{http.StatusBadRequest, "unsupported_grant_type", 70003,
			fmt.Sprintf("AADSTS70003: The app requested an unsupported grant type %s: the stand-in grants only %s.", quote(g), clientCredentialsGrant)}
	}
	if fields["client_secret"] != "" {
		return badClient(0, "the application has no client secret: it authenticates with its federated credential, a client_assertion")
	}
	if t := fields["client_assertion_type"]; t != jwtBearerAssertionType {
		return badRequest(0, "client_assertion_type is %s, not %s", quote(t), jwtBearerAssertionType)
	}
	if fields["client_assertion"] == "" {
		return badClient(7000218, "AADSTS7000218: The request body must contain the following parameter: 'client_assertion' or 'client_secret'.")
	}
	scope, ref := resourceScope(fields["scope"])
	if ref != nil {
		return ref
	}
	if id := fields["client_id"]; id != e.opts.ClientID {
		return badClient(700016, "AADSTS700016: Application with identifier %s was not found in the directory %s: the stand-in's only application is %s.",
			quote(id), quote(e.opts.TenantID), quote(e.opts.ClientID))
	}
	a, ref := e.checkAssertion(r.Context(), fields["client_assertion"])
	if ref != nil {
		return ref
	}
	g := Grant{Tenant: e.opts.TenantID, ClientID: e.opts.ClientID, Issuer: a.claims.Iss, Subject: a.claims.Sub, Scope: scope, Time: time.Now()}
	e.mu.Lock()
	e.grants = appendBounded(e.grants, g)
	e.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{
		"token_type":     "Bearer",
		"expires_in":     accessTokenLifetime,
		"ext_expires_in": accessTokenLifetime,
		"access_token":   rand.Text() + rand.Text(),
	})
	return nil
}

// readForm reads a bounded application/x-www-form-urlencoded body; the query is not read.
func readForm(w http.ResponseWriter, r *http.Request) (url.Values, *refusal) {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/x-www-form-urlencoded" {
		return nil, badRequest(0, "the token request's Content-Type is %s, not application/x-www-form-urlencoded", quote(r.Header.Get("Content-Type")))
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxFormBytes))
	if err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			return nil, badRequest(0, "the token request's body is more than %d bytes", maxFormBytes)
		}
		return nil, badRequest(0, "the token request's body could not be read: %v", err)
	}
	form, err := url.ParseQuery(string(body))
	if err != nil {
		return nil, badRequest(0, "the token request's body is not a URL-encoded form: %v", err)
	}
	return form, nil
}

// resourceScope returns the one "<resource>/.default" scope of a client-credentials request,
// which may also carry the OpenID scopes MSAL adds (openid, offline_access, profile).
func resourceScope(scope string) (string, *refusal) {
	var resource []string
	for s := range strings.FieldsSeq(scope) {
		switch s {
		case "openid", "offline_access", "profile":
		default:
			resource = append(resource, s)
		}
	}
	if len(resource) != 1 || !strings.HasSuffix(resource[0], "/.default") || resource[0] == "/.default" {
		return "", &refusal{http.StatusBadRequest, "invalid_scope", 1002012,
			fmt.Sprintf("AADSTS1002012: The provided value for scope %s is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier.", quote(scope))}
	}
	return resource[0], nil
}

// checkAssertion checks a client assertion as Entra checks it against a federated identity
// credential: issuer, signature with the issuer's published keys, lifetime, audience, subject.
// Descriptions name the check that failed, and the claims involved, never the assertion.
func (e *Entra) checkAssertion(ctx context.Context, token string) (*assertion, *refusal) {
	a, jerr := verifyJWT(ctx, e.issuerHC, e.opts.IssuerURL, "the client assertion", token)
	if jerr != nil {
		switch jerr.check {
		case checkForm:
			return nil, badClient(50027, "AADSTS50027: JWT token is invalid or malformed: %v.", jerr)
		case checkIssuer:
			return nil, badClient(700211, "AADSTS700211: No matching federated identity record found for presented assertion issuer %s: the federated credential's issuer is %s.",
				quote(a.claims.Iss), quote(e.opts.IssuerURL))
		case checkKeys:
			return nil, badClient(50166, "AADSTS50166: Request to External OIDC endpoint failed: %v.", jerr)
		case checkSignature:
			return nil, badClient(50013, "AADSTS50013: Assertion failed signature validation: %v.", jerr)
		default:
			return nil, badClient(700024, "AADSTS700024: Client assertion is not within its valid time range: %v.", jerr)
		}
	}
	if !a.claims.Aud.contains(e.opts.Audience) {
		return nil, badClient(700212, "AADSTS700212: No matching federated identity record found for presented assertion audience %s: the federated credential's audience is %s.",
			quote(strings.Join(a.claims.Aud, ", ")), quote(e.opts.Audience))
	}
	if a.claims.Sub != e.opts.Subject {
		return nil, badClient(700213, "AADSTS700213: No matching federated identity record found for presented assertion subject %s: the federated credential's subject is %s.",
			quote(a.claims.Sub), quote(e.opts.Subject))
	}
	return a, nil
}

// refuse writes Entra's error response and records the refusal.
func (e *Entra) refuse(w http.ResponseWriter, r *http.Request, ref *refusal) {
	now := time.Now().UTC()
	body := entraError{Error: ref.err, Description: ref.description, Timestamp: now.Format("2006-01-02 15:04:05Z"),
		TraceID: newUUID(), CorrelationID: correlationID(r)}
	if ref.code != 0 {
		body.Codes = []int{ref.code}
	}
	e.mu.Lock()
	e.refusals = appendBounded(e.refusals, Refusal{Method: r.Method, Path: r.URL.Path, Status: ref.status,
		Error: ref.err, Description: ref.description, Time: now})
	e.mu.Unlock()
	writeJSON(w, ref.status, body)
}

// correlationID is the request's client-request-id when it looks like one, as Entra echoes it.
func correlationID(r *http.Request) string {
	id := r.Header.Get("client-request-id")
	if len(id) == 0 || len(id) > 64 {
		return newUUID()
	}
	for _, c := range id {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') && (c < 'A' || c > 'F') && c != '-' {
			return newUUID()
		}
	}
	return id
}

func newUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}
