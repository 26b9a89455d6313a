package index

import (
	"encoding/binary"
	"hash/crc32"
	"slices"
	"testing"

	"github.com/lookalike/lookalike/rerank"
)

// FuzzDecodeLists: a lists snapshot that passes its checksum but holds anything (a bug, not a bit
// flip), in the current format or the one before, is refused or loads lists the state's
// invariants hold for; it never panics.
func FuzzDecodeLists(f *testing.F) {
	st := rerank.NewDefault()
	st.SetList(0, []rerank.Neighbor{{ID: 1, D: 0.1}, {ID: 2, D: 0.3}})
	st.SetList(1, []rerank.Neighbor{{ID: 0, D: 0.1}})
	st.SetList(2, nil)
	good := encodeLists(st, 7, 3)
	f.Add(false, good[4:len(good)-4])
	f.Add(false, []byte{})
	f.Add(false, good[4:12])
	f.Add(true, good[4:len(good)-4])
	live := []bool{true, true, true, false}
	f.Fuzz(func(t *testing.T, v1 bool, body []byte) {
		b := append(slices.Clone(knnMagic), body...)
		if v1 {
			b = append(slices.Clone(knnMagicV1), body...)
		}
		b = binary.LittleEndian.AppendUint32(b, crc32.Checksum(b, crcTable))
		got := rerank.NewDefault()
		if err := decodeLists(got, b, 7, live, map[uint32]bool{3: true}); err != nil {
			return
		}
		got.Rebuild(func(a, b uint32) float32 { return 0.5 }, 1)
		if err := got.Verify(func(a, b uint32) float32 { return 0.5 }); err != nil {
			t.Fatalf("decoded lists break the state: %v", err)
		}
	})
}
