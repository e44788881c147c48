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
	db, err := parseDBArgs("check", "the bbolt file to verify (it must not be open in a running server)",
		"Usage: gearbridge check --db FILE\n\nVerifies a durable queue file offline: bbolt's page consistency, the format\nversion, every job record, the handle counter and the build references.", args)
	if err != nil {
		return err
	}
	info, err := store.Check(db)
	if info.MetaDamage != "" || len(info.Damaged) > 0 {
		// Damage found: say what is still sound, then each problem (the
		// error, exit 1, names them too).
		fmt.Fprintf(os.Stdout, "%s: DAMAGED: %d sound jobs, format version %d, handle counter %d\n", info.Path, info.Jobs, info.FormatVersion, info.LastID)
		if info.MetaDamage != "" {
			fmt.Fprintf(os.Stdout, "  %s\n", info.MetaDamage)
		}
		for _, d := range info.Damaged {
			fmt.Fprintf(os.Stdout, "  damaged record: %s (a server moves it to the quarantine when it starts)\n", d)
		}
	}
	if err != nil {
		return err
	}
	printInfo(os.Stdout, info)
	return nil
}

// parseDBArgs reads the command line of an offline command on one store
// file: `--db FILE`, or FILE alone.
func parseDBArgs(name, dbHelp, usage string, args []string) (string, error) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	db := fs.String("db", "", dbHelp)
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), usage)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return "", err
		}
		return "", usageError{err}
	}
	if *db == "" && fs.NArg() == 1 {
		*db = fs.Arg(0)
	} else if *db == "" || fs.NArg() != 0 {
		fs.Usage()
		return "", usageError{fmt.Errorf("%s: want --db FILE", name)}
	}
	return *db, nil
}

// printInfo reports a verified store file.
func printInfo(w io.Writer, info store.Info) {
	fmt.Fprintf(w, "%s: ok: format version %d, %d jobs (%d background, %d foreground), %d build refs, handle counter %d, %.1f MiB\n",
		info.Path, info.FormatVersion, info.Jobs, info.Background, info.Jobs-info.Background,
		info.BuildRefs, info.LastID, float64(info.Size)/(1<<20))
	if info.FormatVersion < store.FormatVersion {
		fmt.Fprintf(w, "  format version %d: a server migrates it to version %d (checksummed records) when it first opens it\n", info.FormatVersion, store.FormatVersion)
	}
	if info.Imported > 0 {
		fmt.Fprintf(w, "  %d jobs recorded as imported from gearmand (gearbridge import never adds them again)\n", info.Imported)
	}
	for _, q := range info.Quarantined {
		fmt.Fprintf(w, "  quarantined: job %d, handle %s, function %s, unique %s (damaged; never handed to a worker)\n", q.ID, q.Handle, q.Function, q.Unique)
	}
}

// runCompact rewrites a store file offline without its free pages:
// `gearbridge compact --db FILE`.
func runCompact(args []string) error {
	db, err := parseDBArgs("compact", "the bbolt file to compact (stop the server first)",
		"Usage: gearbridge compact --db FILE\n\nGives back the space a drained queue left in the file: verifies it, writes a\ncompact copy beside it, checks that the copy holds the same jobs, and renames\nit into place. The server must be stopped.", args)
	if err != nil {
		return err
	}
	before, after, err := store.Compact(db, 0)
	if err != nil {
		return err
	}
	fmt.Printf("%s: compacted from %.1f MiB to %.1f MiB\n", db, float64(before.Size)/(1<<20), float64(after.Size)/(1<<20))
	printInfo(os.Stdout, after)
	return nil
}
