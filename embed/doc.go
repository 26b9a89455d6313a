// Package embed turns image bytes into L2-normalised embeddings (plus ImageNet labels) with a CNN run
// by ONNX Runtime. It owns decoding (libjpeg-turbo via cgo for JPEG, the Go decoders for the other
// formats), preprocessing driven by a spec.Model (package embed/spec, pure Go), the edit of the ONNX
// graph that exposes the embedding tensor, the session pool with dynamic batching, and thumbnails.
//
// The same code path serves indexing and querying: an Engine's Fingerprint names the model bytes, the
// preprocessing and the embedding tensor, so vectors made under different fingerprints are never mixed.
//
// # Caveats
//
//   - embed reads no environment and searches no folders: Options names the model, labels and
//     runtime library by path (cmd/lookalike resolves them with internal/locate).
//   - ONNX Runtime's environment is process-wide: the first Engine loads the shared library and the
//     last Close tears it down. Engines in one process must use the same library path.
//   - Image.Crop is in pixels of the EXIF-oriented image; DecodeConfig reports that oriented size.
//   - Every format's header is read before any pixel is decoded, and images above Options.MaxPixels
//     (ErrTooLarge) or beyond Options.MaxAspectRatio (ErrAspectRatio) are refused, so a decompression
//     bomb costs a header parse only. Resizing streams rows through the filter and computes large
//     filter tables on use, so its memory grows with neither the downscale factor nor the aspect
//     ratio: an accepted image costs at most 11 bytes per pixel while decoded (3 for RGB, up to 8
//     more for a Go decoder's own image) plus 12 bytes per resized output pixel and a few MB of
//     weights.
//   - Device "cuda" needs an ONNX Runtime build with the CUDA provider and a GPU; without either New
//     fails with ErrNoGPU. Device "auto" falls back to the CPU with one short INFO line.
package embed
