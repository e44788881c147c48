package store

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
)

// The temporary files Open (creating a new store) and Compact write next
// to the store. Both are bbolt files, locked while in use.
const (
	newTempPattern     = ".gearbridge-new-*.db"
	compactTempPattern = ".gearbridge-compact-*.db"
)

// RemoveStaleTemps removes the temporary files that an earlier Open or
// Compact of a store in dir left behind when it was killed. A file still
// locked by a running process (a compaction of another store in the same
// directory) is left alone. It returns the names it removed.
func RemoveStaleTemps(dir string) ([]string, error) {
	return RemoveStale(dir, newTempPattern, compactTempPattern)
}

// RemoveStale removes the files in dir matching the glob patterns that no
// process holds a lock on (flock, as bbolt and LockTemp take it): files
// whose writer died. It returns the names it removed.
func RemoveStale(dir string, patterns ...string) ([]string, error) {
	var removed []string
	var errs []error
	for _, p := range patterns {
		names, err := filepath.Glob(filepath.Join(dir, p))
		if err != nil {
			return removed, err
		}
		for _, name := range names {
			ok, err := removeIfUnlocked(name)
			if err != nil {
				errs = append(errs, err)
			} else if ok {
				removed = append(removed, name)
			}
		}
	}
	return removed, errors.Join(errs...)
}

func removeIfUnlocked(name string) (bool, error) {
	f, err := os.Open(name)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	} else if err != nil {
		return false, err
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return false, nil // in use
		}
		return false, err
	}
	// The lock is ours: whoever wrote the file is gone, unless it is
	// between creating the file and locking it; LockTemp checks for that.
	if !sameFile(f, name) {
		return false, nil
	}
	if err := os.Remove(name); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return false, err
	}
	return true, nil
}

// CreateLockedTemp creates a temporary file in dir (see os.CreateTemp for
// pattern) and locks it, so that RemoveStale run by another process leaves
// it alone. The lock goes with the file's closing.
func CreateLockedTemp(dir, pattern string) (*os.File, error) {
	for {
		f, err := os.CreateTemp(dir, pattern)
		if err != nil {
			return nil, err
		}
		if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
			f.Close()
			os.Remove(f.Name())
			return nil, err
		}
		// Another process's RemoveStale may have removed it between its
		// creation and our lock: then make another.
		if sameFile(f, f.Name()) {
			return f, nil
		}
		f.Close()
	}
}

// sameFile reports whether name still is the open file f.
func sameFile(f *os.File, name string) bool {
	fi, err := f.Stat()
	if err != nil {
		return false
	}
	ni, err := os.Stat(name)
	return err == nil && os.SameFile(fi, ni)
}
