package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/gearbridge/gearbridge"
	"github.com/gearbridge/gearbridge/bridge"
	"github.com/gearbridge/gearbridge/server"
	"github.com/gearbridge/gearbridge/store"
	"github.com/prometheus/client_golang/prometheus"
)

// serveFlags are the server's settings. Where gearmand has a flag for the
// same thing, we take its spelling too, so that test harnesses that spawn
// gearmand can spawn gearbridge unchanged.
type serveFlags struct {
	listen            string
	port              int
	db                string
	http              string
	durability        string
	restoreForeground string
	jobRetries        int
	maxPacket         uint
	maxConnections    int
	maxBufferMemory   byteSize
	logFile           string
	logFormat         string
	verbose           string
	pidFile           string
	handlePrefix      string
	exceptions        bool
	config            string
	eventLoop         bool
	grabHold          time.Duration
	eventLoops        int
	busyPoll          time.Duration
	httpTokenFile     string
	httpTLSCert       string
	httpTLSKey        string
	httpInsecure      bool
	pprof             bool
	ssl               bool
	sslCertificate    string
	sslKey            string
	sslCAFile         string
	gearmandCompat
	gearmandSeen      []*gearmandOption // gearmand's other options given (see gearmand.go)
	readyMasterOutage time.Duration
}

// serveFlagSet defines the server's flags on f. It is the one list of
// them: parseServeFlags parses with it and `gearbridge man` writes the
// man page from it.
func serveFlagSet(f *serveFlags) *flag.FlagSet {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "Usage: gearbridge serve [flags]\n\nFlags (gearmand's short spellings -p -L -j -l -P -u -f -q -V also work, and so does a\ngearmand --config-file; the flags marked gearmand's are its other options):")
		fs.PrintDefaults()
	}
	both := func(short, long string, fn func(name string)) { fn(long); fn(short) }
	both("L", "listen", func(n string) { fs.StringVar(&f.listen, n, "", "address to listen on (default all interfaces)") })
	both("p", "port", func(n string) { fs.IntVar(&f.port, n, 4730, "Gearman port (0 picks a free one)") })
	both("j", "job-retries", func(n string) {
		fs.IntVar(&f.jobRetries, n, 0, "most times a job is handed to workers before it fails (0 = no limit)")
	})
	both("l", "log-file", func(n string) { fs.StringVar(&f.logFile, n, "stderr", `log file, or "stderr" or "none"`) })
	both("P", "pid-file", func(n string) { fs.StringVar(&f.pidFile, n, "", "write the process ID to this file") })
	fs.StringVar(&f.db, "db", "./gearbridge.db", "the durable queue's bbolt file")
	fs.StringVar(&f.http, "http", "127.0.0.1:4731", `HTTP address for /metrics, /healthz, /api/status, /backup (default: loopback, the Gearman port + 1; "" disables it)`)
	fs.StringVar(&f.logFormat, "log-format", "text", `log lines as "text" (key=value) or "json" (one object per line)`)
	fs.StringVar(&f.durability, "durability", "sync", `"sync": every job is on disk before JOB_CREATED; "none": memory only`)
	fs.StringVar(&f.restoreForeground, "restore-foreground", "detach", `restored foreground jobs: "detach" runs them, "drop" forgets them as gearmand does`)
	fs.UintVar(&f.maxPacket, "max-packet", 64<<20, "largest accepted packet payload in bytes")
	fs.IntVar(&f.maxConnections, "max-connections", 0, "refuse connections beyond this many (0 = no limit)")
	f.maxBufferMemory = byteSize(defaultBufferMemory())
	fs.Var(&f.maxBufferMemory, "max-buffer-memory", "cap on the memory all connections hold in requests still arriving and replies not yet read, e.g. 512MiB or 2GiB (default: a quarter of the machine's memory; 0: no cap); over it the connections holding the most are closed")
	fs.StringVar(&f.verbose, "verbose", "INFO", "log level: FATAL ALERT CRITICAL ERROR WARNING NOTICE INFO DEBUG")
	fs.StringVar(&f.handlePrefix, "job-handle-prefix", "", `job handle prefix (default "H:<hostname>")`)
	fs.BoolVar(&f.exceptions, "exceptions", false, "turn the exceptions option on for every connection")
	fs.StringVar(&f.config, "config", "", "YAML file naming the Jenkins masters to bridge (see README)")
	fs.DurationVar(&f.grabHold, "grab-hold", 0, "keep a GRAB that finds no job open this long for a job to arrive (0: answer NO_JOB at once, as gearmand; see README before turning it on)")
	fs.IntVar(&f.eventLoops, "event-loops", 0, "how many event loops (threads) share the connections; 0: one for every two cores (GOMAXPROCS/2, at least 1)")
	fs.DurationVar(&f.busyPoll, "busy-poll", 100*time.Microsecond, "under load, how long an event loop polls for the next request before it sleeps (0: never)")
	fs.DurationVar(&f.readyMasterOutage, "readyz-master-outage", defaultReadyMasterOutage, "/readyz answers 503 once a configured Jenkins master has been unreachable this long (0: masters never make it fail)")
	fs.BoolVar(&f.eventLoop, "event-loop", runtime.GOOS == "linux", "serve connections from epoll event loops (Linux; see --event-loops) instead of goroutines per connection")
	fs.StringVar(&f.httpTokenFile, "http-token-file", "", "file holding the bearer token that HTTP needs for everything but /healthz and /metrics")
	fs.StringVar(&f.httpTLSCert, "http-tls-cert", "", "serve HTTPS with this PEM certificate (chain) file; needs --http-tls-key")
	fs.StringVar(&f.httpTLSKey, "http-tls-key", "", "the PEM private key of --http-tls-cert")
	fs.BoolVar(&f.httpInsecure, "http-insecure", false, "allow --http on a non-loopback address without --http-token-file (anyone who reaches it can download every job)")
	fs.BoolVar(&f.pprof, "pprof", false, "serve /debug/pprof on the HTTP address (behind the token when one is set)")
	fs.BoolVar(&f.ssl, "ssl", false, "TLS on the Gearman port (gearmand's --ssl); TLS connections are served by goroutines, not the event loop")
	fs.StringVar(&f.sslCertificate, "ssl-certificate", "/etc/ssl/certs/gearmand.pem", "with --ssl: the server's PEM certificate (chain) file")
	fs.StringVar(&f.sslKey, "ssl-key", "/etc/ssl/certs/gearmand.key", "with --ssl: the PEM private key of --ssl-certificate")
	fs.StringVar(&f.sslCAFile, "ssl-ca-file", "", "with --ssl: require client certificates signed by a CA in this PEM file")
	f.gearmandCompat.define(fs, both)
	addGearmandFlags(fs, &f.gearmandSeen)
	return fs
}

