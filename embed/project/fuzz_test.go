package project

import (
	"bytes"
	"testing"
)

// FuzzUnmarshal: stored projections are read back from bbolt, where a torn or foreign value must
// be ErrFormat, never a panic, and whatever is accepted writes back to the same bytes.
func FuzzUnmarshal(f *testing.F) {
	for _, power := range []float64{0, DefaultPower} {
		p, err := Learn(handCase, 2, Options{Dims: 2, Power: power})
		if err != nil {
			f.Fatal(err)
		}
		b, _ := p.MarshalBinary()
		f.Add(b)
		f.Add(b[:len(b)-3])
	}
	f.Add([]byte(magic))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := Unmarshal(b)
		if err != nil {
			return
		}
		for _, x := range p.P {
			if x != x {
				t.Fatal("accepted a NaN")
			}
		}
		again, _ := p.MarshalBinary()
		if !bytes.Equal(again, b) {
			t.Fatalf("accepted %d bytes that write back as %d other bytes", len(b), len(again))
		}
	})
}
