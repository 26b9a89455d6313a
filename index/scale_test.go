package index

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/lookalike/lookalike/internal/bench/synth"
	"github.com/lookalike/lookalike/internal/procstat"
)

// scaleReport is what BenchmarkCollectionScale's child process measures after opening the
// collection: the figures of README's memory and start-up tables.
type scaleReport struct {
	Items        int     `json:"items"`
	Compressed   bool    `json:"compressed"`
	LoadedFrom   string  `json:"loaded_from"`
	OpenS        float64 `json:"open_s"`         // Open, graph from its snapshot
	FirstSearchS float64 `json:"first_search_s"` // Open and the first search answered
	PeakOpenMB   float64 `json:"peak_open_mb"`   // peak RSS up to the first search
	RerankReadyS float64 `json:"rerank_ready_s"` // the re-ranking state loaded (after Open from 50 000 items)
	// Upserts of one item: right after the first search, while the re-ranking state may still
	// load (up to 5, each timed, as long as it loads), then 5 once it is ready.
	WritesLoadingMS []float64 `json:"writes_loading_ms"`
	WritesReadyMS   []float64 `json:"writes_ready_ms"`
	ItemsFrom       string    `json:"items_from"`
	HeapBytes       uint64    `json:"heap_bytes"` // Go heap after open (after a GC)
	VectorBytes     int64     `json:"vector_bytes"`
	GraphBytes      int64     `json:"graph_bytes"`
	RSSAnonMB       float64   `json:"rss_anon_mb"` // anonymous memory after open: the heap and runtime
	RSSMB           float64   `json:"rss_mb"`      // with the pages of the bbolt file it touched
	PeakRSSMB       float64   `json:"peak_rss_mb"` // VmHWM during open
	SnapshotPeakMB  float64   `json:"snapshot_peak_mb"`
	SnapshotS       float64   `json:"snapshot_s"`
	QPS             float64   `json:"qps"` // searches per second of one thread's CPU time, k 10, default ef
	Recall          float64   `json:"recall"`
}

// BenchmarkCollectionScale measures a collection at scale through the public API: it upserts
// LOOKALIKE_BENCH_N items (default 100000; 1280-d clustered vectors, ~60 bytes of metadata, a
// LOOKALIKE_BENCH_THUMB-byte thumbnail and a LOOKALIKE_BENCH_SOURCE-byte source rendition, by
// default the mean sizes of real ones) in batches of 2000, closes the DB, then opens it in a
// fresh child process and reports open time, first-search time, memory per item (heap, vectors,
// graph, the rest: id maps and metadata), peak RSS, the memory a snapshot adds while written, and
// disk per item per bucket. LOOKALIKE_BENCH_DIR keeps the data directory (a second run reuses it);
// LOOKALIKE_BENCH_COMPRESSION=none measures float storage.
//
//	LOOKALIKE_BENCH_N=1000000 LOOKALIKE_BENCH_THUMB=0 LOOKALIKE_BENCH_SOURCE=0 LOOKALIKE_BENCH_DIR=/tmp/c1m \
//	go test -run '^$' -bench CollectionScale -benchtime 1x -timeout 300m ./index/
func BenchmarkCollectionScale(b *testing.B) {
	n := envInt("LOOKALIKE_BENCH_N", 100000)
	// The mean sizes of the real ones on UKBench's 640x480 photos: a 256-px thumbnail (JPEG q82)
	// and a 512-px source rendition (q90).
	thumb, source := envBytes("LOOKALIKE_BENCH_THUMB", 10400), envBytes("LOOKALIKE_BENCH_SOURCE", 46200)
	dir := os.Getenv("LOOKALIKE_BENCH_DIR")
	if dir == "" {
		dir = b.TempDir()
	}
	comp := os.Getenv("LOOKALIKE_BENCH_COMPRESSION")
	for i := 0; i < b.N; i++ {
		if _, err := os.Stat(filepath.Join(dir, FileName)); err != nil {
			buildScaleCollection(b, dir, n, thumb, source, comp)
		}
		printDisk(b, dir, n)
		cmd := exec.Command(os.Args[0], "-test.run=^TestScaleOpenChild$", "-test.count=1", "-test.v")
		cmd.Env = append(os.Environ(), "LOOKALIKE_SCALE_CHILD="+dir)
		cmd.Stderr = os.Stderr
		out, err := cmd.Output()
		if err != nil {
			b.Fatalf("child: %v\n%s", err, out)
		}
		for _, line := range strings.Split(string(out), "\n") {
			if rest, ok := strings.CutPrefix(line, "SCALE "); ok {
				var r scaleReport
				if err := json.Unmarshal([]byte(rest), &r); err != nil {
					b.Fatal(err)
				}
				per := func(x float64) float64 { return x / float64(r.Items) }
				fmt.Printf("open %d items (compressed %v, graph from %s, items from %s): open %.2fs, first search answered at %.2fs (peak RSS %.0f MiB), re-ranking ready at %.1fs\n",
					r.Items, r.Compressed, r.LoadedFrom, r.ItemsFrom, r.OpenS, r.FirstSearchS, r.PeakOpenMB, r.RerankReadyS)
				fmt.Printf("one-item upserts while the re-ranking state loads: %.1f ms; once it is ready: %.1f ms\n", r.WritesLoadingMS, r.WritesReadyMS)
				fmt.Printf("RAM per item: heap %.0f B = vectors %.0f + graph %.0f + ids, metadata and the rest %.0f\n",
					per(float64(r.HeapBytes)), per(float64(r.VectorBytes)), per(float64(r.GraphBytes)),
					per(float64(int64(r.HeapBytes)-r.VectorBytes-r.GraphBytes)))
				fmt.Printf("RSS after open and re-ranking: anonymous %.0f MiB, with bbolt's mapped pages %.0f MiB; peak until then %.0f MiB\n",
					r.RSSAnonMB, r.RSSMB, r.PeakRSSMB)
				fmt.Printf("snapshot of the whole graph: %.1fs, peak RSS %.0f MiB (%.0f MiB above the RSS before it)\n",
					r.SnapshotS, r.SnapshotPeakMB, r.SnapshotPeakMB-r.RSSMB)
				fmt.Printf("search through the collection (bbolt re-scoring when compressed): %.0f QPS (one thread's CPU time), recall@10 %.4f\n", r.QPS, r.Recall)
				b.ReportMetric(r.FirstSearchS, "open_s")
				b.ReportMetric(per(float64(r.HeapBytes)), "heap_B/item")
			}
		}
	}
}