func parseServeFlags(args []string) (*serveFlags, error) {
	f := &serveFlags{}
	fs := serveFlagSet(f)
	args, err := withConfigFile(args)
	if err != nil {
		return nil, err
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, err
		}
		return nil, usageError{err}
	}
	if f.version {
		return f, nil
	}
	set := map[string]bool{} // the flags given
	fs.Visit(func(fl *flag.Flag) { set[fl.Name] = true })
	f.logFileSet = set["log-file"] || set["l"]
	if f.warnings, err = checkGearmandFlags(f.gearmandSeen); err != nil {
		return nil, err
	}
	if err := f.gearmandCompat.check(); err != nil {
		return nil, usageError{err}
	}
	if fs.NArg() > 0 {
		return nil, usageError{fmt.Errorf("unexpected argument %q", fs.Arg(0))}
	}
	switch {
	case f.durability != "sync" && f.durability != "none":
		return nil, usageError{fmt.Errorf(`--durability must be "sync" or "none", not %q`, f.durability)}
	case f.restoreForeground != "detach" && f.restoreForeground != "drop":
		return nil, usageError{fmt.Errorf(`--restore-foreground must be "detach" or "drop", not %q`, f.restoreForeground)}
	case f.port < 0 || f.port > 65535:
		return nil, usageError{fmt.Errorf("--port %d is out of range", f.port)}
	case f.maxPacket == 0 || f.maxPacket > 1<<31:
		return nil, usageError{fmt.Errorf("--max-packet must be between 1 and %d", 1<<31)}
	case f.jobRetries < 0:
		return nil, usageError{fmt.Errorf("--job-retries must not be negative")}
	case f.grabHold < 0 || f.grabHold > maxGrabHold:
		// Perl's Gearman::Worker drops a connection whose GRAB has no
		// answer after 0.5s.
		return nil, usageError{fmt.Errorf("--grab-hold must be between 0 and %v", maxGrabHold)}
	case f.busyPoll < 0:
		return nil, usageError{fmt.Errorf("--busy-poll must not be negative")}
	case f.eventLoops < 0:
		return nil, usageError{fmt.Errorf("--event-loops must not be negative")}
	case f.eventLoops > 1 && !f.eventLoop:
		return nil, usageError{fmt.Errorf("--event-loops needs the event loop (--event-loop, on Linux)")}
	case f.readyMasterOutage < 0:
		return nil, usageError{fmt.Errorf("--readyz-master-outage must not be negative")}
	case f.maxConnections < 0:
		return nil, usageError{fmt.Errorf("--max-connections must not be negative")}
	}
	if _, ok := logFormats[f.logFormat]; !ok {
		return nil, usageError{fmt.Errorf(`--log-format must be "text" or "json", not %q`, f.logFormat)}
	}
	if err := httpAddr(f, set["http"]); err != nil {
		return nil, usageError{err}
	}
	for _, name := range []string{"ssl-certificate", "ssl-key", "ssl-ca-file"} {
		if set[name] && !f.ssl {
			// Without this, a server meant to be TLS-only would serve in
			// the clear.
			return nil, usageError{fmt.Errorf("--%s needs --ssl", name)}
		}
	}
	switch {
	case (f.httpTLSCert == "") != (f.httpTLSKey == ""):
		return nil, usageError{fmt.Errorf("--http-tls-cert and --http-tls-key go together")}
	case f.ssl && f.eventLoops > 1:
		return nil, usageError{fmt.Errorf("--event-loops does not apply with --ssl: TLS connections are served by goroutines")}
	case f.http != "" && f.httpTokenFile == "" && !f.httpInsecure && !loopbackAddress(f.http):
		return nil, usageError{fmt.Errorf("--http %s is reachable from other machines, and /backup there hands out every queued job's payload: "+
			"give --http-token-file FILE (a bearer token, best with --http-tls-cert and --http-tls-key), "+
			"or listen on loopback only (--http 127.0.0.1:4731), or accept the risk with --http-insecure", f.http)}
	}
	if _, ok := logLevels[strings.ToUpper(f.verbose)]; !ok {
		return nil, usageError{fmt.Errorf("unknown --verbose level %q", f.verbose)}
	}
	f.verbose = strings.ToUpper(f.verbose)
	return f, nil
}

