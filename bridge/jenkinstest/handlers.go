package jenkinstest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"html"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// response is built under the lock and written after it is released, so a
// slow client never holds up the emulator.
type response struct {
	status   int
	ctype    string
	body     []byte
	location string
	cookies  []*http.Cookie
}

func text(status int, msg string) *response {
	return &response{status: status, ctype: "text/plain;charset=utf-8", body: []byte(msg + "\n")}
}

func notFound() *response { return text(http.StatusNotFound, "Not Found") }

func (e *Emulator) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rec := &statusRecorder{ResponseWriter: w}
	entry := Request{Time: e.Clock.Now(), Method: r.Method, Path: r.URL.Path, Query: r.URL.RawQuery, User: "anonymous"}
	defer func() {
		entry.Status = rec.status
		e.logRequest(entry)
		e.log.Debug("request", "method", r.Method, "path", r.URL.Path, "query", r.URL.RawQuery,
			"user", entry.User, "status", entry.Status, "fault", entry.Fault)
	}()
	e.mu.Lock()
	f, faulty := e.faultFor(r.Method + " " + r.URL.Path)
	e.mu.Unlock()
	if faulty {
		entry.Fault = true
		if e.applyFault(rec, r, f) {
			return
		}
	}

	e.mu.Lock()
	resp, who := e.handle(r)
	e.mu.Unlock()
	entry.User = who
	if faulty && f.LoseReply {
		resetConn(w)
		return
	}

	h := rec.Header()
	h.Set("X-Jenkins", e.prof.version)
	if resp.ctype != "" {
		h.Set("Content-Type", resp.ctype)
	}
	if resp.location != "" {
		h.Set("Location", resp.location)
	}
	if resp.status == http.StatusUnauthorized {
		h.Set("WWW-Authenticate", `Basic realm="Jenkins"`)
	}
	for _, c := range resp.cookies {
		http.SetCookie(rec, c)
	}
	rec.WriteHeader(resp.status)
	if r.Method != http.MethodHead {
		_, _ = rec.Write(resp.body)
	}
}

// handle authenticates, checks the crumb and dispatches. It runs locked.
func (e *Emulator) handle(r *http.Request) (*response, string) {
	pr, ok := e.authenticate(r)
	if !ok {
		name, _, _ := r.BasicAuth()
		return text(http.StatusUnauthorized, "Invalid password/token for user: "+name), "anonymous"
	}
	if e.securityOn() && pr.anon && !(e.opts.anonymousRead && r.Method != http.MethodPost) {
		return text(http.StatusForbidden, "Authentication required"), pr.name
	}
	if r.Method == http.MethodPost && !e.crumbValid(r, pr) {
		return text(http.StatusForbidden, "No valid crumb was included in the request"), pr.name
	}
	segs, err := splitPath(r.URL.EscapedPath())
	if err != nil {
		return text(http.StatusBadRequest, err.Error()), pr.name
	}
	if resp := e.checkPermission(r, pr, segs); resp != nil {
		return resp, pr.name
	}
	return e.dispatch(r, &pr, segs), pr.name
}

func splitPath(p string) ([]string, error) {
	var segs []string
	for _, s := range strings.Split(strings.Trim(p, "/"), "/") {
		if s == "" {
			continue
		}
		u, err := url.PathUnescape(s)
		if err != nil {
			return nil, fmt.Errorf("bad path segment %q", s)
		}
		segs = append(segs, u)
	}
	return segs, nil
}

func is(segs []string, want ...string) bool {
	if len(segs) != len(want) {
		return false
	}
	for i := range want {
		if segs[i] != want[i] {
			return false
		}
	}
	return true
}

var apiJSON = []string{"api", "json"}

