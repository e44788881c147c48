package jenkinstest

import (
	"strconv"
	"strings"
)

// Versions of the two profiles the emulator is usually run with.
const (
	// VersionLegacy predates labelExpression/assignedLabels in the JSON API
	// (2.94), the API-token crumb exemption (2.96), session-bound crumbs,
	// 204 from cancelItem and the built-in node rename.
	VersionLegacy = "2.60.3"
	// VersionCurrent has all of them: "Built-In Node", (built-in), 303 on a
	// duplicate trigger, 400 for buildWithParameters on an unparameterized job.
	VersionCurrent = "2.578"
)

// profile holds the behaviours that changed between Jenkins versions.
type profile struct {
	version          string
	builtInName      string // displayName of the built-in node's computer
	builtInToken     string // URL token: /computer/(built-in)/
	builtInSelfLabel string
	labelExprJSON    bool // labelExpression and assignedLabels exported (2.94)
	tokenCrumbExempt bool // API-token requests need no crumb (2.96)
	sessionCrumbs    bool // crumb bound to the HTTP session (2.176.2)
	disabledJSON     bool // "disabled" exported on jobs (some 2.2xx; present in 2.300)
	cancel204        bool // cancelItem answers 204/404 (2.211)
	duplicate303     bool // 303 See Other for a merged trigger (2.308)
	unparam400       bool // 400 for buildWithParameters on an unparameterized job (2.524)

	// restartResult is what a restart makes of interrupted non-Pipeline builds.
	restartResult string
}

func newProfile(version string) profile {
	at := func(min string) bool { return compareVersions(version, min) >= 0 }
	p := profile{
		version:          version,
		builtInName:      "master",
		builtInToken:     "(master)",
		builtInSelfLabel: "master",
		labelExprJSON:    at("2.94"),
		tokenCrumbExempt: at("2.96"),
		sessionCrumbs:    at("2.176.2"),
		disabledJSON:     at("2.300"),
		cancel204:        at("2.211"),
		duplicate303:     at("2.308"),
		unparam400:       at("2.524"),
	}
	p.restartResult = ResultFailure
	if at("2.447") { // jenkinsci/jenkins#8986: Run.reload marks them ABORTED
		p.restartResult = ResultAborted
	}
	if at("2.307") {
		p.builtInName, p.builtInToken, p.builtInSelfLabel = "Built-In Node", "(built-in)", "built-in"
	}
	return p
}

// compareVersions compares dotted numeric versions ("2.176.2" > "2.176").
func compareVersions(a, b string) int {
	as, bs := strings.Split(a, "."), strings.Split(b, ".")
	for i := 0; i < len(as) || i < len(bs); i++ {
		var x, y int
		if i < len(as) {
			x, _ = strconv.Atoi(as[i])
		}
		if i < len(bs) {
			y, _ = strconv.Atoi(bs[i])
		}
		if x != y {
			if x < y {
				return -1
			}
			return 1
		}
	}
	return 0
}
