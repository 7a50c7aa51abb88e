//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/credgate/credgate/api/v1alpha1"
	"github.com/credgate/credgate/charts"
	"github.com/credgate/credgate/manifests"
)

// refusingPolicy is a CredentialPolicy refusing every pod that requests credentials, in the
// namespaces labelled e2e-policy=<selector> only: the other tests run beside it.
func refusingPolicy(name, selector, rule string) *v1alpha1.CredentialPolicy {
	return &v1alpha1.CredentialPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: v1alpha1.CredentialPolicySpec{
			Rego: fmt.Sprintf(`package credgate.admission

deny contains {"rule": %q, "message": "the e2e policy refuses credentials here"} if {
	count(input.credentials) > 0
}
`, rule),
			NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"e2e-policy": selector}},
		},
	}
}

// policyNamespace creates a namespace labelled e2e-policy=<its name> with a Credential wandb.
func policyNamespace(t *testing.T) string {
	t.Helper()
	ns := namespace(t)
	var obj corev1.Namespace
	if err := c.Client.Get(t.Context(), client.ObjectKey{Name: ns}, &obj); err != nil {
		t.Fatal(err)
	}
	if obj.Labels == nil {
		obj.Labels = map[string]string{}
	}
	obj.Labels["e2e-policy"] = ns
	if err := c.Client.Update(t.Context(), &obj); err != nil {
		t.Fatal(err)
	}
	credential(t, ns, "wandb", v1alpha1.TypeWandB, map[string]string{"api-key": "k"}, nil)
	return ns
}

// createPolicy creates p and deletes it when the test ends.
func createPolicy(t *testing.T, p *v1alpha1.CredentialPolicy) {
	t.Helper()
	if err := c.Client.Create(t.Context(), p); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Client.Delete(context.Background(), p) })
}

// jobRefusedBy waits until a Job requesting wandb in ns is refused by rule (or, with rule
// empty, admitted).
func jobRefusedBy(t *testing.T, ns, rule string) {
	t.Helper()
	n := 0
	eventually(t, 15*time.Second, func() (bool, string) {
		n++
		err := c.Client.Create(t.Context(), job(ns, fmt.Sprintf("train-%d", n), []string{"wandb"}))
		if rule == "" {
			return err == nil, fmt.Sprintf("err = %v, want the Job admitted", err)
		}
		return err != nil && strings.Contains(err.Error(), "["+rule+"]"), fmt.Sprintf("err = %v, want a refusal by [%s]", err, rule)
	})
}

// policyReady waits until p's status describes its current generation with Ready status and
// reason, and returns the condition.
func policyReady(t *testing.T, name string, status metav1.ConditionStatus, reason string) (v1alpha1.CredentialPolicy, metav1.Condition) {
	t.Helper()
	var p v1alpha1.CredentialPolicy
	var cond metav1.Condition
	eventually(t, 15*time.Second, func() (bool, string) {
		if err := c.Client.Get(t.Context(), client.ObjectKey{Name: name}, &p); err != nil {
			return false, err.Error()
		}
		got := apimeta.FindStatusCondition(p.Status.Conditions, v1alpha1.PolicyReady)
		if got == nil || p.Status.ObservedGeneration != p.Generation || got.Status != status || got.Reason != reason {
			return false, fmt.Sprintf("generation %d, status %+v, want Ready=%s reason %s", p.Generation, p.Status, status, reason)
		}
		cond = *got
		return true, ""
	})
	return p, cond
}

