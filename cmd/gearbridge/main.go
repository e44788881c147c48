// Command gearbridge is a Gearman job server with a durable queue and a
// Jenkins bridge. `gearbridge help` lists its subcommands.
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"

	"github.com/gearbridge/gearbridge"
)

const usage = `gearbridge — a Gearman job server with a durable queue and a Jenkins bridge

Usage:
  gearbridge [serve] [flags]                 run the server (the default)
  gearbridge status --server HOST:PORT       print the admin status table
  gearbridge backup --server URL FILE        download and verify an online backup
  gearbridge check --db FILE                 verify a database file offline
  gearbridge compact --db FILE               give back a drained queue's space (server stopped)
  gearbridge import --gearmand-sqlite FILE   load gearmand's libsqlite3 queue (server stopped)
  gearbridge check-config FILE               validate a bridge configuration file and exit
  gearbridge version                         print the version

Run "gearbridge serve --help" for the server's flags.
`

func main() {
	if err := run(os.Args[1:]); err != nil {
		daemonFailed(err) // a detached server's error, to the process that started it
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "gearbridge:", redact(err.Error()))
		}
		os.Exit(exitCode(err))
	}
}

func exitCode(err error) int {
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	var u usageError
	if errors.As(err, &u) {
		return 2
	}
	return 1
}

// usageError marks a bad command line (exit status 2).
type usageError struct{ error }

func run(args []string) error {
	cmd := "serve"
	if len(args) > 0 && len(args[0]) > 0 && args[0][0] != '-' {
		cmd, args = args[0], args[1:]
	}
	switch cmd {
	case "serve":
		return runServe(args)
	case "status":
		return runStatus(args)
	case "backup":
		return runBackup(args)
	case "check":
		return runCheck(args)
	case "compact":
		return runCompact(args)
	case "man": // hidden: make deb writes gearbridge(1) with it
		return runMan(args)
	case "import":
		return runImport(args)
	case "check-config":
		return runCheckConfig(args)
	case "version", "--version":
		fmt.Println("gearbridge", gearbridge.Version)
		return nil
	case "help":
		fmt.Print(usage)
		return nil
	}
	fmt.Fprint(os.Stderr, usage)
	return usageError{fmt.Errorf("unknown command %q", cmd)}
}
