package bench

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"time"

	"github.com/lookalike/lookalike/index"
	"github.com/lookalike/lookalike/internal/bench/synth"
	"github.com/lookalike/lookalike/internal/procstat"
)

// SearchOptions configure Search. Zero values: N 100000 synthetic vectors (ignored with Base: the
// file's size, or its first N), Queries 1000, Dim 1280, K 10, Efs 16..256, M index.DefaultM,
// EfConstruction index.DefaultEfConstruction, BuildWorkers GOMAXPROCS, Indexes both of ours.
type SearchOptions struct {
	N, Queries, Dim, K int
	Efs                []int
	// Base and QueriesFile are .fvecs files (TEXMEX); with Base empty the data is
	// synth.Clustered, written to Dir. With Base set and QueriesFile empty, the last Queries base
	// vectors become the queries.
	Base, QueriesFile string
	// Dir holds the generated vectors, the queries and the ground truth (truth.ivecs, for the
	// peers). Empty: a temporary directory, removed afterwards. Generated files already there with
	// the right size are reused.
	Dir string
	// Indexes picks our configurations: "float" (float32 vectors in memory) and "sq8" (SQ8 codes,
	// re-scored from the float vectors on disk: here the mapped .fvecs file). Default both.
	Indexes []string
	// BuildWorkers is how many goroutines link our graphs; SerialBuild also builds the first of
	// Indexes on one goroutine, to measure the parallel speed-up.
	BuildWorkers int
	SerialBuild  bool
	// FloatSameGraph measures float32 storage on the SQ8 build's graph (UseFloat) instead of a
	// float build of its own, when Indexes is just "sq8": at a million vectors that saves the
	// longest build. Its rows are "lookalike-samegraph".
	FloatSameGraph bool
	// Baseline adds github.com/coder/hnsw v0.6.1 rows (see baseline.go).
	Baseline bool
	// Peers runs scripts/peer_ann.py for each name ("hnswlib", "faiss") on the same files, after
	// ours have been freed (see peers.go).
	Peers             []string
	PeerScript        string // default: scripts/peer_ann.py under the working directory or its parents
	M, EfConstruction int
	// Repeat runs each ef's queries this many times (ours and the peers') and reports the fastest:
	// on a shared machine the slower runs measure the neighbours. Default 3.
	Repeat int
	Logger *slog.Logger
}

// SearchReport is Search's result: per index and ef the recall@K against exact search and
// single-thread QPS, and per build its time and memory.
type SearchReport struct {
	N      int     `json:"n"`
	Dim    int     `json:"dim"`
	K      int     `json:"k"`
	BuildS float64 `json:"build_s"` // the first of our builds
	Rows   []Row   `json:"rows"`
	Builds []Build `json:"builds"`
	// PeakRSSMB is this process's peak resident set (VmHWM) at the end: it includes the pages of
	// the mapped .fvecs file the builds and the ground truth touched.
	PeakRSSMB float64 `json:"peak_rss_mb"`

	lastGraph *index.Graph // the graph ourBuild built last
}

// Row is one measured configuration. BuildS is set on the first row of an index that had to be
// built (the baseline).
type Row struct {
	Index  string  `json:"index"` // "lookalike" | "lookalike-sq8" | "exact" | "coder/hnsw" | a peer's name
	Ef     int     `json:"ef"`
	Recall float64 `json:"recall"`
	QPS    float64 `json:"qps"`
	// CPUQPS is queries per second of the search thread's CPU time (0 where unmeasured).
	CPUQPS float64 `json:"cpu_qps,omitempty"`
	BuildS float64 `json:"build_s,omitempty"`
}