// maxGrabHold bounds --grab-hold well below the 0.5s after which Perl's
// Gearman::Worker gives up on a GRAB.
const maxGrabHold = 250 * time.Millisecond

// logLevels maps gearmand's verbosity names (and slog's WARN) onto slog
// levels.
var logLevels = map[string]slog.Level{
	"FATAL": slog.LevelError + 4, "ALERT": slog.LevelError + 3, "CRITICAL": slog.LevelError + 2,
	"ERROR": slog.LevelError, "WARNING": slog.LevelWarn, "WARN": slog.LevelWarn, "NOTICE": slog.LevelInfo + 2,
	"INFO": slog.LevelInfo, "DEBUG": slog.LevelDebug,
}

func openLog(path, level, format string) (*slog.Logger, io.Closer, error) {
	var w io.Writer
	var closer io.Closer = io.NopCloser(nil)
	switch path {
	case "none":
		return slog.New(slog.DiscardHandler), closer, nil
	case "stderr", "", "/dev/stderr":
		w = os.Stderr
	default:
		f, err := openReopenFile(path) // SIGHUP reopens it
		if err != nil {
			return nil, nil, err
		}
		w, closer = f, f
	}
	return slog.New(redactHandler{logFormats[format](w, &slog.HandlerOptions{Level: logLevels[level]})}), closer, nil
}

