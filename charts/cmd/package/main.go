// Command package writes a Helm chart archive, as helm package does, without the helm binary:
//
//	go run ./charts/cmd/package -o bin charts/credgate   # bin/credgate-<version>.tgz
//
// SOURCE_DATE_EPOCH (seconds), when set, stamps every file of the archive, so that one commit
// always gives the same archive.
package main

import (
	"flag"
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/credgate/credgate/charts"
)

func main() {
	out := flag.String("o", ".", "directory to write the archive to")
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "usage: package [-o dir] [chart-dir]  (default chart-dir: charts/credgate)\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	dir := "charts/" + charts.Dir
	switch flag.NArg() {
	case 0:
	case 1:
		dir = flag.Arg(0)
	default:
		flag.Usage()
		os.Exit(2)
	}
	if err := run(dir, *out); err != nil {
		fmt.Fprintln(os.Stderr, "package:", err)
		os.Exit(1)
	}
}

func run(dir, out string) error {
	var modTime *time.Time
	if s := os.Getenv("SOURCE_DATE_EPOCH"); s != "" {
		sec, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return fmt.Errorf("SOURCE_DATE_EPOCH %q: %w", s, err)
		}
		t := time.Unix(sec, 0)
		modTime = &t
	}
	path, err := charts.Package(dir, out, modTime)
	if err != nil {
		return err
	}
	fmt.Println(path)
	return nil
}
