package tempcreds

import (
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
)

// Annotations of a source Secret that grant its use. A source is granted by the platform,
// never picked by a tenant: without these annotations it grants nothing.
const (
	// GrantNamespaces lists, comma-separated, the namespaces whose Credentials may use the
	// source.
	GrantNamespaces = "credgate.dev/allowed-namespaces"
	// GrantNamespaceSelector is a label selector (kubectl syntax: "team=ml,env in (dev,prod)")
	// of further namespaces that may use it.
	GrantNamespaceSelector = "credgate.dev/allowed-namespace-selector"
	// GrantRoleARNs lists, comma-separated, the role ARNs the source may assume: patterns in
	// which * matches any run of characters and ? any one.
	GrantRoleARNs = "credgate.dev/allowed-role-arns"
	// GrantSTSEndpoint is the STS endpoint the source's keys are sent to (an S3-compatible
	// server's); without it, AWS's own STS. A Credential's spec.aws.endpoint must equal it.
	GrantSTSEndpoint = "credgate.dev/sts-endpoint"
	// GrantExternalID is the external ID sent with every AssumeRole of the source, for roles
	// whose trust policy requires one; $(namespace) stands for the Credential's namespace. A
	// tenant never picks it: that is what makes it worth requiring.
	GrantExternalID = "credgate.dev/external-id"
	// GrantServiceAccounts lists, comma-separated, the GCP service accounts the source's key
	// may impersonate (it needs roles/iam.serviceAccountTokenCreator on each): patterns as for
	// role ARNs.
	GrantServiceAccounts = "credgate.dev/allowed-service-accounts"
	// GrantIAMCredentialsEndpoint is where the source mints GCP access tokens: the IAM Service
	// Account Credentials API's base URL (https only); without it, Google's.
	GrantIAMCredentialsEndpoint = "credgate.dev/iamcredentials-endpoint"
	// GrantMaxTokenLifetime caps the lifetime of the GCP access tokens minted with the source
	// (a duration: "1h", "20m"), whatever a Credential's lifetimeSeconds asks: Google cannot
	// revoke an access token, so its lifetime is how long a leaked one works.
	GrantMaxTokenLifetime = "credgate.dev/max-token-lifetime"
)

// maxGrantPatterns bounds the patterns of one annotation: a grant is read on every refresh.
const maxGrantPatterns = 256

// ErrNotGranted marks a Credential that names a source it may not use.
var ErrNotGranted = errors.New("source not granted")

// Grant is what a source Secret allows: which namespaces may use it, which roles it may
// assume, and where its keys may be sent.
type Grant struct {
	Namespaces []string
	// Selector selects further namespaces by label; nil selects none.
	Selector labels.Selector
	RoleARNs []string
	// Endpoint is the STS endpoint, normalised; empty for AWS's STS.
	Endpoint string
	// ExternalID is the external ID template ($(namespace) expanded by ExternalIDFor); empty
	// for none.
	ExternalID string
	// ServiceAccounts are the patterns of the GCP service accounts the source may impersonate.
	ServiceAccounts []string
	// IAMEndpoint is the IAM Credentials endpoint, normalised; empty for Google's.
	IAMEndpoint string
	// MaxLifetime caps the GCP access tokens' lifetime; 0 for no cap.
	MaxLifetime time.Duration
}

// ParseGrant reads the grant annotations of source. A malformed annotation is an error (the
// source then grants nothing); missing ones grant nothing.
func ParseGrant(source *corev1.Secret) (Grant, error) {
	a := source.Annotations
	g := Grant{Namespaces: splitList(a[GrantNamespaces]), RoleARNs: splitList(a[GrantRoleARNs]), ServiceAccounts: splitList(a[GrantServiceAccounts])}
	if len(g.Namespaces) > maxGrantPatterns || len(g.RoleARNs) > maxGrantPatterns || len(g.ServiceAccounts) > maxGrantPatterns {
		return Grant{}, fmt.Errorf("annotations %s, %s and %s list at most %d entries each", GrantNamespaces, GrantRoleARNs, GrantServiceAccounts, maxGrantPatterns)
	}
	if e := strings.TrimSpace(a[GrantIAMCredentialsEndpoint]); e != "" {
		n, err := NormalizeEndpoint(e)
		if err != nil || !strings.HasPrefix(n, "https://") {
			return Grant{}, fmt.Errorf("annotation %s: want https://host[:port][/path]", GrantIAMCredentialsEndpoint)
		}
		g.IAMEndpoint = n
	}
	if v := strings.TrimSpace(a[GrantMaxTokenLifetime]); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < time.Second {
			return Grant{}, fmt.Errorf("annotation %s: want a duration of at least 1s, such as 1h", GrantMaxTokenLifetime)
		}
		g.MaxLifetime = d
	}
	if s := strings.TrimSpace(a[GrantNamespaceSelector]); s != "" {
		sel, err := labels.Parse(s)
		if err != nil {
			return Grant{}, fmt.Errorf("annotation %s: %w", GrantNamespaceSelector, err)
		}
		if sel.Empty() {
			return Grant{}, fmt.Errorf("annotation %s selects every namespace: list them, or select by a label", GrantNamespaceSelector)
		}
		g.Selector = sel
	}
	if e := strings.TrimSpace(a[GrantSTSEndpoint]); e != "" {
		n, err := NormalizeEndpoint(e)
		if err != nil {
			return Grant{}, fmt.Errorf("annotation %s: %w", GrantSTSEndpoint, err)
		}
		g.Endpoint = n
	}
	g.ExternalID = strings.TrimSpace(a[GrantExternalID])
	if n := len(g.ExternalIDFor(strings.Repeat("n", 63))); g.ExternalID != "" && (n < 2 || n > 1224 || !validExternalID.MatchString(g.ExternalIDFor("n"))) {
		return Grant{}, fmt.Errorf("annotation %s: want 2 to 1224 of letters, digits and +=,.@:/- (and $(namespace))", GrantExternalID)
	}
	return g, nil
}

