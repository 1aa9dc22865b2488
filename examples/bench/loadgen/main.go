// Command loadgen sends GET requests at a fixed rate, evenly spaced, and
// reports latency percentiles: an open-loop load generator in the manner of
// wrk2, for the fixed-rate stage of run.sh.
//
// Why not hey: hey's -q is a rate per worker, each on its own ticker, so
// its workers fire in bursts, and a burst of 32 requests queueing at the
// server decided the p99 (11 ms for plain Caddy at half its peak), which
// hid a difference of a millisecond. Here one scheduler spaces requests
// evenly and latency is measured from when a request was due, not from
// when a free worker got to send it, so a stalled server cannot hide its
// stall by holding the generator back (coordinated omission).
//
//	loadgen -url http://127.0.0.1:18101/billing/invoices -rate 3000 -duration 10s -header "Authorization: Bearer ..."
//
// Prints one line of key=value pairs: sent, ok, errors, non2xx, rate,
// p50_ms, p90_ms, p99_ms, p999_ms, max_ms.
package main

import (
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"time"
)

func main() {
	url := flag.String("url", "", "URL to GET")
	rate := flag.Float64("rate", 1000, "requests per second")
	duration := flag.Duration("duration", 10*time.Second, "how long to send")
	conns := flag.Int("conns", 64, "most requests in flight (and keep-alive connections)")
	header := flag.String("header", "", `one request header, "Name: value"`)
	flag.Parse()
	if *url == "" || *rate <= 0 {
		fmt.Fprintln(os.Stderr, "usage: loadgen -url URL -rate N [-duration D] [-conns N] [-header 'Name: value']")
		os.Exit(2)
	}
	name, value, _ := strings.Cut(*header, ":")
	name, value = strings.TrimSpace(name), strings.TrimSpace(value)

	client := &http.Client{
		Timeout: 10 * time.Second,
		Transport: &http.Transport{
			MaxIdleConns:        *conns,
			MaxIdleConnsPerHost: *conns,
			DisableCompression:  true,
		},
	}
	type result struct {
		latency time.Duration
		status  int
		err     bool
	}
	due := make(chan time.Time, *conns)
	results := make(chan result, 4096)
	var workers sync.WaitGroup
	for range *conns {
		workers.Add(1)
		go func() {
			defer workers.Done()
			for at := range due {
				req, _ := http.NewRequest(http.MethodGet, *url, nil)
				if name != "" {
					req.Header.Set(name, value)
				}
				resp, err := client.Do(req)
				if err != nil {
					results <- result{latency: time.Since(at), err: true}
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				results <- result{latency: time.Since(at), status: resp.StatusCode}
			}
		}()
	}

	var latencies []time.Duration
	var ok, errs, non2xx int
	collected := make(chan struct{})
	go func() {
		for r := range results {
			latencies = append(latencies, r.latency)
			switch {
			case r.err:
				errs++
			case r.status < 200 || r.status > 299:
				non2xx++
			default:
				ok++
			}
		}
		close(collected)
	}()

	interval := time.Duration(float64(time.Second) / *rate)
	start := time.Now()
	n := int(duration.Seconds() * *rate)
	for i := range n {
		at := start.Add(time.Duration(i) * interval)
		if wait := time.Until(at); wait > 0 {
			time.Sleep(wait)
		}
		// When every worker is busy this blocks, and the time spent
		// waiting counts against the request, as it would for a client.
		due <- at
	}
	close(due)
	workers.Wait()
	elapsed := time.Since(start)
	close(results)
	<-collected

	slices.Sort(latencies)
	pct := func(p float64) string {
		if len(latencies) == 0 {
			return "0"
		}
		i := min(len(latencies)-1, int(p*float64(len(latencies))))
		return fmt.Sprintf("%.3f", float64(latencies[i])/float64(time.Millisecond))
	}
	fmt.Printf("sent=%d ok=%d errors=%d non2xx=%d rate=%.1f p50_ms=%s p90_ms=%s p99_ms=%s p999_ms=%s max_ms=%s\n",
		n, ok, errs, non2xx, float64(n)/elapsed.Seconds(), pct(0.50), pct(0.90), pct(0.99), pct(0.999), pct(1))
}
