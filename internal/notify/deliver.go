package notify

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/tokengate/caddy-tokengate/webhook"
)

// Hook is one configured receiver.
type Hook struct {
	// URL gets a POST per event: https, or http to a loopback address
	// (a local relay). Its path may hold a credential (Slack's does), so
	// it is never logged: log lines name the scheme and host only.
	URL string
	// Secret keys the HMACs of every delivery: the key webhook.Key
	// derives from the configured secret, at least webhook.MinKeyLen bytes.
	Secret []byte
	// Events limits the hook to these types; empty means every type.
	Events []string
}

// Options tune delivery. Zero values take the defaults.
type Options struct {
	// QueueSize bounds the events waiting per hook (default 1000). A full
	// queue drops the new event, with a log line, rather than slow down
	// the management call that produced it.
	QueueSize int
	// MaxAttempts bounds the deliveries of one event (default 8).
	MaxAttempts int
	// BaseDelay is the wait before the first retry (default 1s); each
	// further wait doubles, up to MaxDelay (default 1m), and is jittered
	// between half and all of that.
	BaseDelay, MaxDelay time.Duration
	// Timeout bounds one attempt, connection to last byte (default 10s).
	Timeout time.Duration
	// DrainTimeout is how long Stop keeps delivering what is queued, once
	// each and without retries (default 5s).
	DrainTimeout time.Duration
	// Logger gets one line per delivery outcome.
	Logger *zap.Logger
	// Outcome, when set, hears each event's end for one hook, for the
	// metrics: Delivered, Failed (refused, redirected, or out of
	// attempts) or Dropped (never sent: a full queue, or stopping).
	Outcome func(result string)
}

// The results Options.Outcome hears.
const (
	Delivered = "delivered"
	Failed    = "failed"
	Dropped   = "dropped"
)

// Dispatcher delivers events to hooks in the background: each hook has
// its own bounded queue and worker, so a slow or failing receiver delays
// only its own events and never the caller of Publish.
type Dispatcher struct {
	hooks  []*hook
	opts   Options
	client *http.Client
	log    *zap.Logger

	// closing guards stopping: Publish enqueues under its read lock, so
	// no event slips into a queue after the workers drained it.
	closing  sync.RWMutex
	stopping chan struct{}
	stopOnce sync.Once
	// hard ends in-flight attempts when the drain at Stop runs out.
	hard       context.Context
	cancelHard context.CancelFunc
	workers    sync.WaitGroup
}

type hook struct {
	Hook
	name  string // scheme://host, the only part of URL that is logged
	queue chan Event
}

func (h *hook) wants(typ string) bool { return len(h.Events) == 0 || slices.Contains(h.Events, typ) }

// New checks the hooks and builds a dispatcher; Start starts delivering.
func New(hooks []Hook, o Options) (*Dispatcher, error) {
	o.QueueSize = positive(o.QueueSize, 1000)
	o.MaxAttempts = positive(o.MaxAttempts, 8)
	o.BaseDelay = positive(o.BaseDelay, time.Second)
	o.MaxDelay = max(positive(o.MaxDelay, time.Minute), o.BaseDelay)
	o.Timeout = positive(o.Timeout, 10*time.Second)
	o.DrainTimeout = positive(o.DrainTimeout, 5*time.Second)
	if o.Logger == nil {
		o.Logger = zap.NewNop()
	}
	d := &Dispatcher{opts: o, log: o.Logger, stopping: make(chan struct{})}
	d.hard, d.cancelHard = context.WithCancel(context.Background())
	for i, h := range hooks {
		name, err := checkHook(h)
		if err != nil {
			return nil, fmt.Errorf("webhook %d: %v", i+1, err)
		}
		d.hooks = append(d.hooks, &hook{Hook: h, name: name, queue: make(chan Event, o.QueueSize)})
	}
	d.client = &http.Client{
		Timeout:   o.Timeout,
		Transport: http.DefaultTransport.(*http.Transport).Clone(),
		// A redirect could lead the signed event to another host; the
		// receiver's answer is taken as it is, and a 3xx is a failure.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	return d, nil
}

// checkHook validates h and returns the name its log lines use.
func checkHook(h Hook) (string, error) {
	u, err := url.Parse(h.URL)
	if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
		return "", errors.New("url must be an absolute http(s) URL")
	}
	name := u.Scheme + "://" + u.Host
	if u.Scheme == "http" && !loopback(u.Hostname()) {
		return "", fmt.Errorf("%s: url must be https (plain http only to a loopback address)", name)
	}
	if len(h.Secret) < webhook.MinKeyLen {
		return "", fmt.Errorf("%s: the secret's key must be at least %d bytes (for example whsec_$(openssl rand -base64 32))", name, webhook.MinKeyLen)
	}
	for _, typ := range h.Events {
		if !slices.Contains(Types, typ) {
			return "", fmt.Errorf("%s: unknown event %q (want one of: %s)", name, typ, strings.Join(Types, ", "))
		}
	}
	return name, nil
}

func loopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Start starts one worker per hook.
func (d *Dispatcher) Start() {
	for _, h := range d.hooks {
		d.workers.Go(func() { d.run(h) })
	}
}

// Stop stops accepting events, delivers what is queued (once each, for
// at most DrainTimeout), and returns when every worker has ended.
func (d *Dispatcher) Stop() {
	d.stopOnce.Do(func() {
		d.closing.Lock()
		close(d.stopping)
		d.closing.Unlock()
		cut := time.AfterFunc(d.opts.DrainTimeout, d.cancelHard)
		d.workers.Wait()
		cut.Stop()
		d.cancelHard()
	})
}

// Publish queues e for every hook that wants it, without waiting.
func (d *Dispatcher) Publish(e Event) {
	if d == nil {
		return
	}
	d.closing.RLock()
	defer d.closing.RUnlock()
	stopped := false
	select {
	case <-d.stopping:
		stopped = true
	default:
	}
	for _, h := range d.hooks {
		if !h.wants(e.Type) {
			continue
		}
		if stopped {
			d.dropped(h, e, "stopping")
			continue
		}
		select {
		case h.queue <- e:
		default:
			d.dropped(h, e, "queue full")
		}
	}
}

func (d *Dispatcher) run(h *hook) {
	for {
		select {
		case e := <-h.queue:
			d.deliver(h, e)
		case <-d.stopping:
			for {
				select {
				case e := <-h.queue:
					if d.hard.Err() != nil {
						d.dropped(h, e, "stopping")
					} else {
						d.deliver(h, e)
					}
				default:
					return
				}
			}
		}
	}
}

// deliver sends e until the hook takes it, refuses it, or MaxAttempts
// are spent. Only failures that may pass are retried: connection errors,
// timeouts, 5xx, 408 and 429.
func (d *Dispatcher) deliver(h *hook, e Event) {
	body, err := json.Marshal(e)
	if err != nil {
		d.dropped(h, e, "encoding: "+err.Error())
		return
	}
	for attempt := 1; ; attempt++ {
		began := time.Now()
		status, retryAfter, err := d.send(h, e, body)
		fields := append(eventFields(h, e), zap.Int("attempt", attempt), zap.Duration("duration", time.Since(began)))
		if status != 0 {
			fields = append(fields, zap.Int("status", status))
		}
		if err != nil {
			fields = append(fields, zap.String("error", err.Error()))
		}
		switch {
		case err == nil && status >= 200 && status < 300:
			d.log.Info("webhook delivered", fields...)
			d.outcome(Delivered)
			return
		case err == nil && status >= 300 && status < 400:
			d.log.Error("webhook answered with a redirect, which is not followed: configure its final URL; event dropped", fields...)
			d.outcome(Failed)
			return
		case !retryable(status, err):
			d.log.Error("webhook refused the event; not retrying", fields...)
			d.outcome(Failed)
			return
		case attempt >= d.opts.MaxAttempts:
			d.log.Error("webhook delivery failed; giving up", fields...)
			d.outcome(Failed)
			return
		}
		wait := d.backoff(attempt, retryAfter)
		select {
		case <-d.stopping:
			d.log.Error("webhook delivery failed; not retrying while stopping", fields...)
			d.outcome(Failed)
			return
		default:
		}
		d.log.Warn("webhook delivery failed; retrying", append(fields, zap.Duration("retry_in", wait))...)
		timer := time.NewTimer(wait)
		select {
		case <-timer.C:
		case <-d.stopping:
			timer.Stop()
			d.log.Error("webhook delivery abandoned: stopping", fields...)
			d.outcome(Failed)
			return
		}
	}
}

