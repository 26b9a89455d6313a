package embed

/*
#cgo pkg-config: libturbojpeg
#include <stdlib.h>
#include <string.h>
#include <turbojpeg.h>

// Small shim so Go never touches tjscalingfactor arrays or error state directly.
static int lk_num_scales(void) { int n = 0; tjGetScalingFactors(&n); return n; }
static void lk_scale(int i, int *num, int *den) {
	int n = 0; tjscalingfactor *sf = tjGetScalingFactors(&n);
	*num = sf[i].num; *den = sf[i].denom;
}
static int lk_header(tjhandle h, const unsigned char *buf, unsigned long size, int *w, int *hh, int *ss, int *cs) {
	return tjDecompressHeader3(h, buf, size, w, hh, ss, cs);
}
// Returns 0 ok, 1 warning, -1 fatal.
static int lk_decompress(tjhandle h, const unsigned char *buf, unsigned long size, unsigned char *dst,
		int w, int hh, int pf) {
	if (tjDecompress2(h, buf, size, dst, w, 0, hh, pf, TJFLAG_FASTDCT) == 0) return 0;
	return tjGetErrorCode(h) == TJERR_WARNING ? 1 : -1;
}
static int lk_compress(tjhandle h, const unsigned char *src, int w, int hh, int quality,
		unsigned char **out, unsigned long *outSize) {
	return tjCompress2(h, src, w, 0, hh, TJPF_RGB, out, outSize, TJSAMP_420, quality, TJFLAG_FASTDCT);
}
static int lk_compress_cmyk(tjhandle h, const unsigned char *src, int w, int hh, unsigned char **out, unsigned long *outSize) {
	return tjCompress2(h, src, w, 0, hh, TJPF_CMYK, out, outSize, TJSAMP_444, 95, 0);
}
*/
import "C"

import (
	"fmt"
	"strings"
	"unsafe"
)

// tjHandles is a bounded free list of TurboJPEG handles: creating one allocates libjpeg state, and
// sync.Pool would drop (leak) C memory silently.
type tjHandles struct{ ch chan C.tjhandle }

// Handles kept for reuse between calls; calls beyond these at once create and free their own.
// Encoding serves thumbnails only, so fewer encoders are kept.
const (
	keptDecoders = 32
	keptEncoders = 8
)

var (
	tjDec = tjHandles{ch: make(chan C.tjhandle, keptDecoders)}
	tjEnc = tjHandles{ch: make(chan C.tjhandle, keptEncoders)}
)

func (p tjHandles) get(compress bool) (C.tjhandle, error) {
	select {
	case h := <-p.ch:
		return h, nil
	default:
	}
	var h C.tjhandle
	if compress {
		h = C.tjInitCompress()
	} else {
		h = C.tjInitDecompress()
	}
	if h == nil {
		return nil, fmt.Errorf("turbojpeg: cannot create handle")
	}
	return h, nil
}

// release returns a handle to the list, or destroys it when its last call failed: libjpeg keeps
// state from an aborted decompression (a later call then reports "two SOI markers" on a valid
// file), so a handle that saw an error is never reused.
func (p tjHandles) release(h C.tjhandle, failed *bool) {
	if *failed {
		C.tjDestroy(h)
		return
	}
	p.put(h)
}

func (p tjHandles) put(h C.tjhandle) {
	select {
	case p.ch <- h:
	default:
		C.tjDestroy(h)
	}
}

func tjErr(h C.tjhandle) string { return C.GoString(C.tjGetErrorStr2(h)) }

// scaleFactor is a TurboJPEG DCT-domain scaling factor num/den.
type scaleFactor struct{ num, den int }

func (f scaleFactor) apply(d int) int { return (d*f.num + f.den - 1) / f.den } // TJSCALED

// jpegScales lists the library's factors at or below 1, smallest first.
var jpegScales = func() []scaleFactor {
	var out []scaleFactor
	for i := 0; i < int(C.lk_num_scales()); i++ {
		var n, d C.int
		C.lk_scale(C.int(i), &n, &d)
		if int(n) <= int(d) {
			out = append(out, scaleFactor{int(n), int(d)})
		}
	}
	// insertion sort by value
	for i := 1; i < len(out); i++ {
		for j := i; j > 0 && out[j].num*out[j-1].den < out[j-1].num*out[j].den; j-- {
			out[j], out[j-1] = out[j-1], out[j]
		}
	}
	return out
}()

type jpegHeader struct {
	w, h       int
	subsamp    int
	colorspace int
}

