package project

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/viterin/vek/vek32"
	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/blas64"
	"gonum.org/v1/gonum/mat"
)

// Defaults and bounds of Options.
const (
	// DefaultDims is the prototype's output dimension (issue 13: 512-d, 0.839 Oxford mAP).
	DefaultDims = 512
	// DefaultMaxRegions bounds the regions the covariance is computed from: 20 000 1280-d regions
	// take ~10 s of one core; more changes the leading axes little.
	DefaultMaxRegions = 20000
	// MinDims and MaxDims bound ParseName's dimensions (MaxDims: the default model's channels).
	MinDims = 16
	MaxDims = 1280
	// DefaultPower is the exponent of the eigenvalues the axes are divided by in a "pw<dims>"
	// request: 0.5 is PCA-whitening. Power 0 ("pca<dims>") is plain PCA: no axis is rescaled.
	DefaultPower = 0.5
)

// Options tunes Learn; the zero value means the defaults.
type Options struct {
	// Dims is the output dimension (0 = DefaultDims): the leading principal axes kept. At most the
	// input dimension and fewer than the regions learned from.
	Dims int
	// MaxRegions caps the regions used (0 = DefaultMaxRegions), taken at an even stride.
	MaxRegions int
	// Power: each axis is scaled by eigenvalue^-Power, in [0, 1]. 0 (the zero value) is plain
	// PCA: centre, rotate onto the leading axes, cut; DefaultPower (0.5) is PCA-whitening as in
	// Tolias et al. and Radenović et al.; values between shrink the whitening towards plain PCA.
	// ParseName gives DefaultPower for "pw<dims>" and 0 for "pca<dims>".
	Power float64
}

// Projection is a learned PCA or PCA-whitening: y = P (x - mean), P = diag(λ^-power) Vᵀ over the
// leading Dims eigenvectors V of the regions' covariance (power 0: plain PCA).
type Projection struct {
	In, Dims int
	Power    float64
	Mean     []float32 // In
	P        []float32 // Dims x In, row-major
	Eigen    []float64 // the Dims leading eigenvalues, descending (for reports)
	bias     []float32 // P·Mean, so that y = P x - bias
	hash     string
}

// Learn learns a PCA-whitening from the regional vectors in regions (n rows of in values each,
// back to back).
func Learn(regions []float32, in int, o Options) (*Projection, error) {
	if in <= 0 || len(regions)%in != 0 {
		return nil, fmt.Errorf("%w: %d values are not rows of %d", ErrInput, len(regions), in)
	}
	dims := cmpOr(o.Dims, DefaultDims)
	maxN := cmpOr(o.MaxRegions, DefaultMaxRegions)
	power := o.Power
	n := len(regions) / in
	if dims > in || dims >= n || !(power >= 0 && power <= 1) {
		return nil, fmt.Errorf("%w: %d regions of %d values cannot give %d dims (power %g)", ErrInput, n, in, dims, power)
	}
	rows := sampleRows(n, maxN)
	mean := make([]float64, in)
	for _, r := range rows {
		for k, x := range regions[r*in : (r+1)*in] {
			mean[k] += float64(x)
		}
	}
	for k := range mean {
		mean[k] /= float64(len(rows))
	}
	cov := covariance(regions, in, rows, mean)
	var es mat.EigenSym
	if !es.Factorize(cov, true) {
		return nil, fmt.Errorf("%w: the covariance does not factorise", ErrInput)
	}
	vals := es.Values(nil) // ascending
	var vecs mat.Dense
	es.VectorsTo(&vecs)
	p := &Projection{In: in, Dims: dims, Power: power, Mean: make([]float32, in), P: make([]float32, dims*in), Eigen: make([]float64, dims)}
	for k, m := range mean {
		p.Mean[k] = float32(m)
	}
	// a floor keeps axes without variance (constant channels) from dividing by zero
	floor := max(vals[len(vals)-1], 1e-30) * 1e-9
	for d := 0; d < dims; d++ {
		col := len(vals) - 1 - d
		lam := max(vals[col], floor)
		p.Eigen[d] = vals[col]
		scale := math.Pow(lam, -power) // 1 for plain PCA (power 0)
		v := mat.Col(nil, col, &vecs)
		// a fixed sign per axis (its largest component positive) makes learning deterministic
		big := 0
		for k := range v {
			if math.Abs(v[k]) > math.Abs(v[big]) {
				big = k
			}
		}
		if v[big] < 0 {
			scale = -scale
		}
		row := p.P[d*in : (d+1)*in]
		for k := range v {
			row[k] = float32(v[k] * scale)
		}
	}
	p.init()
	return p, nil
}

