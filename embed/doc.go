// Package embed turns image bytes into L2-normalised embeddings (plus ImageNet labels) with a CNN run
// by ONNX Runtime. It owns decoding (libjpeg-turbo via cgo for JPEG, the Go decoders for the other
// formats), preprocessing driven by a spec.Model, the edit of the ONNX graph that exposes the embedding
// tensor, the session pool with dynamic batching, and the figures `lookalike bench embed` reports.
//
// The same code path serves indexing and querying: an Engine's Fingerprint names the model bytes, the
// preprocessing and the embedding tensor, so vectors made under different fingerprints are never mixed.
//
// # Caveats
//
//   - ONNX Runtime's environment is process-wide: the first Engine loads the shared library and the
//     last Close tears it down. Engines in one process must use the same library path.
//   - Image.Crop is in pixels of the EXIF-oriented image; DecodeConfig reports that oriented size.
//   - Every format's header is read before any pixel is decoded, and images above Options.MaxPixels are
//     refused with ErrTooLarge, so a decompression bomb costs a header parse only.
//   - Device "cuda" needs an ONNX Runtime build with the CUDA provider and a GPU; without either New
//     fails with ErrNoGPU. Device "auto" falls back to the CPU with one log line.
package embed
