// Package v1alpha1 holds the credgate.dev/v1alpha1 API: the Credential type that says what to
// inject into a pod and what the credential grants. Credentials never hold secret values; those
// stay in a Secret in the same namespace.
//
// +kubebuilder:object:generate=true
// +groupName=credgate.dev
package v1alpha1
