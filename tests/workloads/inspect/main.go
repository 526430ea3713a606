// Command inspect is a small, deterministic Go workload used by golat's tests.
//
// It exercises the runtime paths golat hooks: goroutine creation and
// wake-ups (runtime.newproc1, runtime.ready, runtime.casgstatus), blocking
// channel hand-offs, explicit garbage collections (runtime.gcStart,
// stop-the-world) and a non-GC stop-the-world (runtime.ReadMemStats,
// runtime.GOMAXPROCS). It uses the standard library only so that it builds
// with every installed Go toolchain, offline.
//
// Usage: inspect [-rounds N] [-sleep DURATION] [-cpuprofile FILE]
//
// -cpuprofile writes a CPU profile (the input of the PGO build variant).
package main

import (
	"flag"
	"fmt"
	"os"
	"runtime"
	"runtime/pprof"
	"sync"
	"time"
)

// sink keeps allocations alive long enough for the GC to have work to do.
var sink [][]byte

//go:noinline
func allocate(n int) {
	for i := 0; i < n; i++ {
		sink = append(sink, make([]byte, 4096))
	}
	sink = sink[:0]
}

// pingPong passes a token between two goroutines n times: every hand-off
// is a goroutine wake-up (waiting -> runnable -> running).
func pingPong(n int) {
	ping, pong := make(chan int), make(chan int)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for v := range ping {
			pong <- v + 1
		}
		close(pong)
	}()
	for i := 0; i < n; i++ {
		ping <- i
		<-pong
	}
	close(ping)
	wg.Wait()
}

// fanOut starts n short-lived goroutines and waits for them.
func fanOut(n int) {
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			allocate(i % 4)
		}(i)
	}
	wg.Wait()
}

func main() {
	rounds := flag.Int("rounds", 3, "number of rounds")
	sleep := flag.Duration("sleep", 0, "pause between rounds")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile to this file")
	flag.Parse()

	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		defer func() {
			pprof.StopCPUProfile()
			f.Close()
		}()
	}

	var ms runtime.MemStats
	for r := 0; r < *rounds; r++ {
		pingPong(100)
		fanOut(50)
		allocate(64)
		runtime.GC()
		runtime.ReadMemStats(&ms) // a non-GC stop-the-world
		if *sleep > 0 {
			time.Sleep(*sleep)
		}
	}
	runtime.GC()
	runtime.ReadMemStats(&ms)
	fmt.Fprintf(os.Stdout, "rounds=%d numgc=%d pause_total_ns=%d cgo=%v\n",
		*rounds, ms.NumGC, ms.PauseTotalNs, cgoAnswer())
}
