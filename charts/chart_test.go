package charts

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"helm.sh/helm/v4/pkg/chart/common"
	"helm.sh/helm/v4/pkg/chart/v2/lint"
	"helm.sh/helm/v4/pkg/chart/v2/lint/support"
	"helm.sh/helm/v4/pkg/chart/v2/loader"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	sigsjson "sigs.k8s.io/json"

	"github.com/credgate/credgate/manifests"
	"github.com/credgate/credgate/webhook"
)

// What the chart adds to the kustomize install's objects for Helm's sake, and the only
// difference the parity tests allow: the chart's standard labels on every object it templates
// (not on pod templates), and the annotation that keeps the refresher's namespace — its source
// Secrets — on helm uninstall.
var (
	bookkeepingLabels = []string{
		"helm.sh/chart",
		"app.kubernetes.io/managed-by",
		"app.kubernetes.io/instance",
		"app.kubernetes.io/version",
	}
	bookkeepingAnnotations = []string{
		"helm.sh/resource-policy",
	}
)

// kustomize builds manifests/<dir> as kubectl apply -k does.
func kustomize(t *testing.T, dir string) []*unstructured.Unstructured {
	t.Helper()
	objs, err := manifests.Objects(filepath.Join("..", "manifests", dir))
	if err != nil {
		t.Fatal(err)
	}
	return objs
}

func render(t *testing.T, values map[string]any) []*unstructured.Unstructured {
	t.Helper()
	objs, err := Render(values)
	if err != nil {
		t.Fatalf("render %v: %v", values, err)
	}
	return objs
}

// key names an object as the API server does.
func key(u *unstructured.Unstructured) string {
	gvk := u.GroupVersionKind()
	return fmt.Sprintf("%s/%s %s/%s", gvk.Group, gvk.Kind, u.GetNamespace(), u.GetName())
}

// find returns the object of kind and name, or nil.
func find(objs []*unstructured.Unstructured, kind, name string) *unstructured.Unstructured {
	for _, o := range objs {
		if o.GetKind() == kind && o.GetName() == name {
			return o
		}
	}
	return nil
}

func mustFind(t *testing.T, objs []*unstructured.Unstructured, kind, name string) *unstructured.Unstructured {
	t.Helper()
	o := find(objs, kind, name)
	if o == nil {
		t.Fatalf("no %s %s rendered", kind, name)
	}
	return o
}