func envBytes(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v >= 0 {
		return v
	}
	return def
}

// buildScaleCollection upserts n synthetic items into collection "scale" of a new DB in dir.
func buildScaleCollection(b *testing.B, dir string, n, thumb, source int, comp string) {
	db, err := Open(dir, &Options{NoSync: true, SnapshotInterval: -1, Compression: comp})
	if err != nil {
		b.Fatal(err)
	}
	c, err := db.CreateCollection("scale", CollectionConfig{Fingerprint: "synthetic", Dims: 1280})
	if err != nil {
		b.Fatal(err)
	}
	th, src := make([]byte, thumb), make([]byte, source)
	for i := range src {
		src[i] = byte(i * 7)
	}
	copy(th, src)
	const batch = 2000
	items := make([]Item, 0, batch)
	start := time.Now()
	flush := func() {
		if err := c.Upsert(ctx, items...); err != nil {
			b.Fatal(err)
		}
		items = items[:0]
	}
	i := 0
	synth.ClusteredEach(n, 1280, max(1, n/500), 1, 1, func(v []float32) error {
		items = append(items, Item{ID: fmt.Sprintf("sku-%08d", i), Vector: v, Thumbnail: th, Source: src, ContentHash: fmt.Sprintf("%016x", i*2654435761),
			Metadata: []byte(fmt.Sprintf(`{"category":"c%d","brand":"b%d","price":%d.%02d}`, i%50, i%300, i%500, i%100))})
		i++
		if len(items) == batch {
			flush()
			if i%100000 == 0 {
				fmt.Printf("upserted %d items in %.0fs\n", i, time.Since(start).Seconds())
			}
		}
		return nil
	})
	if len(items) > 0 {
		flush()
	}
	fmt.Printf("built %d items through Upsert in %.1fs\n", n, time.Since(start).Seconds())
	if err := db.Close(); err != nil {
		b.Fatal(err)
	}
}

// printDisk reports the bbolt pages per item of each bucket and the file size per item.
func printDisk(b *testing.B, dir string, n int) {
	path := filepath.Join(dir, FileName)
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	db.View(func(tx *bolt.Tx) error {
		bk := tx.Bucket(bucketCollections).Bucket([]byte("scale"))
		for _, name := range [][]byte{bucketItems, bucketThumbs, bucketSources, bucketChunks, bucketCatalog, bucketLog} {
			if sb := bk.Bucket(name); sb != nil {
				s := sb.Stats()
				fmt.Printf("disk per item, bucket %-13s %8.0f B\n", name, float64(s.BranchAlloc+s.LeafAlloc)/float64(n))
			}
		}
		fmt.Printf("disk per item, re-ranking lists    %8.0f B\n", float64(len(bk.Get(keyKNN)))/float64(n))
		return nil
	})
	if st, err := os.Stat(path); err == nil {
		fmt.Printf("disk per item, whole file          %8.0f B (%d MiB)\n", float64(st.Size())/float64(n), st.Size()>>20)
	}
}

