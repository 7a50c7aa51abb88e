package manifests

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"unicode"

	"sigs.k8s.io/yaml"
)

// The alerts of manifests/monitoring are held to the code and the docs here, without
// Prometheus: a metric renamed in credgate's code, a webhook added to manifests/webhook or a
// runbook heading renamed in docs/operations.md fails these tests, not a silent alert.

// externalMetrics are the metrics the rules read that credgate does not export: Prometheus's
// own up, and the API server's admission webhook metrics (k8s.io/apiserver,
// pkg/admission/metrics: apiserver_admission_webhook_admission_duration_seconds is STABLE, the
// rejection count ALPHA). Adding one here is a claim that it exists outside credgate.
var externalMetrics = map[string]bool{
	"up": true,
	"apiserver_admission_webhook_rejection_count":                   true,
	"apiserver_admission_webhook_request_total":                     true,
	"apiserver_admission_webhook_admission_duration_seconds_bucket": true,
}

// severities are the values of an alert's severity label.
var severities = map[string]bool{"critical": true, "warning": true}

// runbooks is the document every runbook_url points into, repository-relative.
const runbooks = "docs/operations.md"

type alertRule struct {
	Alert         string            `json:"alert"`
	Record        string            `json:"record"`
	Expr          string            `json:"expr"`
	For           string            `json:"for"`
	KeepFiringFor string            `json:"keep_firing_for"`
	Labels        map[string]string `json:"labels"`
	Annotations   map[string]string `json:"annotations"`
}

type ruleGroup struct {
	Name     string      `json:"name"`
	Interval string      `json:"interval"`
	Rules    []alertRule `json:"rules"`
}

// repoRoot is the repository's root: the parent of this package's directory, where tests run.
func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	mod, err := os.ReadFile(filepath.Join(root, "go.mod"))
	if err != nil || !strings.HasPrefix(string(mod), "module github.com/credgate/credgate\n") {
		t.Fatalf("%s is not credgate's repository root (go.mod: %v)", root, err)
	}
	return root
}

// metricDefinition is a metric's name where credgate defines it: the Name of a
// prometheus.CounterOpts, GaugeOpts or HistogramOpts. Only definitions count — a string
// elsewhere (bench/scale reads credgate_admission_requests_total by name) would keep a
// renamed metric "registered".
var metricDefinition = regexp.MustCompile(`\bName:\s*"(credgate_[a-z0-9_]+)"`)