func turboHeader(data []byte) (jpegHeader, error) {
	h, err := tjDec.get(false)
	if err != nil {
		return jpegHeader{}, err
	}
	failed := false
	defer tjDec.release(h, &failed)
	var w, hh, ss, cs C.int
	if C.lk_header(h, (*C.uchar)(unsafe.Pointer(&data[0])), C.ulong(len(data)), &w, &hh, &ss, &cs) != 0 {
		failed = true
		return jpegHeader{}, fmt.Errorf("%w: jpeg header: %s", ErrCorrupt, tjErr(h))
	}
	if w <= 0 || hh <= 0 {
		return jpegHeader{}, fmt.Errorf("%w: jpeg header: size %dx%d", ErrCorrupt, int(w), int(hh))
	}
	return jpegHeader{w: int(w), h: int(hh), subsamp: int(ss), colorspace: int(cs)}, nil
}

// turboDecode decodes data scaled by f into 8-bit RGB (CMYK/YCCK converted, Adobe-inverted when
// meta says so). hdr must come from turboHeader, meta from scanJPEGMeta.
func turboDecode(data []byte, hdr jpegHeader, f scaleFactor, meta jpegMeta) (*rgbImage, error) {
	h, err := tjDec.get(false)
	if err != nil {
		return nil, err
	}
	failed := false
	defer tjDec.release(h, &failed)
	w, hh := f.apply(hdr.w), f.apply(hdr.h)
	cmyk := hdr.colorspace == C.TJCS_CMYK || hdr.colorspace == C.TJCS_YCCK
	pf, bpp := C.int(C.TJPF_RGB), 3
	if cmyk {
		pf, bpp = C.TJPF_CMYK, 4
	}
	buf := getBytes(w * hh * bpp)
	rc := C.lk_decompress(h, (*C.uchar)(unsafe.Pointer(&data[0])), C.ulong(len(data)),
		(*C.uchar)(unsafe.Pointer(&buf[0])), C.int(w), C.int(hh), pf)
	if rc != 0 {
		failed = true
	}
	if rc < 0 {
		putBytes(buf)
		return nil, fmt.Errorf("%w: jpeg: %s", ErrCorrupt, tjErr(h))
	}
	if rc > 0 {
		// libjpeg fills missing scans with grey and calls it a warning; a truncated file is corrupt,
		// while benign warnings (extraneous bytes, odd markers) still yield a good picture. The
		// message alone is not enough: it can be TurboJPEG's process-wide one, which another
		// handle's call may overwrite (CI saw a third of a photo answered 200, twice), so an image
		// with no end-of-image marker after its scan counts as truncated whatever it says.
		msg := tjErr(h)
		if strings.Contains(msg, "Premature end") || strings.Contains(msg, "premature end") || !meta.ended(data) {
			putBytes(buf)
			return nil, fmt.Errorf("%w: jpeg: %s", ErrCorrupt, msg)
		}
	}
	img := &rgbImage{w: w, h: hh}
	if !cmyk {
		img.pix = buf
		return img, nil
	}
	img.pix = getBytes(w * hh * 3)
	defer putBytes(buf)
	for i, j := 0, 0; i < len(buf); i, j = i+4, j+3 {
		c, m, y, k := uint32(buf[i]), uint32(buf[i+1]), uint32(buf[i+2]), uint32(buf[i+3])
		if !meta.adobeInverted {
			c, m, y, k = 255-c, 255-m, 255-y, 255-k
		}
		img.pix[j] = byte(c * k / 255)
		img.pix[j+1] = byte(m * k / 255)
		img.pix[j+2] = byte(y * k / 255)
	}
	return img, nil
}

// turboEncode compresses 8-bit RGB to JPEG.
func turboEncode(img *rgbImage, quality int) ([]byte, error) {
	h, err := tjEnc.get(true)
	if err != nil {
		return nil, err
	}
	failed := false
	defer tjEnc.release(h, &failed)
	var out *C.uchar
	var size C.ulong
	if C.lk_compress(h, (*C.uchar)(unsafe.Pointer(&img.pix[0])), C.int(img.w), C.int(img.h), C.int(quality), &out, &size) != 0 {
		failed = true
		if out != nil {
			C.tjFree(out)
		}
		return nil, fmt.Errorf("turbojpeg encode: %s", tjErr(h))
	}
	defer C.tjFree(out)
	return C.GoBytes(unsafe.Pointer(out), C.int(size)), nil
}

// turboEncodeCMYK writes a four-channel (Adobe, YCCK) JPEG from packed CMYK; tests use it to make
// CMYK fixtures.
func turboEncodeCMYK(pix []byte, w, h int) ([]byte, error) {
	hd, err := tjEnc.get(true)
	if err != nil {
		return nil, err
	}
	defer tjEnc.put(hd)
	var out *C.uchar
	var size C.ulong
	if C.lk_compress_cmyk(hd, (*C.uchar)(unsafe.Pointer(&pix[0])), C.int(w), C.int(h), &out, &size) != 0 {
		if out != nil {
			C.tjFree(out)
		}
		return nil, fmt.Errorf("turbojpeg encode: %s", tjErr(hd))
	}
	defer C.tjFree(out)
	return C.GoBytes(unsafe.Pointer(out), C.int(size)), nil
}
