// bench is the goroutine-heavy load of `cargo xtask bench overhead`: channel ping-pong
// pairs, many sleeping timer goroutines, and a loopback HTTP server under a bounded client
// loop, for -duration. It prints the work done as one JSON line; golat's overhead is the drop
// in that work when it is attached.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// run starts the workers of one phase, lets them work for d, stops them and returns the ops.
func run(d time.Duration, start func(stop *int32, ops *uint64, wg *sync.WaitGroup)) uint64 {
	var stop int32
	var ops uint64
	var wg sync.WaitGroup
	start(&stop, &ops, &wg)
	time.Sleep(d)
	atomic.StoreInt32(&stop, 1)
	wg.Wait()
	return ops
}

func main() {
	duration := flag.Duration("duration", 6*time.Second, "total run time (three equal phases)")
	pairs := flag.Int("pairs", 4, "ping-pong goroutine pairs")
	timers := flag.Int("timers", 200, "goroutines sleeping 100µs in a loop")
	clients := flag.Int("clients", 4, "HTTP client goroutines")
	flag.Parse()
	phase := *duration / 3

	pingpong := run(phase, func(stop *int32, ops *uint64, wg *sync.WaitGroup) {
		for i := 0; i < *pairs; i++ {
			ping, pong := make(chan int), make(chan int)
			wg.Add(2)
			go func() {
				defer wg.Done()
				for v := range ping {
					pong <- v + 1
				}
				close(pong)
			}()
			go func() {
				defer wg.Done()
				n := uint64(0)
				for atomic.LoadInt32(stop) == 0 {
					ping <- 1
					<-pong
					n++
				}
				close(ping)
				for range pong {
				}
				atomic.AddUint64(ops, n)
			}()
		}
	})
	fires := run(phase, func(stop *int32, ops *uint64, wg *sync.WaitGroup) {
		for i := 0; i < *timers; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				n := uint64(0)
				for atomic.LoadInt32(stop) == 0 {
					time.Sleep(100 * time.Microsecond)
					n++
				}
				atomic.AddUint64(ops, n)
			}()
		}
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, "listen:", err)
		os.Exit(1)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ok")
	})}
	go srv.Serve(ln)
	url := "http://" + ln.Addr().String() + "/"
	client := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: *clients}}
	reqs := run(phase, func(stop *int32, ops *uint64, wg *sync.WaitGroup) {
		for i := 0; i < *clients; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				n := uint64(0)
				for atomic.LoadInt32(stop) == 0 {
					resp, err := client.Get(url)
					if err != nil {
						continue
					}
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					n++
				}
				atomic.AddUint64(ops, n)
			}()
		}
	})
	srv.Close()
	out, _ := json.Marshal(map[string]uint64{
		"pingpong_ops": pingpong,
		"timer_fires":  fires,
		"http_reqs":    reqs,
		"phase_ns":     uint64(phase.Nanoseconds()),
	})
	fmt.Println(string(out))
}
