package bench

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"os"
)

// ReadFvecs reads a TEXMEX .fvecs file: per vector, an int32 dimension
// (little endian) then that many float32. All vectors must share the
// dimension.
func ReadFvecs(path string) ([][]float32, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("bench: read fvecs: %w", err)
	}
	defer f.Close()
	r := bufio.NewReaderSize(f, 1<<20)
	var out [][]float32
	var hdr [4]byte
	dim := -1
	for {
		if _, err := io.ReadFull(r, hdr[:]); err == io.EOF {
			break
		} else if err != nil {
			return nil, fmt.Errorf("bench: read fvecs %s: vector %d: truncated header", path, len(out))
		}
		d := int(int32(binary.LittleEndian.Uint32(hdr[:])))
		if d <= 0 || d > 1<<16 {
			return nil, fmt.Errorf("bench: read fvecs %s: vector %d: bad dimension %d", path, len(out), d)
		}
		if dim >= 0 && d != dim {
			return nil, fmt.Errorf("bench: read fvecs %s: vector %d has dimension %d, earlier ones %d", path, len(out), d, dim)
		}
		dim = d
		buf := make([]byte, 4*d)
		if _, err := io.ReadFull(r, buf); err != nil {
			return nil, fmt.Errorf("bench: read fvecs %s: vector %d: truncated", path, len(out))
		}
		v := make([]float32, d)
		for i := range v {
			v[i] = math.Float32frombits(binary.LittleEndian.Uint32(buf[4*i:]))
		}
		out = append(out, v)
	}
	return out, nil
}

// WriteFvecs writes vectors in TEXMEX .fvecs format.
func WriteFvecs(path string, vecs [][]float32) error {
	w, err := createFvecs(path)
	if err != nil {
		return err
	}
	for _, v := range vecs {
		if err := w.write(v); err != nil {
			w.close()
			return fmt.Errorf("bench: write fvecs %s: %w", path, err)
		}
	}
	return w.close()
}
