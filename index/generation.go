package index

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	bolt "go.etcd.io/bbolt"
)

// Generations and aliases (docs/lifecycle.md). Generation 1 of base name c is the collection c
// itself; generation n >= 2 is the collection "c@n". The alias c names the generation clients
// use: a durable record in bucketAliases, or c itself when there is none. A generation that is not
// its alias's target is frozen: ordinary writes fail with ErrFrozen, replicated ones (the
// lifecycle mirror, see WithReplication) still land.

var (
	bucketAliases   = []byte("aliases")
	bucketLifecycle = []byte("lifecycle")
	bucketChanges   = []byte("changes")
)

var validGeneration = regexp.MustCompile(`^([a-z0-9_-]{1,64})@([0-9]{1,9})$`)

// ParseGeneration splits a concrete collection name into its base name and generation: "c@3" is
// ("c", 3), "c" is ("c", 1).
func ParseGeneration(name string) (base string, gen int) {
	if m := validGeneration.FindStringSubmatch(name); m != nil {
		n, _ := strconv.Atoi(m[2])
		return m[1], n
	}
	return name, 1
}

// GenerationName is the concrete collection of generation gen of base.
func GenerationName(base string, gen int) string {
	if gen <= 1 {
		return base
	}
	return base + "@" + strconv.Itoa(gen)
}

// CreateGeneration creates the collection base@gen (gen >= 2) for a rebuild; the base name must be
// valid. An existing one gives what CreateCollection gives.
func (db *DB) CreateGeneration(base string, gen int, cfg CollectionConfig) (*Collection, error) {
	if !validName.MatchString(base) || gen < 2 {
		return nil, fmt.Errorf("%w: generation %d of %q", ErrInvalidName, gen, base)
	}
	return db.createCollection(GenerationName(base, gen), cfg)
}

// Resolve maps a name a client sent to a concrete collection name: an alias to its target, "c@1"
// to c, anything else to itself. It does not check that the collection exists.
func (db *DB) Resolve(name string) string {
	if t := db.aliasTarget(name); t != "" {
		return t
	}
	if base, gen := ParseGeneration(name); gen == 1 && base != name {
		return base
	}
	return name
}

func (db *DB) aliasTarget(alias string) string {
	var target string
	_ = db.bolt.View(func(tx *bolt.Tx) error {
		if b := tx.Bucket(bucketAliases); b != nil {
			target = string(b.Get([]byte(alias)))
		}
		return nil
	})
	return target
}

// Target is the concrete collection the alias base names now.
func (db *DB) Target(base string) string {
	if t := db.aliasTarget(base); t != "" {
		return t
	}
	return base
}

// SetAlias points alias at the concrete collection target (durable when it returns) and freezes
// the other generations of alias. Pointing c at c removes the record.
func (db *DB) SetAlias(alias, target string) error {
	if db.readOnly {
		return fmt.Errorf("%w: set alias %q", ErrReadOnly, alias)
	}
	if base, _ := ParseGeneration(target); base != alias || !validName.MatchString(alias) {
		return fmt.Errorf("%w: alias %q may only name a generation of itself, not %q", ErrInvalidName, alias, target)
	}
	if _, err := db.Collection(target); err != nil {
		return err
	}
	err := db.bolt.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bucketAliases)
		if err != nil {
			return err
		}
		if target == alias {
			return b.Delete([]byte(alias))
		}
		return b.Put([]byte(alias), []byte(target))
	})
	if err != nil {
		return storageErr("set alias "+alias, err)
	}
	db.refreshFrozen()
	return nil
}

// Aliases lists the alias records (alias → target).
func (db *DB) Aliases() map[string]string {
	out := map[string]string{}
	_ = db.bolt.View(func(tx *bolt.Tx) error {
		if b := tx.Bucket(bucketAliases); b != nil {
			return b.ForEach(func(k, v []byte) error {
				out[string(k)] = string(v)
				return nil
			})
		}
		return nil
	})
	return out
}

// refreshFrozen marks every generation that is not its alias's target frozen.
func (db *DB) refreshFrozen() {
	aliases := db.Aliases()
	db.mu.RLock()
	defer db.mu.RUnlock()
	for name, c := range db.colls {
		base, _ := ParseGeneration(name)
		target := aliases[base]
		if target == "" {
			target = base
		}
		c.mu.Lock()
		c.frozen = name != target
		c.mu.Unlock()
	}
}

// State reads a small durable record of the lifecycle code (key → value), nil when absent.
func (db *DB) State(key string) []byte {
	var v []byte
	_ = db.bolt.View(func(tx *bolt.Tx) error {
		if b := tx.Bucket(bucketLifecycle); b != nil {
			v = bytes.Clone(b.Get([]byte(key)))
		}
		return nil
	})
	return v
}

// States lists the records whose key starts with prefix.
func (db *DB) States(prefix string) map[string][]byte {
	out := map[string][]byte{}
	_ = db.bolt.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketLifecycle)
		if b == nil {
			return nil
		}
		c := b.Cursor()
		for k, v := c.Seek([]byte(prefix)); k != nil && strings.HasPrefix(string(k), prefix); k, v = c.Next() {
			out[string(k)] = bytes.Clone(v)
		}
		return nil
	})
	return out
}

