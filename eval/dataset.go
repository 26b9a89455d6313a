package eval

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"image"
	"image/png"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/lookalike/lookalike/embed"
	"github.com/lookalike/lookalike/internal/ingest"
)

// Image is one photo of a dataset: a file (Path) or in-memory encoded bytes (Data), optionally
// cropped.
type Image struct {
	Path string
	Data []byte
	Crop *embed.Rect
}

func (im Image) load() ([]byte, error) {
	if im.Data != nil {
		return im.Data, nil
	}
	b, err := os.ReadFile(im.Path)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrDataset, err)
	}
	return b, nil
}

// Item is one database entry. Group is its class or object id ("" for a distractor).
type Item struct {
	ID    string
	Image Image
	Group string
}

// Query is one query: either a database item (Self, whose stored vector is reused) or its own Image.
// Positives and Junk are explicit (Oxford); when both are nil the positives are the database items
// sharing Group.
type Query struct {
	ID        string
	Self      string
	Image     Image
	Group     string
	Positives map[string]bool
	Junk      map[string]bool
}

// Dataset is a database to index and the queries to run against it.
type Dataset struct {
	Name     string
	Database []Item
	Queries  []Query
	// IncludeSelf keeps a Self query's own item in its ranking and among its positives (the UKBench
	// convention: the N-S score counts the query image itself). Otherwise it is excluded.
	IncludeSelf bool
	// NS reports the N-S score (groups of 4).
	NS bool
	// OxfordAP uses the trapezoid AP of the Oxford protocol instead of non-interpolated AP.
	OxfordAP bool
	// KNN reports k-NN label accuracy (classification datasets).
	KNN bool
}

