package standin

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Bounds on what the stand-in reads from its callers and from the issuer.
const (
	maxAssertionBytes     = 16 << 10 // a service-account token is 1-2 KiB
	maxIssuerDocBytes     = 1 << 20  // the issuer's discovery document and key set, each
	issuerFetchTimeout    = 10 * time.Second
	minRSABits            = 2048
	maxJWKSKeys           = 100
	p256CoordinateBytes   = 32
	es256SignatureBytes   = 2 * p256CoordinateBytes
	maxNumericDateSeconds = 1 << 40 // far beyond any real exp or nbf
	// clockSkew is the leeway given to exp and nbf.
	clockSkew = 5 * time.Minute
)

// jwtCheck names a step of verifyJWT.
type jwtCheck int

const (
	checkForm      jwtCheck = iota // the token is a compact JWS with JSON header and claims
	checkIssuer                    // iss is the expected issuer
	checkKeys                      // the issuer's discovery document and JWKS could be fetched
	checkSignature                 // the signature verifies with one of the issuer's keys
	checkLifetime                  // exp (required) and nbf, with clockSkew
)

// jwtError is a failed step of verifyJWT; its message names the failure, never the token.
type jwtError struct {
	check jwtCheck
	err   error
}

func (e *jwtError) Error() string { return e.err.Error() }

// verifyJWT checks a projected service-account token as the clouds check one from a federated
// OpenID Connect issuer, in this order: its form (noun names it in errors, such as "the client
// assertion"); iss equal to issuer; the signature, against the keys found through the issuer's
// discovery document, fetched with client; exp, which is required, and nbf, with clockSkew.
// The audience and the subject are the caller's to check. On failure the assertion is returned
// too, unless the failure is its form.
func verifyJWT(ctx context.Context, client *http.Client, issuer, noun, token string) (*assertion, *jwtError) {
	a, err := parseAssertion(token, noun)
	if err != nil {
		return nil, &jwtError{checkForm, err}
	}
	if a.claims.Iss != issuer {
		return a, &jwtError{checkIssuer, fmt.Errorf("%s's issuer %s is not %s", noun, quote(a.claims.Iss), quote(issuer))}
	}
	keys, err := issuerKeys(ctx, client, issuer)
	if err != nil {
		return a, &jwtError{checkKeys, err}
	}
	if err := verifySignature(a, keys, noun); err != nil {
		return a, &jwtError{checkSignature, err}
	}
	if err := checkTimes(a, time.Now()); err != nil {
		return a, &jwtError{checkLifetime, err}
	}
	return a, nil
}

// checkTimes checks exp, which is required, and nbf, with clockSkew, at now.
func checkTimes(a *assertion, now time.Time) error {
	switch {
	case a.claims.Exp == nil:
		return errors.New("it has no exp claim")
	case !now.Before(a.claims.Exp.Add(clockSkew)):
		return fmt.Errorf("it expired at %s (now %s, leeway %s)",
			a.claims.Exp.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339), clockSkew)
	case a.claims.Nbf != nil && now.Add(clockSkew).Before(a.claims.Nbf.Time):
		return fmt.Errorf("it is not valid before %s (now %s, leeway %s)",
			a.claims.Nbf.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339), clockSkew)
	}
	return nil
}

// assertion is a parsed, not yet verified, compact JWS (RFC 7515) with JWT claims (RFC 7519).
type assertion struct {
	header       jwsHeader
	claims       jwtClaims
	signingInput string // base64url(header) "." base64url(payload)
	payload      []byte // the decoded claims, for claims beyond jwtClaims
	signature    []byte
}

type jwsHeader struct {
	Alg  string          `json:"alg"`
	Kid  string          `json:"kid"`
	Crit json.RawMessage `json:"crit"`
}

type jwtClaims struct {
	Iss string       `json:"iss"`
	Sub string       `json:"sub"`
	Aud audience     `json:"aud"`
	Exp *numericDate `json:"exp"`
	Nbf *numericDate `json:"nbf"`
}

// audience is the aud claim: one string or an array of strings.
type audience []string

func (a *audience) UnmarshalJSON(b []byte) error {
	var one string
	if err := json.Unmarshal(b, &one); err == nil {
		*a = audience{one}
		return nil
	}
	var many []string
	if err := json.Unmarshal(b, &many); err != nil {
		return errors.New("aud is neither a string nor an array of strings")
	}
	*a = many
	return nil
}

func (a audience) contains(s string) bool {
	for _, v := range a {
		if v == s {
			return true
		}
	}
	return false
}

// numericDate is a JWT NumericDate: seconds since the epoch, possibly fractional.
type numericDate struct{ time.Time }

func (d *numericDate) UnmarshalJSON(b []byte) error {
	var n json.Number
	if err := json.Unmarshal(b, &n); err != nil {
		return errors.New("not a number")
	}
	f, err := strconv.ParseFloat(n.String(), 64)
	if err != nil || f < 0 || f > maxNumericDateSeconds {
		return fmt.Errorf("%s is not a usable NumericDate", n)
	}
	d.Time = time.Unix(int64(f), 0)
	return nil
}

