package main

import (
	"fmt"
	"os"
	"os/user"
	"strconv"
	"syscall"
)

// dropPrivileges switches the process to a user (a name or a numeric ID)
// and that user's groups, as gearmand's --user does. It runs once the
// privileged work is done: the log file, the database, the listeners and
// the pid file are open. Go applies setuid and setgid to every thread.
func dropPrivileges(name string) error {
	u, err := user.Lookup(name)
	if err != nil {
		if _, numErr := strconv.Atoi(name); numErr != nil {
			return fmt.Errorf("--user %s: %w", name, err)
		}
		if u, err = user.LookupId(name); err != nil {
			return fmt.Errorf("--user %s: %w", name, err)
		}
	}
	uid, err1 := strconv.Atoi(u.Uid)
	gid, err2 := strconv.Atoi(u.Gid)
	if err1 != nil || err2 != nil {
		return fmt.Errorf("--user %s: uid %q gid %q are not numbers", name, u.Uid, u.Gid)
	}
	if os.Geteuid() == uid && os.Getuid() == uid && os.Getegid() == gid {
		return nil // already that user
	}
	var groups []int
	if ids, err := u.GroupIds(); err == nil {
		for _, g := range ids {
			if n, err := strconv.Atoi(g); err == nil {
				groups = append(groups, n)
			}
		}
	}
	if len(groups) == 0 {
		groups = []int{gid}
	}
	// Groups first: once the user ID changes, they can no longer be set.
	if err := syscall.Setgroups(groups); err != nil {
		return fmt.Errorf("--user %s: set groups (gearbridge must start as root to switch users): %w", name, err)
	}
	if err := syscall.Setgid(gid); err != nil {
		return fmt.Errorf("--user %s: setgid %d: %w", name, gid, err)
	}
	if err := syscall.Setuid(uid); err != nil {
		return fmt.Errorf("--user %s: setuid %d: %w", name, uid, err)
	}
	return nil
}

// setFileLimit sets the open-files limit to n (--file-descriptors),
// raising the hard limit too where that is allowed (as root).
func setFileLimit(n int) error {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return fmt.Errorf("read the open-files limit: %w", err)
	}
	lim.Cur = uint64(n)
	if lim.Cur > lim.Max {
		lim.Max = lim.Cur
	}
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return fmt.Errorf("set the open-files limit to %d: %w", n, err)
	}
	return nil
}
