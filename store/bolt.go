// Package store persists gearbridge jobs. DB keeps them in a bbolt file with
// one writer goroutine that group-commits whatever is pending, so concurrent
// submitters share each fsync; Memory keeps nothing (`--durability none`).
//
// The package imports nothing of ours but the root package.
package store

import (
	"cmp"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"runtime/debug"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/gearbridge/gearbridge"
)

const (
	openTimeout            = 3 * time.Second
	defaultInitialMmapSize = 1 << 30
	defaultMaxBatch        = 16384
)

// Options tune a DB. The zero value is a good default. There is deliberately
// no option to skip fsync: an acknowledged job is always on disk.
type Options struct {
	// Timeout is how long Open and Check wait for another process to release
	// the file before failing with ErrInUse. Default 3 s.
	Timeout time.Duration
	// InitialMmapSize is the initial size of bbolt's memory map (address
	// space only; the file grows as needed). A commit that must grow the map
	// waits for every open read transaction, such as a running backup, so it
	// should cover the expected file size. Default 1 GiB.
	InitialMmapSize int
	// MaxSize, if positive, is the largest the file may grow to; a commit
	// that would need more fails as if the disk were full. Default: no limit.
	MaxSize int
	// MaxBatch bounds the operations applied in one commit. Default 16384.
	MaxBatch int
	// NoFreelistSync skips writing bbolt's freelist on every commit (cheaper
	// commits, a full scan of the file on open). Safe either way.
	NoFreelistSync bool
	// Logger receives warnings from the writer. Default slog.Default().
	Logger *slog.Logger
}

