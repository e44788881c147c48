package jenkinstest

import (
	"net/http"
)

// Permission is a Jenkins permission, as its group/name title.
type Permission string

// The permissions the emulator checks (on POSTs only: reading needs
// Overall/Read, which every user has).
const (
	// PermJobBuild: build and buildWithParameters.
	PermJobBuild Permission = "Job/Build"
	// PermJobCancel: stopping a build, cancelling a queue item.
	PermJobCancel Permission = "Job/Cancel"
	// PermRunUpdate: submitDescription.
	PermRunUpdate Permission = "Run/Update"
	// PermComputerDisconnect: toggleOffline and changeOfflineCause.
	PermComputerDisconnect Permission = "Computer/Disconnect"
	// PermRunScripts: the script console, POST /scriptText.
	PermRunScripts Permission = "Overall/RunScripts"
)

// permSet is what one user may do. A user with no permSet may do
// everything, as the emulator always allowed.
type permSet struct {
	restricted bool // only granted permissions (after GrantPermissions)
	granted    map[Permission]bool
	denied     map[Permission]bool
}

func (e *Emulator) permsFor(user string) *permSet {
	if e.perms == nil {
		e.perms = map[string]*permSet{}
	}
	ps := e.perms[user]
	if ps == nil {
		ps = &permSet{granted: map[Permission]bool{}, denied: map[Permission]bool{}}
		e.perms[user] = ps
	}
	return ps
}

// GrantPermissions restricts user ("anonymous" for unauthenticated
// requests) to the given permissions, plus any granted before: from then
// on a POST that needs another one is answered 403 as Jenkins does.
func (e *Emulator) GrantPermissions(user string, perms ...Permission) {
	e.mu.Lock()
	defer e.mu.Unlock()
	ps := e.permsFor(user)
	ps.restricted = true
	for _, p := range perms {
		ps.granted[p] = true
		delete(ps.denied, p)
	}
}

// DenyPermission takes one permission from user, who keeps all others.
func (e *Emulator) DenyPermission(user string, perm Permission) {
	e.mu.Lock()
	defer e.mu.Unlock()
	ps := e.permsFor(user)
	ps.denied[perm] = true
	delete(ps.granted, perm)
}

// AllowAll forgets every permission given to or taken from user.
func (e *Emulator) AllowAll(user string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	delete(e.perms, user)
}

func (e *Emulator) allowed(user string, p Permission) bool {
	ps := e.perms[user]
	if ps == nil {
		return true
	}
	return !ps.denied[p] && (!ps.restricted || ps.granted[p])
}

// requiredPermission names the permission a POST to segs needs, or "".
func requiredPermission(segs []string) Permission {
	if len(segs) == 0 {
		return ""
	}
	last := segs[len(segs)-1]
	switch segs[0] {
	case "scriptText":
		return PermRunScripts
	case "queue":
		if last == "cancelItem" {
			return PermJobCancel
		}
	case "computer":
		if len(segs) == 3 && (last == "toggleOffline" || last == "changeOfflineCause") {
			return PermComputerDisconnect
		}
	case "job":
		i := 0
		for i+1 < len(segs) && segs[i] == "job" {
			i += 2
		}
		rest := segs[i:]
		switch {
		case len(rest) == 1 && (rest[0] == "build" || rest[0] == "buildWithParameters"):
			return PermJobBuild
		case len(rest) == 2 && rest[1] == "stop":
			return PermJobCancel
		case len(rest) == 2 && rest[1] == "submitDescription":
			return PermRunUpdate
		}
	}
	return ""
}

// checkPermission answers 403 with Jenkins' AccessDeniedException text
// when the user may not do what the POST asks.
func (e *Emulator) checkPermission(r *http.Request, pr principal, segs []string) *response {
	if r.Method != http.MethodPost {
		return nil
	}
	p := requiredPermission(segs)
	if p == "" || e.allowed(pr.name, p) {
		return nil
	}
	return text(http.StatusForbidden, pr.name+" is missing the "+string(p)+" permission")
}
