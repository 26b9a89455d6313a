package api

import (
	"errors"
	"net/http"
	"strings"

	"github.com/gofiber/fiber/v2"

	"github.com/lookalike/lookalike/index"
	"github.com/lookalike/lookalike/lifecycle"
)

// POST /v1/collections/{c}/tune: learn a projection from the collection's own photos and rebuild
// the collection into it (docs/lifecycle.md, "Learned projection"). The answer is the rebuild job,
// in state learning; it then goes on like any rebuild (GET .../rebuild, report, switch).

// tuneRequest is the body; every field may be left out.
type tuneRequest struct {
	// Dims: output dimensions (default 512); 0 turns the projection off.
	Dims *int `json:"dims"`
	// Power: each axis is divided by eigenvalue^power: 0 (the default) is plain PCA, 0.5 whitening.
	Power *float64 `json:"power"`
	// Sample: at most this many photos are learned from (default 2000).
	Sample *int `json:"sample"`
	// Projection "none" turns the projection off, as dims 0 does.
	Projection string `json:"projection"`
}

// defaultTuneDims is the dimension of a tune that names none (issue 13's prototype: 512-d).
const defaultTuneDims = 512

// options validates the body's shape; ranges are the lifecycle manager's to check.
func (r tuneRequest) options() (lifecycle.TuneOptions, error) {
	o := lifecycle.TuneOptions{Dims: defaultTuneDims}
	switch p := strings.ToLower(strings.TrimSpace(r.Projection)); {
	case p == "none" && r.Dims != nil && *r.Dims != 0:
		return o, badRequest(`"projection":"none" and "dims" %d contradict each other`, *r.Dims).with("parameter", "projection")
	case p == "none":
		return lifecycle.TuneOptions{}, nil
	case p != "":
		return o, badRequest(`projection %q: only "none" is accepted (name the dimensions with "dims")`, r.Projection).with("parameter", "projection")
	}
	if r.Dims != nil {
		o.Dims = *r.Dims
	}
	if r.Power != nil {
		o.Power = *r.Power
	}
	if r.Sample != nil {
		o.Sample = *r.Sample
		if o.Sample <= 0 {
			return o, errorf(http.StatusBadRequest, "invalid_tune", "sample %d: want a positive number of photos", o.Sample).with("parameter", "sample")
		}
	}
	if o.Dims < 0 {
		return o, errorf(http.StatusBadRequest, "invalid_tune", "dims %d: want 0 (off) or a number of dimensions", o.Dims).with("parameter", "dims")
	}
	return o, nil
}

func (s *Server) handleTune(c *fiber.Ctx) error {
	col, err := s.collection(c)
	if err != nil {
		return err
	}
	var req tuneRequest
	if body := c.Body(); len(body) > 0 {
		if err := decodeJSONBody(body, &req); err != nil {
			return err
		}
	}
	o, err := req.options()
	if err != nil {
		return err
	}
	base, _ := index.ParseGeneration(col.Name())
	j, err := s.lifecycle.Tune(base, o)
	if err != nil {
		return tuneErr(err)
	}
	return c.Status(http.StatusAccepted).JSON(j)
}

// tuneErr maps the refusals of a tune; the others go through classify.
func tuneErr(err error) error {
	var few *lifecycle.TooFewItemsError
	switch {
	case errors.As(err, &few):
		return errorf(http.StatusConflict, "too_few_items", "%s", err).with("items", few.Have).with("needed", few.Need).with("dims", few.Dims)
	case errors.Is(err, lifecycle.ErrNotRegional):
		return errorf(http.StatusConflict, "not_regional", "%s", err).with("parameter", "profile")
	case errors.Is(err, lifecycle.ErrTuneInput):
		return errorf(http.StatusBadRequest, "invalid_tune", "%s", err)
	case errors.Is(err, lifecycle.ErrSameVectors):
		return errorf(http.StatusBadRequest, "nothing_to_rebuild", "%s", err)
	}
	return err
}

// channelWeights carries a vector of col's space back into the model's channels, where explain's
// heatmap is computed: v itself unless col's vectors are projected, else Pᵀv, whose dot product with
// a region's channels is that region's contribution to the projected score (before the
// per-region normalisation).
func (s *Server) channelWeights(col *index.Collection, v []float32) []float32 {
	name := s.engineOf(col).Info().Projection
	if name == "" {
		return v
	}
	p, err := s.projections.Get(name)
	if err != nil || len(v) != p.Dims {
		return v
	}
	out := make([]float32, p.In)
	for d, y := range v {
		row := p.P[d*p.In : (d+1)*p.In]
		for k, x := range row {
			out[k] += x * y
		}
	}
	return out
}
