package index

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/lookalike/lookalike/internal/guard"
	bolt "go.etcd.io/bbolt"
)

// FileName is the bbolt file inside the data directory. All collections
// share it (one bucket each) so that Backup is one consistent transaction.
const FileName = "lookalike.db"

// Options configure a DB. A nil *Options or a zero field means the default.
type Options struct {
	// M is the max links per node on upper layers (2*M on layer 0). Default 16.
	M int
	// EfConstruction is the beam width while inserting. Default 200.
	EfConstruction int
	// EfSearch is the default search beam. Default DefaultEfSearch (its
	// comment has the measurement behind it).
	EfSearch int
	// Ml is the level multiplier; level = floor(-ln(U)*Ml). Default 1/ln(M).
	Ml float64
	// ExactThreshold: collections with at most this many items are searched
	// by brute force. Default 2000. Negative disables.
	ExactThreshold int
	// SnapshotInterval: dirty graphs are snapshotted this often. Default 5m;
	// negative disables periodic snapshots (Close still snapshots).
	SnapshotInterval time.Duration
	// Logger defaults to a discard logger.
	Logger *slog.Logger
	// NoSync skips fsync on commit. Tests only: acknowledged writes can be lost.
	NoSync bool
	// ReadOnly opens the file read-only; writes fail with ErrReadOnly.
	ReadOnly bool
	// BuildWorkers is how many goroutines link a batch of items into the graph
	// (a multi-item write, a rebuild at Open). Default GOMAXPROCS.
	BuildWorkers int
	// Compression is how vectors are held in memory: CompressionSQ8 (the
	// default) or CompressionNone (float32). See compress.go.
	Compression string
	// RerankLoadAsyncAt: a collection of at least this many items loads its
	// re-ranking state after Open returns (about 30 s at 1 M items), while it
	// serves: searches skip k-reciprocal re-ranking until it is ready, and
	// writes wait for it. Default 50 000; negative: always at Open.
	RerankLoadAsyncAt int
}

// DefaultRerankLoadAsyncAt is Options.RerankLoadAsyncAt's default: below it
// the state loads in about a second at Open.
const DefaultRerankLoadAsyncAt = 50_000

