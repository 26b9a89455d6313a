package intel

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/lookalike/lookalike/index"
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

// TestVoteTagsSkipsFreeText: a field whose voters each carry their own value (a name) gets no
// suggestion; a field with a shared value does, even when one voter disagrees.
func TestVoteTagsSkipsFreeText(t *testing.T) {
	meta := []string{
		`{"name":"Red shoe 42","category":"shoes","tags":["red","summer"]}`,
		`{"name":"Red shoe 43","category":"shoes","tags":["red"]}`,
		`{"name":"Blue boot","category":"boots","sku":"B-1"}`,
	}
	var res []index.Result
	for i, m := range meta {
		res = append(res, index.Result{ID: string(rune('a' + i)), Score: 0.9, Metadata: json.RawMessage(m)})
	}
	got := voteTags(res, 10)
	for _, f := range []string{"name", "sku"} {
		if s, ok := got[f]; ok {
			t.Errorf("free-text field %s suggested: %+v", f, s)
		}
	}
	if c := got["category"]; len(c) == 0 || c[0].Value != "shoes" || c[0].Votes != 2 {
		t.Errorf("category: %+v, want shoes with 2 votes first", c)
	}
	if tg := got["tags"]; len(tg) == 0 || tg[0].Value != "red" {
		t.Errorf("tags: %+v, want red first", tg)
	}
}