// parseAssertion splits and decodes a compact JWS, named noun in errors ("the client
// assertion"). It checks the form, not the signature.
func parseAssertion(token, noun string) (*assertion, error) {
	if len(token) > maxAssertionBytes {
		return nil, fmt.Errorf("%s is %d bytes, more than the %d accepted", noun, len(token), maxAssertionBytes)
	}
	parts := strings.Split(token, ".")
	switch {
	case len(parts) == 5:
		return nil, fmt.Errorf("%s is a JWE (encrypted); a signed JWT is expected", noun)
	case len(parts) != 3:
		return nil, fmt.Errorf("%s has %d dot-separated parts, not the 3 of a signed JWT", noun, len(parts))
	}
	a := &assertion{signingInput: parts[0] + "." + parts[1]}
	header, err := base64.RawURLEncoding.DecodeString(parts[0])
	if err != nil {
		return nil, fmt.Errorf("%s's header is not base64url", noun)
	}
	if err := strictUnmarshal(header, &a.header); err != nil {
		return nil, fmt.Errorf("%s's header is not a JSON object: %w", noun, err)
	}
	if a.header.Alg == "" {
		return nil, fmt.Errorf("%s's header has no alg", noun)
	}
	if len(a.header.Crit) > 0 {
		return nil, fmt.Errorf("%s's header has crit extensions, which are not supported", noun)
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return nil, fmt.Errorf("%s's payload is not base64url", noun)
	}
	a.payload = payload
	if err := strictUnmarshal(payload, &a.claims); err != nil {
		return nil, fmt.Errorf("%s's payload is not a JSON object of JWT claims: %w", noun, err)
	}
	if a.signature, err = base64.RawURLEncoding.DecodeString(parts[2]); err != nil {
		return nil, fmt.Errorf("%s's signature is not base64url", noun)
	}
	return a, nil
}

// strictUnmarshal decodes one JSON value, refusing trailing data.
func strictUnmarshal(b []byte, v any) error {
	d := json.NewDecoder(bytes.NewReader(b))
	if err := d.Decode(v); err != nil {
		return err
	}
	if d.More() {
		return errors.New("trailing data after the JSON value")
	}
	return nil
}

// jwk is a JSON Web Key (RFC 7517, RFC 7518 section 6): the members verification reads.
type jwk struct {
	Kty string `json:"kty"`
	Kid string `json:"kid"`
	Use string `json:"use"`
	Alg string `json:"alg"`
	// RSA
	N string `json:"n"`
	E string `json:"e"`
	// EC
	Crv string `json:"crv"`
	X   string `json:"x"`
	Y   string `json:"y"`
}

// keyType is the kty (and, for EC, the crv) an alg needs.
var keyType = map[string]struct{ kty, crv string }{
	"RS256": {kty: "RSA"},
	"ES256": {kty: "EC", crv: "P-256"},
}

// verifySignature checks a's signature against the issuer's keys: those whose kid matches the
// header's (any, when it names none), whose type fits the header's alg (RS256: RSA, ES256: EC
// P-256), whose use is sig and whose alg, when given, is the header's.
func verifySignature(a *assertion, keys []jwk, noun string) error {
	alg := a.header.Alg
	want, ok := keyType[alg]
	if !ok {
		return fmt.Errorf("%s's alg %s is not supported (RS256 or ES256 are)", noun, quote(alg))
	}
	digest := sha256.Sum256([]byte(a.signingInput))
	candidates := 0
	var keyErrs []string
	for _, k := range keys {
		if (a.header.Kid != "" && k.Kid != a.header.Kid) || k.Kty != want.kty || (want.crv != "" && k.Crv != want.crv) ||
			(k.Use != "" && k.Use != "sig") || (k.Alg != "" && k.Alg != alg) {
			continue
		}
		candidates++
		var err error
		switch alg {
		case "RS256":
			err = verifyRS256(k, digest[:], a.signature)
		case "ES256":
			err = verifyES256(k, digest[:], a.signature)
		}
		if err == nil {
			return nil
		}
		if !errors.Is(err, errBadSignature) {
			keyErrs = append(keyErrs, fmt.Sprintf("key %s: %v", quote(k.Kid), err))
		}
	}
	if candidates == 0 {
		return fmt.Errorf("no key of the issuer's JWKS has kid %s and fits alg %s", quote(a.header.Kid), alg)
	}
	if len(keyErrs) > 0 {
		return fmt.Errorf("the signature (alg %s, kid %s) does not verify with the issuer's keys (%s)", alg, quote(a.header.Kid), strings.Join(keyErrs, "; "))
	}
	return fmt.Errorf("the signature (alg %s, kid %s) does not verify with the issuer's key", alg, quote(a.header.Kid))
}

var errBadSignature = errors.New("signature mismatch")