// Build is one index build: its time on Workers threads and what it holds in memory.
type Build struct {
	Index   string  `json:"index"`
	Workers int     `json:"workers"`
	Seconds float64 `json:"seconds"`
	// CPUSeconds is the CPU time the build used (user+system, all threads): on a shared machine
	// the ratio of two builds' CPU time is steadier than their wall-clock ratio.
	CPUSeconds float64 `json:"cpu_seconds"`
	// LinkSeconds and LinkCPUSeconds are the graph-linking part of Seconds and CPUSeconds (ours
	// only): storing the vectors before it runs on one thread whatever Workers is.
	LinkSeconds    float64 `json:"link_seconds,omitempty"`
	LinkCPUSeconds float64 `json:"link_cpu_seconds,omitempty"`
	// VectorBytes and GraphBytes are our index's own accounting (index.Graph.Memory); HeapBytes the
	// Go heap it added, measured; IndexMB a peer's resident-set growth while building.
	VectorBytes int64   `json:"vector_bytes,omitempty"`
	GraphBytes  int64   `json:"graph_bytes,omitempty"`
	HeapBytes   int64   `json:"heap_bytes,omitempty"`
	IndexMB     float64 `json:"index_mb,omitempty"`
	PeakRSSMB   float64 `json:"peak_rss_mb,omitempty"`
	// BytesPerItem is (VectorBytes+GraphBytes)/N, or IndexMB per item for a peer.
	BytesPerItem float64 `json:"bytes_per_item"`
}

// Search runs the benchmark: our HNSW with float and with SQ8 storage, built in parallel, then for
// each ef every query sequentially on one goroutine, reporting recall@K against brute force and
// queries per second; the peers build on the same files and are searched in turn with ours. It uses the in-memory index core
// (index.Graph, no bbolt) so that the numbers compare like for like with other in-memory indexes.
func Search(ctx context.Context, o SearchOptions) (SearchReport, error) {
	o = o.withDefaults()
	log := o.Logger
	d, err := prepare(ctx, o)
	defer d.close()
	if err != nil {
		return SearchReport{}, err
	}
	base, n, queries := d.base, d.n, d.queries
	rep := SearchReport{N: n, Dim: base.Dim(), K: o.K}
	rep.Rows = append(rep.Rows, Row{Index: "exact", Recall: 1, QPS: d.exactQPS})
	recall := func(got [][]uint32) float64 { return recallOf(d.truth, got) }

	// Every configuration of ours but the last is built, measured and freed on its own (a million
	// float vectors are 5 GB). The last (SQ8 by default) stays, the peers build theirs beside it,
	// and then each round runs every ef on ours and on each peer in turn: a shared machine's load
	// falls on all of them alike, and the fastest round counts.
	last := len(o.Indexes) - 1
	var kept *index.Graph
	var keptName string
	for i, kind := range o.Indexes {
		if i == last && o.SerialBuild && o.BuildWorkers != 1 {
			// The serial build: its recall at one ef shows the parallel one builds as good a graph.
			rows, err := ourBuild(ctx, &rep, base, n, kind, 1, queries, []int{index.DefaultEfSearch}, recall, o)
			for r := range rows {
				rows[r].Index += "-serial"
			}
			rep.Rows = append(rep.Rows, rows...)
			if err != nil {
				return rep, err
			}
		}
		efs := o.Efs
		if i == last {
			efs = nil
		}
		rows, err := ourBuild(ctx, &rep, base, n, kind, o.BuildWorkers, queries, efs, recall, o)
		rep.Rows = append(rep.Rows, rows...)
		if err != nil {
			return rep, err
		}
		if i == last {
			kept, keptName = rep.lastGraph, indexName(kind)
		}
		rep.lastGraph = nil
		freeMemory()
	}
	if o.Baseline {
		rows, err := coderBaseline(ctx, base, n, queries, o, recall, log)
		rep.Rows = append(rep.Rows, rows...)
		freeMemory()
		if err != nil {
			return rep, err
		}
	}
	best := newBestRows()
	save := func() { // the report so far, in case a later step cannot finish
		if o.Dir != "" {
			r := rep
			r.Rows = append(slices.Clone(rep.Rows), best.rows()...)
			if b, err := json.MarshalIndent(r, "", "  "); err == nil {
				os.WriteFile(filepath.Join(o.Dir, "report.json"), b, 0o644)
			}
		}
	}
	if o.FloatSameGraph && kept != nil && keptName == indexName("sq8") {
		kept.UseFloat()
		rows, err := sweep(ctx, kept, indexName("float")+"-samegraph", queries, o.K, o.Efs, o.Repeat, recall)
		rep.Rows = append(rep.Rows, rows...)
		kept.UseCompressed()
		freeMemory()
		if err != nil {
			return rep, err
		}
	}
	save()
	if err := runPeers(ctx, &rep, kept, keptName, d, recall, o, best, save); err != nil {
		return rep, err
	}
	for _, r := range best.rows() {
		log.Info("searched", "index", r.Index, "ef", r.Ef, "recall", r.Recall, "qps", r.QPS, "cpu_qps", r.CPUQPS)
		rep.Rows = append(rep.Rows, r)
	}
	rep.PeakRSSMB = procstat.StatusMB("VmHWM")
	return rep, nil
}

