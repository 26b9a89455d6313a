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
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("bench: write fvecs: %w", err)
	}
	w := bufio.NewWriterSize(f, 1<<20)
	var b []byte
	for _, v := range vecs {
		b = binary.LittleEndian.AppendUint32(b[:0], uint32(len(v)))
		for _, x := range v {
			b = binary.LittleEndian.AppendUint32(b, math.Float32bits(x))
		}
		if _, err := w.Write(b); err != nil {
			f.Close()
			return fmt.Errorf("bench: write fvecs %s: %w", path, err)
		}
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return fmt.Errorf("bench: write fvecs %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("bench: write fvecs %s: %w", path, err)
	}
	return nil
}
