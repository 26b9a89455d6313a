// Package spec is the pure-Go half of embed's configuration: the model spec (which model file, how an
// image becomes its input tensor, which tensor is the embedding, and the fingerprint that names the
// vectors they produce) and the defaults of the input limits. It has no cgo, so internal/config and
// other pure-Go packages describe an engine without linking ONNX Runtime or libjpeg-turbo.
package spec

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
)

// Model describes a model and how images become its input tensor. Preprocessing is data: the
// same spec drives indexing and querying, and its canonical form is part of the Fingerprint.
type Model struct {
	// ID is a short name used as the fingerprint prefix, e.g. "mnv2i8".
	ID string `yaml:"id" json:"id"`
	// File is the model file name. embed opens the path it is given (embed.Options.ModelPath); the
	// command resolves this name on its model search path (internal/locate).
	File string `yaml:"file" json:"file"`
	// SHA256 lists the accepted hex digests of File, separated by commas or spaces; empty = no check.
	SHA256 string `yaml:"sha256" json:"sha256"`
	// LabelsFile holds one class name per line, in logit order; empty = no labels.
	LabelsFile string `yaml:"labels_file" json:"labels_file"`

	// Input is the graph input name; InputSize the square side it expects.
	Input     string `yaml:"input" json:"input"`
	InputSize int    `yaml:"input_size" json:"input_size"`
	// ResizeShorter: with Crop "center", the shorter side is resized to this, then the centre
	// InputSize square is cut out. 0 means InputSize. Ignored with Crop "squash".
	ResizeShorter int `yaml:"resize_shorter" json:"resize_shorter"`
	// Crop is "center" or "squash" (both sides resized to InputSize, aspect not kept).
	Crop string `yaml:"crop" json:"crop"`
	// Mean and Std normalise pixels scaled to [0,1]: (p-Mean)/Std, indexed in ChannelOrder.
	Mean [3]float32 `yaml:"mean" json:"mean"`
	Std  [3]float32 `yaml:"std" json:"std"`
	// ChannelOrder is "RGB" or "BGR"; Layout is "NCHW" or "NHWC".
	ChannelOrder string `yaml:"channel_order" json:"channel_order"`
	Layout       string `yaml:"layout" json:"layout"`

	// EmbeddingTensor names the graph tensor used as the embedding (quantized tensors are
	// dequantized); it is flattened to EmbeddingDim values per image.
	EmbeddingTensor string `yaml:"embedding_tensor" json:"embedding_tensor"`
	EmbeddingDim    int    `yaml:"embedding_dim" json:"embedding_dim"`
	// LogitsOutput names the classifier output used for Labels; empty = no labels.
	LogitsOutput string `yaml:"logits_output" json:"logits_output"`
	// FeatureMapTensor optionally names a [N,C,H,W] tensor returned in embed.Embedding.FeatureMap
	// (dequantized); empty = not computed into the result (faster).
	FeatureMapTensor string `yaml:"feature_map_tensor" json:"feature_map_tensor"`

	// Profile is the descriptor profile of new collections (ParseProfile; "" = fast; the shipped
	// configuration sets DefaultProfile).
	// Each collection keeps the profile it was created with in its fingerprint; this only picks
	// the default. Not part of Fingerprint.
	Profile string `yaml:"profile" json:"profile"`
}

// Checksums of the two valid copies of the default model (see ../shared/models/README.md): the
// shared copy with inferred shapes added, and the ONNX model zoo's original.
const (
	defaultModelSHA256Shared = "83530ad811bc31d2b60a5599a21265a5057608c9b044b4ee758cc22f2309f54f"
	defaultModelSHA256Zoo    = "cc028fe6cae7bc11a4ff53cfc9b79c920e8be65ce33a904ec3e2a8f66d77f95f"
)

// DefaultModel is MobileNetV2 int8 from the ONNX model zoo with its pooled 1280-d feature as the
// embedding and the torchvision recipe (shorter side 256, centre crop 224, ImageNet mean/std).
func DefaultModel() Model {
	return Model{
		ID:               "mnv2i8",
		File:             "mobilenetv2-12-int8.onnx",
		SHA256:           defaultModelSHA256Shared + "," + defaultModelSHA256Zoo,
		LabelsFile:       "imagenet_classes.txt",
		Input:            "input",
		InputSize:        224,
		ResizeShorter:    256,
		Crop:             "center",
		Mean:             [3]float32{0.485, 0.456, 0.406},
		Std:              [3]float32{0.229, 0.224, 0.225},
		ChannelOrder:     "RGB",
		Layout:           "NCHW",
		EmbeddingTensor:  "464_quantized",
		EmbeddingDim:     1280,
		LogitsOutput:     "output",
		FeatureMapTensor: "",
	}
}

// DefaultFeatureMapTensor is the default model's final [N,1280,7,7] feature map, for
// Model.FeatureMapTensor.
const DefaultFeatureMapTensor = "627_quantized"