func cmpOr(v, def int) int {
	if v > 0 {
		return v
	}
	return def
}

// sampleRows picks up to maxN of n rows at an even stride (all when n <= maxN).
func sampleRows(n, maxN int) []int {
	k := min(n, maxN)
	out := make([]int, k)
	for i := range out {
		out[i] = int(int64(i) * int64(n) / int64(k))
	}
	return out
}

// covariance is the population covariance (divided by the row count) of the chosen rows, computed
// in blocks through a symmetric rank-k update so the centred rows are never all in memory.
func covariance(regions []float32, in int, rows []int, mean []float64) *mat.SymDense {
	const block = 1024
	c := blas64.Symmetric{N: in, Stride: in, Data: make([]float64, in*in), Uplo: blas.Upper}
	buf := make([]float64, block*in)
	for lo := 0; lo < len(rows); lo += block {
		hi := min(lo+block, len(rows))
		a := buf[:(hi-lo)*in]
		for i, r := range rows[lo:hi] {
			for k, x := range regions[r*in : (r+1)*in] {
				a[i*in+k] = float64(x) - mean[k]
			}
		}
		blas64.Syrk(blas.Trans, 1/float64(len(rows)), blas64.General{Rows: hi - lo, Cols: in, Stride: in, Data: a}, 1, c)
	}
	return mat.NewSymDense(in, c.Data)
}

// init derives the bias and the hash from the learned fields.
func (p *Projection) init() {
	p.bias = make([]float32, p.Dims)
	for d := range p.bias {
		p.bias[d] = vek32.Dot(p.P[d*p.In:(d+1)*p.In], p.Mean)
	}
	b, _ := p.MarshalBinary()
	h := sha256.Sum256(b)
	p.hash = hex.EncodeToString(h[:4])
}

// Hash is 8 hex digits of the SHA-256 of the serialised projection.
func (p *Projection) Hash() string { return p.hash }

// Name is the projection's part of a profile name: "pca<dims>:<hash>" for plain PCA (power 0),
// "pw<dims>:<hash>" for a whitening (any other power; the hash tells powers apart).
func (p *Projection) Name() string { return fmt.Sprintf("%s%d:%s", p.kind(), p.Dims, p.hash) }

// kind is the name's prefix: "pca" for plain PCA, "pw" for a whitening.
func (p *Projection) kind() string {
	if p.Power == 0 {
		return "pca"
	}
	return "pw"
}

// Region writes into dst (len Dims) the projection of one region x (len In), L2-normalised.
func (p *Projection) Region(dst, x []float32) {
	for d := range dst[:p.Dims] {
		dst[d] = vek32.Dot(p.P[d*p.In:(d+1)*p.In], x) - p.bias[d]
	}
	if n := vek32.Norm(dst); n > 0 {
		vek32.MulNumber_Inplace(dst, 1/n)
	}
}

// Pool writes into dst (len Dims) the descriptor of one image from its regional vectors: regions
// holds sum(counts) rows of In values, counts[i] of them for scale i. Per scale the projected,
// L2-normalised regions are summed and the sum L2-normalised (R-MAC); the scales are summed and
// L2-normalised, as the engine does without a projection. scratch, if at least 2*Dims long, is
// used instead of allocating.
func (p *Projection) Pool(dst, regions []float32, counts []int, scratch []float32) error {
	total := 0
	for _, c := range counts {
		total += c
	}
	if len(dst) != p.Dims || len(regions) != total*p.In {
		return fmt.Errorf("%w: %d values for %d regions of %d into %d dims (want %d)", ErrDims, len(regions), total, p.In, len(dst), p.Dims)
	}
	if len(scratch) < 2*p.Dims {
		scratch = make([]float32, 2*p.Dims)
	}
	cur, scale := scratch[:p.Dims], scratch[p.Dims:2*p.Dims]
	clear(dst)
	r := 0
	for _, c := range counts {
		clear(scale)
		for ; c > 0; c-- {
			p.Region(cur, regions[r*p.In:(r+1)*p.In])
			vek32.Add_Inplace(scale, cur)
			r++
		}
		if n := vek32.Norm(scale); n > 0 {
			vek32.MulNumber_Inplace(scale, 1/n)
			vek32.Add_Inplace(dst, scale)
		}
	}
	if n := vek32.Norm(dst); n > 0 {
		vek32.MulNumber_Inplace(dst, 1/n)
	}
	return nil
}

// magic and version of the serialised form.
const (
	magic   = "LKPW"
	version = 1
)

