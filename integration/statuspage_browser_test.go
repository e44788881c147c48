package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gearbridge/gearbridge"
	"github.com/gearbridge/gearbridge/bridge/jenkinstest"
	"github.com/gearbridge/gearbridge/protocol"
)

// The status page as an operator's browser shows it: the real binary
// bridging three emulated masters, read by headless Chromium (Debian's
// chromium package; CHROMIUM names another binary). With GB_SCREENSHOT=FILE
// the test also saves a picture of the page there (make screenshot).

// needChromium returns the browser, skipping (failing under CI) without it.
func needChromium(t *testing.T) string {
	t.Helper()
	name := os.Getenv("CHROMIUM")
	if name == "" {
		name = "chromium"
	}
	p, err := exec.LookPath(name)
	if err != nil {
		skipOrFail(t, "%s not available: %v (apt-get install chromium)", name, err)
	}
	return p
}

// chromium runs headless Chromium on url with args (--dump-dom,
// --screenshot=...) and returns its standard output.
func chromium(t *testing.T, bin, url string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), scaledWait(t, 60*time.Second))
	defer cancel()
	all := append([]string{
		"--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
		"--no-first-run", "--no-default-browser-check", "--disable-extensions",
		"--user-data-dir=" + t.TempDir(),
	}, args...)
	cmd := exec.CommandContext(ctx, bin, append(all, url)...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("chromium %v: %v\n%s", args, err, tail([]byte(stderr.String()), 4000))
	}
	return string(out)
}

// fleetStatus reads /api/status.
func fleetStatus(t *testing.T, s *Server) statusJSON {
	t.Helper()
	resp, err := http.Get("http://" + s.HTTPAddr + "/api/status")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var st statusJSON
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		t.Fatalf("/api/status: %v", err)
	}
	return st
}

type statusJSON struct {
	Functions []struct {
		Name                string  `json:"name"`
		Total               int     `json:"total"`
		Workers             int     `json:"workers"`
		OldestQueuedSeconds float64 `json:"oldest_queued_seconds"`
	} `json:"functions"`
	Bridge *gearbridge.Fleet `json:"bridge"`
}

func (s statusJSON) master(name string) *gearbridge.MasterStatus {
	if s.Bridge == nil {
		return nil
	}
	for i := range s.Bridge.Masters {
		if s.Bridge.Masters[i].Name == name {
			return &s.Bridge.Masters[i]
		}
	}
	return nil
}

func (s statusJSON) function(name string) (total int, oldest float64) {
	for _, f := range s.Functions {
		if f.Name == name {
			return f.Total, f.OldestQueuedSeconds
		}
	}
	return -1, 0
}

// fleetRig is the real binary bridging emulated masters, each with the
// given nodes and jobs.
func startFleet(t *testing.T, emus map[string]*jenkinstest.Emulator, names ...string) *Server {
	t.Helper()
	var cfg strings.Builder
	cfg.WriteString("masters:\n")
	for _, name := range names {
		e := emus[name]
		env := "GB_FLEET_TOKEN_" + strings.ToUpper(name)
		t.Setenv(env, e.AddUser("gearbridge", "secret"))
		fmt.Fprintf(&cfg, "  - name: %s\n    url: %s\n    user: gearbridge\n    token_env: %s\n    poll_interval: 200ms\n    request_timeout: 2s\n", name, e.URL, env)
	}
	path := filepath.Join(t.TempDir(), "gearbridge.yaml")
	must(t, os.WriteFile(path, []byte(cfg.String()), 0o644))
	return StartGearbridge(t, "--config", path)
}

