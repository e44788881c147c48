package jenkinstest

import (
	"io"
	"log/slog"
	"net/http/httptest"
	"regexp"
	"sync"
	"testing"
	"time"
)

// Emulator is an in-process Jenkins. All state sits behind one mutex; the
// HTTP handlers and the Go control API both take it.
type Emulator struct {
	// URL is the root URL without a trailing slash, e.g. http://127.0.0.1:41234.
	URL string
	// Clock is the clock the emulator runs on.
	Clock Clock

	opts options
	prof profile
	log  *slog.Logger

	mu          sync.Mutex
	rootURL     string // with trailing slash, used in "url" fields
	nodes       map[string]*node
	nodeOrder   []*node // built-in first, then agents by name
	root        *job    // the Jenkins instance as an item group
	jobs        map[string]*job
	queue       []*queueItem // waiting, blocked and buildable, in arrival order
	active      map[int]*queueItem
	left        map[int]*queueItem
	history     []*queueItem
	nextQueueID int
	lastSweep   time.Time
	quieting    bool
	users       map[string]*user
	sessions    map[string]string // session id -> user name
	cookieName  string
	crumbSalt   string
	holds       []*regexp.Regexp
	faults      []*faultRule
	reqlog      []Request
	reqDropped  int
	lagPending  bool

	kickCh chan struct{}
	done   chan struct{}
	once   sync.Once
	srv    *httptest.Server

	perms map[string]*permSet // by user name; none: everything allowed
}

type options struct {
	clock         Clock
	version       string
	quietPeriod   time.Duration
	leftTTL       time.Duration
	stopDelay     time.Duration
	queueLag      time.Duration
	anonymousRead bool
	crumbs        *bool
	logger        *slog.Logger
	logLimit      int
	leftGap       time.Duration
	restartResult string
}

// Option configures an Emulator.
type Option func(*options)

// WithClock runs the emulator on c (for example a FakeClock).
func WithClock(c Clock) Option { return func(o *options) { o.clock = c } }

// WithVersion selects the version profile, e.g. VersionLegacy. It is also
// sent in the X-Jenkins header.
func WithVersion(v string) Option { return func(o *options) { o.version = v } }

// WithQuietPeriod sets the global quiet period (Jenkins' default is 5 s).
func WithQuietPeriod(d time.Duration) Option { return func(o *options) { o.quietPeriod = d } }

// WithLeftItemTTL sets how long a left queue item stays visible (default 5 min).
func WithLeftItemTTL(d time.Duration) Option { return func(o *options) { o.leftTTL = d } }

// WithStopDelay sets how long a stopped build keeps building before it ends
// ABORTED (default 100 ms): stop is asynchronous in Jenkins.
func WithStopDelay(d time.Duration) Option { return func(o *options) { o.stopDelay = d } }

// WithQueueLag delays every queue maintenance by d on the emulator's clock.
// With 0 (the default) an HTTP trigger is still handled asynchronously by
// the scheduler goroutine, so clients must poll for the start either way.
func WithQueueLag(d time.Duration) Option { return func(o *options) { o.queueLag = d } }

// WithAnonymousRead lets unauthenticated clients GET when users exist.
func WithAnonymousRead(on bool) Option { return func(o *options) { o.anonymousRead = on } }

// WithCrumbs forces CSRF crumbs on or off. By default they are required
// exactly when security is on (at least one user exists).
func WithCrumbs(on bool) Option { return func(o *options) { o.crumbs = &on } }

// WithLogger logs requests and state changes to l (default: discard).
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.logger = l } }

// WithRequestLogLimit caps the request log (default 100000 entries; the
// oldest are dropped first).
func WithRequestLogLimit(n int) Option { return func(o *options) { o.logLimit = n } }

// New starts an emulator on an httptest server and closes it when tb ends.
func New(tb testing.TB, opts ...Option) *Emulator {
	tb.Helper()
	e := NewEmulator(opts...)
	e.srv = httptest.NewServer(e)
	e.SetRootURL(e.srv.URL + "/")
	tb.Cleanup(e.Close)
	return e
}

// NewEmulator returns an emulator that is not listening anywhere: serve it
// as an http.Handler and call SetRootURL with the address it is served on.
func NewEmulator(opts ...Option) *Emulator {
	o := options{
		clock:       RealClock{},
		version:     VersionCurrent,
		quietPeriod: 5 * time.Second,
		leftTTL:     5 * time.Minute,
		stopDelay:   100 * time.Millisecond,
		logLimit:    100000,
	}
	for _, f := range opts {
		f(&o)
	}
	if o.logger == nil {
		o.logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	e := &Emulator{
		Clock:      o.clock,
		opts:       o,
		prof:       newProfile(o.version),
		log:        o.logger,
		nodes:      map[string]*node{},
		root:       &job{folder: true, children: map[string]*job{}},
		jobs:       map[string]*job{},
		active:     map[int]*queueItem{},
		left:       map[int]*queueItem{},
		users:      map[string]*user{},
		sessions:   map[string]string{},
		cookieName: "JSESSIONID." + randomHex(4),
		crumbSalt:  randomHex(16),
		kickCh:     make(chan struct{}, 1),
		done:       make(chan struct{}),
	}
	e.lastSweep = e.Clock.Now()
	builtIn := &node{name: "", mode: Normal, connected: true}
	e.setLabels(builtIn, nil)
	e.nodes[""] = builtIn
	e.sortNodes()
	go e.scheduler()
	return e
}

// SetRootURL sets the Jenkins root URL used in "url" fields.
func (e *Emulator) SetRootURL(u string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if u == "" || u[len(u)-1] != '/' {
		u += "/"
	}
	e.rootURL = u
	e.URL = u[:len(u)-1]
}

// Close stops the scheduler and the httptest server, if any. Requests that
// wait on an injected delay return at once.
func (e *Emulator) Close() {
	e.once.Do(func() {
		close(e.done)
		if e.srv != nil {
			e.srv.CloseClientConnections()
			e.srv.Close()
		}
	})
}

// Version returns the emulated Jenkins version.
func (e *Emulator) Version() string { return e.prof.version }
