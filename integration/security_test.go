package integration

// The network side's credentials: TLS on the Gearman port and on HTTP, the
// HTTP bearer token, and secrets kept out of logs.

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gearbridge/gearbridge/bridge/jenkinstest"
	"github.com/gearbridge/gearbridge/internal/testcert"
	p "github.com/gearbridge/gearbridge/protocol"
)

// A password written into a master's URL appears in no log line and in no
// error message, while the user name and host still do.
func TestCLI_URLCredentialsAreRedacted(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "bridge.yaml")
	url := fmt.Sprintf("http://gb:s3cret-pass@127.0.0.1:%d/", freePort(t)) // nothing listens there
	if err := os.WriteFile(cfg, []byte("masters:\n  - name: m1\n    url: "+url+"\n    poll_interval: 100ms\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s := StartGearbridge(t, "--config", cfg)
	eventually(t, 10*time.Second, "the master to be reported unreachable", func() bool {
		return strings.Contains(readFile(t, s.LogPath), "unreachable")
	})
	s.Stop()
	log := readFile(t, s.LogPath)
	if strings.Contains(log, "s3cret") {
		t.Errorf("the log shows the password:\n%s", log)
	}
	if !strings.Contains(log, "gb:xxxxx@127.0.0.1") {
		t.Errorf("the log does not name the master's URL, redacted:\n%s", log)
	}

	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte("masters:\n  - name: m1\n    url: ftp://gb:s3cret-pass@host/\n"), 0o600)
	out, err := runWithin(t, exec.Command(GearbridgeBinary(t), "serve", "--port", "0", "--http", "", "--durability", "none", "--config", bad), 10*time.Second)
	if err == nil || strings.Contains(string(out), "s3cret") || !strings.Contains(string(out), "ftp://gb:xxxxx@host/") {
		t.Errorf("a bad config with a password in its URL: %v\n%s", err, out)
	}
}

// tlsServer starts gearbridge with TLS on the Gearman port, client
// certificates required; extra flags are appended.
func tlsServer(t *testing.T, certs *testcert.Set, extra ...string) *Server {
	t.Helper()
	args := []string{"--ssl", "--ssl-certificate", certs.ServerCertFile, "--ssl-key", certs.ServerKeyFile, "--ssl-ca-file", certs.CAFile}
	return StartGearbridge(t, append(args, extra...)...)
}

// DialTLS connects to addr over TLS.
func DialTLS(t testing.TB, addr string, cfg *tls.Config) *Conn {
	t.Helper()
	nc, err := tls.DialWithDialer(&net.Dialer{Timeout: opTimeout}, "tcp", addr, cfg)
	if err != nil {
		t.Fatalf("dial %s over TLS: %v", addr, err)
	}
	t.Cleanup(func() { nc.Close() })
	return wrapConn(t, nc)
}

