package intel

import (
	"bytes"
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"image/jpeg"
	"image/png"
	"math"

	"github.com/lookalike/lookalike/embed"
	"github.com/lookalike/lookalike/embed/spec"
	"github.com/lookalike/lookalike/index"
)

// Heatmap returns, for each spatial cell of a [C,H,W] feature map, the cosine of the cell's
// C-vector with q (H*W values, row-major). Cells with a zero vector score 0. ErrNoFeatureMap when
// the shapes disagree.
func Heatmap(fmap []float32, shape [3]int, q []float32) ([]float32, error) {
	c, h, w := shape[0], shape[1], shape[2]
	if c != len(q) || len(fmap) != c*h*w || h == 0 || w == 0 {
		return nil, fmt.Errorf("%w: feature map %v does not match a %d-d query", ErrNoFeatureMap, shape, len(q))
	}
	var qn float64
	for _, v := range q {
		qn += float64(v) * float64(v)
	}
	qn = math.Sqrt(qn)
	out := make([]float32, h*w)
	for cell := range h * w {
		var d, n float64
		for ch := range c {
			v := float64(fmap[ch*h*w+cell])
			d += v * float64(q[ch])
			n += v * v
		}
		if n > 0 && qn > 0 {
			out[cell] = float32(d / (math.Sqrt(n) * qn))
		}
	}
	return out, nil
}

// CropBox is the part of an image the model saw (the centre crop of its preprocessing), in the
// image's pixels.
func CropBox(w, h int, ms spec.Model) image.Rectangle {
	if ms.Crop == "squash" || ms.InputSize == 0 {
		return image.Rect(0, 0, w, h)
	}
	side := float64(min(w, h)) * float64(ms.InputSize) / float64(ms.ResizeTarget())
	x0, y0 := (float64(w)-side)/2, (float64(h)-side)/2
	return image.Rect(int(x0+0.5), int(y0+0.5), int(x0+side+0.5), int(y0+side+0.5))
}

// Explanation is "why it matched": the heat of each cell of a result's feature map for a query,
// over the result's thumbnail.
type Explanation struct {
	Score      float32         // cosine of the query with the result's stored vector
	Heat       []float32       // Rows*Cols, row-major
	Rows, Cols int             // the feature map's grid
	Min, Max   float32         // range of Heat
	Box        image.Rectangle // the region of the thumbnail the grid covers, in thumbnail pixels
	thumb      image.Image
}

// Explain computes the heatmap of a result (its stored vector and thumbnail, and the embedding of
// that thumbnail with a feature map) for a query vector. ErrNoThumbnail without a thumbnail,
// ErrNoFeatureMap when the embedding carries no usable map.
func Explain(target index.Item, fm embed.Embedding, query []float32, ms spec.Model) (*Explanation, error) {
	if len(target.Thumbnail) == 0 {
		return nil, fmt.Errorf("%w: item %q", ErrNoThumbnail, target.ID)
	}
	heat, err := Heatmap(fm.FeatureMap, fm.FeatureMapShape, query)
	if err != nil {
		return nil, err
	}
	thumb, err := jpeg.Decode(bytes.NewReader(target.Thumbnail))
	if err != nil {
		return nil, fmt.Errorf("stored thumbnail of %q: %w", target.ID, err)
	}
	e := &Explanation{Score: index.Dot(query, target.Vector), Heat: heat, Rows: fm.FeatureMapShape[1], Cols: fm.FeatureMapShape[2],
		Min: heat[0], Max: heat[0], Box: CropBox(thumb.Bounds().Dx(), thumb.Bounds().Dy(), ms), thumb: thumb}
	for _, v := range heat {
		e.Min, e.Max = min(e.Min, v), max(e.Max, v)
	}
	return e, nil
}

// Grid is Heat as rows.
func (e *Explanation) Grid() [][]float32 {
	out := make([][]float32, 0, e.Rows)
	for r := range e.Rows {
		out = append(out, e.Heat[r*e.Cols:(r+1)*e.Cols])
	}
	return out
}