// registeredMetrics returns the credgate_ metrics the repository's Go code (tests excluded)
// defines, by name, with the file that defines each. It walks the repository from its root,
// skipping what is not credgate's code: hidden directories, bin/ (tools built from source),
// testdata, and other modules (a go.mod of their own).
func registeredMetrics(t *testing.T, root string) map[string]string {
	t.Helper()
	names := map[string]string{}
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if path == root {
				return nil
			}
			name := d.Name()
			if strings.HasPrefix(name, ".") || name == "bin" || name == "testdata" {
				return filepath.SkipDir
			}
			if _, err := os.Stat(filepath.Join(path, "go.mod")); err == nil {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		src, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		for _, m := range metricDefinition.FindAllSubmatch(src, -1) {
			names[string(m[1])] = rel
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return names
}

// PromQL, as far as finding the metric names of an expression takes: strings, label matchers,
// ranges and the label lists of by, without, on, ignoring, group_left and group_right are
// removed; what is left is functions and aggregations (a name before "("), keywords, numbers
// and durations, and metric names.
var (
	promString   = regexp.MustCompile(`"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|` + "`[^`]*`")
	promMatchers = regexp.MustCompile(`\{[^}]*\}`)
	promRange    = regexp.MustCompile(`\[[^\]]*\]`)
	promLabels   = regexp.MustCompile(`\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)`)
	promToken    = regexp.MustCompile(`[A-Za-z_:][A-Za-z0-9_:]*|[0-9][A-Za-z0-9_.]*`)
	promKeywords = map[string]bool{
		"and": true, "or": true, "unless": true, "by": true, "without": true, "on": true, "ignoring": true,
		"group_left": true, "group_right": true, "bool": true, "offset": true, "atan2": true, "inf": true, "nan": true,
	}
)

// metricNames returns the metric names expr reads, in order, each once.
func metricNames(expr string) []string {
	e := promString.ReplaceAllString(expr, `""`)
	e = promMatchers.ReplaceAllString(e, " ")
	e = promRange.ReplaceAllString(e, " ")
	e = promLabels.ReplaceAllString(e, " ")
	var names []string
	for _, loc := range promToken.FindAllStringIndex(e, -1) {
		tok := e[loc[0]:loc[1]]
		if unicode.IsDigit(rune(tok[0])) || promKeywords[strings.ToLower(tok)] {
			continue
		}
		if rest := strings.TrimLeft(e[loc[1]:], " \t\r\n"); strings.HasPrefix(rest, "(") {
			continue // a function or an aggregation
		}
		if !slices.Contains(names, tok) {
			names = append(names, tok)
		}
	}
	return names
}

// unknownMetrics returns the metrics of expr that neither credgate registers (a histogram's
// _bucket, _count and _sum series count as its own) nor externalMetrics lists.
func unknownMetrics(expr string, registered map[string]string) []string {
	var unknown []string
	for _, name := range metricNames(expr) {
		if externalMetrics[name] {
			continue
		}
		base := name
		for _, suffix := range []string{"_bucket", "_count", "_sum"} {
			if b, ok := strings.CutSuffix(name, suffix); ok && registered[b] != "" {
				base = b
			}
		}
		if registered[base] == "" {
			unknown = append(unknown, name)
		}
	}
	return unknown
}

// githubAnchor is the anchor GitHub gives a heading: lower case, spaces to hyphens, every
// character but letters, digits, hyphens and underscores dropped.
func githubAnchor(heading string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(heading) {
		switch {
		case r == ' ':
			b.WriteRune('-')
		case unicode.IsLetter(r), unicode.IsDigit(r), r == '-', r == '_':
			b.WriteRune(r)
		}
	}
	return b.String()
}

// headingAnchors returns the anchors of the Markdown headings of doc (none inside fenced code:
// a shell comment is no heading), numbered -1, -2, … when repeated, as GitHub does.
func headingAnchors(doc []byte) map[string]bool {
	anchors := map[string]bool{}
	seen := map[string]int{}
	fence := ""
	sc := bufio.NewScanner(bytes.NewReader(doc))
	for sc.Scan() {
		line := sc.Text()
		trimmed := strings.TrimLeft(line, " ")
		if fence != "" {
			if strings.HasPrefix(trimmed, fence) {
				fence = ""
			}
			continue
		}
		if strings.HasPrefix(trimmed, "```") || strings.HasPrefix(trimmed, "~~~") {
			fence = trimmed[:3]
			continue
		}
		level := len(line) - len(strings.TrimLeft(line, "#"))
		if level < 1 || level > 6 || !strings.HasPrefix(line[level:], " ") {
			continue
		}
		a := githubAnchor(strings.TrimSpace(strings.TrimRight(strings.TrimSpace(line[level:]), "#")))
		if n := seen[a]; n > 0 {
			anchors[a+"-"+strconv.Itoa(n)] = true
		} else {
			anchors[a] = true
		}
		seen[a]++
	}
	return anchors
}

// monitoringRules builds manifests/monitoring as kubectl apply -k does and returns its
// PrometheusRule's groups, decoded strictly (a misspelt field of a rule fails here).
func monitoringRules(t *testing.T) []ruleGroup {
	t.Helper()
	objs, err := Objects("monitoring")
	if err != nil {
		t.Fatal(err)
	}
	if len(objs) != 1 {
		t.Fatalf("manifests/monitoring renders %d objects, want the PrometheusRule alone", len(objs))
	}
	rule := objs[0]
	if rule.GetAPIVersion() != "monitoring.coreos.com/v1" || rule.GetKind() != "PrometheusRule" {
		t.Fatalf("manifests/monitoring renders a %s %s, want a monitoring.coreos.com/v1 PrometheusRule", rule.GetAPIVersion(), rule.GetKind())
	}
	if rule.GetNamespace() != "credgate-system" {
		t.Errorf("the PrometheusRule is in namespace %q, want credgate-system, beside credgate serve", rule.GetNamespace())
	}
	spec, err := json.Marshal(rule.Object["spec"])
	if err != nil {
		t.Fatal(err)
	}
	var s struct {
		Groups []ruleGroup `json:"groups"`
	}
	dec := json.NewDecoder(bytes.NewReader(spec))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&s); err != nil {
		t.Fatalf("the PrometheusRule's spec: %v", err)
	}
	if len(s.Groups) == 0 {
		t.Fatal("the PrometheusRule has no rule group")
	}
	return s.Groups
}

// TestMonitoringKustomization: manifests/monitoring's kustomization lists the rule file.
func TestMonitoringKustomization(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("monitoring", "kustomization.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var k struct {
		Resources []string `json:"resources"`
	}
	if err := yaml.Unmarshal(data, &k); err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(k.Resources, "prometheusrule.yaml") {
		t.Errorf("manifests/monitoring/kustomization.yaml lists %q, not prometheusrule.yaml", k.Resources)
	}
}

// TestMonitoringMetricsExist: every metric an alert reads is one credgate's code registers
// (found by its definition in the Go sources, so that renaming a metric in the code, or
// misspelling it here, fails this test) or one of externalMetrics.
func TestMonitoringMetricsExist(t *testing.T) {
	registered := registeredMetrics(t, repoRoot(t))
	// The walk found the metrics: were it to find none, every credgate_ name would fail
	// below, but say why.
	for _, name := range []string{"credgate_admission_requests_total", "credgate_aws_refreshes_total"} {
		if registered[name] == "" {
			t.Fatalf("no definition of %s found in the repository's Go code (found %d metrics): is the walk from the root broken?", name, len(registered))
		}
	}
	used := map[string]bool{}
	for _, g := range monitoringRules(t) {
		for _, r := range g.Rules {
			names := metricNames(r.Expr)
			if len(names) == 0 {
				t.Errorf("%s: no metric found in %q", r.Alert, r.Expr)
			}
			for _, n := range names {
				used[n] = true
			}
			if unknown := unknownMetrics(r.Expr, registered); len(unknown) > 0 {
				t.Errorf("%s reads %q, which credgate's code does not register (and which is not one of the external metrics)", r.Alert, unknown)
			}
		}
	}
	// What the alerts promise to watch: failed admissions, refresher errors, expiring
	// credentials, policy reload errors, audit write errors, both Deployments being down.
	for _, name := range []string{
		"credgate_admission_requests_total", "apiserver_admission_webhook_rejection_count",
		"credgate_aws_refreshes_total", "credgate_gcp_refreshes_total",
		"credgate_aws_credentials_expiry_timestamp_seconds", "credgate_gcp_access_token_expiry_timestamp_seconds",
		"credgate_policy_reload_errors_total", "credgate_audit_write_errors_total", "up",
	} {
		if !used[name] {
			t.Errorf("no alert reads %s", name)
		}
	}
}

// TestMonitoringCatchesRenamedMetrics: the check above fails for a metric credgate does not
// register — one renamed in the code and not in the rules, or misspelt — and only for it.
func TestMonitoringCatchesRenamedMetrics(t *testing.T) {
	registered := map[string]string{
		"credgate_admission_requests_total":   "webhook/metrics.go",
		"credgate_admission_duration_seconds": "webhook/metrics.go",
		"credgate_policy_reload_errors_total": "policies/watch.go",
	}
	for _, tc := range []struct {
		expr string
		want []string
	}{
		{`sum by (webhook) (rate(credgate_admission_requests_total{decision="error"}[5m])) > 0`, nil},
		{`sum by (webhook) (rate(credgate_admission_request_total{decision="error"}[5m])) > 0`, []string{"credgate_admission_request_total"}},
		{`histogram_quantile(0.99, sum by (le) (rate(credgate_admission_duration_seconds_bucket[5m]))) > 1`, nil},
		{`histogram_quantile(0.99, sum by (le) (rate(credgate_admission_latency_seconds_bucket[5m]))) > 1`, []string{"credgate_admission_latency_seconds_bucket"}},
		{`increase(credgate_policy_reload_errors_total[1h]) > 0
		    or (credgate_policy_reload_errors_total unless credgate_policy_reload_errors_total offset 1h)`, nil},
		{`credgate_policy_reload_errors_total unless on (instance) credgate_policy_revision_info`, []string{"credgate_policy_revision_info"}},
		{`absent(up{job="credgate"} == 1)`, nil},
		{`sum by (name) (rate(apiserver_admission_webhook_rejection_count{name=~"mpod\\.credgate\\.dev", x="credgate_y"}[5m])) > 0`, nil},
		{`rate(apiserver_admission_webhook_rejected_total[5m]) > 0`, []string{"apiserver_admission_webhook_rejected_total"}},
	} {
		if got := unknownMetrics(tc.expr, registered); !slices.Equal(got, tc.want) {
			t.Errorf("unknownMetrics(%s) = %q, want %q", tc.expr, got, tc.want)
		}
	}
}

// TestMonitoringAnnotations: every alert has a severity, a summary, a description and a
// runbook_url docs/operations.md#<its name in lower case>, a heading of its own there.
func TestMonitoringAnnotations(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join(repoRoot(t), filepath.FromSlash(runbooks)))
	if err != nil {
		t.Fatal(err)
	}
	anchors := headingAnchors(doc)
	names := map[string]bool{}
	for _, g := range monitoringRules(t) {
		if g.Name == "" || len(g.Rules) == 0 {
			t.Errorf("rule group %q: a name and rules are required", g.Name)
		}
		for _, r := range g.Rules {
			if r.Alert == "" || r.Record != "" {
				t.Errorf("group %s: %q is not an alert (recording rules have no runbook)", g.Name, r.Expr)
				continue
			}
			if names[r.Alert] {
				t.Errorf("alert %s is defined twice", r.Alert)
			}
			names[r.Alert] = true
			if strings.TrimSpace(r.Expr) == "" {
				t.Errorf("%s has no expression", r.Alert)
			}
			if !severities[r.Labels["severity"]] {
				t.Errorf("%s: severity %q, want critical or warning", r.Alert, r.Labels["severity"])
			}
			for _, a := range []string{"summary", "description", "runbook_url"} {
				if strings.TrimSpace(r.Annotations[a]) == "" {
					t.Errorf("%s has no %s", r.Alert, a)
				}
			}
			want := runbooks + "#" + strings.ToLower(r.Alert)
			if got := r.Annotations["runbook_url"]; got != want {
				t.Errorf("%s: runbook_url %q, want %q", r.Alert, got, want)
			}
			if !anchors[strings.ToLower(r.Alert)] {
				t.Errorf("%s: %s has no heading %q (anchor #%s) for its runbook", r.Alert, runbooks, r.Alert, strings.ToLower(r.Alert))
			}
		}
	}
}