// validExternalID is STS's pattern of an external ID.
var validExternalID = regexp.MustCompile(`^[\w+=,.@:/-]+$`)

// ExternalIDFor is the external ID the source sends for a Credential of namespace.
func (g Grant) ExternalIDFor(namespace string) string {
	return strings.ReplaceAll(g.ExternalID, "$(namespace)", namespace)
}

// Check reports why a Credential in namespace (labelled nsLabels) may not assume roleARN at
// endpoint, with externalID if it names one, with the source, or nil if it may. The error wraps ErrNotGranted and names
// neither the other namespaces nor the roles the source grants: its message reaches the
// tenant's Credential status.
func (g Grant) Check(namespace string, nsLabels map[string]string, roleARN, endpoint, externalID string) error {
	problems := g.namespaceProblems(namespace, nsLabels)
	if !slices.ContainsFunc(g.RoleARNs, func(p string) bool { return Glob(p, roleARN) }) {
		problems = append(problems, "role "+roleARN+" is not among the roles it grants")
	}
	if n, err := NormalizeEndpoint(endpoint); err != nil || n != g.Endpoint {
		if g.Endpoint == "" {
			problems = append(problems, "its keys are for AWS's STS only: remove spec.aws.endpoint")
		} else {
			problems = append(problems, "spec.aws.endpoint is not the STS endpoint its keys are for")
		}
	}
	if externalID != "" && externalID != g.ExternalIDFor(namespace) {
		problems = append(problems, "spec.aws.externalID is not the one its grant sets: leave it out (the grant's "+GrantExternalID+" decides)")
	}
	if len(problems) == 0 {
		return nil
	}
	return fmt.Errorf("%w: %s", ErrNotGranted, strings.Join(problems, "; "))
}

// CheckGCP reports why a Credential in namespace (labelled nsLabels) may not impersonate
// serviceAccount with the source, or nil if it may. Like Check, its error wraps ErrNotGranted
// and names neither the other namespaces nor the service accounts the source grants.
func (g Grant) CheckGCP(namespace string, nsLabels map[string]string, serviceAccount string) error {
	problems := g.namespaceProblems(namespace, nsLabels)
	if serviceAccount == "" || !slices.ContainsFunc(g.ServiceAccounts, func(p string) bool { return Glob(p, serviceAccount) }) {
		problems = append(problems, "service account "+serviceAccount+" is not among the service accounts it grants")
	}
	if len(problems) == 0 {
		return nil
	}
	return fmt.Errorf("%w: %s", ErrNotGranted, strings.Join(problems, "; "))
}

func (g Grant) namespaceProblems(namespace string, nsLabels map[string]string) []string {
	if slices.Contains(g.Namespaces, namespace) || (g.Selector != nil && g.Selector.Matches(labels.Set(nsLabels))) {
		return nil
	}
	return []string{"namespace " + namespace + " is not granted"}
}

// NormalizeEndpoint returns endpoint as compared with a grant: scheme and host in lower
// case, no trailing slash; "" stays "".
func NormalizeEndpoint(endpoint string) (string, error) {
	if endpoint == "" {
		return "", nil
	}
	u, err := url.Parse(endpoint)
	if err != nil {
		return "", fmt.Errorf("parse endpoint: %w", err)
	}
	if u.Scheme != "https" && u.Scheme != "http" || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return "", fmt.Errorf("endpoint %q: want http(s)://host[:port][/path]", endpoint)
	}
	return strings.ToLower(u.Scheme) + "://" + strings.ToLower(u.Host) + strings.TrimRight(u.EscapedPath(), "/"), nil
}

// Glob reports whether s matches pattern, where * matches any run of characters (slashes and
// colons included) and ? any single byte. It runs in O(len(pattern)·len(s)) at worst.
func Glob(pattern, s string) bool {
	p, i := 0, 0
	star, mark := -1, 0
	for i < len(s) {
		switch {
		case p < len(pattern) && (pattern[p] == '?' || pattern[p] == s[i]):
			p++
			i++
		case p < len(pattern) && pattern[p] == '*':
			star, mark = p, i
			p++
		case star >= 0:
			p = star + 1
			mark++
			i = mark
		default:
			return false
		}
	}
	for p < len(pattern) && pattern[p] == '*' {
		p++
	}
	return p == len(pattern)
}

func splitList(s string) []string {
	var out []string
	for f := range strings.SplitSeq(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}
