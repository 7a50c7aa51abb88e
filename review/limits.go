package review

import (
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/credgate/credgate/credential"
	"github.com/credgate/credgate/workload"
)

// Limits on what one object may cost: checked before any lookup, so that no request costs
// far more than it weighs. docs/security.md lists them.
const (
	// MaxCredentialLabels is how many credentials.credgate.dev/ labels a pod may carry.
	MaxCredentialLabels = 32
	// MaxContainers is how many containers (init, regular and ephemeral together) a pod that
	// requests credentials may have.
	MaxContainers = 64
	// MaxMessageBytes is the longest violation message kept: longer ones, a user policy's
	// included, are cut there.
	MaxMessageBytes = 1024
	// MaxViolations is how many violations of each kind a decision keeps; the rest are
	// counted in one more.
	MaxViolations = 32
	// MaxObjectBytes is the largest object reviewed: the API server's own limit on a request.
	MaxObjectBytes = 3 << 20
	// MaxInjections bounds what one pod may be given: variables and mounts, counted once per
	// target container. It bounds the patch (64 containers × 32 credentials × 64 variables
	// would otherwise make one of megabytes).
	MaxInjections = 4096
	// MaxInjectedBytes bounds the bytes one pod may be given — literal values, names, keys and
	// paths, counted once per target container — and so the patch: an object that size would
	// be over what the API server stores anyway (1.5 MiB by default).
	MaxInjectedBytes = 1 << 20
)

// RuleLimit refuses an object over one of the limits above.
const RuleLimit = "limit-exceeded"

// overLimits returns a violation if t asks for more than credgate reviews, else nil.
func overLimits(t workload.Template) *Violation {
	labels := 0
	for k := range t.Meta.Labels {
		if strings.HasPrefix(k, workload.LabelPrefix) {
			labels++
		}
	}
	if labels > MaxCredentialLabels {
		return &Violation{Rule: RuleLimit, Message: fmt.Sprintf(
			"the pod carries %d %s labels; at most %d are reviewed: request fewer credentials", labels, workload.LabelPrefix, MaxCredentialLabels)}
	}
	if labels == 0 {
		return nil
	}
	if n := len(t.Spec.InitContainers) + len(t.Spec.Containers) + len(t.Spec.EphemeralContainers); n > MaxContainers {
		return &Violation{Rule: RuleLimit, Message: fmt.Sprintf(
			"the pod has %d containers; credgate injects into pods of at most %d", n, MaxContainers)}
	}
	return nil
}

// overInjections returns a violation if injecting creds into targets containers would add
// more than MaxInjections variables and mounts, or more than MaxInjectedBytes, else nil.
func overInjections(creds []credential.Resolved, targets int) *Violation {
	per, bytes := 0, 0
	for i := range creds {
		c := &creds[i]
		per += len(c.Env)
		for _, e := range c.Env {
			bytes += len(e.Name) + len(e.Value) + len(e.Key) + len(c.SecretName)
		}
		if c.Files != nil {
			per++
			bytes += len(c.Files.VolumeName) + len(c.Files.MountPath)
		}
	}
	if n := per * targets; n > MaxInjections {
		return &Violation{Rule: RuleLimit, Message: fmt.Sprintf(
			"injecting these credentials would add %d variables and mounts to the pod's containers; at most %d are injected: "+
				"request fewer credentials, or name the containers that need them (credgate.dev/containers)", n, MaxInjections)}
	}
	if n := bytes * targets; n > MaxInjectedBytes {
		return &Violation{Rule: RuleLimit, Message: fmt.Sprintf(
			"injecting these credentials would add %d bytes of variables and mounts to the pod's containers; at most %d are injected: "+
				"request fewer credentials, or name the containers that need them (credgate.dev/containers)", n, MaxInjectedBytes)}
	}
	return nil
}

// bound keeps d's messages and violations within MaxMessageBytes and MaxViolations.
func bound(d *Decision) {
	for _, vs := range []*[]Violation{&d.Violations, &d.Warned, &d.Audited} {
		if len(*vs) > MaxViolations {
			more := len(*vs) - MaxViolations + 1
			*vs = append((*vs)[:MaxViolations-1], Violation{Rule: (*vs)[MaxViolations-1].Rule,
				Message: fmt.Sprintf("and %d more violations (not shown)", more)})
		}
		for i := range *vs {
			(*vs)[i].Message = truncate((*vs)[i].Message)
		}
	}
	d.Warnings = boundWarnings(d.Warnings)
}

// truncate cuts s to at most MaxMessageBytes, on a rune boundary, marking the cut.
func truncate(s string) string {
	if len(s) <= MaxMessageBytes {
		return s
	}
	const mark = "… (truncated)"
	cut := MaxMessageBytes - len(mark)
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + mark
}

// boundWarnings keeps warnings within MaxViolations and MaxMessageBytes.
func boundWarnings(ws []string) []string {
	if len(ws) > MaxViolations {
		more := len(ws) - MaxViolations + 1
		ws = append(ws[:MaxViolations-1], fmt.Sprintf("and %d more warnings (not shown)", more))
	}
	for i := range ws {
		ws[i] = truncate(ws[i])
	}
	return ws
}