func (e *Emulator) dispatch(r *http.Request, pr *principal, segs []string) *response {
	if len(segs) == 0 {
		return e.page(r)
	}
	head, rest := segs[0], segs[1:]
	switch {
	case head == "api" && is(rest, "json"):
		return e.jsonResp(r, e.rootObj())
	case head == "crumbIssuer" && is(rest, apiJSON...):
		return e.crumbIssuer(r, pr)
	case head == "whoAmI" && is(rest, apiJSON...):
		return e.jsonResp(r, obj("hudson.security.WhoAmI", p("anonymous", pr.anon),
			p("authenticated", !pr.anon), p("authorities", []string{}), p("name", pr.name)))
	case head == "computer":
		return e.computerRoute(r, rest)
	case head == "label" && len(rest) >= 1:
		expr := rest[0]
		if is(rest[1:], apiJSON...) && strings.TrimSpace(expr) != "" {
			return e.jsonResp(r, e.labelObj(labelFor(expr)))
		}
		if len(rest) == 1 {
			return e.page(r)
		}
	case head == "job":
		return e.jobRoute(r, pr, segs)
	case head == "queue":
		return e.queueRoute(r, rest)
	case head == "scriptText" && len(rest) == 0:
		return e.scriptText(r, pr)
	case head == "quietDown" || head == "cancelQuietDown":
		if len(rest) > 0 {
			break
		}
		if r.Method != http.MethodPost {
			return requirePost()
		}
		e.quieting = head == "quietDown"
		e.maintainSoon()
		return e.redirect(r, http.StatusFound, "/")
	}
	return notFound()
}

func requirePost() *response { return text(http.StatusMethodNotAllowed, "This URL requires POST") }

func (e *Emulator) page(r *http.Request) *response {
	body := "<html><head><title>Jenkins</title></head><body>jenkinstest emulator: " + html.EscapeString(r.URL.Path) + "</body></html>\n"
	return &response{status: http.StatusOK, ctype: "text/html;charset=utf-8", body: []byte(body)}
}

// jsonResp renders o pruned by tree= (which ignores visibility) or depth=.
func (e *Emulator) jsonResp(r *http.Request, o *object) *response {
	q := r.URL.Query()
	var pr pruner = byDepth(1)
	if t := q.Get("tree"); t != "" {
		spec, err := parseTree(t)
		if err != nil {
			return text(http.StatusBadRequest, err.Error())
		}
		pr = spec
	} else if d := q.Get("depth"); d != "" {
		n, err := strconv.Atoi(d)
		if err != nil || n < 0 {
			return text(http.StatusBadRequest, "bad depth "+d)
		}
		pr = byDepth(1 - n)
	}
	var buf bytes.Buffer
	render(&buf, o, pr)
	return &response{status: http.StatusOK, ctype: "application/json;charset=utf-8", body: buf.Bytes()}
}

// redirect answers with an absolute Location built from the request's own
// scheme and host, as Stapler does. target is a path ("/x/") or "." for
// the current object, which a Referer header overrides for forwardToPreviousPage.
func (e *Emulator) redirect(r *http.Request, status int, target string) *response {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	if target == "." {
		if ref := r.Header.Get("Referer"); ref != "" {
			return &response{status: status, location: ref}
		}
		p := r.URL.EscapedPath()
		target = p[:strings.LastIndexByte(p, '/')+1]
	}
	return &response{status: status, location: scheme + "://" + r.Host + target}
}

func (e *Emulator) crumbIssuer(r *http.Request, pr *principal) *response {
	if !e.crumbsOn() {
		return notFound()
	}
	cookie := e.ensureSession(pr)
	resp := e.jsonResp(r, obj("hudson.security.csrf.DefaultCrumbIssuer",
		p("crumb", e.crumbFor(*pr)), p("crumbRequestField", crumbField)))
	if cookie != nil {
		resp.cookies = append(resp.cookies, cookie)
	}
	return resp
}

func (e *Emulator) computerRoute(r *http.Request, rest []string) *response {
	if is(rest, apiJSON...) {
		return e.jsonResp(r, e.computerSetObj())
	}
	if len(rest) == 0 {
		return e.page(r)
	}
	name := rest[0]
	var n *node
	switch {
	case name == "(master)" || (name == "(built-in)" && e.prof.builtInToken == "(built-in)"):
		n = e.nodes[""]
	case name != "":
		n = e.nodes[name]
	}
	if n == nil {
		return notFound()
	}
	action := rest[1:]
	switch {
	case len(action) == 0:
		return e.page(r)
	case is(action, apiJSON...):
		return e.jsonResp(r, e.computerObj(n))
	case is(action, "config.xml") && n.name != "":
		return xmlResp(nodeConfigXML(n))
	case is(action, "toggleOffline"), is(action, "changeOfflineCause"):
		if r.Method != http.MethodPost {
			return requirePost()
		}
		msg := strings.TrimSpace(r.FormValue("offlineMessage"))
		if action[0] == "toggleOffline" && n.tempOffline {
			n.tempOffline, n.offlineMsg = false, ""
		} else {
			n.tempOffline, n.offlineMsg = true, msg
		}
		e.maintainSoon()
		return e.redirect(r, http.StatusFound, ".")
	}
	return notFound()
}

