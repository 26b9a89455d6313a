package bench

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"testing"

	"github.com/lookalike/lookalike/internal/bench/synth"
)

var ctx = context.Background()

func TestFvecsRoundTrip(t *testing.T) {
	dir := t.TempDir()
	vecs := synth.Clustered(10, 7, 2, 1, 1)
	p := filepath.Join(dir, "a.fvecs")
	if err := WriteFvecs(p, vecs); err != nil {
		t.Fatal(err)
	}
	got, err := ReadFvecs(p)
	if err != nil || !reflect.DeepEqual(got, vecs) {
		t.Fatalf("round trip: %v", err)
	}
	b, _ := os.ReadFile(p)
	for _, bad := range [][]byte{b[:len(b)-1], b[:2], append([]byte{0, 0, 0, 0}, b...), append(append([]byte{}, b...), 3, 0, 0, 0, 1, 2, 3, 4)} {
		os.WriteFile(p, bad, 0o600)
		if _, err := ReadFvecs(p); err == nil {
			t.Errorf("corrupt fvecs (%d bytes) accepted", len(bad))
		}
	}
}

// TestSearchSmall runs the benchmark end to end on tiny data, fvecs
// input, both of our storages, the serial build and the coder/hnsw baseline included.
func TestSearchSmall(t *testing.T) {
	dir := t.TempDir()
	all := synth.Clustered(2100, 64, 4, 1, 5)
	WriteFvecs(filepath.Join(dir, "b.fvecs"), all[:2000])
	WriteFvecs(filepath.Join(dir, "q.fvecs"), all[2000:])
	rep, err := Search(ctx, SearchOptions{Base: filepath.Join(dir, "b.fvecs"), QueriesFile: filepath.Join(dir, "q.fvecs"),
		Efs: []int{10, 64}, Baseline: true, EfConstruction: 100, SerialBuild: true, BuildWorkers: 2})
	if err != nil {
		t.Fatal(err)
	}
	if rep.N != 2000 || rep.Dim != 64 || len(rep.Rows) != 8 || len(rep.Builds) != 3 {
		t.Fatalf("report %+v", rep)
	}
	for _, r := range rep.Rows {
		t.Logf("%-18s ef=%-3d recall=%.3f qps=%.0f", r.Index, r.Ef, r.Recall, r.QPS)
		if (r.Index == "lookalike" || r.Index == "lookalike-sq8") && r.Ef == 64 && r.Recall < 0.98 {
			t.Errorf("%s recall %.3f", r.Index, r.Recall)
		}
	}
	for _, b := range rep.Builds {
		t.Logf("%+v", b)
		if b.Seconds <= 0 || b.BytesPerItem <= 0 {
			t.Errorf("build %+v", b)
		}
	}
	if sq, fl := rep.Builds[2], rep.Builds[0]; sq.Index != "lookalike-sq8" || sq.VectorBytes*3 > fl.VectorBytes {
		t.Errorf("SQ8 build holds %d vector bytes, float %d", sq.VectorBytes, fl.VectorBytes)
	}
}

// TestSearchSynthetic generates its data (streamed to files in Dir) and reuses it on a second run.
func TestSearchSynthetic(t *testing.T) {
	dir := t.TempDir()
	o := SearchOptions{N: 1500, Queries: 20, Dim: 32, Efs: []int{32}, EfConstruction: 64, Dir: dir, Indexes: []string{"sq8"}}
	rep, err := Search(ctx, o)
	if err != nil || rep.N != 1500 || len(rep.Rows) != 2 || rep.Rows[1].Recall < 0.9 {
		t.Fatalf("%+v %v", rep, err)
	}
	files, _ := filepath.Glob(filepath.Join(dir, "*.fvecs"))
	st, _ := os.Stat(files[0])
	if _, err := Search(ctx, o); err != nil {
		t.Fatal(err)
	}
	if st2, _ := os.Stat(files[0]); !st2.ModTime().Equal(st.ModTime()) {
		t.Error("generated vectors were not reused")
	}
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// BenchmarkSearchReport prints, in one run, build time and recall@10/QPS for
// ours (ef sweep), exact search and coder/hnsw v0.6.1 on synthetic clustered
// 1280-d unit vectors. LOOKALIKE_BENCH_N (default 100000) and
// LOOKALIKE_BENCH_Q (default 1000) size it; LOOKALIKE_BENCH_BASELINE=0 skips
// coder/hnsw.
//
//	go test -run '^$' -bench SearchReport -benchtime 1x -timeout 60m ./internal/bench/
func BenchmarkSearchReport(b *testing.B) {
	for i := 0; i < b.N; i++ {
		rep, err := Search(ctx, SearchOptions{
			N: envInt("LOOKALIKE_BENCH_N", 100000), Queries: envInt("LOOKALIKE_BENCH_Q", 1000),
			Baseline: os.Getenv("LOOKALIKE_BENCH_BASELINE") != "0",
		})
		if err != nil {
			b.Fatal(err)
		}
		printReport(b, rep)
	}
}

func printReport(b *testing.B, rep SearchReport) {
	var exact float64
	fmt.Printf("n=%d dim=%d k=%d build_s=%.1f\n", rep.N, rep.Dim, rep.K, rep.BuildS)
	for _, r := range rep.Rows {
		if r.Index == "exact" {
			exact = r.QPS
		}
		fmt.Printf("%-11s ef=%-4d recall@%d=%.4f qps=%9.1f  x%.1f exact", r.Index, r.Ef, rep.K, r.Recall, r.QPS, r.QPS/exact)
		if r.BuildS > 0 {
			fmt.Printf("  build_s=%.1f", r.BuildS)
		}
		fmt.Println()
	}
}

// TestSearchFloatSameGraph: float32 storage measured on the SQ8 build's graph finds what float
// storage finds.
func TestSearchFloatSameGraph(t *testing.T) {
	dir := t.TempDir()
	rep, err := Search(ctx, SearchOptions{N: 1500, Queries: 30, Dim: 32, Efs: []int{48}, EfConstruction: 64, Dir: dir,
		Indexes: []string{"sq8"}, FloatSameGraph: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Rows) != 3 || rep.Rows[1].Index != "lookalike-samegraph" || rep.Rows[1].Recall < 0.95 || rep.Rows[2].Index != "lookalike-sq8" {
		t.Fatalf("%+v", rep.Rows)
	}
	if _, err := os.Stat(filepath.Join(dir, "report.json")); err != nil {
		t.Error("no report.json in Dir")
	}
}
