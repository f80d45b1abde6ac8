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
	n    int // answers with a wanted status (all of them, except from runLoadCounting)
	wall time.Duration
	lat  []time.Duration // sorted
	// others counts, by status, the answers runLoadCounting accepted without counting them in n (like 503).
	others map[int]int
}

// refused is the number of answers without a wanted status.
func (r loadResult) refused() int {
	n := 0
	for _, c := range r.others {
		n += c
	}
	return n
}

// merge returns r and o as one result: their answers and latencies together, their wall times added (the
// batches ran one after the other).
func (r loadResult) merge(o loadResult) loadResult {
	m := loadResult{n: r.n + o.n, wall: r.wall + o.wall, lat: slices.Concat(r.lat, o.lat), others: map[int]int{}}
	slices.Sort(m.lat)
	for _, x := range []map[int]int{r.others, o.others} {
		for k, v := range x {
			m.others[k] += v
		}
	}
	return m
}

// perSec is the throughput: requests with a wanted answer per second of wall time.
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
	return runLoadCounting(c, n, conc, mk, false, want...)
}

// runLoadCounting is runLoad that, with tolerate, counts answers without a wanted code in others instead of
// failing, and leaves them out of n and of the latencies, so that the rate counts wanted answers only.
func runLoadCounting(c *http.Client, n, conc int, mk func(i int) (*http.Request, error), tolerate bool, want ...int) (loadResult, error) {
	lat := make([]time.Duration, n)
	others := map[int]int{}
	got := make([]int, n) // status of each request
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
				var err error
				got[i], err = doStatus(c, mk, i, want, tolerate)
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
	r := loadResult{wall: time.Since(start), others: others}
	for i, code := range got {
		if code != 0 && !slices.Contains(want, code) {
			others[code]++
			continue
		}
		r.lat = append(r.lat, lat[i])
	}
	r.n = len(r.lat)
	sortDurations(r.lat)
	return r, firstErr
}

// do sends request i and checks its status.
func do(c *http.Client, mk func(i int) (*http.Request, error), i int, want []int) error {
	_, err := doStatus(c, mk, i, want, false)
	return err
}

// doStatus sends request i and returns its status; an unwanted one is an error unless tolerate is set.
func doStatus(c *http.Client, mk func(i int) (*http.Request, error), i int, want []int, tolerate bool) (int, error) {
	req, err := mk(i)
	if err != nil {
		return 0, err
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, fmt.Errorf("request %d: %w", i, err)
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	resp.Body.Close()
	if !tolerate && !slices.Contains(want, resp.StatusCode) {
		return resp.StatusCode, fmt.Errorf("request %d %s %s: %s: %s", i, req.Method, req.URL, resp.Status, body)
	}
	return resp.StatusCode, nil
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