func runServe(args []string) error {
	f, err := parseServeFlags(args)
	if err != nil {
		return err
	}
	if f.version {
		fmt.Println("gearbridge", gearbridge.Version)
		return nil
	}
	if f.daemon && daemonPipe == nil {
		if (f.logFile == "stderr" || f.logFile == "" || f.logFile == "/dev/stderr") && !f.syslog {
			fmt.Fprintln(os.Stderr, "gearbridge: warning: --daemon detaches from stderr, so its log lines are lost; give --log-file or --syslog")
		}
		return detach() // the detached copy runs the server
	}
	// From the start: a SIGHUP (logrotate) while the store is restored
	// must not kill the process; it is handled once the server runs.
	hangups := make(chan os.Signal, 1)
	signal.Notify(hangups, syscall.SIGHUP)
	defer signal.Stop(hangups)
	log, logCloser, err := openServeLog(f)
	if err != nil {
		return err
	}
	defer logCloser.Close()
	for _, w := range f.warnings {
		log.Warn(w)
	}
	var bridgeCfg *bridge.Config
	if f.config != "" {
		if bridgeCfg, err = bridge.LoadConfig(f.config); err != nil {
			return err
		}
		warnEmptyConfig(log, bridgeCfg, f.config)
	}
	slog.SetDefault(log)
	if f.fileDescriptors > 0 {
		if err := setFileLimit(f.fileDescriptors); err != nil {
			return err
		}
	} else {
		raiseFileLimit(log)
	}
	var gearTLS *tls.Config
	if f.ssl {
		if gearTLS, err = serverTLS(f.sslCertificate, f.sslKey, f.sslCAFile); err != nil {
			return err
		}
	}
	var httpToken string
	if f.httpTokenFile != "" {
		if httpToken, err = readToken(f.httpTokenFile); err != nil {
			return fmt.Errorf("--http-token-file: %w", err)
		}
	}

	st, backup, err := openStore(f, log)
	if err != nil {
		return err
	}
	defer func() {
		if err := st.Close(); err != nil {
			log.Error("closing the store", "err", err)
		}
	}()

	shutdown := make(chan bool, 1) // true = graceful
	srv, err := server.New(server.Config{
		Store:                  st,
		HandlePrefix:           f.handlePrefix,
		JobRetries:             f.jobRetries,
		MaxPacket:              uint32(f.maxPacket),
		MaxConnections:         f.maxConnections,
		MaxBufferMemory:        int64(f.maxBufferMemory),
		VerboseLevel:           f.verbose,
		DropRestoredForeground: f.restoreForeground == "drop",
		Exceptions:             f.exceptions,
		EventLoop:              f.eventLoop,
		GrabHold:               f.grabHold,
		EventLoops:             defaultEventLoops(f.eventLoops),
		BusyPoll:               f.busyPoll,
		KeepAlive:              f.keepAliveConfig(),
		Logger:                 log,
		OnShutdown: func(graceful bool) {
			select {
			case shutdown <- graceful:
			default:
			}
		},
	})
	if err != nil {
		return err
	}
	if db, ok := st.(*store.DB); ok {
		srv.Registry().MustRegister(storeCollector{db})
		srv.AddReadyCheck("store", db.CommitError)
	}

	addr := net.JoinHostPort(f.listen, strconv.Itoa(f.port))
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", addr, err)
	}
	log.Info("gearbridge listening", "addr", ln.Addr().String(), "version", gearbridge.Version, "durability", f.durability, "db", dbName(f),
		"tls", f.ssl, "client_certificates", f.ssl && f.sslCAFile != "")
	if f.ssl && f.eventLoop {
		log.Info("TLS connections are served by goroutines: the event loop serves plain TCP only")
	}
	if f.pidFile != "" {
		if err := os.WriteFile(f.pidFile, []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644); err != nil {
			return fmt.Errorf("write pid file: %w", err)
		}
		defer os.Remove(f.pidFile)
	}

	var httpSrv *http.Server
	var httpListener net.Listener
	if f.http != "" {
		hl, err := net.Listen("tcp", f.http)
		if err != nil {
			ln.Close()
			return fmt.Errorf("listen for HTTP on %s: %w", f.http, err)
		}
		if !isLoopback(hl.Addr()) && httpToken != "" && f.httpTLSCert == "" {
			log.Warn("HTTP on a non-loopback address without TLS: the bearer token crosses the network in the clear; give --http-tls-cert and --http-tls-key", "addr", hl.Addr().String())
		}
		if f.pprof {
			// Sample one lock contention in 100, so that /debug/pprof/mutex
			// shows where the event loops wait for each other.
			runtime.SetMutexProfileFraction(100)
		}
		httpSrv = &http.Server{
			Handler:           srv.HTTPHandler(server.HTTPOptions{Backup: backup, Token: httpToken, Pprof: f.pprof}),
			ReadHeaderTimeout: 10 * time.Second,
			ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
		}
		if f.httpTLSCert != "" {
			cert, err := tls.LoadX509KeyPair(f.httpTLSCert, f.httpTLSKey)
			if err != nil {
				hl.Close()
				ln.Close()
				return fmt.Errorf("--http-tls-cert %s and --http-tls-key %s: %w", f.httpTLSCert, f.httpTLSKey, err)
			}
			httpSrv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
			hl = tls.NewListener(hl, httpSrv.TLSConfig)
		}
		log.Info("HTTP listening", "addr", hl.Addr().String(), "tls", f.httpTLSCert != "", "token", httpToken != "", "pprof", f.pprof)
		httpListener = hl
	}

	if f.user != "" {
		// Everything that needs root is open: the listeners (a port below
		// 1024), the log file, the database and the pid file.
		if err := dropPrivileges(f.user); err != nil {
			ln.Close()
			return err
		}
		log.Info("switched user", "user", f.user, "uid", os.Getuid(), "gid", os.Getgid())
	}
	if httpSrv != nil {
		// Served only now: no request is answered before the switch of
		// user (a backup as root, say).
		go func() {
			if err := httpSrv.Serve(httpListener); err != nil && !errors.Is(err, http.ErrServerClosed) {
				log.Error("HTTP server stopped", "err", err)
			}
		}()
	}
	daemonReady() // with --daemon: the starting process may exit now

	served := make(chan error, 1)
	if gearTLS != nil {
		go func() { served <- srv.ServeTLS(ln, gearTLS) }()
	} else {
		go func() { served <- srv.Serve(ln) }()
	}

	bridgeCtx, stopBridge := context.WithCancel(context.Background())
	bridgeDone := make(chan struct{})
	hup := &hangup{log: log, config: f.config}
	hup.logFile = logFileOf(logCloser)
	if bridgeCfg != nil {
		// Even with no masters yet: SIGHUP may add some.
		embedded := loopbackAddr(ln.Addr())
		if gearTLS != nil {
			// The Gearman port wants TLS, and maybe a client certificate
			// the bridge does not have: the bridge reaches the embedded
			// server through a Unix socket in a directory only this user
			// can enter (also when gearman.servers names others: a reload
			// may go back to the embedded server).
			sock, cleanup, err := bridgeSocket(srv, served)
			if err != nil {
				stopBridge()
				return err
			}
			defer cleanup()
			embedded = "unix:" + sock
		}
		b := bridge.New(bridgeCfg, bridge.Options{
			Embedded: embedded,
			Refs:     st,
			Logger:   log,
			Registry: srv.Registry(),
		})
		hup.bridge = b
		showBridge(srv, b, f.readyMasterOutage)
		go func() {
			defer close(bridgeDone)
			b.Run(bridgeCtx)
		}()
	} else {
		close(bridgeDone)
	}
	// The bridge stops first: its builds go on in Jenkins, and the store
	// keeps their references for the next start.
	defer func() {
		stopBridge()
		<-bridgeDone
	}()

	signals := make(chan os.Signal, 1)
	signal.Notify(signals, syscall.SIGTERM, syscall.SIGINT, syscall.SIGUSR1)
	defer signal.Stop(signals)

	graceful := false
