package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestClusterPartition is issue 15's second "done when": every NATS route of a three-node cluster
// runs through TCP proxies the test controls, and the node that leads the log is cut off from the
// other two. Writes through it answer 503 cluster_unavailable within the write budget (15 s, plus
// the request's own work) while searches on it still answer; the majority elects a leader and
// keeps acknowledging writes. Once healed, the cut-off node catches up, a search on every node
// finds every acknowledged item, and the healed node takes writes again.
func TestClusterPartition(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three servers")
	}
	lookalikeBinary(t)
	part := newPartition()
	defer part.close()
	const n = 3
	listen, proxies := make([]string, n), make([]string, n)
	for i := range n {
		listen[i] = fmt.Sprintf("127.0.0.1:%d", freePort(t))
		proxies[i] = part.proxy(t, listen[i], fmt.Sprintf("n%d", i+1))
	}
	envs := make([][]string, n)
	for i := range envs {
		// Each node listens on its own address but is known to its peers only by its proxy's
		// (advertise): no route is made around the proxies.
		envs[i] = clusterEnv(t, i, proxies, 4, "LOOKALIKE_CLUSTER_CLUSTER_ADDR="+listen[i], "LOOKALIKE_CLUSTER_ADVERTISE="+proxies[i])
	}
	c := startLKCluster(t, envs)
	led := newLedger()
	ctx := context.Background()
	next := 0
	add := func(node *clusterNode) (int, string, error) {
		i := next
		next++
		id := fmt.Sprintf("p%04d", i)
		status, body, err := postClusterItem(ctx, node.url, id, i/clusterGroupSize, clusterPhoto(100000+i))
		switch {
		case status == http.StatusCreated:
			led.ack(id, i/clusterGroupSize)
		case err != nil || status >= 500:
			led.unsure(id, i/clusterGroupSize)
		}
		return status, body, err
	}
	for i := range 60 { // items are numbered by add's counter: groups of clusterGroupSize, like the rounds test's
		if status, body, err := add(c.nodes[i%n]); status != http.StatusCreated {
			t.Fatalf("add before the partition: %d %s %v", status, body, err)
		}
	}

	minority := c.logLeader(t)
	var majority []*clusterNode
	for _, nd := range c.nodes {
		if nd != minority {
			majority = append(majority, nd)
		}
	}
	cutAt := time.Now()
	part.cut(minority.name)
	t.Logf("%s (the log's leader) cut off from the others", minority.name)

	// Two writes through the minority, while the majority writes on.
	type refused struct {
		status  int
		body    string
		err     error
		elapsed time.Duration
	}
	minorityRes := make(chan refused, 2)
	for j := range 2 {
		go func() {
			start := time.Now()
			id := fmt.Sprintf("minority-%d", j)
			led.unsure(id, 0) // a refused write may or may not be stored
			status, body, err := postClusterItem(ctx, minority.url, id, 0, clusterPhoto(200000+j))
			minorityRes <- refused{status, body, err, time.Since(start)}
		}()
	}
	var majorityAcks atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var mu sync.Mutex // add's counter and the ledger's order
	for _, nd := range majority {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				mu.Lock()
				i := next
				next++
				mu.Unlock()
				id := fmt.Sprintf("p%04d", i)
				g := i / clusterGroupSize
				status, body, err := postClusterItem(ctx, nd.url, id, g, clusterPhoto(100000+i))
				switch {
				case status == http.StatusCreated:
					led.ack(id, g)
					majorityAcks.Add(1)
				case err != nil || status >= 500:
					led.unsure(id, g)
					time.Sleep(200 * time.Millisecond)
				default:
					t.Errorf("add %s through %s during the partition: %d %s", id, nd.name, status, body)
				}
			}
		}()
	}
	for range 2 {
		r := <-minorityRes
		t.Logf("write through the cut-off %s: %d after %.1fs", minority.name, r.status, r.elapsed.Seconds())
		if r.status != http.StatusServiceUnavailable || !strings.Contains(r.body, `"cluster_unavailable"`) {
			t.Errorf("write through the cut-off %s: %d %s %v, want 503 cluster_unavailable", minority.name, r.status, r.body, r.err)
		}
		if r.elapsed > 25*time.Second {
			t.Errorf("write through the cut-off %s answered after %s, want about the 15 s write budget", minority.name, r.elapsed)
		}
	}
	// Reads stay available on the cut-off node: it searches its own replicas (partial, with
	// coverage, where it holds only some shards).
	dims, err := itemDims(majority[0].url, "p0000")
	if err != nil {
		t.Fatal(err)
	}
	if res := searchGroup(ctx, minority.url, dims, 0, 10); res.err != nil || res.status != http.StatusOK || len(res.ids) == 0 {
		t.Errorf("search on the cut-off %s: %d %v %.300s", minority.name, res.status, res.err, res.body)
	} else if res.coverage != nil {
		t.Logf("search on the cut-off %s: coverage %d of %d shards", minority.name, res.coverage.Shards, res.coverage.Of)
	}
	// The majority must acknowledge writes after its election, not only before the cut took hold.
	before := majorityAcks.Load()
	for deadline := time.Now().Add(20 * time.Second); majorityAcks.Load() < before+10 && time.Now().Before(deadline); {
		time.Sleep(100 * time.Millisecond)
	}
	close(stop)
	wg.Wait()
	t.Logf("the majority acknowledged %d writes in the %.1fs the partition lasted (%d after the minority's refusals); longest gap %.2fs",
		majorityAcks.Load(), time.Since(cutAt).Seconds(), majorityAcks.Load()-before, led.longestGap(cutAt).Seconds())
	if majorityAcks.Load() < before+10 {
		t.Fatalf("the majority acknowledged only %d writes after the minority's refusals", majorityAcks.Load()-before)
	}

	healAt := time.Now()
	part.heal(minority.name)
	for _, nd := range c.nodes {
		if miss := led.missing(t, nd.url, dims, 60*time.Second); len(miss) > 0 {
			t.Errorf("after healing, search on %s misses %d acknowledged items: %.20v", nd.name, len(miss), miss)
		}
	}
	acked, maybe := led.counts()
	t.Logf("healed: every node finds all %d acknowledged items %.1fs after healing (%d maybe)", acked, time.Since(healAt).Seconds(), maybe)
	var status int
	var body string
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(500 * time.Millisecond) {
		if status, body, _ = add(minority); status == http.StatusCreated {
			break
		}
	}
	if status != http.StatusCreated {
		t.Errorf("write through the healed %s: %d %s", minority.name, status, body)
	}
}

