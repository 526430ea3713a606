// churn creates and retires goroutines quickly, each growing its stack through deep
// recursion (so stacks are copied while probes fire) and handing results over channels, and
// prints a deterministic checksum: the same output with or without golat attached.
package main

import (
	"flag"
	"fmt"
	"runtime"
	"sync"
)

// deep recurses with a large frame, forcing stack growth (copystack) several times.
func deep(n int, acc uint64) uint64 {
	var pad [256]byte
	pad[n%256] = byte(n)
	if n == 0 {
		return acc + uint64(pad[0])
	}
	return deep(n-1, acc*31+uint64(n)+uint64(pad[n%256]))
}

func main() {
	rounds := flag.Int("rounds", 200, "rounds of goroutine churn")
	width := flag.Int("width", 64, "goroutines per round")
	flag.Parse()
	var sum uint64
	for r := 0; r < *rounds; r++ {
		out := make(chan uint64, *width)
		var wg sync.WaitGroup
		for i := 0; i < *width; i++ {
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				v := deep(200+(i*7+r)%300, uint64(i))
				if i%8 == 0 {
					runtime.Gosched()
				}
				out <- v
			}(i)
		}
		wg.Wait()
		close(out)
		for v := range out {
			sum += v
		}
		if r%50 == 0 {
			runtime.GC()
		}
	}
	fmt.Printf("churn: rounds=%d width=%d checksum=%d\n", *rounds, *width, sum)
}
