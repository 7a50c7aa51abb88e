package webhook

import (
	"context"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/credgate/credgate/api/v1alpha1"
	"github.com/credgate/credgate/credential"
)

// TestNullListsAreFilled: a list or map credgate appends to that the submitted object has
// as an explicit null ("env": null, "annotations": null, a Job template's "labels": null,
// "volumes": null) comes out of jsonpatch.CreatePatch as a "replace" (the JSON type changes
// from null). mutate.Patch once dropped every replace as a re-encoding artefact, admitting the
// pod without its credentials, or with mounts of a volume it does not have.
func TestNullListsAreFilled(t *testing.T) {
	spec := func(req map[string]any) map[string]any {
		return req["object"].(map[string]any)["spec"].(map[string]any)
	}
	tests := []struct {
		name    string
		kind    string
		fixture string
		edit    func(req map[string]any)
	}{
		{"container env null", "Pod", "pod-labelled.json", func(req map[string]any) {
			spec(req)["containers"].([]any)[0].(map[string]any)["env"] = nil
		}},
		{"pod annotations null", "Pod", "pod-labelled.json", func(req map[string]any) {
			req["object"].(map[string]any)["metadata"].(map[string]any)["annotations"] = nil
		}},
		{"pod volumes null", "Pod", "pod-future-fields.json", func(req map[string]any) { spec(req)["volumes"] = nil }},
		{"job template labels null", "Job", "job-labelled.json", func(req map[string]any) {
			spec(req)["template"].(map[string]any)["metadata"].(map[string]any)["labels"] = nil
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body := editRequest(t, readFixture(t, tt.fixture), tt.edit)
			resp, _ := serve(t, newWebhook(t, newHandler(t, tt.kind, newReviewer(t, testStore())), newLogger(&logBuffer{})), body)
			if !resp.Allowed || len(resp.Patch) == 0 {
				t.Fatalf("not admitted with a patch: %s", resp.Result.Message)
			}
			patched := checkPatch(t, requestOf(t, body).Object.Raw, resp)
			checkSettled(t, tt.kind, testNamespace, patched)
		})
	}
}

// TestInvalidCredentialLabelIsRefused: mutating webhooks see objects before validation,
// so a label key that is not a valid label ("credentials.credgate.dev/..", or with an empty
// name) reaches credgate. Taken as a credential name, it would miss the cache and fail the
// direct GET in client-go before any request ("resource name may not be empty"): a 500 for a
// user's typo. It is refused (403) with a message that names the label; the store behind it
// would fail any lookup, so a lookup would show as a 500.
func TestInvalidCredentialLabelIsRefused(t *testing.T) {
	scheme, err := testScheme()
	if err != nil {
		t.Fatal(err)
	}
	mapper := meta.NewDefaultRESTMapper(nil)
	mapper.Add(v1alpha1.GroupVersion.WithKind("Credential"), meta.RESTScopeNamespace)
	live, err := client.New(&rest.Config{Host: "https://127.0.0.1:1"}, client.Options{Scheme: scheme, Mapper: mapper})
	if err != nil {
		t.Fatal(err)
	}
	store := &credential.ClientStore{Cache: emptyCache{}, Live: live}
	for _, tt := range []struct{ name, credential string }{
		{"empty name", ""},
		{"dot-dot", ".."},
		{"two slashes", "a/b"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			body := editRequest(t, readFixture(t, "pod-labelled.json"), func(req map[string]any) {
				req["object"].(map[string]any)["metadata"].(map[string]any)["labels"] = map[string]any{
					"credentials.credgate.dev/" + tt.credential: "true",
				}
			})
			var logs logBuffer
			resp, _ := serve(t, newWebhook(t, newHandler(t, "Pod", newReviewer(t, store)), newLogger(&logs)), body)
			want := outcome{UID: requestOf(t, body).UID, Code: 403}
			if diff := cmp.Diff(want, outcomeOf(resp)); diff != "" {
				t.Errorf("response (-want +got):\n%s\nmessage: %s\nlog:\n%s", diff, resp.Result.Message, logs.String())
			}
			if label := "credentials.credgate.dev/" + tt.credential; !strings.Contains(resp.Result.Message, label) {
				t.Errorf("message %q does not name the label %s", resp.Result.Message, label)
			}
		})
	}
}

// emptyCache is an informer cache that holds no Credential.
type emptyCache struct{}

func (emptyCache) Get(_ context.Context, key client.ObjectKey, _ client.Object, _ ...client.GetOption) error {
	return apierrors.NewNotFound(v1alpha1.GroupVersion.WithResource("credentials").GroupResource(), key.Name)
}

func (emptyCache) List(context.Context, client.ObjectList, ...client.ListOption) error { return nil }