// Bounds of the spec's sizes. The input tensor and the resampler's buffers grow with the square of
// these sides, so they are capped well above any ImageNet-style model (224-600 px) but far below
// what would let a config file ask for gigabytes per image.
const (
	MinInputSize     = 8
	MaxInputSize     = 4096
	MaxResizeShorter = 8192
)

// Validate reports the first bad field by name.
func (s Model) Validate() error {
	bad := func(field, why string, v any) error {
		return fmt.Errorf("model spec: %s %v: %s", field, v, why)
	}
	switch {
	case s.ID == "" || strings.ContainsAny(s.ID, " \t\n/"):
		return bad("id", "must be a non-empty word", fmt.Sprintf("%q", s.ID))
	case s.File == "":
		return bad("file", "is required", `""`)
	case s.Input == "":
		return bad("input", "is required", `""`)
	case s.InputSize < MinInputSize || s.InputSize > MaxInputSize:
		return bad("input_size", fmt.Sprintf("must be in %d..%d", MinInputSize, MaxInputSize), s.InputSize)
	case s.ResizeShorter != 0 && (s.ResizeShorter < s.InputSize || s.ResizeShorter > MaxResizeShorter):
		return bad("resize_shorter", fmt.Sprintf("must be 0 or in input_size..%d", MaxResizeShorter), s.ResizeShorter)
	case s.Crop != "center" && s.Crop != "squash":
		return bad("crop", `must be "center" or "squash"`, fmt.Sprintf("%q", s.Crop))
	case s.ChannelOrder != "RGB" && s.ChannelOrder != "BGR":
		return bad("channel_order", `must be "RGB" or "BGR"`, fmt.Sprintf("%q", s.ChannelOrder))
	case s.Layout != "NCHW" && s.Layout != "NHWC":
		return bad("layout", `must be "NCHW" or "NHWC"`, fmt.Sprintf("%q", s.Layout))
	case s.EmbeddingTensor == "":
		return bad("embedding_tensor", "is required", `""`)
	case s.EmbeddingDim <= 0:
		return bad("embedding_dim", "must be positive", s.EmbeddingDim)
	}
	for i, v := range s.Std {
		if !(v > 0) {
			return bad("std", fmt.Sprintf("entry %d must be positive", i), s.Std)
		}
	}
	for i, v := range s.Mean {
		if v != v {
			return bad("mean", fmt.Sprintf("entry %d is NaN", i), s.Mean)
		}
	}
	if p, err := ParseProfile(s.Profile); err != nil {
		return bad("profile", err.Error(), fmt.Sprintf("%q", s.Profile))
	} else if err := s.CheckProfile(p); err != nil {
		return bad("profile", err.Error(), fmt.Sprintf("%q", s.Profile))
	}
	for _, h := range s.Checksums() {
		if b, err := hex.DecodeString(h); err != nil || len(b) != sha256.Size {
			return bad("sha256", "entries must be 64 hex digits", h)
		}
	}
	return nil
}

// Checksums lists the accepted SHA-256 digests of File, lower case; empty = no check.
func (s Model) Checksums() []string {
	return strings.FieldsFunc(strings.ToLower(s.SHA256), func(r rune) bool { return r == ',' || r == ' ' || r == ';' })
}

// ResizeTarget is the side the shorter side is resized to under Crop "center": ResizeShorter, or
// InputSize when that is 0.
func (s Model) ResizeTarget() int {
	if s.ResizeShorter == 0 {
		return s.InputSize
	}
	return s.ResizeShorter
}

// preprocessVersion changes whenever embed's decoding or resampling changes the tensor an image
// produces, so that old and new vectors get different fingerprints.
const preprocessVersion = "pre1"

// canonical is the preprocessing part of the fingerprint: every field that changes the input tensor.
func (s Model) canonical() string {
	rs := s.ResizeTarget()
	if s.Crop == "squash" {
		rs = 0
	}
	return fmt.Sprintf("%s;input=%s;size=%d;shorter=%d;crop=%s;mean=%g,%g,%g;std=%g,%g,%g;order=%s;layout=%s",
		preprocessVersion, s.Input, s.InputSize, rs, s.Crop,
		s.Mean[0], s.Mean[1], s.Mean[2], s.Std[0], s.Std[1], s.Std[2], s.ChannelOrder, s.Layout)
}

// Fingerprint identifies the vectors a model file (by its sha256) and spec produce: "<id>-<12 hex>".
func (s Model) Fingerprint(modelSHA256 string) string {
	h := sha256.Sum256([]byte(strings.ToLower(modelSHA256) + "\n" + s.canonical() + "\n" + s.EmbeddingTensor))
	return s.ID + "-" + hex.EncodeToString(h[:6])
}

// TensorLen is the number of float32 values one image occupies in the input tensor.
func (s Model) TensorLen() int { return 3 * s.InputSize * s.InputSize }