func verifyRS256(k jwk, digest, sig []byte) error {
	n, err := base64.RawURLEncoding.DecodeString(k.N)
	if err != nil || len(n) == 0 {
		return errors.New("n is not base64url")
	}
	e, err := base64.RawURLEncoding.DecodeString(k.E)
	if err != nil || len(e) == 0 || len(e) > 4 {
		return errors.New("e is not a base64url integer of at most 4 bytes")
	}
	exp := new(big.Int).SetBytes(e)
	if exp.BitLen() > 31 || exp.Int64() < 3 || exp.Bit(0) == 0 {
		return errors.New("e is not an odd integer from 3 to 2^31-1")
	}
	pub := &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: int(exp.Int64())}
	if pub.N.BitLen() < minRSABits {
		return fmt.Errorf("the RSA key has %d bits, fewer than %d", pub.N.BitLen(), minRSABits)
	}
	if err := rsa.VerifyPKCS1v15(pub, crypto.SHA256, digest, sig); err != nil {
		return errBadSignature
	}
	return nil
}

func verifyES256(k jwk, digest, sig []byte) error {
	x, errX := base64.RawURLEncoding.DecodeString(k.X)
	y, errY := base64.RawURLEncoding.DecodeString(k.Y)
	if errX != nil || errY != nil || len(x) != p256CoordinateBytes || len(y) != p256CoordinateBytes {
		return errors.New("x and y are not base64url P-256 coordinates of 32 bytes")
	}
	point := append(append([]byte{4}, x...), y...)
	pub, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), point)
	if err != nil {
		return fmt.Errorf("not a P-256 public key: %w", err)
	}
	if len(sig) != es256SignatureBytes {
		return errBadSignature
	}
	r := new(big.Int).SetBytes(sig[:p256CoordinateBytes])
	s := new(big.Int).SetBytes(sig[p256CoordinateBytes:])
	if !ecdsa.Verify(pub, digest, r, s) {
		return errBadSignature
	}
	return nil
}

// issuerKeys fetches the issuer's keys as Entra does for a federated credential: the OpenID
// Connect discovery document at the issuer's /.well-known/openid-configuration, which must name
// the same issuer, then the JSON Web Key Set at its jwks_uri.
func issuerKeys(ctx context.Context, client *http.Client, issuer string) ([]jwk, error) {
	ctx, cancel := context.WithTimeout(ctx, issuerFetchTimeout)
	defer cancel()
	discovery := strings.TrimSuffix(issuer, "/") + "/.well-known/openid-configuration"
	var doc struct {
		Issuer  string `json:"issuer"`
		JWKSURI string `json:"jwks_uri"`
	}
	if err := getJSON(ctx, client, discovery, &doc); err != nil {
		return nil, fmt.Errorf("the issuer's discovery document: %w", err)
	}
	if doc.Issuer != issuer {
		return nil, fmt.Errorf("the discovery document at %s names issuer %s, not %s", discovery, quote(doc.Issuer), quote(issuer))
	}
	u, err := url.Parse(doc.JWKSURI)
	if err != nil || u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("the discovery document at %s has jwks_uri %s, not an https URL", discovery, quote(doc.JWKSURI))
	}
	var set struct {
		Keys []jwk `json:"keys"`
	}
	if err := getJSON(ctx, client, doc.JWKSURI, &set); err != nil {
		return nil, fmt.Errorf("the issuer's JWKS: %w", err)
	}
	switch {
	case len(set.Keys) == 0:
		return nil, fmt.Errorf("the JWKS at %s has no keys", doc.JWKSURI)
	case len(set.Keys) > maxJWKSKeys:
		return nil, fmt.Errorf("the JWKS at %s has %d keys, more than %d", doc.JWKSURI, len(set.Keys), maxJWKSKeys)
	}
	return set.Keys, nil
}

func getJSON(ctx context.Context, client *http.Client, u string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, http.NoBody)
	if err != nil {
		return err
	}
	// A key set is served as application/jwk-set+json (the kube-apiserver's answers 406 to
	// a client accepting application/json only).
	req.Header.Set("Accept", "application/json, application/jwk-set+json")
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("GET %s: %w", u, err)
	}
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxIssuerDocBytes+1))
	if err != nil {
		return fmt.Errorf("GET %s: %w", u, err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", u, resp.Status)
	}
	if len(body) > maxIssuerDocBytes {
		return fmt.Errorf("GET %s: more than %d bytes", u, maxIssuerDocBytes)
	}
	if err := json.Unmarshal(body, v); err != nil {
		return fmt.Errorf("GET %s: not the JSON expected: %w", u, err)
	}
	return nil
}

// quote quotes s for an error description, cut to a bounded length.
func quote(s string) string {
	const maxRunes = 128
	if r := []rune(s); len(r) > maxRunes {
		return strconv.Quote(string(r[:maxRunes])) + "..."
	}
	return strconv.Quote(s)
}
