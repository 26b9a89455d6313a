package index

// cand is a graph node with its distance (1 - cosine) to the query.
type cand struct {
	d  float32
	id uint32
}

// minHeap is a typed binary heap: container/heap's interface calls cost
// ~30% of search time at these sizes.
type minHeap []cand

func (h *minHeap) push(c cand) {
	*h = append(*h, c)
	a := *h
	i := len(a) - 1
	for i > 0 {
		p := (i - 1) / 2
		if a[p].d <= a[i].d {
			break
		}
		a[p], a[i] = a[i], a[p]
		i = p
	}
}

func (h *minHeap) pop() cand {
	a := *h
	top := a[0]
	n := len(a) - 1
	a[0] = a[n]
	a = a[:n]
	i := 0
	for {
		l := 2*i + 1
		if l >= n {
			break
		}
		j := l
		if r := l + 1; r < n && a[r].d < a[l].d {
			j = r
		}
		if a[i].d <= a[j].d {
			break
		}
		a[i], a[j] = a[j], a[i]
		i = j
	}
	*h = a
	return top
}

// maxHeap keeps the worst (largest distance) candidate on top. It is a
// minHeap over negated distances, so both orders share one sift code.
type maxHeap minHeap

func (h *maxHeap) push(c cand) {
	c.d = -c.d
	(*minHeap)(h).push(c)
}

func (h *maxHeap) pop() cand {
	c := (*minHeap)(h).pop()
	c.d = -c.d
	return c
}

// worst is the largest distance held. The heap must not be empty.
func (h maxHeap) worst() float32 { return -h[0].d }

// sortedAsc drains the heap into dst in ascending distance order.
func (h *maxHeap) sortedAsc(dst []cand) []cand {
	n := len(*h)
	if cap(dst) < n {
		dst = make([]cand, n)
	}
	dst = dst[:n]
	for i := n - 1; i >= 0; i-- {
		dst[i] = h.pop()
	}
	return dst
}
