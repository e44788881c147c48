package store

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"strconv"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/gearbridge/gearbridge"
)

// bucketImported records, under a marker chosen by the importing tool, that
// a job from another queue was imported (the value is the job ID it was
// given, 0 if it was not added, then a checksum). It is created by the first
// import: older releases ignore a bucket they do not know.
var bucketImported = []byte("imported")

// ImportJob is a job from another queue. Marker identifies it in that
// queue: a job whose marker is recorded is never imported again, even after
// it has run and left the store.
type ImportJob struct {
	Job    gearbridge.Job // ID and Handle are assigned by Import
	Marker []byte
	// MarkOnly records the marker without adding the job (the caller
	// decided it is already queued here).
	MarkOnly bool
}

// Importer adds jobs to a store file that no server holds. It holds the
// file's exclusive lock until Close, so a server cannot start on it
// meanwhile.
type Importer struct {
	path   string
	db     *bolt.DB
	prefix string
	lastID uint64
}

// OpenImporter opens the store at path for an offline import, creating it
// if it does not exist. Imported jobs get the next handles of the file's
// counter, as handlePrefix + ":" + ID. A file that a running server holds
// is refused with ErrInUse after timeout (0: the default 3 s).
func OpenImporter(path, handlePrefix string, timeout time.Duration, log *slog.Logger) (*Importer, error) {
	if timeout <= 0 {
		timeout = openTimeout
	}
	if log == nil {
		log = slog.Default()
	}
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		if err := createFile(path); err != nil {
			return nil, fmt.Errorf("create store %s: %w", path, err)
		}
	} else if err != nil {
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	bdb, damage, err := openBolt(path, &bolt.Options{Timeout: timeout, FreelistType: bolt.FreelistMapType})
	if err != nil {
		return nil, err
	}
	lastID, err := prepare(bdb, damage, log.With("store", path))
	if err != nil {
		bdb.Close()
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	im := &Importer{path: path, db: bdb, prefix: handlePrefix, lastID: lastID}
	// Damaged records keep their IDs (Restore never reissues them either).
	err = safely(func() error {
		return bdb.View(func(tx *bolt.Tx) error {
			if k, _ := tx.Bucket(bucketJobs).Cursor().Last(); len(k) == 8 {
				im.lastID = max(im.lastID, keyID(k))
			}
			return nil
		})
	})
	if err != nil {
		bdb.Close()
		return nil, fmt.Errorf("open store %s for import: %w", path, err)
	}
	return im, nil
}

// Stored calls fn for every job the file holds that decodes (damaged ones
// are left to the server's quarantine).
func (im *Importer) Stored(fn func(*gearbridge.Job)) error {
	err := safely(func() error {
		return im.db.View(func(tx *bolt.Tx) error {
			return walkJobs(tx, recordV2, func(j *gearbridge.Job) error {
				fn(j)
				return nil
			}, func([]byte, []byte, error) error { return nil })
		})
	})
	if err != nil {
		return fmt.Errorf("read store %s: %w", im.path, err)
	}
	return nil
}

// ImportResult says what Import did with each job of a batch.
type ImportResult int

const (
	Added           ImportResult = iota // stored under a new handle
	AlreadyImported                     // its marker was recorded by an earlier import
	Marked                              // MarkOnly: the marker is now recorded
)

// Import adds batch in one transaction: every job whose marker is not yet
// recorded is stored, in batch order, with the next IDs of the handle
// counter, and its marker is recorded with it. A crash leaves the whole
// batch or none of it. Jobs are stored as given (background flag, priority,
// epoch, attempts). The assigned IDs and handles are written into batch.
func (im *Importer) Import(batch []ImportJob) ([]ImportResult, error) {
	res := make([]ImportResult, len(batch))
	lastID := im.lastID
	err := safely(func() error {
		return im.db.Update(func(tx *bolt.Tx) error {
			lastID = im.lastID
			jobs := tx.Bucket(bucketJobs)
			marks, err := tx.CreateBucketIfNotExists(bucketImported)
			if err != nil {
				return err
			}
			for i := range batch {
				ij := &batch[i]
				if len(ij.Marker) == 0 {
					return fmt.Errorf("import job %d of the batch: empty marker", i)
				}
				if ij.Job.Priority >= gearbridge.NumPriorities {
					return fmt.Errorf("import job %q: bad priority %d", ij.Job.Function, ij.Job.Priority)
				}
				if marks.Get(ij.Marker) != nil {
					res[i] = AlreadyImported
					continue
				}
				var id uint64
				if ij.MarkOnly {
					res[i] = Marked
				} else {
					lastID++
					id = lastID
					ij.Job.ID = id
					ij.Job.Handle = im.prefix + ":" + strconv.FormatUint(id, 10)
					if err := jobs.Put(jobKey(id), encodeJob(&ij.Job)); err != nil {
						return fmt.Errorf("store job %d: %w", id, err)
					}
					res[i] = Added
				}
				if err := marks.Put(ij.Marker, appendChecksum(jobKey(id))); err != nil {
					return fmt.Errorf("record import marker: %w", err)
				}
			}
			if lastID > im.lastID {
				return tx.Bucket(bucketMeta).Put(keyLastID, lastIDRecord(lastID))
			}
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("import into %s: %w", im.path, err)
	}
	im.lastID = lastID
	return res, nil
}

// LastID is the handle counter: the highest job ID issued so far.
func (im *Importer) LastID() uint64 { return im.lastID }

// Close releases the file.
func (im *Importer) Close() error {
	if err := im.db.Close(); err != nil {
		return fmt.Errorf("close store %s: %w", im.path, err)
	}
	return nil
}
