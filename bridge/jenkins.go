package bridge

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// jenkins is a small REST client for one master. It does what gojenkins
// v1.1.0 gets wrong for us: every request has a context and a timeout,
// status codes are checked, redirects are not followed (the trigger's
// Location header is the answer), and a crumb is fetched only when
// Jenkins asks for one.
type jenkins struct {
	base    *url.URL
	user    string
	token   string
	timeout time.Duration
	hc      *http.Client

	crumbMu    sync.Mutex
	crumbField string
	crumb      string

	requests atomic.Uint64

	latencyMu sync.Mutex
	avgRTT    time.Duration // moving average of request round trips
}

// latency is the recent mean round trip of a request, for the status page.
func (j *jenkins) latency() time.Duration {
	j.latencyMu.Lock()
	defer j.latencyMu.Unlock()
	return j.avgRTT
}

func (j *jenkins) observe(rtt time.Duration) {
	j.latencyMu.Lock()
	defer j.latencyMu.Unlock()
	if j.avgRTT == 0 {
		j.avgRTT = rtt
		return
	}
	j.avgRTT += (rtt - j.avgRTT) / 5
}

// errBadJSON marks an answer that is not the JSON asked for.
var errBadJSON = errors.New("bad JSON")

// isTimeout reports a request that ran out of time.
func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, context.DeadlineExceeded) || errors.As(err, &ne) && ne.Timeout()
}

// shortURL is target for error messages: without the query, whose tree=
// filters run to hundreds of characters.
func shortURL(target string) string {
	if i := strings.IndexByte(target, '?'); i >= 0 {
		return target[:i]
	}
	return target
}

func newJenkins(m *MasterConfig) *jenkins {
	jar, _ := cookiejar.New(nil) // crumbs are bound to the session cookie
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = m.tls
	tr.MaxIdleConnsPerHost = 64
	return &jenkins{
		base:    m.base,
		user:    m.User,
		token:   m.token,
		timeout: time.Duration(m.RequestTimeout),
		hc: &http.Client{
			Transport:     tr,
			Jar:           jar,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
	}
}

// httpError is a response with an error status.
type httpError struct {
	Method, URL string
	Status      int
	Body        string
}

func (e *httpError) Error() string {
	body := strings.TrimSpace(e.Body)
	if len(body) > 200 {
		body = body[:200] + "..."
	}
	if body != "" {
		body = ": " + body
	}
	return fmt.Sprintf("%s %s: HTTP %d%s", e.Method, e.URL, e.Status, body)
}

func statusOf(err error) int {
	var he *httpError
	if errors.As(err, &he) {
		return he.Status
	}
	return 0
}

func isNotFound(err error) bool { return statusOf(err) == http.StatusNotFound }

// isTransient reports errors worth retrying: the network, timeouts, 5xx
// and 429. 4xx answers are final.
func isTransient(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) {
		return false
	}
	if s := statusOf(err); s != 0 {
		return s >= 500 || s == http.StatusTooManyRequests
	}
	var ne net.Error
	return errors.As(err, &ne) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) ||
		errors.Is(err, context.DeadlineExceeded) || strings.Contains(err.Error(), "connection reset")
}

// resolve turns an escaped path relative to the master's base URL into a
// URL.
func (j *jenkins) resolve(path string, query url.Values) string {
	s := strings.TrimSuffix(j.base.String(), "/") + "/" + strings.TrimPrefix(path, "/")
	if len(query) > 0 {
		s += "?" + query.Encode()
	}
	return s
}

// do sends one request and returns the response with its body read.
func (j *jenkins) do(ctx context.Context, method, path string, query url.Values, form url.Values) (*http.Response, []byte, error) {
	ctx, cancel := context.WithTimeout(ctx, j.timeout)
	defer cancel()
	target := j.resolve(path, query)
	resp, body, err := j.send(ctx, method, target, form)
	if err == nil && method == http.MethodPost && resp.StatusCode == http.StatusForbidden &&
		strings.Contains(string(body), "No valid crumb") {
		// Password authentication (or an old Jenkins): fetch a crumb for
		// this session and try once more.
		if err := j.fetchCrumb(ctx); err != nil {
			return nil, nil, err
		}
		resp, body, err = j.send(ctx, method, target, form)
	}
	if err != nil {
		return nil, nil, err
	}
	if resp.StatusCode >= 400 {
		return resp, body, &httpError{Method: method, URL: shortURL(target), Status: resp.StatusCode, Body: string(body)}
	}
	return resp, body, nil
}

