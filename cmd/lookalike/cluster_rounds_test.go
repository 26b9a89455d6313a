package main

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// clusterRoundItems is how many items each round of TestClusterKill9Rounds adds (issue 15: 3 000
// in all); a group (metadata g) holds at most 500, so a search with k 1000 returns a whole group.
const (
	clusterRoundItems = 1500
	clusterGroupSize  = 500
)

// TestClusterKill9Rounds is issue 15's first "done when": three real `lookalike serve` processes
// on loopback take 3 000 items through all three nodes, in two rounds. In each round one node is
// killed with SIGKILL when half of the round's items are acknowledged (round 1: a node that does
// not lead the log; round 2: the log's leader, read from GET /v1/cluster); writes go on through the
// survivors, and searches on the survivors during the outage must answer (coverage is logged when
// partial). Then every acknowledged item must be found by a search on each survivor; the killed
// node restarts on its data, catches up from the log and must find every one of them too. A write
// that got no answer or a 5xx is retried through another node and counts as "maybe" (it may or may
// not have landed) until some node acknowledges it. Logged: the longest gap between two
// acknowledgements after the kill (the write stall) and the restarted node's catch-up rate.
func TestClusterKill9Rounds(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three servers and adds 3 000 items")
	}
	lookalikeBinary(t)
	envs := loopbackClusterEnvs(t, 3, 4)
	start := time.Now()
	c := startLKCluster(t, envs)
	t.Logf("3 nodes ready in %.1fs", time.Since(start).Seconds())
	led := newLedger()
	dims := 0
	for round := 1; round <= 2; round++ {
		// Round 1 kills a follower, round 2 the node that leads the log when the kill comes.
		pick := c.logLeader
		if round == 1 {
			pick = func(t *testing.T) *clusterNode {
				return c.nodes[(slices.Index(c.nodes, c.logLeader(t))+1)%len(c.nodes)]
			}
		}
		from := (round - 1) * clusterRoundItems
		victim, _ := c.killRound(t, led, round, from, from+clusterRoundItems, pick)
		if t.Failed() {
			return
		}
		if dims == 0 {
			for id := range led.acked {
				var err error
				if dims, err = itemDims(c.nodes[0].url, id); err != nil {
					dims, err = itemDims(c.nodes[1].url, id)
				}
				if err != nil {
					t.Fatal(err)
				}
				break
			}
		}
		for _, n := range c.nodes {
			if n == victim {
				continue
			}
			if miss := led.missing(t, n.url, dims, 30*time.Second); len(miss) > 0 {
				t.Errorf("round %d: search on survivor %s misses %d acknowledged items: %.20v", round, n.name, len(miss), miss)
			}
		}
		c.restartAndCatchUp(t, led, round, victim, dims)
	}
	acked, maybe := led.counts()
	t.Logf("%d items acknowledged, %d maybe (no answer, never acknowledged), in %.0fs", acked, maybe, time.Since(start).Seconds())
	if acked < 2*clusterRoundItems*9/10 {
		t.Errorf("only %d of %d items acknowledged", acked, 2*clusterRoundItems)
	}
}

// logLeader is the node that leads the log, as a node that knows a leader says.
func (c *lkCluster) logLeader(t *testing.T) *clusterNode {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		for _, n := range c.nodes {
			if st, err := clusterStatus(n.url); err == nil && st.Log.Leader != "" {
				if l := c.node(st.Log.Leader); l != nil {
					return l
				}
				t.Fatalf("leader %q is no node of the test", st.Log.Leader)
			}
		}
	}
	t.Fatal("no node names a log leader")
	return nil
}

