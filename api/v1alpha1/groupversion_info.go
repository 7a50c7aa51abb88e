package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// GroupVersion is the API group and version of the Credential API.
var GroupVersion = schema.GroupVersion{Group: "credgate.dev", Version: "v1alpha1"}

// AddToScheme registers Credential, CredentialPolicy and their lists with s. It is called explicitly by whoever
// builds a scheme; nothing registers itself at init time.
func AddToScheme(s *runtime.Scheme) error {
	s.AddKnownTypes(GroupVersion, &Credential{}, &CredentialList{}, &CredentialPolicy{}, &CredentialPolicyList{})
	metav1.AddToGroupVersion(s, GroupVersion)
	return nil
}
