package store

import (
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"

	bolt "go.etcd.io/bbolt"
)

// compactTxSize is how many bytes of records one transaction of Compact
// copies, so that a large file is not copied in one transaction held in
// memory.
const compactTxSize = 64 << 20

// Compact rewrites the store file at path without its free pages. bbolt
// reuses the space that drained jobs leave, but the file keeps the size of
// its largest queue; Compact gives that space back. It needs the file to
// itself: a running server holds it, and Compact fails with ErrInUse after
// timeout (0: the default 3 s). It checks the file, writes the copy beside
// it, checks that the copy holds the same jobs, build references and handle
// counter, and only then renames it into place. It returns what the file
// held before and after.
func Compact(path string, timeout time.Duration) (before, after Info, err error) {
	if timeout == 0 {
		timeout = openTimeout
	}
	// The shared lock of the read-only open is held until the copy is in
	// place: a server that starts meanwhile waits for it, and then finds
	// the copy in place and opens that (openBolt).
	src, before, err := openChecked(path, timeout)
	if err != nil {
		return before, after, err
	}
	defer src.Close()

	dst, tmpName, err := createTemp(filepath.Dir(path), compactTempPattern)
	if err != nil {
		return before, after, fmt.Errorf("compact store %s: %w", path, err)
	}
	defer os.Remove(tmpName) // once renamed, nothing is left to remove
	err = safely(func() error { return bolt.Compact(dst, src, compactTxSize) })
	if cerr := dst.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return before, after, fmt.Errorf("compact store %s: %w", path, err)
	}

	after, err = Check(tmpName)
	if err != nil {
		return before, after, fmt.Errorf("compact store %s: the copy: %w", path, err)
	}
	after.Path = path
	if !sameContents(before, after) {
		return before, after, fmt.Errorf("compact store %s: the copy differs: %+v, the file: %+v", path, after, before)
	}
	if err := sameOwnerAndMode(tmpName, path); err != nil {
		return before, after, fmt.Errorf("compact store %s: %w", path, err)
	}
	if err := os.Rename(tmpName, path); err != nil {
		return before, after, fmt.Errorf("compact store %s: %w", path, err)
	}
	return before, after, SyncDir(filepath.Dir(path))
}

// sameOwnerAndMode gives the copy the file's permissions and, where it may
// (root), its owner: after `sudo gearbridge compact` the server, running
// as its own user, must still be able to open the file.
func sameOwnerAndMode(copyName, path string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	if err := os.Chmod(copyName, fi.Mode().Perm()); err != nil {
		return err
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && os.Geteuid() == 0 {
		return os.Chown(copyName, int(st.Uid), int(st.Gid))
	}
	return nil
}

// sameContents reports whether two checked files hold the same jobs,
// build references, handle counter and quarantine (their sizes may differ).
func sameContents(a, b Info) bool {
	return a.FormatVersion == b.FormatVersion && a.Jobs == b.Jobs && a.Background == b.Background &&
		a.BuildRefs == b.BuildRefs && a.LastID == b.LastID &&
		len(a.Damaged) == len(b.Damaged) && len(a.Quarantined) == len(b.Quarantined) && a.Imported == b.Imported
}
