// Command loadgen drives a running Lookalike server over HTTP with a bounded, configurable mix of
// image searches, similar-by-id lookups, ingests and deletes, then prints throughput, latency
// percentiles, responses by status and the server's RSS over time. It is the load test of the
// server issue and the soak test of the reliability issue:
//
//	loadgen -url http://127.0.0.1:8080 -seed 10000 -duration 30s -concurrency 1 -mix search=1
//	loadgen -duration 10m -concurrency 8 -mix search=4,similar=4,ingest=1,delete=1
//	loadgen -duration 30s -concurrency 64 -mix search=1     # overload: expect 429s, bounded latency
//	loadgen -collection fast,ms448 -duration 60s -mix search=1 # collections in turn, one report each
//
// It only talks to the URL it is given (loopback in tests), and every run stops by itself.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"image"
	"image/jpeg"
	"io"
	"math/rand/v2"
	"mime/multipart"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/image/draw"
)

type options struct {
	url, collection, images, mix, apiKey string
	duration, warmup, sampleEvery        time.Duration
	concurrency, seed, k                 int
	rate                                 float64
	asJSON                               bool
}

func main() {
	var o options
	flag.StringVar(&o.url, "url", "http://127.0.0.1:8080", "server base URL")
	flag.StringVar(&o.collection, "collection", "default", "collection; several, comma-separated, take the requests in turn (search only), "+
		"so that each one's latency is measured under the same load (e.g. collections of different descriptor profiles)")
	flag.StringVar(&o.images, "images", "", "folder of query/ingest photos (default: ../shared/datasets/ukbench)")
	flag.StringVar(&o.mix, "mix", "search=1", "operation weights: search, similar, ingest, delete")
	flag.StringVar(&o.apiKey, "api-key", "", "API key (write scope for ingest/delete)")
	flag.DurationVar(&o.duration, "duration", 30*time.Second, "timed run length")
	flag.DurationVar(&o.warmup, "warmup", 2*time.Second, "untimed warm-up before the run")
	flag.DurationVar(&o.sampleEvery, "sample-every", 10*time.Second, "RSS sampling interval")
	flag.IntVar(&o.concurrency, "concurrency", 1, "requests in flight (closed loop)")
	flag.Float64Var(&o.rate, "rate", 0, "open-loop request rate per second across all workers (0 = closed loop)")
	flag.IntVar(&o.seed, "seed", 0, "before the run, ingest augmented photos until the collection holds this many items")
	flag.IntVar(&o.k, "k", 10, "k for searches")
	flag.BoolVar(&o.asJSON, "json", false, "print the report as JSON")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, o); err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(1)
	}
}

type opResult struct {
	op      string
	status  int
	latency time.Duration
	err     error
}

type opReport struct {
	Op       string         `json:"op"`
	Count    int            `json:"count"`
	PerS     float64        `json:"per_s"`
	P50      float64        `json:"p50_ms"`
	P95      float64        `json:"p95_ms"`
	P99      float64        `json:"p99_ms"`
	Max      float64        `json:"max_ms"`
	Statuses map[string]int `json:"statuses"`
}

type report struct {
	DurationS   float64    `json:"duration_s"`
	Concurrency int        `json:"concurrency"`
	Items       int        `json:"items"`
	Ops         []opReport `json:"ops"`
	RSSMB       []float64  `json:"rss_mb"`
	Goroutines  []float64  `json:"goroutines"`
}

type client struct {
	o      options
	cols   []string // -collection, split: requests go to each in turn
	http   *http.Client
	photos [][]byte
	ids    []string
	mu     sync.Mutex
	added  []string
	n      int
}