// MarshalBinary serialises the projection: magic, version, In, Dims, Power, Mean, P, Eigen, all
// little-endian.
func (p *Projection) MarshalBinary() ([]byte, error) {
	b := make([]byte, 0, 24+4*(len(p.Mean)+len(p.P))+8*len(p.Eigen))
	b = append(b, magic...)
	b = binary.LittleEndian.AppendUint32(b, version)
	b = binary.LittleEndian.AppendUint32(b, uint32(p.In))
	b = binary.LittleEndian.AppendUint32(b, uint32(p.Dims))
	b = binary.LittleEndian.AppendUint64(b, math.Float64bits(p.Power))
	for _, x := range slices.Concat(p.Mean, p.P) {
		b = binary.LittleEndian.AppendUint32(b, math.Float32bits(x))
	}
	for _, x := range p.Eigen {
		b = binary.LittleEndian.AppendUint64(b, math.Float64bits(x))
	}
	return b, nil
}

// Unmarshal reads a projection MarshalBinary wrote; ErrFormat when it is not one.
func Unmarshal(b []byte) (*Projection, error) {
	if len(b) < 24 || string(b[:4]) != magic {
		return nil, fmt.Errorf("%w: no header", ErrFormat)
	}
	if v := binary.LittleEndian.Uint32(b[4:]); v != version {
		return nil, fmt.Errorf("%w: version %d, want %d", ErrFormat, v, version)
	}
	in := int(binary.LittleEndian.Uint32(b[8:]))
	dims := int(binary.LittleEndian.Uint32(b[12:]))
	power := math.Float64frombits(binary.LittleEndian.Uint64(b[16:]))
	if in <= 0 || dims <= 0 || dims > in || in > 1<<16 || len(b) != 24+4*(in+dims*in)+8*dims {
		return nil, fmt.Errorf("%w: %d bytes for %d -> %d dims", ErrFormat, len(b), in, dims)
	}
	if !(power >= 0 && power <= 1) {
		return nil, fmt.Errorf("%w: power %g outside [0, 1]", ErrFormat, power)
	}
	p := &Projection{In: in, Dims: dims, Power: power, Mean: make([]float32, in), P: make([]float32, dims*in), Eigen: make([]float64, dims)}
	o := 24
	for _, dst := range [][]float32{p.Mean, p.P} {
		for k := range dst {
			dst[k] = math.Float32frombits(binary.LittleEndian.Uint32(b[o:]))
			o += 4
		}
	}
	for k := range p.Eigen {
		p.Eigen[k] = math.Float64frombits(binary.LittleEndian.Uint64(b[o:]))
		o += 8
	}
	// A non-finite value would turn every vector it projects into NaNs, which the index refuses
	// item by item: refuse the projection once, here.
	for _, x := range slices.Concat(p.Mean, p.P) {
		if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
			return nil, fmt.Errorf("%w: a non-finite value", ErrFormat)
		}
	}
	p.init()
	return p, nil
}

// ParseName reads a projection request into Options: "pca<dims>" is plain PCA (power 0, no
// parameter besides the dimension), "pw<dims>[/<power>]" a PCA-whitening (power DefaultPower, or
// the given one in (0, 1]): e.g. pca512, pca256, pw512, pw512/0.25. "" or "none" gives ok false.
func ParseName(s string) (o Options, ok bool, err error) {
	s = strings.ToLower(strings.TrimSpace(s))
	if s == "" || s == "none" {
		return Options{}, false, nil
	}
	bad := fmt.Errorf("%w: projection %q: want pca<dims> or pw<dims>[/<power>], dims in %d..%d, power in (0, 1] (e.g. pca512, pw512, pw256/0.25)", ErrInput, s, MinDims, MaxDims)
	var d string
	if rest, found := strings.CutPrefix(s, "pca"); found {
		d = rest
	} else if rest, found := strings.CutPrefix(s, "pw"); found {
		var pw string
		var hasPower bool
		d, pw, hasPower = strings.Cut(rest, "/")
		o.Power = DefaultPower
		if hasPower {
			// power 0 is named pca<dims>: one name per projection
			if o.Power, err = strconv.ParseFloat(pw, 64); err != nil || !(o.Power > 0 && o.Power <= 1) {
				return Options{}, false, bad
			}
		}
	} else {
		return Options{}, false, bad
	}
	n, err := strconv.Atoi(d)
	if err != nil || n < MinDims || n > MaxDims {
		return Options{}, false, bad
	}
	o.Dims = n
	return o, true, nil
}
