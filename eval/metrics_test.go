package eval

import (
	"bytes"
	"math"
	"testing"
)

const (
	R = Relevant
	N = Irrelevant
	J = Junk
)

func near(a, b float64) bool { return math.Abs(a-b) < 1e-12 }

func TestAveragePrecision(t *testing.T) {
	tests := []struct {
		name string
		rel  []Relevance
		nPos int
		want float64
	}{
		{"perfect", []Relevance{R, R, N}, 2, 1},
		{"second and fourth", []Relevance{N, R, N, R}, 2, (1.0/2 + 2.0/4) / 2},
		{"missing positive counts zero", []Relevance{R, N, R, N, N}, 3, (1 + 2.0/3) / 3},
		{"junk removed", []Relevance{R, J, N, R}, 2, (1 + 2.0/3) / 2},
		{"no positives", []Relevance{N, N}, 0, 0},
		{"empty ranking", nil, 4, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := AveragePrecision(tt.rel, tt.nPos); !near(got, tt.want) {
				t.Fatalf("AveragePrecision = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestOxfordAP(t *testing.T) {
	tests := []struct {
		name string
		rel  []Relevance
		nPos int
		want float64
	}{
		// Trapezoids: (0→.5 recall, precision 1→1) + (.5→1, precision .5→2/3).
		{"R N R", []Relevance{R, N, R}, 2, 0.5*1 + 0.5*(0.5+2.0/3)/2},
		{"junk is skipped", []Relevance{J, R, J, N, R}, 2, 0.5*1 + 0.5*(0.5+2.0/3)/2},
		// A miss first drops the running precision to 0, so the next trapezoid starts there.
		{"first miss", []Relevance{N, R}, 1, 1 * (0 + 0.5) / 2},
		{"perfect", []Relevance{R, R}, 2, 1},
		{"none found", []Relevance{N, N}, 3, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := OxfordAP(tt.rel, tt.nPos); !near(got, tt.want) {
				t.Fatalf("OxfordAP = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestCutoffMetrics(t *testing.T) {
	rel := []Relevance{R, R, N, J, R, R, N}
	tests := []struct {
		name      string
		got, want float64
	}{
		{"N-S counts top 4 after junk", NSScore(rel), 3},
		{"precision@1", PrecisionAtK(rel, 1), 1},
		{"precision@4", PrecisionAtK(rel, 4), 3.0 / 4},
		{"precision@10 counts missing ranks as misses", PrecisionAtK(rel, 10), 4.0 / 10},
		{"recall@2", RecallAtK(rel, 8, 2), 2.0 / 8},
		{"recall@4", RecallAtK(rel, 4, 4), 3.0 / 4},
		{"mAP@4 normalised by k", APAtK(rel, 100, 4), (1 + 1 + 3.0/4) / 4},
		{"mAP@4 normalised by nPos", APAtK(rel, 3, 4), (1 + 1 + 3.0/4) / 3},
		{"mAP@2 perfect", APAtK(rel, 100, 2), 1},
		{"overlap", Overlap([]string{"a", "x", "c"}, []string{"a", "b", "c"}, 3), 2.0 / 3},
		{"overlap truncates", Overlap([]string{"a", "b", "z"}, []string{"a", "b", "c"}, 2), 1},
		{"overlap of nothing", Overlap(nil, nil, 10), 1},
	}
	for _, tt := range tests {
		if !near(tt.got, tt.want) {
			t.Errorf("%s = %v, want %v", tt.name, tt.got, tt.want)
		}
	}
}

func TestMajorityLabel(t *testing.T) {
	tests := []struct {
		labels []string
		k      int
		want   string
	}{
		{[]string{"a", "b", "b", "a", "c"}, 4, "a"}, // tie: a ranks first
		{[]string{"a", "b", "b", "a", "c"}, 3, "b"},
		{[]string{"c"}, 10, "c"},
		{nil, 10, ""},
	}
	for _, tt := range tests {
		if got := MajorityLabel(tt.labels, tt.k); got != tt.want {
			t.Errorf("MajorityLabel(%v, %d) = %q, want %q", tt.labels, tt.k, got, tt.want)
		}
	}
}

func TestJudge(t *testing.T) {
	got := Judge([]string{"a", "j", "x", "b"}, map[string]bool{"a": true, "b": true}, map[string]bool{"j": true})
	want := []Relevance{R, J, N, R}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("Judge = %v, want %v", got, want)
		}
	}
}

// FuzzIdx: the idx parsers never panic and never return more than asked.
func FuzzIdx(f *testing.F) {
	f.Add([]byte{0, 0, 8, 3, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 2, 1, 2, 3, 4}, 0)
	f.Add([]byte{0, 0, 8, 1, 0, 0, 0, 2, 7, 9}, 1)
	f.Add([]byte{0, 0, 8, 3, 0x7f, 0xff, 0xff, 0xff, 0, 0, 0x10, 0, 0, 0, 0x10, 0}, 0)
	f.Fuzz(func(t *testing.T, b []byte, limit int) {
		limit %= 100
		if imgs, w, h, err := ParseIdxImages(bytes.NewReader(b), limit); err == nil {
			for _, im := range imgs {
				if len(im) != w*h {
					t.Fatalf("image of %d bytes, want %dx%d", len(im), w, h)
				}
			}
			if limit > 0 && len(imgs) > limit {
				t.Fatalf("%d images, limit %d", len(imgs), limit)
			}
		}
		if labels, err := ParseIdxLabels(bytes.NewReader(b), limit); err == nil && limit > 0 && len(labels) > limit {
			t.Fatalf("%d labels, limit %d", len(labels), limit)
		}
	})
}
