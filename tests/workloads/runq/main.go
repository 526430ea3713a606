// runq runs a ticker goroutine that sleeps 1ms at a time, next to -spinners CPU-bound
// goroutines, for -duration. With more spinners than CPUs (and GOMAXPROCS above the CPU
// count) its threads wait in the kernel run queue; with no spinners they barely wait.
package main

import (
	"flag"
	"fmt"
	"os"
	"runtime"
	"sync/atomic"
	"time"
)

func main() {
	spinners := flag.Int("spinners", 0, "CPU-bound goroutines")
	duration := flag.Duration("duration", 3*time.Second, "how long to run")
	flag.Parse()
	if *spinners > 0 && os.Getenv("GOMAXPROCS") == "" {
		runtime.GOMAXPROCS(*spinners + 1)
	}
	var stop int32
	var spins uint64
	for i := 0; i < *spinners; i++ {
		go func() {
			var n uint64
			for atomic.LoadInt32(&stop) == 0 {
				n++
			}
			atomic.AddUint64(&spins, n)
		}()
	}
	deadline := time.Now().Add(*duration)
	var worst time.Duration
	ticks := 0
	for time.Now().Before(deadline) {
		t0 := time.Now()
		time.Sleep(time.Millisecond)
		if d := time.Since(t0) - time.Millisecond; d > worst {
			worst = d
		}
		ticks++
	}
	atomic.StoreInt32(&stop, 1)
	fmt.Printf("{\"ticks\":%d,\"worst_oversleep_ns\":%d,\"gomaxprocs\":%d}\n", ticks, worst.Nanoseconds(), runtime.GOMAXPROCS(0))
}
