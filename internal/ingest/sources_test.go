package ingest

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestReadCSV(t *testing.T) {
	cases := []struct {
		name, in string
		want     []Source
		wantErr  bool
	}{
		{"metadata types", "id,path,category,price,tags,sku\na1,a.jpg,shoes,12.5,red|summer,00123\n",
			[]Source{{ID: "a1", Path: "a.jpg", Metadata: []byte(`{"category":"shoes","price":12.5,"sku":"00123","tags":["red","summer"]}`)}}, false},
		{"columns in any order, empty cells dropped", "Path,ID,brand\nb.png,b2,\n",
			[]Source{{ID: "b2", Path: "b.png"}}, false},
		{"missing path column", "id,file\na,b\n", nil, true},
		{"empty id", "id,path\n,a.jpg\n", nil, true},
		{"ragged row", "id,path,x\na,b\n", nil, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ReadCSV(strings.NewReader(tc.in))
			if tc.wantErr {
				if !errors.Is(err, ErrManifest) {
					t.Fatalf("want ErrManifest, got %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func TestReadJSONL(t *testing.T) {
	in := `{"id":"a","path":"a.jpg","metadata":{"brand":"x"}}

{"id":"b","path":"b.jpg","price":3,"category":"bags"}
`
	got, err := ReadJSONL(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	want := []Source{
		{ID: "a", Path: "a.jpg", Metadata: []byte(`{"brand":"x"}`)},
		{ID: "b", Path: "b.jpg", Metadata: []byte(`{"category":"bags","price":3}`)},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %+v\nwant %+v", got, want)
	}
	for _, bad := range []string{`{"id":"a"}`, `{"path":"a"}`, `not json`, `{"id":3,"path":"x"}`} {
		if _, err := ReadJSONL(strings.NewReader(bad)); !errors.Is(err, ErrManifest) {
			t.Errorf("%s: want ErrManifest, got %v", bad, err)
		}
	}
}

func TestCollectFoldersAndManifests(t *testing.T) {
	dir := t.TempDir()
	for _, f := range []string{"shoes/red.jpg", "shoes/blue.PNG", "bags/x.webp", "notes.txt", ".hidden/y.jpg"} {
		p := filepath.Join(dir, "cat", f)
		os.MkdirAll(filepath.Dir(p), 0o755)
		os.WriteFile(p, []byte("x"), 0o644)
	}
	manifest := filepath.Join(dir, "m.csv")
	os.WriteFile(manifest, []byte("id,path\nsku-1,cat/shoes/red.jpg\n"), 0o644)
	got, err := Collect([]string{filepath.Join(dir, "cat"), manifest, filepath.Join(dir, "cat", "bags", "x.webp")})
	if err != nil {
		t.Fatal(err)
	}
	var ids, paths []string
	for _, s := range got {
		ids = append(ids, s.ID)
		paths = append(paths, s.Path)
	}
	if strings.Join(ids, ",") != "bags/x,shoes/blue,shoes/red,sku-1,x" {
		t.Fatalf("ids %v", ids)
	}
	// Manifest paths are relative to the manifest.
	if paths[3] != filepath.Join(dir, "cat/shoes/red.jpg") {
		t.Fatalf("manifest path %q", paths[3])
	}
	if _, err := Collect([]string{filepath.Join(dir, "missing")}); err == nil {
		t.Fatal("a missing path must be an error")
	}
}

// FuzzManifest: the manifest parsers return sources or ErrManifest, never panic, and every source
// they return has an id and a path.
func FuzzManifest(f *testing.F) {
	f.Add("id,path,price\na,b.jpg,3\n")
	f.Add("id,path,tags\na,\"b,c.jpg\",x|y\n")
	f.Add(`{"id":"a","path":"p","metadata":{"k":[1,2]}}` + "\n" + `{"id":"b","path":"q","x":null}`)
	f.Add("\xff\xfe")
	f.Fuzz(func(t *testing.T, in string) {
		for _, parse := range []func(string) ([]Source, error){
			func(s string) ([]Source, error) { return ReadCSV(strings.NewReader(s)) },
			func(s string) ([]Source, error) { return ReadJSONL(strings.NewReader(s)) },
		} {
			srcs, err := parse(in)
			if err != nil {
				if !errors.Is(err, ErrManifest) {
					t.Fatalf("error not wrapping ErrManifest: %v", err)
				}
				continue
			}
			for _, s := range srcs {
				if s.ID == "" || s.Path == "" {
					t.Fatalf("source without id or path: %+v", s)
				}
			}
		}
	})
}
