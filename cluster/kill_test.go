package cluster

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"
)

const childEnv = "LOOKALIKE_CLUSTER_TEST_CHILD"

// childSpec tells TestClusterChild which node to run and what to do: write until killed, or
// verify that its replicas hold Want once they reached Last (per shard).
type childSpec struct {
	Options Options
	Verify  bool
	Want    map[string]want
}

// MarshalJSON of want for the child: its fields are unexported.
func (w want) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		Meta    string
		Deleted bool
		Seq     uint64
	}{w.meta, w.deleted, w.seq})
}

func (w *want) UnmarshalJSON(b []byte) error {
	var v struct {
		Meta    string
		Deleted bool
		Seq     uint64
	}
	err := json.Unmarshal(b, &v)
	*w = want{meta: v.Meta, deleted: v.Deleted, seq: v.Seq}
	return err
}

// TestClusterChild is the child process of TestClusterKill9: one node in its own process. It writes
// upserts through its node for ever, printing "ack ID SEQ" once each is acknowledged, or, to
// verify, prints "verified N" once its replicas hold every item of Want.
func TestClusterChild(t *testing.T) {
	raw := os.Getenv(childEnv)
	if raw == "" {
		t.Skip("child process of TestClusterKill9")
	}
	var spec childSpec
	if err := json.Unmarshal([]byte(raw), &spec); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	tn := &testNode{o: spec.Options}
	if err := tn.start(t, ctx); err != nil {
		fmt.Println("start error:", err)
		os.Exit(2)
	}
	if spec.Verify {
		checkReplicas(t, tn, spec.Want)
		if t.Failed() {
			os.Exit(3)
		}
		fmt.Printf("verified %d\n", len(spec.Want))
		tn.node.Close()
		return
	}
	fmt.Println("ready")
	for i := 0; ; i++ {
		id := fmt.Sprintf("%s-%d", spec.Options.NodeName, i)
		meta := fmt.Sprintf(`{"by":%q,"i":%d}`, spec.Options.NodeName, i)
		if ctx.Err() != nil {
			os.Exit(1) // never outlive the parent's test for long
		}
		seq, err := tn.node.Publish(ctx, "products", Mutation{Op: OpUpsert, ID: id, Vector: vecOf(id), Metadata: []byte(meta)})
		line := fmt.Sprintf("ack %s %d\n", id, seq)
		if err != nil {
			line = fmt.Sprintln("error:", err)
		}
		if _, err := os.Stdout.WriteString(line); err != nil {
			os.Exit(1) // the parent is gone
		}
		time.Sleep(5 * time.Millisecond) // leave the parent's writers a share of the log
	}
}

// nextLine is the child's next output line; the test fails when none comes within a minute or
// the child ended.
func nextLine(t *testing.T, lines <-chan string) string {
	t.Helper()
	select {
	case l, ok := <-lines:
		if !ok {
			t.Fatal("the child process ended")
		}
		return l
	case <-time.After(time.Minute):
		t.Fatal("no output from the child process for a minute")
	}
	return ""
}

// startChild runs spec in a child process and returns it with a channel of its output lines.
func startChild(t *testing.T, spec childSpec) (*exec.Cmd, <-chan string) {
	t.Helper()
	raw, err := json.Marshal(spec)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run", "^TestClusterChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), childEnv+"="+string(raw))
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	lines := make(chan string, 1024)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	return cmd, lines
}

// Three nodes, one of them in its own process; it is made the stream's leader, and while writes
// go through all three it is killed with SIGKILL. Every write acknowledged by any node, the dead
// one included, is on the survivors' replicas; the killed node restarts and holds them too.
func TestClusterKill9(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three NATS servers, one in a child process")
	}
	names := []string{"n1", "n2", "n3"}
	opts := clusterOptions(t, names, 4)
	for i := range opts {
		opts[i].Logger = nil
	}
	child, lines := startChild(t, childSpec{Options: opts[2]})
	nodes := []*testNode{{o: opts[0]}, {o: opts[1]}}
	startNodes(t, nodes)
	for l := nextLine(t, lines); l != "ready"; l = nextLine(t, lines) {
		if strings.HasPrefix(l, "start error") {
			t.Fatal(l)
		}
	}
	ctx := context.Background()
	mctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	leader, _ := nodes[0].node.LogLeader(mctx)
	if leader != "n3" {
		if err := nodes[0].node.MoveLogLeader(mctx, "n3"); err != nil {
			t.Logf("could not move the leader from %q to n3: %v", leader, err)
		}
		time.Sleep(500 * time.Millisecond) // the new leader takes over
		leader, _ = nodes[0].node.LogLeader(mctx)
	}
	cancel()

	var mu sync.Mutex
	acked := map[string]want{}
	stop := make(chan struct{})
	errs := make([]error, 2)
	var wg sync.WaitGroup
	for i, tn := range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = writer(ctx, tn.node, tn.o.NodeName, 60, stop, &mu, acked)
		}()
	}
	childAcked := 0
	for {
		l := nextLine(t, lines)
		var id string
		var seq uint64
		if _, err := fmt.Sscanf(l, "ack %s %d", &id, &seq); err != nil {
			t.Logf("n3: %s", l)
			continue
		}
		var i int
		fmt.Sscanf(strings.TrimPrefix(id, "n3-"), "%d", &i)
		mu.Lock()
		acked[id] = want{meta: fmt.Sprintf(`{"by":"n3","i":%d}`, i), seq: seq}
		mu.Unlock()
		if childAcked++; childAcked == 40 {
			if err := child.Process.Kill(); err != nil {
				t.Fatal(err)
			}
			break
		}
	}
	killed := time.Now()
	for l := range lines { // acknowledgements printed before the kill
		var id string
		var seq uint64
		if _, err := fmt.Sscanf(l, "ack %s %d", &id, &seq); err == nil {
			var i int
			fmt.Sscanf(strings.TrimPrefix(id, "n3-"), "%d", &i)
			mu.Lock()
			acked[id] = want{meta: fmt.Sprintf(`{"by":"n3","i":%d}`, i), seq: seq}
			mu.Unlock()
		}
	}
	child.Wait()
	wg.Wait()
	t.Logf("killed n3 (stream leader: %s) after %d writes it acknowledged; the others finished %v later", leader, childAcked, time.Since(killed))
	for i, err := range errs {
		if err != nil {
			t.Fatalf("writer through %s: %v", names[i], err)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if a, b := checkReplicas(t, nodes[0], acked), checkReplicas(t, nodes[1], acked); !sameVersions(a, b) {
		t.Fatalf("the survivors' replicas differ (%d vs %d items)", len(a), len(b))
	}
	_, lines = startChild(t, childSpec{Options: opts[2], Verify: true, Want: acked})
	var last string
	for l := range lines {
		last = l
		if strings.HasPrefix(l, "verified") {
			break
		}
		t.Logf("n3: %s", l)
	}
	if !strings.HasPrefix(last, "verified") {
		t.Fatalf("the restarted n3 did not verify; its last line: %q", last)
	}
	t.Logf("%d acknowledged items on all three nodes after the kill", len(acked))
}