func (j *jenkins) send(ctx context.Context, method, target string, form url.Values) (*http.Response, []byte, error) {
	var rd io.Reader
	if form != nil {
		rd = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequestWithContext(ctx, method, target, rd)
	if err != nil {
		return nil, nil, err
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	if j.user != "" {
		req.SetBasicAuth(j.user, j.token)
	}
	if method == http.MethodPost {
		j.crumbMu.Lock()
		if j.crumb != "" {
			req.Header.Set(j.crumbField, j.crumb)
		}
		j.crumbMu.Unlock()
	}
	j.requests.Add(1)
	began := time.Now()
	resp, err := j.hc.Do(req)
	if err != nil {
		// url.Error names the method and URL already; without the query,
		// whose tree= filters run to hundreds of characters.
		var ue *url.Error
		if errors.As(err, &ue) {
			ue.URL = shortURL(ue.URL)
			return nil, nil, ue
		}
		return nil, nil, fmt.Errorf("%s %s: %w", method, shortURL(target), err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, nil, fmt.Errorf("%s %s: reading the answer: %w", method, shortURL(target), err)
	}
	j.observe(time.Since(began))
	return resp, body, nil
}

func (j *jenkins) fetchCrumb(ctx context.Context) error {
	var c struct {
		Crumb             string `json:"crumb"`
		CrumbRequestField string `json:"crumbRequestField"`
	}
	target := j.resolve("crumbIssuer/api/json", nil)
	resp, body, err := j.send(ctx, http.MethodGet, target, nil)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return &httpError{Method: http.MethodGet, URL: shortURL(target), Status: resp.StatusCode, Body: string(body)}
	}
	if err := json.Unmarshal(body, &c); err != nil || c.Crumb == "" {
		return fmt.Errorf("GET %s: no crumb in the answer", target)
	}
	j.crumbMu.Lock()
	j.crumbField, j.crumb = c.CrumbRequestField, c.Crumb
	j.crumbMu.Unlock()
	return nil
}

// getJSON reads path's api/json with a tree= filter into out.
func (j *jenkins) getJSON(ctx context.Context, path, tree string, out any) error {
	q := url.Values{}
	if tree != "" {
		q.Set("tree", tree)
	}
	_, body, err := j.do(ctx, http.MethodGet, strings.TrimSuffix(path, "/")+"/api/json", q, nil)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(body, out); err != nil {
		return fmt.Errorf("GET %s: %w: %v", j.resolve(path, nil), errBadJSON, err)
	}
	return nil
}

// getText reads a plain resource such as config.xml.
func (j *jenkins) getText(ctx context.Context, path string) ([]byte, error) {
	_, body, err := j.do(ctx, http.MethodGet, path, nil, nil)
	return body, err
}

// post sends a form and returns the response (redirects are not followed).
func (j *jenkins) post(ctx context.Context, path string, query, form url.Values) (*http.Response, error) {
	if form == nil {
		form = url.Values{}
	}
	resp, _, err := j.do(ctx, http.MethodPost, path, query, form)
	return resp, err
}

// jobPath is the URL path of a project: job/a/job/b/ for "a/b".
func jobPath(fullName string) string {
	var b strings.Builder
	for _, seg := range strings.Split(fullName, "/") {
		b.WriteString("job/")
		b.WriteString(url.PathEscape(seg))
		b.WriteByte('/')
	}
	return b.String()
}

// queueItemID reads the item number from a Location such as
// http://host/queue/item/42/.
func queueItemID(location string) (int64, error) {
	u, err := url.Parse(location)
	if err != nil {
		return 0, fmt.Errorf("bad Location %q: %w", location, err)
	}
	parts := strings.Split(strings.Trim(u.Path, "/"), "/")
	if len(parts) < 3 || parts[len(parts)-3] != "queue" || parts[len(parts)-2] != "item" {
		return 0, fmt.Errorf("Location %q is not a queue item", location)
	}
	var id int64
	if _, err := fmt.Sscan(parts[len(parts)-1], &id); err != nil {
		return 0, fmt.Errorf("Location %q: bad item number", location)
	}
	return id, nil
}