func (o Options) withDefaults() Options {
	if o.Timeout <= 0 {
		o.Timeout = openTimeout
	}
	if o.InitialMmapSize <= 0 {
		o.InitialMmapSize = defaultInitialMmapSize
	}
	if o.MaxBatch <= 0 {
		o.MaxBatch = defaultMaxBatch
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return o
}

// DB is the durable Store on a bbolt file. See writer.go for the write path.
type DB struct {
	path     string
	bolt     *bolt.DB
	log      *slog.Logger
	maxBatch int

	mu      sync.Mutex
	cond    sync.Cond // on mu: pending grew or closing was set
	pending []op
	spare   []op
	closing bool

	exited    chan struct{} // closed when the writer and its notifier are done
	closeOnce sync.Once
	closeErr  error

	lastID     uint64        // highest job ID on disk; writer goroutine only
	damage     *metaDamage   // a damaged meta page found at Open, or nil
	retryDelay time.Duration // writer goroutine only

	stats  counters
	health commitHealth // the last commit's outcome, for readiness (health.go)
}

var (
	_ gearbridge.Store    = (*DB)(nil)
	_ gearbridge.Backuper = (*DB)(nil)
)

// Open opens the store at path, creating it if the file does not exist. A
// file that exists but is not a complete gearbridge store of this format
// version is refused, never replaced. If another process has the file open,
// Open fails with ErrInUse after opts.Timeout.
func Open(path string, opts Options) (*DB, error) {
	opts = opts.withDefaults()
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		if err := createFile(path); err != nil {
			return nil, fmt.Errorf("create store %s: %w", path, err)
		}
	} else if err != nil {
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	bdb, damage, err := openBolt(path, &bolt.Options{
		Timeout:         opts.Timeout,
		FreelistType:    bolt.FreelistMapType,
		InitialMmapSize: opts.InitialMmapSize,
		MaxSize:         opts.MaxSize,
		NoFreelistSync:  opts.NoFreelistSync,
	})
	if err != nil {
		return nil, err
	}
	log := opts.Logger.With("store", path)
	lastID, err := prepare(bdb, damage, log)
	if err != nil {
		bdb.Close()
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	s := &DB{
		path:     path,
		bolt:     bdb,
		log:      log,
		maxBatch: opts.MaxBatch,
		exited:   make(chan struct{}),
		lastID:   lastID,
		damage:   damage,
	}
	s.cond.L = &s.mu
	go s.run()
	return s, nil
}

// handleSkip is how far the handle counter jumps after a meta-page
// fallback: more than one commit can add (Options.MaxBatch), so no handle
// that the lost commit acknowledged is ever handed out again.
const handleSkip = 1 << 20

// prepare readies an opened file for serving: it checks the format,
// migrates a format-1 file, and after a meta-page fallback moves the
// handle counter past anything the lost commit may have issued. It returns
// the handle counter.
func prepare(db *bolt.DB, damage *metaDamage, log *slog.Logger) (lastID uint64, err error) {
	var version uint32
	err = safely(func() error {
		return db.View(func(tx *bolt.Tx) error {
			var err error
			lastID, version, err = checkFormat(tx)
			return err
		})
	})
	if err != nil {
		return 0, err
	}
	if version == 1 {
		var jobs, bad int
		err := safely(func() error {
			return db.Update(func(tx *bolt.Tx) error {
				var err error
				jobs, bad, err = migrateV1(tx)
				return err
			})
		})
		if err != nil {
			return 0, fmt.Errorf("migrate from format 1 to %d: %w", FormatVersion, err)
		}
		log.Info("store migrated to the current format: every record now carries a checksum",
			"from_version", 1, "to_version", FormatVersion, "jobs", jobs, "quarantined", bad)
	}
	if damage != nil {
		// The first commit rewrites the damaged page, and with it the
		// evidence: the jump is made durable in that same commit.
		lastID += handleSkip
		err := safely(func() error {
			return db.Update(func(tx *bolt.Tx) error {
				return tx.Bucket(bucketMeta).Put(keyLastID, lastIDRecord(lastID))
			})
		})
		if err != nil {
			return 0, fmt.Errorf("move the handle counter past a rolled-back commit: %w", err)
		}
		log.Error(damage.String()+"; handles continue from a higher number so that none is issued twice",
			"next_handle_number", lastID+1)
	}
	return lastID, nil
}

// openBolt opens path with bbolt after checking its meta pages, and turns
// bbolt's errors into ours.
func openBolt(path string, opts *bolt.Options) (db *bolt.DB, damage *metaDamage, err error) {
	if _, err := precheck(path); err != nil {
		return nil, nil, fmt.Errorf("open store %s: %w", path, err)
	}
	for attempt := 1; ; attempt++ {
		var f *os.File
		o := *opts
		o.OpenFile = func(name string, flag int, perm os.FileMode) (*os.File, error) {
			var err error
			f, err = os.OpenFile(name, flag, perm)
			return f, err
		}
		// A damaged file can make bbolt fault on its memory map.
		err = safely(func() error {
			db, err = bolt.Open(path, 0o600, &o)
			return err
		})
		if err != nil {
			break
		}
		same, serr := stillNamed(path, f)
		if same {
			break
		}
		// While this open waited for the lock, the file was replaced (by
		// gearbridge compact, say): the lock is on a file that is gone.
		db.Close()
		if serr != nil || attempt == maxOpenAttempts {
			err = fmt.Errorf("the file changed while it was being opened: %v", cmp.Or(serr, errors.New("replaced again and again")))
			break
		}
	}
	switch {
	case err == nil:
		// Read again now that the lock is ours: a server may have been
		// writing the meta pages when precheck read them.
		if damage, err = precheck(path); err != nil {
			db.Close()
			return nil, nil, fmt.Errorf("open store %s: %w", path, err)
		}
		return db, damage, nil
	case errors.Is(err, berrors.ErrTimeout):
		return nil, nil, fmt.Errorf("open store %s: %w (its lock was not released within %s)", path, ErrInUse, opts.Timeout)
	case errors.Is(err, berrors.ErrInvalid), errors.Is(err, berrors.ErrChecksum),
		errors.Is(err, berrors.ErrVersionMismatch):
		return nil, nil, fmt.Errorf("open store %s: %w: %v", path, ErrCorrupt, err)
	}
	return nil, nil, fmt.Errorf("open store %s: %w", path, err)
}

// maxOpenAttempts bounds the opens of a file that keeps being replaced.
const maxOpenAttempts = 3

// stillNamed reports whether path still names the open file f.
func stillNamed(path string, f *os.File) (bool, error) {
	open, err := f.Stat()
	if err != nil {
		return false, err
	}
	named, err := os.Stat(path)
	if err != nil {
		return false, err
	}
	return os.SameFile(open, named), nil
}

// safely runs fn, turning a panic or memory fault inside bbolt (a damaged
// file) into an ErrCorrupt error. A panic from a caller's callback inside fn
// is reported the same way.
func safely(fn func() error) (err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: %v", ErrCorrupt, r)
		}
	}()
	return fn()
}

