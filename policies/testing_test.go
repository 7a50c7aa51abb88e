package policies_test

import (
	"regexp"
	"strings"
	"testing"

	"github.com/credgate/credgate/policies"
)

// teamPolicy denies, in production, a pod without a team label; it warns about big pods, a
// rule no test below evaluates (lines 12-14).
const teamPolicy = `package credgate.admission

import data.credgate.lib

deny contains lib.violation("team-label", "", msg) if {
	input.namespace.labels.env == "prod"
	not input.pod.metadata.labels.team
	msg := "label your pod with team"
}

# Not tested.
warn contains lib.violation("big-pod", "", "many containers") if {
	count(input.pod.spec.containers) > 3
}
`

// teamTests: the first passes, the second expects a denial of a pod that has the label
// (line 14).
const teamTests = `package credgate.team_test

import data.credgate.test as t

prod(inp) := object.union(inp, {"namespace": {"name": "p", "labels": {"env": "prod"}}})

test_team_label_required if {
	["team-label", ""] in t.denied(prod(t.input_for(t.trainer, [])))
}

test_team_label_wrong if {
	labelled := object.union(t.trainer, {"metadata": {"labels": {"team": "a"}}})
	inp := prod(t.input_for(labelled, []))
	["team-label", ""] in t.denied(inp)
}
`

func runTeamTests(t *testing.T, files map[string]string, opts policies.TestOptions) (policies.TestReport, string) {
	t.Helper()
	user := policies.Source{Modules: map[string]string{}, Tests: map[string]string{}}
	for name, text := range files {
		if strings.HasSuffix(name, "_test.rego") {
			user.Tests[name] = text
		} else {
			user.Modules[name] = text
		}
	}
	src, err := policies.Merge(policies.Builtin(), user)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := policies.RunTestsWith(t.Context(), src, opts)
	if err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	rep.PrintWith(&out, policies.PrintOptions{Uncovered: true})
	return rep, out.String()
}

// TestFailingUserTestIsFocused: a failing user test is named with its file and line, then the
// expression that failed (with its values), then the trace's lines in the user's files, the
// built-in ones between them folded into a count — far shorter than the whole trace, which
// -v (Verbose) still shows.
func TestFailingUserTestIsFocused(t *testing.T) {
	rep, out := runTeamTests(t, map[string]string{"team/team.rego": teamPolicy, "team/team_test.rego": teamTests}, policies.TestOptions{})
	if rep.Failed() != 1 {
		t.Fatalf("%d failed, want 1:\n%s", rep.Failed(), out)
	}
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`(?m)^FAIL  data\.credgate\.team_test\.test_team_label_wrong \(team/team_test\.rego:11\)\n` +
			`      team/team_test\.rego:14: this expression failed:\n` +
			`        \["team-label", ""\] in t\.denied\(inp\)\n`),
		regexp.MustCompile(`(?m)^ +set\(\)$`), // the value of t.denied(inp)
		regexp.MustCompile(`(?m)^      trace \(your files; use -v for the whole trace\):\n        team/team_test\.rego:11 +Enter data\.credgate\.team_test\.test_team_label_wrong$`),
		regexp.MustCompile(`(?m)^        … \d+ lines in built-in files$`),
		regexp.MustCompile(`(?m)^        team/team\.rego:5 +[| ]*Enter data\.credgate\.admission\.deny$`),
		regexp.MustCompile(`(?m)^        team/team\.rego:7 +[| ]*Fail not input\.pod\.metadata\.labels\.team$`),
	} {
		if !want.MatchString(out) {
			t.Errorf("output lacks %s:\n%s", want, out)
		}
	}
	failure, _, _ := strings.Cut(out, " passed, 1 failed")
	if strings.Contains(failure, "builtin/") {
		t.Errorf("the failure shows lines of built-in files:\n%s", failure)
	}

	var verbose strings.Builder
	rep.PrintWith(&verbose, policies.PrintOptions{Verbose: true})
	full := strings.Count(verbose.String(), "builtin/fixtures_test.rego:")
	if full == 0 || strings.Count(out, "\n")*2 > strings.Count(verbose.String(), "\n") {
		t.Errorf("verbose output (%d lines, %d in the fixtures) is not the whole trace, or the focused one (%d lines) is not much shorter",
			strings.Count(verbose.String(), "\n"), full, strings.Count(out, "\n"))
	}
}

