package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"os"
	"path/filepath"

	bolt "go.etcd.io/bbolt"
)

// FormatVersion is the version of the file layout written by this release.
// It is stored in the meta bucket. Version 2 added a CRC-32C to every
// record (jobs, build references, the handle counter) and the quarantine
// bucket; a version-1 file is migrated when a server first opens it
// (migrate.go). A file of any other version is refused.
const FormatVersion = 2

// Buckets and meta keys.
var (
	bucketMeta      = []byte("meta")
	bucketJobs      = []byte("jobs")
	bucketBuildRefs = []byte("buildrefs")
	// bucketQuarantine keeps damaged job records, under their job key,
	// out of the queue but on disk for the operator (see quarantine.go).
	bucketQuarantine = []byte("quarantine")

	keyFormat = []byte("format")  // "gearbridge" + uint32 version, big-endian
	keyLastID = []byte("last-id") // uint64, big-endian: highest job ID ever added; then its CRC-32C (format 2)
)

const formatMagic = "gearbridge"

// Errors returned when a file cannot be used. They are wrapped with the path.
var (
	// ErrInUse means another process holds the file's lock.
	ErrInUse = errors.New("in use by another process")
	// ErrCorrupt means the file is truncated, damaged or not a bbolt file.
	ErrCorrupt = errors.New("corrupt or not a gearbridge store")
	// ErrWrongVersion means the file was written by an incompatible release.
	ErrWrongVersion = errors.New("unsupported store format version")
	// ErrUnknownJob is returned by SetBuildRef for a handle with no stored job.
	ErrUnknownJob = errors.New("no stored job with this handle")
)

func formatRecord(version uint32) []byte {
	b := make([]byte, len(formatMagic)+4)
	copy(b, formatMagic)
	binary.BigEndian.PutUint32(b[len(formatMagic):], version)
	return b
}

// lastIDRecord is the stored handle counter: the ID and its checksum.
func lastIDRecord(id uint64) []byte { return appendChecksum(jobKey(id)) }

// initBuckets writes the buckets and version record of a new store.
func initBuckets(tx *bolt.Tx) error {
	meta, err := tx.CreateBucket(bucketMeta)
	if err != nil {
		return err
	}
	if err := meta.Put(keyFormat, formatRecord(FormatVersion)); err != nil {
		return err
	}
	for _, name := range [][]byte{bucketJobs, bucketBuildRefs, bucketQuarantine} {
		if _, err := tx.CreateBucket(name); err != nil {
			return err
		}
	}
	return nil
}

// checkFormat verifies the version record and the buckets, and returns the
// stored handle counter and the file's format version (1 or 2).
func checkFormat(tx *bolt.Tx) (lastID uint64, version uint32, err error) {
	meta := tx.Bucket(bucketMeta)
	if meta == nil {
		return 0, 0, fmt.Errorf("%w: no %q bucket (a bbolt file, but not written by gearbridge)", ErrCorrupt, bucketMeta)
	}
	f := meta.Get(keyFormat)
	if len(f) != len(formatMagic)+4 || string(f[:len(formatMagic)]) != formatMagic {
		return 0, 0, fmt.Errorf("%w: bad format record %q", ErrCorrupt, f)
	}
	version = binary.BigEndian.Uint32(f[len(formatMagic):])
	if version != 1 && version != FormatVersion {
		return 0, 0, fmt.Errorf("%w: file has version %d, this release reads versions 1 and %d", ErrWrongVersion, version, FormatVersion)
	}
	buckets := [][]byte{bucketJobs, bucketBuildRefs}
	if version >= 2 {
		buckets = append(buckets, bucketQuarantine)
	}
	for _, name := range buckets {
		if tx.Bucket(name) == nil {
			return 0, 0, fmt.Errorf("%w: missing %q bucket", ErrCorrupt, name)
		}
	}
	if v := meta.Get(keyLastID); v != nil {
		if version >= 2 {
			body, err := splitChecksum(v)
			if err != nil || len(body) != 8 {
				return 0, 0, fmt.Errorf("%w: the handle counter record is damaged (%d bytes): %v", ErrCorrupt, len(v), err)
			}
			v = body
		}
		if len(v) != 8 {
			return 0, 0, fmt.Errorf("%w: bad %q record (%d bytes)", ErrCorrupt, keyLastID, len(v))
		}
		lastID = binary.BigEndian.Uint64(v)
	}
	return lastID, version, nil
}

// bbolt's on-disk meta page (format version 2): a 16-byte page header, then
// magic, version, page size, flags (uint32 each), root bucket (root page,
// sequence), freelist page, high-water page id, txid and an FNV-64a checksum
// of everything before it, in native byte order.
const (
	boltMagic      = 0xED0CDAED
	boltVersion    = 2
	pageHeaderSize = 16
	metaSumLen     = 56
	metaSize       = metaSumLen + 8
)

type boltMeta struct {
	pageSize uint32
	freelist uint64
	pgid     uint64
	txid     uint64
}

func parseMeta(b []byte) (boltMeta, bool) {
	if len(b) < pageHeaderSize+metaSize {
		return boltMeta{}, false
	}
	m := b[pageHeaderSize : pageHeaderSize+metaSize]
	ne := binary.NativeEndian
	h := fnv.New64a()
	h.Write(m[:metaSumLen])
	if ne.Uint32(m[0:]) != boltMagic || ne.Uint32(m[4:]) != boltVersion || ne.Uint64(m[metaSumLen:]) != h.Sum64() {
		return boltMeta{}, false
	}
	return boltMeta{
		pageSize: ne.Uint32(m[8:]),
		freelist: ne.Uint64(m[32:]),
		pgid:     ne.Uint64(m[40:]),
		txid:     ne.Uint64(m[48:]),
	}, true
}

