package credentialstatus_test

import (
	"context"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/credgate/credgate/module/credentialstatus"
	"github.com/credgate/credgate/module/provider"
)

// TestBatchCountsAHintOnce: an item that names its provider is one resolution, counted once
// in resolutions_total{result="hint"} (it was counted by the batch's resolver and again by
// the item's run).
func TestBatchCountsAHintOnce(t *testing.T) {
	g := newGateway(t, nil, fakeProvider{name: "p", client: owns("1", "2")})
	before := credentialstatus.ResolutionCount("hint")
	rec := g.do("POST", "/credentials/status", `{"items": [
		{"id": "1", "status": "inactive", "provider": "p"},
		{"id": "2", "status": "inactive", "provider": "p"}]}`)
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	assert.Equal(t, 2.0, credentialstatus.ResolutionCount("hint")-before, "one resolution per item")

	before = credentialstatus.ResolutionCount("hint")
	g.do("PUT", "/credentials/1/status", `{"status": "active", "provider": "p"}`)
	assert.Equal(t, 1.0, credentialstatus.ResolutionCount("hint")-before, "a PUT's hint, once")
}

// TestBatchItemRetriedAfter429WritesOneAuditEntry: the audit trail has one entry per change,
// however many times the provider's rate limit made the batch send it.
func TestBatchItemRetriedAfter429WritesOneAuditEntry(t *testing.T) {
	c := owns("7")
	var limited atomic.Bool
	change := c.change
	c.change = func(ctx context.Context, ch *provider.Change) (*provider.Result, error) {
		if limited.CompareAndSwap(false, true) { // the first attempt only
			return nil, &provider.Error{Kind: provider.KindRateLimited, StatusCode: 429, RetryAfter: 10 * time.Millisecond}
		}
		return change(ctx, ch)
	}
	g := newGateway(t, nil, fakeProvider{name: "p", client: c})
	core, logs := observer.New(zapcore.InfoLevel)
	credentialstatus.SetAuditLogger(g.h, zap.New(core))

	rec := g.do("POST", "/credentials/status", `{"items": [{"id": "7", "status": "inactive"}]}`)
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	assert.Contains(t, rec.Body.String(), `"changed":1`)
	assert.Equal(t, int32(2), c.changes.Load(), "sent twice: the 429, then the change")
	entries := logs.FilterMessage("credential status change").All()
	require.Len(t, entries, 1, "one audit entry for one change")
	fields := entries[0].ContextMap()
	assert.Equal(t, "changed", fields["outcome"])
	assert.Equal(t, "7", fields["id"])
	assert.Equal(t, "p", fields["provider"])
}
