package bench

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/lookalike/lookalike/internal/bench/synth"
)

// TestWriteBenchFvecs writes the synthetic benchmark data as .fvecs for
// runs against other implementations (the Node peer). Enabled by
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

type peerReport struct {
	Peer   string  `json:"peer"`
	N      int     `json:"n"`
	Dim    int     `json:"dim"`
	BuildS float64 `json:"build_s"`
	K      int     `json:"k"`
	Rows   []struct {
		Ef     int     `json:"ef"`
		Recall float64 `json:"recall"`
		QPS    float64 `json:"qps"`
	} `json:"rows"`
}

// BenchmarkPeerANN runs ours and the Node peer (hnswlib-node, the reference
// C++ HNSW) on the same .fvecs files in one run, one thread each, M=16,
// efConstruction=200, and prints both ef sweeps and the QPS ratio at
// recall@10 >= 0.99.
//
//	LOOKALIKE_BENCH_BASE=base.fvecs LOOKALIKE_BENCH_QUERIES=queries.fvecs \
//	LOOKALIKE_PEER_DIR=/path/to/installed/peer \
//	go test -run '^$' -bench PeerANN -benchtime 1x -timeout 60m ./internal/bench/
func BenchmarkPeerANN(b *testing.B) {
	base, queries := os.Getenv("LOOKALIKE_BENCH_BASE"), os.Getenv("LOOKALIKE_BENCH_QUERIES")
	if base == "" || queries == "" {
		b.Skip("set LOOKALIKE_BENCH_BASE and LOOKALIKE_BENCH_QUERIES")
	}
	efs := []int{10, 20, 40, 80, 160, 320}
	efStr := make([]string, len(efs))
	for i, e := range efs {
		efStr[i] = strconv.Itoa(e)
	}
	for i := 0; i < b.N; i++ {
		rep, err := Search(ctx, SearchOptions{Base: base, QueriesFile: queries, Efs: efs, M: 16, EfConstruction: 200})
		if err != nil {
			b.Fatal(err)
		}
		printReport(b, rep)
		ours := bestQPS(rep.Rows, "lookalike", 0.99)
		peerDir := os.Getenv("LOOKALIKE_PEER_DIR")
		if peerDir == "" {
			continue
		}
		absB, _ := filepath.Abs(base)
		absQ, _ := filepath.Abs(queries)
		cmd := exec.Command("node", "peer.mjs", "ann", absB, absQ, "--M", "16", "--efc", "200", "--k", "10", "--ef", strings.Join(efStr, ","))
		cmd.Dir = peerDir
		cmd.Stderr = os.Stderr
		out, err := cmd.Output()
		if err != nil {
			b.Fatalf("peer: %v", err)
		}
		var pr peerReport
		if err := json.Unmarshal(out[strings.LastIndexByte(strings.TrimSpace(string(out)), '\n')+1:], &pr); err != nil {
			b.Fatalf("peer output %q: %v", out, err)
		}
		fmt.Printf("hnswlib-node n=%d dim=%d build_s=%.1f (ours %.1f)\n", pr.N, pr.Dim, pr.BuildS, rep.BuildS)
		var rows []Row
		for _, r := range pr.Rows {
			rows = append(rows, Row{Index: "hnswlib", Ef: r.Ef, Recall: r.Recall, QPS: r.QPS})
			fmt.Printf("%-11s ef=%-4d recall@10=%.4f qps=%9.1f\n", "hnswlib", r.Ef, r.Recall, r.QPS)
		}
		theirs := bestQPS(rows, "hnswlib", 0.99)
		if theirs > 0 {
			fmt.Printf("QPS at recall@10 >= 0.99: ours %.1f, hnswlib %.1f, ratio %.2f (target >= 0.8)\n", ours, theirs, ours/theirs)
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
