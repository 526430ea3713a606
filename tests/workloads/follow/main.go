// follow is the closed-loop workload: -spinners CPU-bound goroutines and a ticker goroutine
// that measures its own wake-up delays, with the golat follower applying the agent's
// GOMAXPROCS signals. It prints one JSON line per change and a final summary with the
// ticker's delays before the first change and after the last one.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"runtime"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"golat.example/follower"
)

func p99(d []int64) int64 {
	if len(d) == 0 {
		return 0
	}
	s := append([]int64(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)*99/100]
}

func main() {
	spinners := flag.Int("spinners", 4, "CPU-bound goroutines")
	duration := flag.Duration("duration", 20*time.Second, "how long to run")
	agent := flag.String("agent", "http://127.0.0.1:9464", "golat agent")
	flag.Parse()

	var stop int32
	for i := 0; i < *spinners; i++ {
		go func() {
			for atomic.LoadInt32(&stop) == 0 {
			}
		}()
	}
	var mu sync.Mutex
	var delays []int64
	changes := 0
	var before, after []int64
	ctx, cancel := context.WithCancel(context.Background())
	go follower.Run(ctx, follower.Config{
		Agent: *agent,
		OnChange: func(old, new int, s follower.Signal) {
			mu.Lock()
			if changes == 0 {
				before = append([]int64(nil), delays...)
			}
			changes++
			delays = delays[:0]
			mu.Unlock()
			line, _ := json.Marshal(map[string]interface{}{"change": changes, "from": old, "to": new, "rule": s.Rule, "confidence": s.Confidence})
			fmt.Println(string(line))
		},
	})
	deadline := time.Now().Add(*duration)
	for time.Now().Before(deadline) {
		t0 := time.Now()
		time.Sleep(time.Millisecond)
		d := int64(time.Since(t0) - time.Millisecond)
		mu.Lock()
		delays = append(delays, d)
		mu.Unlock()
	}
	cancel()
	atomic.StoreInt32(&stop, 1)
	mu.Lock()
	after = append([]int64(nil), delays...)
	if changes == 0 {
		before = after
	}
	mu.Unlock()
	out, _ := json.Marshal(map[string]interface{}{
		"pid": os.Getpid(), "changes": changes, "final_gomaxprocs": runtime.GOMAXPROCS(0),
		"tick_p99_before_ns": p99(before), "tick_p99_after_ns": p99(after),
	})
	fmt.Println(string(out))
}
