package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// PolicyAction is what a violation of a rule does to the admission.
// +kubebuilder:validation:Enum=deny;warn;audit
type PolicyAction string

// Policy actions.
const (
	// PolicyDeny refuses the admission.
	PolicyDeny PolicyAction = "deny"
	// PolicyWarn admits it and returns the message to the client as a warning.
	PolicyWarn PolicyAction = "warn"
	// PolicyAudit admits it silently; the violation is recorded.
	PolicyAudit PolicyAction = "audit"
)

// The condition of a CredentialPolicy's status, and its reasons.
const (
	// PolicyReady is True when the revision credgate serves holds the policy's current
	// generation.
	PolicyReady = "Ready"

	// ReasonServing: the current generation is served.
	ReasonServing = "Serving"
	// ReasonCompileError: the Rego does not parse or compile, or declares a package other
	// than credgate.admission; the message has the line. The last generation that compiled,
	// if any, keeps being served.
	ReasonCompileError = "CompileError"
	// ReasonEvaluationError: the policy compiles but fails to evaluate on the canary inputs.
	ReasonEvaluationError = "EvaluationError"
	// ReasonInvalidSpec: a field other than the Rego is wrong (the namespace selector).
	ReasonInvalidSpec = "InvalidSpec"
	// ReasonRevisionFailed: the revision that would serve it fails for a reason no single
	// policy is blamed for (a policy file of --policy-dir, say); the previous revision serves.
	ReasonRevisionFailed = "RevisionFailed"
)

// CredentialPolicy is a Rego policy credgate serves beside its built-in rules and the files of
// --policy-dir: one Rego v1 module of package credgate.admission adding to the deny and warn
// sets, with the enforcement of its rules and the namespaces it applies to. credgate compiles
// it, tries it on sample inputs and serves it without a restart; status says whether it is
// served, or why not (with the line). A policy that stops compiling keeps its last good
// generation served.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Cluster,shortName=credpol,categories=credgate
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].reason`
// +kubebuilder:printcolumn:name="Rules",type=string,JSONPath=`.status.rules`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
// +kubebuilder:printcolumn:name="Message",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].message`,priority=1
type CredentialPolicy struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   CredentialPolicySpec   `json:"spec"`
	Status CredentialPolicyStatus `json:"status,omitempty"`
}

// CredentialPolicySpec is the policy.
type CredentialPolicySpec struct {
	// Rego is one Rego v1 module declaring package credgate.admission, with rules
	// `deny contains v if {...}` and `warn contains v if {...}` where v is
	// {"rule": "<id>", "credential": "<name>", "message": "<text>"}. It may import
	// data.credgate.lib and the data of --policy-dir.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=262144
	Rego string `json:"rego"`

	// Enforcement maps the rule ids of this policy's violations to deny, warn or audit. It
	// applies to this policy's violations only, and wins over credgate's --enforce; a rule it
	// does not list takes the action --enforce gives its id, else that of the set it was
	// found in (deny for deny, warn for warn).
	// +optional
	// +kubebuilder:validation:MaxProperties=64
	Enforcement map[string]PolicyAction `json:"enforcement,omitempty"`

	// NamespaceSelector restricts the policy to pods in the namespaces whose labels it
	// selects; unset, the policy applies in every namespace.
	// +optional
	NamespaceSelector *metav1.LabelSelector `json:"namespaceSelector,omitempty"`
}

// CredentialPolicyStatus says whether the policy is served.
type CredentialPolicyStatus struct {
	// ObservedGeneration is the generation the conditions describe.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// Conditions: Ready.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// Rules lists the rule ids the served generation declares, comma-separated.
	// +optional
	Rules string `json:"rules,omitempty"`

	// Revision is the policy revision (a content hash of every policy served) that serves the
	// policy.
	// +optional
	Revision string `json:"revision,omitempty"`

	// Served is the generation served while the current one is not (it does not compile or
	// evaluate), as it was: a replica that starts serves it until the current one passes.
	// credgate writes it, and clears it once the current generation is served.
	// +optional
	Served *ServedPolicy `json:"served,omitempty"`
}

// ServedPolicy is a generation of a CredentialPolicy's spec that credgate served.
type ServedPolicy struct {
	// Generation is the object's generation this spec was.
	Generation int64 `json:"generation"`
	// +kubebuilder:validation:MaxLength=262144
	Rego string `json:"rego"`
	// +optional
	// +kubebuilder:validation:MaxProperties=64
	Enforcement map[string]PolicyAction `json:"enforcement,omitempty"`
	// +optional
	NamespaceSelector *metav1.LabelSelector `json:"namespaceSelector,omitempty"`
}

// CredentialPolicyList is a list of CredentialPolicy.
//
// +kubebuilder:object:root=true
type CredentialPolicyList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []CredentialPolicy `json:"items"`
}
