// Package testport picks loopback ports for tests that must name a port before a process binds
// it (a cluster's route addresses, listed in every peer's configuration).
//
// Binding ":0" and releasing the port is not enough there: the kernel hands ports out of its
// ephemeral range, the same range every outgoing connection of the other test binaries running in
// parallel draws from, and a port taken between the release and the child's bind makes that node
// fail to form its cluster, or, worse, routes it to another test's servers. Ports are therefore
// drawn at random from below the ephemeral range, where no connect(2) lands, and checked free.
package testport

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
)

// Linux's default ephemeral range starts at 32768; below it down to 20000 nothing else in a test
// run binds, so only another picker can collide, at 1 in ~12 000 per pair.
const (
	lowest  = 20000
	highest = 32767
)

// ErrNoPort means no free port was found after many tries.
var ErrNoPort = errors.New("testport: no free loopback port")

// given holds the ports already handed out in this process: a test names several before any is
// bound, and each must be distinct.
var given = struct {
	sync.Mutex
	ports map[int]bool
}{ports: map[int]bool{}}

// Free returns a loopback port that was free when checked, lies outside the ephemeral range, and
// was not returned before in this process.
func Free() (int, error) {
	given.Lock()
	defer given.Unlock()
	hi := highest
	if lo := ephemeralLow(); lo > lowest+1000 && lo-1 < hi {
		hi = lo - 1
	}
	for range 200 {
		port := lowest + rand.IntN(hi-lowest+1)
		if given.ports[port] {
			continue
		}
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		if err != nil {
			continue
		}
		if err := l.Close(); err != nil {
			return 0, fmt.Errorf("testport: release %d: %w", port, err)
		}
		given.ports[port] = true
		return port, nil
	}
	return 0, ErrNoPort
}

// ephemeralLow is the first port of the kernel's ephemeral range, or 0 where it cannot be read.
func ephemeralLow() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 0
	}
	fields := strings.Fields(string(b))
	if len(fields) == 0 {
		return 0
	}
	lo, err := strconv.Atoi(fields[0])
	if err != nil {
		return 0
	}
	return lo
}