// plain returns u's content as JSON decodes it (float64 numbers), so that objects parsed by
// kustomize (ints) and by Helm's YAML (float64) compare by value.
func plain(t *testing.T, u *unstructured.Unstructured) map[string]any {
	t.Helper()
	b, err := json.Marshal(u.Object)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// withoutBookkeeping returns u's content less the chart's bookkeeping labels and annotations.
func withoutBookkeeping(t *testing.T, u *unstructured.Unstructured) map[string]any {
	t.Helper()
	m := plain(t, u)
	meta, _ := m["metadata"].(map[string]any)
	for field, keys := range map[string][]string{"labels": bookkeepingLabels, "annotations": bookkeepingAnnotations} {
		kv, _ := meta[field].(map[string]any)
		for _, k := range keys {
			delete(kv, k)
		}
		if kv != nil && len(kv) == 0 {
			delete(meta, field)
		}
	}
	return m
}

// assertParity fails unless the chart's objects are the kustomize install's, object by
// object, once the bookkeeping is removed; it shows the first difference as a diff.
func assertParity(t *testing.T, want, got []*unstructured.Unstructured) {
	t.Helper()
	gotByKey := map[string]*unstructured.Unstructured{}
	for _, o := range got {
		if _, dup := gotByKey[key(o)]; dup {
			t.Errorf("the chart renders %s twice", key(o))
		}
		gotByKey[key(o)] = o
	}
	wantKeys := map[string]bool{}
	diffShown := false
	for _, w := range want {
		k := key(w)
		wantKeys[k] = true
		g, ok := gotByKey[k]
		if !ok {
			t.Errorf("the chart does not render %s", k)
			continue
		}
		if d := cmp.Diff(plain(t, w), withoutBookkeeping(t, g)); d != "" {
			if !diffShown {
				t.Errorf("%s differs from the kustomize install's (-kustomize +chart):\n%s", k, d)
				diffShown = true
			} else {
				t.Errorf("%s differs from the kustomize install's too", k)
			}
		}
	}
	for _, g := range got {
		if !wantKeys[key(g)] {
			t.Errorf("the chart renders %s, which the kustomize install does not", key(g))
		}
	}
}

// withoutReleaseNamespace returns the kustomize objects less the Namespace credgate-system:
// Helm needs the release namespace before it installs anything (it stores the release there),
// so it is created by helm install --create-namespace or beforehand, never by the chart.
func withoutReleaseNamespace(objs []*unstructured.Unstructured) []*unstructured.Unstructured {
	return slices.DeleteFunc(slices.Clone(objs), func(u *unstructured.Unstructured) bool {
		return u.GetKind() == "Namespace" && u.GetName() == Namespace
	})
}

// TestParity: with its default values the chart installs what kubectl apply -k
// manifests/overlays/self-managed does, and with certificates.mode=cert-manager what
// manifests/overlays/cert-manager does — object by object, field by field.
func TestParity(t *testing.T) {
	for _, tc := range []struct {
		overlay string
		values  map[string]any
	}{
		{"overlays/self-managed", nil},
		{"overlays/cert-manager", map[string]any{"certificates": map[string]any{"mode": "cert-manager"}}},
	} {
		t.Run(tc.overlay, func(t *testing.T) {
			got := render(t, tc.values)
			if ns := find(got, "Namespace", Namespace); ns != nil {
				t.Errorf("the chart renders its release namespace %s: helm install --create-namespace would conflict with it", Namespace)
			}
			want := kustomize(t, tc.overlay)
			if len(withoutReleaseNamespace(want)) != len(want)-1 {
				t.Fatalf("manifests/%s has no Namespace %s: the chart's release namespace is no longer the kustomize install's", tc.overlay, Namespace)
			}
			assertParity(t, withoutReleaseNamespace(want), got)
		})
	}
}

// The kinds of the install that are cluster-scoped. Every other object names its namespace, as
// in manifests/: helm template | kubectl apply would otherwise put it in the context's.
var clusterScoped = map[string]bool{
	"Namespace": true, "CustomResourceDefinition": true, "ClusterRole": true, "ClusterRoleBinding": true,
	"MutatingWebhookConfiguration": true, "ValidatingWebhookConfiguration": true,
	"ValidatingAdmissionPolicy": true, "ValidatingAdmissionPolicyBinding": true,
}

// TestRenderWellFormed: every object the chart renders, in either certificate mode and with
// every option on, decodes strictly into its Kubernetes type (no unknown or duplicate field, so
// a misspelt or misindented field fails here), has a valid name, a namespace exactly when it is
// namespaced, and is no Helm hook (hooks are not part of the release's objects, nor compared).
func TestRenderWellFormed(t *testing.T) {
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	if err := apiextensionsv1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	everything := map[string]any{
		"image":            map[string]any{"digest": "sha256:" + strings.Repeat("ab", 32), "pullPolicy": "Always"},
		"imagePullSecrets": []any{map[string]any{"name": "regcred"}},
		"nodeSelector":     map[string]any{"pool": "system"},
		"tolerations":      []any{map[string]any{"key": "system", "operator": "Exists", "effect": "NoSchedule"}},
		"extraArgs":        []any{"--verbosity=1"},
		"enforcement":      map[string]any{"static-credentials": "deny"},
		"audit":            map[string]any{"allowed": true, "onError": "admit", "file": map[string]any{"maxSizeMiB": 50, "maxBackups": 3}},
		"policies":         map[string]any{"files": map[string]any{"extra.rego": "package credgate.admission\n"}},
		"refresher": map[string]any{"extraArgs": []any{"--aws-max-session-duration=30m"}, "extraEgressPorts": []any{9000},
			"priorityClassName": "high", "nodeSelector": map[string]any{"pool": "system"}},
		"monitoring": map[string]any{"prometheusRule": map[string]any{"enabled": true, "labels": map[string]any{"release": "prometheus"}}},
	}
	for name, values := range map[string]map[string]any{
		"defaults":             nil,
		"cert-manager":         {"certificates": map[string]any{"mode": "cert-manager"}},
		"cert-manager, issuer": {"certificates": map[string]any{"mode": "cert-manager", "certManager": map[string]any{"issuerRef": map[string]any{"name": "ca", "kind": "ClusterIssuer"}}}},
		"every option":         everything,
	} {
		t.Run(name, func(t *testing.T) {
			objs := render(t, values)
			if len(objs) == 0 {
				t.Fatal("nothing rendered")
			}
			for _, o := range objs {
				if errs := validation.IsDNS1123Subdomain(o.GetName()); len(errs) > 0 {
					t.Errorf("%s: name: %v", key(o), errs)
				}
				if ns := o.GetNamespace(); clusterScoped[o.GetKind()] != (ns == "") {
					t.Errorf("%s: namespace %q, but %s is cluster-scoped: %v", key(o), ns, o.GetKind(), clusterScoped[o.GetKind()])
				}
				if _, hook := o.GetAnnotations()["helm.sh/hook"]; hook {
					t.Errorf("%s is a Helm hook", key(o))
				}
				typed, err := scheme.New(o.GroupVersionKind())
				if g := o.GroupVersionKind().Group; runtime.IsNotRegisteredError(err) && (g == "cert-manager.io" || g == "monitoring.coreos.com") {
					continue // not a Kubernetes type; the parity tests compare them with manifests/'s
				}
				if err != nil {
					t.Errorf("%s: %v", key(o), err)
					continue
				}
				b, err := json.Marshal(o.Object)
				if err != nil {
					t.Fatal(err)
				}
				strict, err := sigsjson.UnmarshalStrict(b, typed, sigsjson.DisallowDuplicateFields, sigsjson.DisallowUnknownFields)
				if err != nil || len(strict) > 0 {
					t.Errorf("%s does not decode as %T: %v %v", key(o), typed, err, strict)
				}
			}
		})
	}
}

func containerOf(t *testing.T, objs []*unstructured.Unstructured, deployment string) map[string]any {
	t.Helper()
	d := mustFind(t, objs, "Deployment", deployment)
	cs, _, _ := unstructured.NestedSlice(d.Object, "spec", "template", "spec", "containers")
	if len(cs) != 1 {
		t.Fatalf("Deployment %s has %d containers, want 1", deployment, len(cs))
	}
	return cs[0].(map[string]any)
}

func argsOf(t *testing.T, objs []*unstructured.Unstructured, deployment string) []string {
	t.Helper()
	args, _, _ := unstructured.NestedStringSlice(containerOf(t, objs, deployment), "args")
	return args
}

func webhooksOf(objs []*unstructured.Unstructured) []map[string]any {
	var hooks []map[string]any
	for _, kind := range []string{"MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"} {
		if c := find(objs, kind, "credgate"); c != nil {
			ws, _, _ := unstructured.NestedSlice(c.Object, "webhooks")
			for _, w := range ws {
				hooks = append(hooks, w.(map[string]any))
			}
		}
	}
	return hooks
}

// excludedNamespaces returns the namespaces the webhooks skip, failing unless every webhook
// skips the same ones.
func excludedNamespaces(t *testing.T, objs []*unstructured.Unstructured) []string {
	t.Helper()
	hooks := webhooksOf(objs)
	if want := len(webhook.Kinds)*2 + 1; len(hooks) != want {
		t.Fatalf("%d webhooks rendered, want %d", len(hooks), want)
	}
	var first []string
	for i, w := range hooks {
		exprs, _, _ := unstructured.NestedSlice(w, "namespaceSelector", "matchExpressions")
		if len(exprs) != 1 {
			t.Fatalf("webhook %v: %d namespaceSelector expressions, want 1", w["name"], len(exprs))
		}
		vals, _, _ := unstructured.NestedStringSlice(exprs[0].(map[string]any), "values")
		if i == 0 {
			first = vals
		} else if !slices.Equal(vals, first) {
			t.Errorf("webhook %v excludes %v, webhook %v %v", w["name"], vals, hooks[0]["name"], first)
		}
	}
	return first
}

func podSpecOf(t *testing.T, objs []*unstructured.Unstructured, deployment string) map[string]any {
	t.Helper()
	spec, _, _ := unstructured.NestedMap(mustFind(t, objs, "Deployment", deployment).Object, "spec", "template", "spec")
	return spec
}

// TestValues: what operators change reaches the objects, and nothing else changes with it.
func TestValues(t *testing.T) {
	defaults := render(t, nil)
	defaultArgs := argsOf(t, defaults, "credgate")

	t.Run("image tag", func(t *testing.T) {
		objs := render(t, map[string]any{"image": map[string]any{"tag": "v9.9.9"}})
		for _, d := range []string{"credgate", "credgate-refresher"} {
			if got := containerOf(t, objs, d)["image"]; got != "ghcr.io/credgate/credgate:v9.9.9" {
				t.Errorf("%s image = %v", d, got)
			}
		}
	})
	t.Run("image tag defaults to appVersion", func(t *testing.T) {
		ch, err := Load()
		if err != nil {
			t.Fatal(err)
		}
		want := "ghcr.io/credgate/credgate:" + ch.Metadata.AppVersion
		for _, d := range []string{"credgate", "credgate-refresher"} {
			if got := containerOf(t, defaults, d)["image"]; got != want {
				t.Errorf("%s image = %v, want %s", d, got, want)
			}
		}
	})
	t.Run("image digest and pull policy", func(t *testing.T) {
		digest := "sha256:" + strings.Repeat("0f", 32)
		objs := render(t, map[string]any{"image": map[string]any{"repository": "registry.example/credgate", "digest": digest, "pullPolicy": "Always"}})
		for _, d := range []string{"credgate", "credgate-refresher"} {
			c := containerOf(t, objs, d)
			if got := c["image"]; got != "registry.example/credgate@"+digest {
				t.Errorf("%s image = %v", d, got)
			}
			if got := c["imagePullPolicy"]; got != "Always" {
				t.Errorf("%s imagePullPolicy = %v", d, got)
			}
		}
	})
	t.Run("image pull secrets", func(t *testing.T) {
		objs := render(t, map[string]any{"imagePullSecrets": []any{map[string]any{"name": "regcred"}}})
		for _, d := range []string{"credgate", "credgate-refresher"} {
			want := []any{map[string]any{"name": "regcred"}}
			if got := podSpecOf(t, objs, d)["imagePullSecrets"]; !cmp.Equal(got, want) {
				t.Errorf("%s imagePullSecrets = %v", d, got)
			}
		}
	})
	t.Run("replicas", func(t *testing.T) {
		objs := render(t, map[string]any{"replicas": 3, "refresher": map[string]any{"replicas": 1}})
		for d, want := range map[string]int64{"credgate": 3, "credgate-refresher": 1} {
			got, _, _ := unstructured.NestedFieldNoCopy(mustFind(t, objs, "Deployment", d).Object, "spec", "replicas")
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("%s replicas = %v, want %d", d, got, want)
			}
		}
		if find(objs, "PodDisruptionBudget", "credgate") == nil {
			t.Error("no PodDisruptionBudget with 3 replicas")
		}
		if find(render(t, map[string]any{"replicas": 1}), "PodDisruptionBudget", "credgate") != nil {
			t.Error("a PodDisruptionBudget of minAvailable 1 for a single replica would block every drain")
		}
	})
	t.Run("scheduling and resources", func(t *testing.T) {
		res := map[string]any{"requests": map[string]any{"cpu": "1", "memory": "1Gi"}}
		objs := render(t, map[string]any{
			"resources":    res,
			"nodeSelector": map[string]any{"pool": "system"},
			"tolerations":  []any{map[string]any{"key": "system", "operator": "Exists"}},
			// Helm merges maps with the defaults: null removes the default anti-affinity.
			"affinity":          map[string]any{"podAntiAffinity": nil, "nodeAffinity": map[string]any{"x": "y"}},
			"priorityClassName": "",
		})
		spec := podSpecOf(t, objs, "credgate")
		// Maps merge with the defaults (the default memory limit stays), as everywhere in Helm.
		res["limits"] = map[string]any{"memory": "512Mi"}
		if got := containerOf(t, objs, "credgate")["resources"]; !cmp.Equal(got, res) {
			t.Errorf("resources = %v", got)
		}
		if got := spec["nodeSelector"]; !cmp.Equal(got, map[string]any{"pool": "system"}) {
			t.Errorf("nodeSelector = %v", got)
		}
		if got := spec["tolerations"]; !cmp.Equal(got, []any{map[string]any{"key": "system", "operator": "Exists"}}) {
			t.Errorf("tolerations = %v", got)
		}
		if got := spec["affinity"]; !cmp.Equal(got, map[string]any{"nodeAffinity": map[string]any{"x": "y"}}) {
			t.Errorf("affinity = %v", got)
		}
		if _, ok := spec["priorityClassName"]; ok {
			t.Errorf("priorityClassName = %v, want none", spec["priorityClassName"])
		}
		if !cmp.Equal(podSpecOf(t, objs, "credgate-refresher"), podSpecOf(t, defaults, "credgate-refresher")) {
			t.Error("the values of credgate serve changed the refresher's pods")
		}
		// null removes a default altogether.
		spec = podSpecOf(t, render(t, map[string]any{"affinity": nil, "topologySpreadConstraints": nil}), "credgate")
		for _, field := range []string{"affinity", "topologySpreadConstraints"} {
			if v, ok := spec[field]; ok {
				t.Errorf("%s = %v, want none", field, v)
			}
		}
	})
	t.Run("refresher disabled", func(t *testing.T) {
		objs := render(t, map[string]any{"refresher": map[string]any{"enabled": false}})
		refresher := map[string]bool{}
		for _, o := range kustomize(t, "refresher") {
			refresher[key(o)] = true
		}
		var want []string
		for _, o := range defaults {
			if !refresher[key(o)] {
				want = append(want, key(o))
			}
		}
		var got []string
		for _, o := range objs {
			got = append(got, key(o))
			if o.GetKind() == "CustomResourceDefinition" {
				continue // its API documentation names the refresher's namespace
			}
			if b, _ := json.Marshal(o.Object); strings.Contains(string(b), "credgate-refresher") {
				t.Errorf("%s still names credgate-refresher", key(o))
			}
		}
		if d := cmp.Diff(want, got); d != "" {
			t.Errorf("objects without the refresher (-want +got):\n%s", d)
		}
	})
	t.Run("refresher options", func(t *testing.T) {
		objs := render(t, map[string]any{"refresher": map[string]any{
			"namespace": "aws-minting", "extraArgs": []any{"--aws-max-session-duration=30m"}, "extraEgressPorts": []any{9000},
		}})
		mustFind(t, objs, "Namespace", "aws-minting")
		if d := mustFind(t, objs, "Deployment", "credgate-refresher"); d.GetNamespace() != "aws-minting" {
			t.Errorf("refresher Deployment in %s", d.GetNamespace())
		}
		crb := mustFind(t, objs, "ClusterRoleBinding", "credgate-refresher")
		if ns, _, _ := unstructured.NestedString(crb.Object["subjects"].([]any)[0].(map[string]any), "namespace"); ns != "aws-minting" {
			t.Errorf("ClusterRoleBinding credgate-refresher binds the service account of %s", ns)
		}
		if got := excludedNamespaces(t, objs); !slices.Equal(got, []string{Namespace, "aws-minting", "kube-system"}) {
			t.Errorf("webhooks exclude %v", got)
		}
		if got := argsOf(t, objs, "credgate-refresher"); !slices.Equal(got, []string{"refresher", "--aws-max-session-duration=30m"}) {
			t.Errorf("refresher args = %v", got)
		}
		np := mustFind(t, objs, "NetworkPolicy", "credgate-refresher")
		if b, _ := json.Marshal(np.Object["spec"]); !strings.Contains(string(b), `{"port":9000,"protocol":"TCP"}`) {
			t.Errorf("the refresher's NetworkPolicy does not let it reach port 9000: %s", b)
		}
	})
	t.Run("excluded namespaces", func(t *testing.T) {
		objs := render(t, map[string]any{"webhook": map[string]any{"excludedNamespaces": []any{"kube-system", "monitoring", Namespace}}})
		if got := excludedNamespaces(t, objs); !slices.Equal(got, []string{Namespace, "credgate-refresher", "kube-system", "monitoring"}) {
			t.Errorf("webhooks exclude %v", got)
		}
		// credgate's own namespaces are excluded even from an empty list.
		objs = render(t, map[string]any{"webhook": map[string]any{"excludedNamespaces": []any{}}})
		if got := excludedNamespaces(t, objs); !slices.Equal(got, []string{Namespace, "credgate-refresher"}) {
			t.Errorf("webhooks exclude %v", got)
		}
	})
	t.Run("serve arguments", func(t *testing.T) {
		objs := render(t, map[string]any{
			"extraArgs":   []any{"--verbosity=1", "--policy-reload-interval=5s"},
			"enforcement": map[string]any{"static-credentials": "deny", "conflicting-env": "audit"},
			"audit": map[string]any{"stdout": false, "allowed": true, "onError": "admit",
				"file": map[string]any{"maxSizeMiB": 200, "maxBackups": 4}},
		})
		want := []string{
			"serve", "--cert-dir=/var/run/secrets/credgate/serving-certs", "--policy-dir=/etc/credgate/policies",
			"--audit-file=/var/log/credgate/audit.log", "--cert-management=self",
			"--audit-max-size=200", "--audit-max-backups=4", "--audit-allowed", "--audit-on-error=admit",
			"--enforce=conflicting-env=audit", "--enforce=static-credentials=deny",
			"--verbosity=1", "--policy-reload-interval=5s",
		}
		if got := argsOf(t, objs, "credgate"); !slices.Equal(got, want) {
			t.Errorf("args:\n got %q\nwant %q", got, want)
		}
	})
	t.Run("audit file disabled", func(t *testing.T) {
		objs := render(t, map[string]any{"audit": map[string]any{"file": map[string]any{"enabled": false, "maxSizeMiB": 5}}})
		for _, a := range argsOf(t, objs, "credgate") {
			if strings.HasPrefix(a, "--audit-file") || strings.HasPrefix(a, "--audit-max-size") {
				t.Errorf("argument %s without an audit file", a)
			}
		}
		if b, _ := json.Marshal(podSpecOf(t, objs, "credgate")); strings.Contains(string(b), `"audit"`) {
			t.Errorf("the audit volume is still there: %s", b)
		}
	})
	t.Run("policies", func(t *testing.T) {
		objs := render(t, map[string]any{"policies": map[string]any{"configMapName": "rego", "files": map[string]any{"prod.rego": "package credgate.admission\n"}}})
		cm := mustFind(t, objs, "ConfigMap", "rego")
		if got := cm.Object["data"]; !cmp.Equal(got, map[string]any{"prod.rego": "package credgate.admission\n"}) {
			t.Errorf("ConfigMap data = %v", got)
		}
		if b, _ := json.Marshal(podSpecOf(t, objs, "credgate")["volumes"]); !strings.Contains(string(b), `"configMap":{"name":"rego","optional":true}`) {
			t.Errorf("the policies volume does not mount ConfigMap rego: %s", b)
		}
		// By default the ConfigMap is the operator's: mounted, never created nor changed, so
		// that an upgrade does not empty it.
		objs = render(t, nil)
		if find(objs, "ConfigMap", "credgate-policies") != nil {
			t.Error("ConfigMap created by default: an upgrade would empty the operator's policies")
		}
		if find(render(t, map[string]any{"policies": map[string]any{"createConfigMap": true}}), "ConfigMap", "credgate-policies") == nil {
			t.Error("no ConfigMap with policies.createConfigMap=true")
		}
		if b, _ := json.Marshal(podSpecOf(t, objs, "credgate")["volumes"]); !strings.Contains(string(b), `"name":"credgate-policies"`) {
			t.Errorf("the policies volume is gone: %s", b)
		}
	})
	t.Run("prometheus rule", func(t *testing.T) {
		// Off by default: a PrometheusRule needs the Prometheus Operator's CRDs.
		if find(defaults, "PrometheusRule", "credgate") != nil {
			t.Fatal("a PrometheusRule is rendered by default")
		}
		enabled := map[string]any{"prometheusRule": map[string]any{"enabled": true}}
		objs := render(t, map[string]any{"monitoring": enabled})
		rules := slices.DeleteFunc(slices.Clone(objs), func(o *unstructured.Unstructured) bool { return o.GetKind() != "PrometheusRule" })
		// The rules are manifests/monitoring's, field for field, and nothing else changes.
		assertParity(t, kustomize(t, "monitoring"), rules)
		var keys, defaultKeys []string
		for _, o := range slices.DeleteFunc(slices.Clone(objs), func(o *unstructured.Unstructured) bool { return o.GetKind() == "PrometheusRule" }) {
			keys = append(keys, key(o))
		}
		for _, o := range defaults {
			defaultKeys = append(defaultKeys, key(o))
		}
		if d := cmp.Diff(defaultKeys, keys); d != "" {
			t.Errorf("monitoring.prometheusRule.enabled changed the other objects (-defaults +enabled):\n%s", d)
		}
		// More labels, such as the one Prometheus selects rules by, beside the chart's.
		objs = render(t, map[string]any{"monitoring": map[string]any{"prometheusRule": map[string]any{
			"enabled": true, "labels": map[string]any{"release": "kube-prometheus-stack"}}}})
		labels := mustFind(t, objs, "PrometheusRule", "credgate").GetLabels()
		if labels["release"] != "kube-prometheus-stack" || labels["app.kubernetes.io/name"] != "credgate" || labels["helm.sh/chart"] == "" {
			t.Errorf("labels %v", labels)
		}
		// In another release namespace, the rule follows it.
		rel, err := RenderRelease(ReleaseName, "platform-credgate", map[string]any{"monitoring": enabled})
		if err != nil {
			t.Fatal(err)
		}
		if r := mustFind(t, rel.Objects, "PrometheusRule", "credgate"); r.GetNamespace() != "platform-credgate" {
			t.Errorf("PrometheusRule in %s", r.GetNamespace())
		}
		// Without the refresher, without its alerts: the group of credgate serve alone.
		objs = render(t, map[string]any{"monitoring": enabled, "refresher": map[string]any{"enabled": false}})
		got, _, _ := unstructured.NestedSlice(mustFind(t, objs, "PrometheusRule", "credgate").Object, "spec", "groups")
		want, _, _ := unstructured.NestedSlice(plain(t, kustomize(t, "monitoring")[0]), "spec", "groups")
		if len(want) != 2 || want[1].(map[string]any)["name"] != "credgate-refresher" {
			t.Fatalf("manifests/monitoring's groups are no longer credgate's and credgate-refresher's: %d groups", len(want))
		}
		if len(got) != 1 {
			t.Fatalf("%d rule groups without the refresher, want 1", len(got))
		}
		var gotGroup map[string]any
		if b, err := json.Marshal(got[0]); err != nil || json.Unmarshal(b, &gotGroup) != nil {
			t.Fatal(err)
		}
		if d := cmp.Diff(want[0], gotGroup); d != "" {
			t.Errorf("credgate serve's alerts without the refresher (-manifests/monitoring +chart):\n%s", d)
		}
	})
	t.Run("network policies disabled", func(t *testing.T) {
		for _, o := range render(t, map[string]any{"networkPolicy": map[string]any{"enabled": false}}) {
			if o.GetKind() == "NetworkPolicy" {
				t.Errorf("%s rendered with networkPolicy.enabled=false", key(o))
			}
		}
	})
	t.Run("cert-manager issuer", func(t *testing.T) {
		ref := map[string]any{"name": "platform-ca", "kind": "ClusterIssuer"}
		objs := render(t, map[string]any{"certificates": map[string]any{"mode": "cert-manager", "certManager": map[string]any{"issuerRef": ref}}})
		if find(objs, "Issuer", "credgate-selfsigned") != nil {
			t.Error("the self-signed Issuer is rendered beside the issuerRef given")
		}
		if got := mustFind(t, objs, "Certificate", "credgate-serving-cert").Object["spec"].(map[string]any)["issuerRef"]; !cmp.Equal(got, ref) {
			t.Errorf("issuerRef = %v", got)
		}
	})
	t.Run("no state shared between renders", func(t *testing.T) {
		// Helm's coalescing can write into the maps it is given: neither the caller's values
		// nor the chart's defaults may change from one render to the next.
		values := map[string]any{"certificates": map[string]any{"mode": "cert-manager"}}
		render(t, values)
		if want := map[string]any{"certificates": map[string]any{"mode": "cert-manager"}}; !cmp.Equal(values, want) {
			t.Errorf("Render changed its values to %v", values)
		}
		if got := argsOf(t, render(t, nil), "credgate"); !slices.Equal(got, defaultArgs) {
			t.Errorf("default args now %q, were %q", got, defaultArgs)
		}
	})
}