// SetState writes (or, with a nil value, deletes) a lifecycle record; durable when it returns.
func (db *DB) SetState(key string, value []byte) error {
	if db.readOnly {
		return fmt.Errorf("%w: state %q", ErrReadOnly, key)
	}
	err := db.bolt.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bucketLifecycle)
		if err != nil {
			return err
		}
		if value == nil {
			return b.Delete([]byte(key))
		}
		return b.Put([]byte(key), value)
	})
	if err != nil {
		return storageErr("state "+key, err)
	}
	return nil
}

// ---- replication and change tracking ----

type replicationKey struct{}

// WithReplication marks ctx as carrying replicated writes (the lifecycle mirror): they land in a
// frozen generation, where a client's write gets ErrFrozen.
func WithReplication(ctx context.Context) context.Context {
	return context.WithValue(ctx, replicationKey{}, true)
}

// checkFrozen refuses a client's write to a frozen generation. Under wmu.
func (c *Collection) checkFrozen(ctx context.Context) error {
	c.mu.RLock()
	frozen := c.frozen
	c.mu.RUnlock()
	if frozen && ctx.Value(replicationKey{}) == nil {
		return fmt.Errorf("%w: collection %q is not the generation its alias names", ErrFrozen, c.name)
	}
	return nil
}

// Frozen says whether client writes are refused (see checkFrozen).
func (c *Collection) Frozen() bool {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.frozen
}

// Generation is the collection's generation number (1 for a plain name).
func (c *Collection) Generation() int {
	_, g := ParseGeneration(c.name)
	return g
}

// Change is one pending change record: the id and the write sequence that last changed it.
type Change struct {
	ID  string
	Seq uint64
}

// Track switches change tracking on or off. While on, every write records the ids it changed in
// the collection's change set, in the write's own transaction (docs/lifecycle.md). Switching it
// off discards the set.
func (c *Collection) Track(on bool) error {
	if err := c.writable(); err != nil {
		return err
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	err := c.inBucket(func(b *bolt.Bucket) error {
		if on {
			_, err := b.CreateBucketIfNotExists(bucketChanges)
			return err
		}
		if b.Bucket(bucketChanges) == nil {
			return nil
		}
		return b.DeleteBucket(bucketChanges)
	})
	if err != nil {
		return storageErr("track changes of "+c.name, err)
	}
	return nil
}

// Tracking says whether change tracking is on.
func (c *Collection) Tracking() bool {
	on := false
	_ = c.db.bolt.View(func(tx *bolt.Tx) error {
		if b := c.bucket(tx); b != nil {
			on = b.Bucket(bucketChanges) != nil
		}
		return nil
	})
	return on
}

// Changes returns up to limit pending change records in id order, and how many are pending.
func (c *Collection) Changes(limit int) ([]Change, int, error) {
	var out []Change
	n := 0
	err := c.db.bolt.View(func(tx *bolt.Tx) error {
		cb, err := c.changes(tx)
		if cb == nil || err != nil {
			return err
		}
		n = cb.Stats().KeyN
		cur := cb.Cursor()
		for k, v := cur.First(); k != nil && len(out) < limit; k, v = cur.Next() {
			if len(v) == 8 {
				out = append(out, Change{ID: string(k), Seq: binary.BigEndian.Uint64(v)})
			}
		}
		return nil
	})
	return out, n, err
}

// AckChanges deletes the records that still hold the given sequence: an id written again since it
// was read keeps its (newer) record.
func (c *Collection) AckChanges(done []Change) error {
	if len(done) == 0 {
		return nil
	}
	err := c.db.bolt.Update(func(tx *bolt.Tx) error {
		cb, err := c.changes(tx)
		if cb == nil || err != nil {
			return err
		}
		for _, ch := range done {
			if v := cb.Get([]byte(ch.ID)); len(v) == 8 && binary.BigEndian.Uint64(v) == ch.Seq {
				if err := cb.Delete([]byte(ch.ID)); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		return storageErr("acknowledge changes of "+c.name, err)
	}
	return nil
}

// changes is the collection's change set, nil when tracking is off.
func (c *Collection) changes(tx *bolt.Tx) (*bolt.Bucket, error) {
	b := c.bucket(tx)
	if b == nil {
		return nil, fmt.Errorf("%w: collection %q", ErrNotFound, c.name)
	}
	return b.Bucket(bucketChanges), nil
}

// recordChange notes id in the change set when tracking is on. Inside the write's transaction.
func recordChange(b *bolt.Bucket, id string, seq uint64) error {
	cb := b.Bucket(bucketChanges)
	if cb == nil {
		return nil
	}
	return cb.Put([]byte(id), binary.BigEndian.AppendUint64(nil, seq))
}

// Quiesce runs fn while holding the collection's write lock: no write lands until fn returns. The
// lifecycle switch drains the change set and moves the alias inside it.
func (c *Collection) Quiesce(fn func() error) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return fn()
}

// Config is the collection's configuration (fingerprint, dims, graph parameters).
func (c *Collection) Config() CollectionConfig { return c.cfg }
