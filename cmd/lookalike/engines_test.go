package main

import (
	"slices"
	"testing"
)

// TestPoolShares: a configured session pool is split among the engines, never below one each,
// and adds up to the pool whenever the pool has a session per engine.
func TestPoolShares(t *testing.T) {
	for _, tc := range []struct {
		workers, n int
		want       []int
	}{
		{0, 2, []int{0, 0}},
		{4, 1, []int{4}},
		{4, 2, []int{2, 2}},
		{5, 2, []int{3, 2}},
		{7, 3, []int{3, 2, 2}},
		{1, 3, []int{1, 1, 1}},
	} {
		if got := poolShares(tc.workers, tc.n); !slices.Equal(got, tc.want) {
			t.Errorf("poolShares(%d, %d) = %v, want %v", tc.workers, tc.n, got, tc.want)
		}
	}
}