wait:
	for {
		select {
		case err := <-served:
			return fmt.Errorf("serve: %w", err)
		case <-hangups:
			hup.run()
		case sig := <-signals:
			graceful = sig == syscall.SIGUSR1
			log.Info("stopping", "signal", sig.String(), "graceful", graceful)
			break wait
		case graceful = <-shutdown:
			log.Info("stopping", "graceful", graceful)
			break wait
		}
	}
	if httpSrv != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		httpSrv.Shutdown(ctx)
		cancel()
	}
	stopBridge()
	<-bridgeDone
	if graceful {
		// Let running jobs finish; a second signal cuts it short.
		ctx, cancel := context.WithCancel(context.Background())
		go func() {
			select {
			case <-signals:
			case <-ctx.Done():
			}
			cancel()
		}()
		srv.Shutdown(ctx)
		cancel()
	} else {
		srv.Close()
	}
	log.Info("stopped")
	return nil
}

// bridgeSocket serves srv on a Unix socket in a new private directory
// (mode 0700) for the embedded bridge. A failed Serve is sent to served;
// cleanup removes the directory.
func bridgeSocket(srv *server.Server, served chan<- error) (path string, cleanup func(), err error) {
	removeStaleBridgeSockets()
	dir, err := os.MkdirTemp("", bridgeSocketDirs)
	if err != nil {
		return "", nil, fmt.Errorf("bridge socket: %w", err)
	}
	path = filepath.Join(dir, "gearman.sock")
	ul, err := net.Listen("unix", path)
	if err != nil {
		os.RemoveAll(dir)
		return "", nil, fmt.Errorf("bridge socket: %w", err)
	}
	go func() {
		if err := srv.Serve(ul); err != nil {
			select {
			case served <- fmt.Errorf("bridge socket: %w", err):
			default:
			}
		}
	}()
	return path, func() { os.RemoveAll(dir) }, nil
}

