package embed

import (
	"os"
	"testing"

	"github.com/lookalike/lookalike/embed/spec"
)

// TestExportForPeer writes the default model with its embedding as a graph output to
// $LOOKALIKE_EXPORT (for the Node peer: output "464_quantized_dequantized", 1280 values per image).
func TestExportForPeer(t *testing.T) {
	dst := os.Getenv("LOOKALIKE_EXPORT")
	if dst == "" {
		t.Skip("set LOOKALIKE_EXPORT=/tmp/model.onnx to write the peer's model")
	}
	if err := ExportWithOutputs(modelPath(t), dst, spec.DefaultModel().EmbeddingTensor); err != nil {
		t.Fatal(err)
	}
}
