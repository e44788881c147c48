package bridge

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"regexp"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Config is the bridge part of gearbridge's configuration file.
type Config struct {
	Gearman GearmanConfig  `yaml:"gearman"`
	Masters []MasterConfig `yaml:"masters"`
}

// GearmanConfig lists the job servers the bridge's workers connect to.
type GearmanConfig struct {
	// Servers are HOST:PORT addresses, tls://HOST:PORT for a server with
	// TLS (gearmand --ssl); empty means the embedded server.
	Servers []string `yaml:"servers"`
	// CAFile is a PEM bundle to trust for tls:// servers (default: the
	// system's CAs).
	CAFile string `yaml:"ca_file"`
	// CertFile and KeyFile are the client certificate and key presented to
	// tls:// servers that require one (gearmand --ssl-ca-file).
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`

	tls *tls.Config // for tls:// servers
}

// MasterConfig is one Jenkins master.
type MasterConfig struct {
	// Name is the manager name: the bridge registers stop:<name> and
	// set_description:<name>, and reports it as "manager" in WORK_DATA.
	Name string `yaml:"name"`
	URL  string `yaml:"url"`
	User string `yaml:"user"`
	// The API token comes from a file or an environment variable, never
	// from the configuration file itself.
	TokenFile string `yaml:"token_file"`
	TokenEnv  string `yaml:"token_env"`
	// PollInterval is how often the master's nodes and projects are read.
	PollInterval Duration `yaml:"poll_interval"`
	// RequestTimeout bounds every HTTP request to the master.
	RequestTimeout Duration `yaml:"request_timeout"`
	// MaxOutage is how long a running job follows its build through an
	// unreachable master before it fails (and Zuul runs it again).
	MaxOutage Duration `yaml:"max_outage"`
	// CAFile is a PEM bundle to trust for an https URL.
	CAFile string `yaml:"ca_file"`
	// NodeParameter names a NodeLabel-style job parameter that pins a build
	// to the executor's node; projects that define it get it set.
	NodeParameter string `yaml:"node_parameter"`
	// Trigger is how builds are queued: "rest" (buildWithParameters, the
	// default) or "script" (the script console, which needs
	// Overall/RunScripts: pinned to the node, every parameter passed).
	Trigger string `yaml:"trigger"`
	// AllowUnpinned registers build:<project>:<label> even for projects
	// whose builds cannot be pinned to the worker's node (no NodeLabel
	// parameter, rest trigger): Jenkins may then run them on another node.
	AllowUnpinned bool `yaml:"allow_unpinned"`

	token string      // read from TokenFile or TokenEnv
	tls   *tls.Config // from CAFile
	caPEM []byte      // CAFile's content, to see a change on reload
	base  *url.URL
}

// Duration is a time.Duration written as "5s" in YAML.
type Duration time.Duration

// UnmarshalYAML reads a Go duration string.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	var s string
	if err := n.Decode(&s); err != nil {
		return err
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("line %d: %q is not a duration (like 5s or 500ms)", n.Line, s)
	}
	*d = Duration(v)
	return nil
}

const (
	defaultPollInterval   = 5 * time.Second
	defaultRequestTimeout = 15 * time.Second
	defaultMaxOutage      = 30 * time.Minute
)

// LoadConfig reads and checks a configuration file. Every problem found is
// reported, one per line, so that a user fixes them all at once.
func LoadConfig(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	return ParseConfig(data, path)
}

// ParseConfig parses configuration bytes; name is used in messages.
func ParseConfig(data []byte, name string) (*Config, error) {
	var cfg Config
	dec := yaml.NewDecoder(strings.NewReader(string(data)))
	dec.KnownFields(true)
	if err := dec.Decode(&cfg); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("config %s: %w", name, fixSyntaxErrorLine(err, data))
	}
	var problems []string
	seen := map[string]bool{}
	for i := range cfg.Masters {
		m := &cfg.Masters[i]
		where := fmt.Sprintf("masters[%d]", i)
		if m.Name != "" {
			where = fmt.Sprintf("master %q", m.Name)
		}
		for _, p := range m.check() {
			problems = append(problems, where+": "+p)
		}
		if seen[m.Name] {
			problems = append(problems, where+": the name is used twice")
		}
		seen[m.Name] = true
	}
	for _, s := range cfg.Gearman.Servers {
		if !strings.Contains(strings.TrimPrefix(s, tlsScheme), ":") {
			problems = append(problems, fmt.Sprintf("gearman.servers: %q is not HOST:PORT or tls://HOST:PORT", s))
		}
	}
	problems = append(problems, cfg.Gearman.check()...)
	if len(problems) > 0 {
		return nil, fmt.Errorf("config %s:\n  %s", name, strings.Join(problems, "\n  "))
	}
	return &cfg, nil
}

// tlsScheme starts the address of a job server that speaks TLS.
const tlsScheme = "tls://"

// check loads the TLS settings for tls:// servers.
func (g *GearmanConfig) check() []string {
	var problems []string
	g.tls = &tls.Config{MinVersion: tls.VersionTLS12}
	if g.CAFile != "" {
		if pool, _, err := LoadCAFile(g.CAFile); err != nil {
			problems = append(problems, fmt.Sprintf("gearman.ca_file: %v", err))
		} else {
			g.tls.RootCAs = pool
		}
	}
	switch {
	case (g.CertFile == "") != (g.KeyFile == ""):
		problems = append(problems, "gearman: cert_file and key_file go together")
	case g.CertFile != "":
		cert, err := tls.LoadX509KeyPair(g.CertFile, g.KeyFile)
		if err != nil {
			problems = append(problems, fmt.Sprintf("gearman.cert_file and key_file: %v", err))
		} else {
			g.tls.Certificates = []tls.Certificate{cert}
		}
	}
	return problems
}

// syntaxLine matches the position of a YAML syntax error.
var syntaxLine = regexp.MustCompile(`^yaml: line (\d+): `)

// fixSyntaxErrorLine puts the right line into a YAML syntax error: the
// parser reports where the enclosing block starts (counted from 0), so
// that a mistake on line 4 is reported on line 1. The first line at which
// the document, cut after it, no longer parses is where the mistake is.
func fixSyntaxErrorLine(err error, data []byte) error {
	m := syntaxLine.FindStringSubmatch(err.Error())
	if m == nil {
		return err
	}
	lines := strings.SplitAfter(string(data), "\n")
	for i := range lines {
		var n yaml.Node
		if yaml.Unmarshal([]byte(strings.Join(lines[:i+1], "")), &n) != nil {
			return fmt.Errorf("yaml: line %d: %s", i+1, strings.TrimPrefix(err.Error(), m[0]))
		}
	}
	return err
}

// check validates m and loads its secret and CA bundle.
func (m *MasterConfig) check() []string {
	var problems []string
	switch {
	case m.Name == "":
		problems = append(problems, "name is missing")
	case strings.ContainsAny(m.Name, " \t\r\n"):
		// Zuul splits admin output on whitespace; such a name can never match.
		problems = append(problems, "name must not contain whitespace")
	}
	u, err := url.Parse(m.URL)
	switch {
	case m.URL == "":
		problems = append(problems, "url is missing")
	case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
		problems = append(problems, fmt.Sprintf("url %q is not an http(s) URL", m.URL))
	default:
		if !strings.HasSuffix(u.Path, "/") {
			u.Path += "/"
		}
		m.base = u
	}
	if m.PollInterval == 0 {
		m.PollInterval = Duration(defaultPollInterval)
	} else if m.PollInterval < Duration(100*time.Millisecond) {
		problems = append(problems, "poll_interval must be at least 100ms")
	}
	if m.RequestTimeout == 0 {
		m.RequestTimeout = Duration(defaultRequestTimeout)
	}
	if m.MaxOutage == 0 {
		m.MaxOutage = Duration(defaultMaxOutage)
	}
	switch m.Trigger {
	case "":
		m.Trigger = triggerREST
	case triggerREST, triggerScript:
	default:
		problems = append(problems, fmt.Sprintf("trigger %q is neither %q nor %q", m.Trigger, triggerREST, triggerScript))
	}
	switch {
	case m.TokenFile != "" && m.TokenEnv != "":
		problems = append(problems, "give token_file or token_env, not both")
	case m.TokenFile != "":
		b, err := os.ReadFile(m.TokenFile)
		if err != nil {
			problems = append(problems, fmt.Sprintf("token_file: %v", err))
		}
		m.token = strings.TrimSpace(string(b))
	case m.TokenEnv != "":
		v, ok := os.LookupEnv(m.TokenEnv)
		if !ok || strings.TrimSpace(v) == "" {
			problems = append(problems, fmt.Sprintf("token_env: environment variable %s is not set", m.TokenEnv))
		}
		m.token = strings.TrimSpace(v)
	}
	if m.token != "" && m.User == "" {
		problems = append(problems, "user is missing (the API token belongs to a user)")
	}
	if m.CAFile != "" {
		if pool, pem, err := LoadCAFile(m.CAFile); err != nil {
			problems = append(problems, fmt.Sprintf("ca_file: %v", err))
		} else {
			m.tls = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
			m.caPEM = pem
		}
	}
	return problems
}

// LoadCAFile reads a PEM file of CA certificates: the pool, and the file's
// bytes (a reload compares them).
func LoadCAFile(path string) (*x509.CertPool, []byte, error) {
	pem, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, nil, fmt.Errorf("%s: no PEM certificate in it", path)
	}
	return pool, pem, nil
}