// UKBench reads a UKBench folder: GROUPS.txt lists complete groups of 4; every other ukbench*.jpg is
// a distractor. Every grouped image is a query.
func UKBench(dir string) (*Dataset, error) {
	f, err := os.Open(filepath.Join(dir, "GROUPS.txt"))
	if err != nil {
		return nil, fmt.Errorf("%w: ukbench: %v", ErrDataset, err)
	}
	defer f.Close()
	ds := &Dataset{Name: "ukbench", IncludeSelf: true, NS: true}
	grouped := map[string]bool{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		fields := strings.Fields(line)
		if len(fields) < 2 {
			return nil, fmt.Errorf("%w: ukbench GROUPS.txt: bad line %q", ErrDataset, line)
		}
		g := fields[0]
		for _, name := range fields[1:] {
			id := strings.TrimSuffix(name, filepath.Ext(name))
			grouped[name] = true
			ds.Database = append(ds.Database, Item{ID: id, Image: Image{Path: filepath.Join(dir, name)}, Group: g})
			ds.Queries = append(ds.Queries, Query{ID: id, Self: id, Group: g})
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%w: ukbench GROUPS.txt: %v", ErrDataset, err)
	}
	names, _ := filepath.Glob(filepath.Join(dir, "ukbench*.jpg"))
	sort.Strings(names)
	for _, p := range names {
		if name := filepath.Base(p); !grouped[name] {
			ds.Database = append(ds.Database, Item{ID: strings.TrimSuffix(name, ".jpg"), Image: Image{Path: p}})
		}
	}
	if len(ds.Queries) == 0 {
		return nil, fmt.Errorf("%w: ukbench: no groups in %s", ErrDataset, dir)
	}
	return ds, nil
}

// AddDistractors appends every image under dir (recursively) to the database as an ungrouped item
// with id prefix "distractor/".
func AddDistractors(ds *Dataset, dir string) error {
	srcs, err := ingest.Collect([]string{dir})
	if err != nil {
		return fmt.Errorf("%w: distractors: %v", ErrDataset, err)
	}
	for _, s := range srcs {
		ds.Database = append(ds.Database, Item{ID: "distractor/" + s.ID, Image: Image{Path: s.Path}})
	}
	ds.Name += "+distractors"
	return nil
}

// Oxford reads the Oxford Buildings layout (images/, gt/LANDMARK_N_{query,good,ok,junk}.txt): every
// photo is in the database, each query is a rectangle of a photo, positives are good+ok and junk is
// removed from the ranking.
func Oxford(dir string) (*Dataset, error) {
	srcs, err := ingest.Collect([]string{filepath.Join(dir, "images")})
	if err != nil {
		return nil, fmt.Errorf("%w: oxford: %v", ErrDataset, err)
	}
	ds := &Dataset{Name: "oxford5k", OxfordAP: true}
	for _, s := range srcs {
		ds.Database = append(ds.Database, Item{ID: s.ID, Image: Image{Path: s.Path}})
	}
	qfiles, _ := filepath.Glob(filepath.Join(dir, "gt", "*_query.txt"))
	sort.Strings(qfiles)
	readSet := func(p string) (map[string]bool, error) {
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, fmt.Errorf("%w: oxford: %v", ErrDataset, err)
		}
		set := map[string]bool{}
		for _, l := range strings.Fields(string(b)) {
			set[l] = true
		}
		return set, nil
	}
	for _, qf := range qfiles {
		base := strings.TrimSuffix(qf, "_query.txt")
		b, err := os.ReadFile(qf)
		if err != nil {
			return nil, fmt.Errorf("%w: oxford: %v", ErrDataset, err)
		}
		f := strings.Fields(string(b))
		if len(f) != 5 {
			return nil, fmt.Errorf("%w: oxford %s: want \"NAME x1 y1 x2 y2\", got %q", ErrDataset, qf, b)
		}
		var c [4]float64
		for i := range c {
			if c[i], err = strconv.ParseFloat(f[i+1], 64); err != nil {
				return nil, fmt.Errorf("%w: oxford %s: %v", ErrDataset, qf, err)
			}
		}
		name := strings.TrimPrefix(f[0], "oxc1_")
		good, err := readSet(base + "_good.txt")
		if err != nil {
			return nil, err
		}
		ok, err := readSet(base + "_ok.txt")
		if err != nil {
			return nil, err
		}
		junk, err := readSet(base + "_junk.txt")
		if err != nil {
			return nil, err
		}
		for id := range ok {
			good[id] = true
		}
		// The official protocol rounds the corners outwards.
		x1, y1 := int(c[0]), int(c[1])
		x2, y2 := int(c[2]+0.999), int(c[3]+0.999)
		ds.Queries = append(ds.Queries, Query{
			ID:        filepath.Base(base),
			Image:     Image{Path: filepath.Join(dir, "images", name+".jpg"), Crop: &embed.Rect{X: x1, Y: y1, W: x2 - x1, H: y2 - y1}},
			Positives: good, Junk: junk,
		})
	}
	if len(ds.Queries) == 0 {
		return nil, fmt.Errorf("%w: oxford: no gt/*_query.txt in %s", ErrDataset, dir)
	}
	return ds, nil
}

// FashionMNISTClasses are the label names of Fashion-MNIST, in label order.
var FashionMNISTClasses = []string{"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"}

// FashionMNIST reads the idx files (gzipped or not) of Fashion-MNIST: the first limitTrain training
// images form the database, the first limitTest test images are the queries (0 = all). Images become
// PNG bytes; the label is the group.
func FashionMNIST(dir string, limitTrain, limitTest int) (*Dataset, error) {
	ds := &Dataset{Name: "fashion-mnist", KNN: true}
	train, err := readIdxSplit(dir, "train", limitTrain)
	if err != nil {
		return nil, err
	}
	test, err := readIdxSplit(dir, "t10k", limitTest)
	if err != nil {
		return nil, err
	}
	for i, it := range train {
		ds.Database = append(ds.Database, Item{ID: fmt.Sprintf("train/%05d", i), Image: Image{Data: it.png}, Group: it.label})
	}
	for i, it := range test {
		ds.Queries = append(ds.Queries, Query{ID: fmt.Sprintf("test/%05d", i), Image: Image{Data: it.png}, Group: it.label})
	}
	return ds, nil
}