// benchData is a run's inputs: the mapped base vectors (the first n count), the queries, their
// exact neighbours (also written to truthFile for the peers) and brute force's QPS.
type benchData struct {
	files     benchFiles
	base      *FvecsFile
	n         int
	queries   [][]float32
	truth     [][]uint32
	truthFile string
	exactQPS  float64
	cleanup   func()
}

func (d *benchData) close() {
	if d.base != nil {
		d.base.Close()
	}
	if d.cleanup != nil {
		d.cleanup()
	}
}

// prepare finds or makes the vectors and computes the ground truth.
func prepare(ctx context.Context, o SearchOptions) (*benchData, error) {
	d := &benchData{}
	var err error
	if d.files, d.cleanup, err = searchFiles(o); err != nil {
		return d, err
	}
	if d.base, err = OpenFvecs(d.files.base); err != nil {
		return d, err
	}
	d.n = d.base.Len()
	if d.files.n > 0 {
		d.n = min(d.n, d.files.n)
	}
	if d.queries, err = ReadFvecs(d.files.queries); err != nil {
		return d, err
	}
	if len(d.queries) == 0 || d.n == 0 {
		return d, fmt.Errorf("bench: no base vectors or queries")
	}
	for i, q := range d.queries {
		if len(q) != d.base.Dim() {
			return d, fmt.Errorf("bench: query %d has %d dims, base %d", i, len(q), d.base.Dim())
		}
	}
	if d.truth, d.exactQPS, err = groundTruth(ctx, d.base, d.n, d.queries, o.K); err != nil {
		return d, err
	}
	o.Logger.Info("ground truth", "queries", len(d.queries), "exact_qps", d.exactQPS)
	d.truthFile = filepath.Join(d.files.dir, "truth.ivecs")
	return d, WriteIvecs(d.truthFile, d.truth)
}

// ourBuild builds one configuration of ours, records the build, and sweeps efs (Repeat runs each,
// the fastest counts). The graph is left in rep.lastGraph.
func ourBuild(ctx context.Context, rep *SearchReport, base *FvecsFile, n int, kind string, workers int, queries [][]float32, efs []int, recall func([][]uint32) float64, o SearchOptions) ([]Row, error) {
	g, b, err := buildOurs(ctx, base, n, kind, workers, o)
	if err != nil {
		return nil, err
	}
	rep.Builds = append(rep.Builds, b)
	if rep.BuildS == 0 {
		rep.BuildS = b.Seconds
	}
	o.Logger.Info("built", "index", b.Index, "workers", workers, "seconds", b.Seconds, "cpu_s", b.CPUSeconds, "bytes_per_item", b.BytesPerItem, "levels", g.Levels())
	rep.lastGraph = g
	if len(efs) == 0 {
		return nil, nil
	}
	rows, err := sweep(ctx, g, b.Index, queries, o.K, efs, o.Repeat, recall)
	for _, r := range rows {
		o.Logger.Info("searched", "index", r.Index, "ef", r.Ef, "recall", r.Recall, "qps", r.QPS, "cpu_qps", r.CPUQPS)
	}
	return rows, err
}