// TestCredentialPolicyLifecycle: a CredentialPolicy created through the real API server
// refuses a Job in the namespaces it selects and says it is served; broken, its status shows
// the error with the line while its last good generation keeps refusing, also after credgate
// restarts; fixed, its new rules serve; deleted, the Job is admitted. Namespaces it does not select are never refused, and the
// refusal's audit record names the policy.
func TestCredentialPolicyLifecycle(t *testing.T) {
	ns := policyNamespace(t)
	other := policyNamespace(t) // labelled, but not selected
	name := "e2e-" + ns
	createPolicy(t, refusingPolicy(name, ns, "e2e-refuse"))

	p, _ := policyReady(t, name, metav1.ConditionTrue, v1alpha1.ReasonServing)
	if p.Status.Rules != "e2e-refuse" || !strings.HasPrefix(p.Status.Revision, "sha256:") {
		t.Errorf("status = %+v, want rules e2e-refuse and the revision", p.Status)
	}
	jobRefusedBy(t, ns, "e2e-refuse")
	if err := c.Client.Create(t.Context(), job(other, "train", []string{"wandb"})); err != nil {
		t.Errorf("a Job in a namespace the policy does not select: %v", err)
	}
	eventually(t, 10*time.Second, func() (bool, string) {
		records, err := auditRecords()
		if err != nil {
			return false, err.Error()
		}
		for _, r := range records {
			for _, v := range r.Violations {
				if r.Namespace == ns && v.Rule == "e2e-refuse" && v.Policy == name && v.Action == "deny" {
					return true, ""
				}
			}
		}
		return false, "no audit record of the refusal naming the policy"
	})

	// Broken: the status says where; the last good generation keeps refusing.
	p.Spec.Rego = "package credgate.admission\n\ndeny contains v if {\n\tv := \n}\n"
	if err := c.Client.Update(t.Context(), &p); err != nil {
		t.Fatal(err)
	}
	broken, cond := policyReady(t, name, metav1.ConditionFalse, v1alpha1.ReasonCompileError)
	if !strings.Contains(cond.Message, "line 5") || !strings.Contains(cond.Message, "rego_parse_error") {
		t.Errorf("condition message %q, want the parse error at line 5", cond.Message)
	}
	jobRefusedBy(t, ns, "e2e-refuse")
	// The generation served is in the status, so that a replica starting now serves it too.
	if sp := broken.Status.Served; sp == nil || sp.Generation != 1 || !strings.Contains(sp.Rego, `"e2e-refuse"`) {
		t.Errorf("status.served = %+v, want generation 1", sp)
	}
	c.StopCredgate()
	if err := c.StartCredgate(context.Background()); err != nil {
		t.Fatalf("restart credgate: %v", err)
	}
	jobRefusedBy(t, ns, "e2e-refuse")

	// Fixed, with a new rule id.
	if err := c.Client.Get(t.Context(), client.ObjectKey{Name: name}, &p); err != nil {
		t.Fatal(err)
	}
	p.Spec.Rego = refusingPolicy(name, ns, "e2e-refuse-fixed").Spec.Rego
	if err := c.Client.Update(t.Context(), &p); err != nil {
		t.Fatal(err)
	}
	if p, _ = policyReady(t, name, metav1.ConditionTrue, v1alpha1.ReasonServing); p.Status.Served != nil {
		t.Errorf("status.served = %+v once the current generation serves, want none", p.Status.Served)
	}
	jobRefusedBy(t, ns, "e2e-refuse-fixed")

	// Enforcement from the object: warn admits.
	if err := c.Client.Get(t.Context(), client.ObjectKey{Name: name}, &p); err != nil {
		t.Fatal(err)
	}
	p.Spec.Enforcement = map[string]v1alpha1.PolicyAction{"e2e-refuse-fixed": v1alpha1.PolicyWarn}
	if err := c.Client.Update(t.Context(), &p); err != nil {
		t.Fatal(err)
	}
	policyReady(t, name, metav1.ConditionTrue, v1alpha1.ReasonServing)
	jobRefusedBy(t, ns, "")

	if err := c.Client.Delete(t.Context(), &p); err != nil {
		t.Fatal(err)
	}
	jobRefusedBy(t, ns, "")
}

// TestCredentialPolicyValidation: the API server refuses what credgate could not serve: an
// action that is none, an empty module.
func TestCredentialPolicyValidation(t *testing.T) {
	for name, p := range map[string]*v1alpha1.CredentialPolicy{
		"e2e-bad-action": {ObjectMeta: metav1.ObjectMeta{Name: "e2e-bad-action"}, Spec: v1alpha1.CredentialPolicySpec{
			Rego: "package credgate.admission\n", Enforcement: map[string]v1alpha1.PolicyAction{"r": "block"}}},
		"e2e-empty": {ObjectMeta: metav1.ObjectMeta{Name: "e2e-empty"}},
	} {
		if err := c.Client.Create(t.Context(), p); !apierrors.IsInvalid(err) {
			t.Errorf("%s: err = %v, want it invalid", name, err)
			_ = c.Client.Delete(t.Context(), p)
		}
	}
}

