package digicert

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"regexp"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/credgate/credgate/adapters/digicert/digicerttest"
	"github.com/credgate/credgate/module/provider"
	"github.com/credgate/credgate/module/provider/providertest"
)

const partnerKey = "dc-partner-secret"

func setup(t *testing.T) (*digicerttest.Simulator, *Client) {
	t.Helper()
	s := digicerttest.New("")
	t.Cleanup(s.Close)
	s.AddAccount(1, 0, partnerKey)
	s.AddAccount(2, 0, "other-partner-secret")
	s.AddKey(12345, 1, "build-server", "active")
	s.AddKey(67890, 2, "partner-b", "active")
	up := &provider.Upstream{Transport: &http.Transport{}, MaxResponse: 1 << 20}
	return s, NewClient(s.URL, partnerKey, up)
}

func TestReadAndChange(t *testing.T) {
	s, c := setup(t)
	ctx := context.Background()

	cred, err := c.Read(ctx, "12345")
	require.NoError(t, err)
	assert.Equal(t, provider.StatusActive, cred.Status)
	assert.Equal(t, "active", cred.ProviderStatus)
	meta, err := json.Marshal(cred.Metadata)
	require.NoError(t, err)
	assert.JSONEq(t, `{"id": 12345, "name": "build-server", "account_id": 1, "created_at": "2024-05-01T09:30:00Z",
		"last_used_date": "2026-11-20T17:02:11Z", "api_key_last4": "4345"}`, string(meta))

	res, err := c.Change(ctx, &provider.Change{ID: "12345", Status: provider.StatusInactive})
	require.NoError(t, err)
	assert.True(t, res.Changed)
	assert.Equal(t, provider.StatusInactive, res.Status)
	k, _ := s.Key(12345)
	assert.Equal(t, "inactive", k.Status)

	reqs := s.Requests()
	require.Len(t, reqs, 3)
	put := reqs[2]
	assert.Equal(t, http.MethodPut, put.Method)
	assert.Equal(t, "/partner-subscription/api/v1/api-key/12345/status", put.Path)
	assert.Equal(t, partnerKey, put.Header.Get(HeaderAPIKey))
	assert.JSONEq(t, `{"status": "inactive"}`, string(put.Body))

	res, err = c.Change(ctx, &provider.Change{ID: "12345", Status: provider.StatusInactive})
	require.NoError(t, err)
	assert.False(t, res.Changed, "the status it has: no write")
	assert.Equal(t, 1, s.Writes())
}

func TestErrors(t *testing.T) {
	s, c := setup(t)
	ctx := context.Background()
	kind := func(err error) provider.Kind { return provider.KindOf(err) }

	_, err := c.Read(ctx, "99999")
	assert.Equal(t, provider.KindNotFound, kind(err))

	_, err = c.Change(ctx, &provider.Change{ID: "67890", Status: provider.StatusInactive})
	var pe *provider.Error
	require.ErrorAs(t, err, &pe)
	assert.Equal(t, provider.KindForbidden, pe.Kind)
	assert.True(t, pe.Foreign, "an unrelated account's key: not this account")
	assert.Zero(t, s.Writes())

	_, err = NewClient(s.URL, "wrong", c.up).Read(ctx, "12345")
	require.ErrorAs(t, err, &pe)
	assert.Equal(t, provider.KindAuth, pe.Kind)
	assert.Equal(t, "DigiCert error access_denied", pe.Detail)

	_, err = c.Change(ctx, &provider.Change{ID: "12345", Status: provider.StatusRevoked})
	assert.Equal(t, provider.KindUnsupported, kind(err))

	s.SetFault(providertest.Fault{Malformed: true})
	_, err = c.Read(ctx, "12345")
	assert.Equal(t, provider.KindUpstream, kind(err))
	s.SetFault(providertest.Fault{Status: 500})
	_, err = c.Read(ctx, "12345")
	assert.Equal(t, provider.KindUpstream, kind(err))
	s.SetFault(providertest.Fault{Status: 429, RetryAfter: "3"})
	_, err = c.Read(ctx, "12345")
	require.ErrorAs(t, err, &pe)
	assert.Equal(t, provider.KindRateLimited, pe.Kind)
	assert.Equal(t, 3*time.Second, pe.RetryAfter)
	s.Clear()
	assert.NotContains(t, err.Error(), partnerKey)
}

// TestTolerantAnswers follows the page, not the simulator: a 200 instead of the documented
// 204, IDs as strings, unknown fields and statuses.
func TestTolerantAnswers(t *testing.T) {
	var status = "inactive"
	srv := newStub(t, func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPut {
			w.WriteHeader(http.StatusOK) // a body-less 200 instead of 204
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"id": "12345", "account_id": "7", "status": status, "new_field": []int{1}})
	})
	c := NewClient(srv, partnerKey, &provider.Upstream{Transport: &http.Transport{}, MaxResponse: 1 << 20})
	res, err := c.Change(context.Background(), &provider.Change{ID: "12345", Status: provider.StatusActive})
	require.NoError(t, err)
	assert.True(t, res.Changed)
	assert.Equal(t, provider.StatusActive, res.Status)
	out, err := json.Marshal(res.Metadata)
	require.NoError(t, err)
	assert.JSONEq(t, `{"id": "12345", "account_id": "7"}`, string(out))

	status = "suspended-by-digicert"
	cred, err := c.Read(context.Background(), "12345")
	require.NoError(t, err)
	assert.Equal(t, provider.StatusUnknown, cred.Status)
	assert.Equal(t, "suspended-by-digicert", cred.ProviderStatus)
}

func TestIDPattern(t *testing.T) {
	re := regexp.MustCompile(`^(?:` + IDPattern + `)$`)
	assert.True(t, re.MatchString("12345"))
	assert.False(t, re.MatchString("12a45"))
	assert.False(t, re.MatchString("12345678901234567890"), "more digits than an int64 holds")
}

func TestIDIsPathEscaped(t *testing.T) {
	var path string
	srv := newStub(t, func(w http.ResponseWriter, r *http.Request) {
		path = r.URL.EscapedPath()
		w.WriteHeader(http.StatusNotFound)
	})
	c := NewClient(srv, partnerKey, &provider.Upstream{Transport: &http.Transport{}, MaxResponse: 1 << 20})
	_, err := c.Read(context.Background(), "1?x=2#y")
	assert.Equal(t, provider.KindNotFound, provider.KindOf(err))
	assert.Equal(t, "/partner-subscription/api/v1/api-key/1%3Fx=2%23y", path)
}

// newStub serves h and returns its origin.
func newStub(t *testing.T, h http.HandlerFunc) string {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv.URL
}
