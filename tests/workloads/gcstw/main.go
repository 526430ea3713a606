// gcstw forces a known number of GC cycles and ReadMemStats calls, then prints the Go
// runtime's own view of its stop-the-world pauses as one JSON line, so golat's numbers can be
// compared against it. Standard library only; builds with Go 1.19+.
//
// With -wait-signal it blocks until SIGUSR1 before working (for `golat record --pid`), and
// reports only what happened after the signal.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"syscall"
	"time"
)

var sink [][]byte

type runtimeView struct {
	GoVersion string `json:"go_version"`
	// Deltas over the measured phase.
	NumGC        uint32 `json:"num_gc"`
	PauseTotalNs uint64 `json:"pause_total_ns"`
	// Number of GC pauses from /gc/pauses:seconds (the runtime's pause histogram).
	GCPauses uint64 `json:"gc_pauses"`
	// /sched/pauses/total/gc:seconds sum estimate is not exact (bucketed); count only.
	SchedPausesGC int64 `json:"sched_pauses_total_gc,omitempty"`
	// ReadMemStats calls made in the measured phase, including the final one.
	ReadMemStatsCalls int `json:"read_mem_stats_calls"`
	Pid               int `json:"pid"`
}

func histCount(name string) (uint64, bool) {
	s := []metrics.Sample{{Name: name}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindFloat64Histogram {
		return 0, false
	}
	var n uint64
	for _, c := range s[0].Value.Float64Histogram().Counts {
		n += c
	}
	return n, true
}

func main() {
	cycles := flag.Int("cycles", 20, "forced GC cycles (runtime.GC)")
	readMemStats := flag.Int("readmemstats", 5, "extra runtime.ReadMemStats calls (non-GC stop-the-world)")
	alloc := flag.Int("alloc-mb", 64, "MB allocated between forced cycles, to make pauses realistic")
	waitSignal := flag.Bool("wait-signal", false, "wait for SIGUSR1 before starting")
	flag.Parse()

	if *waitSignal {
		ch := make(chan os.Signal, 1)
		signal.Notify(ch, syscall.SIGUSR1)
		fmt.Fprintln(os.Stderr, "gcstw: waiting for SIGUSR1")
		<-ch
	}
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	pausesBefore, _ := histCount("/gc/pauses:seconds")

	for i := 0; i < *cycles; i++ {
		for j := 0; j < *alloc*16; j++ {
			sink = append(sink, make([]byte, 64<<10/16))
			if len(sink) > 4096 {
				sink = sink[:0]
			}
		}
		runtime.GC()
	}
	// No automatic cycles from here on: the counts below must be final.
	debug.SetGCPercent(-1)
	var ms runtime.MemStats
	for i := 0; i < *readMemStats; i++ {
		runtime.ReadMemStats(&ms)
		time.Sleep(time.Millisecond)
	}
	pausesAfter, ok := histCount("/gc/pauses:seconds")
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	view := runtimeView{
		GoVersion:         runtime.Version(),
		NumGC:             after.NumGC - before.NumGC,
		PauseTotalNs:      after.PauseTotalNs - before.PauseTotalNs,
		ReadMemStatsCalls: *readMemStats + 1,
		Pid:               os.Getpid(),
	}
	if ok {
		view.GCPauses = pausesAfter - pausesBefore
	}
	out, _ := json.Marshal(view)
	fmt.Println(string(out))
}
