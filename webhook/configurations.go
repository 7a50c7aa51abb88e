package webhook

import (
	"fmt"
	"strings"

	"github.com/credgate/credgate/workload"
)

// The webhook configurations are generated from Kinds (make generate): one mutating and one
// validating webhook per admitted kind, called only for objects that carry a credential label
// where credgate reads them — on the object or on any of its pod templates (matchConditions) —
// and, for a kind whose credential labels are fixed on update (Pods), one more validating
// webhook for updates that change them. Two renderings: manifests/webhook/webhooks.yaml
// (kustomize) and charts/credgate/templates/webhooks.yaml (Helm).

// ManifestFile and ChartFile are the generated files, from the repository's root.
const (
	ManifestFile = "manifests/webhook/webhooks.yaml"
	ChartFile    = "charts/credgate/templates/webhooks.yaml"
)

// labelCondition is the CEL test of a labels map expression for a credential label.
func labelCondition(labels string) string {
	return labels + ".exists(k, k.startsWith('" + workload.LabelPrefix + "'))"
}

// MatchCondition is the CEL expression that sends credgate an object of kind k: true when a
// credential label is on the object, on metadata its templates inherit, or on any of its pod
// templates. Every member on the way is tested with has() first — a mutating webhook sees the
// object before the API server validates it, and a member absent would be an error, not false.
func MatchCondition(k *workload.Kind) string {
	var parts []string
	seen := map[string]bool{}
	add := func(path []string) {
		if e := conditionAt("object", path, 0); !seen[e] {
			seen[e] = true
			parts = append(parts, e)
		}
	}
	add([]string{"metadata"})
	for _, p := range k.Inherit {
		add(p)
	}
	for _, t := range k.Templates {
		add(append(append([]string{}, t.Path...), "metadata"))
	}
	for i, p := range parts {
		parts[i] = "(" + p + ")"
	}
	return strings.Join(parts, " || ")
}

// conditionAt is the test for credential labels in the metadata at path from base (path ends in
// "metadata"); depth numbers the variables of nested exists() over wildcards.
func conditionAt(base string, path []string, depth int) string {
	var tests []string
	expr := base
	for i, p := range path {
		switch p {
		case workload.AnyMember:
			v := fmt.Sprintf("m%d", depth)
			return join(tests, expr+".exists("+v+", "+conditionAt(expr+"["+v+"]", path[i+1:], depth+1)+")")
		case workload.AnyItem:
			v := fmt.Sprintf("i%d", depth)
			return join(tests, expr+".exists("+v+", "+conditionAt(v, path[i+1:], depth+1)+")")
		}
		expr += "." + p
		// object.metadata is always there.
		if base != "object" || i != 0 || p != "metadata" {
			tests = append(tests, "has("+expr+")")
		}
	}
	tests = append(tests, "has("+expr+".labels)")
	return join(tests, labelCondition(expr+".labels"))
}

func join(tests []string, last string) string {
	return strings.Join(append(tests, last), " && ")
}

// fixedCondition sends credgate a pod update only when it changes a credential label or a
// credgate.dev/ annotation: the keys compared both ways, each key's value too, an absent map
// taken as an empty one.
const fixedCondition = `!(
(!has(oldObject.metadata.labels) || oldObject.metadata.labels.all(k, !k.startsWith('credentials.credgate.dev/') || (has(object.metadata.labels) && k in object.metadata.labels && object.metadata.labels[k] == oldObject.metadata.labels[k]))) &&
(!has(object.metadata.labels) || object.metadata.labels.all(k, !k.startsWith('credentials.credgate.dev/') || (has(oldObject.metadata.labels) && k in oldObject.metadata.labels))) &&
(!has(oldObject.metadata.annotations) || oldObject.metadata.annotations.all(k, !k.startsWith('credgate.dev/') || (has(object.metadata.annotations) && k in object.metadata.annotations && object.metadata.annotations[k] == oldObject.metadata.annotations[k]))) &&
(!has(object.metadata.annotations) || object.metadata.annotations.all(k, !k.startsWith('credgate.dev/') || (has(oldObject.metadata.annotations) && k in oldObject.metadata.annotations)))
)`

const fixedComment = `# Credential labels and credgate's annotations are fixed when a pod is created (kubectl label
# pod would otherwise change who ` + "`kubectl get pods -l credentials.credgate.dev/<name>`" + ` lists).
# pods/status keeps the metadata an update sends; pods/ephemeralcontainers and pods/resize
# reset it to the stored pod's, and are listed only so that this stays true if they change.
# The condition compares the keys both ways, each key's value too, and treats an absent map
# as an empty one.`

// registration is one webhook of a configuration.
type registration struct {
	name, path, group, version string
	resources, operations      []string
	condName, cond             string
	comment                    string
}

func registrations() (mutating, validating []registration) {
	for _, k := range Kinds {
		ops := make([]string, len(k.Operations))
		for i, op := range k.Operations {
			ops[i] = string(op)
		}
		r := registration{group: k.GVK.Group, version: k.GVK.Version, resources: []string{k.Workload.Resource}, operations: ops,
			condName: "requests-credentials", cond: MatchCondition(k.Workload)}
		lower := strings.ToLower(k.GVK.Kind)
		m, v := r, r
		m.name, m.path = "m"+lower+".credgate.dev", k.Path
		v.name, v.path = "v"+lower+".credgate.dev", k.ValidatePath
		mutating, validating = append(mutating, m), append(validating, v)
	}
	for _, k := range Kinds {
		if !k.FixedOnUpdate {
			continue
		}
		res := k.Workload.Resource
		validating = append(validating, registration{name: "v" + strings.ToLower(k.GVK.Kind) + "update.credgate.dev", path: k.ValidatePath,
			group: k.GVK.Group, version: k.GVK.Version, operations: []string{"UPDATE"},
			resources: []string{res, res + "/status", res + "/ephemeralcontainers", res + "/resize"},
			condName:  "changes-credential-labels-or-annotations", cond: fixedCondition, comment: fixedComment})
	}
	return mutating, validating
}