type idxImage struct {
	png   []byte
	label string
}

func openMaybeGz(base string) (io.ReadCloser, error) {
	if f, err := os.Open(base + ".gz"); err == nil {
		zr, err := gzip.NewReader(f)
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("%w: %s.gz: %v", ErrDataset, base, err)
		}
		return struct {
			io.Reader
			io.Closer
		}{zr, f}, nil
	}
	f, err := os.Open(base)
	if err != nil {
		return nil, fmt.Errorf("%w: %v (install the Debian package dataset-fashion-mnist)", ErrDataset, err)
	}
	return f, nil
}

func readIdxSplit(dir, split string, limit int) ([]idxImage, error) {
	ir, err := openMaybeGz(filepath.Join(dir, split+"-images-idx3-ubyte"))
	if err != nil {
		return nil, err
	}
	defer ir.Close()
	lr, err := openMaybeGz(filepath.Join(dir, split+"-labels-idx1-ubyte"))
	if err != nil {
		return nil, err
	}
	defer lr.Close()
	imgs, w, h, err := ParseIdxImages(bufio.NewReader(ir), limit)
	if err != nil {
		return nil, fmt.Errorf("%s images: %w", split, err)
	}
	labels, err := ParseIdxLabels(bufio.NewReader(lr), limit)
	if err != nil {
		return nil, fmt.Errorf("%s labels: %w", split, err)
	}
	if len(labels) != len(imgs) {
		return nil, fmt.Errorf("%w: %s: %d images but %d labels", ErrDataset, split, len(imgs), len(labels))
	}
	out := make([]idxImage, len(imgs))
	var buf bytes.Buffer
	enc := png.Encoder{CompressionLevel: png.BestSpeed}
	for i, px := range imgs {
		g := &image.Gray{Pix: px, Stride: w, Rect: image.Rect(0, 0, w, h)}
		buf.Reset()
		if err := enc.Encode(&buf, g); err != nil {
			return nil, fmt.Errorf("%w: encode png: %v", ErrDataset, err)
		}
		name := strconv.Itoa(int(labels[i]))
		if int(labels[i]) < len(FashionMNISTClasses) {
			name = FashionMNISTClasses[labels[i]]
		}
		out[i] = idxImage{png: bytes.Clone(buf.Bytes()), label: name}
	}
	return out, nil
}

// ParseIdxImages reads an idx3-ubyte image file (magic 0x00000803): up to limit images (0 = all) of
// rows×cols bytes each.
func ParseIdxImages(r io.Reader, limit int) (imgs [][]byte, cols, rows int, err error) {
	var hdr [4]uint32
	if err := binary.Read(r, binary.BigEndian, &hdr); err != nil {
		return nil, 0, 0, fmt.Errorf("%w: idx header: %v", ErrDataset, err)
	}
	if hdr[0] != 0x803 {
		return nil, 0, 0, fmt.Errorf("%w: idx images: magic %#x, want 0x803", ErrDataset, hdr[0])
	}
	n, rows, cols := int(hdr[1]), int(hdr[2]), int(hdr[3])
	if rows <= 0 || cols <= 0 || rows > 1<<12 || cols > 1<<12 || rows*cols > 1<<20 || n < 0 {
		return nil, 0, 0, fmt.Errorf("%w: idx images: bad shape %dx%dx%d", ErrDataset, n, rows, cols)
	}
	if limit > 0 && limit < n {
		n = limit
	}
	// The header's count is not trusted for allocation: a short file fails at its end instead.
	imgs = make([][]byte, 0, min(n, 1<<16))
	for i := range n {
		im := make([]byte, rows*cols)
		if _, err := io.ReadFull(r, im); err != nil {
			return nil, 0, 0, fmt.Errorf("%w: idx images: image %d: %v", ErrDataset, i, err)
		}
		imgs = append(imgs, im)
	}
	return imgs, cols, rows, nil
}