// webhookNameMatcher is the matcher of the API server's webhook name label in an expression.
var webhookNameMatcher = regexp.MustCompile(`\bname\s*=~\s*"((?:[^"\\]|\\.)*)"`)

// TestMonitoringWebhookNames: each expression on the API server's webhook metrics selects
// exactly credgate's webhooks, those of manifests/webhook.
func TestMonitoringWebhookNames(t *testing.T) {
	objs, err := Objects("webhook")
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, o := range objs {
		hooks, _ := o.Object["webhooks"].([]any)
		for _, h := range hooks {
			want = append(want, h.(map[string]any)["name"].(string))
		}
	}
	sort.Strings(want)
	if len(want) == 0 {
		t.Fatal("manifests/webhook has no webhook")
	}
	checked := 0
	for _, g := range monitoringRules(t) {
		for _, r := range g.Rules {
			if !strings.Contains(r.Expr, "apiserver_admission_webhook_") {
				continue
			}
			checked++
			ms := webhookNameMatcher.FindAllStringSubmatch(r.Expr, -1)
			if len(ms) == 0 {
				t.Errorf("%s reads the API server's webhook metrics without selecting credgate's webhooks (name=~\"…\")", r.Alert)
			}
			for _, m := range ms {
				// The PromQL string `[a-z]+\\.credgate\\.dev` is the regular expression
				// [a-z]+\.credgate\.dev, anchored at both ends as PromQL anchors it.
				re, err := regexp.Compile("^(?:" + strings.ReplaceAll(m[1], `\\`, `\`) + ")$")
				if err != nil {
					t.Fatalf("%s: %v", r.Alert, err)
				}
				for _, name := range want {
					if !re.MatchString(name) {
						t.Errorf("%s does not select the webhook %s of manifests/webhook", r.Alert, name)
					}
				}
				for _, other := range []string{"validation.gatekeeper.sh", "mpod.credgate.dev.example.com", "credgate.dev"} {
					if re.MatchString(other) {
						t.Errorf("%s selects the webhook %s, not credgate's", r.Alert, other)
					}
				}
			}
		}
	}
	if checked == 0 {
		t.Error("no alert reads the API server's webhook metrics")
	}
}

// TestHeadingAnchors: the anchors GitHub gives headings.
func TestHeadingAnchors(t *testing.T) {
	doc := "# Operating credgate\n## API server or etcd outage\n```sh\n# not a heading\n```\n### CredgateWebhookDown\n## Figures\n## Figures\n#nospace\n"
	got := headingAnchors([]byte(doc))
	want := map[string]bool{"operating-credgate": true, "api-server-or-etcd-outage": true, "credgatewebhookdown": true, "figures": true, "figures-1": true}
	if !maps.Equal(got, want) {
		t.Errorf("anchors %v, want %v", got, want)
	}
	if a := githubAnchor("Audit disk full or read-only (`--audit-on-error`)"); a != "audit-disk-full-or-read-only---audit-on-error" {
		t.Errorf("anchor %q", a)
	}
}
