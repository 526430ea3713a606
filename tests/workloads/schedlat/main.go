// schedlat measures its own goroutine scheduling delays next to -spinners CPU-bound
// goroutines (run it with GOMAXPROCS=1 to make them compete for one P), creates -spawn short
// goroutines, and prints one JSON line with its own view and the runtime's
// /sched/latencies:seconds histogram (delta over the run), for comparison with golat.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"runtime"
	"runtime/metrics"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

type view struct {
	GoVersion        string  `json:"go_version"`
	GOMAXPROCS       int     `json:"gomaxprocs"`
	Ticks            int     `json:"ticks"`
	TickDelayP50Ns   int64   `json:"tick_delay_p50_ns"`
	TickDelayP99Ns   int64   `json:"tick_delay_p99_ns"`
	Spawned          int     `json:"goroutines_spawned"`
	RtCount          uint64  `json:"rt_sched_count"`
	RtP50Ns          float64 `json:"rt_sched_p50_ns"`
	RtP99Ns          float64 `json:"rt_sched_p99_ns"`
	RtBucketsPresent bool    `json:"rt_present"`
}

func readHist() *metrics.Float64Histogram {
	s := []metrics.Sample{{Name: "/sched/latencies:seconds"}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindFloat64Histogram {
		return nil
	}
	return s[0].Value.Float64Histogram()
}

// quantile of the histogram delta b-a, as the upper bound of the bucket holding it.
func quantile(a, b *metrics.Float64Histogram, q float64) (float64, uint64) {
	var total uint64
	d := make([]uint64, len(b.Counts))
	for i := range b.Counts {
		d[i] = b.Counts[i] - a.Counts[i]
		total += d[i]
	}
	if total == 0 {
		return 0, 0
	}
	want := uint64(q * float64(total))
	var acc uint64
	for i, c := range d {
		acc += c
		if acc > want {
			return b.Buckets[i+1] * 1e9, total
		}
	}
	return b.Buckets[len(b.Buckets)-1] * 1e9, total
}

func main() {
	spinners := flag.Int("spinners", 0, "CPU-bound goroutines")
	spawn := flag.Int("spawn", 200, "short-lived goroutines to create")
	duration := flag.Duration("duration", 3*time.Second, "how long to run")
	flag.Parse()

	before := readHist()
	var stop int32
	for i := 0; i < *spinners; i++ {
		go func() {
			n := 0
			for atomic.LoadInt32(&stop) == 0 {
				n++
			}
			_ = n
		}()
	}
	var wg sync.WaitGroup
	for i := 0; i < *spawn; i++ {
		wg.Add(1)
		go func() { wg.Done() }()
		if i%20 == 0 {
			time.Sleep(time.Millisecond)
		}
	}
	wg.Wait()

	var delays []int64
	deadline := time.Now().Add(*duration)
	for time.Now().Before(deadline) {
		t0 := time.Now()
		time.Sleep(time.Millisecond)
		delays = append(delays, int64(time.Since(t0)-time.Millisecond))
	}
	atomic.StoreInt32(&stop, 1)
	after := readHist()
	sort.Slice(delays, func(i, j int) bool { return delays[i] < delays[j] })
	v := view{GoVersion: runtime.Version(), GOMAXPROCS: runtime.GOMAXPROCS(0), Ticks: len(delays), Spawned: *spawn}
	if len(delays) > 0 {
		v.TickDelayP50Ns = delays[len(delays)/2]
		v.TickDelayP99Ns = delays[len(delays)*99/100]
	}
	if before != nil && after != nil {
		v.RtBucketsPresent = true
		v.RtP50Ns, v.RtCount = quantile(before, after, 0.5)
		v.RtP99Ns, _ = quantile(before, after, 0.99)
	}
	out, _ := json.Marshal(v)
	fmt.Println(string(out))
}
