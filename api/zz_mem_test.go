package api

import (
	"runtime"
	"testing"
	"time"
)

func TestZZPNGMemory(t *testing.T) {
	ts := newTestServer(t, nil)
	seed(t, ts)
	data := pngBomb(7000, 7000)
	var a, b runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&a)
	start := time.Now()
	r, _ := ts.searchImage(t, data)
	runtime.ReadMemStats(&b)
	t.Logf("7000x7000 png: %d bytes on the wire, status %d in %s, %.0f MB allocated, heap sys peak-ish %.0f MB", len(data), r.status, time.Since(start), float64(b.TotalAlloc-a.TotalAlloc)/(1<<20), float64(b.HeapSys)/(1<<20))
}
