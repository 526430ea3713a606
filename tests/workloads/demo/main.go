// demo is the bundled workload `cargo xtask run` records when no target is given: a small
// service-like mix of goroutines handing work over channels, timers, allocation (so the GC
// runs), and a periodic ReadMemStats, for -duration.
package main

import (
	"flag"
	"fmt"
	"runtime"
	"sync"
	"time"
)

type request struct {
	payload []byte
	done    chan int
}

func main() {
	duration := flag.Duration("duration", 10*time.Second, "how long to run")
	workers := flag.Int("workers", 8, "worker goroutines")
	flag.Parse()

	reqs := make(chan request, 64)
	var wg sync.WaitGroup
	for i := 0; i < *workers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := range reqs {
				sum := 0
				buf := make([]byte, len(r.payload)*2)
				copy(buf, r.payload)
				for _, b := range buf {
					sum += int(b)
				}
				r.done <- sum
			}
		}()
	}
	stop := time.After(*duration)
	stats := time.NewTicker(500 * time.Millisecond)
	defer stats.Stop()
	served := 0
	var ms runtime.MemStats
loop:
	for {
		select {
		case <-stop:
			break loop
		case <-stats.C:
			runtime.ReadMemStats(&ms)
		default:
		}
		var clients sync.WaitGroup
		for c := 0; c < 16; c++ {
			clients.Add(1)
			go func(c int) {
				defer clients.Done()
				done := make(chan int, 1)
				reqs <- request{payload: make([]byte, 4096+c*512), done: done}
				<-done
			}(c)
		}
		clients.Wait()
		served += 16
		time.Sleep(200 * time.Microsecond)
	}
	close(reqs)
	wg.Wait()
	runtime.ReadMemStats(&ms)
	fmt.Printf("demo: served %d requests, %d GC cycles, %d ns total GC pause (runtime's own numbers)\n", served, ms.NumGC, ms.PauseTotalNs)
}