// The Gearman port with --ssl, on both transports: a Go client and worker
// (crypto/tls) run a job and read the admin status over TLS; so does
// `gearbridge status --ssl`; a plaintext client, one without a client
// certificate and one with a certificate from another CA get nothing.
func TestTLS_GearmanPortGoClients(t *testing.T) {
	certs := testcert.New(t)
	for _, transport := range []string{"--event-loop=true", "--event-loop=false"} {
		t.Run(transport, func(t *testing.T) {
			s := tlsServer(t, certs, transport)
			w := DialTLS(t, s.Addr, certs.ClientConfig(true))
			w.Send(p.CanDo, "tls-go")
			c := DialTLS(t, s.Addr, certs.ClientConfig(true))
			c.Send(p.SubmitJob, "tls-go", "u1", "payload")
			created := c.Read()
			if created.Type != p.JobCreated {
				t.Fatalf("submit over TLS: %v", created)
			}
			w.Send(p.GrabJobUniq)
			job := w.Read()
			if job.Type != p.JobAssignUniq || job.Args()[3] != "payload" {
				t.Fatalf("grab over TLS: %v", job)
			}
			w.Send(p.WorkComplete, job.Args()[0], "result")
			if r := c.Read(); r.Type != p.WorkComplete || r.Args()[1] != "result" {
				t.Fatalf("result over TLS: %v", r)
			}
			if st := statusOf(c.Admin("status\n"), "tls-go"); st.workers != 1 {
				t.Fatalf("admin status over TLS: %+v", st)
			}

			out, err := runWithin(t, exec.Command(GearbridgeBinary(t), "status", "--server", s.Addr, "--ssl",
				"--ca-file", certs.CAFile, "--cert", certs.ClientCertFile, "--key", certs.ClientKeyFile), 15*time.Second)
			if err != nil || !strings.Contains(string(out), "tls-go") {
				t.Errorf("gearbridge status --ssl: %v\n%s", err, out)
			}
			out, err = runWithin(t, exec.Command(GearbridgeBinary(t), "status", "--server", s.Addr, "--ssl", "--ca-file", certs.CAFile, "--timeout", "3s"), 15*time.Second)
			if err == nil {
				t.Errorf("gearbridge status --ssl without a client certificate succeeded:\n%s", out)
			}

			refused := func(what string, nc net.Conn, err error) {
				t.Helper()
				if err != nil {
					return // refused in the handshake
				}
				defer nc.Close()
				nc.SetDeadline(time.Now().Add(opTimeout))
				io.WriteString(nc, "status\r\n")
				b, _ := io.ReadAll(nc)
				if strings.Contains(string(b), "tls-go") {
					t.Errorf("%s was served: %q", what, b)
				}
			}
			nc, err := net.Dial("tcp", s.Addr)
			refused("a plaintext client", nc, err)
			tc, err := tls.Dial("tcp", s.Addr, certs.ClientConfig(false))
			refused("a client without a certificate", tc, err)
			otherCA := certs.ClientConfig(false)
			otherCA.Certificates = []tls.Certificate{testcert.New(t).Client}
			tc, err = tls.Dial("tcp", s.Addr, otherCA)
			refused("a client with another CA's certificate", tc, err)
			// The served connections carry on.
			c.Barrier()
			w.Barrier()
		})
	}
}

// Perl's Gearman::Worker and Gearman::Client (IO::Socket::SSL) over TLS
// with client certificates.
func TestTLS_PerlClientAndWorker(t *testing.T) {
	perl := needPerlGearman(t)
	if out, err := exec.Command(perl, "-MIO::Socket::SSL", "-e1").CombinedOutput(); err != nil {
		skipOrFail(t, "IO::Socket::SSL not available: %v: %s (apt-get install libio-socket-ssl-perl)", err, out)
	}
	script, err := filepath.Abs(filepath.Join("testdata", "perl_tls.pl"))
	must(t, err)
	certs := testcert.New(t)
	s := tlsServer(t, certs)
	port := strconv.Itoa(s.Port)
	exited := startProcess(t, "perl TLS worker", exec.Command(perl, script, "worker", port, certs.CAFile, certs.ClientCertFile, certs.ClientKeyFile))
	a := DialTLS(t, s.Addr, certs.ClientConfig(true))
	eventually(t, cliTimeout, "the Perl worker to register over TLS", func() bool {
		select {
		case <-exited:
			t.Fatal("the Perl worker exited")
		default:
		}
		return statusOf(a.Admin("status\n"), "perl_tls_reverse").workers == 1
	})
	out, errOut := runCLI(t, "", perl, script, "client", port, certs.CAFile, certs.ClientCertFile, certs.ClientKeyFile)
	const want = "foreground: slt revo olleh\ntaskset: 1boj,2boj,3boj,4boj,5boj\nbackground: handle\n"
	if out != want {
		t.Fatalf("perl client over TLS printed:\n%s\nwant:\n%s\nstderr: %s", out, want, errOut)
	}
	if st := statusOf(a.Admin("status\n"), "perl_tls_nobody"); st.total != 1 {
		t.Errorf("the background job over TLS: %+v", st)
	}
}

// serve refuses a non-loopback --http without a token, and says how to fix
// it; before, anyone who reached the port could download /backup.
func TestHTTP_NonLoopbackNeedsAToken(t *testing.T) {
	out, err := runWithin(t, exec.Command(GearbridgeBinary(t), "serve", "--listen", "127.0.0.1", "--port", "0",
		"--http", "0.0.0.0:0", "--durability", "none", "--log-file", "none"), 10*time.Second)
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 2 {
		t.Fatalf("serve --http 0.0.0.0:0 without a token: %v (want exit status 2)\n%s", err, out)
	}
	for _, fix := range []string{"--http-token-file", "--http-insecure", "127.0.0.1"} {
		if !strings.Contains(string(out), fix) {
			t.Errorf("the message does not name %s:\n%s", fix, out)
		}
	}
}

