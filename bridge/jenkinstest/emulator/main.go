// Command emulator serves a Jenkins emulator (package jenkinstest) from a
// scenario file, so that gearbridge can be tried without a Jenkins:
//
//	go run ./bridge/jenkinstest/emulator --scenario bridge/jenkinstest/emulator/example.yaml --listen 127.0.0.1:8080
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/gearbridge/gearbridge/bridge/jenkinstest"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "emulator:", err)
		os.Exit(1)
	}
}

// run serves until ctx is done. The first line on stdout names the URL,
// so scripts can wait for it instead of sleeping.
func run(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("emulator", flag.ContinueOnError)
	scenario := fs.String("scenario", "", "scenario YAML file (users, nodes, jobs)")
	listen := fs.String("listen", "127.0.0.1:8080", "address to serve on")
	verbose := fs.Bool("verbose", false, "log every request and build")
	if err := fs.Parse(args); err != nil {
		return err
	}
	level := slog.LevelInfo
	if *verbose {
		level = slog.LevelDebug
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))

	sc := &jenkinstest.Scenario{}
	if *scenario != "" {
		var err error
		if sc, err = jenkinstest.LoadScenario(*scenario); err != nil {
			return err
		}
	}
	e := jenkinstest.NewEmulator(append(sc.Options(), jenkinstest.WithLogger(logger))...)
	defer e.Close()
	if err := sc.Apply(e); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	url := "http://" + ln.Addr().String() + "/"
	e.SetRootURL(url)
	srv := &http.Server{Handler: e, ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	fmt.Fprintf(stdout, "Jenkins emulator %s serving %s\n", e.Version(), url)
	for _, n := range e.Nodes() {
		if n.Executors > 0 {
			logger.Info("node", "name", n.Name, "labels", n.Labels, "executors", n.Executors, "mode", n.Mode)
		}
	}
	logger.Info("jobs", "names", e.Jobs())

	select {
	case err := <-errc:
		if !errors.Is(err, http.ErrServerClosed) {
			return err
		}
	case <-ctx.Done():
		logger.Info("stopping")
	}
	e.Close() // releases requests held by injected delays
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return srv.Shutdown(sctx)
}