func TestStatusPage_InHeadlessChromium(t *testing.T) {
	browser := needChromium(t)
	emus := map[string]*jenkinstest.Emulator{}
	for _, spec := range []struct {
		name  string
		nodes []jenkinstest.NodeSpec
	}{
		{"alpha", []jenkinstest.NodeSpec{{Name: "alpha-linux-1", Labels: []string{"linux"}, Executors: 2}, {Name: "alpha-linux-2", Labels: []string{"linux"}, Executors: 2}}},
		{"beta", []jenkinstest.NodeSpec{{Name: "beta-1", Labels: []string{"linux"}, Executors: 2}}},
		{"gamma", []jenkinstest.NodeSpec{{Name: "gamma-win-1", Labels: []string{"windows"}, Executors: 1}, {Name: "gamma-mac-1", Labels: []string{"macos"}, Executors: 1}}},
	} {
		e := newJenkins(t)
		for _, n := range spec.nodes {
			must(t, e.AddNode(n))
		}
		emus[spec.name] = e
	}
	alpha, beta := emus["alpha"], emus["beta"]
	must(t, alpha.AddJob(jenkinstest.JobSpec{Name: "integration", Concurrent: true, Duration: 10 * time.Millisecond}))
	must(t, alpha.AddJob(jenkinstest.JobSpec{Name: "deploy", Concurrent: true}))
	must(t, alpha.HoldBuilds("^deploy$"))
	must(t, beta.AddJob(jenkinstest.JobSpec{Name: "lint", Concurrent: true}))
	must(t, emus["gamma"].SetNodeOffline("gamma-mac-1", true, "disk full"))

	gb := startFleet(t, emus, "alpha", "beta", "gamma")
	wait := scaledWait(t, 20*time.Second)
	eventually(t, wait, "all masters up", func() bool {
		st := fleetStatus(t, gb)
		for _, name := range []string{"alpha", "beta", "gamma"} {
			if m := st.master(name); m == nil || !m.Up {
				return false
			}
		}
		return true
	})

	// A finished build, a held (running) one, and a job nobody can take.
	c := Dial(t, gb.Addr)
	c.Send(protocol.SubmitJob, "build:integration", "done-1", "{}")
	jobCreated(t, c)
	for p := c.Read(); p.Type != protocol.WorkComplete; p = c.Read() {
	}
	c.Send(protocol.SubmitJobBg, "build:deploy", "held-1", "{}")
	handle := jobCreated(t, c)
	c.Send(protocol.SubmitJobBg, "build:nobody-takes-this", "queued-1", "{}")
	jobCreated(t, c)

	var buildURL string
	eventually(t, wait, "the held build on an executor, the queued job a second old", func() bool {
		st := fleetStatus(t, gb)
		if _, oldest := st.function("build:nobody-takes-this"); oldest < 1 {
			return false
		}
		for _, n := range st.master("alpha").Nodes {
			for _, e := range n.Executors {
				if e.Busy && e.Handle == handle {
					buildURL = e.BuildURL
					return true
				}
			}
		}
		return false
	})

	// Beta is killed.
	beta.Close()
	eventually(t, wait, "beta seen down", func() bool {
		m := fleetStatus(t, gb).master("beta")
		return m != nil && !m.Up
	})

	dom := chromium(t, browser, "http://"+gb.HTTPAddr+"/", "--dump-dom")
	for _, name := range []string{"alpha", "beta", "gamma"} {
		if !regexp.MustCompile(`<tr class="master" data-master="` + name + `" data-state="(up|down)">\s*<td><a href="[^"]+">` + name + `</a>`).MatchString(dom) {
			t.Errorf("master %s not listed on the page", name)
		}
	}
	if !strings.Contains(dom, `data-master="beta" data-state="down"`) || !regexp.MustCompile(`(?s)data-master="beta".*?<td class="state down">down for `).MatchString(dom) {
		t.Errorf("beta is not shown as down:\n%s", section(dom, "masters"))
	}
	if !strings.Contains(dom, `data-master="alpha" data-state="up"`) {
		t.Errorf("alpha is not shown as up:\n%s", section(dom, "masters"))
	}
	link := regexp.MustCompile(`<a class="ex busy" href="` + regexp.QuoteMeta(buildURL) + `" title="executor \d · Gearman ` + regexp.QuoteMeta(handle) + `">deploy #1 <code>` + regexp.QuoteMeta(handle) + `</code> · [\dhms]+</a>`)
	if buildURL == "" || !link.MatchString(dom) {
		t.Errorf("no busy executor links to %q (handle %s):\n%s", buildURL, handle, section(dom, "nodes"))
	}
	age := regexp.MustCompile(`data-function="build:nobody-takes-this" data-oldest-seconds="(\d+)">(?s:.*?)<td class="n oldest">(\d+s|\d+m\d\ds|\d+h\d\dm)\s`).FindStringSubmatch(dom)
	if age == nil {
		t.Errorf("no age for the queued job:\n%s", section(dom, "queue"))
	} else if secs, _ := strconv.Atoi(age[1]); secs < 1 {
		t.Errorf("queued job's age %s (%ss), want at least 1s", age[2], age[1])
	}
	if !strings.Contains(dom, `<meta http-equiv="refresh" content="5">`) {
		t.Errorf("the page does not reload itself")
	}

	if path := os.Getenv("GB_SCREENSHOT"); path != "" {
		abs, err := filepath.Abs(path)
		must(t, err)
		// A busier fleet for the picture: more running builds, and a
		// failed one among the finished.
		must(t, alpha.SetOutcomes("integration", jenkinstest.Outcome{Result: "FAILURE", Duration: 10 * time.Millisecond}))
		c.Send(protocol.SubmitJob, "build:integration", "done-2", "{}")
		jobCreated(t, c)
		for p := c.Read(); p.Type != protocol.WorkComplete; p = c.Read() {
		}
		for i := 2; i <= 3; i++ {
			c.Send(protocol.SubmitJobBg, "build:deploy", fmt.Sprint("held-", i), "{}")
			jobCreated(t, c)
		}
		c.Send(protocol.SubmitJobHighBg, "build:nobody-takes-this", "queued-2", "{}")
		jobCreated(t, c)
		eventually(t, wait, "three builds running", func() bool {
			busy := 0
			for _, n := range fleetStatus(t, gb).master("alpha").Nodes {
				for _, e := range n.Executors {
					if e.Busy {
						busy++
					}
				}
			}
			return busy == 3
		})
		chromium(t, browser, "http://"+gb.HTTPAddr+"/?refresh=0", "--screenshot="+abs, "--window-size=1100,1000", "--hide-scrollbars", "--force-device-scale-factor=1")
		if fi, err := os.Stat(abs); err != nil || fi.Size() == 0 {
			t.Fatalf("no screenshot at %s: %v", abs, err)
		}
		t.Logf("screenshot written to %s", abs)
	}
}

func jobCreated(t *testing.T, c *Conn) string {
	t.Helper()
	p := c.Read()
	if p.Type != protocol.JobCreated {
		t.Fatalf("got %v, want JOB_CREATED", p)
	}
	return p.Args()[0]
}

// section cuts the part of the page with the given id, for failure messages.
func section(dom, id string) string {
	i := strings.Index(dom, `<section id="`+id+`"`)
	if i < 0 {
		return string(tail([]byte(dom), 3000))
	}
	j := strings.Index(dom[i:], "</section>")
	if j < 0 {
		j = len(dom) - i
	}
	return dom[i : i+j]
}
