//go:build !cgo

package main

// cgoAnswer is the pure-Go stand-in for the C function in cgo.go.
func cgoAnswer() int { return 0 }