// TestReinstallKeepsUserPolicies: applying the install again — every kustomize overlay and the
// Helm chart, as `kubectl apply` and `helm upgrade` would replace the objects they own — leaves
// the operator's policy ConfigMap and the CredentialPolicies as they were, and the policy still
// refuses. (The webhook configurations, which point at this harness's credgate, the serving
// certificate's Secret and the admission policy guarding the webhooks are dry-run.)
func TestReinstallKeepsUserPolicies(t *testing.T) {
	ns := policyNamespace(t)
	name := "e2e-reinstall-" + ns
	createPolicy(t, refusingPolicy(name, ns, "e2e-reinstall"))
	policyReady(t, name, metav1.ConditionTrue, v1alpha1.ReasonServing)
	jobRefusedBy(t, ns, "e2e-reinstall")

	userPolicy := map[string]string{"team.rego": "package credgate.admission\n"}
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "credgate-policies", Namespace: "credgate-system"}, Data: userPolicy}
	if err := c.Client.Create(t.Context(), cm); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Client.Delete(context.Background(), cm) })
	var before v1alpha1.CredentialPolicy
	if err := c.Client.Get(t.Context(), client.ObjectKey{Name: name}, &before); err != nil {
		t.Fatal(err)
	}

	apply := func(t *testing.T, objs []*unstructured.Unstructured) {
		for _, u := range objs {
			kind := u.GetKind()
			if strings.HasSuffix(u.GroupVersionKind().Group, "cert-manager.io") {
				continue // not served here
			}
			var opts []client.UpdateOption
			var createOpts []client.CreateOption
			switch kind {
			case "MutatingWebhookConfiguration", "ValidatingWebhookConfiguration", "Secret",
				"ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding":
				// This harness's credgate, its certificate and what guards its webhooks.
				opts, createOpts = append(opts, client.DryRunAll), append(createOpts, client.DryRunAll)
			}
			existing := &unstructured.Unstructured{}
			existing.SetGroupVersionKind(u.GroupVersionKind())
			err := c.Client.Get(t.Context(), client.ObjectKeyFromObject(u), existing)
			switch {
			case err == nil:
				u.SetResourceVersion(existing.GetResourceVersion())
				err = c.Client.Update(t.Context(), u, opts...)
			case apierrors.IsNotFound(err):
				err = c.Client.Create(t.Context(), u, createOpts...)
			}
			if err != nil {
				t.Errorf("apply %s %s: %v", kind, u.GetName(), err)
			}
		}
	}
	for _, dir := range []string{"overlays/self-managed", "overlays/cert-manager"} {
		objs, err := manifests.Objects(filepath.Join(c.Root, "manifests", dir))
		if err != nil {
			t.Fatal(err)
		}
		apply(t, objs)
	}
	for _, mode := range []string{"self", "cert-manager"} {
		objs, err := charts.Render(map[string]any{"certificates": map[string]any{"mode": mode}})
		if err != nil {
			t.Fatal(err)
		}
		apply(t, objs)
	}

	var got corev1.ConfigMap
	if err := c.Client.Get(t.Context(), client.ObjectKeyFromObject(cm), &got); err != nil {
		t.Fatalf("the operator's policy ConfigMap after re-applying the install: %v", err)
	}
	if got.Data["team.rego"] != userPolicy["team.rego"] || len(got.Data) != 1 {
		t.Errorf("the operator's policy ConfigMap after re-applying the install: data %v, want %v", got.Data, userPolicy)
	}
	var after v1alpha1.CredentialPolicy
	if err := c.Client.Get(t.Context(), client.ObjectKey{Name: name}, &after); err != nil {
		t.Fatalf("the CredentialPolicy after re-applying the install: %v", err)
	}
	if after.Generation != before.Generation || after.Spec.Rego != before.Spec.Rego {
		t.Errorf("the CredentialPolicy changed: generation %d → %d", before.Generation, after.Generation)
	}
	jobRefusedBy(t, ns, "e2e-reinstall")
}
