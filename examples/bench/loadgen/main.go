// Command loadgen sends HTTP requests and reports latency percentiles, for
// run.sh and instructions.sh. It sends either one URL with one header, or
// the realistic mix of many tokens that examples/bench/seed wrote:
//
//   - a token drawn with Zipf-distributed popularity (math/rand/v2's Zipf
//     over the -secrets file's order; -zipf-s is the exponent),
//   - GET, POST and DELETE in the -methods proportions; POST and DELETE
//     draw from the tokens that may write, GET from all of them,
//   - /<prefix>/items/<random id up to 1,000,000> as the path,
//   - -unknown-pct of the calls with a well-formed secret never issued,
//     which a gateway must answer 401 (-auth=false: plain Caddy, 2xx).
//
// Every worker has its own seeded generator, so a run with the same -seed
// and -conns sends the same calls to every setup.
//
// Two ways to pace:
//
//   - -rate N: open loop in the manner of wrk2. One scheduler spaces requests
//     evenly, up to -conns in flight, and each latency is measured from when
//     the request was due, so a stalled server cannot hide behind a stalled
//     client (coordinated omission). (hey -q, used before, runs a ticker per
//     worker whose bursts decided the p99.)
//   - -rate 0: closed loop, -conns workers each sending the next request as
//     soon as the last answered, for the peak rate; latency from the send.
//
// -requests N stops after N requests instead of after -duration.
//
//	loadgen -rate 0 -duration 10s -conns 64 -secrets secrets.txt -base http://127.0.0.1:18101/demo
//	loadgen -url http://127.0.0.1:18101/demo/items/1 -rate 3000 -header "Authorization: Bearer ..."
//
// Prints one line of key=value pairs: sent, ok, errors, unexpected (a status
// other than the one the call should get), refused (expected 401s), get,
// post, delete, rate, p50_ms, p90_ms, p99_ms, p999_ms, max_ms.
package main

