package jenkinstest

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
)

type user struct {
	name     string
	password string
	tokens   map[string]bool
}

// AddUser adds a user (turning security on) and returns a new API token.
func (e *Emulator) AddUser(name, password string) (token string) {
	token = "11" + randomHex(16)
	e.mu.Lock()
	defer e.mu.Unlock()
	u, ok := e.users[name]
	if !ok {
		u = &user{name: name, tokens: map[string]bool{}}
		e.users[name] = u
	}
	u.password = password
	u.tokens[token] = true
	return token
}

// AddAPIToken gives an existing user one more API token.
func (e *Emulator) AddAPIToken(name, token string) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	u, ok := e.users[name]
	if !ok {
		return fmt.Errorf("jenkinstest: no user %q", name)
	}
	u.tokens[token] = true
	return nil
}

// RevokeAPIToken removes a token; requests using it get 401 from now on.
func (e *Emulator) RevokeAPIToken(name, token string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if u, ok := e.users[name]; ok {
		delete(u.tokens, token)
	}
}

func (e *Emulator) securityOn() bool { return len(e.users) > 0 }

func (e *Emulator) crumbsOn() bool {
	if e.opts.crumbs != nil {
		return *e.opts.crumbs
	}
	return e.securityOn()
}

// principal is who a request runs as.
type principal struct {
	name  string // "anonymous" when not authenticated
	anon  bool
	token bool   // authenticated with an API token
	sid   string // session id from the cookie, if the session exists
}

// authenticate reads Basic credentials and the session cookie. ok is false
// when the credentials are wrong (401).
func (e *Emulator) authenticate(r *http.Request) (pr principal, ok bool) {
	pr = principal{name: "anonymous", anon: true}
	if c, err := r.Cookie(e.cookieName); err == nil {
		if owner, found := e.sessions[c.Value]; found {
			pr.sid = c.Value
			if owner != "anonymous" {
				pr.name, pr.anon = owner, false
			}
		}
	}
	name, secret, basic := r.BasicAuth()
	if !basic {
		return pr, true
	}
	u, found := e.users[name]
	if !found {
		return pr, false
	}
	switch {
	case u.tokens[secret]:
		pr.token = true
	case secret == u.password && u.password != "":
	default:
		return pr, false
	}
	pr.name, pr.anon = u.name, false
	if pr.sid != "" && e.sessions[pr.sid] != u.name {
		pr.sid = "" // a session belongs to the user that opened it
	}
	return pr, true
}

// crumbFor is H(user, session): a crumb is worthless with another session
// cookie or as another user. Before 2.176.2 it is bound to the user only.
func (e *Emulator) crumbFor(pr principal) string {
	m := hmac.New(sha256.New, []byte(e.crumbSalt))
	m.Write([]byte(pr.name))
	if e.prof.sessionCrumbs {
		m.Write([]byte{0})
		m.Write([]byte(pr.sid))
	}
	return hex.EncodeToString(m.Sum(nil))
}

// ensureSession opens a session for pr if the request has none, as the
// crumb issuer page does, and returns the cookie to set (nil if none).
func (e *Emulator) ensureSession(pr *principal) *http.Cookie {
	if pr.sid != "" {
		return nil
	}
	pr.sid = randomHex(12)
	e.sessions[pr.sid] = pr.name
	return &http.Cookie{Name: e.cookieName, Value: pr.sid, Path: "/", HttpOnly: true}
}

// crumbValid checks the Jenkins-Crumb header or form field. API-token
// requests are exempt from 2.96 on.
func (e *Emulator) crumbValid(r *http.Request, pr principal) bool {
	if !e.crumbsOn() || (pr.token && e.prof.tokenCrumbExempt) {
		return true
	}
	if e.prof.sessionCrumbs && pr.sid == "" {
		return false
	}
	got := r.Header.Get(crumbField)
	if got == "" {
		got = r.FormValue(crumbField)
	}
	return got != "" && hmac.Equal([]byte(got), []byte(e.crumbFor(pr)))
}

const crumbField = "Jenkins-Crumb"

func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)
}
