package standin

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Google's OAuth 2.0 token endpoint, as service account keys use it (RFC 7523), and its token info.
const (
	jwtBearerGrant = "urn:ietf:params:oauth:grant-type:jwt-bearer"
	oauthTokenPath = "/token"
	tokenInfoPath  = "/tokeninfo"
	// serviceAccountTokenLifetime is expires_in of POST /token's access tokens, in seconds: Google
	// answers 3599 for the hour a service account's access token lasts.
	serviceAccountTokenLifetime = 3599
	// maxAssertionLifetime is the longest exp-iat Google takes of a JWT-bearer assertion.
	maxAssertionLifetime  = time.Hour
	maxServiceAccountKeys = 1000
	googleScopePrefix     = "https://www.googleapis.com/auth/"
	// The members of a key file Google writes that name Google's endpoints.
	googleAuthURI        = "https://accounts.google.com/o/oauth2/auth"
	googleCertsURL       = "https://www.googleapis.com/oauth2/v1/certs"
	googleRobotCertsURL  = "https://www.googleapis.com/robot/v1/metadata/x509/"
	googleUniverseDomain = "googleapis.com"
)

// userManagedServiceAccount is the email of a service account a project's user creates:
// NAME@PROJECT_ID.iam.gserviceaccount.com.
var userManagedServiceAccount = regexp.MustCompile(`^[a-z](?:[-a-z0-9]*[a-z0-9])?@([a-z](?:[-a-z0-9]*[a-z0-9])?)\.iam\.gserviceaccount\.com$`)

// ServiceAccountKey is the public half of a service account key: what Google keeps of a key it
// created, to check the assertions the key signs.
type ServiceAccountKey struct {
	// Email is the service account's: the key file's client_email, an assertion's iss.
	Email string
	// KeyID is the key file's private_key_id, which x/oauth2 puts in an assertion's header as kid.
	KeyID string
	// PublicKey is the key's, RSA of at least 2048 bits.
	PublicKey *rsa.PublicKey
}

func (k *ServiceAccountKey) validate() error {
	switch {
	case !serviceAccountEmail.MatchString(k.Email):
		return fmt.Errorf("the service account key's Email %s is not an email address", quote(k.Email))
	case k.KeyID == "" || len(k.KeyID) > 128 || strings.ContainsFunc(k.KeyID, func(r rune) bool { return r <= ' ' || r > '~' }):
		return fmt.Errorf("the service account key of %s has KeyID %s, not 1 to 128 printable ASCII characters", quote(k.Email), quote(k.KeyID))
	case k.PublicKey == nil || k.PublicKey.N == nil:
		return fmt.Errorf("the service account key %s of %s has no PublicKey", quote(k.KeyID), quote(k.Email))
	case k.PublicKey.N.BitLen() < minRSABits:
		return fmt.Errorf("the service account key %s of %s has %d bits, fewer than %d", quote(k.KeyID), quote(k.Email), k.PublicKey.N.BitLen(), minRSABits)
	case k.PublicKey.E < 3 || k.PublicKey.E%2 == 0:
		return fmt.Errorf("the service account key %s of %s has exponent %d, not an odd integer from 3", quote(k.KeyID), quote(k.Email), k.PublicKey.E)
	}
	return nil
}

// serviceAccountKeyFile is a service account key file, its members in the order Google writes them.
type serviceAccountKeyFile struct {
	Type                    string `json:"type"`
	ProjectID               string `json:"project_id"`
	PrivateKeyID            string `json:"private_key_id"`
	PrivateKey              string `json:"private_key"`
	ClientEmail             string `json:"client_email"`
	ClientID                string `json:"client_id"`
	AuthURI                 string `json:"auth_uri"`
	TokenURI                string `json:"token_uri"`
	AuthProviderX509CertURL string `json:"auth_provider_x509_cert_url"`
	ClientX509CertURL       string `json:"client_x509_cert_url"`
	UniverseDomain          string `json:"universe_domain"`
}

