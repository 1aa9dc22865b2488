package policy

import (
	"context"
	"errors"
	"testing"
	"testing/fstest"
	"time"

	"github.com/tokengate/caddy-tokengate/store"
)

// A caller that goes away still stops a long evaluation, without the
// goroutine rego would start per call.
func TestDecideStopsWhenContextEnds(t *testing.T) {
	slow := "package tokengate.gateway\n" +
		"reasons contains \"slow\" if count([1 | some i in numbers.range(1, 20000); some j in numbers.range(1, 20000)]) > 0\n"
	e, err := NewEngine(fstest.MapFS{"gateway.rego": {Data: []byte(slow)}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err = e.Decide(ctx, GatewayQuery, GatewayInput(TokenTerm(&store.Token{}), Request{}, "billing", start))
	if err == nil {
		t.Fatal("evaluation was not cancelled")
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Fatalf("cancellation took %s", took)
	}
	if errors.Is(err, ErrNoDecision) {
		t.Fatalf("got %v, want a cancellation error", err)
	}
}
