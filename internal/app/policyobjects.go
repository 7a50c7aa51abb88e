package app

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/apimachinery/pkg/api/equality"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/credgate/credgate/api/v1alpha1"
	"github.com/credgate/credgate/policies"
)

// policyObjects lists the CredentialPolicies of the informer cache as the watcher serves them.
func policyObjects(reader client.Reader) func(ctx context.Context) ([]policies.Object, error) {
	return func(ctx context.Context) ([]policies.Object, error) {
		var list v1alpha1.CredentialPolicyList
		if err := reader.List(ctx, &list); err != nil {
			return nil, fmt.Errorf("list credentialpolicies: %w", err)
		}
		out := make([]policies.Object, 0, len(list.Items))
		for i := range list.Items {
			p := &list.Items[i] // served until it is gone, finalizers or not
			o := policies.Object{Name: p.Name, UID: string(p.UID), Generation: p.Generation, Rego: p.Spec.Rego,
				NamespaceSelector: p.Spec.NamespaceSelector, Enforcement: actions(p.Spec.Enforcement)}
			if sp := p.Status.Served; sp != nil && sp.Generation < p.Generation {
				o.Fallback = &policies.Object{Name: p.Name, UID: string(p.UID), Generation: sp.Generation, Rego: sp.Rego,
					NamespaceSelector: sp.NamespaceSelector, Enforcement: actions(sp.Enforcement)}
			}
			out = append(out, o)
		}
		return out, nil
	}
}

// actions converts the enforcement of a CredentialPolicy.
func actions(e map[string]v1alpha1.PolicyAction) map[string]policies.Action {
	if len(e) == 0 {
		return nil
	}
	out := make(map[string]policies.Action, len(e))
	for rule, a := range e {
		out[rule] = policies.Action(a)
	}
	return out
}

// maxStatusRules bounds the rule ids listed in a status.
const maxStatusRules = 1024

// policyStatusWriter writes what the watcher serves of each CredentialPolicy into its status:
// the Ready condition (Serving, or why not with the line), the rules it declares and the
// revision. It runs on the leader when there is one; every replica computes the same.
type policyStatusWriter struct {
	watcher *policies.Watcher
	client  client.Client
	reader  client.Reader // the cache
	log     logr.Logger
	// retry is how soon a write that failed is tried again.
	retry time.Duration
}

// NeedLeaderElection implements manager.LeaderElectionRunnable.
func (s *policyStatusWriter) NeedLeaderElection() bool { return true }

// Start implements manager.Runnable.
func (s *policyStatusWriter) Start(ctx context.Context) error {
	changed := s.watcher.Changed()
	t := time.NewTicker(s.retry)
	defer t.Stop()
	failed := false
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-changed:
		case <-t.C:
			if !failed {
				continue
			}
		}
		failed = !s.write(ctx)
	}
}

// write updates every status that differs from what is served; it reports whether all
// writes succeeded.
func (s *policyStatusWriter) write(ctx context.Context) bool {
	statuses := s.watcher.ObjectStatuses()
	ok := true
	for _, name := range slices.Sorted(maps.Keys(statuses)) {
		st := statuses[name]
		var p v1alpha1.CredentialPolicy
		if err := s.reader.Get(ctx, client.ObjectKey{Name: name}, &p); err != nil {
			continue // deleted since
		}
		if string(p.UID) != st.UID || p.Generation != st.Generation {
			continue // another object of the name, or a newer generation: the next reload says
		}
		want := p.DeepCopy()
		want.Status.ObservedGeneration = st.Generation
		want.Status.Revision = st.Revision
		want.Status.Rules = strings.Join(st.Rules, ",")
		if len(want.Status.Rules) > maxStatusRules {
			cut := max(strings.LastIndexByte(want.Status.Rules[:maxStatusRules], ','), 0)
			want.Status.Rules = want.Status.Rules[:cut] + ",…"
		}
		if st.Served {
			want.Status.Served = nil // the current generation serves: no other to keep
		}
		if o := st.ServedObject; o != nil && !st.Served {
			want.Status.Served = &v1alpha1.ServedPolicy{Generation: o.Generation, Rego: o.Rego,
				NamespaceSelector: o.NamespaceSelector}
			for rule, a := range o.Enforcement {
				if want.Status.Served.Enforcement == nil {
					want.Status.Served.Enforcement = map[string]v1alpha1.PolicyAction{}
				}
				want.Status.Served.Enforcement[rule] = v1alpha1.PolicyAction(a)
			}
		}
		cond := metav1.Condition{Type: v1alpha1.PolicyReady, Status: metav1.ConditionFalse, Reason: st.Reason,
			Message: st.Message, ObservedGeneration: st.Generation}
		if st.Served {
			cond.Status = metav1.ConditionTrue
			cond.Message = "served by revision " + st.Revision
		}
		apimeta.SetStatusCondition(&want.Status.Conditions, cond)
		if statusEqual(p.Status, want.Status) {
			continue
		}
		if err := s.client.Status().Patch(ctx, want, client.MergeFrom(&p)); err != nil {
			s.log.Error(err, "credentialpolicy status not written", "policy", name)
			ok = false
		}
	}
	return ok
}

// statusEqual compares two statuses, condition transition times aside.
func statusEqual(a, b v1alpha1.CredentialPolicyStatus) bool {
	if a.ObservedGeneration != b.ObservedGeneration || a.Revision != b.Revision || a.Rules != b.Rules ||
		len(a.Conditions) != len(b.Conditions) || !equality.Semantic.DeepEqual(a.Served, b.Served) {
		return false
	}
	for i := range a.Conditions {
		x, y := a.Conditions[i], b.Conditions[i]
		if x.Type != y.Type || x.Status != y.Status || x.Reason != y.Reason || x.Message != y.Message ||
			x.ObservedGeneration != y.ObservedGeneration {
			return false
		}
	}
	return true
}