func run(ctx context.Context, o options) error {
	if o.images == "" {
		o.images = filepath.Join("..", "shared", "datasets", "ukbench")
	}
	weights, err := parseMix(o.mix)
	if err != nil {
		return err
	}
	c := &client{o: o, cols: strings.Split(o.collection, ","), http: &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 256}}}
	c.o.collection = c.cols[0] // seeding and item ids use the first
	if len(c.cols) > 1 && (o.seed > 0 || len(weights) != 1 || weights["search"] == 0) {
		return errors.New("several collections take -mix search=1 only and no -seed")
	}
	if err := c.loadPhotos(); err != nil {
		return err
	}
	if o.seed > 0 {
		if err := c.seedTo(ctx, o.seed); err != nil {
			return err
		}
	}
	if err := c.loadIDs(ctx); err != nil {
		return err
	}
	// Warm-up: the same mix, untimed.
	c.drive(ctx, weights, o.warmup, nil)
	results := make(chan opResult, 1024)
	var collected []opResult
	done := make(chan struct{})
	go func() {
		for r := range results {
			collected = append(collected, r)
		}
		close(done)
	}()
	var rss, gor []float64
	sampleCtx, stopSampling := context.WithCancel(ctx)
	var sampler sync.WaitGroup
	sampler.Add(1)
	go func() {
		defer sampler.Done()
		t := time.NewTicker(o.sampleEvery)
		defer t.Stop()
		for {
			if m, g, err := c.processStats(sampleCtx); err == nil {
				rss, gor = append(rss, m), append(gor, g)
			}
			select {
			case <-sampleCtx.Done():
				return
			case <-t.C:
			}
		}
	}()
	start := time.Now()
	c.drive(ctx, weights, o.duration, results)
	elapsed := time.Since(start)
	close(results)
	<-done
	stopSampling()
	sampler.Wait()
	if m, g, err := c.processStats(ctx); err == nil {
		rss, gor = append(rss, m), append(gor, g)
	}
	rep := summarize(collected, elapsed, o.concurrency)
	rep.RSSMB, rep.Goroutines, rep.Items = rss, gor, c.count(ctx)
	if o.asJSON {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	printReport(rep)
	return nil
}

func parseMix(s string) (map[string]int, error) {
	w := map[string]int{}
	for _, part := range strings.Split(s, ",") {
		name, val, ok := strings.Cut(strings.TrimSpace(part), "=")
		n, err := strconv.Atoi(val)
		if !ok || err != nil || n < 0 {
			return nil, fmt.Errorf("-mix: %q is not op=weight", part)
		}
		switch name {
		case "search", "similar", "ingest", "delete":
			w[name] = n
		default:
			return nil, fmt.Errorf("-mix: unknown operation %q", name)
		}
	}
	return w, nil
}

// drive runs workers for d; each picks an operation by weight. With -rate, a shared ticker paces
// request starts (open loop), so an overloaded server shows up as errors or latency, not as a
// slower client.
func (c *client) drive(ctx context.Context, weights map[string]int, d time.Duration, out chan<- opResult) {
	if d <= 0 {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	var ops []string
	for op, w := range weights {
		for i := 0; i < w; i++ {
			ops = append(ops, op)
		}
	}
	sort.Strings(ops)
	var pace <-chan time.Time
	if c.o.rate > 0 {
		t := time.NewTicker(time.Duration(float64(time.Second) / c.o.rate))
		defer t.Stop()
		pace = t.C
	}
	var wg sync.WaitGroup
	for w := 0; w < c.o.concurrency; w++ {
		wg.Add(1)
		go func(seed uint64) {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(seed, 7))
			for n := 0; ctx.Err() == nil; n++ {
				if pace != nil {
					select {
					case <-pace:
					case <-ctx.Done():
						return
					}
				}
				op := ops[rng.IntN(len(ops))]
				col := c.cols[n%len(c.cols)]
				start := time.Now()
				status, err := c.do(ctx, op, col, rng)
				if len(c.cols) > 1 {
					op += "@" + col
				}
				if ctx.Err() != nil && errors.Is(err, context.DeadlineExceeded) {
					return // cut off by the end of the run, not by the server
				}
				if out != nil {
					out <- opResult{op: op, status: status, latency: time.Since(start), err: err}
				}
			}
		}(uint64(w))
	}
	wg.Wait()
}

