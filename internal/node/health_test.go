package node

import (
	"context"
	"slices"
	"syscall"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/tokengate/caddy-tokengate/internal/audit"
	"github.com/tokengate/caddy-tokengate/internal/gateway"
	"github.com/tokengate/caddy-tokengate/internal/health"
	"github.com/tokengate/caddy-tokengate/internal/reason"
)

// TestAuditFailOpenHold: while audit lines cannot be written, allowed
// calls are held with audit_unavailable, unless audit_fail_open lets them
// through.
func TestAuditFailOpenHold(t *testing.T) {
	failing := zap.New(zapcore.NewCore(zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig()), zapcore.AddSync(failWriter{}), zapcore.InfoLevel))
	for _, failOpen := range []bool{false, true} {
		p := &Parts{Audit: audit.New(failing), opts: Options{AuditFailOpen: failOpen}}
		p.Audit.Call(&audit.Call{Decision: gateway.Allow})
		if want := map[bool]string{false: reason.AuditUnavailable, true: ""}[failOpen]; p.auditHold() != want {
			t.Errorf("audit_fail_open=%v: hold %q, want %q", failOpen, p.auditHold(), want)
		}
	}
}

type failWriter struct{}

func (failWriter) Write([]byte) (int, error) { return 0, syscall.EROFS }

// TestReadiness: a node on an open store with the built-in policies is
// ready; one behind the change feed names change_feed, one whose store is
// closed names store (once the probe's last answer has expired).
func TestReadiness(t *testing.T) {
	o, _ := options(t)
	now := time.Now()
	o.Now = func() time.Time { return now }
	fresh := true
	o.Fresh = func() bool { return fresh }
	o.ChangeLag = func() time.Duration { return 3 * time.Second }
	p, err := Assemble(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if parts := p.NotReady(ctx); len(parts) != 0 {
		t.Fatalf("not ready: %v", parts)
	}
	if !p.AuditWritable() || p.ChangeLag() != 3*time.Second || len(p.IdentityProviders()) != 0 {
		t.Errorf("gauges: audit %v, lag %s, issuers %d", p.AuditWritable(), p.ChangeLag(), len(p.IdentityProviders()))
	}
	fresh = false
	if parts := p.NotReady(ctx); !slices.Equal(parts, []string{health.PartChangeFeed}) {
		t.Errorf("behind the feed: %v", parts)
	}
	fresh = true
	if err := p.Store.Close(); err != nil {
		t.Fatal(err)
	}
	if parts := p.NotReady(ctx); len(parts) != 0 {
		t.Errorf("the store's answer of a moment ago is not reused: %v", parts)
	}
	now = now.Add(health.StoreProbeReuse)
	if parts := p.NotReady(ctx); !slices.Equal(parts, []string{health.PartStore}) {
		t.Errorf("closed store: %v", parts)
	}
}