const manifestHeader = `# credgate's admission webhooks, generated from the kinds credgate knows (package workload:
# workload.Kinds) by make generate — edit those, not this file. Each is called only for objects
# that carry a credentials.credgate.dev/ label, on themselves or on a pod template
# (matchConditions), so an outage of credgate never blocks other workloads; for those that do,
# it fails closed (failurePolicy: Fail). The one exception, vpodupdate, is called only for pod
# updates that change a credential label or a credgate.dev/ annotation, which it refuses: no
# other update of a pod (a controller removing a finalizer, the kubelet writing status)
# depends on credgate. credgate's own namespaces (credgate-system, credgate-refresher) and
# kube-system are never sent. The CA bundle is injected by the certificate overlay in use
# (self-managed or cert-manager).
`

const chartHeader = `{{- /*
credgate's admission webhooks, generated with manifests/webhook/webhooks.yaml from the kinds
credgate knows (package workload: workload.Kinds) by make generate — edit those, not this file
(charts/chart_test.go compares the two renderings too): each is called only for objects that
carry a credentials.credgate.dev/ label, on themselves or on a pod template (matchConditions),
so an outage of credgate never blocks other workloads, and fails closed (failurePolicy: Fail)
for those; vpodupdate only for pod updates that change a credential label or a credgate.dev/
annotation. credgate's own namespaces and webhook.excludedNamespaces are never sent. The CA
bundle is filled by credgate (certificates.mode self) or by cert-manager's CA injector
(cert-manager).
*/ -}}
`

const chartMeta = `  labels:
    {{- include "credgate.labels" $ | nindent 4 }}
  {{- if eq .Values.certificates.mode "cert-manager" }}
  annotations:
    cert-manager.io/inject-ca-from: {{ include "credgate.namespace" . }}/credgate-serving-cert
  {{- end }}
`

// Configurations renders the webhook configurations: for kustomize (manifests/webhook), or as
// the Helm chart's template.
func Configurations(chart bool) []byte {
	mutating, validating := registrations()
	var b strings.Builder
	if chart {
		b.WriteString(chartHeader)
	} else {
		b.WriteString(manifestHeader)
	}
	for i, c := range []struct {
		kind  string
		hooks []registration
	}{{"MutatingWebhookConfiguration", mutating}, {"ValidatingWebhookConfiguration", validating}} {
		if i > 0 {
			b.WriteString("---\n")
		}
		b.WriteString("apiVersion: admissionregistration.k8s.io/v1\nkind: " + c.kind + "\nmetadata:\n  name: credgate\n")
		if chart {
			b.WriteString(chartMeta)
		}
		b.WriteString("webhooks:\n")
		for _, r := range c.hooks {
			writeRegistration(&b, r, chart, c.kind == "MutatingWebhookConfiguration")
		}
	}
	return []byte(b.String())
}

func writeRegistration(b *strings.Builder, r registration, chart, mutating bool) {
	if r.comment != "" {
		for line := range strings.SplitSeq(r.comment, "\n") {
			b.WriteString("  " + line + "\n")
		}
	}
	b.WriteString("  - name: " + r.name + "\n")
	if chart {
		fmt.Fprintf(b, "    {{- include \"credgate.webhookClientConfig\" (list $ %q) | nindent 4 }}\n", r.path)
	} else {
		b.WriteString("    admissionReviewVersions: [v1]\n    clientConfig:\n      service:\n        name: credgate\n        namespace: credgate-system\n")
		b.WriteString("        path: " + r.path + "\n        port: 443\n")
	}
	fmt.Fprintf(b, "    rules:\n      - apiGroups: [%q]\n        apiVersions: [%q]\n        operations: [%s]\n        resources: [%s]\n        scope: Namespaced\n",
		r.group, r.version, strings.Join(r.operations, ", "), quoteAll(r.resources))
	b.WriteString("    matchConditions:\n      - name: " + r.condName + "\n        expression: >-\n")
	for line := range strings.SplitSeq(r.cond, "\n") {
		b.WriteString("          " + line + "\n")
	}
	if chart {
		b.WriteString("    {{- include \"credgate.webhookPolicy\" $ | nindent 4 }}\n")
	} else {
		b.WriteString("    namespaceSelector:\n      matchExpressions:\n        - key: kubernetes.io/metadata.name\n          operator: NotIn\n" +
			"          values: [credgate-system, credgate-refresher, kube-system]\n    failurePolicy: Fail\n    sideEffects: None\n    timeoutSeconds: 5\n")
	}
	if mutating {
		b.WriteString("    reinvocationPolicy: IfNeeded\n")
	}
}

func quoteAll(s []string) string {
	q := make([]string, len(s))
	for i, v := range s {
		q[i] = fmt.Sprintf("%q", v)
	}
	return strings.Join(q, ", ")
}
