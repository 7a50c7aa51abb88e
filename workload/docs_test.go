package workload_test

import (
	"flag"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/credgate/credgate/workload"
)

var update = flag.Bool("update", false, "rewrite the kinds table of docs/workloads.md")

const (
	docsFile   = "../docs/workloads.md"
	tableStart = "| --- | --- | --- | --- | --- |\n"
	tableEnd   = "<!-- end kinds -->"
)

// kindsTable renders the rows of docs/workloads.md's table of workload.Kinds.
func kindsTable() string {
	var b strings.Builder
	for _, k := range workload.Kinds {
		admitted := "no (`credgate eval` only)"
		if k.Admitted() {
			admitted = strings.Join(k.Operations, ", ")
		}
		if k.FixedOnUpdate {
			admitted += "; an UPDATE that changes a credential label is refused"
		}
		templates := "the Pod itself"
		if !k.IsPod() {
			var ps []string
			for _, t := range k.Templates {
				p := "`" + strings.Join(t.Path, ".") + "`"
				if t.Name != "" {
					what := "<key>"
					if t.ItemName != "" {
						what = "<" + t.ItemName + ">"
					}
					p += " (named `" + strings.ReplaceAll(t.Name, "%s", what) + "`)"
				}
				ps = append(ps, p)
			}
			templates = strings.Join(ps, ", ")
		}
		fmt.Fprintf(&b, "| `%s` | %s | %s | %s | %s |\n", k.GVK.GroupVersion().String()+" "+k.GVK.Kind, admitted, templates, k.LabelFlow, k.Controller)
	}
	return b.String()
}

// TestDocsListKinds: docs/workloads.md lists every kind credgate knows, as workload.Kinds
// describes it (-update rewrites the table; make generate runs it).
func TestDocsListKinds(t *testing.T) {
	data, err := os.ReadFile(docsFile)
	if err != nil {
		t.Fatal(err)
	}
	doc := string(data)
	i, j := strings.Index(doc, tableStart), strings.Index(doc, tableEnd)
	if i < 0 || j < i {
		t.Fatalf("%s has no kinds table (a header row ending %q, then %q)", docsFile, tableStart, tableEnd)
	}
	got, want := doc[i+len(tableStart):j], kindsTable()
	if *update {
		if err := os.WriteFile(docsFile, []byte(doc[:i+len(tableStart)]+want+doc[j:]), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("%s's table of kinds is not workload.Kinds: run make generate (-want +got):\n%s", docsFile, diff)
	}
}
