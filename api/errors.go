package api

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/gofiber/fiber/v2"

	"github.com/lookalike/lookalike/embed"
	"github.com/lookalike/lookalike/index"
	"github.com/lookalike/lookalike/intel"
)

// Error is the one error shape every endpoint returns:
// {"error": {"code": "...", "message": "...", "details": {...}}}. Handlers return it (or any error,
// which errorHandler classifies) and never write error bodies themselves.
type Error struct {
	Status  int            `json:"-"`
	Code    string         `json:"code"`
	Message string         `json:"message"`
	Details map[string]any `json:"details,omitempty"`
	// RetryAfter, when set, is sent as the Retry-After header (seconds).
	RetryAfter int `json:"-"`
}

func (e *Error) Error() string { return fmt.Sprintf("%d %s: %s", e.Status, e.Code, e.Message) }

func errorf(status int, code, format string, args ...any) *Error {
	return &Error{Status: status, Code: code, Message: fmt.Sprintf(format, args...)}
}

func (e *Error) with(key string, v any) *Error {
	if e.Details == nil {
		e.Details = map[string]any{}
	}
	e.Details[key] = v
	return e
}

// classify maps errors from the packages below to the API's statuses and codes. Anything it does
// not know is a bug: 500, with the message kept out of the response.
func classify(err error) *Error {
	var apiErr *Error
	if errors.As(err, &apiErr) {
		return apiErr
	}
	var fe *fiber.Error
	if errors.As(err, &fe) {
		switch fe.Code {
		case http.StatusRequestEntityTooLarge:
			return errorf(fe.Code, "body_too_large", "request body is larger than the configured limit")
		case http.StatusNotFound:
			return errorf(fe.Code, "not_found", "no such route")
		case http.StatusMethodNotAllowed:
			return errorf(fe.Code, "method_not_allowed", "method not allowed on this route")
		case http.StatusRequestTimeout:
			return errorf(fe.Code, "timeout", "request took too long to arrive")
		case http.StatusBadGateway:
			// fiber's name for a connection error while reading the request: the client is gone.
			return errorf(http.StatusBadRequest, "connection_error", "the request could not be read: %s", fe.Message)
		}
		if fe.Code >= 400 && fe.Code < 500 {
			return errorf(fe.Code, "bad_request", "%s", fe.Message)
		}
	}
	msg := err.Error()
	switch {
	case errors.Is(err, embed.ErrEmpty):
		return errorf(http.StatusBadRequest, "empty_image", "the image is empty")
	case errors.Is(err, embed.ErrTooLarge):
		return errorf(http.StatusRequestEntityTooLarge, "image_too_large", "%s", msg)
	case errors.Is(err, embed.ErrNotImage):
		return errorf(http.StatusUnsupportedMediaType, "not_an_image", "the file is not an image Lookalike can read (JPEG, PNG, GIF, WebP, BMP, TIFF)")
	case errors.Is(err, embed.ErrUnsupported):
		return errorf(http.StatusUnsupportedMediaType, "unsupported_image", "%s", msg)
	case errors.Is(err, embed.ErrCorrupt):
		return errorf(http.StatusUnprocessableEntity, "corrupt_image", "the image is corrupt or truncated: %s", msg)
	case errors.Is(err, embed.ErrBadCrop):
		return errorf(http.StatusBadRequest, "bad_crop", "%s", msg)
	case errors.Is(err, index.ErrFingerprintMismatch):
		return errorf(http.StatusConflict, "fingerprint_mismatch", "%s", msg)
	case errors.Is(err, index.ErrExists):
		return errorf(http.StatusConflict, "already_exists", "%s", msg)
	case errors.Is(err, index.ErrNotFound):
		return errorf(http.StatusNotFound, "not_found", "%s", msg)
	case errors.Is(err, index.ErrInvalidName):
		return errorf(http.StatusBadRequest, "invalid_name", "%s", msg)
	case errors.Is(err, index.ErrInvalidItem):
		return errorf(http.StatusBadRequest, "invalid_item", "%s", msg)
	case errors.Is(err, index.ErrDimMismatch):
		return errorf(http.StatusBadRequest, "dimension_mismatch", "%s", msg)
	case errors.Is(err, index.ErrInvalidFilter):
		return errorf(http.StatusBadRequest, "invalid_filter", "%s", msg)
	case errors.Is(err, index.ErrReadOnly):
		return errorf(http.StatusServiceUnavailable, "read_only", "the data store is read-only: %s", msg)
	case errors.Is(err, embed.ErrClosed):
		return errorf(http.StatusServiceUnavailable, "shutting_down", "the server is shutting down")
	case errors.Is(err, index.ErrStorage):
		return errorf(http.StatusServiceUnavailable, "storage_unavailable", "the data store refused the write: %s", msg)
	case errors.Is(err, index.ErrClosed):
		return errorf(http.StatusServiceUnavailable, "shutting_down", "the server is shutting down")
	case errors.Is(err, intel.ErrInvalidTier):
		return errorf(http.StatusBadRequest, "invalid_tier", "%s", msg)
	case errors.Is(err, intel.ErrIDsRequired):
		return errorf(http.StatusBadRequest, "ids_required", "%s", msg)
	case errors.Is(err, intel.ErrKeepListed):
		return errorf(http.StatusBadRequest, "keep_listed", "%s", msg)
	case errors.Is(err, intel.ErrNoCluster):
		return errorf(http.StatusConflict, "no_cluster", "%s", msg)
	case errors.Is(err, intel.ErrNoThumbnail):
		return errorf(http.StatusConflict, "no_thumbnail", "%s", msg)
	}
	return errorf(http.StatusInternalServerError, "internal", "internal error")
}

// errorHandler is fiber's ErrorHandler: it writes the JSON error shape and counts the rejection.
func (s *Server) errorHandler(c *fiber.Ctx, err error) error {
	e := classify(err)
	if e.Status >= 500 && e.Code == "internal" {
		s.log.Error("request failed", "request_id", requestID(c), "route", routeLabel(c), "err", err)
	} else {
		s.log.Debug("request rejected", "request_id", requestID(c), "code", e.Code, "err", err)
	}
	s.metrics.rejected.WithLabelValues(e.Code).Inc()
	s.stats.reject(e.Code)
	if e.RetryAfter > 0 {
		c.Set(fiber.HeaderRetryAfter, fmt.Sprint(e.RetryAfter))
	}
	c.Status(e.Status)
	return c.JSON(fiber.Map{"error": e})
}