// NewServiceAccountKey generates an RSA-2048 key for the service account email, which must be a
// user-managed one's, NAME@PROJECT_ID.iam.gserviceaccount.com, and returns the JSON key file as
// Google writes one (gcloud iam service-accounts keys create, or the console's download):
// type "service_account", project_id, private_key_id (40 hex digits), private_key (PKCS #8 PEM),
// client_email, client_id (the account's 21-digit unique ID, as token info's azp reports it),
// auth_uri, token_uri, auth_provider_x509_cert_url, client_x509_cert_url and universe_domain
// "googleapis.com", with Google's URLs but for token_uri, which is tokenURI (an https URL; for
// the stand-in, GoogleSTS.TokenURI). It returns too the key's public half, to register with
// GoogleSTSOptions.ServiceAccountKeys or GoogleSTS.AddServiceAccountKey.
func NewServiceAccountKey(email, tokenURI string) (keyJSON []byte, key ServiceAccountKey, err error) {
	m := userManagedServiceAccount.FindStringSubmatch(email)
	if m == nil {
		return nil, ServiceAccountKey{}, fmt.Errorf("stand-in service account key: %s is not a user-managed service account's email, NAME@PROJECT_ID.iam.gserviceaccount.com", quote(email))
	}
	if u, err := url.Parse(tokenURI); err != nil || u.Scheme != "https" || u.Host == "" {
		return nil, ServiceAccountKey{}, fmt.Errorf("stand-in service account key: token URI %s is not an https URL", quote(tokenURI))
	}
	priv, err := rsa.GenerateKey(rand.Reader, minRSABits)
	if err != nil {
		return nil, ServiceAccountKey{}, fmt.Errorf("stand-in service account key: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return nil, ServiceAccountKey{}, fmt.Errorf("stand-in service account key: %w", err)
	}
	id := make([]byte, 20)
	if _, err := rand.Read(id); err != nil {
		return nil, ServiceAccountKey{}, fmt.Errorf("stand-in service account key: %w", err)
	}
	key = ServiceAccountKey{Email: email, KeyID: hex.EncodeToString(id), PublicKey: &priv.PublicKey}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	err = enc.Encode(serviceAccountKeyFile{
		Type:                    "service_account",
		ProjectID:               m[1],
		PrivateKeyID:            key.KeyID,
		PrivateKey:              string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})),
		ClientEmail:             email,
		ClientID:                uniqueID(email),
		AuthURI:                 googleAuthURI,
		TokenURI:                tokenURI,
		AuthProviderX509CertURL: googleCertsURL,
		ClientX509CertURL:       googleRobotCertsURL + url.QueryEscape(email),
		UniverseDomain:          googleUniverseDomain,
	})
	if err != nil {
		return nil, ServiceAccountKey{}, fmt.Errorf("stand-in service account key: %w", err)
	}
	return b.Bytes(), key, nil
}

// uniqueID is the stand-in's unique ID of the service account email: 21 digits, the first 1, as
// Google's are; the same for the same email.
func uniqueID(email string) string {
	sum := sha256.Sum256([]byte("service account " + email))
	n := new(big.Int).SetBytes(sum[:])
	digits := n.Mod(n, new(big.Int).Exp(big.NewInt(10), big.NewInt(20), nil)).Text(10)
	return "1" + strings.Repeat("0", 20-len(digits)) + digits
}

// TokenURI is the stand-in's OAuth 2.0 token endpoint, URL+"token": a service account key file's
// token_uri, and the aud an assertion for it must carry.
func (g *GoogleSTS) TokenURI() string { return g.URL + strings.TrimPrefix(oauthTokenPath, "/") }

// AddServiceAccountKey registers a service account key, as GoogleSTSOptions.ServiceAccountKeys
// does at the start: POST /token accepts the assertions it signs from then on.
func (g *GoogleSTS) AddServiceAccountKey(k ServiceAccountKey) error {
	if err := k.validate(); err != nil {
		return fmt.Errorf("stand-in Google STS: %w", err)
	}
	k.PublicKey = &rsa.PublicKey{N: new(big.Int).Set(k.PublicKey.N), E: k.PublicKey.E}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.nkeys >= maxServiceAccountKeys {
		return fmt.Errorf("stand-in Google STS: already %d service account keys", g.nkeys)
	}
	for _, o := range g.keys[k.Email] {
		if o.KeyID == k.KeyID {
			return fmt.Errorf("stand-in Google STS: the service account %s already has a key %s", quote(k.Email), quote(k.KeyID))
		}
	}
	g.keys[k.Email] = append(g.keys[k.Email], k)
	g.nkeys++
	return nil
}

// bearerClaims are the claims of a JWT-bearer assertion beyond jwtClaims, as x/oauth2/jws
// writes them.
type bearerClaims struct {
	Iat            *numericDate `json:"iat"`
	Scope          string       `json:"scope"`
	Prn            string       `json:"prn"`
	TargetAudience string       `json:"target_audience"`
}

