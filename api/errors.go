package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"runtime/debug"
	"strings"
	"syscall"

	"github.com/gofiber/fiber/v2"

	"github.com/lookalike/lookalike/embed"
	"github.com/lookalike/lookalike/index"
	"github.com/lookalike/lookalike/intel"
	"github.com/lookalike/lookalike/internal/edit"
	"github.com/lookalike/lookalike/internal/ingest"
	"github.com/lookalike/lookalike/lifecycle"
	"github.com/lookalike/lookalike/quality"
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
	msg := publicMessage(err)
	switch {
	case errors.Is(err, embed.ErrEmpty):
		return errorf(http.StatusBadRequest, "empty_image", "the image is empty")
	case errors.Is(err, embed.ErrTooLarge):
		return errorf(http.StatusRequestEntityTooLarge, "image_too_large", "%s", msg)
	case errors.Is(err, embed.ErrAspectRatio):
		return errorf(http.StatusUnprocessableEntity, "extreme_aspect_ratio", "%s", msg)
	case errors.Is(err, embed.ErrNotImage):
		return errorf(http.StatusUnsupportedMediaType, "not_an_image", "the file is not an image Lookalike can read (JPEG, PNG, GIF, WebP, BMP, TIFF)")
	case errors.Is(err, embed.ErrUnsupported):
		return errorf(http.StatusUnsupportedMediaType, "unsupported_image", "%s", msg)
	case errors.Is(err, embed.ErrCorrupt):
		return errorf(http.StatusUnprocessableEntity, "corrupt_image", "the image is corrupt or truncated: %s", msg)
	case errors.Is(err, embed.ErrBadCrop):
		return errorf(http.StatusBadRequest, "bad_crop", "%s", msg)
	case errors.Is(err, embed.ErrProfile):
		return errorf(http.StatusBadRequest, "invalid_profile", "%s", msg)
	case errors.Is(err, index.ErrFingerprintMismatch):
		return errorf(http.StatusConflict, "fingerprint_mismatch", "%s", msg)
	case classifyLifecycle(err, msg) != nil:
		return classifyLifecycle(err, msg)
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
	case errors.Is(err, index.ErrVersionConflict):
		return errorf(http.StatusConflict, "version_conflict", "%s", msg)
	case errors.Is(err, ingest.ErrDuplicate):
		return errorf(http.StatusConflict, "duplicate", "%s", msg)
	case errors.Is(err, ingest.ErrDuplicateID):
		return errorf(http.StatusBadRequest, "duplicate_id", "%s", msg)
	case errors.Is(err, index.ErrInvalidFilter):
		return errorf(http.StatusBadRequest, "invalid_filter", "%s", msg)
	case errors.Is(err, index.ErrInvalidQuery):
		return errorf(http.StatusBadRequest, "invalid_query", "%s", msg)
	case errors.Is(err, index.ErrDropped):
		// 404, not 409: the collection is gone and a retry gets collection_not_found; nothing the
		// client could change makes this request succeed.
		return errorf(http.StatusNotFound, "collection_dropped", "%s", msg)
	case errors.Is(err, index.ErrReadOnly):
		// Storage errors name the server's files: the client gets the reason, the log the rest.
		return errorf(http.StatusServiceUnavailable, "read_only", "the data store is read-only%s", osReason(err))
	case errors.Is(err, embed.ErrClosed):
		return errorf(http.StatusServiceUnavailable, "shutting_down", "the server is shutting down")
	case errors.Is(err, index.ErrStorage):
		return errorf(http.StatusServiceUnavailable, "storage_unavailable", "the data store refused the operation%s", osReason(err))
	case errors.Is(err, index.ErrClosed):
		return errorf(http.StatusServiceUnavailable, "shutting_down", "the server is shutting down")
	case errors.Is(err, quality.ErrInvalidFeedback):
		return errorf(http.StatusBadRequest, "bad_request", "%s", msg)
	case errors.Is(err, context.DeadlineExceeded):
		return errorf(http.StatusGatewayTimeout, "timeout", "the request took longer than the server allows (server.write_timeout)")
	case errors.Is(err, context.Canceled):
		return errorf(http.StatusServiceUnavailable, "cancelled", "the request was cancelled before it finished (the client left or the server is stopping)")
	case classifyEdits(err, msg) != nil:
		return classifyEdits(err, msg)
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

// packagePrefix matches the package names that the domain packages' sentinel errors start with
// ("index: not found"), at the start of the message or of a wrapped part.
var packagePrefix = regexp.MustCompile(`(^|: )(?:index|embed|intel|ingest|edit|quality|eval|config): `)

// publicMessage is err's message for a client: without the internal package names its sentinels
// carry ("index: version conflict: item ..." becomes "version conflict: item ..."), which say
// where in the server a failure arose, not what the client did.
func publicMessage(err error) string {
	return packagePrefix.ReplaceAllString(err.Error(), "$1")
}

// osReason is the operating system's word for a failure ("no space left on device"), without the
// path that *os.PathError would add, as " (reason)", or "" when there is none.
func osReason(err error) string {
	var errno syscall.Errno
	if errors.As(err, &errno) {
		return " (" + errno.Error() + ")"
	}
	// bbolt flattens some errors with %s (a failed file resize): look for the words instead.
	msg := err.Error()
	for _, e := range storageErrnos {
		if strings.Contains(msg, e.Error()) {
			return " (" + e.Error() + ")"
		}
	}
	return ""
}

var storageErrnos = []syscall.Errno{syscall.ENOSPC, syscall.EDQUOT, syscall.EFBIG, syscall.EROFS, syscall.EIO, syscall.EACCES, syscall.EPERM}

// hidesCause says whether the client's message leaves out what the log must keep.
func hidesCause(e *Error) bool {
	return e.Code == "internal" || e.Code == "storage_unavailable" || e.Code == "read_only"
}

// classifyLogged is classify for errors that a handler reports inside a successful body
// (per-item results of a batch): the log gets what the client does not see, as in errorHandler.
func (s *Server) classifyLogged(c *fiber.Ctx, err error) *Error {
	e := classify(err)
	s.logCause(c, e, err)
	return e
}

func (s *Server) logCause(c *fiber.Ctx, e *Error, err error) {
	switch {
	case err == error(e):
		// An *Error made by a handler says everything it knows in its message.
		s.log.Debug("request rejected", "request_id", requestID(c), "code", e.Code, "err", err)
	case e.Status >= 500 && e.Code == "internal":
		s.log.Error("request failed", "request_id", requestID(c), "route", routeLabel(c), "err", err)
	case hidesCause(e):
		s.log.Warn("storage error", "request_id", requestID(c), "route", routeLabel(c), "code", e.Code, "err", err)
	default:
		s.log.Debug("request rejected", "request_id", requestID(c), "code", e.Code, "err", err)
	}
}

// recoverPanic turns a handler's panic into a 500 carrying the request id, and logs the panic
// with its stack under that id: one bad request never takes the process (and every other request)
// down with it.
func (s *Server) recoverPanic(c *fiber.Ctx) (err error) {
	defer func() {
		if r := recover(); r != nil {
			s.log.Error("panic in handler", "request_id", requestID(c), "route", routeLabel(c), "method", methodLabel(c.Method()),
				"panic", fmt.Sprint(r), "stack", string(debug.Stack()))
			err = errorf(http.StatusInternalServerError, "internal", "internal error")
		}
	}()
	return c.Next()
}

// errorHandler is fiber's ErrorHandler: it writes the JSON error shape and counts the rejection.
func (s *Server) errorHandler(c *fiber.Ctx, err error) error {
	e := classify(err)
	s.logCause(c, e, err)
	if e.Status >= 500 && e.Code == "internal" {
		// The one thing the client can quote to find the log line.
		e = e.with("request_id", requestID(c))
	}
	s.metrics.rejected.WithLabelValues(e.Code).Inc()
	// The status page's "rejected inputs" are requests refused for what they sent: not a missing
	// item or route (404, 405), nor the server's own failures (5xx).
	if e.Status >= 400 && e.Status < 500 && e.Status != http.StatusNotFound && e.Status != http.StatusMethodNotAllowed {
		s.stats.reject(e.Code)
	}
	if e.RetryAfter > 0 {
		c.Set(fiber.HeaderRetryAfter, fmt.Sprint(e.RetryAfter))
	}
	c.Status(e.Status)
	return c.JSON(fiber.Map{"error": e})
}

// classifyEdits maps the errors of metadata edits and recommendations; nil for any other error.
func classifyEdits(err error, msg string) *Error {
	switch {
	case errors.Is(err, edit.ErrInvalidPatch):
		return errorf(http.StatusBadRequest, "invalid_patch", "%s", msg)
	case errors.Is(err, edit.ErrTooLarge):
		return errorf(http.StatusRequestEntityTooLarge, "metadata_too_large", "%s", msg)
	case errors.Is(err, intel.ErrInvalidExamples):
		return errorf(http.StatusBadRequest, "invalid_examples", "%s", msg)
	}
	return nil
}

// classifyLifecycle maps the errors of generations and rebuilds (docs/lifecycle.md); nil for others.
func classifyLifecycle(err error, msg string) *Error {
	switch {
	case errors.Is(err, index.ErrFrozen):
		return errorf(http.StatusConflict, "generation_read_only", "%s (write through the collection's alias)", msg)
	case errors.Is(err, index.ErrInUse):
		return errorf(http.StatusConflict, "generation_in_use", "%s (switch the alias first)", msg)
	case errors.Is(err, lifecycle.ErrRunning):
		return errorf(http.StatusConflict, "rebuild_running", "%s", msg)
	case errors.Is(err, lifecycle.ErrNotReady):
		return errorf(http.StatusConflict, "rebuild_not_ready", "%s", msg)
	case errors.Is(err, lifecycle.ErrNoJob):
		return errorf(http.StatusNotFound, "no_rebuild", "%s", msg)
	case errors.Is(err, lifecycle.ErrUnknownModel):
		return errorf(http.StatusBadRequest, "unknown_model", "%s", msg)
	case errors.Is(err, lifecycle.ErrSameVectors):
		return errorf(http.StatusBadRequest, "nothing_to_rebuild", "%s (name another model or profile)", msg)
	}
	return nil
}
