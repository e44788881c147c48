package store

import (
	"errors"
	"fmt"
	"os"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/gearbridge/gearbridge"
)

// Info describes a store file that Check looked at.
type Info struct {
	Path          string
	Size          int64  // bytes
	FormatVersion uint32 // of the file layout (1: migrated when a server opens it)
	Jobs          int    // stored jobs that passed their checks
	Background    int    // of which background jobs
	BuildRefs     int    // build references
	LastID        uint64 // handle counter: the highest job ID ever issued
	// Damaged are job records that fail their checksum or do not decode;
	// a server moves them to the quarantine when it starts.
	Damaged []Damaged
	// Quarantined are the records a server already moved to the quarantine.
	Quarantined []Damaged
	// Imported counts the jobs of other queues that gearbridge import
	// recorded (Importer), whether or not they are still queued.
	Imported int
	// MetaDamage describes a damaged bbolt meta page ("" if none): bbolt
	// falls back to the other page, which may lose the last commit.
	MetaDamage string
}

// maxCheckErrors bounds how many problems Check reports.
const maxCheckErrors = 20

// Check verifies a store file offline: it opens it read-only (failing with
// ErrInUse after a few seconds if a server holds it), checks both bbolt meta
// pages, runs bbolt's page-level consistency check, verifies the version
// record and buckets, decodes and checksums every job record and build
// reference, and checks that the handle counter covers every job and that
// every build reference belongs to a stored job. Damaged records are listed
// in info.Damaged, by handle and function, and make the error ErrCorrupt;
// so does a damaged meta page.
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
	db, damage, err := openBolt(path, &bolt.Options{ReadOnly: true, Timeout: timeout})
	if err != nil {
		return nil, info, err
	}
	if damage != nil {
		info.MetaDamage = damage.String()
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
			if info.LastID, info.FormatVersion, err = checkFormat(tx); err != nil {
				return err
			}
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
			var problems []error
			if info.MetaDamage != "" {
				problems = append(problems, errors.New(info.MetaDamage))
			}
			for i, d := range info.Damaged {
				if i == maxCheckErrors {
					problems = append(problems, fmt.Errorf("and %d more damaged records", len(info.Damaged)-i))
					break
				}
				problems = append(problems, errors.New(d.String()))
			}
			if len(problems) > 0 {
				return fmt.Errorf("%w: %w", ErrCorrupt, errors.Join(problems...))
			}
			return nil
		})
	})
}

// checkRecords decodes every job and build reference and checks the
// invariants that tie them together. Damaged job records are collected in
// info.Damaged; the walk goes on past them.
func checkRecords(tx *bolt.Tx, info *Info) error {
	want := byte(recordV2)
	if info.FormatVersion == 1 {
		want = recordV1
	}
	var maxID uint64 // jobs come in ID order
	err := walkJobs(tx, want, func(j *gearbridge.Job) error {
		maxID = j.ID
		info.Jobs++
		if j.Background {
			info.Background++
		}
		return nil
	}, func(k, v []byte, err error) error {
		if len(k) == 8 {
			maxID = keyID(k)
		}
		info.Damaged = append(info.Damaged, damagedRecord(k, v, err))
		return nil
	})
	if err != nil {
		return err
	}
	if maxID > info.LastID {
		return fmt.Errorf("%w: handle counter %d is below stored job %d", ErrCorrupt, info.LastID, maxID)
	}
	info.Quarantined = quarantined(tx)
	if b := tx.Bucket(bucketImported); b != nil {
		info.Imported = b.Stats().KeyN
	}
	var errs []error
	jobs := tx.Bucket(bucketJobs)
	err = tx.Bucket(bucketBuildRefs).ForEach(func(k, v []byte) error {
		info.BuildRefs++
		if len(errs) >= maxCheckErrors {
			return nil
		}
		if info.FormatVersion >= 2 {
			if _, err := splitChecksum(v); err != nil {
				errs = append(errs, fmt.Errorf("build ref %q: %w", k, err))
			}
		}
		if !jobHasHandle(jobs, string(k)) {
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
