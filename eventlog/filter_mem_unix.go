//go:build unix

package eventlog

import (
	"syscall"
	"unsafe"
)

// allocBlocks returns n zeroed filter blocks mapped outside the Go heap. The
// filter is the largest long-lived object of the process and holds no
// pointers; in the Go heap it would also raise the garbage collector's
// target by its own size (GOGC=100 lets the heap grow to twice what is
// live), so the process would hold about twice the filter. Pages are
// committed as bits are set. free must be called once the filter is no
// longer used.
func allocBlocks(n int) (blocks []filterBlock, free func(), err error) {
	b, err := syscall.Mmap(-1, 0, n*filterBlockBytes, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_ANON|syscall.MAP_PRIVATE)
	if err != nil {
		return nil, nil, err
	}
	return unsafe.Slice((*filterBlock)(unsafe.Pointer(&b[0])), n), func() { syscall.Munmap(b) }, nil
}