// runPeers builds each peer in turn beside kept (one at a time: at a million vectors each holds
// over 5 GB) and interleaves their searches with kept's.
func runPeers(ctx context.Context, rep *SearchReport, kept *index.Graph, keptName string, d *benchData, recall func([][]uint32) float64, o SearchOptions, best *bestRows, save func()) error {
	for _, name := range o.Peers {
		p, err := startPeer(ctx, name, d.files.base, d.n, d.files.queries, d.truthFile, o)
		if err != nil {
			return err
		}
		rep.Builds = append(rep.Builds, p.build)
		err = interleaved(ctx, kept, keptName, []*peerProc{p}, d.queries, recall, o, best)
		p.close()
		if err != nil {
			return err
		}
		save()
	}
	if len(o.Peers) == 0 {
		return interleaved(ctx, kept, keptName, nil, d.queries, recall, o, best)
	}
	return nil
}

// bestRows keeps the fastest run of each index at each ef, in first-seen order.
type bestRows struct {
	order []rowKey
	best  map[rowKey]Row
}

type rowKey struct {
	index string
	ef    int
}

func newBestRows() *bestRows { return &bestRows{best: map[rowKey]Row{}} }

func (b *bestRows) keep(r Row) {
	k := rowKey{r.Index, r.Ef}
	x, ok := b.best[k]
	if !ok {
		b.order = append(b.order, k)
		x = r
	}
	x.QPS, x.CPUQPS = max(x.QPS, r.QPS), max(x.CPUQPS, r.CPUQPS)
	b.best[k] = x
}

// rows lists the kept rows, grouped by index in first-seen order.
func (b *bestRows) rows() []Row {
	rank := map[string]int{}
	for _, k := range b.order {
		if _, ok := rank[k.index]; !ok {
			rank[k.index] = len(rank)
		}
	}
	order := slices.Clone(b.order)
	slices.SortStableFunc(order, func(x, y rowKey) int { return cmp.Compare(rank[x.index], rank[y.index]) })
	out := make([]Row, len(order))
	for i, k := range order {
		out[i] = b.best[k]
	}
	return out
}

// interleaved runs Repeat rounds of every ef on g (when not nil) and on each peer in turn, keeping
// each one's fastest run per ef in best.
func interleaved(ctx context.Context, g *index.Graph, name string, peers []*peerProc, queries [][]float32, recall func([][]uint32) float64, o SearchOptions, best *bestRows) error {
	for range o.Repeat {
		for _, ef := range o.Efs {
			if g != nil {
				rows, err := sweep(ctx, g, name, queries, o.K, []int{ef}, 1, recall)
				if err != nil {
					return err
				}
				best.keep(rows[0])
			}
			for _, p := range peers {
				r, err := p.search(ef)
				if err != nil {
					return err
				}
				best.keep(r)
			}
		}
	}
	return nil
}

// indexName is a configuration's name in the report.
func indexName(kind string) string {
	if kind == "sq8" {
		return "lookalike-sq8"
	}
	return "lookalike"
}

