package index

import (
	"bufio"
	"fmt"
	"hash/fnv"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

const crashEnv = "LOOKALIKE_INDEX_CRASH_CHILD"

const crashDim = 16

// crashVector derives an item's vector from its id, so the parent can check
// what the child wrote without talking to it.
func crashVector(id string) []float32 {
	h := fnv.New64a()
	h.Write([]byte(id))
	rng := rand.New(rand.NewSource(int64(h.Sum64())))
	v := make([]float32, crashDim)
	for i := range v {
		v[i] = float32(rng.NormFloat64())
	}
	return v
}

// TestCrashChild is the child process of TestCrashRecovery: it upserts
// (and now and then deletes) forever with fsync on, printing "ok ID" for
// every acknowledged upsert and "del ID" for every acknowledged delete.
func TestCrashChild(t *testing.T) {
	dir := os.Getenv(crashEnv)
	if dir == "" {
		t.Skip("child process of TestCrashRecovery")
	}
	db, err := Open(dir, &Options{SnapshotInterval: 50 * time.Millisecond, ExactThreshold: 50})
	if err != nil {
		fmt.Println("open error:", err)
		os.Exit(2)
	}
	c, err := db.OpenCollection("crash", CollectionConfig{Fingerprint: "crash-model", Dims: crashDim, EfConstruction: 40})
	if err != nil {
		fmt.Println("collection error:", err)
		os.Exit(2)
	}
	round := os.Getenv(crashEnv + "_ROUND")
	rng := rand.New(rand.NewSource(time.Now().UnixNano()))
	out := bufio.NewWriter(os.Stdout)
	for i := 0; ; i++ {
		n := 1 + rng.Intn(20)
		items := make([]Item, n)
		for j := range items {
			id := fmt.Sprintf("r%s-%d-%d", round, i, j)
			items[j] = Item{ID: id, Vector: crashVector(id), Metadata: []byte(`{"round":"` + round + `"}`), Thumbnail: []byte(id)}
		}
		if err := c.Upsert(ctx, items...); err != nil {
			fmt.Println("upsert error:", err)
			os.Exit(2)
		}
		for _, it := range items {
			fmt.Fprintln(out, "ok", it.ID)
		}
		if i%7 == 3 {
			id := fmt.Sprintf("r%s-%d-0", round, i-1)
			fmt.Fprintln(out, "deleting", id) // outcome unknown if killed now
			out.Flush()
			if _, err := c.Delete(ctx, id); err != nil {
				fmt.Println("delete error:", err)
				os.Exit(2)
			}
			fmt.Fprintln(out, "del", id)
		}
		out.Flush() // after the write is acknowledged, never before
	}
}

// TestCrashRecovery kill -9s a writing child at random moments; after each
// kill every acknowledged item must be present, correct and searchable, no
// acknowledged delete may come back, and bbolt's consistency check must pass.
func TestCrashRecovery(t *testing.T) {
	if os.Getenv(crashEnv) != "" {
		t.Skip("in child")
	}
	rounds := 10
	if testing.Short() {
		rounds = 3
	}
	dir := t.TempDir()
	acked := map[string]bool{}  // id -> present
	unsure := map[string]bool{} // delete issued, not acknowledged
	rng := rand.New(rand.NewSource(time.Now().UnixNano()))
	for round := 0; round < rounds; round++ {
		cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
		cmd.Env = append(os.Environ(), crashEnv+"="+dir, fmt.Sprintf("%s_ROUND=%d", crashEnv, round))
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		lines := make(chan string, 1<<16)
		go func() {
			sc := bufio.NewScanner(stdout)
			for sc.Scan() {
				lines <- sc.Text()
			}
			close(lines)
		}()
		// Wait for the first acknowledgement, then kill at a random moment.
		first, ok := <-lines
		if !ok {
			cmd.Wait()
			t.Fatalf("round %d: child wrote nothing", round)
		}
		time.Sleep(time.Duration(rng.Intn(400)) * time.Millisecond)
		cmd.Process.Signal(syscall.SIGKILL)
		n := 0
		apply := func(l string) {
			switch {
			case strings.HasPrefix(l, "ok "):
				acked[l[3:]] = true
				n++
			case strings.HasPrefix(l, "deleting "):
				unsure[l[9:]] = true
			case strings.HasPrefix(l, "del "):
				acked[l[4:]] = false
				delete(unsure, l[4:])
			default:
				t.Errorf("round %d: child said %q", round, l)
			}
		}
		apply(first)
		for l := range lines {
			apply(l)
		}
		cmd.Wait()

		checkFile(t, filepath.Join(dir, FileName))
		db, err := Open(dir, &Options{NoSync: true, SnapshotInterval: -1, ExactThreshold: -1})
		if err != nil {
			t.Fatalf("round %d: reopen: %v", round, err)
		}
		c, err := db.Collection("crash")
		if err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		missing := 0
		for id, present := range acked {
			_, has := c.Has(id)
			if unsure[id] {
				acked[id] = has
				delete(unsure, id)
				present = has
			}
			if has != present {
				missing++
				if missing < 5 {
					t.Errorf("round %d: %s: present=%v, want %v", round, id, has, present)
				}
				continue
			}
			if !present {
				continue
			}
			res, err := c.Search(ctx, crashVector(id), SearchOptions{K: 1, Ef: 100})
			if err != nil || len(res) != 1 || res[0].ID != id {
				t.Errorf("round %d: %s not found by search: %v %v", round, id, res, err)
			}
		}
		if th, err := c.Thumbnail(first[3:]); err == nil && string(th) != first[3:] {
			t.Errorf("round %d: thumbnail %q", round, th)
		}
		t.Logf("round %d: %d acknowledged this round, %d items, graph from %s", round, n, c.Info().Count, c.loadedFrom)
		c.mu.RLock()
		if r := reachable(c.g); r != c.g.count {
			t.Errorf("round %d: %d of %d nodes reachable", round, r, c.g.count)
		}
		c.mu.RUnlock()
		if missing > 0 {
			t.Fatalf("round %d: %d acknowledged writes lost", round, missing)
		}
		if err := db.Close(); err != nil {
			t.Fatal(err)
		}
	}
}
