package index

import (
	"fmt"
	"math/rand"
	"sync"
	"testing"
)

// BenchmarkTwoCoreScaling measures what a second thread adds to the kernel an insert spends its
// time in (the SQ8 int16×uint8 dot product of 1280-d codes), with the codes in the L1 cache
// (compute) and scattered over a 1.28 GB slab, a million items, read in random order (memory, as
// a graph search reads them). ns/op is per dot product over all threads: the speed-up of N threads
// is ns/op at 1 thread over ns/op at N. It is the ceiling a parallel build can reach on the
// machine, whatever the locking (docs/scale.md).
//
//	go test -run '^$' -bench TwoCoreScaling -benchtime 2000000x ./index/
func BenchmarkTwoCoreScaling(b *testing.B) {
	const dim = 1280
	q := make([]int16, dim)
	for i := range q {
		q[i] = int16(i%255 - 127)
	}
	for _, where := range []struct {
		name  string
		items int
	}{{"l1", 1}, {"slab-1M", 1_000_000}} {
		codes := make([]uint8, where.items*dim)
		for i := range codes {
			codes[i] = uint8(i * 7)
		}
		for _, threads := range []int{1, 2} {
			b.Run(fmt.Sprintf("%s/threads-%d", where.name, threads), func(b *testing.B) {
				var wg sync.WaitGroup
				var sink [2]int32
				for t := range threads {
					wg.Add(1)
					go func() {
						defer wg.Done()
						rng := rand.New(rand.NewSource(int64(t)))
						var s int32
						for range b.N / threads {
							o := rng.Intn(where.items) * dim
							s += dotQ16U8(q, codes[o:o+dim])
						}
						sink[t] = s
					}()
				}
				wg.Wait()
			})
		}
	}
}
