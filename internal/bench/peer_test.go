package bench

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/lookalike/lookalike/internal/bench/synth"
)

// TestWriteBenchFvecs writes the synthetic benchmark data as .fvecs for
// runs against other implementations. Enabled by
// LOOKALIKE_WRITE_FVECS=DIR; sizes from LOOKALIKE_BENCH_N (100000) and
// LOOKALIKE_BENCH_Q (1000), 1280 dims.
func TestWriteBenchFvecs(t *testing.T) {
	dir := os.Getenv("LOOKALIKE_WRITE_FVECS")
	if dir == "" {
		t.Skip("set LOOKALIKE_WRITE_FVECS=DIR")
	}
	n, nq := envInt("LOOKALIKE_BENCH_N", 100000), envInt("LOOKALIKE_BENCH_Q", 1000)
	all := synth.Clustered(n+nq, 1280, max(1, n/500), 1.0, 1)
	if err := WriteFvecs(filepath.Join(dir, "base.fvecs"), all[:n]); err != nil {
		t.Fatal(err)
	}
	if err := WriteFvecs(filepath.Join(dir, "queries.fvecs"), all[n:]); err != nil {
		t.Fatal(err)
	}
}

// TestSearchPeers runs both peers (scripts/peer_ann.py) on tiny data; skipped where Debian's
// python3-hnswlib and python3-faiss are missing (scripts/setup --peers).
func TestSearchPeers(t *testing.T) {
	if exec.Command(DebianPython, "-c", "import hnswlib, faiss, numpy").Run() != nil {
		t.Skip("python3-hnswlib / python3-faiss not installed (scripts/setup --peers)")
	}
	rep, err := Search(ctx, SearchOptions{N: 3000, Queries: 50, Dim: 48, Efs: []int{16, 64}, EfConstruction: 64,
		Dir: t.TempDir(), Indexes: []string{"sq8"}, Peers: []string{"hnswlib", "faiss"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, peer := range []string{"hnswlib", "faiss"} {
		if r := best(rep.Rows, peer); r.Recall < 0.95 {
			t.Errorf("%s: best recall %.3f (%+v)", peer, r.Recall, rep.Rows)
		}
	}
	if len(rep.Builds) != 3 || rep.Builds[1].Seconds <= 0 {
		t.Errorf("builds %+v", rep.Builds)
	}
}

// best is the row of index with the highest recall.
func best(rows []Row, index string) Row {
	var b Row
	for _, r := range rows {
		if r.Index == index && r.Recall >= b.Recall {
			b = r
		}
	}
	return b
}

// BenchmarkPeerANN runs ours (float and SQ8) and both peers on the same .fvecs files in one run,
// building on all cores and searching on one, M=16, efConstruction=200, and prints the ef sweeps
// and the QPS ratios at recall@10 >= 0.99.
//
//	LOOKALIKE_BENCH_BASE=base.fvecs LOOKALIKE_BENCH_QUERIES=queries.fvecs \
//	go test -run '^$' -bench PeerANN -benchtime 1x -timeout 60m ./internal/bench/
func BenchmarkPeerANN(b *testing.B) {
	base, queries := os.Getenv("LOOKALIKE_BENCH_BASE"), os.Getenv("LOOKALIKE_BENCH_QUERIES")
	if base == "" || queries == "" {
		b.Skip("set LOOKALIKE_BENCH_BASE and LOOKALIKE_BENCH_QUERIES")
	}
	for i := 0; i < b.N; i++ {
		rep, err := Search(ctx, SearchOptions{Base: base, QueriesFile: queries, Efs: []int{10, 20, 40, 80, 160, 320},
			M: 16, EfConstruction: 200, Peers: []string{"hnswlib", "faiss"}})
		if err != nil {
			b.Fatal(err)
		}
		printReport(b, rep)
		hn := bestQPS(rep.Rows, "hnswlib", 0.99)
		for _, ours := range []string{"lookalike", "lookalike-sq8"} {
			if q := bestQPS(rep.Rows, ours, 0.99); hn > 0 {
				fmt.Printf("QPS at recall@10 >= 0.99: %s %.1f, hnswlib %.1f, ratio %.2f (target >= 2)\n", ours, q, hn, q/hn)
			}
		}
	}
}

// bestQPS is the highest QPS among rows of index reaching minRecall.
func bestQPS(rows []Row, index string, minRecall float64) float64 {
	best := 0.0
	for _, r := range rows {
		if r.Index == index && r.Recall >= minRecall && r.QPS > best {
			best = r.QPS
		}
	}
	return best
}
