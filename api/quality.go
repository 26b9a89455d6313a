package api

import (
	"net/http"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/lookalike/lookalike/internal/config"
	"github.com/lookalike/lookalike/quality"
)

// The HTTP side of the live quality monitor (package quality): the feedback endpoint and the
// "quality" object of /v1/stats.

// registerQualityRoutes adds the feedback endpoint under /v1. Feedback takes the read scope: the
// storefront that searches is the one that reports clicks, and it changes no catalog data.
func (s *Server) registerQualityRoutes(v1 fiber.Router, read fiber.Handler) {
	v1.Post("/collections/:c/feedback", read, s.handleFeedback)
}

// feedbackRequest is the body of POST /v1/collections/{c}/feedback (quality.Feedback).
type feedbackRequest struct {
	QueryID string           `json:"query_id"`
	K       int              `json:"k"`
	Results []feedbackResult `json:"results"`
	Clicked []string         `json:"clicked"`
}

type feedbackResult struct {
	ID       string `json:"id"`
	Relevant *bool  `json:"relevant"`
}

// feedbackWindowJSON is quality.FeedbackSummary on the wire.
type feedbackWindowJSON struct {
	Events           int     `json:"events"`
	Judged           int     `json:"judged"`
	PrecisionAtK     float64 `json:"precision_at_k"`
	K                int     `json:"k"`
	Clicked          int     `json:"clicked"`
	ClickThroughRate float64 `json:"click_through_rate"`
}

func feedbackWindow(s quality.FeedbackSummary) feedbackWindowJSON {
	return feedbackWindowJSON{Events: s.Events, Judged: s.Judged, PrecisionAtK: s.PrecisionAtK, K: s.K, Clicked: s.Clicked, ClickThroughRate: s.ClickThroughRate}
}

// parseFeedback decodes and checks a feedback body (k defaults to limits.default_k).
func parseFeedback(body []byte, lim config.Limits) (quality.Feedback, error) {
	var req feedbackRequest
	if err := decodeJSONBody(body, &req); err != nil {
		return quality.Feedback{}, err
	}
	fb := quality.Feedback{QueryID: req.QueryID, K: req.K, Clicked: req.Clicked, Results: make([]quality.Judged, len(req.Results))}
	for i, r := range req.Results {
		fb.Results[i] = quality.Judged{ID: r.ID, Relevant: r.Relevant}
	}
	return fb, quality.CheckFeedback(&fb, lim)
}

func (s *Server) handleFeedback(c *fiber.Ctx) error {
	col, err := s.collection(c)
	if err != nil {
		return err
	}
	fb, err := parseFeedback(c.Body(), s.cfg.Limits)
	if err != nil {
		return err
	}
	sum, err := s.quality.RecordFeedback(col.Name(), fb)
	if err != nil {
		return err
	}
	return c.Status(http.StatusAccepted).JSON(fiber.Map{"recorded": true, "query_id": fb.QueryID, "window": feedbackWindow(sum)})
}

// qualityJSON is the "quality" object of /v1/stats; nil when there is nothing to show.
func qualityJSON(sum quality.Summary) fiber.Map {
	if sum.Empty() {
		return nil
	}
	out := fiber.Map{"window_s": int64(sum.Window.Seconds()), "recall_sample_rate": sum.RecallSampleRate}
	if len(sum.Collections) > 0 {
		cols := fiber.Map{}
		for name, c := range sum.Collections {
			entry := fiber.Map{}
			if r := c.Recall; r != nil {
				entry["ann_recall"] = fiber.Map{"mean": r.Mean, "samples": r.Samples, "window_samples": r.WindowSamples}
			}
			if c.Feedback != nil {
				entry["feedback"] = feedbackWindow(*c.Feedback)
			}
			if d := c.Drift; d != nil {
				m := fiber.Map{
					"queries": d.Queries, "low_score_share": d.LowScoreShare, "min_score": d.MinScore,
					"top1_score_mean": d.Top1Mean, "top1_score_p10": d.Top1P10, "top1_score_p50": d.Top1P50, "top1_score_p90": d.Top1P90,
				}
				if d.HasCentroid {
					m["centroid_distance"] = d.CentroidDistance
				}
				entry["drift"] = m
			}
			cols[name] = entry
		}
		out["collections"] = cols
	}
	if len(sum.Probes) > 0 {
		probes := fiber.Map{}
		for name, p := range sum.Probes {
			m := fiber.Map{"collection": p.Collection, "probes": p.Probes, "failed": p.Failed, "k": p.K, "runs": p.Runs}
			if p.Runs > 0 {
				m["precision_at_k"] = p.PrecisionAtK
				m["hit_rate_at_k"] = p.HitRateAtK
				m["last_run"] = p.LastRun.UTC().Format(time.RFC3339)
			}
			if p.LastError != "" {
				m["last_error"] = p.LastError
			}
			probes[name] = m
		}
		out["probes"] = probes
	}
	return out
}