// buildOurs builds our graph over the first n base vectors with the given storage.
func buildOurs(ctx context.Context, base *FvecsFile, n int, kind string, workers int, o SearchOptions) (*index.Graph, Build, error) {
	b := Build{Index: indexName(kind), Workers: workers}
	freeMemory()
	heap0 := heapBytes()
	start, cpu0 := time.Now(), procstat.ProcessCPU()
	g := index.NewGraph(base.Dim(), o.M, o.EfConstruction, 42)
	g.Reserve(n)
	if kind == "sq8" {
		sample := make([][]float32, 0, index.SQ8TrainAt)
		for i := 0; i < min(n, index.SQ8TrainAt); i++ {
			sample = append(sample, base.Row(i))
		}
		fetch := func(i uint32, dst []float32) bool {
			copy(dst, base.Row(int(i)))
			normalizeInPlace(dst)
			return true
		}
		if err := g.Compress(sample, fetch); err != nil {
			return nil, b, fmt.Errorf("bench: SQ8 training: %w", err)
		}
	}
	// Stored in chunks on the build's goroutines (a 1-thread build is one thread throughout).
	rows := make([][]float32, 0, 65536)
	for lo := 0; lo < n; lo += cap(rows) {
		if ctx.Err() != nil {
			return nil, b, ctx.Err()
		}
		rows = rows[:0]
		for i := lo; i < min(n, lo+cap(rows)); i++ {
			rows = append(rows, base.Row(i))
		}
		if err := g.AppendAll(rows, workers); err != nil {
			return nil, b, fmt.Errorf("bench: base vectors from %d: %w", lo, err)
		}
	}
	linkStart, linkCPU0 := time.Now(), procstat.ProcessCPU()
	if err := g.Link(ctx, workers); err != nil {
		return nil, b, err
	}
	b.LinkSeconds, b.LinkCPUSeconds = time.Since(linkStart).Seconds(), procstat.ProcessCPU()-linkCPU0
	b.Seconds, b.CPUSeconds = time.Since(start).Seconds(), procstat.ProcessCPU()-cpu0
	freeMemory()
	b.HeapBytes = int64(heapBytes()) - int64(heap0)
	m := g.Memory()
	b.VectorBytes, b.GraphBytes = m.Vectors, m.Graph
	b.BytesPerItem = float64(m.Vectors+m.Graph) / float64(n)
	b.PeakRSSMB = procstat.StatusMB("VmHWM")
	return g, b, nil
}

// sweep runs every query once per ef on one goroutine, Repeat times, and keeps the fastest run by
// wall clock (QPS) and by the thread's CPU time (CPUQPS).
func sweep(ctx context.Context, g *index.Graph, name string, queries [][]float32, k int, efs []int, repeat int, recall func([][]uint32) float64) ([]Row, error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var rows []Row
	got := make([][]uint32, len(queries))
	for _, ef := range efs {
		row := Row{Index: name, Ef: ef}
		for range repeat {
			start, cpu0 := time.Now(), procstat.ThreadCPU()
			for i, q := range queries {
				var err error
				if got[i], err = g.Search(q, k, ef); err != nil {
					return rows, fmt.Errorf("bench: query %d: %w", i, err)
				}
			}
			wall, cpu := time.Since(start).Seconds(), procstat.ThreadCPU()-cpu0
			row.QPS = max(row.QPS, float64(len(queries))/wall)
			if cpu > 0 {
				row.CPUQPS = max(row.CPUQPS, float64(len(queries))/cpu)
			}
			if ctx.Err() != nil {
				return rows, ctx.Err()
			}
		}
		row.Recall = recall(got)
		rows = append(rows, row)
	}
	return rows, nil
}

