package main

import (
	"encoding/json"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/gearbridge/gearbridge/bridge"
)

// The command lines that packaging/ and the Dockerfile pass must parse
// with today's flags: a renamed flag fails here, not on a user's machine.
func TestPackagedCommandLinesParse(t *testing.T) {
	unit, err := os.ReadFile("../../packaging/gearbridge.service")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^ExecStart=(.*)$`).FindSubmatch(unit)
	if m == nil {
		t.Fatal("no ExecStart in the unit")
	}
	// systemd drops an empty $GEARBRIDGE_OPTS.
	unitArgs := strings.Fields(strings.ReplaceAll(string(m[1]), "$GEARBRIDGE_OPTS", ""))
	if len(unitArgs) < 2 || unitArgs[0] != "/usr/bin/gearbridge" || unitArgs[1] != "serve" {
		t.Fatalf("ExecStart %q does not run /usr/bin/gearbridge serve", m[1])
	}
	f, err := parseServeFlags(unitArgs[2:])
	if err != nil {
		t.Fatalf("the unit's ExecStart: %v", err)
	}
	if f.db != "/var/lib/gearbridge/gearbridge.db" || f.config != "/etc/gearbridge/gearbridge.yaml" ||
		f.logFile != "/var/log/gearbridge/gearbridge.log" {
		t.Errorf("the unit's paths: db %q config %q log %q", f.db, f.config, f.logFile)
	}
	// StateDirectory and LogsDirectory are the only writable places
	// under ProtectSystem=strict: the database and the log must be there.
	for _, want := range []string{"StateDirectory=gearbridge", "LogsDirectory=gearbridge", "ProtectSystem=strict", "User=gearbridge"} {
		if !regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(want) + `$`).Match(unit) {
			t.Errorf("the unit lacks %s", want)
		}
	}

	dockerfile, err := os.ReadFile("../../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	m = regexp.MustCompile(`(?m)^ENTRYPOINT (\[.*\])$`).FindSubmatch(dockerfile)
	if m == nil {
		t.Fatal("no ENTRYPOINT in the Dockerfile")
	}
	var entry []string
	if err := json.Unmarshal(m[1], &entry); err != nil {
		t.Fatalf("ENTRYPOINT: %v", err)
	}
	if len(entry) < 2 || entry[1] != "serve" {
		t.Fatalf("ENTRYPOINT %q does not run serve", entry)
	}
	// The flags the Dockerfile's comment suggests for scraping from outside.
	if _, err := parseServeFlags(append(entry[2:], "--http", "0.0.0.0:4731", "--http-token-file", "/run/secrets/http-token")); err != nil {
		t.Fatalf("the Dockerfile's ENTRYPOINT: %v", err)
	}
}

func TestPackagedConfigHasNoMasters(t *testing.T) {
	cfg, err := bridge.LoadConfig("../../packaging/gearbridge.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Masters) != 0 {
		t.Fatalf("the default config names %d masters", len(cfg.Masters))
	}
}
