package ingest

import (
	"bufio"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// Source is one item to load: its external id, where its photo is, and its metadata.
type Source struct {
	ID       string
	Path     string
	Metadata json.RawMessage
}

var imageExts = map[string]bool{
	".jpg": true, ".jpeg": true, ".png": true, ".gif": true, ".webp": true,
	".bmp": true, ".tif": true, ".tiff": true,
}

// IsImagePath reports whether a file name has an image extension Lookalike decodes.
func IsImagePath(p string) bool { return imageExts[strings.ToLower(filepath.Ext(p))] }

// Collect expands paths into sources. A folder contributes its image files recursively, with the id
// being the path below the folder without extension; a .csv/.jsonl/.ndjson file is a manifest; any
// other file is one image whose id is its base name without extension.
func Collect(paths []string) ([]Source, error) {
	var out []Source
	for _, p := range paths {
		st, err := os.Stat(p)
		if err != nil {
			return nil, fmt.Errorf("collect %q: %w", p, err)
		}
		switch ext := strings.ToLower(filepath.Ext(p)); {
		case st.IsDir():
			srcs, err := walkDir(p)
			if err != nil {
				return nil, err
			}
			out = append(out, srcs...)
		case ext == ".csv":
			srcs, err := readManifestFile(p, ReadCSV)
			if err != nil {
				return nil, err
			}
			out = append(out, srcs...)
		case ext == ".jsonl" || ext == ".ndjson":
			srcs, err := readManifestFile(p, ReadJSONL)
			if err != nil {
				return nil, err
			}
			out = append(out, srcs...)
		default:
			out = append(out, Source{ID: strings.TrimSuffix(filepath.Base(p), filepath.Ext(p)), Path: p})
		}
	}
	return out, nil
}

func walkDir(root string) ([]Source, error) {
	var out []Source
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if p != root && strings.HasPrefix(d.Name(), ".") {
				return filepath.SkipDir
			}
			return nil
		}
		if !IsImagePath(p) {
			return nil
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		id := filepath.ToSlash(strings.TrimSuffix(rel, filepath.Ext(rel)))
		out = append(out, Source{ID: id, Path: p})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("walk %q: %w", root, err)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

func readManifestFile(path string, parse func(io.Reader) ([]Source, error)) ([]Source, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open manifest %q: %w", path, err)
	}
	defer f.Close()
	srcs, err := parse(f)
	if err != nil {
		return nil, fmt.Errorf("manifest %q: %w", path, err)
	}
	// Relative image paths are relative to the manifest, so a catalog folder can move as a whole.
	base := filepath.Dir(path)
	for i := range srcs {
		if !filepath.IsAbs(srcs[i].Path) {
			srcs[i].Path = filepath.Join(base, srcs[i].Path)
		}
	}
	return srcs, nil
}

// ReadCSV parses a manifest with a header row naming at least id and path; every other column
// becomes a metadata field (numbers stay numbers, "a|b" in a column named tags becomes a list).
func ReadCSV(r io.Reader) ([]Source, error) {
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = -1
	header, err := cr.Read()
	if err != nil {
		return nil, fmt.Errorf("%w: header: %v", ErrManifest, err)
	}
	col := map[string]int{}
	for i, h := range header {
		col[strings.ToLower(strings.TrimSpace(h))] = i
	}
	idCol, okID := col["id"]
	pathCol, okPath := col["path"]
	if !okID || !okPath {
		return nil, fmt.Errorf("%w: header must name columns id and path, got %q", ErrManifest, header)
	}
	var out []Source
	for line := 2; ; line++ {
		rec, err := cr.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%w: line %d: %v", ErrManifest, line, err)
		}
		if len(rec) != len(header) {
			return nil, fmt.Errorf("%w: line %d: %d fields, header has %d", ErrManifest, line, len(rec), len(header))
		}
		meta := map[string]any{}
		for i, h := range header {
			if i == idCol || i == pathCol || rec[i] == "" {
				continue
			}
			name := strings.TrimSpace(h)
			meta[name] = csvValue(name, rec[i])
		}
		s := Source{ID: strings.TrimSpace(rec[idCol]), Path: strings.TrimSpace(rec[pathCol])}
		if s.ID == "" || s.Path == "" {
			return nil, fmt.Errorf("%w: line %d: empty id or path", ErrManifest, line)
		}
		if len(meta) > 0 {
			s.Metadata, _ = json.Marshal(meta)
		}
		out = append(out, s)
	}
	return out, nil
}

func csvValue(column, v string) any {
	if strings.EqualFold(column, "tags") {
		parts := strings.Split(v, "|")
		for i := range parts {
			parts[i] = strings.TrimSpace(parts[i])
		}
		return parts
	}
	// Leading zeros mark codes (SKU "00123"), not quantities.
	if f, err := strconv.ParseFloat(v, 64); err == nil && !(len(v) > 1 && v[0] == '0' && v[1] != '.') {
		return f
	}
	return v
}

// ReadJSONL parses one JSON object per line with "id", "path" and any metadata: either a
// "metadata" object or the remaining top-level fields.
func ReadJSONL(r io.Reader) ([]Source, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	var out []Source
	for line := 1; sc.Scan(); line++ {
		text := strings.TrimSpace(sc.Text())
		if text == "" {
			continue
		}
		var obj map[string]json.RawMessage
		if err := json.Unmarshal([]byte(text), &obj); err != nil {
			return nil, fmt.Errorf("%w: line %d: %v", ErrManifest, line, err)
		}
		var s Source
		if err := json.Unmarshal(obj["id"], &s.ID); err != nil || s.ID == "" {
			return nil, fmt.Errorf("%w: line %d: missing string field id", ErrManifest, line)
		}
		if err := json.Unmarshal(obj["path"], &s.Path); err != nil || s.Path == "" {
			return nil, fmt.Errorf("%w: line %d: missing string field path", ErrManifest, line)
		}
		if m, ok := obj["metadata"]; ok {
			s.Metadata = m
		} else {
			delete(obj, "id")
			delete(obj, "path")
			if len(obj) > 0 {
				s.Metadata, _ = json.Marshal(obj)
			}
		}
		out = append(out, s)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrManifest, err)
	}
	return out, nil
}
