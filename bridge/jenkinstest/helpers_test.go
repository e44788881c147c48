package jenkinstest_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"testing"
	"time"
)

// client talks to the emulator (or to a real Jenkins) over plain net/http,
// never through the emulator's Go API. It does not follow redirects.
type client struct {
	t          testing.TB
	base       string // no trailing slash
	user, pass string
	hc         *http.Client
	crumb      string
}

func newClient(t testing.TB, base, user, pass string) *client {
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &client{t: t, base: base, user: user, pass: pass, hc: &http.Client{
		Jar: jar, Timeout: 10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
}

type reply struct {
	status int
	header http.Header
	body   string
}

func (c *client) do(method, path string, form url.Values) reply {
	c.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, c.base+path, body)
	if err != nil {
		c.t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	if c.user != "" {
		req.SetBasicAuth(c.user, c.pass)
	}
	if c.crumb != "" {
		req.Header.Set("Jenkins-Crumb", c.crumb)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		c.t.Fatal(err)
	}
	return reply{status: resp.StatusCode, header: resp.Header, body: string(b)}
}

func (c *client) get(path string) reply { c.t.Helper(); return c.do("GET", path, nil) }

func (c *client) post(path string, form url.Values) reply {
	c.t.Helper()
	if form == nil {
		form = url.Values{}
	}
	return c.do("POST", path, form)
}

// json GETs path and decodes a 200 reply.
func (c *client) json(path string) map[string]any {
	c.t.Helper()
	r := c.get(path)
	if r.status != http.StatusOK {
		c.t.Fatalf("GET %s: %d %s", path, r.status, r.body)
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(r.body), &m); err != nil {
		c.t.Fatalf("GET %s: %v in %s", path, err, r.body)
	}
	return m
}

// fetchCrumb gets a crumb (and the session cookie with it).
func (c *client) fetchCrumb() {
	c.t.Helper()
	m := c.json("/crumbIssuer/api/json")
	c.crumb = m["crumb"].(string)
}

// trigger POSTs buildWithParameters and returns the queue item path
// ("/queue/item/N/") from the Location header.
func (c *client) trigger(job string, form url.Values) (reply, string) {
	c.t.Helper()
	r := c.post(job+"buildWithParameters", form)
	loc := r.header.Get("Location")
	if loc == "" {
		return r, ""
	}
	u, err := url.Parse(loc)
	if err != nil {
		c.t.Fatal(err)
	}
	return r, u.Path
}

// eventually polls cond until it holds or 10 s pass.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// pollItem polls a queue item until it has left the queue.
func (c *client) pollItem(path string) map[string]any {
	c.t.Helper()
	var m map[string]any
	eventually(c.t, "queue item "+path+" to leave", func() bool {
		m = c.json(path + "api/json")
		return m["_class"] == "hudson.model.Queue$LeftItem"
	})
	return m
}

func relPath(t testing.TB, abs string) string {
	t.Helper()
	u, err := url.Parse(abs)
	if err != nil {
		t.Fatal(err)
	}
	return u.Path
}