func (e *Emulator) jobRoute(r *http.Request, pr *principal, segs []string) *response {
	cur := e.root
	i := 0
	for i+1 < len(segs) && segs[i] == "job" && cur.folder {
		c, ok := cur.children[segs[i+1]]
		if !ok {
			return notFound()
		}
		cur, i = c, i+2
	}
	rest := segs[i:]
	switch {
	case len(rest) == 0:
		return e.page(r)
	case is(rest, apiJSON...):
		return e.jsonResp(r, e.itemObj(cur))
	case is(rest, "config.xml"):
		return xmlResp(e.jobConfigXML(cur))
	case cur.folder:
		return notFound()
	case is(rest, "build"), is(rest, "buildWithParameters"):
		if r.Method != http.MethodPost {
			return requirePost()
		}
		return e.trigger(r, pr, cur, rest[0] == "buildWithParameters")
	case is(rest, "enable"), is(rest, "disable"):
		if r.Method != http.MethodPost {
			return requirePost()
		}
		cur.spec.Disabled = rest[0] == "disable"
		e.maintainSoon()
		return e.redirect(r, http.StatusFound, "/"+cur.path())
	}
	b := e.findBuild(cur, rest[0])
	if b == nil {
		return notFound()
	}
	action := rest[1:]
	switch {
	case len(action) == 0:
		return e.page(r)
	case is(action, apiJSON...):
		return e.jsonResp(r, e.buildObj(b))
	case is(action, "stop"):
		if r.Method != http.MethodPost {
			return requirePost()
		}
		e.stopLocked(b)
		return e.redirect(r, http.StatusFound, "/"+b.path())
	case is(action, "submitDescription"):
		if r.Method != http.MethodPost {
			return requirePost()
		}
		d := r.FormValue("description")
		b.description = &d
		return e.redirect(r, http.StatusFound, ".")
	}
	return notFound()
}

func (e *Emulator) findBuild(j *job, seg string) *build {
	if n, err := strconv.Atoi(seg); err == nil {
		return j.byNumber[n]
	}
	var ok func(*build) bool
	switch seg {
	case "lastBuild":
		ok = func(*build) bool { return true }
	case "lastCompletedBuild":
		ok = func(b *build) bool { return !b.building }
	case "lastSuccessfulBuild":
		ok = func(b *build) bool { return !b.building && (b.result == ResultSuccess || b.result == ResultUnstable) }
	case "lastFailedBuild":
		ok = func(b *build) bool { return !b.building && b.result == ResultFailure }
	default:
		return nil
	}
	for i := len(j.builds) - 1; i >= 0; i-- {
		if ok(j.builds[i]) {
			return j.builds[i]
		}
	}
	return nil
}

// trigger implements build and buildWithParameters
// (ParameterizedJobMixIn.doBuild / doBuildWithParameters).
func (e *Emulator) trigger(r *http.Request, pr *principal, j *job, withParams bool) *response {
	if j.spec.Disabled {
		return text(http.StatusConflict, j.fullName()+" is not buildable")
	}
	if err := r.ParseForm(); err != nil {
		return text(http.StatusBadRequest, err.Error())
	}
	quiet := e.opts.quietPeriod
	if j.spec.QuietPeriod != nil {
		quiet = *j.spec.QuietPeriod
	}
	if d := r.Form.Get("delay"); d != "" {
		v, err := parseDelay(d)
		if err != nil {
			return text(http.StatusBadRequest, err.Error())
		}
		quiet = v
	}
	var pvs []paramValue
	var err error
	switch {
	case withParams && !j.parameterized():
		if e.prof.unparam400 {
			return text(http.StatusBadRequest, "This build is not parameterized!")
		}
		return text(http.StatusInternalServerError, "java.lang.IllegalStateException: This build is not parameterized!")
	case withParams:
		pvs, err = resolveParams(j, func(n string) (string, bool) {
			v, ok := r.Form[n]
			if !ok || len(v) == 0 {
				return "", false
			}
			return v[0], true
		})
	case j.parameterized():
		pvs, err = jsonParams(j, r.Form.Get("json"))
	}
	if err != nil {
		return text(http.StatusBadRequest, err.Error())
	}
	it, merged := e.scheduleLocked(j, pvs, quiet, pr.name)
	e.maintainSoon()
	status := http.StatusCreated
	if merged && e.prof.duplicate303 {
		status = http.StatusSeeOther
	}
	return e.redirect(r, status, fmt.Sprintf("/queue/item/%d/", it.id))
}