// metaDamage describes a bbolt meta page that failed its checksum while the
// other one is valid. bbolt then silently opens the file at the valid
// page's commit: if the damaged page held the newer commit, that commit and
// every job it acknowledged are gone, and the handle counter went back.
type metaDamage struct {
	page     int    // 0 or 1
	usedTxid uint64 // the commit bbolt opens the file at
	// lostTxid is the damaged page's transaction number when it can still
	// be read and is newer than the one used: proof of a rollback.
	lostTxid uint64
}

func (d *metaDamage) String() string {
	if d.lostTxid == d.usedTxid+1 {
		return fmt.Sprintf("bbolt meta page %d is damaged: the file was rolled back from commit %d to commit %d, and jobs acknowledged in the lost commit are gone",
			d.page, d.lostTxid, d.usedTxid)
	}
	return fmt.Sprintf("bbolt meta page %d is damaged: the file opens at commit %d; if the damaged page held a newer commit, that commit and the jobs it acknowledged are gone",
		d.page, d.usedTxid)
}

// precheck reads bbolt's two meta pages before bbolt maps the file, and
// refuses garbage and truncated files: bbolt trusts the meta page and would
// fault (SIGBUS, not a recoverable panic) reading pages past the end of a
// truncated file. It reports a damaged meta page that bbolt would silently
// fall back from.
func precheck(path string) (*metaDamage, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if fi.IsDir() {
		return nil, fmt.Errorf("%s is a directory: --db names the store file itself, such as %s", path, filepath.Join(path, "gearbridge.db"))
	}
	size := fi.Size()
	if size == 0 {
		return nil, fmt.Errorf("%w: the file is empty", ErrCorrupt)
	}
	readPage := func(off int64) []byte {
		buf := make([]byte, pageHeaderSize+metaSize)
		n, _ := f.ReadAt(buf, off)
		return buf[:n]
	}
	page0 := readPage(0)
	m0, ok0 := parseMeta(page0)
	var m1 boltMeta
	var ok1 bool
	var page1 []byte
	if ok0 {
		page1 = readPage(int64(m0.pageSize))
		m1, ok1 = parseMeta(page1)
	} else {
		// Page 0 is damaged: look for page 1 at the usual page sizes.
		for ps := int64(1024); ps <= 64<<10 && !ok1; ps *= 2 {
			m1, ok1 = parseMeta(readPage(ps))
		}
	}
	m := m0
	var damage *metaDamage
	switch {
	case !ok0 && !ok1:
		return nil, fmt.Errorf("%w: no valid bbolt meta page (%d bytes of something else)", ErrCorrupt, size)
	case !ok0:
		m = m1
		damage = &metaDamage{page: 0, usedTxid: m1.txid, lostTxid: rawTxid(page0)}
	case !ok1:
		damage = &metaDamage{page: 1, usedTxid: m0.txid, lostTxid: rawTxid(page1)}
	case m1.txid > m0.txid:
		m = m1
	}
	if m.pageSize < 512 || m.pageSize&(m.pageSize-1) != 0 {
		return nil, fmt.Errorf("%w: bad page size %d", ErrCorrupt, m.pageSize)
	}
	if want := int64(m.pgid) * int64(m.pageSize); want > size || want < 0 {
		return nil, fmt.Errorf("%w: truncated: %d bytes, the last commit needs %d", ErrCorrupt, size, want)
	}
	if m.freelist >= m.pgid && m.freelist != ^uint64(0) {
		return nil, fmt.Errorf("%w: freelist page %d past the end (%d pages)", ErrCorrupt, m.freelist, m.pgid)
	}
	return damage, nil
}

// rawTxid reads the transaction number of a meta page whose checksum
// failed; it means something only if it is one past the valid page's (bbolt
// writes the two pages in turn).
func rawTxid(page []byte) uint64 {
	if len(page) < pageHeaderSize+metaSize {
		return 0
	}
	return binary.NativeEndian.Uint64(page[pageHeaderSize+48:])
}

// createFile makes a new, empty store at path atomically: it is built under a
// temporary name, synced, and linked into place only if path still does not
// exist. A file at path is therefore always a complete store (or something
// that is not ours, which Open refuses rather than replaces).
func createFile(path string) error {
	db, tmpName, err := createTemp(filepath.Dir(path), newTempPattern)
	if err != nil {
		return err
	}
	defer os.Remove(tmpName)
	if err := db.Update(initBuckets); err != nil {
		db.Close()
		return err
	}
	if err := db.Close(); err != nil {
		return err
	}
	if err := os.Link(tmpName, path); err != nil {
		if errors.Is(err, os.ErrExist) {
			return nil // someone else created it first: use theirs
		}
		return err
	}
	return SyncDir(filepath.Dir(path))
}

// createTemp makes an empty bbolt file in dir under a temporary name (see
// os.CreateTemp for pattern) and opens it. The caller removes the file
// unless it moves it into place.
func createTemp(dir, pattern string) (*bolt.DB, string, error) {
	tmp, err := os.CreateTemp(dir, pattern)
	if err != nil {
		return nil, "", err
	}
	name := tmp.Name()
	tmp.Close()
	db, err := bolt.Open(name, 0o600, &bolt.Options{Timeout: openTimeout})
	if err != nil {
		os.Remove(name)
		return nil, "", err
	}
	return db, name, nil
}

// SyncDir makes a rename or link in dir durable.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync directory %s: %w", dir, err)
	}
	return nil
}
