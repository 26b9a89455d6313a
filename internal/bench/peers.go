package bench

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
)

// The peers are other HNSW implementations run on the same files in the same run:
// hnswlib's C++ (Debian python3-hnswlib) and FAISS IndexHNSWFlat (python3-faiss), driven by
// scripts/peer_ann.py (`scripts/setup --peers` installs them). They build with BuildWorkers
// threads and search the queries as one batch on one thread.

// DebianPython is Debian's interpreter: python3-numpy, python3-hnswlib and python3-faiss are
// installed for it, not for a pyenv shim that may come first on PATH.
const DebianPython = "/usr/bin/python3"

// peerBuilt is the first line a peer prints: its build.
type peerBuilt struct {
	Peer      string  `json:"peer"`
	N         int     `json:"n"`
	BuildS    float64 `json:"build_s"`
	BuildCPU  float64 `json:"build_cpu_s"`
	IndexMB   float64 `json:"index_mb"`
	PeakRSSMB float64 `json:"peak_rss_mb"`
}

// peerRow is each later line: one batch of the queries at one ef.
type peerRow struct {
	Ef     int     `json:"ef"`
	Recall float64 `json:"recall"`
	QPS    float64 `json:"qps"`
	CPUQPS float64 `json:"cpu_qps"`
}

// peerProc is a running peer (scripts/peer_ann.py --serve) holding its built index: it answers
// "EF" lines with one timed batch, so that its runs interleave with ours.
type peerProc struct {
	name  string
	cmd   *exec.Cmd
	in    io.WriteCloser
	out   *bufio.Scanner
	build Build
}

// startPeer starts a peer and waits for its build.
func startPeer(ctx context.Context, name, base string, n int, queries, truth string, o SearchOptions) (*peerProc, error) {
	script := o.PeerScript
	if script == "" {
		var err error
		if script, err = findPeerScript(); err != nil {
			return nil, err
		}
	}
	args := []string{script, name, base, queries, truth, "--serve", "--n", strconv.Itoa(n), "--M", strconv.Itoa(o.M),
		"--efc", strconv.Itoa(o.EfConstruction), "--k", strconv.Itoa(o.K), "--build-threads", strconv.Itoa(o.BuildWorkers)}
	o.Logger.Info("peer", "name", name, "cmd", DebianPython+" "+strings.Join(args, " "))
	p := &peerProc{name: name, cmd: exec.CommandContext(ctx, DebianPython, args...)}
	p.cmd.Stderr = os.Stderr
	var err error
	if p.in, err = p.cmd.StdinPipe(); err != nil {
		return nil, fmt.Errorf("bench: peer %s: %w", name, err)
	}
	stdout, err := p.cmd.StdoutPipe()
	if err != nil {
		return nil, fmt.Errorf("bench: peer %s: %w", name, err)
	}
	if err := p.cmd.Start(); err != nil {
		return nil, fmt.Errorf("bench: peer %s: %w (scripts/setup --peers installs it)", name, err)
	}
	p.out = bufio.NewScanner(stdout)
	var b peerBuilt
	if err := p.read(&b); err != nil {
		p.close()
		return nil, err
	}
	p.build = Build{Index: name, Workers: o.BuildWorkers, Seconds: b.BuildS, CPUSeconds: b.BuildCPU, IndexMB: b.IndexMB,
		PeakRSSMB: b.PeakRSSMB, BytesPerItem: b.IndexMB * (1 << 20) / float64(max(b.N, 1))}
	o.Logger.Info("built", "index", name, "seconds", b.BuildS, "cpu_s", b.BuildCPU, "index_mb", b.IndexMB)
	return p, nil
}

// read decodes the peer's next output line into v.
func (p *peerProc) read(v any) error {
	if !p.out.Scan() {
		err := p.out.Err()
		if err == nil {
			err = io.ErrUnexpectedEOF
		}
		return fmt.Errorf("bench: peer %s ended: %w (scripts/setup --peers installs it)", p.name, err)
	}
	if err := json.Unmarshal(p.out.Bytes(), v); err != nil {
		return fmt.Errorf("bench: peer %s output %q: %w", p.name, p.out.Text(), err)
	}
	return nil
}

// search runs the queries once at ef on the peer.
func (p *peerProc) search(ef int) (Row, error) {
	if _, err := fmt.Fprintf(p.in, "%d\n", ef); err != nil {
		return Row{}, fmt.Errorf("bench: peer %s: %w", p.name, err)
	}
	var r peerRow
	if err := p.read(&r); err != nil {
		return Row{}, err
	}
	return Row{Index: p.name, Ef: r.Ef, Recall: r.Recall, QPS: r.QPS, CPUQPS: r.CPUQPS}, nil
}

// close ends the peer (its stdin closes) and waits for it.
func (p *peerProc) close() {
	p.in.Close()
	p.cmd.Wait()
}

// findPeerScript looks for scripts/peer_ann.py in the working directory and its parents.
func findPeerScript() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("bench: %w", err)
	}
	for {
		p := filepath.Join(dir, "scripts", "peer_ann.py")
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
		up := filepath.Dir(dir)
		if up == dir {
			return "", fmt.Errorf("bench: scripts/peer_ann.py not found from the working directory (run from the repository)")
		}
		dir = up
	}
}
