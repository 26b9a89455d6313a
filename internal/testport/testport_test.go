package testport

import (
	"net"
	"strconv"
	"testing"
)

func TestFreeIsBindableDistinctAndBelowEphemeral(t *testing.T) {
	seen := map[int]bool{}
	for range 20 {
		port, err := Free()
		if err != nil {
			t.Fatal(err)
		}
		if port < lowest || port > highest {
			t.Fatalf("port %d outside [%d, %d]", port, lowest, highest)
		}
		if lo := ephemeralLow(); lo > 0 && port >= lo {
			t.Fatalf("port %d inside the ephemeral range from %d", port, lo)
		}
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		if err != nil {
			t.Fatalf("port %d not bindable: %v", port, err)
		}
		l.Close()
		seen[port] = true
	}
	if len(seen) != 20 {
		t.Fatalf("20 picks gave %d distinct ports", len(seen))
	}
}