// /debug/pprof is off by default.
func TestHTTP_PprofOnlyWhenAskedFor(t *testing.T) {
	code := func(s *Server) int {
		t.Helper()
		resp, err := http.Get("http://" + s.HTTPAddr + "/debug/pprof/")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if c := code(StartGearbridge(t)); c != http.StatusNotFound {
		t.Errorf("/debug/pprof/ by default: %d, want 404", c)
	}
	if c := code(StartGearbridge(t, "--pprof")); c != http.StatusOK {
		t.Errorf("/debug/pprof/ with --pprof: %d, want 200", c)
	}
}

// HTTPS with a bearer token: /healthz and /metrics are open, the rest needs
// the token; `gearbridge backup` and `gearbridge status` get through with
// --token-file and --ca-file, and not without them.
func TestHTTP_TokenAndTLS(t *testing.T) {
	certs := testcert.New(t)
	token := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(token, []byte("tok-0123456789abcdef\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s := StartGearbridge(t, "--durability", "sync", "--http-token-file", token,
		"--http-tls-cert", certs.ServerCertFile, "--http-tls-key", certs.ServerKeyFile)
	c := Dial(t, s.Addr)
	c.Send(p.SubmitJobBg, "secret-fn", "", "password=hunter2")
	if r := c.Read(); r.Type != p.JobCreated {
		t.Fatalf("submit: %v", r)
	}

	client := &http.Client{Timeout: opTimeout, Transport: &http.Transport{TLSClientConfig: certs.ClientConfig(false)}}
	get := func(path, auth string) int {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, "https://"+s.HTTPAddr+path, nil)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	for _, path := range []string{"/healthz", "/metrics"} {
		if code := get(path, ""); code != 200 {
			t.Errorf("%s without a token: %d", path, code)
		}
	}
	for _, path := range []string{"/", "/api/status", "/backup", "/debug/pprof/"} {
		if code := get(path, ""); code != http.StatusUnauthorized {
			t.Errorf("%s without a token: %d, want 401", path, code)
		}
		if code := get(path, "Bearer not-the-token"); code != http.StatusUnauthorized {
			t.Errorf("%s with a wrong token: %d, want 401", path, code)
		}
	}
	if code := get("/api/status", "Bearer tok-0123456789abcdef"); code != 200 {
		t.Errorf("/api/status with the token: %d", code)
	}
	if resp, err := http.Get("http://" + s.HTTPAddr + "/healthz"); err == nil {
		resp.Body.Close()
		if resp.StatusCode == 200 {
			t.Error("plain HTTP was served on the TLS address")
		}
	}

	url := "https://" + s.HTTPAddr
	dir := t.TempDir()
	run := func(args ...string) (string, error) {
		out, err := runWithin(t, exec.Command(GearbridgeBinary(t), args...), 30*time.Second)
		return string(out), err
	}
	if out, err := run("backup", "--server", url, "--ca-file", certs.CAFile, filepath.Join(dir, "no-token.db")); err == nil ||
		!strings.Contains(out, "401") || !strings.Contains(out, "--token-file") {
		t.Errorf("backup without the token: %v\n%s", err, out)
	}
	if out, err := run("backup", "--server", url, "--token-file", token, filepath.Join(dir, "no-ca.db")); err == nil ||
		!strings.Contains(out, "certificate") {
		t.Errorf("backup without the CA: %v\n%s", err, out)
	}
	dst := filepath.Join(dir, "backup.db")
	if out, err := run("backup", "--server", url, "--token-file", token, "--ca-file", certs.CAFile, dst); err != nil ||
		!strings.Contains(out, "1 jobs") {
		t.Errorf("backup with the token and the CA: %v\n%s", err, out)
	}
	if out, err := run("status", "--server", url, "--token-file", token, "--ca-file", certs.CAFile); err != nil ||
		!strings.Contains(out, "secret-fn") {
		t.Errorf("status over HTTPS with the token: %v\n%s", err, out)
	}
	if out, err := run("status", "--server", url, "--ca-file", certs.CAFile); err == nil {
		t.Errorf("status over HTTPS without the token succeeded:\n%s", out)
	}
}

// libgearmanSendsTLS reports whether this machine's libgearman speaks TLS
// with --ssl: it runs `gearadmin --ssl` against a plain listener and looks
// at the first byte, 0x16 for a TLS handshake. Debian's gearman-tools
// 1.1.20+ds-1 is built without SSL: it accepts --ssl (and gearman -S) and
// sends plaintext ("status\r\n"), and its libgearman.so.8 does not link
// libssl nor read GEARMAN_CA_CERTIFICATE.
func libgearmanSendsTLS(t *testing.T, gearadminPath string) bool {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	defer ln.Close()
	port := strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
	cmd := exec.Command(gearadminPath, "--ssl", "-h", "127.0.0.1", "-p", port, "--status")
	must(t, cmd.Start())
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	ln.(*net.TCPListener).SetDeadline(time.Now().Add(cliTimeout))
	nc, err := ln.Accept()
	if err != nil {
		t.Fatalf("gearadmin --ssl did not connect: %v", err)
	}
	defer nc.Close()
	nc.SetReadDeadline(time.Now().Add(cliTimeout))
	b := make([]byte, 1)
	if _, err := io.ReadFull(nc, b); err != nil {
		t.Fatalf("gearadmin --ssl sent nothing: %v", err)
	}
	return b[0] == 0x16
}

// gearadmin --ssl and gearman -S (libgearman) against the TLS port. With
// a libgearman built with SSL, they run a job and read the status with the
// client certificate from GEARMAN_CLIENT_PEM and GEARMAN_CLIENT_KEY.
// Debian's build sends plaintext instead: then the test checks that such a
// client is refused (no status reaches it) and that the server logs the
// failed handshake and goes on serving TLS clients.
func TestTLS_LibgearmanCLI(t *testing.T) {
	gearadminPath := NeedTool(t, "gearadmin")
	gearmanPath := NeedTool(t, "gearman")
	certs := testcert.New(t)
	s := tlsServer(t, certs)
	env := append(os.Environ(), "GEARMAN_CA_CERTIFICATE="+certs.CAFile,
		"GEARMAN_CLIENT_PEM="+certs.ClientCertFile, "GEARMAN_CLIENT_KEY="+certs.ClientKeyFile)
	hp := []string{"-h", "127.0.0.1", "-p", strconv.Itoa(s.Port)}
	a := DialTLS(t, s.Addr, certs.ClientConfig(true))

	if libgearmanSendsTLS(t, gearadminPath) {
		w := exec.Command(gearmanPath, append(append([]string{"-S"}, hp...), "-w", "-f", "tls_cli", "-c", "1", "--", "tr", "a-z", "A-Z")...)
		w.Env = env
		startProcess(t, "gearman -S -w", w)
		eventually(t, cliTimeout, "gearman -S -w to register", func() bool {
			return statusOf(a.Admin("status\n"), "tls_cli").workers == 1
		})
		st := exec.Command(gearadminPath, append(append([]string{"--ssl"}, hp...), "--status")...)
		st.Env = env
		if out, err := runWithin(t, st, 30*time.Second); err != nil || !strings.Contains(string(out), "tls_cli") {
			t.Errorf("gearadmin --ssl --status: %v\n%s", err, out)
		}
		c := exec.Command(gearmanPath, append(append([]string{"-S"}, hp...), "-f", "tls_cli", "over tls")...)
		c.Env = env
		if out, err := runWithin(t, c, 30*time.Second); err != nil || string(out) != "OVER TLS" {
			t.Errorf("gearman -S -f tls_cli: %v %q", err, out)
		}
		return
	}

	t.Log("this libgearman sends plaintext with --ssl (built without SSL): checking that it is refused")
	a.Send(p.CanDo, "tls_cli")
	a.Barrier()
	ctx, cancel := context.WithTimeout(context.Background(), cliTimeout)
	defer cancel()
	st := exec.CommandContext(ctx, gearadminPath, append(append([]string{"--ssl"}, hp...), "--status")...)
	st.Env = env
	out, _ := runWithin(t, st, 30*time.Second)
	if strings.Contains(string(out), "tls_cli") {
		t.Errorf("a plaintext gearadmin --ssl was served the status:\n%s", out)
	}
	eventually(t, 10*time.Second, "the failed handshake in the log", func() bool {
		return strings.Contains(readFile(t, s.LogPath), "TLS handshake failed")
	})
	if st := statusOf(a.Admin("status\n"), "tls_cli"); st.workers != 1 {
		t.Errorf("the TLS connection after the refused one: %+v", st)
	}
}

// The bridge with a TLS job server. Server A runs with --ssl and client
// certificates required; its own bridge reaches it through a private Unix
// socket and runs a build. Server B's bridge connects to A as
// tls://127.0.0.1:PORT with gearman.ca_file, cert_file and key_file, and
// its workers register on A.
func TestTLS_BridgeWorkers(t *testing.T) {
	certs := testcert.New(t)
	jenkinsA, jenkinsB := newJenkins(t), newJenkins(t)
	must(t, jenkinsA.AddNode(jenkinstest.NodeSpec{Name: "na", Executors: 1}))
	must(t, jenkinsA.AddJob(jenkinstest.JobSpec{Name: "hello"}))
	must(t, jenkinsB.AddNode(jenkinstest.NodeSpec{Name: "nb", Executors: 1}))
	must(t, jenkinsB.AddJob(jenkinstest.JobSpec{Name: "fromb"}))
	t.Setenv("GB_TLS_TEST_TOKEN_A", jenkinsA.AddUser("gb", "pw"))
	t.Setenv("GB_TLS_TEST_TOKEN_B", jenkinsB.AddUser("gb", "pw"))
	dir := t.TempDir()
	master := func(name, url, env string) string {
		return fmt.Sprintf("masters:\n  - name: %s\n    url: %s\n    user: gb\n    token_env: %s\n    poll_interval: 200ms\n", name, url, env)
	}
	cfgA := filepath.Join(dir, "a.yaml")
	must(t, os.WriteFile(cfgA, []byte(master("ma", jenkinsA.URL, "GB_TLS_TEST_TOKEN_A")), 0o600))
	// The socket's directory goes in TMPDIR; a killed server's is removed.
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	stale := filepath.Join(tmp, "gearbridge-bridge-123")
	must(t, os.Mkdir(stale, 0o700))
	must(t, os.WriteFile(filepath.Join(stale, "gearman.sock"), nil, 0o600))
	old := time.Now().Add(-time.Hour)
	must(t, os.Chtimes(stale, old, old))
	a := tlsServer(t, certs, "--config", cfgA)
	admin := DialTLS(t, a.Addr, certs.ClientConfig(true))
	eventually(t, 20*time.Second, "A's own bridge to register over its socket", func() bool {
		st := admin.Admin("status\n")
		return statusOf(st, "build:hello").workers == 1 && statusOf(st, "stop:ma").workers == 1
	})
	c := DialTLS(t, a.Addr, certs.ClientConfig(true))
	c.Send(p.SubmitJob, "build:hello", "u1", "{}")
	deadline := time.Now().Add(20 * time.Second)
	for {
		pkt, err := c.ReadWithin(time.Until(deadline))
		if err != nil {
			t.Fatalf("waiting for the build's result: %v", err)
		}
		if pkt.Type == p.WorkComplete {
			if !strings.Contains(pkt.Args()[1], `"result":"SUCCESS"`) {
				t.Errorf("build result %s", pkt.Args()[1])
			}
			break
		}
		if pkt.Type == p.WorkFail || pkt.Type == p.WorkException || pkt.Type == p.Error {
			t.Fatalf("the build over the TLS server failed: %v", pkt)
		}
	}

	if exists(stale) {
		t.Errorf("the stale socket directory %s is still there", stale)
	}
	sockets, _ := filepath.Glob(filepath.Join(tmp, "gearbridge-bridge-*"))
	if len(sockets) != 1 {
		t.Fatalf("socket directories %v, want one", sockets)
	}
	a.Stop()
	if exists(sockets[0]) {
		t.Errorf("A left its socket directory %s", sockets[0])
	}

	a.Restart()
	admin = DialTLS(t, a.Addr, certs.ClientConfig(true))
	cfgB := filepath.Join(dir, "b.yaml")
	must(t, os.WriteFile(cfgB, []byte(fmt.Sprintf("gearman:\n  servers: [\"tls://127.0.0.1:%d\"]\n  ca_file: %s\n  cert_file: %s\n  key_file: %s\n",
		a.Port, certs.CAFile, certs.ClientCertFile, certs.ClientKeyFile)+master("mb", jenkinsB.URL, "GB_TLS_TEST_TOKEN_B")), 0o600))
	StartGearbridge(t, "--config", cfgB)
	eventually(t, 20*time.Second, "B's bridge to register on A over TLS", func() bool {
		st := admin.Admin("status\n")
		return statusOf(st, "build:fromb").workers == 1 && statusOf(st, "stop:mb").workers == 1
	})
}
