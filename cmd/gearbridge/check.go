package main

import (
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/gearbridge/gearbridge/store"
)

// runCheck verifies a store file offline: `gearbridge check --db FILE`.
func runCheck(args []string) error {
	fs := flag.NewFlagSet("check", flag.ContinueOnError)
	db := fs.String("db", "", "the bbolt file to verify (it must not be open in a running server)")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "Usage: gearbridge check --db FILE\n\nVerifies a durable queue file offline: bbolt's page consistency, the format\nversion, every job record, the handle counter and the build references.")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return err
		}
		return usageError{err}
	}
	if *db == "" && fs.NArg() == 1 {
		*db = fs.Arg(0)
	} else if *db == "" || fs.NArg() != 0 {
		fs.Usage()
		return usageError{fmt.Errorf("check: want --db FILE")}
	}
	info, err := store.Check(*db)
	if err != nil {
		return err
	}
	printInfo(os.Stdout, info)
	return nil
}

// printInfo reports a verified store file.
func printInfo(w io.Writer, info store.Info) {
	fmt.Fprintf(w, "%s: ok: format version %d, %d jobs (%d background, %d foreground), %d build refs, handle counter %d, %.1f MiB\n",
		info.Path, info.FormatVersion, info.Jobs, info.Background, info.Jobs-info.Background,
		info.BuildRefs, info.LastID, float64(info.Size)/(1<<20))
}
