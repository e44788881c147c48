package store

import (
	"fmt"
	"os"
	"path/filepath"

	bolt "go.etcd.io/bbolt"
)

// compactTxSize is how many bytes of records one transaction of Compact
// copies, so that a large file is not copied in one transaction held in
// memory.
const compactTxSize = 64 << 20

// Compact rewrites the store file at path without its free pages. bbolt
// reuses the space that drained jobs leave, but the file keeps the size of
// its largest queue; Compact gives that space back. It needs the file to
// itself (a running server holds it: ErrInUse), verifies it, writes the copy
// beside it, checks that the copy holds the same jobs, build references and
// handle counter, and only then renames it into place. It returns what the
// file held before and after.
func Compact(path string) (before, after Info, err error) {
	before, err = Check(path)
	if err != nil {
		return before, after, err
	}
	// Hold the file (read-only, shared) until the copy is in place, so that
	// no server starts on it meanwhile.
	src, err := openBolt(path, &bolt.Options{ReadOnly: true, Timeout: openTimeout})
	if err != nil {
		return before, after, err
	}
	defer src.Close()

	tmp, err := os.CreateTemp(filepath.Dir(path), ".gearbridge-compact-*.db")
	if err != nil {
		return before, after, fmt.Errorf("compact store %s: %w", path, err)
	}
	tmpName := tmp.Name()
	tmp.Close()
	defer os.Remove(tmpName) // once renamed, nothing is left to remove
	dst, err := bolt.Open(tmpName, 0o600, &bolt.Options{Timeout: openTimeout})
	if err != nil {
		return before, after, fmt.Errorf("compact store %s: %w", path, err)
	}
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
	if after.Jobs != before.Jobs || after.Background != before.Background ||
		after.BuildRefs != before.BuildRefs || after.LastID != before.LastID {
		return before, after, fmt.Errorf("compact store %s: the copy differs (%d jobs, %d build refs, counter %d; the file has %d, %d, %d)",
			path, after.Jobs, after.BuildRefs, after.LastID, before.Jobs, before.BuildRefs, before.LastID)
	}
	if err := os.Rename(tmpName, path); err != nil {
		return before, after, fmt.Errorf("compact store %s: %w", path, err)
	}
	after.Path = path
	return before, after, SyncDir(filepath.Dir(path))
}