// jsonParams reads build's json={"parameter":[{"name":..,"value":..}]};
// unlike buildWithParameters it rejects undefined names.
func jsonParams(j *job, form string) ([]paramValue, error) {
	if form == "" {
		return nil, fmt.Errorf("This page expects a form submission")
	}
	var doc struct {
		Parameter json.RawMessage `json:"parameter"`
	}
	if err := json.Unmarshal([]byte(form), &doc); err != nil {
		return nil, fmt.Errorf("bad json form field: %w", err)
	}
	type nv struct {
		Name  string `json:"name"`
		Value any    `json:"value"`
	}
	var list []nv
	if err := json.Unmarshal(doc.Parameter, &list); err != nil {
		var one nv
		if err := json.Unmarshal(doc.Parameter, &one); err != nil {
			return nil, fmt.Errorf("bad parameter list: %w", err)
		}
		list = []nv{one}
	}
	vals := map[string]string{}
	for _, x := range list {
		found := false
		for _, d := range j.spec.Params {
			found = found || d.Name == x.Name
		}
		if !found {
			return nil, fmt.Errorf("No such parameter definition: %s", x.Name)
		}
		vals[x.Name] = fmt.Sprint(x.Value)
	}
	return resolveParams(j, func(n string) (string, bool) { v, ok := vals[n]; return v, ok })
}

// parseDelay follows TimeDuration.fromString: "Nsec"/"Nsecs" are seconds,
// a bare number is milliseconds; the quiet period keeps whole seconds.
func parseDelay(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	unit := time.Millisecond
	if i := strings.LastIndex(s, "sec"); i >= 0 && (strings.HasSuffix(s, "sec") || strings.HasSuffix(s, "secs")) {
		s, unit = strings.TrimSpace(s[:i]), time.Second
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("Invalid time duration value: %s", s)
	}
	return (time.Duration(n) * unit).Truncate(time.Second), nil
}

func (e *Emulator) queueRoute(r *http.Request, rest []string) *response {
	switch {
	case is(rest, apiJSON...):
		return e.jsonResp(r, e.queueObj())
	case len(rest) == 0:
		return e.page(r)
	case is(rest, "cancelItem"):
		if r.Method != http.MethodPost {
			return requirePost()
		}
		id, _ := strconv.Atoi(r.FormValue("id"))
		it, ok := e.active[id]
		if ok {
			e.cancelLocked(it)
			e.maintainSoon()
		}
		switch {
		case !e.prof.cancel204:
			return e.redirect(r, http.StatusFound, ".")
		case !ok:
			return text(http.StatusNotFound, fmt.Sprintf("Provided id (%s) not found", r.FormValue("id")))
		}
		return &response{status: http.StatusNoContent}
	case len(rest) >= 2 && rest[0] == "item":
		id, err := strconv.Atoi(rest[1])
		if err != nil {
			return notFound()
		}
		it := e.itemByID(id)
		if it == nil {
			return notFound()
		}
		if len(rest) == 2 {
			return e.page(r)
		}
		if is(rest[2:], apiJSON...) {
			return e.jsonResp(r, e.queueItemObj(it))
		}
	}
	return notFound()
}

// itemByID finds a queued item or a left item younger than the TTL.
func (e *Emulator) itemByID(id int) *queueItem {
	if it, ok := e.active[id]; ok {
		return it
	}
	it, ok := e.left[id]
	if !ok {
		return nil
	}
	if e.Clock.Now().Sub(it.leftAt) >= e.opts.leftTTL {
		delete(e.left, id)
		return nil
	}
	return it
}
