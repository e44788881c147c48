package main

import (
	"bytes"
	"flag"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// manPage runs `gearbridge man` as the packaging does and returns the page.
func manPage(t *testing.T) string {
	t.Helper()
	out, err := os.CreateTemp(t.TempDir(), "gearbridge.1")
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	stdout := os.Stdout
	os.Stdout = out
	err = run([]string{"man"})
	os.Stdout = stdout
	if err != nil {
		t.Fatalf("gearbridge man: %v", err)
	}
	page, err := os.ReadFile(out.Name())
	if err != nil {
		t.Fatal(err)
	}
	return string(page)
}

func TestManPageHasEveryServeFlag(t *testing.T) {
	page := manPage(t)
	fs := serveFlagSet(&serveFlags{})
	n := 0
	fs.VisitAll(func(fl *flag.Flag) {
		n++
		dash := "--"
		if len(fl.Name) == 1 {
			dash = "-"
		}
		if want := `\fB` + roffText(dash+fl.Name) + `\fR`; !strings.Contains(page, want) {
			t.Errorf("the man page lacks %s%s (%q)", dash, fl.Name, want)
		}
	})
	if n < 20 {
		t.Fatalf("only %d flags in the serve FlagSet", n)
	}
	// gearmand's short spellings sit beside the long ones, not apart.
	for _, want := range []string{
		"\n" + `\fB\-p\fR, \fB\-\-port\fR \fIint\fR` + "\n" + `Gearman port (0 picks a free one) (default 4730)` + "\n",
		"\n" + `\fB\-\-max\-buffer\-memory\fR \fIsize\fR` + "\n",
		"\n" + `\fB\-\-exceptions\fR` + "\n",
		"\n.B gearbridge backup \\-\\-server URL FILE\ndownload and verify an online backup\n",
	} {
		if !strings.Contains(page, want) {
			t.Errorf("the man page lacks %q", want)
		}
	}
	// A default that depends on the machine must not be baked in.
	if strings.Contains(page, "(default "+serveFlagSet(&serveFlags{}).Lookup("max-buffer-memory").DefValue+")") {
		t.Error("the machine's memory size is in the man page")
	}
}

// A flag added to the FlagSet appears with no other change: the page is
// written from the definitions, not beside them.
func TestManPageFollowsTheFlagSet(t *testing.T) {
	fs := serveFlagSet(&serveFlags{})
	var cert string
	fs.StringVar(&cert, "tls-cert-file", "", "PEM `file` with the server's certificate")
	var buf bytes.Buffer
	writeManPage(&buf, fs, usage, "9.9.9")
	want := "\n.TP\n" + `\fB\-\-tls\-cert\-file\fR \fIfile\fR` + "\nPEM file with the server's certificate\n"
	if !strings.Contains(buf.String(), want) {
		t.Fatalf("the new flag is missing; want %q in\n%s", want, buf.String())
	}
	if !strings.Contains(buf.String(), `"gearbridge 9.9.9"`) {
		t.Error("the version is missing from .TH")
	}
}

func TestManPageIsCleanRoff(t *testing.T) {
	groff, err := exec.LookPath("groff")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("groff is missing (apt-get install groff-base)")
		}
		t.Skip("groff is missing")
	}
	cmd := exec.Command(groff, "-man", "-Tutf8", "-ww", "-z")
	cmd.Stdin = strings.NewReader(manPage(t))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil || stderr.Len() > 0 {
		t.Fatalf("groff: %v\n%s", err, stderr.String())
	}
}

func TestRoffEscapesRequestsAndDashes(t *testing.T) {
	for in, want := range map[string]string{
		".hidden":          `\&.hidden`,
		"'quote":           `\&'quote`,
		`a\b --x`:          `a\eb \-\-x`,
		"100µs — a lot":    `100\(mcs \(em a lot`,
		"plain text, 1 GB": "plain text, 1 GB",
	} {
		if got := roffLine(in); got != want {
			t.Errorf("roffLine(%q) = %q, want %q", in, got, want)
		}
	}
}
