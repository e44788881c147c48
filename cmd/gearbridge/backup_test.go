package main

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// A download that takes less than a second prints one progress line, not
// the same line twice.
func TestBackupProgressLineOnce(t *testing.T) {
	body := bytes.Repeat([]byte("x"), 100<<10)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		w.Write(body)
	}))
	defer srv.Close()
	var progress bytes.Buffer
	tmp, n, err := download(context.Background(), srv.Client(), "", srv.URL+"/backup", filepath.Join(t.TempDir(), "copy.db"), &progress)
	if err != nil {
		t.Fatal(err)
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	if n != int64(len(body)) {
		t.Fatalf("downloaded %d bytes", n)
	}
	lines := strings.Split(strings.TrimSpace(progress.String()), "\n")
	if len(lines) != 1 || !strings.Contains(lines[0], "0.1 of 0.1 MiB (100%)") {
		t.Fatalf("progress:\n%s", progress.String())
	}
}
