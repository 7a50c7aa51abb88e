package workload

import (
	"fmt"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation"
)

// Names of the labels and annotations credgate reads and writes (README.md, docs/credentials.md).
const (
	// LabelPrefix starts every credential label: credentials.credgate.dev/<credential-name>.
	LabelPrefix = "credentials.credgate.dev/"
	// ContainersAnnotation limits injection to the named containers.
	ContainersAnnotation = "credgate.dev/containers"
	// InjectedAnnotation records what credgate injected: names and a content hash.
	InjectedAnnotation = "credgate.dev/injected"
)

// Requested returns the sorted names of the credentials that labels request ("true") and a
// problem for every credential label whose value is neither "true" nor "false" or whose key
// does not end in a name a Credential can have. Mutating webhooks see objects before the API
// server validates them, so a malformed label must be refused here, with its key, rather than
// reach a store lookup.
func Requested(labels map[string]string) (names []string, problems []string) {
	for k, v := range labels {
		name, ok := strings.CutPrefix(k, LabelPrefix)
		if !ok {
			continue
		}
		if errs := credentialNameErrors(name); len(errs) > 0 {
			problems = append(problems, fmt.Sprintf("label %s does not name a credential: %s", k, strings.Join(errs, "; ")))
			continue
		}
		switch v {
		case "true":
			names = append(names, name)
		case "false":
		default:
			problems = append(problems, fmt.Sprintf("label %s has value %q: use \"true\" to request the credential or \"false\" to opt out", k, v))
		}
	}
	slices.Sort(names)
	slices.Sort(problems)
	return names, problems
}

// credentialNameErrors says why name cannot be a Credential's name in a label key; none when
// it can.
func credentialNameErrors(name string) []string {
	errs := validation.IsDNS1123Subdomain(name)
	if len(errs) == 0 && len(name) > validation.LabelValueMaxLength {
		errs = []string{fmt.Sprintf("must be no more than %d characters", validation.LabelValueMaxLength)}
	}
	return errs
}

// IsCredentialName reports whether name can be the name of a Credential a pod requests.
func IsCredentialName(name string) bool { return len(credentialNameErrors(name)) == 0 }

// CopyCredentialLabels copies the credential labels of from into *to, keeping any value *to
// already has: a pod template's own label ("false" to opt out) wins over its Job's.
func CopyCredentialLabels(from map[string]string, to *map[string]string) {
	for k, v := range from {
		if !strings.HasPrefix(k, LabelPrefix) {
			continue
		}
		if _, ok := (*to)[k]; ok {
			continue
		}
		if *to == nil {
			*to = make(map[string]string, 1)
		}
		(*to)[k] = v
	}
}