func (o Options) withDefaults() Options {
	if o.M <= 0 {
		o.M = DefaultM
	}
	if o.EfConstruction <= 0 {
		o.EfConstruction = DefaultEfConstruction
	}
	if o.EfSearch <= 0 {
		o.EfSearch = DefaultEfSearch
	}
	if o.ExactThreshold == 0 {
		o.ExactThreshold = DefaultExactThreshold
	}
	if o.SnapshotInterval == 0 {
		o.SnapshotInterval = DefaultSnapshotInterval
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.BuildWorkers <= 0 {
		o.BuildWorkers = runtime.GOMAXPROCS(0)
	}
	if o.Compression == "" {
		o.Compression = DefaultCompression
	}
	if o.RerankLoadAsyncAt == 0 {
		o.RerankLoadAsyncAt = DefaultRerankLoadAsyncAt
	}
	return o
}

// DB is a data directory holding named collections in one bbolt file.
type DB struct {
	opts     Options
	log      *slog.Logger
	bolt     *bolt.DB
	readOnly bool
	closed   atomic.Bool

	mu    sync.RWMutex // guards colls
	colls map[string]*Collection

	stop chan struct{}
	wg   sync.WaitGroup
}

var (
	bucketCollections = []byte("collections")
	keyConfig         = []byte("config")
	keySeq            = []byte("seq")
	keyGraph          = []byte("graph")
	bucketItems       = []byte("items")
	bucketThumbs      = []byte("thumbs")
	// bucketSources holds Item.Source, created on the first write of one (older collections have
	// none).
	bucketSources = []byte("sources")
	bucketLog     = []byte("log")
)

// Open opens (creating if needed) the data directory and loads every
// collection: from its graph snapshot when fresh, else rebuilt from the
// stored vectors. A directory or file that is not writable is opened
// read-only: reads work, writes fail with ErrReadOnly.
func Open(dir string, opts *Options) (*DB, error) {
	var o Options
	if opts != nil {
		o = *opts
	}
	o = o.withDefaults()
	if err := validCompression(o.Compression); err != nil {
		return nil, err
	}
	db := &DB{opts: o, log: o.Logger, colls: map[string]*Collection{}, stop: make(chan struct{})}
	path := filepath.Join(dir, FileName)
	ro := o.ReadOnly
	if !ro {
		if err := os.MkdirAll(dir, 0o755); err != nil && !isReadOnlyErr(err) {
			return nil, fmt.Errorf("index: create %s: %w", dir, err)
		}
	}
	if st, err := os.Stat(path); err == nil && st.Size() > 0 {
		if err := CheckFile(path); err != nil {
			return nil, fmt.Errorf("%w: %s is damaged (restore a backup): %w", ErrStorage, path, err)
		}
	}
	bo := &bolt.Options{Timeout: 2 * time.Second, NoSync: o.NoSync, ReadOnly: ro, FreelistType: bolt.FreelistMapType}
	b, err := bolt.Open(path, 0o600, bo)
	if err != nil && !ro && isReadOnlyErr(err) {
		if _, serr := os.Stat(path); serr == nil {
			bo.ReadOnly, ro = true, true
			b, err = bolt.Open(path, 0o600, bo)
		}
	}
	if err != nil {
		if errors.Is(err, bolt.ErrTimeout) {
			return nil, fmt.Errorf("%w: %s (no lock within %s)", ErrLocked, path, bo.Timeout)
		}
		if isReadOnlyErr(err) {
			return nil, fmt.Errorf("%w: open %s: %w", ErrReadOnly, path, err)
		}
		return nil, fmt.Errorf("%w: open %s: %w", ErrStorage, path, err)
	}
	db.bolt, db.readOnly = b, ro
	if ro {
		db.log.Warn("index opened read-only", "path", path)
	} else if err := b.Update(func(tx *bolt.Tx) error {
		_, err := tx.CreateBucketIfNotExists(bucketCollections)
		return err
	}); err != nil {
		b.Close()
		return nil, fmt.Errorf("%w: init %s: %w", ErrStorage, path, err)
	}
	if err := db.loadAll(); err != nil {
		b.Close()
		return nil, err
	}
	db.refreshFrozen()
	if !ro && o.SnapshotInterval > 0 {
		// The loop stops when Close closes db.stop; a panic in it is logged and it restarts.
		ctx, cancel := context.WithCancel(context.Background())
		go func() { <-db.stop; cancel() }()
		guard.Go(ctx, &db.wg, db.log, "index snapshots", func(ctx context.Context) {
			db.snapshotLoop(ctx, o.SnapshotInterval)
		})
	}
	return db, nil
}

func isReadOnlyErr(err error) bool {
	return errors.Is(err, syscall.EROFS) || errors.Is(err, syscall.EACCES) || errors.Is(err, syscall.EPERM) || errors.Is(err, fs.ErrPermission)
}

// storageErr classifies a failed write transaction.
func storageErr(op string, err error) error {
	if errors.Is(err, ErrInvalidItem) || errors.Is(err, ErrNotFound) || errors.Is(err, ErrClosed) {
		return err
	}
	if errors.Is(err, bolt.ErrDatabaseReadOnly) || isReadOnlyErr(err) {
		return fmt.Errorf("%w: %s: %w", ErrReadOnly, op, err)
	}
	return fmt.Errorf("%w: %s: %w", ErrStorage, op, err)
}

func (db *DB) loadAll() error {
	var names []string
	err := db.bolt.View(func(tx *bolt.Tx) error {
		root := tx.Bucket(bucketCollections)
		if root == nil {
			return nil
		}
		return root.ForEachBucket(func(k []byte) error {
			names = append(names, string(k))
			return nil
		})
	})
	if err != nil {
		return fmt.Errorf("%w: list collections: %w", ErrStorage, err)
	}
	for _, name := range names {
		start := time.Now()
		c, err := loadCollection(db, name)
		if err != nil {
			return fmt.Errorf("index: load collection %q: %w", name, err)
		}
		db.colls[name] = c
		db.log.Info("collection loaded", "name", name, "count", c.g.count, "from", c.loadedFrom, "took", time.Since(start))
	}
	return nil
}

func (db *DB) snapshotLoop(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			db.snapshotAll()
		}
	}
}

// Snapshot writes the graph of every collection changed since its last
// snapshot. It runs periodically and on Close; callers rarely need it.
func (db *DB) Snapshot() error {
	if db.closed.Load() {
		return ErrClosed
	}
	return db.snapshotAll()
}

