package main

import (
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/gearbridge/gearbridge/server"
)

// gearmandCompat holds the settings of gearmand's options that gearbridge
// honours beyond its own flags (see gearmandOptions).
type gearmandCompat struct {
	version           bool
	daemon            bool
	configFile        string // read by withConfigFile before parsing
	user              string
	syslog            bool
	keepalive         bool // always on; accepted
	keepaliveIdle     int
	keepaliveInterval int
	keepaliveCount    int
	fileDescriptors   int
	queueType         string
	logFileSet        bool // -l or --log-file was given

	warnings []string // about ignored options, logged once the log is open
}

func (g *gearmandCompat) define(fs *flag.FlagSet, both func(short, long string, fn func(string))) {
	both("V", "version", func(n string) { fs.BoolVar(&g.version, n, false, "print the version and exit") })
	both("d", "daemon", func(n string) {
		fs.BoolVar(&g.daemon, n, false, "detach once the listeners, database and pid file are ready (for units and init scripts written for gearmand; the shipped unit needs no -d)")
	})
	both("u", "user", func(n string) {
		fs.StringVar(&g.user, n, "", "switch to this user (and its groups) once the log file, database, listeners and pid file are open")
	})
	both("f", "file-descriptors", func(n string) {
		fs.IntVar(&g.fileDescriptors, n, 0, "set the open-files limit (0: raise the soft limit to the hard one)")
	})
	both("q", "queue-type", func(n string) {
		fs.StringVar(&g.queueType, n, "builtin", `gearmand's queue type: only "builtin", gearbridge's own durable store (--db)`)
	})
	fs.StringVar(&g.configFile, "config-file", "", "read options from this file first, in gearmand's format (options as on the command line; # starts a comment line); @FILE also works")
	fs.BoolVar(&g.syslog, "syslog", false, "log to the local syslog too (facility daemon); without --log-file, only there")
	fs.BoolVar(&g.keepalive, "keepalive", false, "accepted for gearmand: TCP keep-alive is always on")
	fs.IntVar(&g.keepaliveIdle, "keepalive-idle", -1, "seconds a connection is idle before keep-alive probes start (-1: 30)")
	fs.IntVar(&g.keepaliveInterval, "keepalive-interval", -1, "seconds between keep-alive probes (-1: 30)")
	fs.IntVar(&g.keepaliveCount, "keepalive-count", -1, "unanswered keep-alive probes before a connection is dropped (-1: the kernel's)")
}

func (g *gearmandCompat) check() error {
	if !strings.EqualFold(g.queueType, "builtin") {
		hint := ""
		if strings.EqualFold(g.queueType, "libsqlite3") {
			hint = "; gearbridge import --gearmand-sqlite FILE brings a libsqlite3 queue's jobs over"
		}
		return fmt.Errorf("--queue-type %s is not supported: %s; \"builtin\" is accepted and means that store%s", g.queueType, otherQueue, hint)
	}
	for _, k := range []struct {
		name string
		v    int
	}{{"keepalive-idle", g.keepaliveIdle}, {"keepalive-interval", g.keepaliveInterval}, {"keepalive-count", g.keepaliveCount}} {
		// The kernel's limits for TCP_KEEPIDLE, TCP_KEEPINTVL, TCP_KEEPCNT.
		if k.v != -1 && (k.v < 1 || k.v > 32767 || k.name == "keepalive-count" && k.v > 127) {
			return fmt.Errorf("--%s %d is out of range (-1 for the default)", k.name, k.v)
		}
	}
	if g.fileDescriptors < 0 {
		return fmt.Errorf("--file-descriptors must not be negative")
	}
	return nil
}

// keepAliveConfig turns the --keepalive-* seconds (-1: default) into the
// server's setting.
func (g *gearmandCompat) keepAliveConfig() server.KeepAlive {
	var k server.KeepAlive
	if g.keepaliveIdle > 0 {
		k.Idle = time.Duration(g.keepaliveIdle) * time.Second
	}
	if g.keepaliveInterval > 0 {
		k.Interval = time.Duration(g.keepaliveInterval) * time.Second
	}
	if g.keepaliveCount > 0 {
		k.Count = g.keepaliveCount
	}
	return k
}

// openServeLog opens the log: --log-file, and with --syslog the local
// syslog too (only there when no --log-file was given).
func openServeLog(f *serveFlags) (*slog.Logger, io.Closer, error) {
	if !f.syslog {
		return openLog(f.logFile, f.verbose, f.logFormat)
	}
	sh, err := newSyslogHandler(syslogNetwork, syslogAddr, logLevels[f.verbose])
	if err != nil {
		return nil, nil, err
	}
	if !f.logFileSet {
		return slog.New(redactHandler{sh}), sh, nil // passwords in URLs never reach syslog either
	}
	log, closer, err := openLog(f.logFile, f.verbose, f.logFormat)
	if err != nil {
		sh.Close()
		return nil, nil, err
	}
	return slog.New(teeHandler{log.Handler(), redactHandler{sh}}), closers{closer, sh}, nil
}

// logFileOf finds the log file among what openServeLog returned, for
// SIGHUP to reopen; nil when the log goes elsewhere.
func logFileOf(c io.Closer) *reopenFile {
	switch c := c.(type) {
	case *reopenFile:
		return c
	case closers:
		for _, m := range c {
			if f := logFileOf(m); f != nil {
				return f
			}
		}
	}
	return nil
}

// closers closes each of its members, returning the first error.
type closers []io.Closer

func (cs closers) Close() error {
	var first error
	for _, c := range cs {
		if err := c.Close(); err != nil && first == nil {
			first = err
		}
	}
	return first
}

// The syslog to use; "" is the local one. Tests point them at a socket of
// their own.
var syslogNetwork, syslogAddr = "", ""
