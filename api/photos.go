package api

import (
	"bytes"
	"container/list"
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/gofiber/fiber/v2"
)

// Query photos: an image search keeps its photo for a while under an opaque id (photo_id in the
// response), so that the search has a URL (the web UI's #/search?photo=…) that can be reloaded or
// shared, and a later search, crop or explanation can name the photo instead of sending it again.
// The store lives in memory only: bounded in bytes and entries, each photo kept photoTTL after its
// last use, the least recently used evicted first. A restart forgets them, like an expiry.
const (
	photoStoreBytes   = 64 << 20
	photoStoreEntries = 2000
	photoMaxBytes     = 8 << 20 // a bigger photo is searched but not kept (it would crowd out ~100 others)
	photoTTL          = 24 * time.Hour
)

type photoEntry struct {
	id   string
	data []byte // never modified after put: readers share it
	used time.Time
}

// photoStore is an LRU of query photos with a TTL. The id is derived from the photo's bytes, so
// the same photo searched twice is kept once and keeps its URL.
type photoStore struct {
	mu       sync.Mutex
	order    *list.List // of *photoEntry, most recently used first
	byID     map[string]*list.Element
	bytes    int
	maxBytes int
	maxItems int
	ttl      time.Duration
	now      func() time.Time
}

func newPhotoStore(maxBytes, maxItems int, ttl time.Duration) *photoStore {
	return &photoStore{order: list.New(), byID: map[string]*list.Element{}, maxBytes: maxBytes, maxItems: maxItems, ttl: ttl, now: time.Now}
}

func photoID(data []byte) string {
	sum := sha256.Sum256(data)
	return "p" + base64.RawURLEncoding.EncodeToString(sum[:15])
}

// put keeps data (copied) and returns its id; "" when the photo is too large to keep.
func (p *photoStore) put(data []byte) string {
	if len(data) == 0 || len(data) > min(photoMaxBytes, p.maxBytes) {
		return ""
	}
	id := photoID(data)
	p.mu.Lock()
	defer p.mu.Unlock()
	if el, ok := p.byID[id]; ok {
		el.Value.(*photoEntry).used = p.now()
		p.order.MoveToFront(el)
		return id
	}
	p.byID[id] = p.order.PushFront(&photoEntry{id: id, data: bytes.Clone(data), used: p.now()})
	p.bytes += len(data)
	for p.bytes > p.maxBytes || p.order.Len() > p.maxItems {
		p.removeLocked(p.order.Back())
	}
	return id
}

// get returns the photo and marks it used; false when unknown or expired.
func (p *photoStore) get(id string) ([]byte, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	el, ok := p.byID[id]
	if !ok {
		return nil, false
	}
	e := el.Value.(*photoEntry)
	if p.now().Sub(e.used) > p.ttl {
		p.removeLocked(el)
		return nil, false
	}
	e.used = p.now()
	p.order.MoveToFront(el)
	return e.data, true
}

func (p *photoStore) removeLocked(el *list.Element) {
	e := p.order.Remove(el).(*photoEntry)
	delete(p.byID, e.id)
	p.bytes -= len(e.data)
}

// photoGone is the 404 for a photo id the server no longer (or never) kept.
func photoGone(id string) error {
	return errorf(http.StatusNotFound, "photo_not_found",
		"the query photo %q is no longer kept (photos of searches are kept %s after their last use, and not across restarts): search with the photo again", id, photoTTL).
		with("parameter", "photo_id")
}

// keptPhoto resolves a photo_id parameter.
func (s *Server) keptPhoto(id string) ([]byte, error) {
	data, ok := s.photos.get(strings.TrimSpace(id))
	if !ok {
		return nil, photoGone(id)
	}
	return data, nil
}

// handlePhoto sends a kept query photo back, e.g. to show it again when a search URL is reloaded.
func (s *Server) handlePhoto(c *fiber.Ctx) error {
	id, err := pathParam(c, "photo")
	if err != nil {
		return err
	}
	data, err := s.keptPhoto(id)
	if err != nil {
		return err
	}
	c.Set(fiber.HeaderContentType, http.DetectContentType(data))
	c.Set(fiber.HeaderCacheControl, "private, max-age=3600")
	return c.Send(data)
}