// killRound adds items [from, to) through the nodes (item i through node i mod 3, or the next
// live one), six writers at once, and once half of them are acknowledged kills the node pick
// names then with SIGKILL; the others go on through the survivors. Searches on the survivors while
// it is down must answer. It returns once every item was acknowledged or given up on, with the
// killed node and the write stall: the longest time between two acknowledgements after the kill.
func (c *lkCluster) killRound(t *testing.T, led *ledger, round, from, to int, pick func(*testing.T) *clusterNode) (*clusterNode, time.Duration) {
	t.Helper()
	var dead atomic.Pointer[clusterNode]
	var roundAcks atomic.Int64
	killNow := make(chan struct{})
	var killOnce sync.Once
	items := make(chan int)
	var wg sync.WaitGroup
	ctx := context.Background()
	for range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range items {
				id, group := fmt.Sprintf("it%04d", i), i/clusterGroupSize
				photo := clusterPhoto(i)
				for attempt := 0; attempt < 6; attempt++ {
					n := c.nodes[(i+attempt)%3]
					if n == dead.Load() {
						continue
					}
					status, body, err := postClusterItem(ctx, n.url, id, group, photo)
					if status == http.StatusCreated {
						led.ack(id, group)
						if roundAcks.Add(1) == int64(to-from)/2 {
							killOnce.Do(func() { close(killNow) })
						}
						break
					}
					if err != nil || status >= 500 {
						led.unsure(id, group) // it may have landed: the retry through another node is the same upsert
						time.Sleep(200 * time.Millisecond)
						continue
					}
					t.Errorf("add %s through %s: %d %s", id, n.name, status, body)
					break
				}
			}
		}()
	}
	roundStart := time.Now()
	go func() {
		defer close(items)
		for i := from; i < to; i++ {
			items <- i
		}
	}()
	written := make(chan struct{})
	go func() {
		wg.Wait()
		close(written)
	}()
	select {
	case <-killNow:
	case <-written:
		t.Errorf("round %d: the writers ended before half of the items were acknowledged", round)
		return nil, 0
	}
	victim := pick(t)
	killedAt := time.Now()
	victim.kill9()
	dead.Store(victim)
	c.probeSearches(t, round, victim, led, written) // while the rest of the round is written
	<-written
	acked, maybe := led.counts()
	stall := led.longestGap(killedAt)
	t.Logf("round %d: %s killed (SIGKILL) after %d of %d acknowledgements, %.1fs into the round; %d acknowledged in all, %d maybe; round took %.1fs; longest gap between acknowledgements after the kill (write stall) %.2fs",
		round, victim.name, (to-from)/2, to-from, killedAt.Sub(roundStart).Seconds(), acked, maybe, time.Since(roundStart).Seconds(), stall.Seconds())
	return victim, stall
}

// probeSearches searches each survivor about every 300 ms until done is closed (at least once);
// each search must answer 200, with coverage when partial. The query vector's size is read from
// an acknowledged item.
func (c *lkCluster) probeSearches(t *testing.T, round int, victim *clusterNode, led *ledger, done <-chan struct{}) {
	dims := 0
	var searches, partial int
	for {
		for _, n := range c.nodes {
			if n == victim {
				continue
			}
			if dims == 0 {
				led.mu.Lock()
				for id := range led.acked {
					dims, _ = itemDims(n.url, id)
					break
				}
				led.mu.Unlock()
				if dims == 0 {
					continue
				}
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			res := searchGroup(ctx, n.url, dims, 0, 10)
			cancel()
			searches++
			if res.err != nil || res.status != http.StatusOK {
				t.Errorf("round %d: search on survivor %s during the outage: %d %v %.300s", round, n.name, res.status, res.err, res.body)
				return
			}
			if res.coverage != nil {
				partial++
				t.Logf("round %d: search on %s during the outage: coverage %d of %d shards", round, n.name, res.coverage.Shards, res.coverage.Of)
			}
		}
		select {
		case <-done:
			t.Logf("round %d: %d searches on the survivors during the outage answered, %d of them partial", round, searches, partial)
			return
		case <-time.After(300 * time.Millisecond):
		}
	}
}

// restartAndCatchUp restarts the killed node on its data and measures how fast it catches up: the
// log messages past its least advanced replica at its first status answer (with a leader known),
// divided by the time until every replica serves (returned as items/s, 0 when it was caught up at
// its first answer). Then a search on it must find every acknowledged item.
func (c *lkCluster) restartAndCatchUp(t *testing.T, led *ledger, round int, n *clusterNode, dims int) float64 {
	t.Helper()
	started := time.Now()
	c.restart(n)
	var backlog uint64
	var firstAt, doneAt time.Time
	for deadline := time.Now().Add(120 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		select {
		case <-n.exited:
			t.Fatalf("round %d: restarted %s exited: %s", round, n.name, n.stderr.String())
		default:
		}
		st, err := clusterStatus(n.url)
		if err != nil || st.Log.Leader == "" {
			continue
		}
		behind, done := st.behind()
		if firstAt.IsZero() {
			backlog, firstAt = behind, time.Now()
		}
		if done {
			doneAt = time.Now()
			break
		}
	}
	if doneAt.IsZero() {
		t.Fatalf("round %d: restarted %s did not catch up in 120 s", round, n.name)
	}
	if err := n.waitReady(60 * time.Second); err != nil {
		t.Fatalf("round %d: restarted %s not ready: %v", round, n.name, err)
	}
	var rate float64
	if backlog > 0 && doneAt.After(firstAt) {
		rate = float64(backlog) / doneAt.Sub(firstAt).Seconds()
	}
	t.Logf("round %d: %s restarted: first status with a leader %.1fs after start, %d messages behind; every replica serving %.1fs after start (catch-up %.0f items/s)",
		round, n.name, firstAt.Sub(started).Seconds(), backlog, doneAt.Sub(started).Seconds(), rate)
	if miss := led.missing(t, n.url, dims, 60*time.Second); len(miss) > 0 {
		t.Errorf("round %d: search on restarted %s misses %d acknowledged items: %.20v", round, n.name, len(miss), miss)
	}
	return rate
}