// Path returns the file the store was opened from.
func (s *DB) Path() string { return s.path }

// Restore calls fn for every stored job in ID (submit) order and returns the
// highest job ID ever issued. fn runs inside a read transaction: it may call
// Add, SetAttempts and Remove, but must not wait for an Add's done. A record
// that fails its checksum or does not decode is not passed to fn: it is
// moved to the quarantine bucket and logged (quarantine.go).
func (s *DB) Restore(fn func(*gearbridge.Job) error) (lastID uint64, err error) {
	var badKeys [][]byte
	var bad []Damaged
	err = safely(func() error {
		return s.bolt.View(func(tx *bolt.Tx) error {
			var err error
			if lastID, _, err = checkFormat(tx); err != nil {
				return err
			}
			return walkJobs(tx, recordV2, func(j *gearbridge.Job) error {
				lastID = max(lastID, j.ID)
				return fn(j)
			}, func(k, v []byte, err error) error {
				if len(k) == 8 {
					lastID = max(lastID, keyID(k)) // its ID is never issued again
				}
				badKeys = append(badKeys, append([]byte{}, k...))
				bad = append(bad, damagedRecord(k, v, err))
				return nil
			})
		})
	})
	if err != nil {
		return 0, fmt.Errorf("restore %s: %w", s.path, err)
	}
	if len(bad) > 0 {
		if err := s.quarantine(badKeys, bad); err != nil {
			return 0, err
		}
	}
	return lastID, nil
}

// MetaDamage describes a damaged bbolt meta page found at Open (a possible
// rollback of the last commit), or "" when both were sound.
func (s *DB) MetaDamage() string {
	if s.damage == nil {
		return ""
	}
	return s.damage.String()
}

// walkJobs decodes every job record in key (ID) order as a record of
// version want: fn gets each one that decodes, damaged each one that does
// not (a bad key, a checksum mismatch, a broken layout), with the reason.
// Either stops the walk by returning an error.
func walkJobs(tx *bolt.Tx, want byte, fn func(*gearbridge.Job) error, damaged func(k, v []byte, err error) error) error {
	c := tx.Bucket(bucketJobs).Cursor()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		var err error
		if len(k) != 8 {
			err = damaged(k, v, fmt.Errorf("job key %x is not 8 bytes", k))
		} else if j, derr := decodeRecord(keyID(k), v, want); derr != nil {
			err = damaged(k, v, derr)
		} else {
			err = fn(j)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// BuildRef returns what SetBuildRef recorded for handle.
func (s *DB) BuildRef(handle string) ([]byte, bool, error) {
	var ref []byte
	err := safely(func() error {
		return s.bolt.View(func(tx *bolt.Tx) error {
			v := tx.Bucket(bucketBuildRefs).Get([]byte(handle))
			if v == nil {
				return nil
			}
			body, err := splitChecksum(v)
			if err != nil {
				return fmt.Errorf("%w: build ref: %w", ErrCorrupt, err)
			}
			ref = append([]byte{}, body...)
			return nil
		})
	})
	if err != nil {
		return nil, false, fmt.Errorf("read build ref of %s: %w", handle, err)
	}
	return ref, ref != nil, nil
}

// Backup writes a consistent snapshot of the file to w while writes go on,
// and returns its size. The snapshot holds a read transaction: if a commit
// must grow the memory map meanwhile (past Options.InitialMmapSize), that
// commit waits for the backup to finish.
func (s *DB) Backup(w io.Writer) (n int64, err error) {
	err = safely(func() error {
		return s.bolt.View(func(tx *bolt.Tx) error {
			n, err = tx.WriteTo(w)
			return err
		})
	})
	if err != nil {
		return n, fmt.Errorf("backup %s: %w", s.path, err)
	}
	return n, nil
}

// Close commits what is pending, stops the writer and closes the file. Adds
// after Close fail with gearbridge.ErrStoreClosed.
func (s *DB) Close() error {
	s.closeOnce.Do(func() {
		s.mu.Lock()
		s.closing = true
		s.cond.Signal()
		s.mu.Unlock()
		<-s.exited
		if err := s.bolt.Close(); err != nil {
			s.closeErr = fmt.Errorf("close store %s: %w", s.path, err)
		}
	})
	return s.closeErr
}
