package webhook

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/go-logr/logr"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/credgate/credgate/api/v1alpha1"
	"github.com/credgate/credgate/credential"
	"github.com/credgate/credgate/policies"
	"github.com/credgate/credgate/review"
)

// TestInjectedBytesAreBounded: Credentials each valid on its own (32 with seven 32 KiB
// literals) requested by a small pod of 18 containers would make a patch of over 100 MiB; the
// admission is refused before any patch is made (limit-exceeded), and nothing is kept.
// Requested by one container, the same Credentials stay under the bound but over what a kept
// decision may weigh: admitted, and decided afresh each time.
func TestInjectedBytesAreBounded(t *testing.T) {
	big := strings.Repeat("x", 32<<10)
	var creds []*v1alpha1.Credential
	labels := map[string]any{}
	for i := range 32 {
		var env []v1alpha1.EnvVar
		for j := range 7 {
			env = append(env, v1alpha1.EnvVar{Name: fmt.Sprintf("C%d_V%d", i, j), Value: &big})
		}
		name := fmt.Sprintf("c%d", i)
		creds = append(creds, &v1alpha1.Credential{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: testNamespace, UID: types.UID("u" + name), ResourceVersion: "1", Generation: 1},
			Spec:       v1alpha1.CredentialSpec{Type: v1alpha1.TypeGeneric, Env: env},
		})
		labels["credentials.credgate.dev/"+name] = "true"
	}
	rev, err := builtinPolicies()
	if err != nil {
		t.Fatal(err)
	}
	decisions := review.NewDecisions(0)
	m := newHandler(t, "Pod", &review.Reviewer{Store: credential.NewStaticStore(testNamespace, creds...),
		Policy: policies.NewEngine(rev), Values: &policies.ValueCache{}})
	m.Decisions = decisions
	h := newWebhook(t, m, logr.Discard())
	pod := func(containers int, credentials map[string]any) []byte {
		var cs []map[string]any
		for i := range containers {
			cs = append(cs, map[string]any{"name": fmt.Sprintf("c%d", i), "image": "busybox"})
		}
		obj, err := json.Marshal(map[string]any{"apiVersion": "v1", "kind": "Pod",
			"metadata": map[string]any{"name": "p", "namespace": testNamespace, "labels": credentials},
			"spec":     map[string]any{"containers": cs}})
		if err != nil {
			t.Fatal(err)
		}
		return withObject(t, readFixture(t, "pod-training.json"), obj)
	}

	resp, raw := serve(t, h, pod(18, labels))
	if resp.Allowed || !strings.Contains(resp.Result.Message, "[limit-exceeded]") || !strings.Contains(resp.Result.Message, "bytes") {
		t.Errorf("18 containers given 32 × 7 × 32 KiB: allowed=%t %.200s", resp.Allowed, resp.Result.Message)
	}
	if len(raw) > 64<<10 {
		t.Errorf("the refusal is %d bytes", len(raw))
	}

	few := map[string]any{}
	for i := range 4 {
		few[fmt.Sprintf("credentials.credgate.dev/c%d", i)] = "true"
	}
	for range 2 {
		resp, _ := serve(t, h, pod(1, few))
		if !resp.Allowed || len(resp.Patch) < 4*7*(32<<10) {
			t.Fatalf("one container given 4 × 7 × 32 KiB: allowed=%t, patch %d bytes: %.200s", resp.Allowed, len(resp.Patch), resp.Result.Message)
		}
	}
	if decisions.Len() != 0 || decisions.Stats().Hits != 0 {
		t.Errorf("a decision with a patch of %d KiB was kept (%d kept, %d reused): at most %d KiB are", 4*7*32, decisions.Len(), decisions.Stats().Hits, review.MaxReusedBytes>>10)
	}
}
