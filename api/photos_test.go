package api

import (
	"bytes"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestPhotoStoreBounds: the store keeps at most its bytes and entries, evicting the least
// recently used, forgets a photo unused for longer than its TTL, and keeps one copy of a photo
// searched twice.
func TestPhotoStoreBounds(t *testing.T) {
	now := time.Unix(1e9, 0)
	photo := func(b byte, n int) []byte { return bytes.Repeat([]byte{b}, n) }
	for _, tc := range []struct {
		name     string
		maxBytes int
		maxItems int
		puts     [][]byte
		touch    int // index of a photo read after the puts (-1: none)
		advance  time.Duration
		kept     []int // indexes of puts still kept
	}{
		{"within bounds", 100, 10, [][]byte{photo(1, 10), photo(2, 10)}, -1, 0, []int{0, 1}},
		{"bytes bound evicts the oldest", 25, 10, [][]byte{photo(1, 10), photo(2, 10), photo(3, 10)}, -1, 0, []int{1, 2}},
		{"entries bound", 100, 2, [][]byte{photo(1, 1), photo(2, 1), photo(3, 1)}, -1, 0, []int{1, 2}},
		{"too large to keep", 25, 10, [][]byte{photo(1, 30)}, -1, 0, nil},
		{"same photo twice is one entry", 25, 2, [][]byte{photo(1, 10), photo(1, 10), photo(2, 10)}, -1, 0, []int{0, 1, 2}},
		{"expired", 100, 10, [][]byte{photo(1, 10)}, -1, 25 * time.Hour, nil},
		{"within the TTL", 100, 10, [][]byte{photo(1, 10)}, -1, 23 * time.Hour, []int{0}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clock := now
			p := newPhotoStore(tc.maxBytes, tc.maxItems, 24*time.Hour)
			p.now = func() time.Time { return clock }
			ids := make([]string, len(tc.puts))
			for i, data := range tc.puts {
				ids[i] = p.put(data)
				clock = clock.Add(time.Second)
			}
			clock = clock.Add(tc.advance)
			for i, id := range ids {
				data, ok := p.get(id)
				want := slices.Contains(tc.kept, i)
				if ok != want || ok && !bytes.Equal(data, tc.puts[i]) {
					t.Errorf("photo %d (%q): kept %v, want %v", i, id, ok, want)
				}
			}
			if p.bytes > tc.maxBytes || p.order.Len() > tc.maxItems || len(p.byID) != p.order.Len() {
				t.Errorf("store holds %d bytes in %d entries (%d ids), bounds %d bytes, %d entries", p.bytes, p.order.Len(), len(p.byID), tc.maxBytes, tc.maxItems)
			}
		})
	}
}

// TestSearchByKeptPhoto: an image search returns a photo_id; the photo comes back from
// /v1/photos/{id}; a search by photo_id (with a crop too) ranks like the upload; explain takes it;
// an unknown id is 404 photo_not_found, and photo_id with an image is 400.
func TestSearchByKeptPhoto(t *testing.T) {
	ts := newTestServer(t, nil)
	for i := range 8 {
		ts.addPhoto(t, ukName(i), `{}`)
	}
	img := photo(t, ukName(9))
	r, first := ts.searchImage(t, img, part{"k", "", []byte("5")})
	if r.status != http.StatusOK || first.PhotoID == "" {
		t.Fatalf("image search: %d %s, want a photo_id", r.status, r.body)
	}
	if r := do(t, "GET", ts.url+"/v1/photos/"+first.PhotoID, "", nil); r.status != http.StatusOK || !bytes.Equal(r.body, img) || r.header.Get("Content-Type") != "image/jpeg" {
		t.Fatalf("GET photo: %d %s, %d bytes; want the photo sent", r.status, r.header.Get("Content-Type"), len(r.body))
	}
	ids := func(sr searchResponse) []string {
		var out []string
		for _, x := range sr.Results {
			out = append(out, x.ID)
		}
		return out
	}
	for _, tc := range []struct {
		name, body string
		status     int
		code       string
		same       bool // same results as the upload
	}{
		{"by photo_id", `{"photo_id":"` + first.PhotoID + `","k":5}`, 200, "", true},
		{"by photo_id with a crop", `{"photo_id":"` + first.PhotoID + `","k":5,"crop":"100,100,300,200"}`, 200, "", false},
		{"unknown photo_id", `{"photo_id":"pnope","k":5}`, 404, "photo_not_found", false},
		{"photo_id and id", `{"photo_id":"` + first.PhotoID + `","id":"ukbench00001"}`, 400, "bad_request", false},
	} {
		r := do(t, "POST", ts.url+"/v1/collections/default/search", "application/json", strings.NewReader(tc.body))
		if r.status != tc.status || tc.code != "" && !strings.Contains(string(r.body), `"code":"`+tc.code+`"`) {
			t.Errorf("%s: %d %s, want %d %s", tc.name, r.status, r.body, tc.status, tc.code)
			continue
		}
		if r.status != 200 {
			continue
		}
		var sr searchResponse
		if err := json.Unmarshal(r.body, &sr); err != nil {
			t.Fatal(err)
		}
		if sr.PhotoID != first.PhotoID {
			t.Errorf("%s: photo_id %q, want the same %q", tc.name, sr.PhotoID, first.PhotoID)
		}
		if tc.same && !slices.Equal(ids(sr), ids(first)) {
			t.Errorf("%s: results %v, want the upload's %v", tc.name, ids(sr), ids(first))
		}
	}
	if ts.eng.Info().Spec.FeatureMapTensor != "" {
		r := do(t, "GET", ts.url+"/v1/collections/default/search/explain?format=json&id=ukbench00001&photo_id="+first.PhotoID, "", nil)
		if r.status != http.StatusOK {
			t.Errorf("explain with photo_id: %d %s", r.status, r.body)
		}
	}
}