import (
	"bufio"
	"bytes"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

func main() {
	url := flag.String("url", "", "one URL to GET (instead of -secrets)")
	header := flag.String("header", "", `with -url: one request header, "Name: value"`)
	secretsPath := flag.String("secrets", "", "the realistic mix: secrets file written by seed")
	base := flag.String("base", "", "with -secrets: URL prefix the item paths go under, e.g. http://127.0.0.1:18101/demo")
	authHeader := flag.String("auth-header", "Authorization", "with -secrets: header carrying the token (as Bearer for Authorization)")
	auth := flag.Bool("auth", true, "with -secrets: the server checks tokens (unknown ones must get 401)")
	methods := flag.String("methods", "GET=80,POST=15,DELETE=5", "with -secrets: method weights")
	unknownPct := flag.Float64("unknown-pct", 1, "with -secrets: percentage of calls with a never-issued secret")
	zipfS := flag.Float64("zipf-s", 1.1, "with -secrets: Zipf exponent of token popularity (> 1)")
	ids := flag.Int("ids", 1_000_000, "with -secrets: item ids are drawn from 1..ids")
	seed := flag.Uint64("seed", 1, "random seed")
	rate := flag.Float64("rate", 1000, "requests per second; 0: closed loop, as fast as answers come")
	duration := flag.Duration("duration", 10*time.Second, "how long to send")
	requests := flag.Int64("requests", 0, "stop after this many requests (0: after -duration)")
	conns := flag.Int("conns", 64, "most requests in flight (and keep-alive connections)")
	flag.Parse()

	var gen func(*worker) call
	var m *mix
	switch {
	case *url != "" && *secretsPath == "":
		name, value, _ := strings.Cut(*header, ":")
		name, value = strings.TrimSpace(name), strings.TrimSpace(value)
		gen = func(*worker) call { return call{method: http.MethodGet, url: *url, header: name, value: value} }
	case *secretsPath != "" && *base != "" && *url == "":
		var err error
		m, err = loadMix(*secretsPath, *methods)
		if err != nil {
			fmt.Fprintln(os.Stderr, "loadgen:", err)
			os.Exit(2)
		}
		m.base, m.header, m.auth = strings.TrimSuffix(*base, "/"), *authHeader, *auth
		m.unknown, m.ids = *unknownPct/100, *ids
		gen = m.next
	default:
		fmt.Fprintln(os.Stderr, "usage: loadgen (-url URL [-header 'Name: value'] | -secrets FILE -base URL) [-rate N] [-duration D] [-requests N] [-conns N]")
		os.Exit(2)
	}
	if *rate < 0 || *conns < 1 || *zipfS <= 1 {
		fmt.Fprintln(os.Stderr, "loadgen: -rate must be >= 0, -conns >= 1, -zipf-s > 1")
		os.Exit(2)
	}

	client := &http.Client{
		Timeout: 10 * time.Second,
		Transport: &http.Transport{
			MaxIdleConns:        *conns,
			MaxIdleConnsPerHost: *conns,
			DisableCompression:  true,
		},
	}
	results := make(chan result, 4096)
	var stats stats
	collected := make(chan struct{})
	go func() {
		stats.collect(results)
		close(collected)
	}()

	start := time.Now()
	deadline := start.Add(*duration)
	var sent atomic.Int64
	// more reports whether another request may go out; it counts it.
	more := func() bool {
		if *requests > 0 {
			return sent.Add(1) <= *requests
		}
		if time.Now().After(deadline) {
			return false
		}
		sent.Add(1)
		return true
	}
	var workers sync.WaitGroup
	if *rate == 0 {
		for i := range *conns {
			w := newWorker(*seed, i, *zipfS, m)
			workers.Go(func() {
				for more() {
					c := gen(w)
					results <- do(client, c, time.Now())
				}
			})
		}
		workers.Wait()
	} else {
		due := make(chan time.Time, *conns)
		for i := range *conns {
			w := newWorker(*seed, i, *zipfS, m)
			workers.Go(func() {
				for at := range due {
					results <- do(client, gen(w), at)
				}
			})
		}
		interval := time.Duration(float64(time.Second) / *rate)
		for i := 0; more(); i++ {
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
	}
	elapsed := time.Since(start)
	close(results)
	<-collected
	stats.print(elapsed)
}

// call is one request to send and the answer it should get.
type call struct {
	method, url   string
	header, value string
	wantRefusal   bool // 401, for a never-issued secret at a gateway
}

type result struct {
	latency     time.Duration
	method      string
	err         bool
	expected    bool
	wantRefusal bool
}

var body = []byte(`{"name":"bench item","qty":1}`)

func do(client *http.Client, c call, from time.Time) result {
	var rd io.Reader
	if c.method == http.MethodPost {
		rd = bytes.NewReader(body)
	}
	req, _ := http.NewRequest(c.method, c.url, rd)
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.header != "" {
		req.Header.Set(c.header, c.value)
	}
	resp, err := client.Do(req)
	if err != nil {
		return result{latency: time.Since(from), method: c.method, err: true}
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	ok := resp.StatusCode >= 200 && resp.StatusCode <= 299
	if c.wantRefusal {
		ok = resp.StatusCode == http.StatusUnauthorized
	}
	return result{latency: time.Since(from), method: c.method, expected: ok, wantRefusal: c.wantRefusal}
}

// worker holds one sender's random state: math/rand/v2 generators are not
// safe for concurrent use, and one per worker keeps runs reproducible.
type worker struct {
	rng              *rand.Rand
	zipfAll, zipfOut *rand.Zipf
}

func newWorker(seed uint64, i int, s float64, m *mix) *worker {
	w := &worker{rng: rand.New(rand.NewPCG(seed, uint64(i)))}
	if m != nil {
		w.zipfAll = rand.NewZipf(w.rng, s, 1, uint64(len(m.readers)-1))
		w.zipfOut = rand.NewZipf(w.rng, s, 1, uint64(len(m.writers)-1))
	}
	return w
}

// mix is the realistic traffic of the seeded tokens.
type mix struct {
	base, header     string
	auth             bool
	unknown          float64
	ids              int
	readers, writers []string // in popularity order
	never            []string
	methods          []string
	cumulative       []float64 // cumulative method weights, summing to 1
}

func loadMix(path, weights string) (*mix, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	m := &mix{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		secret, kind, _ := strings.Cut(sc.Text(), " ")
		switch kind {
		case "rw", "cidr":
			m.readers = append(m.readers, secret)
			m.writers = append(m.writers, secret)
		case "ro":
			m.readers = append(m.readers, secret)
		case "unknown":
			m.never = append(m.never, secret)
		default:
			return nil, fmt.Errorf("%s: unknown kind %q", path, kind)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(m.readers) < 2 || len(m.writers) < 2 || len(m.never) == 0 {
		return nil, fmt.Errorf("%s: needs at least two readers, two writers and one unknown secret", path)
	}
	total := 0.0
	for part := range strings.SplitSeq(weights, ",") {
		name, w, _ := strings.Cut(part, "=")
		v, err := strconv.ParseFloat(w, 64)
		if err != nil || v < 0 {
			return nil, fmt.Errorf("-methods %q: bad weight %q", weights, part)
		}
		total += v
		m.methods = append(m.methods, strings.ToUpper(name))
		m.cumulative = append(m.cumulative, total)
	}
	if total == 0 {
		return nil, fmt.Errorf("-methods %q: weights sum to 0", weights)
	}
	for i := range m.cumulative {
		m.cumulative[i] /= total
	}
	return m, nil
}

func (m *mix) next(w *worker) call {
	r := w.rng.Float64()
	method := m.methods[len(m.methods)-1]
	for i, c := range m.cumulative {
		if r < c {
			method = m.methods[i]
			break
		}
	}
	c := call{method: method, url: m.base + "/items/" + strconv.Itoa(1+w.rng.IntN(m.ids)), header: m.header}
	var secret string
	switch {
	case w.rng.Float64() < m.unknown:
		secret = m.never[w.rng.IntN(len(m.never))]
		c.wantRefusal = m.auth
	case method == http.MethodGet || method == http.MethodHead || method == http.MethodOptions:
		secret = m.readers[w.zipfAll.Uint64()]
	default:
		secret = m.writers[w.zipfOut.Uint64()]
	}
	c.value = secret
	if strings.EqualFold(m.header, "Authorization") {
		c.value = "Bearer " + secret
	}
	return c
}

type stats struct {
	latencies                     []time.Duration
	ok, errs, unexpected, refused int
	byMethod                      map[string]int
}

func (s *stats) collect(results <-chan result) {
	s.byMethod = map[string]int{}
	for r := range results {
		s.latencies = append(s.latencies, r.latency)
		s.byMethod[r.method]++
		switch {
		case r.err:
			s.errs++
		case !r.expected:
			s.unexpected++
		case r.wantRefusal:
			s.refused++
		default:
			s.ok++
		}
	}
}

func (s *stats) print(elapsed time.Duration) {
	slices.Sort(s.latencies)
	pct := func(p float64) string {
		if len(s.latencies) == 0 {
			return "0"
		}
		i := min(len(s.latencies)-1, int(p*float64(len(s.latencies))))
		return fmt.Sprintf("%.3f", float64(s.latencies[i])/float64(time.Millisecond))
	}
	n := len(s.latencies)
	fmt.Printf("sent=%d ok=%d errors=%d unexpected=%d refused=%d get=%d post=%d delete=%d rate=%.1f p50_ms=%s p90_ms=%s p99_ms=%s p999_ms=%s max_ms=%s\n",
		n, s.ok, s.errs, s.unexpected, s.refused, s.byMethod[http.MethodGet], s.byMethod[http.MethodPost], s.byMethod[http.MethodDelete],
		float64(n)/elapsed.Seconds(), pct(0.50), pct(0.90), pct(0.99), pct(0.999), pct(1))
}