// bridgeSocketDirs names the directories of bridgeSocket (os.MkdirTemp).
const bridgeSocketDirs = "gearbridge-bridge-*"

// removeStaleBridgeSockets removes the socket directories that killed
// servers left: those whose socket nobody listens on. Other users'
// directories cannot be entered (0700) and stay.
func removeStaleBridgeSockets() {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), bridgeSocketDirs))
	for _, dir := range dirs {
		if fi, err := os.Stat(dir); err != nil || time.Since(fi.ModTime()) < time.Minute {
			continue // maybe a server starting now, between mkdir and listen
		}
		c, err := net.DialTimeout("unix", filepath.Join(dir, "gearman.sock"), time.Second)
		if err == nil {
			c.Close() // a running server's
			continue
		}
		if errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ENOENT) {
			os.RemoveAll(dir)
		}
	}
}

// loopbackAddr is how the bridge reaches the embedded server: by loopback
// when it listens on every interface.
func loopbackAddr(a net.Addr) string {
	tcp, ok := a.(*net.TCPAddr)
	if !ok {
		return a.String()
	}
	host := tcp.IP.String()
	if tcp.IP.IsUnspecified() {
		host = "127.0.0.1" // a dual-stack wildcard listener accepts it too
	}
	return net.JoinHostPort(host, strconv.Itoa(tcp.Port))
}

func dbName(f *serveFlags) string {
	if f.durability == "none" {
		return "(memory)"
	}
	return f.db
}

func openStore(f *serveFlags, log *slog.Logger) (gearbridge.Store, gearbridge.Backuper, error) {
	if f.durability == "none" {
		return store.NewMemory(), nil, nil
	}
	db, err := store.Open(f.db, store.Options{Logger: log})
	if err != nil {
		return nil, nil, err
	}
	// Holding the store's lock, no compaction of it is under way: what
	// a killed creation or compaction left beside it can go.
	stale, err := store.RemoveStaleTemps(filepath.Dir(f.db))
	for _, name := range stale {
		log.Info("removed a temporary file left by an earlier run that did not finish", "file", name)
	}
	if err != nil {
		log.Warn("could not clear stale temporary files", "err", err)
	}
	return db, db, nil
}

// raiseFileLimit lifts the soft open-files limit to the hard one: every
// client and worker is a file descriptor.
func raiseFileLimit(log *slog.Logger) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil || lim.Cur >= lim.Max {
		return
	}
	lim.Cur = lim.Max
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		log.Warn("could not raise the open-files limit", "err", err)
	}
}

// storeCollector exports the durable store's counters.
type storeCollector struct{ db *store.DB }

