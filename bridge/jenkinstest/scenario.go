package jenkinstest

import (
	"bytes"
	"fmt"
	"os"
	"time"

	"go.yaml.in/yaml/v3"
)

// Scenario is a YAML description of a Jenkins: users, nodes and jobs with
// their build durations and results. The emulator command serves one.
//
//	version: "2.578"        # optional; "2.60.3" for the pre-2.94 profile
//	quiet_period: 5s        # optional global quiet period
//	built_in: {executors: 0, mode: NORMAL, labels: []}
//	users:
//	  - {name: gearbridge, password: secret, tokens: [11aa...]}
//	nodes:
//	  - {name: linux-1, labels: [linux], executors: 2, mode: NORMAL, state: online}
//	jobs:
//	  - name: folder/demo
//	    label: linux && !windows
//	    concurrent: true
//	    parameters: [{name: ZUUL_UUID}, {name: NODE, type: node}]
//	    duration: 3s
//	    result: SUCCESS
//	    builds: [{duration: 1s, result: FAILURE}]   # first builds, in order
type Scenario struct {
	Version     string         `yaml:"version"`
	QuietPeriod *time.Duration `yaml:"quiet_period"`
	BuiltIn     *ScenarioNode  `yaml:"built_in"`
	Users       []ScenarioUser `yaml:"users"`
	Nodes       []ScenarioNode `yaml:"nodes"`
	Jobs        []ScenarioJob  `yaml:"jobs"`
	Folders     []string       `yaml:"folders"`
	// Holds are job-name patterns whose builds run until stopped.
	Holds []string `yaml:"hold"`
}

// ScenarioUser is a user with a password and API tokens.
type ScenarioUser struct {
	Name     string   `yaml:"name"`
	Password string   `yaml:"password"`
	Tokens   []string `yaml:"tokens"`
}

// ScenarioNode is an agent (or, as built_in, the built-in node).
type ScenarioNode struct {
	Name        string   `yaml:"name"`
	Labels      []string `yaml:"labels"`
	Executors   int      `yaml:"executors"`
	Mode        Mode     `yaml:"mode"`
	Description string   `yaml:"description"`
	// State is online (default), disconnected or offline (temporarily).
	State          string `yaml:"state"`
	OfflineMessage string `yaml:"offline_message"`
}

// ScenarioJob is a job; see JobSpec.
type ScenarioJob struct {
	Name        string            `yaml:"name"`
	Label       string            `yaml:"label"`
	Disabled    bool              `yaml:"disabled"`
	Concurrent  bool              `yaml:"concurrent"`
	QuietPeriod *time.Duration    `yaml:"quiet_period"`
	Parameters  []ScenarioParam   `yaml:"parameters"`
	Duration    time.Duration     `yaml:"duration"`
	Result      string            `yaml:"result"`
	Builds      []ScenarioOutcome `yaml:"builds"`
	Description string            `yaml:"description"`
	Pipeline    bool              `yaml:"pipeline"` // a WorkflowJob with flyweight runs
}

// ScenarioParam is a parameter definition.
type ScenarioParam struct {
	Name        string    `yaml:"name"`
	Type        ParamType `yaml:"type"`
	Default     string    `yaml:"default"`
	Choices     []string  `yaml:"choices"`
	Description string    `yaml:"description"`
}

// ScenarioOutcome is the duration and result of one build.
type ScenarioOutcome struct {
	Duration time.Duration `yaml:"duration"`
	Result   string        `yaml:"result"`
}

// LoadScenario reads a scenario file.
func LoadScenario(path string) (*Scenario, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read scenario: %w", err)
	}
	s, err := ParseScenario(data)
	if err != nil {
		return nil, fmt.Errorf("scenario %s: %w", path, err)
	}
	return s, nil
}

// ParseScenario decodes a scenario; unknown keys are errors, to catch typos.
func ParseScenario(data []byte) (*Scenario, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var s Scenario
	if err := dec.Decode(&s); err != nil {
		return nil, err
	}
	return &s, nil
}

// Options returns the emulator options the scenario implies.
func (s *Scenario) Options() []Option {
	var opts []Option
	if s.Version != "" {
		opts = append(opts, WithVersion(s.Version))
	}
	if s.QuietPeriod != nil {
		opts = append(opts, WithQuietPeriod(*s.QuietPeriod))
	}
	return opts
}

// Apply creates the scenario's users, nodes and jobs in e.
func (s *Scenario) Apply(e *Emulator) error {
	for _, u := range s.Users {
		if u.Name == "" {
			return fmt.Errorf("scenario: user without a name")
		}
		e.AddUser(u.Name, u.Password)
		for _, tok := range u.Tokens {
			if err := e.AddAPIToken(u.Name, tok); err != nil {
				return err
			}
		}
	}
	if b := s.BuiltIn; b != nil {
		e.ConfigureBuiltIn(b.Executors, b.Mode, b.Labels...)
	}
	for _, n := range s.Nodes {
		spec := NodeSpec{Name: n.Name, Labels: n.Labels, Executors: n.Executors, Mode: n.Mode,
			Description: n.Description, Disconnected: n.State == "disconnected"}
		if err := e.AddNode(spec); err != nil {
			return fmt.Errorf("scenario: %w", err)
		}
		switch n.State {
		case "", "online", "disconnected":
		case "offline":
			if err := e.SetNodeOffline(n.Name, true, n.OfflineMessage); err != nil {
				return err
			}
		default:
			return fmt.Errorf("scenario: node %s: unknown state %q (online, disconnected, offline)", n.Name, n.State)
		}
	}
	for _, f := range s.Folders {
		if err := e.AddFolder(f); err != nil {
			return fmt.Errorf("scenario: %w", err)
		}
	}
	for _, j := range s.Jobs {
		spec := JobSpec{Name: j.Name, Label: j.Label, Disabled: j.Disabled, Concurrent: j.Concurrent,
			QuietPeriod: j.QuietPeriod, Duration: j.Duration, Result: j.Result, Description: j.Description,
			Pipeline: j.Pipeline}
		for _, p := range j.Parameters {
			spec.Params = append(spec.Params, ParamSpec(p))
		}
		for _, o := range j.Builds {
			spec.Outcomes = append(spec.Outcomes, Outcome(o))
		}
		if err := e.AddJob(spec); err != nil {
			return fmt.Errorf("scenario: %w", err)
		}
	}
	for _, h := range s.Holds {
		if err := e.HoldBuilds(h); err != nil {
			return err
		}
	}
	return nil
}