// ParseIdxLabels reads an idx1-ubyte label file (magic 0x00000801).
func ParseIdxLabels(r io.Reader, limit int) ([]byte, error) {
	var hdr [2]uint32
	if err := binary.Read(r, binary.BigEndian, &hdr); err != nil {
		return nil, fmt.Errorf("%w: idx header: %v", ErrDataset, err)
	}
	if hdr[0] != 0x801 {
		return nil, fmt.Errorf("%w: idx labels: magic %#x, want 0x801", ErrDataset, hdr[0])
	}
	n := int(hdr[1])
	if limit > 0 && limit < n {
		n = limit
	}
	out, err := io.ReadAll(io.LimitReader(r, int64(n)))
	if err != nil || len(out) != n {
		return nil, fmt.Errorf("%w: idx labels: want %d labels, file holds %d (%v)", ErrDataset, n, len(out), err)
	}
	return out, nil
}

// Folder reads a generic layout: a folder with one sub-folder per group (images directly in the
// root are distractors), or a CSV/JSONL manifest (see internal/ingest) whose metadata has a group
// column (groupField, default "group"). Every grouped item queries the rest (itself excluded).
// A folder that carries its own ground truth is read by its reader: GROUPS.txt (the UKBench
// layout, "group<TAB>file file ...") or gt/ next to images/ (the Oxford layout).
func Folder(path, groupField string) (*Dataset, error) {
	if groupField == "" {
		groupField = "group"
	}
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrDataset, err)
	}
	if st.IsDir() {
		if ds, ok, err := folderWithTruth(path); ok {
			return ds, err
		}
	}
	srcs, err := ingest.Collect([]string{path})
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrDataset, err)
	}
	ds := &Dataset{Name: filepath.Base(filepath.Clean(path))}
	for _, s := range srcs {
		g := ""
		if st.IsDir() {
			if i := strings.LastIndex(s.ID, "/"); i >= 0 {
				g = s.ID[:i]
			}
		} else if len(s.Metadata) > 0 {
			var m map[string]any
			if err := json.Unmarshal(s.Metadata, &m); err == nil && m[groupField] != nil {
				g = fmt.Sprint(m[groupField])
			}
		}
		ds.Database = append(ds.Database, Item{ID: s.ID, Image: Image{Path: s.Path}, Group: g})
	}
	size := map[string]int{}
	for _, it := range ds.Database {
		size[it.Group]++
	}
	for _, it := range ds.Database {
		if it.Group != "" && size[it.Group] > 1 {
			ds.Queries = append(ds.Queries, Query{ID: it.ID, Self: it.ID, Group: it.Group})
		}
	}
	if len(ds.Queries) == 0 {
		return nil, fmt.Errorf("%w: %s: no group with at least 2 images (one sub-folder per group, a GROUPS.txt, or a manifest with a %q column)", ErrDataset, path, groupField)
	}
	return ds, nil
}

// folderWithTruth reads a folder whose ground truth is a file of its own (ok false: there is none).
func folderWithTruth(dir string) (ds *Dataset, ok bool, err error) {
	isDir := func(p string) bool { st, err := os.Stat(filepath.Join(dir, p)); return err == nil && st.IsDir() }
	switch {
	case isDir("gt") && isDir("images"):
		ds, err = Oxford(dir)
	case fileExists(filepath.Join(dir, "GROUPS.txt")):
		if ds, err = UKBench(dir); err == nil {
			ds.Name = filepath.Base(filepath.Clean(dir))
			ds.NS = groupsOf(ds, 4) // the N-S score is defined for groups of 4
		}
	default:
		return nil, false, nil
	}
	return ds, true, err
}

func fileExists(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.Mode().IsRegular()
}

// groupsOf says whether every group of ds has exactly n items.
func groupsOf(ds *Dataset, n int) bool {
	size := map[string]int{}
	for _, it := range ds.Database {
		if it.Group != "" {
			size[it.Group]++
		}
	}
	for _, k := range size {
		if k != n {
			return false
		}
	}
	return len(size) > 0
}
