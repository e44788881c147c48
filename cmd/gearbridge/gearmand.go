package main

import (
	"flag"
	"fmt"
	"os"
	"strings"
)

// What gearbridge does with each option of gearmand 1.1.20, so that a
// command line or --config-file written for gearmand either works, or
// says at once what differs. The README's table is this list, and a test
// checks it against `gearmand --help` and against parseServeFlags.
type optionStatus string

const (
	honoured optionStatus = "honoured"
	ignored  optionStatus = "ignored with a warning"
	refused  optionStatus = "refused"
)

type gearmandOption struct {
	long, short string
	arg         string // an example argument; "" for a switch
	status      optionStatus
	note        string // what gearbridge does, or why not
}

const otherQueue = "gearbridge keeps its queue in its own durable store (--db, a bbolt file: every job is on disk before JOB_CREATED) and has no other queue type"

var gearmandOptions = []gearmandOption{
	{"backlog", "b", "64", ignored, "the listen backlog is the kernel's (net.core.somaxconn)"},
	{"daemon", "d", "", honoured, "detaches once the listeners, the database and the pid file are ready, so that Type=forking units and init scripts written for gearmand work; a failed start is reported by the starting process (exit 1); the shipped unit runs gearbridge in the foreground without it"},
	{"exceptions", "", "", honoured, "turns the exceptions option on for every connection"},
	{"file-descriptors", "f", "4096", honoured, "sets the open-files limit (without it gearbridge raises the soft limit to the hard one)"},
	{"help", "h", "", honoured, "prints the flags"},
	{"job-retries", "j", "3", honoured, "as gearmand: the job fails after that many attempts (0 = no limit)"},
	{"job-handle-prefix", "", "H:test", honoured, `default "H:<hostname>", as gearmand`},
	{"hashtable-buckets", "", "991", ignored, "gearbridge's job tables grow by themselves"},
	{"keepalive", "", "", honoured, "keep-alive is always on in gearbridge (no idle timeout: dead peers are found by it)"},
	{"keepalive-idle", "", "60", honoured, "seconds before the first probe (-1 or absent: 30)"},
	{"keepalive-interval", "", "10", honoured, "seconds between probes (-1 or absent: 30)"},
	{"keepalive-count", "", "5", honoured, "probes before the connection is dropped (-1 or absent: the kernel's)"},
	{"log-file", "l", "stderr", honoured, `a file, "stderr" or "none"; the default is stderr, not /var/log/gearmand.log; SIGHUP reopens it`},
	{"listen", "L", "127.0.0.1", honoured, "the address to listen on (default all)"},
	{"pid-file", "P", "/run/gearbridge.pid", honoured, "written after the listeners are bound and removed at exit; no default file"},
	{"protocol", "r", "http", refused, "gearmand's HTTP job-submission protocol is not provided; gearbridge's own HTTP side (--http) serves metrics, the status page and backups"},
	{"round-robin", "R", "", ignored, "jobs go out by priority, then oldest first across every function a worker can do, which is already fair"},
	{"queue-type", "q", "builtin", honoured, `only "builtin" (the default), taken to mean gearbridge's own durable store (--db); any other type is refused`},
	{"config-file", "", "/dev/null", honoured, "gearmand's format: options as on the command line, one or more a line (also @FILE); the command line wins; /etc/gearmand.conf is not read unless named"},
	{"syslog", "", "", honoured, "logs to the local syslog (/dev/log), facility daemon; also to --log-file when one is given"},
	{"coredump", "", "", ignored, "Go prints every goroutine's stack on a crash; GOTRACEBACK=crash also dumps core"},
	{"threads", "t", "4", ignored, "see --event-loops and --event-loop"},
	{"user", "u", "nobody", honoured, "switches to the user (and its groups) after the log file, the database, the listeners and the pid file are open"},
	{"verbose", "", "INFO", honoured, "the same levels; the default is INFO, not ERROR"},
	{"version", "V", "", honoured, "prints the version and exits"},
	{"worker-wakeup", "w", "1", ignored, "gearbridge wakes only as many sleeping workers as there are jobs"},
	{"http-port", "", "8080", ignored, "only used by gearmand's HTTP protocol (-r http), which gearbridge does not provide; see --http"},
	{"port", "p", "4730", honoured, "as gearmand (0 picks a free port)"},
	{"ssl", "", "", honoured, "TLS on the Gearman port (served by goroutines, not the event loop)"},
	{"ssl-ca-file", "", "ca.pem", honoured, "with --ssl: require client certificates signed by a CA in this file"},
	{"ssl-certificate", "", "cert.pem", honoured, "with --ssl: the server's certificate (chain); default /etc/ssl/certs/gearmand.pem, as gearmand"},
	{"ssl-key", "", "key.pem", honoured, "with --ssl: the certificate's key; default /etc/ssl/certs/gearmand.key, as gearmand"},
	{"libmemcached-servers", "", "127.0.0.1", refused, "a setting of gearmand's libmemcached queue: " + otherQueue},
	{"libmemcached-prefix", "", "gear_", refused, "a setting of gearmand's libmemcached queue: " + otherQueue},
	{"libsqlite3-db", "", "queue.db", refused, "a setting of gearmand's libsqlite3 queue: " + otherQueue + "; `gearbridge import --gearmand-sqlite FILE` brings its jobs over"},
	{"store-queue-on-shutdown", "", "", refused, "a setting of gearmand's libsqlite3 queue: " + otherQueue},
	{"libsqlite3-table", "", "gearman_queue", refused, "a setting of gearmand's libsqlite3 queue: " + otherQueue},
	{"libpq-conninfo", "", "dbname=gearman", refused, "a setting of gearmand's Postgres queue: " + otherQueue},
	{"libpq-table", "", "queue", refused, "a setting of gearmand's Postgres queue: " + otherQueue},
	{"redis-server", "", "127.0.0.1", refused, "a setting of gearmand's redis queue: " + otherQueue},
	{"redis-port", "", "6379", refused, "a setting of gearmand's redis queue: " + otherQueue},
	{"redis-password", "", "secret", refused, "a setting of gearmand's redis queue: " + otherQueue},
	{"redis-prefix", "", "gear_", refused, "a setting of gearmand's redis queue: " + otherQueue},
	{"mysql-host", "", "localhost", refused, "a setting of gearmand's MySQL queue: " + otherQueue},
	{"mysql-port", "", "3306", refused, "a setting of gearmand's MySQL queue: " + otherQueue},
	{"mysql-user", "", "gearman", refused, "a setting of gearmand's MySQL queue: " + otherQueue},
	{"mysql-password", "", "secret", refused, "a setting of gearmand's MySQL queue: " + otherQueue},
	{"mysql-db", "", "gearman", refused, "a setting of gearmand's MySQL queue: " + otherQueue},
	{"mysql-table", "", "gearman_queue", refused, "a setting of gearmand's MySQL queue: " + otherQueue},
}