func (db *DB) snapshotAll() error {
	db.mu.RLock()
	cs := make([]*Collection, 0, len(db.colls))
	for _, c := range db.colls {
		cs = append(cs, c)
	}
	db.mu.RUnlock()
	var errs []error
	for _, c := range cs {
		if err := c.snapshot(); err != nil {
			db.log.Error("graph snapshot failed", "collection", c.name, "err", err)
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Close stops the snapshotter, snapshots dirty graphs and closes the file.
func (db *DB) Close() error {
	if !db.closed.CompareAndSwap(false, true) {
		return nil
	}
	close(db.stop)
	db.wg.Wait()
	var err error
	if !db.readOnly {
		err = db.snapshotAll()
	}
	db.mu.Lock()
	for _, c := range db.colls {
		c.markClosed()
	}
	db.mu.Unlock()
	return errors.Join(err, db.bolt.Close())
}

var validName = regexp.MustCompile(`^[a-z0-9_-]{1,64}$`)

// NameRule is validName in words, for people who type a collection name (the web UI states the
// same rule where a name is entered).
const NameRule = "a collection name is 1 to 64 lowercase letters (a-z), digits, dashes (-) or underscores (_)"

// CollectionConfig describes a collection. Fingerprint names the model and
// preprocessing that produced the vectors; Dims their length. M,
// EfConstruction, EfSearch default to the DB's Options.
type CollectionConfig struct {
	Fingerprint    string `json:"fingerprint"`
	Dims           int    `json:"dims"`
	M              int    `json:"m"`
	EfConstruction int    `json:"ef_construction"`
	EfSearch       int    `json:"ef_search"`
}

// CollectionInfo is a collection's description and size.
type CollectionInfo struct {
	Name           string `json:"name"`
	Fingerprint    string `json:"fingerprint"`
	Dims           int    `json:"dims"`
	Count          int    `json:"count"`
	Levels         int    `json:"levels"`
	M              int    `json:"m"`
	EfConstruction int    `json:"ef_construction"`
	EfSearch       int    `json:"ef_search"`
	DiskBytes      int64  `json:"disk_bytes"`
	// RerankReady is false while the re-ranking state loads after Open (Options.RerankLoadAsyncAt).
	RerankReady bool `json:"rerank_ready"`
}

func (db *DB) fillConfig(cfg CollectionConfig) CollectionConfig {
	if cfg.M <= 0 {
		cfg.M = db.opts.M
	}
	if cfg.EfConstruction <= 0 {
		cfg.EfConstruction = db.opts.EfConstruction
	}
	if cfg.EfSearch <= 0 {
		cfg.EfSearch = db.opts.EfSearch
	}
	return cfg
}

// CreateCollection creates an empty collection. An existing collection gives
// ErrExists when its fingerprint and dims match cfg, ErrFingerprintMismatch
// when they do not.
func (db *DB) CreateCollection(name string, cfg CollectionConfig) (*Collection, error) {
	if !validName.MatchString(name) {
		return nil, fmt.Errorf("%w: %q: %s", ErrInvalidName, name, NameRule)
	}
	if t := db.aliasTarget(name); t != "" {
		return nil, fmt.Errorf("%w: %q is an alias of %q", ErrExists, name, t)
	}
	return db.createCollection(name, cfg)
}

// createCollection creates a collection under a name already validated (a base or generation name).
func (db *DB) createCollection(name string, cfg CollectionConfig) (*Collection, error) {
	if db.closed.Load() {
		return nil, ErrClosed
	}
	if cfg.Dims <= 0 || cfg.Dims > 65536 {
		return nil, fmt.Errorf("%w: collection %q: dims %d out of range 1..65536", ErrInvalidItem, name, cfg.Dims)
	}
	if cfg.Fingerprint == "" || len(cfg.Fingerprint) > 1024 {
		return nil, fmt.Errorf("%w: collection %q: fingerprint must be 1..1024 bytes", ErrInvalidItem, name)
	}
	db.mu.Lock()
	defer db.mu.Unlock()
	if c, ok := db.colls[name]; ok {
		if err := c.checkFingerprint(cfg); err != nil {
			return nil, err
		}
		return nil, fmt.Errorf("%w: collection %q", ErrExists, name)
	}
	if db.readOnly {
		return nil, fmt.Errorf("%w: create collection %q", ErrReadOnly, name)
	}
	cfg = db.fillConfig(cfg)
	raw, _ := json.Marshal(cfg)
	err := db.bolt.Update(func(tx *bolt.Tx) error {
		b, err := tx.Bucket(bucketCollections).CreateBucket([]byte(name))
		if err != nil {
			return err
		}
		if _, err := b.CreateBucket(bucketItems); err != nil {
			return err
		}
		if _, err := b.CreateBucket(bucketThumbs); err != nil {
			return err
		}
		return b.Put(keyConfig, raw)
	})
	if err != nil {
		return nil, storageErr("create collection "+name, err)
	}
	c := newCollection(db, name, cfg)
	base, _ := ParseGeneration(name)
	c.frozen = name != GenerationName(base, 1) // a new generation is a shadow until the alias names it
	db.colls[name] = c
	return c, nil
}

// OpenCollection returns the named collection, creating it when missing; an
// existing one with another fingerprint or dims gives ErrFingerprintMismatch.
func (db *DB) OpenCollection(name string, cfg CollectionConfig) (*Collection, error) {
	c, err := db.CreateCollection(name, cfg)
	if errors.Is(err, ErrExists) {
		return db.Collection(name)
	}
	return c, err
}

// Collection returns an existing collection or ErrNotFound.
func (db *DB) Collection(name string) (*Collection, error) {
	if db.closed.Load() {
		return nil, ErrClosed
	}
	db.mu.RLock()
	defer db.mu.RUnlock()
	c, ok := db.colls[name]
	if !ok {
		return nil, fmt.Errorf("%w: collection %q", ErrNotFound, name)
	}
	return c, nil
}

// DropCollection deletes a collection and all its items.
func (db *DB) DropCollection(name string) error {
	if db.closed.Load() {
		return ErrClosed
	}
	if db.readOnly {
		return fmt.Errorf("%w: drop collection %q", ErrReadOnly, name)
	}
	db.mu.Lock()
	defer db.mu.Unlock()
	c, ok := db.colls[name]
	if !ok {
		return fmt.Errorf("%w: collection %q", ErrNotFound, name)
	}
	base, _ := ParseGeneration(name)
	if t := db.aliasTarget(base); t == name && base != name {
		return fmt.Errorf("%w: collection %q is what alias %q names", ErrInUse, name, base)
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	err := db.bolt.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketCollections).DeleteBucket([]byte(name))
	})
	if err != nil {
		return storageErr("drop collection "+name, err)
	}
	delete(db.colls, name)
	c.markDropped()
	return nil
}

// Collections describes every collection, sorted by name.
func (db *DB) Collections() []CollectionInfo {
	db.mu.RLock()
	cs := make([]*Collection, 0, len(db.colls))
	for _, c := range db.colls {
		cs = append(cs, c)
	}
	db.mu.RUnlock()
	out := make([]CollectionInfo, 0, len(cs))
	for _, c := range cs {
		out = append(out, c.Info())
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Backup writes a consistent copy of the whole bbolt file (all collections)
// to w from one read transaction. Writers are not blocked until one needs to
// grow the memory map, which waits for the transaction to end: give Backup a
// fast writer (a file), never a network client (see BackupFile).
func (db *DB) Backup(w io.Writer) (int64, error) {
	if db.closed.Load() {
		return 0, ErrClosed
	}
	var n int64
	err := db.bolt.View(func(tx *bolt.Tx) error {
		var err error
		n, err = tx.WriteTo(w)
		return err
	})
	if err != nil {
		return n, fmt.Errorf("index: backup: %w", err)
	}
	return n, nil
}

// backupPrefix names the snapshot files BackupFile makes in the data
// directory; one older than staleBackup is debris of a crash mid-copy.
const (
	backupPrefix = ".backup-"
	staleBackup  = time.Hour
)

// BackupFile copies a consistent snapshot of the whole data file into a
// temporary file beside it (same disk, at disk speed, so the read transaction
// is short) and returns it open at offset 0 with its size. The file is already
// unlinked: closing it frees the space, and nothing is left behind whatever
// happens to the process afterwards. A read-only data directory stages the
// copy in os.TempDir instead.
func (db *DB) BackupFile() (*os.File, int64, error) {
	if db.closed.Load() {
		return nil, 0, ErrClosed
	}
	dir := filepath.Dir(db.bolt.Path())
	removeStaleBackups(dir)
	f, err := os.CreateTemp(dir, backupPrefix+"*.db")
	if err != nil && isReadOnlyErr(err) {
		f, err = os.CreateTemp("", "lookalike"+backupPrefix+"*.db")
	}
	if err != nil {
		return nil, 0, storageErr("backup: stage snapshot", err)
	}
	os.Remove(f.Name()) // the open descriptor keeps the data until Close
	n, err := db.Backup(f)
	if err == nil {
		_, err = f.Seek(0, io.SeekStart)
	}
	if err != nil {
		f.Close()
		return nil, 0, storageErr("backup: stage snapshot", err)
	}
	return f, n, nil
}

// removeStaleBackups deletes snapshot files that a crash left mid-copy.
func removeStaleBackups(dir string) {
	matches, _ := filepath.Glob(filepath.Join(dir, backupPrefix+"*.db"))
	for _, m := range matches {
		if st, err := os.Stat(m); err == nil && time.Since(st.ModTime()) > staleBackup {
			os.Remove(m)
		}
	}
}

// Check runs bbolt's consistency check over the whole file.
func (db *DB) Check() error {
	if db.closed.Load() {
		return ErrClosed
	}
	return db.bolt.View(func(tx *bolt.Tx) error {
		var errs []error
		for err := range tx.Check() {
			errs = append(errs, err)
		}
		return errors.Join(errs...)
	})
}
