package embed

import "errors"

// Per-image errors, reported in Embedding.Err and by DecodeConfig/Thumbnail. API handlers map them to 4xx.
var (
	// ErrEmpty: the input holds no bytes.
	ErrEmpty = errors.New("embed: empty image")
	// ErrNotImage: the bytes match no known image format.
	ErrNotImage = errors.New("embed: not an image")
	// ErrUnsupported: a known format in a variant this package cannot decode.
	ErrUnsupported = errors.New("embed: unsupported image")
	// ErrCorrupt: the header or the pixel data is truncated or malformed.
	ErrCorrupt = errors.New("embed: corrupt image")
	// ErrTooLarge: the header announces more pixels than the configured limit; nothing was decoded.
	ErrTooLarge = errors.New("embed: image too large")
	// ErrAspectRatio: the header announces a longer side more than Options.MaxAspectRatio times the
	// shorter one; nothing was decoded.
	ErrAspectRatio = errors.New("embed: aspect ratio too extreme")
	// ErrBadCrop: Image.Crop lies outside the (oriented) image or is empty.
	ErrBadCrop = errors.New("embed: bad crop rectangle")
	// ErrProfile: Image.Profile (or Options.Profile) is no profile name, or one the model cannot
	// serve (a regional profile without a feature map tensor).
	ErrProfile = errors.New("embed: unknown descriptor profile")
)

// Startup errors, returned by New, Inspect and ExportWithOutputs.
var (
	// ErrNoGPU: Device "cuda" was asked for but no usable CUDA execution provider or GPU exists.
	ErrNoGPU = errors.New("embed: no usable GPU (CUDA execution provider unavailable)")
	// ErrModel: the model file is missing, corrupt, fails its checksum, or its graph does not match
	// the spec.Model (input name or shape, embedding tensor).
	ErrModel = errors.New("embed: bad model")
	// ErrRuntime: the ONNX Runtime shared library cannot be loaded or initialised.
	ErrRuntime = errors.New("embed: ONNX Runtime unavailable")
	// ErrClosed: the Engine was closed.
	ErrClosed = errors.New("embed: engine closed")
)
