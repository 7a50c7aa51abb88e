package main

import (
	"os"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// Every flag of the long-running commands is documented in docs/install.md's reference, in
// the section of its command; a flag added without a line there fails here.
func TestServerFlagsAreDocumented(t *testing.T) {
	doc, err := os.ReadFile("../../docs/install.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, cmd := range []*cobra.Command{newServeCommand(), newRefresherCommand()} {
		heading := "### `credgate " + cmd.Name() + "`"
		_, section, ok := strings.Cut(string(doc), heading)
		if !ok {
			t.Fatalf("docs/install.md has no %q section", heading)
		}
		if next := strings.Index(section, "\n### "); next >= 0 {
			section = section[:next]
		}
		n := 0
		cmd.Flags().VisitAll(func(f *pflag.Flag) {
			if f.Name == "help" {
				return
			}
			n++
			if !strings.Contains(section, "| `--"+f.Name+"`") && !strings.Contains(section, "`--"+f.Name+"`,") {
				t.Errorf("credgate %s --%s is not documented under %s in docs/install.md", cmd.Name(), f.Name, heading)
			}
		})
		if n == 0 {
			t.Errorf("credgate %s has no flags: the test reads the wrong command", cmd.Name())
		}
	}
}
