// Package tcprelay is a TCP relay for tests that cut a node off from its
// database the way networks do: silently (a route or firewall that drops
// packets: nothing is closed, nothing arrives) or loudly (connections
// reset, new ones refused).
package tcprelay

import (
	"net"
	"sync"
	"testing"
)

// Relay forwards connections from its address to a target.
type Relay struct {
	target   string
	listener net.Listener

	mu     sync.Mutex
	cond   *sync.Cond
	silent bool
	broken bool
	conns  map[net.Conn]struct{}
}

// Start listens on a free port of 127.0.0.1 and forwards to target until
// the test ends.
func Start(t testing.TB, target string) *Relay {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &Relay{target: target, listener: l, conns: map[net.Conn]struct{}{}}
	r.cond = sync.NewCond(&r.mu)
	go r.accept()
	t.Cleanup(func() {
		l.Close()
		r.Break()
		r.Heal()
	})
	return r
}

// Addr is where clients connect (host:port).
func (r *Relay) Addr() string { return r.listener.Addr().String() }

// Silence stops forwarding without closing anything: bytes sent either way
// are held, new connections are accepted and hear nothing.
func (r *Relay) Silence() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.silent = true
}

// Break closes every connection and refuses new ones (closing them as
// they arrive), as a dead host or a restarting database does.
func (r *Relay) Break() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.broken = true
	for c := range r.conns {
		c.Close()
	}
	clear(r.conns)
}

// Heal forwards again: held bytes flow, new connections reach the target.
func (r *Relay) Heal() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.silent, r.broken = false, false
	r.cond.Broadcast()
}

func (r *Relay) accept() {
	for {
		c, err := r.listener.Accept()
		if err != nil {
			return
		}
		go r.serve(c)
	}
}

func (r *Relay) serve(client net.Conn) {
	r.mu.Lock()
	broken := r.broken
	r.mu.Unlock()
	if broken {
		client.Close()
		return
	}
	server, err := net.Dial("tcp", r.target)
	if err != nil {
		client.Close()
		return
	}
	if !r.track(client, server) {
		return
	}
	go r.pipe(server, client)
	r.pipe(client, server)
}

// track remembers both ends, unless the relay broke meanwhile.
func (r *Relay) track(conns ...net.Conn) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.broken {
		for _, c := range conns {
			c.Close()
		}
		return false
	}
	for _, c := range conns {
		r.conns[c] = struct{}{}
	}
	return true
}

// pipe copies from src to dst, holding each chunk while the relay is
// silent. Either side closing closes both.
func (r *Relay) pipe(dst, src net.Conn) {
	defer dst.Close()
	defer src.Close()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			r.mu.Lock()
			for r.silent {
				r.cond.Wait()
			}
			r.mu.Unlock()
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}