// gearmandFlag stands for a gearmand option that gearbridge ignores or
// refuses: it accepts the option and remembers that it was given.
type gearmandFlag struct {
	opt  *gearmandOption
	seen *[]*gearmandOption
}

func (g gearmandFlag) String() string { return "" }

func (g gearmandFlag) Set(string) error {
	*g.seen = append(*g.seen, g.opt)
	return nil
}

func (g gearmandFlag) IsBoolFlag() bool { return g.opt.arg == "" }

// addGearmandFlags defines the gearmand options that no real flag of fs
// stands for, as ignored or refused ones; the options given are added to
// *seen. It runs after the real flags are defined.
func addGearmandFlags(fs *flag.FlagSet, seen *[]*gearmandOption) {
	for i := range gearmandOptions {
		o := &gearmandOptions[i]
		if o.status == honoured {
			continue
		}
		v := gearmandFlag{opt: o, seen: seen}
		usage := fmt.Sprintf("gearmand's; %s: %s", o.status, o.note)
		for _, name := range []string{o.long, o.short} {
			if name != "" && fs.Lookup(name) == nil {
				fs.Var(v, name, usage)
			}
		}
	}
}

// checkGearmandFlags turns the ignored and refused options given into
// warnings and an error.
func checkGearmandFlags(seen []*gearmandOption) (warnings []string, err error) {
	for _, o := range seen {
		switch o.status {
		case refused:
			return nil, usageError{fmt.Errorf("--%s is not supported: %s", o.long, o.note)}
		case ignored:
			warnings = append(warnings, fmt.Sprintf("--%s is ignored: %s", o.long, o.note))
		}
	}
	return warnings, nil
}

// withConfigFile reads the --config-file (or @FILE) named on the command
// line, in gearmand's format: options as on the command line, separated
// by spaces or newlines (lines starting with # are comments). Its options
// go first, so that the command line overrides them.
func withConfigFile(args []string) ([]string, error) {
	var path string
	var rest []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			rest = append(rest, args[i:]...)
			break
		}
		name, value, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		switch {
		case strings.HasPrefix(a, "@") && len(a) > 1:
			path = a[1:]
			continue
		case strings.HasPrefix(a, "-") && name == "config-file":
			if !hasValue {
				if i+1 == len(args) {
					return nil, usageError{fmt.Errorf("flag needs an argument: --config-file")}
				}
				i++
				value = args[i]
			}
			path = value
			continue
		}
		rest = append(rest, a)
	}
	if path == "" {
		return args, nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read --config-file: %w", err)
	}
	var fromFile []string
	for _, line := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "#") {
			continue
		}
		for _, tok := range strings.Fields(line) {
			if tok == "--config-file" || strings.HasPrefix(tok, "--config-file=") || strings.HasPrefix(tok, "@") {
				return nil, usageError{fmt.Errorf("--config-file %s: it names another config file", path)}
			}
			fromFile = append(fromFile, tok)
		}
	}
	return append(fromFile, rest...), nil
}
