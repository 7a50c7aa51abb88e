package webhook

// Log keys. Values are names, UIDs and counts: never an object body or a secret value.
const (
	keyUID         = "uid"
	keyKind        = "kind"
	keyNamespace   = "namespace"
	keyName        = "name"
	keyOperation   = "operation"
	keyCredentials = "credentials"
	keyRules       = "rules"
	keyPath        = "path"
	keyRevision    = "policyRevision"
	keyDryRun      = "dryRun"
)
