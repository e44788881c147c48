package store

import (
	"errors"
	"fmt"
	"os"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/gearbridge/gearbridge"
)

// Info describes a store file that passed Check.
type Info struct {
	Path          string
	Size          int64  // bytes
	FormatVersion uint32 // of the file layout
	Jobs          int    // stored jobs
	Background    int    // of which background jobs
	BuildRefs     int    // build references
	LastID        uint64 // handle counter: the highest job ID ever issued
}

// maxCheckErrors bounds how many problems Check reports.
const maxCheckErrors = 20

// Check verifies a store file offline: it opens it read-only (failing with
// ErrInUse after a few seconds if a server holds it), runs bbolt's page-level
// consistency check, verifies the version record and buckets, decodes every
// job record, and checks that the handle counter covers every job and that
// every build reference belongs to a stored job.
func Check(path string) (info Info, err error) {
	db, info, err := openChecked(path, openTimeout)
	if err != nil {
		return info, err
	}
	return info, db.Close()
}

// openChecked opens the store file at path read-only (a shared lock: no
// server can open it meanwhile), checks it as Check does, and returns it
// open to the caller.
func openChecked(path string, timeout time.Duration) (*bolt.DB, Info, error) {
	info := Info{Path: path}
	fi, err := os.Stat(path)
	if err != nil {
		return nil, info, fmt.Errorf("check store %s: %w", path, err)
	}
	info.Size = fi.Size()
	db, err := openBolt(path, &bolt.Options{ReadOnly: true, Timeout: timeout})
	if err != nil {
		return nil, info, err
	}
	if err := checkDB(db, &info); err != nil {
		db.Close()
		return nil, info, fmt.Errorf("check store %s: %w", path, err)
	}
	return db, info, nil
}

// checkDB runs Check's checks on an open store and fills in info.
func checkDB(db *bolt.DB, info *Info) error {
	return safely(func() error {
		return db.View(func(tx *bolt.Tx) error {
			// Our own walk first: it runs on this goroutine, where a fault
			// on a damaged page becomes an error. bbolt's check runs on a
			// goroutine of its own, where it would crash the process.
			var err error
			if info.LastID, err = checkFormat(tx); err != nil {
				return err
			}
			info.FormatVersion = FormatVersion
			if err := checkRecords(tx, info); err != nil {
				return err
			}
			var errs []error
			for err := range tx.Check() {
				if len(errs) < maxCheckErrors {
					errs = append(errs, err)
				}
			}
			if len(errs) > 0 {
				return fmt.Errorf("%w: bbolt consistency check: %w", ErrCorrupt, errors.Join(errs...))
			}
			return nil
		})
	})
}

// checkRecords decodes every job and build reference and checks the
// invariants that tie them together.
func checkRecords(tx *bolt.Tx, info *Info) error {
	var maxID uint64 // jobs come in ID order
	err := forEachJob(tx, func(j *gearbridge.Job) error {
		info.Jobs++
		if j.Background {
			info.Background++
		}
		maxID = j.ID
		return nil
	})
	if err != nil {
		return err
	}
	if maxID > info.LastID {
		return fmt.Errorf("%w: handle counter %d is below stored job %d", ErrCorrupt, info.LastID, maxID)
	}
	var errs []error
	jobs := tx.Bucket(bucketJobs)
	err = tx.Bucket(bucketBuildRefs).ForEach(func(k, _ []byte) error {
		info.BuildRefs++
		if !jobHasHandle(jobs, string(k)) && len(errs) < maxCheckErrors {
			errs = append(errs, fmt.Errorf("build ref %q has no job", k))
		}
		return nil
	})
	if err != nil {
		return err
	}
	if len(errs) > 0 {
		return fmt.Errorf("%w: %w", ErrCorrupt, errors.Join(errs...))
	}
	return nil
}
