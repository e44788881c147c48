package main

import (
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"strings"

	"github.com/gearbridge/gearbridge/bridge"
)

// hangup is what SIGHUP does: reopen the log file (for logrotate) and
// reload the bridge's configuration file. A configuration that does not
// load leaves the running one as it is.
type hangup struct {
	log     *slog.Logger
	logFile *reopenFile    // nil: not logging to a file
	config  string         // --config; "" for none
	bridge  *bridge.Bridge // nil without --config
}

func (h *hangup) run() {
	if h.logFile != nil {
		if err := h.logFile.Reopen(); err != nil {
			h.log.Error("SIGHUP: cannot reopen the log file; still writing to the old one", "file", h.logFile.path, "err", err)
		} else {
			h.log.Info("SIGHUP: reopened the log file", "file", h.logFile.path)
		}
	}
	if h.bridge == nil {
		h.log.Info("SIGHUP: no --config, no bridge configuration to reload")
		return
	}
	cfg, err := bridge.LoadConfig(h.config)
	if err != nil {
		h.log.Error("SIGHUP: the bridge configuration has errors; the running one is kept", "config", h.config, "err", err)
		return
	}
	warnEmptyConfig(h.log, cfg, h.config)
	res, err := h.bridge.Reload(cfg)
	if err != nil {
		h.log.Error("SIGHUP: cannot reload the bridge", "err", err)
		return
	}
	h.log.Info("SIGHUP: reloaded the bridge configuration", "config", h.config,
		"added", res.Added, "removed", res.Removed, "changed", res.Changed, "unchanged", res.Unchanged)
}

// warnEmptyConfig says so when a configuration names no master: most
// likely a mistake, since the bridge then does nothing.
func warnEmptyConfig(log *slog.Logger, cfg *bridge.Config, path string) {
	if len(cfg.Masters) == 0 {
		log.Warn("the bridge configuration names no Jenkins masters: no executor takes jobs until one is added (then send SIGHUP)", "config", path)
	}
}

// runCheckConfig validates a bridge configuration file without starting:
// `gearbridge check-config FILE`. Secrets and CA files are read as the
// server would read them.
func runCheckConfig(args []string) error {
	fs := flag.NewFlagSet("check-config", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "Usage: gearbridge check-config FILE\n\nChecks a bridge configuration file (serve --config) as the server would read\nit, including token files, token environment variables and CA files, and\nexits: 0 when it is valid, 1 with every problem found.")
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageError{err}
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return usageError{errors.New("check-config: want one FILE")}
	}
	path := fs.Arg(0)
	cfg, err := bridge.LoadConfig(path)
	if err != nil {
		return err
	}
	names := make([]string, len(cfg.Masters))
	for i, m := range cfg.Masters {
		names[i] = m.Name
	}
	servers := "the embedded server"
	if len(cfg.Gearman.Servers) > 0 {
		servers = strings.Join(cfg.Gearman.Servers, ", ")
	}
	fmt.Fprintf(os.Stdout, "%s: ok: %d masters (%s), workers connect to %s\n", path, len(cfg.Masters), strings.Join(names, ", "), servers)
	if len(cfg.Masters) == 0 {
		fmt.Fprintf(os.Stdout, "%s: warning: no Jenkins masters: the bridge would do nothing\n", path)
	}
	return nil
}
