package policies

import (
	"fmt"
	"os"
	"slices"
	"strings"

	"sigs.k8s.io/yaml"
)

// Action is what a violation of a rule does to the request.
type Action string

// Actions.
const (
	// ActionDeny refuses the request.
	ActionDeny Action = "deny"
	// ActionWarn admits it and returns the message to the client as a warning.
	ActionWarn Action = "warn"
	// ActionAudit admits it silently; the violation is recorded.
	ActionAudit Action = "audit"
)

// Enforcement maps rule ids to actions. A rule it does not list takes the action of the set
// it was found in: deny for deny, warn for warn — so by default every built-in rule denies
// except static-credentials, which warns.
type Enforcement map[string]Action

// EnforcementFile is the YAML of --enforcement-config:
//
//	rules:
//	  static-credentials: deny
//	  conflicting-env: audit
type EnforcementFile struct {
	Rules map[string]Action `json:"rules"`
}

// ParseEnforcement reads "rule=action" pairs (the --enforce flag) over the file at path (if
// not empty); the flag wins over the file.
func ParseEnforcement(path string, pairs []string) (Enforcement, error) {
	e := Enforcement{}
	if path != "" {
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("read enforcement config: %w", err)
		}
		var f EnforcementFile
		if err := yaml.UnmarshalStrict(b, &f); err != nil {
			return nil, fmt.Errorf("parse enforcement config %s: %w", path, err)
		}
		for rule, a := range f.Rules {
			e[rule] = a
		}
	}
	for _, p := range pairs {
		rule, a, ok := strings.Cut(p, "=")
		if !ok || rule == "" {
			return nil, fmt.Errorf("enforcement %q: want rule=action, e.g. static-credentials=deny", p)
		}
		e[rule] = Action(a)
	}
	var bad []string
	for rule, a := range e {
		if a != ActionDeny && a != ActionWarn && a != ActionAudit {
			bad = append(bad, fmt.Sprintf("%s=%s", rule, a))
		}
	}
	if len(bad) > 0 {
		slices.Sort(bad)
		return nil, fmt.Errorf("enforcement %s: the action must be deny, warn or audit", strings.Join(bad, ", "))
	}
	return e, nil
}

// Classified is a Result split by enforcement action.
type Classified struct {
	Deny, Warn, Audit []Violation
}

// Classify splits res by the action each violation's rule has: the one its policy object
// sets (Violation.Enforce), else the one e sets, else that of the set it was found in.
func (e Enforcement) Classify(res Result) Classified {
	var c Classified
	put := func(v Violation, def Action) {
		a, ok := v.Enforce, v.Enforce != ""
		if !ok {
			a, ok = e[v.Rule]
		}
		if !ok {
			a = def
		}
		switch a {
		case ActionWarn:
			c.Warn = append(c.Warn, v)
		case ActionAudit:
			c.Audit = append(c.Audit, v)
		default:
			c.Deny = append(c.Deny, v)
		}
	}
	for _, v := range res.Deny {
		put(v, ActionDeny)
	}
	for _, v := range res.Warn {
		put(v, ActionWarn)
	}
	return c
}
