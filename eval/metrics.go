package eval

import (
	"sort"

	"github.com/lookalike/lookalike/quality"
)

// Relevance judges one ranked id: relevant, irrelevant, or junk (removed from the ranking before any
// metric is computed, as the Oxford Buildings protocol prescribes).
type Relevance int8

const (
	Irrelevant Relevance = iota
	Relevant
	Junk
)

// Judge maps a ranking to judgements; ids absent from both sets are irrelevant.
func Judge(ranking []string, positives, junk map[string]bool) []Relevance {
	out := make([]Relevance, len(ranking))
	for i, id := range ranking {
		switch {
		case junk[id]:
			out[i] = Junk
		case positives[id]:
			out[i] = Relevant
		}
	}
	return out
}

// dejunk drops junk entries, so ranks below count only judged items.
func dejunk(rel []Relevance) []Relevance {
	out := rel[:0:0]
	for _, r := range rel {
		if r != Junk {
			out = append(out, r)
		}
	}
	return out
}

// AveragePrecision is the non-interpolated AP of a ranking with nPos relevant items in the whole
// collection: the mean, over all nPos positives, of the precision at each positive's rank. Positives
// missing from the (possibly truncated) ranking contribute 0. Junk is removed first. nPos <= 0 gives 0.
func AveragePrecision(rel []Relevance, nPos int) float64 {
	if nPos <= 0 {
		return 0
	}
	var hits int
	var sum float64
	for i, r := range dejunk(rel) {
		if r == Relevant {
			hits++
			sum += float64(hits) / float64(i+1)
		}
	}
	return sum / float64(nPos)
}

// OxfordAP is average precision exactly as the Oxford Buildings benchmark's compute_ap.cpp computes
// it: the area under the precision-recall curve by the trapezoid rule, starting from precision 1 at
// recall 0, junk removed. It is slightly above AveragePrecision for the same ranking.
func OxfordAP(rel []Relevance, nPos int) float64 {
	if nPos <= 0 {
		return 0
	}
	oldRecall, oldPrecision, ap := 0.0, 1.0, 0.0
	hits := 0
	for j, r := range dejunk(rel) {
		if r == Relevant {
			hits++
		}
		recall := float64(hits) / float64(nPos)
		precision := float64(hits) / float64(j+1)
		ap += (recall - oldRecall) * (oldPrecision + precision) / 2
		oldRecall, oldPrecision = recall, precision
	}
	return ap
}

// APAtK is AP truncated at rank k and normalised by min(k, nPos) (the usual mAP@k of retrieval
// benchmarks with large classes, where a perfect top-k scores 1).
func APAtK(rel []Relevance, nPos, k int) float64 {
	rel = dejunk(rel)
	if len(rel) > k {
		rel = rel[:k]
	}
	d := min(k, nPos)
	if d <= 0 {
		return 0
	}
	var hits int
	var sum float64
	for i, r := range rel {
		if r == Relevant {
			hits++
			sum += float64(hits) / float64(i+1)
		}
	}
	return sum / float64(d)
}

// HitsAtK counts relevant items in the first k (junk removed).
func HitsAtK(rel []Relevance, k int) int {
	n := 0
	for i, r := range dejunk(rel) {
		if i >= k {
			break
		}
		if r == Relevant {
			n++
		}
	}
	return n
}

// PrecisionAtK is HitsAtK/k: missing ranks count as misses.
func PrecisionAtK(rel []Relevance, k int) float64 {
	if k <= 0 {
		return 0
	}
	return float64(HitsAtK(rel, k)) / float64(k)
}

// RecallAtK is HitsAtK/nPos.
func RecallAtK(rel []Relevance, nPos, k int) float64 {
	if nPos <= 0 {
		return 0
	}
	return float64(HitsAtK(rel, k)) / float64(nPos)
}

// NSScore is the UKBench score of one query (Nistér & Stewénius, CVPR 2006): how many of the
// query's group (the query itself included, 4 images) are among the top 4. The benchmark reports the
// mean over all queries, 4 being perfect.
func NSScore(rel []Relevance) float64 { return float64(HitsAtK(rel, 4)) }

// MajorityLabel is k-NN classification: the most frequent label among the first k, ties broken by
// the best rank at which a tied label first appears. "" when labels is empty.
func MajorityLabel(labels []string, k int) string {
	if len(labels) > k {
		labels = labels[:k]
	}
	count := map[string]int{}
	first := map[string]int{}
	for i, l := range labels {
		if _, ok := first[l]; !ok {
			first[l] = i
		}
		count[l]++
	}
	keys := make([]string, 0, len(count))
	for l := range count {
		keys = append(keys, l)
	}
	sort.Slice(keys, func(i, j int) bool {
		a, b := keys[i], keys[j]
		if count[a] != count[b] {
			return count[a] > count[b]
		}
		return first[a] < first[b]
	})
	if len(keys) == 0 {
		return ""
	}
	return keys[0]
}

// Overlap is recall@k of an approximate answer against the exact one: the share of the exact top-k
// ids found in the approximate top-k. An empty exact answer gives 1. The formula lives in package
// quality, whose live recall sampler reports the same figure as Report.ANNRecall.
func Overlap(approx, exact []string, k int) float64 { return quality.Overlap(approx, exact, k) }