// PNG renders the heatmap over the thumbnail (RenderHeatmap) as a PNG.
func (e *Explanation) PNG(alpha float64) ([]byte, error) {
	var buf bytes.Buffer
	if err := png.Encode(&buf, RenderHeatmap(e.thumb, e.Heat, e.Rows, e.Cols, e.Box, alpha)); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// RenderHeatmap blends the heatmap (gh×gw cells over box) onto img: warm colours where the region
// matches the query, the area outside the model's crop dimmed. Values are scaled from the map's own
// minimum to its maximum so the contrast shows where, not how much; the score says how much.
func RenderHeatmap(img image.Image, heat []float32, gh, gw int, box image.Rectangle, alpha float64) *image.NRGBA {
	b := img.Bounds()
	out := image.NewNRGBA(image.Rect(0, 0, b.Dx(), b.Dy()))
	lo, hi := float32(math.Inf(1)), float32(math.Inf(-1))
	for _, v := range heat {
		lo, hi = min(lo, v), max(hi, v)
	}
	span := hi - lo
	if span < 1e-6 {
		span = 1
	}
	sample := func(x, y int) float64 {
		// Bilinear over cell centres.
		fx := (float64(x-box.Min.X)+0.5)/float64(box.Dx())*float64(gw) - 0.5
		fy := (float64(y-box.Min.Y)+0.5)/float64(box.Dy())*float64(gh) - 0.5
		fx, fy = math.Max(0, math.Min(fx, float64(gw-1))), math.Max(0, math.Min(fy, float64(gh-1)))
		x0, y0 := int(fx), int(fy)
		x1, y1 := min(x0+1, gw-1), min(y0+1, gh-1)
		ax, ay := fx-float64(x0), fy-float64(y0)
		at := func(cx, cy int) float64 { return float64((heat[cy*gw+cx] - lo) / span) }
		return (at(x0, y0)*(1-ax)+at(x1, y0)*ax)*(1-ay) + (at(x0, y1)*(1-ax)+at(x1, y1)*ax)*ay
	}
	for y := range b.Dy() {
		for x := range b.Dx() {
			r, g, bl, _ := img.At(b.Min.X+x, b.Min.Y+y).RGBA()
			pr, pg, pb := float64(r>>8), float64(g>>8), float64(bl>>8)
			if !(image.Point{x, y}).In(box) {
				out.SetNRGBA(x, y, color.NRGBA{uint8(pr * 0.35), uint8(pg * 0.35), uint8(pb * 0.35), 255})
				continue
			}
			cr, cg, cb := heatColour(sample(x, y))
			a := alpha
			out.SetNRGBA(x, y, color.NRGBA{uint8(pr*(1-a) + cr*a), uint8(pg*(1-a) + cg*a), uint8(pb*(1-a) + cb*a), 255})
		}
	}
	return out
}

// heatColour maps 0..1 to blue → cyan → yellow → red.
func heatColour(v float64) (r, g, b float64) {
	v = math.Max(0, math.Min(1, v))
	switch {
	case v < 1.0/3:
		t := v * 3
		return 0, 255 * t, 255
	case v < 2.0/3:
		t := (v - 1.0/3) * 3
		return 255 * t, 255, 255 * (1 - t)
	default:
		t := (v - 2.0/3) * 3
		return 255, 255 * (1 - t), 0
	}
}

// letterboxGrey is the padding of Letterbox: close to the mean ImageNet colour, so the padding
// looks like nothing in particular to the model.
var letterboxGrey = color.RGBA{124, 116, 104, 255}

// Letterbox pads a JPEG photo onto a square of neutral grey large enough that the model's centre
// crop (CropBox) takes in the whole photo, so a heatmap from the padded photo's feature map spans
// all of it instead of the middle square. It returns the padded JPEG and the region the crop covers
// in the photo's own pixels (at least the photo; with Explanation.Box set to it, RenderHeatmap
// draws over the whole photo). A model that squashes its input already sees the whole photo.
func Letterbox(photo []byte, ms spec.Model) ([]byte, image.Rectangle, error) {
	src, err := jpeg.Decode(bytes.NewReader(photo))
	if err != nil {
		return nil, image.Rectangle{}, fmt.Errorf("letterbox: %w", err)
	}
	w, h := src.Bounds().Dx(), src.Bounds().Dy()
	if ms.Crop == "squash" || ms.InputSize == 0 {
		return photo, image.Rect(0, 0, w, h), nil
	}
	// The crop is InputSize/ResizeTarget of the square's side: the side that makes it the photo's.
	side := int(math.Ceil(float64(max(w, h)) * float64(ms.ResizeTarget()) / float64(ms.InputSize)))
	canvas := image.NewRGBA(image.Rect(0, 0, side, side))
	draw.Draw(canvas, canvas.Bounds(), image.NewUniform(letterboxGrey), image.Point{}, draw.Src)
	off := image.Pt((side-w)/2, (side-h)/2)
	draw.Draw(canvas, image.Rectangle{Min: off, Max: off.Add(image.Pt(w, h))}, src, src.Bounds().Min, draw.Src)
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, canvas, &jpeg.Options{Quality: 92}); err != nil {
		return nil, image.Rectangle{}, fmt.Errorf("letterbox: %w", err)
	}
	return buf.Bytes(), CropBox(side, side, ms).Sub(off), nil
}

// Contrast makes the heatmap discriminative: each cell's heat becomes its cosine with the query
// minus its cosine with base, the average of the query's nearest matches. What every match shares
// with the query (background, the usual shape) cools down; what this one shares with the query
// beyond an average match stands out. fm is the embedding Explain was given.
func (e *Explanation) Contrast(fm embed.Embedding, base []float32) error {
	b, err := Heatmap(fm.FeatureMap, fm.FeatureMapShape, base)
	if err != nil {
		return err
	}
	if len(b) != len(e.Heat) {
		return fmt.Errorf("%w: baseline grid of %d cells for %d", ErrNoFeatureMap, len(b), len(e.Heat))
	}
	for i := range e.Heat {
		e.Heat[i] -= b[i]
	}
	e.Min, e.Max = e.Heat[0], e.Heat[0]
	for _, v := range e.Heat {
		e.Min, e.Max = min(e.Min, v), max(e.Max, v)
	}
	return nil
}

// MeanVector is the average of vecs (nil when there are none or their lengths differ).
func MeanVector(vecs [][]float32) []float32 {
	if len(vecs) == 0 {
		return nil
	}
	out := make([]float32, len(vecs[0]))
	for _, v := range vecs {
		if len(v) != len(out) {
			return nil
		}
		for i, x := range v {
			out[i] += x / float32(len(vecs))
		}
	}
	return out
}