// jwtBearer serves Google's OAuth 2.0 token endpoint for a service account key: the JWT-bearer
// grant of RFC 7523, an assertion signed by one of the account's keys for an access token of the
// account's. The checks, and their errors, are Google's; descriptions add what failed, never the
// assertion.
func (g *GoogleSTS) jwtBearer(w http.ResponseWriter, r *http.Request) *refusal {
	form, ref := readForm(w, r)
	if ref != nil {
		return ref
	}
	fields := map[string]string{}
	for _, name := range []string{"grant_type", "assertion"} {
		switch v := form[name]; len(v) {
		case 0:
		case 1:
			fields[name] = v[0]
		default:
			return stsError(http.StatusBadRequest, "invalid_request", "the parameter %s appears %d times; at most once is allowed", quote(name), len(v))
		}
	}
	switch gt := fields["grant_type"]; {
	case gt == "":
		return stsError(http.StatusBadRequest, "invalid_request", "Missing required parameter: grant_type")
	case gt != jwtBearerGrant:
		return stsError(http.StatusBadRequest, "unsupported_grant_type", "Invalid grant_type: %s (the stand-in's %s grants only %s)", quote(gt), oauthTokenPath, jwtBearerGrant)
	}
	if fields["assertion"] == "" {
		return stsError(http.StatusBadRequest, "invalid_request", "Missing required parameter: assertion")
	}
	a, err := parseAssertion(fields["assertion"], "the assertion")
	if err != nil {
		return stsError(http.StatusBadRequest, "invalid_grant", "Invalid JWT: %v.", err)
	}
	var c bearerClaims
	if err := strictUnmarshal(a.payload, &c); err != nil {
		return stsError(http.StatusBadRequest, "invalid_grant", "Invalid JWT: the assertion's payload is not a JSON object of JWT claims: %v.", err)
	}
	if a.header.Alg != "RS256" {
		return stsError(http.StatusBadRequest, "invalid_grant", "Invalid JWT Signature: the assertion's alg %s is not RS256, the one a service account key signs with.", quote(a.header.Alg))
	}
	iss := a.claims.Iss
	g.mu.Lock()
	keys := append([]ServiceAccountKey(nil), g.keys[iss]...)
	g.mu.Unlock()
	if len(keys) == 0 {
		return stsError(http.StatusBadRequest, "invalid_grant", "Invalid grant: account not found: the stand-in has no key of the service account %s (the assertion's iss).", quote(iss))
	}
	if kid := a.header.Kid; kid != "" {
		keys = slices.DeleteFunc(keys, func(k ServiceAccountKey) bool { return k.KeyID != kid })
		if len(keys) == 0 {
			return stsError(http.StatusBadRequest, "invalid_grant", "Invalid JWT Signature: the service account %s has no key %s (the assertion's kid).", quote(iss), quote(kid))
		}
	}
	digest := sha256.Sum256([]byte(a.signingInput))
	var key *ServiceAccountKey
	for i := range keys {
		if rsa.VerifyPKCS1v15(keys[i].PublicKey, crypto.SHA256, digest[:], a.signature) == nil {
			key = &keys[i]
			break
		}
	}
	if key == nil {
		ids := make([]string, len(keys))
		for i, k := range keys {
			ids[i] = k.KeyID
		}
		return stsError(http.StatusBadRequest, "invalid_grant", "Invalid JWT Signature: the signature does not verify with the key %s of the service account %s.", quoteEach(ids, " or "), quote(iss))
	}
	if aud := g.TokenURI(); len(a.claims.Aud) != 1 || a.claims.Aud[0] != aud {
		return stsError(http.StatusBadRequest, "invalid_grant", "Invalid JWT: Failed audience check. The right audience is %s (the assertion's aud is %s).", aud, quote(strings.Join(a.claims.Aud, ", ")))
	}
	if err := checkBearerTimes(a, c.Iat, time.Now()); err != nil {
		return stsError(http.StatusBadRequest, "invalid_grant", "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe. "+
			"Check your iat and exp values in the JWT claim: %v.", err)
	}
	if a.claims.Sub != "" || c.Prn != "" {
		return stsError(http.StatusBadRequest, "unauthorized_client", "Client is unauthorized to retrieve access tokens using this method, or client not authorized for any of the scopes requested: "+
			"the assertion's sub asks for domain-wide delegation, which the stand-in does not grant.")
	}
	scopes := strings.Fields(c.Scope)
	if len(scopes) == 0 {
		if c.TargetAudience != "" {
			return stsError(http.StatusBadRequest, "invalid_scope", "Empty or missing scope not allowed: the stand-in issues no ID tokens (target_audience).")
		}
		return stsError(http.StatusBadRequest, "invalid_scope", "Empty or missing scope not allowed.")
	}
	for _, s := range scopes {
		if !googleScope(s) {
			return stsError(http.StatusBadRequest, "invalid_scope", "Invalid OAuth scope or ID token audience provided: %s is not a Google OAuth scope (%s...).", quote(s), googleScopePrefix)
		}
	}
	now := time.Now()
	tok := rand.Text() + rand.Text()
	grant := GoogleGrant{Principal: iss, KeyID: key.KeyID, Scope: strings.Join(scopes, " "), ServiceAccount: iss,
		Expiry: now.Add(serviceAccountTokenLifetime * time.Second), Time: now}
	g.mu.Lock()
	g.rememberLocked(tok, issuedToken{email: iss, scopes: scopes, expiry: grant.Expiry}, now)
	g.grants = appendBounded(g.grants, grant)
	g.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{
		"access_token": tok,
		"expires_in":   serviceAccountTokenLifetime,
		"token_type":   "Bearer",
	})
	return nil
}

