package bridge

import (
	"context"
	"encoding/pem"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gearbridge/gearbridge/bridge/jenkinstest"
)

// An https master is trusted through ca_file, and only through it.
func TestCAFileTrustsAnHTTPSMaster(t *testing.T) {
	e := jenkinstest.NewEmulator()
	defer e.Close()
	srv := httptest.NewTLSServer(e)
	defer srv.Close()
	e.SetRootURL(srv.URL + "/")
	if err := e.AddNode(jenkinstest.NodeSpec{Name: "n", Executors: 2}); err != nil {
		t.Fatal(err)
	}
	t.Setenv("TLS_TOKEN", e.AddUser("gb", "pw"))
	ca := filepath.Join(t.TempDir(), "ca.pem")
	pemBytes := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	if err := os.WriteFile(ca, pemBytes, 0o600); err != nil {
		t.Fatal(err)
	}
	conf := func(extra string) *MasterConfig {
		cfg, err := ParseConfig([]byte("masters:\n  - name: m\n    url: "+srv.URL+"\n    user: gb\n    token_env: TLS_TOKEN\n"+extra), "tls.yaml")
		if err != nil {
			t.Fatal(err)
		}
		return &cfg.Masters[0]
	}
	snap, err := poll(context.Background(), newJenkins(conf("    ca_file: "+ca+"\n")), &legacyCache{}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatalf("with ca_file: %v", err)
	}
	if n := snap.nodes["n"]; n == nil || n.executors != 2 {
		t.Fatalf("nodes %v", snap.nodes)
	}
	if _, err := poll(context.Background(), newJenkins(conf("")), &legacyCache{}, slog.New(slog.DiscardHandler)); err == nil ||
		!strings.Contains(err.Error(), "certificate") {
		t.Fatalf("without ca_file: %v", err)
	}
	bad := filepath.Join(t.TempDir(), "bad.pem")
	os.WriteFile(bad, []byte("not a certificate"), 0o600)
	if _, err := ParseConfig([]byte("masters:\n  - name: m\n    url: "+srv.URL+"\n    ca_file: "+bad+"\n"), "x"); err == nil ||
		!strings.Contains(err.Error(), "no PEM certificate") {
		t.Fatalf("bad ca_file: %v", err)
	}
}
