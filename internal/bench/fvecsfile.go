package bench

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"os"
	"syscall"
	"unsafe"
)

// FvecsFile is a .fvecs file mapped into memory: a million 1280-d vectors are read where they lie
// (the page cache) instead of being copied onto the heap. Close unmaps it.
type FvecsFile struct {
	data []byte
	dim  int
	n    int
}

// OpenFvecs maps path and checks that every vector has the first one's dimension.
func OpenFvecs(path string) (*FvecsFile, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("bench: open fvecs: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("bench: open fvecs: %w", err)
	}
	if st.Size() < 8 {
		return nil, fmt.Errorf("bench: fvecs %s: too short", path)
	}
	data, err := syscall.Mmap(int(f.Fd()), 0, int(st.Size()), syscall.PROT_READ, syscall.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("bench: map fvecs %s: %w", path, err)
	}
	ff := &FvecsFile{data: data, dim: int(int32(binary.LittleEndian.Uint32(data)))}
	row := 4 + 4*ff.dim
	if ff.dim <= 0 || ff.dim > 1<<16 || len(data)%row != 0 {
		ff.Close()
		return nil, fmt.Errorf("bench: fvecs %s: size %d is not a whole number of %d-d vectors", path, len(data), ff.dim)
	}
	ff.n = len(data) / row
	for i := 0; i < ff.n; i++ {
		if d := int(int32(binary.LittleEndian.Uint32(data[i*row:]))); d != ff.dim {
			ff.Close()
			return nil, fmt.Errorf("bench: fvecs %s: vector %d has dimension %d, the first %d", path, i, d, ff.dim)
		}
	}
	return ff, nil
}

// Len is the number of vectors; Dim their dimension.
func (f *FvecsFile) Len() int { return f.n }

// Dim is the vectors' dimension.
func (f *FvecsFile) Dim() int { return f.dim }

// Row is vector i, aliasing the mapping (little-endian hosts: float32 in place). Valid until Close.
func (f *FvecsFile) Row(i int) []float32 {
	o := i*(4+4*f.dim) + 4
	return unsafe.Slice((*float32)(unsafe.Pointer(&f.data[o])), f.dim)
}

// Close unmaps the file.
func (f *FvecsFile) Close() error {
	if f.data == nil {
		return nil
	}
	err := syscall.Munmap(f.data)
	f.data = nil
	return err
}

// fvecsWriter appends vectors to a .fvecs file.
type fvecsWriter struct {
	f   *os.File
	w   *bufio.Writer
	buf []byte
}

func createFvecs(path string) (*fvecsWriter, error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("bench: write fvecs: %w", err)
	}
	return &fvecsWriter{f: f, w: bufio.NewWriterSize(f, 1<<20)}, nil
}

func (w *fvecsWriter) write(v []float32) error {
	w.buf = binary.LittleEndian.AppendUint32(w.buf[:0], uint32(len(v)))
	for _, x := range v {
		w.buf = binary.LittleEndian.AppendUint32(w.buf, math.Float32bits(x))
	}
	_, err := w.w.Write(w.buf)
	return err
}

func (w *fvecsWriter) close() error {
	err := w.w.Flush()
	if cerr := w.f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("bench: write fvecs %s: %w", w.f.Name(), err)
	}
	return nil
}

// WriteIvecs writes integer vectors (TEXMEX .ivecs): the ground-truth neighbours handed to peers.
func WriteIvecs(path string, rows [][]uint32) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("bench: write ivecs: %w", err)
	}
	w := bufio.NewWriter(f)
	var b []byte
	for _, r := range rows {
		b = binary.LittleEndian.AppendUint32(b[:0], uint32(len(r)))
		for _, x := range r {
			b = binary.LittleEndian.AppendUint32(b, x)
		}
		w.Write(b)
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return fmt.Errorf("bench: write ivecs %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("bench: write ivecs %s: %w", path, err)
	}
	return nil
}

var _ io.Closer = (*FvecsFile)(nil)
