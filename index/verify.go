package index

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"os"
)

// CheckFile reads a data file's two meta pages the way bbolt does (magic, version, checksum) and
// checks that the file holds every page the current one claims. bbolt maps the file and trusts it:
// an empty, cut-off or foreign file would be initialised as a new database, or fault inside the
// mapping, instead of being refused. Open runs it on an existing file; restore runs it on a backup.
func CheckFile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	const pageHeader, metaLen = 16, 64
	type meta struct {
		pageSize    uint32
		pages, txid uint64
	}
	read := func(off int64) (meta, bool) {
		buf := make([]byte, pageHeader+metaLen)
		if _, err := f.ReadAt(buf, off); err != nil {
			return meta{}, false
		}
		m := buf[pageHeader:]
		h := fnv.New64a()
		h.Write(m[:56])
		if binary.LittleEndian.Uint32(m[0:]) != 0xED0CDAED || binary.LittleEndian.Uint32(m[4:]) != 2 ||
			h.Sum64() != binary.LittleEndian.Uint64(m[56:]) {
			return meta{}, false
		}
		return meta{pageSize: binary.LittleEndian.Uint32(m[8:]), pages: binary.LittleEndian.Uint64(m[40:]), txid: binary.LittleEndian.Uint64(m[48:])}, true
	}
	m0, ok0 := read(0)
	pageSize := int64(os.Getpagesize())
	if ok0 {
		pageSize = int64(m0.pageSize)
	}
	m1, ok1 := read(pageSize)
	cur, ok := m0, ok0
	if ok1 && (!ok0 || m1.txid > m0.txid) {
		cur, ok = m1, true
	}
	switch {
	case !ok:
		return errors.New("not a Lookalike data file: no valid bbolt meta page")
	case cur.pageSize < 512 || cur.pageSize > 1<<20:
		return fmt.Errorf("implausible page size %d", cur.pageSize)
	case cur.pages*uint64(cur.pageSize) > uint64(st.Size()):
		return fmt.Errorf("truncated: %d bytes, but the meta page claims %d pages of %d bytes", st.Size(), cur.pages, cur.pageSize)
	}
	return nil
}