// TestReleaseNamespace: installed into another namespace, credgate's references all follow it
// — Service, webhooks, RBAC subjects, the policy that holds it to its CA bundle, and the flags
// whose defaults name credgate-system — and a shared namespace is refused.
func TestReleaseNamespace(t *testing.T) {
	for _, mode := range []string{"self", "cert-manager"} {
		t.Run(mode, func(t *testing.T) {
			rel, err := RenderRelease(ReleaseName, "platform-credgate", map[string]any{"certificates": map[string]any{"mode": mode}})
			if err != nil {
				t.Fatal(err)
			}
			for _, o := range rel.Objects {
				if o.GetKind() == "CustomResourceDefinition" {
					continue
				}
				if b, _ := json.Marshal(o.Object); strings.Contains(string(b), Namespace) {
					t.Errorf("%s still names %s: %s", key(o), Namespace, b)
				}
			}
			if strings.Contains(rel.Notes, Namespace) {
				t.Errorf("NOTES.txt names %s:\n%s", Namespace, rel.Notes)
			}
			if got := excludedNamespaces(t, rel.Objects); got[0] != "platform-credgate" {
				t.Errorf("webhooks exclude %v, not credgate's namespace", got)
			}
			args := argsOf(t, rel.Objects, "credgate")
			if mode == "self" {
				for _, want := range []string{"--cert-secret=platform-credgate/credgate-serving-cert",
					"--cert-dns-name=credgate.platform-credgate.svc,credgate.platform-credgate.svc.cluster.local,credgate.platform-credgate,credgate"} {
					if !slices.Contains(args, want) {
						t.Errorf("args %q lack %s", args, want)
					}
				}
				vap := mustFind(t, rel.Objects, "ValidatingAdmissionPolicy", "credgate-webhooks-ca-bundle-only")
				if b, _ := json.Marshal(vap.Object); !strings.Contains(string(b), "system:serviceaccount:platform-credgate:credgate") {
					t.Errorf("the ValidatingAdmissionPolicy does not match credgate's service account: %s", b)
				}
			} else if slices.ContainsFunc(args, func(a string) bool {
				return strings.HasPrefix(a, "--cert-") && a != "--cert-dir=/var/run/secrets/credgate/serving-certs"
			}) {
				t.Errorf("args %q: certificate flags with cert-manager", args)
			}
		})
	}
	for _, ns := range []string{"default", "kube-system", "kube-flannel"} {
		if _, err := RenderRelease(ReleaseName, ns, nil); err == nil || !strings.Contains(err.Error(), "namespace of its own") {
			t.Errorf("release in %s: err = %v, want a refusal", ns, err)
		}
		// The refresher's namespace is skipped by the webhooks too: never a shared one.
		values := map[string]any{"refresher": map[string]any{"namespace": ns}}
		if _, err := RenderRelease(ReleaseName, "credgate-system", values); err == nil || !strings.Contains(err.Error(), "refresher's own") {
			t.Errorf("refresher in %s: err = %v, want a refusal", ns, err)
		}
	}
	_, err := RenderRelease(ReleaseName, "credgate-refresher", nil)
	if err == nil || !strings.Contains(err.Error(), "refresher.namespace must differ") {
		t.Errorf("release in the refresher's namespace: err = %v, want a refusal", err)
	}
}

