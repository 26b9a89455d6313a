package embed

/*
#cgo pkg-config: libwebp
#include <stdlib.h>
#include <webp/decode.h>
#include <webp/encode.h>
*/
import "C"

import (
	"fmt"
	"unsafe"
)

// libwebp rather than x/image/webp: it decodes every WebP variant (incl. the first frame of
// extended files) several times faster, and gives the tests an encoder.

func webpConfig(data []byte) (w, h int, alpha bool, err error) {
	var f C.WebPBitstreamFeatures
	if st := C.WebPGetFeatures((*C.uint8_t)(unsafe.Pointer(&data[0])), C.size_t(len(data)), &f); st != C.VP8_STATUS_OK {
		if st == C.VP8_STATUS_UNSUPPORTED_FEATURE {
			return 0, 0, false, fmt.Errorf("%w: webp: unsupported feature", ErrUnsupported)
		}
		return 0, 0, false, fmt.Errorf("%w: webp header (status %d)", ErrCorrupt, int(st))
	}
	if f.has_animation != 0 {
		return int(f.width), int(f.height), true, fmt.Errorf("%w: animated webp", ErrUnsupported)
	}
	return int(f.width), int(f.height), f.has_alpha != 0, nil
}

// webpDecode decodes to RGB, compositing alpha on white.
func webpDecode(data []byte, w, h int, alpha bool) (*rgbImage, error) {
	img := &rgbImage{w: w, h: h, pix: make([]byte, w*h*3)}
	if !alpha {
		if C.WebPDecodeRGBInto((*C.uint8_t)(unsafe.Pointer(&data[0])), C.size_t(len(data)),
			(*C.uint8_t)(unsafe.Pointer(&img.pix[0])), C.size_t(len(img.pix)), C.int(w*3)) == nil {
			return nil, fmt.Errorf("%w: webp data", ErrCorrupt)
		}
		return img, nil
	}
	rgba := make([]byte, w*h*4)
	if C.WebPDecodeRGBAInto((*C.uint8_t)(unsafe.Pointer(&data[0])), C.size_t(len(data)),
		(*C.uint8_t)(unsafe.Pointer(&rgba[0])), C.size_t(len(rgba)), C.int(w*4)) == nil {
		return nil, fmt.Errorf("%w: webp data", ErrCorrupt)
	}
	for i, j := 0, 0; i < len(rgba); i, j = i+4, j+3 {
		a := uint32(rgba[i+3])
		img.pix[j] = byte((uint32(rgba[i])*a + 255*(255-a) + 127) / 255)
		img.pix[j+1] = byte((uint32(rgba[i+1])*a + 255*(255-a) + 127) / 255)
		img.pix[j+2] = byte((uint32(rgba[i+2])*a + 255*(255-a) + 127) / 255)
	}
	return img, nil
}

// webpEncodeRGBA encodes lossless RGBA (non-premultiplied); used by tests and fuzz seed generation.
func webpEncodeRGBA(pix []byte, w, h int) ([]byte, error) {
	var out *C.uint8_t
	n := C.WebPEncodeLosslessRGBA((*C.uint8_t)(unsafe.Pointer(&pix[0])), C.int(w), C.int(h), C.int(w*4), &out)
	if n == 0 {
		return nil, fmt.Errorf("webp encode failed")
	}
	defer C.WebPFree(unsafe.Pointer(out))
	return C.GoBytes(unsafe.Pointer(out), C.int(n)), nil
}

// webpEncodeRGB encodes lossy RGB at quality q.
func webpEncodeRGB(img *rgbImage, q float32) ([]byte, error) {
	var out *C.uint8_t
	n := C.WebPEncodeRGB((*C.uint8_t)(unsafe.Pointer(&img.pix[0])), C.int(img.w), C.int(img.h), C.int(img.w*3), C.float(q), &out)
	if n == 0 {
		return nil, fmt.Errorf("webp encode failed")
	}
	defer C.WebPFree(unsafe.Pointer(out))
	return C.GoBytes(unsafe.Pointer(out), C.int(n)), nil
}