// TestScaleOpenChild is BenchmarkCollectionScale's child: it opens the DB in LOOKALIKE_SCALE_CHILD
// in a fresh process and prints one "SCALE {json}" line.
func TestScaleOpenChild(t *testing.T) {
	dir := os.Getenv("LOOKALIKE_SCALE_CHILD")
	if dir == "" {
		t.Skip("BenchmarkCollectionScale's child process")
	}
	var r scaleReport
	start := time.Now()
	// Open's own log lines (graph loaded, re-ranking state ready: each with its time) go to stderr.
	db, err := Open(dir, &Options{SnapshotInterval: -1, NoSync: true, Logger: slog.New(slog.NewTextHandler(os.Stderr, nil))})
	if err != nil {
		t.Fatal(err)
	}
	r.OpenS = time.Since(start).Seconds()
	c, err := db.Collection("scale")
	if err != nil {
		t.Fatal(err)
	}
	// Not Info: its disk figure walks every page of the file, which would count in the peak RSS.
	c.mu.RLock()
	n := c.g.count
	c.mu.RUnlock()
	probe := make([]float32, 1280)
	for j := range probe {
		probe[j] = float32(j%7) - 3
	}
	if _, err := c.Search(ctx, probe, SearchOptions{K: 10}); err != nil {
		t.Fatal(err)
	}
	r.FirstSearchS = time.Since(start).Seconds()
	r.PeakOpenMB = procstat.StatusMB("VmHWM")
	// Writes right away: while the re-ranking state loads they must not wait for the load.
	var probes []string
	write := func() float64 {
		id := fmt.Sprintf("scale-probe-%d", len(probes))
		v := slices.Clone(probe)
		v[len(probes)%len(v)] += 1
		w0 := time.Now()
		if err := c.Upsert(ctx, Item{ID: id, Vector: v}); err != nil {
			t.Fatal(err)
		}
		probes = append(probes, id)
		return float64(time.Since(w0).Microseconds()) / 1000
	}
	for len(r.WritesLoadingMS) < 5 && !c.Info().RerankReady {
		r.WritesLoadingMS = append(r.WritesLoadingMS, write())
	}
	for !c.Info().RerankReady {
		time.Sleep(100 * time.Millisecond)
	}
	r.RerankReadyS = time.Since(start).Seconds()
	for range 5 {
		r.WritesReadyMS = append(r.WritesReadyMS, write())
	}
	if _, err := c.Delete(ctx, probes...); err != nil {
		t.Fatal(err)
	}
	r.Items, r.Compressed, r.LoadedFrom, r.ItemsFrom = n, c.compressed(), c.loadedFrom, c.itemsFrom
	r.PeakRSSMB = procstat.StatusMB("VmHWM")
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	r.HeapBytes = ms.HeapAlloc
	m := c.g.memory()
	r.VectorBytes, r.GraphBytes = m.Vectors, m.Graph

	// Searches: the queries are 200 stored vectors nudged off themselves, truth by exact search.
	var queries [][]float32
	for i := 0; i < 200; i++ {
		v, err := c.Vector(fmt.Sprintf("sku-%08d", (i*7919)%n))
		if err != nil {
			t.Fatal(err)
		}
		for j := range v {
			v[j] += float32((j*31+i)%13-6) * 0.002
		}
		queries = append(queries, v)
	}
	runtime.LockOSThread()
	var got [][]Result
	cpu0 := procstat.ThreadCPU()
	for _, q := range queries {
		res, err := c.Search(ctx, q, SearchOptions{K: 10})
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, res)
	}
	r.QPS = float64(len(queries)) / (procstat.ThreadCPU() - cpu0)
	runtime.UnlockOSThread()
	hit := 0
	for i, q := range queries[:50] {
		ex, _ := c.Search(ctx, q, SearchOptions{K: 10, Exact: true})
		for _, a := range got[i] {
			for _, e := range ex {
				if a.ID == e.ID {
					hit++
				}
			}
		}
	}
	r.Recall = float64(hit) / 500

	// A snapshot of the whole graph (after one write makes it dirty), with the peak RSS reset.
	v, _ := c.Vector("sku-00000000")
	if err := c.Upsert(ctx, Item{ID: "snapshot-probe", Vector: v}); err != nil {
		t.Fatal(err)
	}
	r.RSSMB, r.RSSAnonMB = procstat.StatusMB("VmRSS"), procstat.StatusMB("RssAnon")
	procstat.ResetPeak()
	start = time.Now()
	if err := db.Snapshot(); err != nil {
		t.Fatal(err)
	}
	r.SnapshotS = time.Since(start).Seconds()
	r.SnapshotPeakMB = procstat.StatusMB("VmHWM")
	c.Delete(ctx, "snapshot-probe")
	db.Close()
	out, _ := json.Marshal(r)
	fmt.Printf("SCALE %s\n", out)
}
