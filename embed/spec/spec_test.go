package spec

import (
	"strings"
	"testing"
)

func TestValidate(t *testing.T) {
	cases := []struct {
		field string
		edit  func(*Model)
	}{
		{"", func(*Model) {}},
		{"id", func(s *Model) { s.ID = "" }},
		{"file", func(s *Model) { s.File = "" }},
		{"input", func(s *Model) { s.Input = "" }},
		{"input_size", func(s *Model) { s.InputSize = 0 }},
		{"resize_shorter", func(s *Model) { s.ResizeShorter = 100 }},
		{"crop", func(s *Model) { s.Crop = "fit" }},
		{"channel_order", func(s *Model) { s.ChannelOrder = "rgb" }},
		{"layout", func(s *Model) { s.Layout = "CHW" }},
		{"embedding_tensor", func(s *Model) { s.EmbeddingTensor = "" }},
		{"embedding_dim", func(s *Model) { s.EmbeddingDim = -1 }},
		{"std", func(s *Model) { s.Std[1] = 0 }},
		{"sha256", func(s *Model) { s.SHA256 = "abc" }},
	}
	for _, c := range cases {
		t.Run(c.field, func(t *testing.T) {
			s := DefaultModel()
			c.edit(&s)
			err := s.Validate()
			if c.field == "" {
				if err != nil {
					t.Fatalf("default spec: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), c.field) {
				t.Errorf("Validate = %v, want an error naming %q", err, c.field)
			}
		})
	}
}

func TestFingerprint(t *testing.T) {
	s := DefaultModel()
	fp := s.Fingerprint(defaultModelSHA256Shared)
	if !strings.HasPrefix(fp, "mnv2i8-") || len(fp) != len("mnv2i8-")+12 {
		t.Fatalf("fingerprint %q, want mnv2i8-<12 hex>", fp)
	}
	if again := DefaultModel().Fingerprint(defaultModelSHA256Shared); again != fp {
		t.Errorf("not stable: %s vs %s", fp, again)
	}
	changes := map[string]func(*Model){
		"model bytes": nil,
		"mean":        func(s *Model) { s.Mean[0] = 0.5 },
		"crop":        func(s *Model) { s.Crop = "squash" },
		"order":       func(s *Model) { s.ChannelOrder = "BGR" },
		"tensor":      func(s *Model) { s.EmbeddingTensor = "627_quantized" },
		"shorter":     func(s *Model) { s.ResizeShorter = 224 },
	}
	for name, edit := range changes {
		s := DefaultModel()
		sum := defaultModelSHA256Shared
		if edit == nil {
			sum = defaultModelSHA256Zoo
		} else {
			edit(&s)
		}
		if got := s.Fingerprint(sum); got == fp {
			t.Errorf("%s change keeps fingerprint %s", name, fp)
		}
	}
	// Fields that do not change the tensor keep it.
	s.LabelsFile, s.File, s.SHA256 = "x.txt", "/elsewhere/model.onnx", ""
	if got := s.Fingerprint(defaultModelSHA256Shared); got != fp {
		t.Errorf("labels/file path changed the fingerprint: %s vs %s", got, fp)
	}
}

// TestDefaultModelPinned: the default spec accepts both copies of the default model, and the
// fingerprint of the shared copy stays what collections built with it store.
func TestDefaultModelPinned(t *testing.T) {
	s := DefaultModel()
	for _, sum := range []string{defaultModelSHA256Shared, defaultModelSHA256Zoo} {
		if !strings.Contains(s.SHA256, sum) {
			t.Errorf("default spec does not accept %s", sum)
		}
	}
	if got, want := s.Fingerprint(defaultModelSHA256Shared), "mnv2i8-5186fd9aa1d6"; got != want {
		t.Errorf("default fingerprint %s, want %s", got, want)
	}
}