func (c *client) do(ctx context.Context, op, col string, rng *rand.Rand) (int, error) {
	base := c.o.url + "/v1/collections/" + url.PathEscape(col)
	switch op {
	case "search":
		body, ct := multipartImage(c.photos[rng.IntN(len(c.photos))], map[string]string{"k": strconv.Itoa(c.o.k)})
		return c.request(ctx, "POST", base+"/search", ct, body)
	case "similar":
		id := c.ids[rng.IntN(len(c.ids))]
		return c.request(ctx, "GET", base+"/items/"+url.PathEscape(id)+"/similar?k="+strconv.Itoa(c.o.k), "", nil)
	case "ingest":
		c.mu.Lock()
		c.n++
		id := fmt.Sprintf("load-%d-%d", time.Now().UnixNano(), c.n)
		c.mu.Unlock()
		img, err := augment(c.photos[rng.IntN(len(c.photos))], rng)
		if err != nil {
			return 0, err
		}
		body, ct := multipartImage(img, map[string]string{"id": id, "metadata": `{"source":"loadgen"}`})
		status, err := c.request(ctx, "POST", base+"/items", ct, body)
		if status == http.StatusCreated {
			c.mu.Lock()
			c.added = append(c.added, id)
			c.mu.Unlock()
		}
		return status, err
	case "delete":
		c.mu.Lock()
		if len(c.added) == 0 {
			c.mu.Unlock()
			return c.request(ctx, "GET", base+"/items?limit=1", "", nil)
		}
		id := c.added[len(c.added)-1]
		c.added = c.added[:len(c.added)-1]
		c.mu.Unlock()
		return c.request(ctx, "DELETE", base+"/items/"+url.PathEscape(id), "", nil)
	}
	return 0, fmt.Errorf("unknown op %s", op)
}

func (c *client) request(ctx context.Context, method, u, ct string, body []byte) (int, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return 0, err
	}
	if ct != "" {
		req.Header.Set("Content-Type", ct)
	}
	if c.o.apiKey != "" {
		req.Header.Set("Authorization", "Bearer "+c.o.apiKey)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, nil
}

func multipartImage(img []byte, fields map[string]string) ([]byte, string) {
	var buf bytes.Buffer
	w := multipart.NewWriter(&buf)
	fw, _ := w.CreateFormFile("image", "q.jpg")
	fw.Write(img)
	keys := make([]string, 0, len(fields))
	for k := range fields {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		w.WriteField(k, fields[k])
	}
	w.Close()
	return buf.Bytes(), w.FormDataContentType()
}

// augment makes a distinct photo from a source: a random crop of 60–100%, maybe mirrored, saved at
// 640 px. Seeding with augmented copies gives a large catalog with realistic, non-identical vectors.
func augment(src []byte, rng *rand.Rand) ([]byte, error) {
	img, _, err := image.Decode(bytes.NewReader(src))
	if err != nil {
		return nil, err
	}
	b := img.Bounds()
	f := 0.6 + 0.4*rng.Float64()
	cw, ch := int(float64(b.Dx())*f), int(float64(b.Dy())*f)
	x0, y0 := b.Min.X+rng.IntN(b.Dx()-cw+1), b.Min.Y+rng.IntN(b.Dy()-ch+1)
	scale := 640 / float64(max(cw, ch))
	dst := image.NewRGBA(image.Rect(0, 0, max(1, int(float64(cw)*scale)), max(1, int(float64(ch)*scale))))
	draw.ApproxBiLinear.Scale(dst, dst.Bounds(), img, image.Rect(x0, y0, x0+cw, y0+ch), draw.Src, nil)
	if rng.IntN(2) == 0 {
		w := dst.Bounds().Dx()
		for y := 0; y < dst.Bounds().Dy(); y++ {
			row := dst.Pix[y*dst.Stride : y*dst.Stride+4*w]
			for i, j := 0, w-1; i < j; i, j = i+1, j-1 {
				for k := 0; k < 4; k++ {
					row[4*i+k], row[4*j+k] = row[4*j+k], row[4*i+k]
				}
			}
		}
	}
	var out bytes.Buffer
	if err := jpeg.Encode(&out, dst, &jpeg.Options{Quality: 85}); err != nil {
		return nil, err
	}
	return out.Bytes(), nil
}

