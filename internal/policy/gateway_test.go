package policy

import (
	"context"
	"errors"
	"reflect"
	"testing"
	"testing/fstest"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"

	"github.com/tokengate/caddy-tokengate/internal/store"
	"github.com/tokengate/caddy-tokengate/policies"
)

// DecideGateway must answer exactly what Decide answers for GatewayInput:
// same input document, same decision.
func TestDecideGatewayMatchesDecide(t *testing.T) {
	e, err := NewEngine(policies.FS)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	revoked := sampleToken(now)
	revoked.RevokedAt = now.Add(-time.Minute)
	withHeaders := Request{Method: "POST", Host: "h", Path: "/billing/x", RemoteIP: "10.1.1.1",
		Headers: map[string]string{"x-tenant": "acme", "x-env": "prod"}}
	for _, c := range []struct {
		tok     *store.Token
		req     Request
		service string
	}{
		{sampleToken(now), Request{Method: "GET", Host: "h", Path: "/billing/x", RemoteIP: "10.1.1.1"}, "billing"},
		{sampleToken(now), Request{Method: "GET", Host: "h", Path: "/search/x", RemoteIP: "192.0.2.1"}, "search"},
		{revoked, withHeaders, "billing"},
		{&store.Token{}, Request{}, ""},
	} {
		term := TokenTerm(c.tok)
		want := GatewayInput(term, c.req, c.service, now)
		if got := gatewayInput(term, c.req, c.service, now); ast.Compare(got, want) != 0 {
			t.Errorf("input differs:\n got  %v\n want %v", got, want)
		}
		wantD, wantErr := e.Decide(context.Background(), GatewayQuery, want)
		gotD, gotErr := e.DecideGateway(context.Background(), term, c.req, c.service, now)
		if !reflect.DeepEqual(gotD, wantD) || (gotErr == nil) != (wantErr == nil) {
			t.Errorf("decision differs: got %+v (%v), want %+v (%v)", gotD, gotErr, wantD, wantErr)
		}
	}
}

// A caller that goes away still stops a long evaluation, without the
// goroutine rego would start per call.
func TestDecideGatewayStopsWhenContextEnds(t *testing.T) {
	slow := "package tokengate.gateway\n" +
		"decision := {\"allow\": count([1 | some i in numbers.range(1, 20000); some j in numbers.range(1, 20000)]) > 0}\n"
	e, err := NewEngine(fstest.MapFS{"gateway.rego": {Data: []byte(slow)}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err = e.DecideGateway(ctx, TokenTerm(&store.Token{}), Request{}, "billing", start)
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