// partition is a set of TCP proxies in front of the nodes' route listeners that can cut a node off:
// every proxied connection that involves it (to its listener, or from it: the NATS route
// handshake names the connecting server, "server_name") is closed, and new ones are closed as
// soon as they are known to involve it. A cut closes connections rather than dropping packets, so
// the servers notice at once instead of after missed pings.
type partition struct {
	mu    sync.Mutex
	cuts  map[string]bool
	conns map[*proxyConn]bool
	lns   []net.Listener
	wg    sync.WaitGroup
}

// proxyConn is one proxied connection and the nodes it involves.
type proxyConn struct {
	client, server net.Conn
	nodes          map[string]bool
}

func newPartition() *partition {
	return &partition{cuts: map[string]bool{}, conns: map[*proxyConn]bool{}}
}

// proxy listens on a free loopback port and forwards to target, the route listener of node; it
// returns the proxy's address.
func (p *partition) proxy(t *testing.T, target, node string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p.lns = append(p.lns, ln)
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			client, err := ln.Accept()
			if err != nil {
				return // closed
			}
			p.wg.Add(1)
			go func() {
				defer p.wg.Done()
				p.forward(client, target, node)
			}()
		}
	}()
	return ln.Addr().String()
}

// forward copies both ways until either side ends or the connection is cut.
func (p *partition) forward(client net.Conn, target, node string) {
	defer client.Close()
	server, err := net.DialTimeout("tcp", target, 2*time.Second)
	if err != nil {
		return
	}
	defer server.Close()
	pc := &proxyConn{client: client, server: server, nodes: map[string]bool{node: true}}
	if !p.track(pc, node) {
		return
	}
	defer func() {
		p.mu.Lock()
		delete(p.conns, pc)
		p.mu.Unlock()
	}()
	done := make(chan struct{}, 2)
	go func() {
		io.Copy(client, server)
		done <- struct{}{}
	}()
	go func() {
		p.copySniffing(server, client, pc)
		done <- struct{}{}
	}()
	<-done // one side ended: end both
	client.Close()
	server.Close()
	<-done
}

// track registers pc as involving node; false when node is cut off (pc is then closed).
func (p *partition) track(pc *proxyConn, node string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	pc.nodes[node] = true
	p.conns[pc] = true
	if p.cuts[node] {
		pc.client.Close()
		pc.server.Close()
		return false
	}
	return true
}

// copySniffing copies the connecting side's bytes to the server and reads the connecting
// server's name from the first of them (its INFO, before any compression is negotiated).
func (p *partition) copySniffing(dst, src net.Conn, pc *proxyConn) {
	const key = `"server_name":"`
	var head []byte
	sniffing := true
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 && sniffing {
			head = append(head, buf[:n]...)
			if i := bytes.Index(head, []byte(key)); i >= 0 {
				rest := head[i+len(key):]
				if j := bytes.IndexByte(rest, '"'); j >= 0 {
					if !p.track(pc, string(rest[:j])) {
						return
					}
					sniffing, head = false, nil
				}
			}
			sniffing = sniffing && len(head) < 64<<10
		}
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// cut cuts node off: its proxied connections are closed, and so is every new one involving it.
func (p *partition) cut(node string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cuts[node] = true
	for pc := range p.conns {
		if pc.nodes[node] {
			pc.client.Close()
			pc.server.Close()
		}
	}
}

// heal lets node's connections through again (the servers reconnect their routes themselves).
func (p *partition) heal(node string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.cuts, node)
}

// close stops the proxies and waits for their connections to end.
func (p *partition) close() {
	for _, ln := range p.lns {
		ln.Close()
	}
	p.mu.Lock()
	for pc := range p.conns {
		pc.client.Close()
		pc.server.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}
