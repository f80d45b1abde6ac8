package main

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

// loadResult is what a batch of uploads measured on the client side.
type loadResult struct {
	n    int
	wall time.Duration
	lat  []time.Duration // sorted
}

// perSec is the throughput: requests per second of wall time.
func (r loadResult) perSec() float64 { return float64(r.n) / r.wall.Seconds() }

// pct returns the q-quantile latency (nearest rank).
func (r loadResult) pct(q float64) time.Duration {
	if len(r.lat) == 0 {
		return 0
	}
	return r.lat[min(len(r.lat)-1, int(q*float64(len(r.lat))))]
}

// runLoad sends n requests made by mk with conc in flight; every answer must have one of the want codes.
func runLoad(c *http.Client, n, conc int, mk func(i int) (*http.Request, error), want ...int) (loadResult, error) {
	lat := make([]time.Duration, n)
	var next atomic.Int64
	var mu sync.Mutex
	var firstErr error
	var wg sync.WaitGroup
	start := time.Now()
	for w := 0; w < conc; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				t0 := time.Now()
				err := do(c, mk, i, want)
				lat[i] = time.Since(t0)
				if err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
					return
				}
			}
		}()
	}
	wg.Wait()
	r := loadResult{n: n, wall: time.Since(start), lat: lat}
	sortDurations(r.lat)
	return r, firstErr
}

// do sends request i and checks its status.
func do(c *http.Client, mk func(i int) (*http.Request, error), i int, want []int) error {
	req, err := mk(i)
	if err != nil {
		return err
	}
	resp, err := c.Do(req)
	if err != nil {
		return fmt.Errorf("request %d: %w", i, err)
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	resp.Body.Close()
	if !slices.Contains(want, resp.StatusCode) {
		return fmt.Errorf("request %d %s %s: %s: %s", i, req.Method, req.URL, resp.Status, body)
	}
	return nil
}

// headerPut is a header-mode upload of the spooled file path, as nginx sends it: no body, the path in
// X-Package-Name.
func headerPut(base, path, osRelease string) (*http.Request, error) {
	req, err := http.NewRequest(http.MethodPut, base+"/upload/?os_release="+osRelease, http.NoBody)
	if err != nil {
		return nil, err
	}
	req.Header.Set("X-Package-Name", path)
	return req, nil
}

// bodyPut uploads the file at path as the request body.
func bodyPut(url, path string) (*http.Request, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	req, err := http.NewRequest(http.MethodPut, url, f) // the transport closes f
	if err != nil {
		f.Close()
		return nil, err
	}
	req.ContentLength = fi.Size()
	return req, nil
}

// httpRequest is the request type the request makers return.
type httpRequest = http.Request

// sortDurations sorts d ascending, for the percentiles.
func sortDurations(d []time.Duration) { sort.Slice(d, func(i, j int) bool { return d[i] < d[j] }) }