// send makes one attempt. The error never holds the URL (a url.Error
// would print it whole).
func (d *Dispatcher) send(h *hook, e Event, body []byte) (status int, retryAfter time.Duration, err error) {
	ctx, cancel := context.WithTimeout(d.hard, d.opts.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, h.URL, bytes.NewReader(body))
	if err != nil {
		return 0, 0, errors.New("building the request failed")
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "tokengate-webhook/1")
	req.Header.Set(EventHeader, e.Type)
	req.Header.Set(DeliveryHeader, e.ID)
	// Signed per attempt, so that a late retry is inside the receiver's
	// replay window. The Standard Webhooks headers, and for one release
	// the Tokengate-Signature that receivers written before them check.
	now := time.Now()
	req.Header.Set(webhook.IDHeader, e.ID)
	req.Header.Set(webhook.TimestampHeader, strconv.FormatInt(now.Unix(), 10))
	req.Header.Set(webhook.SignatureHeader, webhook.Sign(h.Secret, e.ID, now, body))
	req.Header.Set(SignatureHeader, Sign(h.Secret, now, body))
	resp, err := d.client.Do(req)
	if err != nil {
		if ue, ok := errors.AsType[*url.Error](err); ok {
			err = ue.Err
		}
		return 0, 0, err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	return resp.StatusCode, parseRetryAfter(resp.Header.Get("Retry-After")), nil
}

func retryable(status int, err error) bool {
	if err != nil {
		return true
	}
	return status >= 500 || status == http.StatusRequestTimeout || status == http.StatusTooManyRequests
}

// backoff is the wait after a failed attempt: the receiver's Retry-After
// when it asks for no more than MaxDelay, else BaseDelay doubled per
// attempt, capped, with jitter so that many nodes do not retry in step.
func (d *Dispatcher) backoff(attempt int, retryAfter time.Duration) time.Duration {
	if retryAfter > 0 && retryAfter <= d.opts.MaxDelay {
		return retryAfter
	}
	step := d.opts.MaxDelay
	if attempt < 30 {
		step = min(d.opts.BaseDelay<<(attempt-1), d.opts.MaxDelay)
	}
	return step/2 + rand.N(step/2+1)
}

func parseRetryAfter(v string) time.Duration {
	if v == "" {
		return 0
	}
	if s, err := strconv.Atoi(v); err == nil && s >= 0 {
		return time.Duration(s) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		return time.Until(t)
	}
	return 0
}

func (d *Dispatcher) dropped(h *hook, e Event, why string) {
	d.log.Error("webhook event dropped", append(eventFields(h, e), zap.String("error", why))...)
	d.outcome(Dropped)
}

func (d *Dispatcher) outcome(result string) {
	if d.opts.Outcome != nil {
		d.opts.Outcome(result)
	}
}

func eventFields(h *hook, e Event) []zap.Field {
	f := []zap.Field{zap.String("webhook", h.name), zap.String("event", e.Type), zap.String("event_id", e.ID)}
	if e.RequestID != "" {
		f = append(f, zap.String("token_request_id", e.RequestID))
	}
	if e.TokenID != "" {
		f = append(f, zap.String("token_id", e.TokenID))
	}
	return f
}

func positive[T int | time.Duration](v, def T) T {
	if v <= 0 {
		return def
	}
	return v
}