// TestSchema: values.schema.json refuses what the chart cannot use, before anything renders.
func TestSchema(t *testing.T) {
	for name, tc := range map[string]struct {
		values map[string]any
		want   string // in the error
	}{
		"replicas not a number":    {map[string]any{"replicas": "two"}, "replicas"},
		"replicas zero":            {map[string]any{"replicas": 0}, "replicas"},
		"unknown top-level key":    {map[string]any{"replica": 3}, "replica"},
		"unknown nested key":       {map[string]any{"image": map[string]any{"tags": "v1"}}, "tags"},
		"certificates.mode":        {map[string]any{"certificates": map[string]any{"mode": "vault"}}, "mode"},
		"enforcement action":       {map[string]any{"enforcement": map[string]any{"static-credentials": "block"}}, "static-credentials"},
		"extraArgs not strings":    {map[string]any{"extraArgs": "--verbosity=1"}, "extraArgs"},
		"refresher.enabled string": {map[string]any{"refresher": map[string]any{"enabled": "no"}}, "enabled"},
		"excluded namespace name":  {map[string]any{"webhook": map[string]any{"excludedNamespaces": []any{"Kube_System"}}}, "excludedNamespaces"},
		"digest":                   {map[string]any{"image": map[string]any{"digest": "latest"}}, "digest"},
		"audit.onError":            {map[string]any{"audit": map[string]any{"onError": "ignore"}}, "onError"},
		"pull policy":              {map[string]any{"image": map[string]any{"pullPolicy": "Sometimes"}}, "pullPolicy"},
		"prometheusRule.enabled":   {map[string]any{"monitoring": map[string]any{"prometheusRule": map[string]any{"enabled": "yes"}}}, "enabled"},
		"prometheusRule key":       {map[string]any{"monitoring": map[string]any{"prometheusRule": map[string]any{"enable": true}}}, "enable"},
		// The chart's own labels are the chart's: a duplicate key would not render.
		"prometheusRule chart label": {map[string]any{"monitoring": map[string]any{"prometheusRule": map[string]any{"labels": map[string]any{"app.kubernetes.io/name": "x"}}}}, "app.kubernetes.io/name"},
		"prometheusRule label value": {map[string]any{"monitoring": map[string]any{"prometheusRule": map[string]any{"labels": map[string]any{"release": "a b"}}}}, "labels"},
		// Values rendered into YAML must not be able to add fields to it.
		"priorityClassName injection": {map[string]any{"priorityClassName": "x\n      hostNetwork: true"}, "priorityClassName"},
		"tag injection":               {map[string]any{"image": map[string]any{"tag": "v1\n      securityContext: {}"}}, "tag"},
		"repository injection":        {map[string]any{"image": map[string]any{"repository": "r\n  hostPID: true"}}, "repository"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := Render(tc.values)
			if err == nil {
				t.Fatalf("values %v rendered", tc.values)
			}
			if !strings.Contains(err.Error(), "schema") || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want a schema error naming %s", err, tc.want)
			}
		})
	}
}

