package embed

import (
	"bytes"
	"encoding/binary"
)

// jpegMeta is what the JPEG marker segments before the scan tell us beyond TurboJPEG's header.
type jpegMeta struct {
	orientation   int  // EXIF orientation 1..8 (1 when absent or invalid)
	adobeInverted bool // APP14 "Adobe" present: CMYK stored inverted (Photoshop convention)
	scan          int  // offset of the image's first SOS marker (0: none found)
}

// ended reports whether an end-of-image marker follows the image's first scan. Entropy-coded
// data cannot hold one, but the segments before the scan can: an EXIF thumbnail is a whole JPEG
// with its own EOI, so searching the whole file says nothing about the image being complete.
func (m jpegMeta) ended(b []byte) bool {
	return m.scan > 0 && bytes.Contains(b[m.scan:], []byte{0xFF, 0xD9})
}

// scanJPEGMeta walks the marker segments up to the first SOS, and notes where it is. It never fails: malformed metadata
// just means no orientation; TurboJPEG judges the image itself.
func scanJPEGMeta(b []byte) jpegMeta {
	m := jpegMeta{orientation: 1}
	if len(b) < 4 || b[0] != 0xFF || b[1] != 0xD8 {
		return m
	}
	i := 2
	sawExif := false
	for i+4 <= len(b) {
		if b[i] != 0xFF {
			return m
		}
		marker := b[i+1]
		if marker == 0xFF { // fill byte
			i++
			continue
		}
		if marker == 0xD8 || (marker >= 0xD0 && marker <= 0xD7) || marker == 0x01 {
			i += 2
			continue
		}
		if marker == 0xDA || marker == 0xD9 {
			if marker == 0xDA {
				m.scan = i
			}
			return m
		}
		n := int(binary.BigEndian.Uint16(b[i+2:]))
		if n < 2 || i+2+n > len(b) {
			return m
		}
		seg := b[i+4 : i+2+n]
		switch {
		case marker == 0xE1 && !sawExif && bytes.HasPrefix(seg, []byte("Exif\x00\x00")):
			sawExif = true // the first Exif block wins, as in libexif and browsers
			if o := tiffOrientation(seg[6:]); o != 0 {
				m.orientation = o
			}
		case marker == 0xEE && bytes.HasPrefix(seg, []byte("Adobe")):
			m.adobeInverted = true
		}
		i += 2 + n
	}
	return m
}

// tiffOrientation reads tag 0x0112 from IFD0 of a TIFF-structured EXIF block; 0 if absent/invalid.
func tiffOrientation(t []byte) int {
	if len(t) < 8 {
		return 0
	}
	var bo binary.ByteOrder
	switch string(t[:2]) {
	case "II":
		bo = binary.LittleEndian
	case "MM":
		bo = binary.BigEndian
	default:
		return 0
	}
	off := int(bo.Uint32(t[4:8]))
	if off < 8 || off+2 > len(t) {
		return 0
	}
	n := int(bo.Uint16(t[off:]))
	for k := 0; k < n; k++ {
		e := off + 2 + 12*k
		if e+12 > len(t) {
			return 0
		}
		if bo.Uint16(t[e:]) == 0x0112 {
			v := int(bo.Uint16(t[e+8:]))
			if v >= 1 && v <= 8 {
				return v
			}
			return 0
		}
	}
	return 0
}

// pngOrientation looks for an eXIf chunk before IDAT.
func pngOrientation(b []byte) int {
	i := 8
	for i+12 <= len(b) {
		n := int(binary.BigEndian.Uint32(b[i:]))
		typ := string(b[i+4 : i+8])
		if n < 0 || i+12+n > len(b) || typ == "IDAT" {
			return 1
		}
		if typ == "eXIf" {
			if o := tiffOrientation(b[i+8 : i+8+n]); o != 0 {
				return o
			}
			return 1
		}
		i += 12 + n
	}
	return 1
}

// webpOrientation looks for the EXIF chunk of an extended (VP8X) WebP file.
func webpOrientation(b []byte) int {
	i := 12
	for i+8 <= len(b) {
		typ := string(b[i : i+4])
		n := int(binary.LittleEndian.Uint32(b[i+4:]))
		if n < 0 || i+8+n > len(b) {
			return 1
		}
		if typ == "EXIF" {
			d := b[i+8 : i+8+n]
			d = bytes.TrimPrefix(d, []byte("Exif\x00\x00"))
			if o := tiffOrientation(d); o != 0 {
				return o
			}
			return 1
		}
		i += 8 + n + n&1
	}
	return 1
}