var (
	commitsDesc = prometheus.NewDesc("gearbridge_store_commits_total", "Write transactions committed (each is two fdatasyncs).", nil, nil)
	syncsDesc   = prometheus.NewDesc("gearbridge_store_fsyncs_total", "fdatasync calls made by commits.", nil, nil)
	failedDesc  = prometheus.NewDesc("gearbridge_store_failed_commits_total", "Write transactions that failed.", nil, nil)
	addedDesc   = prometheus.NewDesc("gearbridge_store_jobs_added_total", "Jobs written to the store.", nil, nil)
	pendingDesc = prometheus.NewDesc("gearbridge_store_pending_ops", "Operations waiting for the writer.", nil, nil)
	quarantDesc = prometheus.NewDesc("gearbridge_store_records_quarantined_total", "Damaged job records moved to the quarantine bucket at start-up (gearbridge check lists them).", nil, nil)
	metaDesc    = prometheus.NewDesc("gearbridge_store_meta_page_damaged", "1 if a damaged bbolt meta page was found at start-up: the last commit before it may have been lost.", nil, nil)
)

func (c storeCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- commitsDesc
	ch <- syncsDesc
	ch <- failedDesc
	ch <- addedDesc
	ch <- pendingDesc
	ch <- quarantDesc
	ch <- metaDesc
}

func (c storeCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.db.Stats()
	ch <- prometheus.MustNewConstMetric(commitsDesc, prometheus.CounterValue, float64(s.Commits))
	ch <- prometheus.MustNewConstMetric(syncsDesc, prometheus.CounterValue, float64(s.Syncs))
	ch <- prometheus.MustNewConstMetric(failedDesc, prometheus.CounterValue, float64(s.FailedCommits))
	ch <- prometheus.MustNewConstMetric(addedDesc, prometheus.CounterValue, float64(s.JobsAdded))
	ch <- prometheus.MustNewConstMetric(pendingDesc, prometheus.GaugeValue, float64(s.Pending))
	ch <- prometheus.MustNewConstMetric(quarantDesc, prometheus.CounterValue, float64(s.Quarantined))
	damaged := 0.0
	if c.db.MetaDamage() != "" {
		damaged = 1
	}
	ch <- prometheus.MustNewConstMetric(metaDesc, prometheus.GaugeValue, damaged)
}

// byteSize is a flag value in bytes, written as 1048576, 512MiB, 2GiB, 64KiB,
// 1.5GB and the like (binary and decimal units).
type byteSize int64

func (b *byteSize) String() string { return strconv.FormatInt(int64(*b), 10) }

func (b *byteSize) Set(v string) error {
	n, err := parseByteSize(v)
	if err != nil {
		return err
	}
	*b = byteSize(n)
	return nil
}

var byteUnits = []struct {
	suffix string
	mult   float64
}{
	{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40},
	{"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"TB", 1e12},
	{"K", 1 << 10}, {"M", 1 << 20}, {"G", 1 << 30}, {"B", 1},
}

func parseByteSize(v string) (int64, error) {
	s := strings.TrimSpace(v)
	mult := 1.0
	for _, u := range byteUnits {
		if strings.HasSuffix(strings.ToUpper(s), strings.ToUpper(u.suffix)) {
			s, mult = strings.TrimSpace(s[:len(s)-len(u.suffix)]), u.mult
			break
		}
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || f < 0 || f*mult > 1<<62 {
		return 0, fmt.Errorf("%q is not a size (say 512MiB or 2GiB)", v)
	}
	return int64(f * mult), nil
}

// defaultBufferMemory is a quarter of the machine's memory (MemTotal), or
// 1 GiB where that cannot be read.
func defaultBufferMemory() int64 {
	data, err := os.ReadFile("/proc/meminfo")
	if err == nil {
		for _, line := range strings.Split(string(data), "\n") {
			if f := strings.Fields(line); len(f) >= 2 && f[0] == "MemTotal:" {
				if kb, err := strconv.ParseInt(f[1], 10, 64); err == nil && kb > 0 {
					return kb << 10 / 4
				}
			}
		}
	}
	return 1 << 30
}

// defaultEventLoops is n, or for 0 one event loop for every two cores the
// process may use. Measured on 2 cores, one loop beats two where workers
// sleep (idle workers: 45-50 against 60-75 us of server CPU per job) and
// roughly ties in round trips; the loops share one scheduler lock, and
// the clients of a job server usually share its machine.
func defaultEventLoops(n int) int {
	if n > 0 {
		return n
	}
	return max(1, runtime.GOMAXPROCS(0)/2)
}
