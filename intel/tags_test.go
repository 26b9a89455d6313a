package intel

import (
	"encoding/json"
	"strings"
	"testing"
)

// TestPlanTagsKeepsUntouchedBytes: the fields tagging does not write come back byte for byte
// (numbers beyond float64, HTML characters, nesting), curated values stay unless overwrite, and
// lists stay lists.
func TestPlanTagsKeepsUntouchedBytes(t *testing.T) {
	sug := map[string][]TagSuggestion{
		"category": {{Value: "lamp", Confidence: 0.9}},
		"tags":     {{Value: "red", Confidence: 0.8}, {Value: "new", Confidence: 0.4}},
		"brand":    {{Value: "acme", Confidence: 0.5}},
	}
	const untouched = `"ean":9007199254740993,"big":123456789012345678901234567890,"price":59.90,"note":"<b>&</b>","dims":{"w":1e400}`
	for _, tc := range []struct {
		name, meta string
		o          TagOptions
		want       []string // fields written
		keep       []string // substrings that must survive
	}{
		{"fills missing", `{` + untouched + `}`, TagOptions{MinConfidence: 0.75}, []string{"category", "tags"},
			[]string{`"ean":9007199254740993`, `"big":123456789012345678901234567890`, `"price":59.90`, `"note":"<b>&</b>"`, `"dims":{"w":1e400}`, `"tags":["red"]`}},
		{"curated kept", `{"category":"desk",` + untouched + `}`, TagOptions{MinConfidence: 0.75}, []string{"tags"},
			[]string{`"category":"desk"`, `"ean":9007199254740993`}},
		{"overwrite", `{"category":"desk","tags":"red"}`, TagOptions{MinConfidence: 0.3, Overwrite: true, Fields: []string{"category"}}, []string{"category"},
			[]string{`"category":"lamp"`, `"tags":"red"`}},
		{"auto values are rewritten", `{"category":"desk","auto_tagged":{"category":0.8}}`, TagOptions{MinConfidence: 0.75, Fields: []string{"category"}}, []string{"category"},
			[]string{`"category":"lamp"`, `"auto_tagged":{"category":0.9}`}},
		{"nothing to do", `{"category":"lamp","tags":["red"],"auto_tagged":{"category":0.9,"tags":0.8}}`, TagOptions{MinConfidence: 0.75}, nil, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := planTags("x", json.RawMessage(tc.meta), sug, tc.o)
			if err != nil {
				t.Fatal(err)
			}
			var fields []string
			for _, ch := range p.changes {
				fields = append(fields, ch.Field)
			}
			if strings.Join(fields, ",") != strings.Join(tc.want, ",") {
				t.Fatalf("wrote %v, want %v", fields, tc.want)
			}
			if len(tc.want) == 0 {
				return
			}
			if !json.Valid(p.meta) {
				t.Fatalf("invalid metadata %s", p.meta)
			}
			for _, k := range tc.keep {
				if !strings.Contains(string(p.meta), k) {
					t.Errorf("%s lost %s", p.meta, k)
				}
			}
		})
	}
	if _, err := planTags("x", json.RawMessage(`[1,2]`), sug, TagOptions{}); err == nil {
		t.Error("metadata that is not an object accepted")
	}
}