func (o SearchOptions) withDefaults() SearchOptions {
	if o.Queries <= 0 {
		o.Queries = 1000
	}
	if o.Dim <= 0 {
		o.Dim = 1280
	}
	if o.K <= 0 {
		o.K = 10
	}
	if len(o.Efs) == 0 {
		o.Efs = []int{16, 32, 64, 128, 256}
	}
	if o.M <= 0 {
		o.M = index.DefaultM
	}
	if o.EfConstruction <= 0 {
		o.EfConstruction = index.DefaultEfConstruction
	}
	if o.Repeat <= 0 {
		o.Repeat = 3
	}
	if o.BuildWorkers <= 0 {
		o.BuildWorkers = runtime.GOMAXPROCS(0)
	}
	if len(o.Indexes) == 0 {
		o.Indexes = []string{"float", "sq8"}
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o
}

// benchFiles are the inputs of one run: base vectors (the first n of them when n > 0), queries,
// and the directory the ground truth goes to.
type benchFiles struct {
	base, queries, dir string
	n                  int
}

// searchFiles finds or makes the .fvecs files.
func searchFiles(o SearchOptions) (benchFiles, func(), error) {
	f := benchFiles{dir: o.Dir, n: o.N}
	cleanup := func() {}
	if f.dir == "" {
		d, err := os.MkdirTemp("", "lookalike-bench-")
		if err != nil {
			return f, cleanup, fmt.Errorf("bench: %w", err)
		}
		f.dir, cleanup = d, func() { os.RemoveAll(d) }
	} else if err := os.MkdirAll(f.dir, 0o755); err != nil {
		return f, cleanup, fmt.Errorf("bench: %w", err)
	}
	switch {
	case o.Base != "" && o.QueriesFile != "":
		f.base, f.queries = o.Base, o.QueriesFile
	case o.Base != "":
		// The last Queries vectors of the file are the queries; the base is what precedes them.
		all, err := OpenFvecs(o.Base)
		if err != nil {
			return f, cleanup, err
		}
		defer all.Close()
		nq := min(o.Queries, all.Len()/2)
		f.base, f.queries = o.Base, filepath.Join(f.dir, "queries.fvecs")
		qs := make([][]float32, nq)
		for i := range qs {
			qs[i] = all.Row(all.Len() - nq + i)
		}
		if err := WriteFvecs(f.queries, qs); err != nil {
			return f, cleanup, err
		}
		if f.n <= 0 || f.n > all.Len()-nq {
			f.n = all.Len() - nq
		}
	default:
		if f.n <= 0 {
			f.n = 100000
		}
		f.base = filepath.Join(f.dir, fmt.Sprintf("synth-%d-%d.fvecs", f.n, o.Dim))
		f.queries = filepath.Join(f.dir, fmt.Sprintf("synth-%d-%d-queries-%d.fvecs", f.n, o.Dim, o.Queries))
		if err := writeSynth(f.base, f.queries, f.n, o.Queries, o.Dim); err != nil {
			return f, cleanup, err
		}
	}
	return f, cleanup, nil
}

// writeSynth streams synth.Clustered(n+nq, dim, n/500 clusters) to a base and a query file, unless
// both already exist with the right sizes.
func writeSynth(basePath, queryPath string, n, nq, dim int) error {
	row := int64(4 + 4*dim)
	if a, err := os.Stat(basePath); err == nil && a.Size() == int64(n)*row {
		if b, err := os.Stat(queryPath); err == nil && b.Size() == int64(nq)*row {
			return nil
		}
	}
	bw, err := createFvecs(basePath)
	if err != nil {
		return err
	}
	qw, err := createFvecs(queryPath)
	if err != nil {
		bw.close()
		return err
	}
	i := 0
	err = synth.ClusteredEach(n+nq, dim, max(1, n/500), 1.0, 1, func(v []float32) error {
		w := bw
		if i >= n {
			w = qw
		}
		i++
		return w.write(v)
	})
	if cerr := bw.close(); err == nil {
		err = cerr
	}
	if cerr := qw.close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(basePath)
		os.Remove(queryPath)
		return fmt.Errorf("bench: generate vectors: %w", err)
	}
	return nil
}

// recallOf is the mean recall of got against truth: the share of each truth list found in the
// matching got list.
func recallOf(truth, got [][]uint32) float64 {
	hit, tot := 0, 0
	for i, want := range truth {
		set := make(map[uint32]bool, len(want))
		for _, x := range want {
			set[x] = true
		}
		for _, x := range got[i] {
			if set[x] {
				hit++
			}
		}
		tot += len(want)
	}
	return float64(hit) / float64(max(tot, 1))
}

// freeMemory returns what earlier builds left to the OS, so that the next one is measured alone.
func freeMemory() {
	runtime.GC()
	debug.FreeOSMemory()
}

func heapBytes() uint64 {
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}
