package webhook

import (
	"reflect"

	jsonv2 "github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	kjson "sigs.k8s.io/json"
)

// decodeJSON decodes data, JSON the API server wrote, into v: an AdmissionReview or an object of
// a webhook's kind.
//
// A Go type is decoded by the v2 decoder of encoding/json (github.com/go-json-experiment/json,
// the standard library's encoding/json/v2 to come), in one pass with no reflection per field
// name lookup and half the allocations of the v1 decoder: about 2.4 times faster on the Job
// controller's training pod (BenchmarkDecode). It reads what the API server's own serializer
// reads — field names case-sensitively, unknown fields ignored, numbers into the types' own
// fields, the types' UnmarshalJSON methods (quantities, times, int-or-string) — and refuses two
// things the v1 decoder lets by: a member name repeated in one object (which the API server,
// writing the object itself, never sends; v1 keeps the last, so that what a policy reads and
// what is mutated could differ) and strings that are not UTF-8. TestDecodeJSON holds the two
// decoders to the same result on every fixture, FuzzDecodeJSON on whatever the fuzzer finds.
//
// A custom resource's object (unstructured) keeps the v1 decoder of the API server's
// unstructured path, which keeps integers int64, as the API server does.
func decodeJSON(data []byte, v any) error {
	if _, ok := v.(*unstructured.Unstructured); ok {
		return kjson.UnmarshalCaseSensitivePreserveInts(data, v)
	}
	return jsonv2.Unmarshal(data, v)
}

// decodeObject decodes data, the object of an admission request, into v, a new object of the
// webhook's kind, as decodeJSON does, but leaves zero every member of a type in unread: credgate
// reads and changes a pod's names, labels, annotations, owners, service account, volumes,
// image pull secrets, and its containers' names, variables and mounts, and the policies read
// the object's JSON itself (policies.Input), never the decoded object. Decoding what no one
// reads — container resources (quantities, each parsed by its own method, in maps), probes,
// security contexts, ports, affinity, tolerations, managed fields, status — was a sixth of the
// time of decoding the training pod and a third of its allocations (BenchmarkDecode).
//
// A skipped member is still read as JSON: it is refused, as the whole object is, for a member
// name repeated in one object or a string that is not UTF-8; only its type's own checks (a
// quantity's syntax, a number where a string belongs) are not made — the API server made them
// when it decoded the object, before calling any webhook. TestDecodeObject holds decodeObject
// to decodeJSON with the unread members cleared, on every fixture and kind; every other test
// of the webhook (the patches of the golden files above all) runs on what it decodes.
func decodeObject(data []byte, v any) error {
	if _, ok := v.(*unstructured.Unstructured); ok {
		return decodeJSON(data, v)
	}
	return jsonv2.Unmarshal(data, v, skipUnread)
}

// unread are the types whose values in an admitted object decodeObject leaves zero. A
// pointer's type keeps the pointer nil; a list's, the list.
var unread = []skipped{
	skip[corev1.ResourceRequirements](),
	skip[*corev1.ResourceRequirements](), // a pod's own resources
	skip[[]corev1.ContainerPort](),
	skip[[]corev1.ContainerResizePolicy](),
	skip[*corev1.Probe](),
	skip[*corev1.Lifecycle](),
	skip[*corev1.SecurityContext](),
	skip[*corev1.PodSecurityContext](),
	skip[*corev1.Affinity](),
	skip[[]corev1.Toleration](),
	skip[[]corev1.TopologySpreadConstraint](),
	skip[[]metav1.ManagedFieldsEntry](),
	skip[corev1.PodStatus](),
}

// skipped is a type of unread, with the unmarshaler that skips its values.
type skipped struct {
	t reflect.Type
	u *jsonv2.Unmarshalers
}

func skip[T any]() skipped {
	return skipped{t: reflect.TypeFor[T](), u: jsonv2.UnmarshalFromFunc(func(dec *jsontext.Decoder, _ *T) error {
		return dec.SkipValue()
	})}
}

var skipUnread = func() jsonv2.Options {
	us := make([]*jsonv2.Unmarshalers, len(unread))
	for i, s := range unread {
		us[i] = s.u
	}
	return jsonv2.WithUnmarshalers(jsonv2.JoinUnmarshalers(us...))
}()
