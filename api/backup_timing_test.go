package api

// A measurement, not a check: how writes and reads fare while a large backup downloads slowly.
// It runs only when asked (it takes a minute or more):
//
//	LOOKALIKE_MEASURE_BACKUP=SIZE_MB,RATE_KBPS,WRITE_TIMEOUT go test -run TestMeasureBackupStall -v ./api/

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lookalike/lookalike/internal/config"
)

func TestMeasureBackupStall(t *testing.T) {
	spec := os.Getenv("LOOKALIKE_MEASURE_BACKUP")
	if spec == "" {
		t.Skip("set LOOKALIKE_MEASURE_BACKUP=SIZE_MB,RATE_KBPS,WRITE_TIMEOUT to measure")
	}
	parts := strings.Split(spec, ",")
	sizeMB, _ := strconv.Atoi(parts[0])
	rateKB, _ := strconv.Atoi(parts[1])
	writeTimeout, err := time.ParseDuration(parts[2])
	if err != nil || sizeMB <= 0 || rateKB <= 0 {
		t.Fatalf("bad LOOKALIKE_MEASURE_BACKUP %q", spec)
	}
	ts := startTestServer(t, &scriptedEmbedder{}, nil, func(c *config.Config) {
		c.Server.WriteTimeout = writeTimeout
		c.Server.ShutdownTimeout = 2 * time.Second
	})
	jpg := reencode(t, photo(t, ukName(4)), 0.2, 60)
	seedBulk(t, ts.url, ts.dir, int64(sizeMB)<<20, jpg)

	var mu sync.Mutex
	lat := map[string][]time.Duration{}
	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	loop := func(kind string, f func(i int) int) {
		defer wg.Done()
		for i := 0; ctx.Err() == nil; i++ {
			start := time.Now()
			status := f(i)
			mu.Lock()
			lat[kind] = append(lat[kind], time.Since(start))
			if status != 200 {
				lat[kind+" failed"] = append(lat[kind+" failed"], time.Since(start))
			}
			mu.Unlock()
			time.Sleep(50 * time.Millisecond)
		}
	}
	wg.Add(2)
	go loop("batch of 4 items", func(i int) int {
		return do(t, "POST", ts.url+"/v1/collections/default/items:batch", "application/x-ndjson",
			bytes.NewReader(bulkBatch(t, fmt.Sprintf("m%05d", i), 4, jpg))).status
	})
	go loop("get + similar", func(int) int {
		if r := do(t, "GET", ts.url+"/v1/collections/default/items/seed000-001", "", nil); r.status != 200 {
			return r.status
		}
		return do(t, "GET", ts.url+"/v1/collections/default/items/seed000-001/similar?k=5", "", nil).status
	})
	start := time.Now()
	_, resp := slowGet(t, ts.url, "/v1/admin/backup")
	t.Logf("backup headers after %s (the snapshot is staged by then)", time.Since(start).Round(time.Millisecond))
	var sink bytes.Buffer
	n, err := readSlowly(&sink, resp.Body, rateKB<<10)
	took := time.Since(start)
	stop()
	wg.Wait()
	t.Logf("backup: %d of %d bytes in %s at %d KB/s, write_timeout %s, err %v", n, resp.ContentLength, took.Round(time.Millisecond), rateKB, writeTimeout, err)
	for kind, ds := range lat {
		slices.Sort(ds)
		t.Logf("%-24s n=%4d p50 %6s  p99 %6s  max %6s", kind, len(ds), ds[len(ds)/2].Round(time.Millisecond),
			ds[len(ds)*99/100].Round(time.Millisecond), ds[len(ds)-1].Round(time.Millisecond))
	}
}