// TestCRDCopy: the chart carries the very CRDs controller-gen writes into manifests/crd (make
// manifests), byte for byte, and no other.
func TestCRDCopy(t *testing.T) {
	generated, err := filepath.Glob(filepath.Join("..", "manifests", "crd", "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	generated = slices.DeleteFunc(generated, func(p string) bool { return filepath.Base(p) == "kustomization.yaml" })
	copied, err := filepath.Glob(filepath.Join(Dir, "crds", "*"))
	if err != nil {
		t.Fatal(err)
	}
	if len(generated) == 0 {
		t.Fatal("no CRD in manifests/crd")
	}
	var names []string
	for _, p := range generated {
		names = append(names, filepath.Base(p))
		want, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(filepath.Join(Dir, "crds", filepath.Base(p)))
		if err != nil || string(got) != string(want) {
			t.Errorf("charts/credgate/crds/%s is not a copy of manifests/crd/%[1]s (%v): make manifests copies it", filepath.Base(p), err)
		}
	}
	for _, p := range copied {
		if !slices.Contains(names, filepath.Base(p)) {
			t.Errorf("charts/credgate/crds/%s is no CRD of manifests/crd", filepath.Base(p))
		}
	}
	// And what Render installs is that file: the chart's crds/, untemplated.
	objs := render(t, nil)
	for i, name := range names {
		if i >= len(objs) || objs[i].GetKind() != "CustomResourceDefinition" || objs[i].GetName() != strings.TrimPrefix(strings.TrimSuffix(name, ".yaml"), "credgate.dev_")+".credgate.dev" {
			t.Errorf("object %d rendered: %s, want the CRD of %s", i, key(objs[min(i, len(objs)-1)]), name)
		}
	}
}

// TestNotes: NOTES.txt tells how to check the install: the CRD served, the replicas ready, a
// labelled Job refused in a server-side dry run; and how to enable the refresher.
func TestNotes(t *testing.T) {
	rel, err := RenderRelease(ReleaseName, Namespace, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"kubectl get credentials",
		"kubectl -n credgate-system rollout status deploy/credgate",
		"kubectl apply --dry-run=server -f -",
		"credentials.credgate.dev/credgate-check: \"true\"",
		"[unknown-credential]",
		"--clusterrole=credgate-refresher-secrets --serviceaccount=credgate-refresher:credgate-refresher",
	} {
		if !strings.Contains(rel.Notes, want) {
			t.Errorf("NOTES.txt lacks %q:\n%s", want, rel.Notes)
		}
	}
	rel, err = RenderRelease(ReleaseName, Namespace, map[string]any{"refresher": map[string]any{"enabled": false}})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(rel.Notes, "credgate-refresher") {
		t.Errorf("NOTES.txt names the refresher, which is disabled:\n%s", rel.Notes)
	}
}

// TestPackage: make chart's archive holds the chart Render uses, and one modification time
// gives one archive.
func TestPackage(t *testing.T) {
	epoch := time.Unix(1700000000, 0)
	dir := t.TempDir()
	path, err := Package(Dir, dir, &epoch)
	if err != nil {
		t.Fatal(err)
	}
	if filepath.Base(path) != "credgate-0.1.0.tgz" {
		t.Errorf("archive %s, want credgate-0.1.0.tgz", path)
	}
	ch, err := loader.LoadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	fromArchive, err := RenderChart(ch, ReleaseName, Namespace, nil)
	if err != nil {
		t.Fatal(err)
	}
	embedded := render(t, nil)
	if len(fromArchive.Objects) != len(embedded) {
		t.Fatalf("the archive renders %d objects, the embedded chart %d", len(fromArchive.Objects), len(embedded))
	}
	for i := range embedded {
		if d := cmp.Diff(plain(t, embedded[i]), plain(t, fromArchive.Objects[i])); d != "" {
			t.Errorf("%s differs in the archive:\n%s", key(embedded[i]), d)
		}
	}
	first, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	again, err := Package(Dir, t.TempDir(), &epoch)
	if err != nil {
		t.Fatal(err)
	}
	second, err := os.ReadFile(again)
	if err != nil {
		t.Fatal(err)
	}
	if string(first) != string(second) {
		t.Error("two archives of the same chart and time differ")
	}
}

// TestLint: helm lint --strict passes (warnings fail it too; information, such as "icon is
// recommended", does not), in both certificate modes.
func TestLint(t *testing.T) {
	kv, err := common.ParseKubeVersion(KubeVersion)
	if err != nil {
		t.Fatal(err)
	}
	for _, values := range []map[string]any{nil, {"certificates": map[string]any{"mode": "cert-manager"}},
		{"monitoring": map[string]any{"prometheusRule": map[string]any{"enabled": true}}}} {
		for _, m := range lint.RunAll(Dir, values, Namespace, lint.WithKubeVersion(kv)).Messages {
			if m.Severity >= support.WarningSev {
				t.Errorf("helm lint %v: %v", values, m)
			} else {
				t.Logf("helm lint %v: %v", values, m)
			}
		}
	}
}