// TestBuiltinTestFailingWithUserPolicy: a built-in test that fails because a user policy adds
// to the set it reads shows the built-in test's failing expression, says why it may fail, and
// focuses its trace on the user's rule.
func TestBuiltinTestFailingWithUserPolicy(t *testing.T) {
	everywhere := `package credgate.admission

deny contains {"rule": "always", "credential": "", "message": "no"} if {
	input.request.operation == "CREATE"
}
`
	rep, out := runTeamTests(t, map[string]string{"mine/always.rego": everywhere}, policies.TestOptions{Run: `^data\.credgate\.builtin_test\.test_every_missing_credential_reported$`})
	if rep.Failed() != 1 {
		t.Fatalf("%d failed, want the built-in test:\n%s", rep.Failed(), out)
	}
	for _, want := range []string{
		"a built-in test, failing with your policies: t.denied and t.warned read your deny and warn sets too",
		"builtin/unknown_credential_test.rego:",
		"mine/always.rego:3",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

// TestCoveragePerFile: coverage is reported per user file, from the user's tests only (the
// built-in tests evaluate user rules too, which tests nothing of them), with the lines not
// evaluated; the built-in files get one line.
func TestCoveragePerFile(t *testing.T) {
	_, out := runTeamTests(t, map[string]string{
		"team/team.rego": teamPolicy, "team/team_test.rego": teamTests,
		"team/untested.rego": "package credgate.admission\n\nwarn contains \"x\" if {\n\tinput.request.namespace == \"prod\"\n}\n",
	}, policies.TestOptions{})
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`(?m)^coverage \(the lines of policy your tests evaluate; of the built-in files, their own tests\):$`),
		regexp.MustCompile(`(?m)^  team/team\.rego +66\.7%  \(4 of 6 lines\)$`),
		regexp.MustCompile(`(?m)^  team/untested\.rego +0\.0%  \(0 of 2 lines; none of your tests evaluates it\)$`),
		regexp.MustCompile(`(?m)^  built-in files +\d+\.\d%  \(\d+ of \d+ lines, \d+ files\)$`),
		regexp.MustCompile(`(?m)^not covered:\n  team/team\.rego:12-13\n  team/untested\.rego:3-4\n`),
	} {
		if !want.MatchString(out) {
			t.Errorf("output lacks %s:\n%s", want, out)
		}
	}
	if strings.Contains(out, "builtin/lib.rego") {
		t.Errorf("built-in files are listed one by one:\n%s", out)
	}

	// Without user tests, no user line is covered, though the built-in tests evaluate them.
	_, out = runTeamTests(t, map[string]string{"team/team.rego": teamPolicy}, policies.TestOptions{})
	if want := regexp.MustCompile(`(?m)^  team/team\.rego +0\.0%  \(0 of 6 lines; you have no tests\)$`); !want.MatchString(out) {
		t.Errorf("output lacks %s:\n%s", want, out)
	}
}

// TestRunSelectsTests: TestOptions.Run selects tests by package-qualified name, as opa test
// --run does; the coverage is that of the tests run; a pattern matching nothing says so.
func TestRunSelectsTests(t *testing.T) {
	files := map[string]string{"team/team.rego": teamPolicy, "team/team_test.rego": teamTests}
	rep, out := runTeamTests(t, files, policies.TestOptions{Run: `^data\.credgate\.team_test\.test_team_label_required$`})
	if len(rep.Results) != 1 || rep.Results[0].Name != "test_team_label_required" || rep.Failed() != 0 {
		t.Fatalf("ran %d tests, want test_team_label_required alone:\n%s", len(rep.Results), out)
	}
	for _, want := range []string{"1 passed, 0 failed\n", "built-in files  (no built-in test ran)\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}

	rep, out = runTeamTests(t, files, policies.TestOptions{Run: "no_such_test"})
	if len(rep.Results) != 0 || !strings.Contains(out, `no test matches --run "no_such_test"`) {
		t.Errorf("ran %d tests; output:\n%s", len(rep.Results), out)
	}

	if _, err := policies.RunTestsWith(t.Context(), policies.Builtin(), policies.TestOptions{Run: "("}); err == nil || !strings.Contains(err.Error(), `test name pattern "("`) {
		t.Errorf("an invalid pattern: %v", err)
	}
}
