package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/gearbridge/gearbridge/store"
)

// runBackup downloads a consistent copy of a running server's store:
// `gearbridge backup --server http://HOST:PORT FILE`. The copy is written
// next to FILE under a temporary name, synced, verified with store.Check,
// and only then renamed into place; a failed or partial download never
// replaces an existing FILE.
func runBackup(args []string) error {
	fs := flag.NewFlagSet("backup", flag.ContinueOnError)
	server := fs.String("server", "http://127.0.0.1:4731", "the server's HTTP address (its --http flag)")
	quiet := fs.Bool("quiet", false, "no progress on stderr")
	tokenFile := fs.String("token-file", "", "file holding the server's bearer token (its --http-token-file)")
	caFile := fs.String("ca-file", "", "PEM file of the CAs to trust for an https URL (default: the system's)")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "Usage: gearbridge backup [--server URL] [--token-file FILE] [--ca-file FILE] FILE\n\nDownloads URL/backup, verifies it and renames it to FILE.")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return err
		}
		return usageError{err}
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return usageError{fmt.Errorf("backup: want exactly one FILE")}
	}
	dst := fs.Arg(0)
	url := strings.TrimSuffix(*server, "/") + "/backup"
	if !strings.Contains(url, "://") {
		url = "http://" + url
	}
	client, token, err := httpClient(*tokenFile, *caFile)
	if err != nil {
		return fmt.Errorf("backup: %w", err)
	}

	// A signal cancels the download; the deferred removal of the
	// temporary file then runs, which the default action of SIGTERM or
	// SIGHUP (exit at once) would skip.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	defer stop()
	var progress io.Writer = os.Stderr
	if *quiet {
		progress = io.Discard
	}
	// A backup killed outright (SIGKILL, a crash) leaves its temporary file
	// behind: remove what earlier runs for the same FILE left. A backup
	// to FILE that is still running holds a lock on its file, which keeps it.
	stale, err := store.RemoveStale(filepath.Dir(dst), tempPattern(dst))
	for _, name := range stale {
		fmt.Fprintf(progress, "backup: removed %s, left by an earlier backup that did not finish\n", name)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "backup: clearing stale temporary files: %v\n", err)
	}
	f, n, err := download(ctx, client, token, url, dst, progress)
	if err != nil {
		return err
	}
	// The file stays open, and so locked, until it is renamed or removed.
	tmp := f.Name()
	defer func() {
		f.Close()
		os.Remove(tmp) // after a successful rename this is a no-op
	}()
	info, err := store.Check(tmp)
	if err != nil {
		return fmt.Errorf("backup from %s (%d bytes) failed verification, %s left unchanged: %w", url, n, dst, err)
	}
	if ctx.Err() != nil {
		return fmt.Errorf("backup: interrupted, %s left unchanged", dst)
	}
	if err := os.Rename(tmp, dst); err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	if err := store.SyncDir(filepath.Dir(dst)); err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	info.Path = dst
	printInfo(os.Stdout, info)
	return nil
}

// download fetches url into a new temporary file next to dst, syncs it and
// returns it and its size, still open and holding a shared lock (the one
// store.Check takes too), which keeps another backup's RemoveStale off it.
// On error the temporary file is removed.
func download(ctx context.Context, client *http.Client, token, url, dst string, progress io.Writer) (tmp *os.File, n int64, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, 0, fmt.Errorf("backup: %w", err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, 0, fmt.Errorf("backup: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return nil, 0, fmt.Errorf("backup: GET %s: %s: %s", url, resp.Status, strings.TrimSpace(string(msg)))
	}

	f, err := store.CreateLockedTemp(filepath.Dir(dst), tempPattern(dst))
	if err != nil {
		return nil, 0, fmt.Errorf("backup: %w", err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	now := time.Now()
	p := &progressWriter{out: progress, total: resp.ContentLength, start: now, last: now}
	n, err = io.Copy(io.MultiWriter(f, p), resp.Body)
	p.report(true)
	if err != nil {
		return nil, n, fmt.Errorf("backup: download from %s after %d bytes: %w", url, n, err)
	}
	if resp.ContentLength >= 0 && n != resp.ContentLength {
		return nil, n, fmt.Errorf("backup: download from %s: got %d of %d bytes", url, n, resp.ContentLength)
	}
	if err = f.Sync(); err != nil {
		return nil, n, fmt.Errorf("backup: sync %s: %w", f.Name(), err)
	}
	if err = syscall.Flock(int(f.Fd()), syscall.LOCK_SH); err != nil {
		return nil, n, fmt.Errorf("backup: lock %s: %w", f.Name(), err)
	}
	return f, n, nil
}

// httpClient is the client of backup and status: it trusts caFile's CAs
// (the system's if empty), and returns the bearer token read from
// tokenFile ("" if empty). There is no overall timeout: a large store takes
// as long as it takes. The server must answer promptly, though.
func httpClient(tokenFile, caFile string) (*http.Client, string, error) {
	var token string
	if tokenFile != "" {
		var err error
		if token, err = readToken(tokenFile); err != nil {
			return nil, "", fmt.Errorf("--token-file: %w", err)
		}
	}
	tlsCfg, err := clientTLS(caFile, "", "")
	if err != nil {
		return nil, "", fmt.Errorf("--ca-file: %w", err)
	}
	return &http.Client{Transport: &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		ResponseHeaderTimeout: 30 * time.Second,
		TLSClientConfig:       tlsCfg,
	}}, token, nil
}

// tempPattern names the temporary files of backups to dst (see
// os.CreateTemp).
func tempPattern(dst string) string { return filepath.Base(dst) + ".tmp-*" }

// progressWriter prints the bytes downloaded so far, at most once a second,
// and a final line unless the last one already said it all.
type progressWriter struct {
	out     io.Writer
	total   int64 // -1 if unknown
	n       int64
	start   time.Time
	last    time.Time // of the last line; start until the first
	printed bool
	shown   int64 // bytes in the last line
}

func (p *progressWriter) Write(b []byte) (int, error) {
	p.n += int64(len(b))
	p.report(false)
	return len(b), nil
}

func (p *progressWriter) report(final bool) {
	now := time.Now()
	if !final && now.Sub(p.last) < time.Second || final && p.printed && p.shown == p.n {
		return
	}
	p.last, p.printed, p.shown = now, true, p.n
	mib := float64(p.n) / (1 << 20)
	if p.total > 0 {
		fmt.Fprintf(p.out, "backup: %.1f of %.1f MiB (%.0f%%) in %.1fs\n",
			mib, float64(p.total)/(1<<20), 100*float64(p.n)/float64(p.total), now.Sub(p.start).Seconds())
	} else {
		fmt.Fprintf(p.out, "backup: %.1f MiB in %.1fs\n", mib, now.Sub(p.start).Seconds())
	}
}