func (c *client) loadPhotos() error {
	entries, err := os.ReadDir(c.o.images)
	if err != nil {
		return fmt.Errorf("-images: %w", err)
	}
	for _, e := range entries {
		ext := strings.ToLower(filepath.Ext(e.Name()))
		if e.IsDir() || (ext != ".jpg" && ext != ".jpeg" && ext != ".png") {
			continue
		}
		b, err := os.ReadFile(filepath.Join(c.o.images, e.Name()))
		if err != nil {
			return err
		}
		c.photos = append(c.photos, b)
	}
	if len(c.photos) == 0 {
		return fmt.Errorf("-images %s holds no JPEG/PNG photos", c.o.images)
	}
	return nil
}

func (c *client) count(ctx context.Context) int {
	req, _ := http.NewRequestWithContext(ctx, "GET", c.o.url+"/v1/collections/"+url.PathEscape(c.o.collection), nil)
	if c.o.apiKey != "" {
		req.Header.Set("Authorization", "Bearer "+c.o.apiKey)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	var info struct{ Count int }
	json.NewDecoder(resp.Body).Decode(&info)
	return info.Count
}

// seedTo ingests augmented photos in batches until the collection holds n items.
func (c *client) seedTo(ctx context.Context, n int) error {
	rng := rand.New(rand.NewPCG(42, 42))
	have := c.count(ctx)
	if have < 0 {
		return fmt.Errorf("cannot reach %s", c.o.url)
	}
	start, startCount := time.Now(), have
	for have < n && ctx.Err() == nil {
		var buf bytes.Buffer
		w := multipart.NewWriter(&buf)
		batch := min(32, n-have)
		for i := 0; i < batch; i++ {
			img, err := augment(c.photos[rng.IntN(len(c.photos))], rng)
			if err != nil {
				return err
			}
			fw, _ := w.CreateFormFile("image", fmt.Sprintf("seed-%d.jpg", have+i))
			fw.Write(img)
			w.WriteField("id", fmt.Sprintf("seed-%07d", have+i))
		}
		w.Close()
		status, err := c.request(ctx, "POST", c.o.url+"/v1/collections/"+url.PathEscape(c.o.collection)+"/items:batch", w.FormDataContentType(), buf.Bytes())
		if err != nil {
			return fmt.Errorf("seed: %w", err)
		}
		if status == http.StatusTooManyRequests || status == http.StatusServiceUnavailable {
			time.Sleep(200 * time.Millisecond)
			continue
		}
		if status != http.StatusOK {
			return fmt.Errorf("seed: batch answered %d", status)
		}
		have = c.count(ctx)
		fmt.Fprintf(os.Stderr, "\rseeding: %d/%d items (%.0f/s)", have, n, float64(have-startCount)/time.Since(start).Seconds())
	}
	fmt.Fprintln(os.Stderr)
	return ctx.Err()
}

func (c *client) loadIDs(ctx context.Context) error {
	cursor := ""
	for len(c.ids) < 20000 {
		u := c.o.url + "/v1/collections/" + url.PathEscape(c.o.collection) + "/items?limit=1000&cursor=" + url.QueryEscape(cursor)
		req, _ := http.NewRequestWithContext(ctx, "GET", u, nil)
		if c.o.apiKey != "" {
			req.Header.Set("Authorization", "Bearer "+c.o.apiKey)
		}
		resp, err := c.http.Do(req)
		if err != nil {
			return err
		}
		var page struct {
			Items      []struct{ ID string }
			NextCursor string `json:"next_cursor"`
		}
		err = json.NewDecoder(resp.Body).Decode(&page)
		resp.Body.Close()
		if err != nil {
			return fmt.Errorf("list items: %w", err)
		}
		for _, it := range page.Items {
			c.ids = append(c.ids, it.ID)
		}
		if page.NextCursor == "" {
			break
		}
		cursor = page.NextCursor
	}
	if len(c.ids) == 0 {
		return errors.New("the collection is empty: seed it first (-seed N)")
	}
	return nil
}

// processStats reads the server's RSS (MB) and goroutine count from /metrics.
func (c *client) processStats(ctx context.Context) (rssMB, goroutines float64, err error) {
	req, _ := http.NewRequestWithContext(ctx, "GET", c.o.url+"/metrics", nil)
	if c.o.apiKey != "" {
		req.Header.Set("Authorization", "Bearer "+c.o.apiKey)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, 0, err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(body), "\n") {
		if v, ok := strings.CutPrefix(line, "process_resident_memory_bytes "); ok {
			f, _ := strconv.ParseFloat(v, 64)
			rssMB = f / (1 << 20)
		}
		if v, ok := strings.CutPrefix(line, "go_goroutines "); ok {
			goroutines, _ = strconv.ParseFloat(v, 64)
		}
	}
	return rssMB, goroutines, nil
}

func summarize(rs []opResult, elapsed time.Duration, conc int) report {
	by := map[string][]opResult{}
	for _, r := range rs {
		by[r.op] = append(by[r.op], r)
	}
	rep := report{DurationS: elapsed.Seconds(), Concurrency: conc}
	ops := make([]string, 0, len(by))
	for op := range by {
		ops = append(ops, op)
	}
	sort.Strings(ops)
	for _, op := range ops {
		list := by[op]
		var lat []float64
		statuses := map[string]int{}
		for _, r := range list {
			key := strconv.Itoa(r.status)
			if r.err != nil {
				key = "error"
			}
			statuses[key]++
			if r.err == nil && r.status < 400 {
				lat = append(lat, float64(r.latency.Microseconds())/1000)
			}
		}
		sort.Float64s(lat)
		q := func(p float64) float64 {
			if len(lat) == 0 {
				return 0
			}
			return lat[min(len(lat)-1, int(p*float64(len(lat))))]
		}
		var mx float64
		if len(lat) > 0 {
			mx = lat[len(lat)-1]
		}
		rep.Ops = append(rep.Ops, opReport{Op: op, Count: len(list), PerS: float64(len(list)) / elapsed.Seconds(),
			P50: q(.50), P95: q(.95), P99: q(.99), Max: mx, Statuses: statuses})
	}
	return rep
}

func printReport(r report) {
	fmt.Printf("%.1f s at concurrency %d, collection holds %d items\n", r.DurationS, r.Concurrency, r.Items)
	w := 8
	for _, o := range r.Ops {
		w = max(w, len(o.Op))
	}
	fmt.Printf("%-*s %8s %9s %9s %9s %9s %9s  %s\n", w, "op", "count", "per_s", "p50_ms", "p95_ms", "p99_ms", "max_ms", "statuses")
	for _, o := range r.Ops {
		fmt.Printf("%-*s %8d %9.1f %9.2f %9.2f %9.2f %9.2f  %v\n", w, o.Op, o.Count, o.PerS, o.P50, o.P95, o.P99, o.Max, o.Statuses)
	}
	fmt.Printf("server RSS MB over time: %v\n", fmtSeries(r.RSSMB))
	fmt.Printf("server goroutines over time: %v\n", fmtSeries(r.Goroutines))
}

func fmtSeries(xs []float64) string {
	parts := make([]string, len(xs))
	for i, x := range xs {
		parts[i] = strconv.FormatFloat(x, 'f', 0, 64)
	}
	return "[" + strings.Join(parts, " ") + "]"
}
