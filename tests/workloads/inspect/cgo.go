//go:build cgo

package main

// static int golat_answer(void) { return 42; }
import "C"

// cgoAnswer calls into C so that cgo builds link C code (external linker).
func cgoAnswer() int { return int(C.golat_answer()) }
