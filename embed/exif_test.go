package embed

import (
	"bytes"
	"image"
	"image/jpeg"
	"testing"
)

// TestJPEGEnded: whether an image is complete is read after its scan, never from an EOI marker
// in an EXIF thumbnail before it (ukbench00000.jpg has one in its first third).
func TestJPEGEnded(t *testing.T) {
	camera := readPhoto(t, "ukbench00000.jpg")
	var plain bytes.Buffer
	if err := jpeg.Encode(&plain, image.NewGray(image.Rect(0, 0, 64, 48)), nil); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		data []byte
		want bool
	}{
		{"camera photo with an EXIF thumbnail", camera, true},
		{"its first third (the thumbnail's EOI inside)", camera[:len(camera)/3], false},
		{"its last byte cut", camera[:len(camera)-1], false},
		{"trailing bytes after the EOI", append(bytes.Clone(camera), 0, 1, 2), true},
		{"plain JPEG", plain.Bytes(), true},
		{"plain JPEG, half", plain.Bytes()[:plain.Len()/2], false},
		{"no scan at all", []byte{0xFF, 0xD8, 0xFF, 0xD9}, false},
		{"not a JPEG", []byte("GIF89a"), false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := scanJPEGMeta(c.data).ended(c.data); got != c.want {
				t.Errorf("ended = %v, want %v", got, c.want)
			}
		})
	}
	// The thumbnail's EOI is there: a search of the whole file would have said complete.
	if !bytes.Contains(camera[:len(camera)/3], []byte{0xFF, 0xD9}) {
		t.Fatal("test photo changed: its first third holds no EOI")
	}
}
