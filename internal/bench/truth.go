package bench

import (
	"context"
	"math"
	"runtime"
	"sync"
	"time"

	"github.com/viterin/vek/vek32"
)

// groundTruth finds the exact k nearest base vectors (cosine) of every query on all cores, in
// blocks of queries so that each base vector is read from memory once per block, not once per
// query (a million 1280-d vectors are 5 GB). exactQPS is plain brute force on one goroutine,
// timed on a few queries: what a search without an index costs.
func groundTruth(ctx context.Context, base *FvecsFile, n int, queries [][]float32, k int) (truth [][]uint32, exactQPS float64, err error) {
	qs := make([][]float32, len(queries))
	for i, q := range queries {
		qs[i] = append([]float32(nil), q...)
		normalizeInPlace(qs[i])
	}
	inv := make([]float32, n) // 1/‖base_i‖: the file's vectors need not be unit
	for i := range n {
		if s := vek32.Dot(base.Row(i), base.Row(i)); s > 0 {
			inv[i] = float32(1 / math.Sqrt(float64(s)))
		}
	}

	timed := min(len(qs), 20)
	start := time.Now()
	for _, q := range qs[:timed] {
		best := float32(-2)
		for i := range n {
			if s := vek32.Dot(q, base.Row(i)) * inv[i]; s > best {
				best = s
			}
		}
	}
	exactQPS = float64(timed) / time.Since(start).Seconds()

	const block = 64
	workers := runtime.GOMAXPROCS(0)
	// Each worker keeps its own top-k per query over its share of the base; merged at the end.
	heaps := make([][]topK, workers)
	var wg sync.WaitGroup
	for w := range workers {
		heaps[w] = make([]topK, len(qs))
		lo, hi := n*w/workers, n*(w+1)/workers
		wg.Add(1)
		go func() {
			defer wg.Done()
			hs := heaps[w]
			for b := 0; b < len(qs); b += block {
				if ctx.Err() != nil {
					return
				}
				end := min(b+block, len(qs))
				for i := lo; i < hi; i++ {
					row, s := base.Row(i), inv[i]
					for j := b; j < end; j++ {
						hs[j].offer(1-vek32.Dot(qs[j], row)*s, uint32(i), k)
					}
				}
			}
		}()
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, 0, err
	}
	truth = make([][]uint32, len(qs))
	for j := range qs {
		var all topK
		for w := range workers {
			for _, e := range heaps[w][j].items {
				all.offer(e.d, e.id, k)
			}
		}
		truth[j] = all.sorted()
	}
	return truth, exactQPS, nil
}

// topK keeps the k smallest distances seen (a small sorted slice: k is 10).
type topK struct{ items []distID }

type distID struct {
	d  float32
	id uint32
}

func (t *topK) offer(d float32, id uint32, k int) {
	if len(t.items) == k && d >= t.items[k-1].d {
		return
	}
	i := len(t.items)
	if i < k {
		t.items = append(t.items, distID{})
	} else {
		i = k - 1
	}
	for i > 0 && t.items[i-1].d > d {
		t.items[i] = t.items[i-1]
		i--
	}
	t.items[i] = distID{d, id}
}

func (t *topK) sorted() []uint32 {
	out := make([]uint32, len(t.items))
	for i, e := range t.items {
		out[i] = e.id
	}
	return out
}

// normalizeInPlace scales v to unit length (a zero vector stays zero).
func normalizeInPlace(v []float32) {
	if s := vek32.Dot(v, v); s > 0 {
		vek32.MulNumber_Inplace(v, float32(1/math.Sqrt(float64(s))))
	}
}
