// Package follower applies golat's GOMAXPROCS signals to the running program: it polls the
// golat agent's /v1/signals/{pid} for its own pid and calls runtime.GOMAXPROCS when the agent
// says raise or lower with enough confidence.
//
// Caveats (read before using it in production):
//   - runtime.GOMAXPROCS stops the world briefly on every change.
//   - On Go >= 1.25, calling runtime.GOMAXPROCS turns off the runtime's own automatic
//     GOMAXPROCS updates (from cgroup limits) for the rest of the process's life.
//   - The agent confirms a change over several windows and then holds for a cooldown; the
//     follower applies at most one change per poll and never goes below 1 or above MaxProcs.
//   - The agent must be reachable (default http://127.0.0.1:9464); errors are reported through
//     OnError and otherwise ignored: the program keeps its current GOMAXPROCS.
package follower

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"runtime"
	"time"
)

// Signal is the part of golat's signal record the follower uses (docs/signals.md).
type Signal struct {
	Action      string  `json:"action"`
	Current     *int    `json:"current"`
	Recommended *int    `json:"recommended"`
	Confidence  float64 `json:"confidence"`
	Rule        string  `json:"rule"`
	Reason      string  `json:"reason"`
}

// Config of a follower.
type Config struct {
	// Agent base URL, default http://127.0.0.1:9464.
	Agent string
	// Poll period, default 1s.
	Every time.Duration
	// Minimum confidence to act on, default 0.5.
	MinConfidence float64
	// Upper bound on GOMAXPROCS, default runtime.NumCPU().
	MaxProcs int
	// Called on every change (old, new, signal) and every error, when set.
	OnChange func(old, new int, s Signal)
	OnError  func(error)
}

func (c *Config) defaults() {
	if c.Agent == "" {
		c.Agent = "http://127.0.0.1:9464"
	}
	if c.Every <= 0 {
		c.Every = time.Second
	}
	if c.MinConfidence <= 0 {
		c.MinConfidence = 0.5
	}
	if c.MaxProcs <= 0 {
		c.MaxProcs = runtime.NumCPU()
	}
}

// Fetch returns the agent's current signal for this process.
func Fetch(ctx context.Context, client *http.Client, agent string) (Signal, error) {
	var out struct {
		Signal Signal `json:"signal"`
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("%s/v1/signals/%d", agent, os.Getpid()), nil)
	if err != nil {
		return out.Signal, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return out.Signal, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return out.Signal, fmt.Errorf("golat agent: %s", resp.Status)
	}
	err = json.NewDecoder(resp.Body).Decode(&out)
	return out.Signal, err
}

// Run polls until ctx is done, applying raise/lower signals.
func Run(ctx context.Context, c Config) {
	c.defaults()
	client := &http.Client{Timeout: 2 * time.Second}
	t := time.NewTicker(c.Every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		s, err := Fetch(ctx, client, c.Agent)
		if err != nil {
			if c.OnError != nil {
				c.OnError(err)
			}
			continue
		}
		if (s.Action != "raise" && s.Action != "lower") || s.Recommended == nil || s.Confidence < c.MinConfidence {
			continue
		}
		want := *s.Recommended
		if want < 1 {
			want = 1
		}
		if want > c.MaxProcs {
			want = c.MaxProcs
		}
		old := runtime.GOMAXPROCS(0)
		if want == old {
			continue
		}
		runtime.GOMAXPROCS(want)
		if c.OnChange != nil {
			c.OnChange(old, want, s)
		}
	}
}
