package index

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// adviseHuge asks for transparent huge pages over the 2 MiB-aligned part of b. A hint: where
// the kernel has them off, or b is too small, nothing changes.
func adviseHuge(b []byte) {
	const huge = 2 << 20
	start := uintptr(unsafe.Pointer(unsafe.SliceData(b)))
	lo := (start + huge - 1) &^ (huge - 1)
	hi := (start + uintptr(len(b))) &^ (huge - 1)
	if hi <= lo {
		return
	}
	_ = unix.Madvise(b[lo-start:hi-start], unix.MADV_HUGEPAGE)
}

// adviseWillNeed asks the kernel to read the mapped file pages under b ahead (bbolt's values are
// views of its memory map). Faulted in one by one, a cold 1.4 GB catalog took 17 s to read at
// 64 KiB per fault; the disk does 670 MB/s. A hint: errors change nothing.
func adviseWillNeed(b []byte) {
	if len(b) == 0 {
		return
	}
	p := unsafe.Pointer(unsafe.SliceData(b))
	off := int(uintptr(p) & uintptr(unix.Getpagesize()-1)) // madvise wants a page-aligned start
	_ = unix.Madvise(unsafe.Slice((*byte)(unsafe.Add(p, -off)), off+len(b)), unix.MADV_WILLNEED)
}