// checkBearerTimes checks a JWT-bearer assertion's times as Google does: iat and exp required,
// exp after iat by at most maxAssertionLifetime, iat not in the future and exp not past (and
// nbf, if any, not in the future), with clockSkew.
func checkBearerTimes(a *assertion, iat *numericDate, now time.Time) error {
	exp := a.claims.Exp
	switch {
	case iat == nil:
		return errors.New("it has no iat claim")
	case exp == nil:
		return errors.New("it has no exp claim")
	case !exp.After(iat.Time):
		return fmt.Errorf("its exp %s is not after its iat %s", exp.UTC().Format(time.RFC3339), iat.UTC().Format(time.RFC3339))
	case exp.Sub(iat.Time) > maxAssertionLifetime:
		return fmt.Errorf("its exp is %s after its iat, more than %s", exp.Sub(iat.Time), maxAssertionLifetime)
	case now.Add(clockSkew).Before(iat.Time):
		return fmt.Errorf("it was issued at %s, in the future (now %s, leeway %s)",
			iat.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339), clockSkew)
	}
	return checkTimes(a, now)
}

// googleScope reports whether s is a scope Google's OAuth 2.0 takes: a URL under
// https://www.googleapis.com/auth/, or one of OpenID Connect's.
func googleScope(s string) bool {
	switch s {
	case "openid", "email", "profile":
		return true
	}
	rest, ok := strings.CutPrefix(s, googleScopePrefix)
	return ok && rest != ""
}

// tokenInfoResponse is token info's answer for an access token, its members in Google's order,
// all strings, as Google writes them.
type tokenInfoResponse struct {
	Azp           string `json:"azp"`
	Aud           string `json:"aud"`
	Scope         string `json:"scope"`
	Exp           string `json:"exp"`
	ExpiresIn     string `json:"expires_in"`
	Email         string `json:"email"`
	EmailVerified string `json:"email_verified"`
	AccessType    string `json:"access_type"`
}

// tokenInfo serves Google's token info for the service accounts' access tokens the stand-in
// issued, from POST /token or generateAccessToken, while they last. Federated access tokens,
// which are no Google account's, and any other are an invalid_token, as Google answers an
// unknown or expired one.
func (g *GoogleSTS) tokenInfo(w http.ResponseWriter, r *http.Request) *refusal {
	params := r.URL.Query()
	if r.Method == http.MethodPost {
		form, ref := readForm(w, r)
		if ref != nil {
			return ref
		}
		params = form
	}
	if len(params["id_token"]) > 0 || len(params["token_handle"]) > 0 {
		return stsError(http.StatusBadRequest, "invalid_request", "the stand-in's token info takes access_token only, not id_token or token_handle")
	}
	switch v := params["access_token"]; {
	case len(v) > 1:
		return stsError(http.StatusBadRequest, "invalid_request", "the parameter \"access_token\" appears %d times; at most once is allowed", len(v))
	case len(v) == 0 || v[0] == "":
		return stsError(http.StatusBadRequest, "invalid_request", "Missing required parameter: access_token")
	}
	it, ok := g.lookup(params.Get("access_token"))
	if !ok || it.email == "" {
		return stsError(http.StatusBadRequest, "invalid_token", "Invalid Value")
	}
	id := uniqueID(it.email)
	writeJSON(w, http.StatusOK, tokenInfoResponse{
		Azp:           id,
		Aud:           id,
		Scope:         strings.Join(it.scopes, " "),
		Exp:           strconv.FormatInt(it.expiry.Unix(), 10),
		ExpiresIn:     strconv.FormatInt(int64(time.Until(it.expiry)/time.Second), 10),
		Email:         it.email,
		EmailVerified: "true",
		AccessType:    "online",
	})
	return nil
}
