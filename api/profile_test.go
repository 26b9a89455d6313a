package api

import (
	"bytes"
	"net/http"
	"strings"
	"testing"

	"github.com/lookalike/lookalike/embed/spec"
	"github.com/lookalike/lookalike/index"
)

// TestCollectionProfiles: a collection is created with a descriptor profile, which its fingerprint
// carries; items and searches use it; a photo searched in a fast and a regional collection ranks
// its group-mates in both; bad profiles are 400 and a collection of a profile the server cannot
// serve is 409.
func TestCollectionProfiles(t *testing.T) {
	eng := featureMapEngine(t)
	ts := newServerWith(t, eng, nil)
	create := func(body string) response {
		return do(t, "POST", ts.url+"/v1/collections", "application/json", strings.NewReader(body))
	}
	r := create(`{"name":"regional","profile":"ms317"}`)
	if r.status != http.StatusCreated {
		t.Fatalf("create: %d %s", r.status, r.body)
	}
	var cj collectionJSON
	r.json(t, &cj)
	_, want, err := eng.Info().ProfileFingerprint("ms317")
	if err != nil {
		t.Fatal(err)
	}
	if cj.Profile != "ms317" || cj.Fingerprint != want || cj.Model != "mnv2i8" {
		t.Errorf("created %+v, want profile ms317, fingerprint %s", cj, want)
	}
	var def collectionJSON
	do(t, "GET", ts.url+"/v1/collections/default", "", nil).json(t, &def)
	if def.Profile != spec.ProfileFast || def.Fingerprint == cj.Fingerprint {
		t.Errorf("default collection %+v: want the fast profile and another fingerprint", def)
	}

	// Group 25 (photos 100..103) and two other objects in both collections.
	names := []string{ukName(100), ukName(101), ukName(102), ukName(4), ukName(8)}
	for _, col := range []string{"default", "regional"} {
		for _, n := range names {
			body, ct := multipartBody(t, part{"image", n, photo(t, n)}, part{"id", "", []byte(strings.TrimSuffix(n, ".jpg"))})
			if r := do(t, "POST", ts.url+"/v1/collections/"+col+"/items", ct, body); r.status != http.StatusCreated {
				t.Fatalf("add %s to %s: %d %s", n, col, r.status, r.body)
			}
		}
		body, ct := multipartBody(t, part{"image", "q.jpg", photo(t, ukName(103))}, part{"k", "", []byte("3")})
		r := do(t, "POST", ts.url+"/v1/collections/"+col+"/search", ct, body)
		var sr searchResponse
		r.json(t, &sr)
		if r.status != http.StatusOK || len(sr.Results) != 3 {
			t.Fatalf("%s: search %d %s", col, r.status, r.body)
		}
		for _, res := range sr.Results {
			if !strings.HasPrefix(res.ID, "ukbench0010") {
				t.Errorf("%s: result %s is not a photo of the query's object (results %+v)", col, res.ID, sr.Results)
			}
		}
	}
	// Stored vectors differ between the profiles.
	a, _ := ts.db.Collection("default")
	b, _ := ts.db.Collection("regional")
	ia, _ := a.Get("ukbench00100")
	ib, _ := b.Get("ukbench00100")
	if index.Dot(ia.Vector, ib.Vector) > 0.99 {
		t.Errorf("the fast and ms317 vectors of one photo are alike (%.4f): no regional pooling", index.Dot(ia.Vector, ib.Vector))
	}

	for _, tc := range []struct{ name, body, code string }{
		{"unknown profile", `{"name":"x1","profile":"sharp"}`, "invalid_profile"},
		{"scale out of range", `{"name":"x2","profile":"rmac:4000"}`, "invalid_profile"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := create(tc.body)
			if r.status != http.StatusBadRequest || r.errorCode(t) != tc.code {
				t.Errorf("%d %s, want 400 %s", r.status, r.body, tc.code)
			}
		})
	}

	// A server whose engine has no feature map cannot make ms317 vectors: it refuses the regional
	// collection (409) and a regional profile at creation (400), and serves the fast one.
	plain := startTestServer(t, testEngine(t), nil, nil)
	if _, err := plain.db.CreateCollection("regional", index.CollectionConfig{Fingerprint: cj.Fingerprint, Dims: cj.Dims}); err != nil {
		t.Fatal(err)
	}
	body, ct := multipartBody(t, part{"image", "q.jpg", photo(t, ukName(103))})
	if r := do(t, "POST", plain.url+"/v1/collections/regional/search", ct, body); r.status != http.StatusConflict || r.errorCode(t) != "fingerprint_mismatch" {
		t.Errorf("regional collection on a fast-only server: %d %s, want 409 fingerprint_mismatch", r.status, r.body)
	}
	r = do(t, "POST", plain.url+"/v1/collections", "application/json", bytes.NewReader([]byte(`{"name":"r2","profile":"ms448"}`)))
	if r.status != http.StatusBadRequest || r.errorCode(t) != "invalid_profile" {
		t.Errorf("create ms448 without a feature map: %d %s, want 400 invalid_profile", r.status, r.body)
	}
}
