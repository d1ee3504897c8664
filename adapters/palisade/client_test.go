package palisade

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/credgate/credgate/adapters/palisade/palisadetest"
	"github.com/credgate/credgate/module/provider"
	"github.com/credgate/credgate/module/provider/providertest"
)

const (
	treasury   = "ce4918bf-a199-4ce2-85a3-d0d296855384"
	settlement = "5b0f2a8e-3c41-4d7a-9e65-0c2f4a9b7d13"
	otherOrgID = "00000000-0000-4000-8000-000000000000"
)

func newUpstream() *provider.Upstream {
	return &provider.Upstream{
		Transport:   &http.Transport{},
		MaxResponse: 1 << 20,
		Backoff:     time.Millisecond,
		MaxBackoff:  4 * time.Millisecond,
	}
}

func newSim(t *testing.T) *palisadetest.Simulator {
	t.Helper()
	s := palisadetest.New("")
	t.Cleanup(s.Close)
	s.SeedDemo()
	return s
}

func staticClient(s *palisadetest.Simulator) *Client {
	return NewClient(s.URL, "local-palisade-token", newUpstream())
}

func oauthClient(s *palisadetest.Simulator) *Client {
	return NewOAuthClient(s.URL, "local-client-id", "local-client-secret", newUpstream())
}

// fakeClock is a settable clock for the token source.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func withClock(c *Client) *fakeClock {
	clock := &fakeClock{t: time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)}
	c.oauth.now = clock.now
	return clock
}

func metadataJSON(t *testing.T, cred *provider.Credential) string {
	t.Helper()
	b, err := json.Marshal(cred.Metadata)
	require.NoError(t, err)
	return string(b)
}

func kindOf(t *testing.T, err error) *provider.Error {
	t.Helper()
	var pe *provider.Error
	require.ErrorAs(t, err, &pe)
	return pe
}

func TestReadActive(t *testing.T) {
	s := newSim(t)
	c := staticClient(s)
	cred, err := c.Read(context.Background(), treasury)
	require.NoError(t, err)
	assert.Equal(t, provider.StatusActive, cred.Status)
	assert.Empty(t, cred.PendingStatus)
	assert.Equal(t, "ENABLED", cred.ProviderStatus)

	want, _ := s.Credential(treasury)
	m := cred.Metadata.(*Metadata)
	assert.Equal(t, treasury, m.ID.String())
	assert.Equal(t, "Treasury", m.Name.String())
	assert.Equal(t, "Credentials that belong to trading desk #1", m.Description.String())
	assert.Equal(t, "WALLETS", m.Category.String())
	assert.Equal(t, "org-demo", m.OrganizationID.String())
	assert.Equal(t, want.ClientID, m.ClientID.String())

	var got map[string]any
	require.NoError(t, json.Unmarshal([]byte(metadataJSON(t, cred)), &got))
	for _, k := range []string{"id", "name", "description", "category", "permissions", "proposed_permissions",
		"created_by", "organization_id", "created_at", "updated_at", "client_id", "allowed_ips"} {
		assert.Contains(t, got, k)
	}
	assert.Len(t, got, 12, "no other field, and no secret")

	reqs := s.Requests()
	require.Len(t, reqs, 1)
	assert.Equal(t, http.MethodGet, reqs[0].Method)
	assert.Equal(t, "/v2/credentials/"+treasury, reqs[0].Path)
	assert.Equal(t, "Bearer local-palisade-token", reqs[0].Header.Get("Authorization"))
}

func TestReadStatusMapping(t *testing.T) {
	cases := []struct {
		status  string
		active  bool
		want    provider.Status
		pending provider.Status
	}{
		{"ENABLED", true, provider.StatusActive, ""},
		{"DISABLED", false, provider.StatusInactive, ""},
		{"CREATED", true, provider.StatusActive, ""},
		{"ENABLE_APPROVAL_COMPLETE", true, provider.StatusActive, ""},
		{"MODIFICATION_APPROVAL_PENDING", false, provider.StatusInactive, ""},
		{"DELETION_APPROVAL_PENDING", true, provider.StatusActive, ""},
		{"DELETED", true, provider.StatusRevoked, ""},
		{"DELETED", false, provider.StatusRevoked, ""},
		{"DELETION_APPROVAL_COMPLETE", false, provider.StatusRevoked, ""},
		{"ENABLE_APPROVAL_PENDING", false, provider.StatusInactive, provider.StatusActive},
		{"DISABLE_APPROVAL_PENDING", true, provider.StatusActive, provider.StatusInactive},
		{"deleted", true, provider.StatusRevoked, ""},
	}
	s := newSim(t)
	c := staticClient(s)
	for _, tc := range cases {
		t.Run(fmt.Sprintf("%s/%v", tc.status, tc.active), func(t *testing.T) {
			s.Update(treasury, func(cr *palisadetest.Credential) { cr.Status, cr.Active = tc.status, tc.active })
			cred, err := c.Read(context.Background(), treasury)
			require.NoError(t, err)
			assert.Equal(t, tc.want, cred.Status)
			assert.Equal(t, tc.pending, cred.PendingStatus)
			assert.Equal(t, tc.status, cred.ProviderStatus)
		})
	}
}

func TestChangeDisableAndEnable(t *testing.T) {
	s := newSim(t)
	c := staticClient(s)
	res, err := c.Change(context.Background(), &provider.Change{ID: treasury, Status: provider.StatusInactive})
	require.NoError(t, err)
	assert.True(t, res.Changed)
	assert.Equal(t, provider.StatusInactive, res.Status)
	assert.Empty(t, res.PendingStatus)
	assert.Equal(t, "DISABLED", res.ProviderStatus)
	assert.Equal(t, "Treasury", res.Metadata.(*Metadata).Name.String())
	got, _ := s.Credential(treasury)
	assert.False(t, got.Active)

	reqs := s.Requests()
	require.Len(t, reqs, 2)
	assert.Equal(t, http.MethodGet, reqs[0].Method, "reads first")
	assert.Equal(t, http.MethodPut, reqs[1].Method)
	assert.Equal(t, "/v2/credentials/"+treasury+"/active", reqs[1].Path)
	assert.JSONEq(t, `{"active": false}`, string(reqs[1].Body))
	assert.Equal(t, "application/json", reqs[1].Header.Get("Content-Type"))
	assert.Equal(t, "Bearer local-palisade-token", reqs[1].Header.Get("Authorization"))

	res, err = c.Change(context.Background(), &provider.Change{ID: treasury, Status: provider.StatusActive})
	require.NoError(t, err)
	assert.True(t, res.Changed)
	assert.Equal(t, provider.StatusActive, res.Status)
	assert.Equal(t, "ENABLED", res.ProviderStatus)
	assert.JSONEq(t, `{"active": true}`, string(s.Requests()[3].Body))
}

func TestChangeIsIdempotent(t *testing.T) {
	s := newSim(t)
	c := staticClient(s)
	res, err := c.Change(context.Background(), &provider.Change{ID: treasury, Status: provider.StatusActive})
	require.NoError(t, err)
	assert.False(t, res.Changed)
	assert.Equal(t, provider.StatusActive, res.Status)
	assert.Empty(t, res.PendingStatus)
	assert.Equal(t, 0, s.Writes(), "already active: no write")

	s.Update(treasury, func(cr *palisadetest.Credential) { cr.Active, cr.Status = false, "DISABLED" })
	res, err = c.Change(context.Background(), &provider.Change{ID: treasury, Status: provider.StatusInactive})
	require.NoError(t, err)
	assert.False(t, res.Changed)
	assert.Equal(t, provider.StatusInactive, res.Status)
	assert.Equal(t, 0, s.Writes())
	assert.Equal(t, 2, s.Count(http.MethodGet))
}

func TestChangeAwaitingApproval(t *testing.T) {
	s := newSim(t)
	c := staticClient(s)
	ctx := context.Background()

	res, err := c.Change(ctx, &provider.Change{ID: settlement, Status: provider.StatusInactive})
	require.NoError(t, err)
	assert.True(t, res.Changed)
	assert.Equal(t, provider.StatusActive, res.Status, "active until approved")
	assert.Equal(t, provider.StatusInactive, res.PendingStatus)
	assert.Equal(t, "DISABLE_APPROVAL_PENDING", res.ProviderStatus)
	assert.Equal(t, 1, s.Count(http.MethodPut))

	// Asked again while pending: accepted already, no second write.
	res, err = c.Change(ctx, &provider.Change{ID: settlement, Status: provider.StatusInactive})
	require.NoError(t, err)
	assert.False(t, res.Changed)
	assert.Equal(t, provider.StatusActive, res.Status)
	assert.Equal(t, provider.StatusInactive, res.PendingStatus)
	assert.Equal(t, 1, s.Count(http.MethodPut))

	// Active is the effective status, but a change the other way is pending: write.
	res, err = c.Change(ctx, &provider.Change{ID: settlement, Status: provider.StatusActive})
	require.NoError(t, err)
	assert.True(t, res.Changed)
	assert.Equal(t, provider.StatusActive, res.Status)
	assert.Empty(t, res.PendingStatus)
	assert.Equal(t, 2, s.Count(http.MethodPut))

	_, err = c.Change(ctx, &provider.Change{ID: settlement, Status: provider.StatusInactive})
	require.NoError(t, err)
	require.True(t, s.Approve(settlement))
	cred, err := c.Read(ctx, settlement)
	require.NoError(t, err)
	assert.Equal(t, provider.StatusInactive, cred.Status)
	assert.Empty(t, cred.PendingStatus)
	assert.Equal(t, "DISABLED", cred.ProviderStatus)

	res, err = c.Change(ctx, &provider.Change{ID: settlement, Status: provider.StatusInactive})
	require.NoError(t, err)
	assert.False(t, res.Changed)
	assert.Empty(t, res.PendingStatus)
	assert.Equal(t, 3, s.Count(http.MethodPut))

	// Enabling goes through approval too.
	res, err = c.Change(ctx, &provider.Change{ID: settlement, Status: provider.StatusActive})
	require.NoError(t, err)
	assert.True(t, res.Changed)
	assert.Equal(t, provider.StatusInactive, res.Status)
	assert.Equal(t, provider.StatusActive, res.PendingStatus)
	assert.Equal(t, "ENABLE_APPROVAL_PENDING", res.ProviderStatus)
}

func TestChangeDeletedIsRefusedWithoutWrite(t *testing.T) {
	s := newSim(t)
	c := staticClient(s)
	for _, status := range []string{"DELETED", "DELETION_APPROVAL_PENDING", "DELETION_APPROVAL_COMPLETE"} {
		s.Update(treasury, func(cr *palisadetest.Credential) { cr.Status, cr.Active = status, false })
		for _, want := range []provider.Status{provider.StatusActive, provider.StatusInactive} {
			_, err := c.Change(context.Background(), &provider.Change{ID: treasury, Status: want})
			pe := kindOf(t, err)
			assert.Equal(t, provider.KindConflict, pe.Kind, status)
			assert.Contains(t, pe.Detail, "deleted credential cannot be enabled or disabled")
		}
	}
	assert.Equal(t, 0, s.Writes())
}

func TestChangeUnsupportedStatus(t *testing.T) {
	s := newSim(t)
	c := staticClient(s)
	_, err := c.Change(context.Background(), &provider.Change{ID: treasury, Status: provider.StatusRevoked})
	assert.Equal(t, provider.KindUnsupported, kindOf(t, err).Kind)
	assert.Empty(t, s.Requests(), "nothing is asked, and nothing is ever deleted")
}

func TestNotFound(t *testing.T) {
	s := newSim(t)
	s.AddToken("org-other", "other-token")
	s.AddCredential("org-other", otherOrgID, "Other", "AUDIT", "ENABLED", true, false)
	c := staticClient(s)

	_, err := c.Read(context.Background(), "11111111-2222-4333-8444-555555555555")
	pe := kindOf(t, err)
	assert.Equal(t, provider.KindNotFound, pe.Kind)
	assert.Equal(t, http.StatusNotFound, pe.StatusCode)
	assert.Equal(t, "Palisade error code 5", pe.Detail)

	_, err = c.Read(context.Background(), otherOrgID)
	assert.Equal(t, provider.KindNotFound, kindOf(t, err).Kind, "another organization's credential")
	_, err = c.Change(context.Background(), &provider.Change{ID: otherOrgID, Status: provider.StatusInactive})
	assert.Equal(t, provider.KindNotFound, kindOf(t, err).Kind)
	assert.Equal(t, 0, s.Writes())

	cred, err := NewClient(s.URL, "other-token", newUpstream()).Read(context.Background(), otherOrgID)
	require.NoError(t, err)
	assert.Equal(t, provider.StatusActive, cred.Status)
}

func TestIDIsPathEscaped(t *testing.T) {
	s := newSim(t)
	c := staticClient(s)
	_, err := c.Read(context.Background(), "a/b?c#d%e f")
	assert.Equal(t, provider.KindNotFound, kindOf(t, err).Kind)
	reqs := s.Requests()
	require.Len(t, reqs, 1)
	assert.Equal(t, "/v2/credentials/a%2Fb%3Fc%23d%25e%20f", reqs[0].Path)
}

func TestStaticTokenRejected(t *testing.T) {
	s := newSim(t)
	c := NewClient(s.URL, "wrong-token", newUpstream())
	_, err := c.Read(context.Background(), treasury)
	pe := kindOf(t, err)
	assert.Equal(t, provider.KindAuth, pe.Kind)
	assert.Equal(t, http.StatusUnauthorized, pe.StatusCode)
	assert.Equal(t, "Palisade error code 16", pe.Detail)
	assert.Len(t, s.Requests(), 1, "a static token is not retried")
	assert.Equal(t, 0, s.TokenCalls())
	assert.NotContains(t, err.Error(), "wrong-token")
}

func TestOAuthFetchesAndCachesTheToken(t *testing.T) {
	s := newSim(t)
	c := oauthClient(s)
	ctx := context.Background()
	for i := 0; i < 3; i++ {
		cred, err := c.Read(ctx, treasury)
		require.NoError(t, err)
		assert.Equal(t, provider.StatusActive, cred.Status)
	}
	assert.Equal(t, 1, s.TokenCalls())

	reqs := s.Requests()
	require.Len(t, reqs, 4)
	tok := reqs[0]
	assert.Equal(t, http.MethodPost, tok.Method)
	assert.Equal(t, "/v2/credentials/oauth/token", tok.Path)
	assert.Empty(t, tok.Header.Get("Authorization"), "the token endpoint takes no authentication")
	assert.Equal(t, "application/json", tok.Header.Get("Content-Type"))
	assert.JSONEq(t, `{"clientId": "local-client-id", "clientSecret": "local-client-secret"}`, string(tok.Body))
	auth := reqs[1].Header.Get("Authorization")
	assert.True(t, strings.HasPrefix(auth, "Bearer "))
	assert.NotEqual(t, "Bearer ", auth)
	assert.Equal(t, auth, reqs[3].Header.Get("Authorization"), "the cached token is reused")

	res, err := c.Change(ctx, &provider.Change{ID: treasury, Status: provider.StatusInactive})
	require.NoError(t, err)
	assert.True(t, res.Changed)
	assert.Equal(t, 1, s.TokenCalls())
}

func TestOAuthRefetchesAfter401(t *testing.T) {
	s := newSim(t)
	c := oauthClient(s)
	ctx := context.Background()
	_, err := c.Read(ctx, treasury)
	require.NoError(t, err)
	first := s.Requests()[1].Header.Get("Authorization")

	s.ExpireTokens()
	s.ResetLog()
	res, err := c.Change(ctx, &provider.Change{ID: treasury, Status: provider.StatusInactive})
	require.NoError(t, err)
	assert.True(t, res.Changed)
	assert.Equal(t, 2, s.TokenCalls())

	reqs := s.Requests()
	require.Len(t, reqs, 4)
	assert.Equal(t, []string{"GET", "POST", "GET", "PUT"}, []string{reqs[0].Method, reqs[1].Method, reqs[2].Method, reqs[3].Method})
	assert.Equal(t, first, reqs[0].Header.Get("Authorization"), "the old token was refused")
	assert.NotEqual(t, first, reqs[2].Header.Get("Authorization"))
	assert.Equal(t, reqs[2].Header.Get("Authorization"), reqs[3].Header.Get("Authorization"))

	// A 401 to the PUT is retried too, once.
	s.ExpireTokens()
	s.ResetLog()
	s.SetFault(providertest.Fault{Status: http.StatusUnauthorized, Path: "/active", Times: 1})
	res, err = c.Change(ctx, &provider.Change{ID: treasury, Status: provider.StatusActive})
	require.NoError(t, err)
	assert.True(t, res.Changed)
	assert.Equal(t, 2, s.Count(http.MethodPut))
	assert.Equal(t, 4, s.TokenCalls())
}

func TestOAuthSecond401IsAuth(t *testing.T) {
	s := newSim(t)
	c := oauthClient(s)
	s.SetFault(providertest.Fault{Status: http.StatusUnauthorized, Path: treasury})
	_, err := c.Read(context.Background(), treasury)
	pe := kindOf(t, err)
	assert.Equal(t, provider.KindAuth, pe.Kind)
	assert.Equal(t, 2, s.TokenCalls(), "the token is fetched again once")
	assert.Equal(t, 2, s.Count(http.MethodGet), "the call is repeated once")
}

func TestOAuthWrongClient(t *testing.T) {
	s := newSim(t)
	c := NewOAuthClient(s.URL, "local-client-id", "wrong-secret", newUpstream())
	_, err := c.Read(context.Background(), treasury)
	pe := kindOf(t, err)
	assert.Equal(t, provider.KindAuth, pe.Kind)
	assert.Equal(t, http.StatusUnauthorized, pe.StatusCode)
	assert.Contains(t, pe.Detail, "Palisade error code 16")
	assert.NotContains(t, err.Error(), "wrong-secret")
	assert.Equal(t, 1, s.TokenCalls())
	assert.Equal(t, 0, s.Count(http.MethodGet), "no API call without a token")
}

func TestTokenEndpointErrors(t *testing.T) {
	cases := []struct {
		status int
		body   string
		kind   provider.Kind
	}{
		{400, `{"code": 3, "message": "clientId is required"}`, provider.KindAuth},
		{401, `{"code": 16, "message": "unauthenticated"}`, provider.KindAuth},
		{403, `{"code": 7, "message": "forbidden"}`, provider.KindAuth},
		{404, `{"code": 5, "message": "not found"}`, provider.KindUpstream},
		{409, `{}`, provider.KindUpstream},
		{500, `{"code": 13}`, provider.KindUpstream},
		{429, `{"code": 8}`, provider.KindRateLimited},
		{200, `{"accessToken": ""}`, provider.KindUpstream},
		{200, `{"accessToken": "tok`, provider.KindUpstream},
		{200, ``, provider.KindUpstream},
	}
	for _, tc := range cases {
		t.Run(fmt.Sprintf("%d %s", tc.status, tc.body), func(t *testing.T) {
			var api atomic.Int32
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path != tokenPath {
					api.Add(1)
				}
				w.WriteHeader(tc.status)
				_, _ = io.WriteString(w, tc.body)
			}))
			defer srv.Close()
			_, err := NewOAuthClient(srv.URL, "id", "the-client-secret", newUpstream()).Read(context.Background(), treasury)
			pe := kindOf(t, err)
			assert.Equal(t, tc.kind, pe.Kind)
			assert.Equal(t, tc.status, pe.StatusCode)
			assert.Zero(t, api.Load())
			assert.NotContains(t, err.Error(), "the-client-secret")
		})
	}
}

func TestTokenIsRefreshedBeforeExpiry(t *testing.T) {
	s := newSim(t)
	c := oauthClient(s)
	clock := withClock(c)
	ctx := context.Background()

	_, err := c.Read(ctx, treasury)
	require.NoError(t, err)
	require.Equal(t, 1, s.TokenCalls())

	clock.advance(time.Hour - time.Minute - time.Second)
	_, err = c.Read(ctx, treasury)
	require.NoError(t, err)
	assert.Equal(t, 1, s.TokenCalls(), "more than a minute left")

	clock.advance(2 * time.Second)
	_, err = c.Read(ctx, treasury)
	require.NoError(t, err)
	assert.Equal(t, 2, s.TokenCalls(), "less than a minute left: refreshed")
	assert.Equal(t, 3, s.Count(http.MethodGet), "no 401 on the way")
}

func TestShortTokenRefreshMargin(t *testing.T) {
	s := newSim(t)
	s.SetTokenLifetime(2 * time.Minute)
	s.SetExpiresInAsString(true)
	c := oauthClient(s)
	clock := withClock(c)
	ctx := context.Background()

	_, err := c.Read(ctx, treasury)
	require.NoError(t, err)
	clock.advance(107 * time.Second) // 120s life: refreshed with 12s (a tenth) left
	_, err = c.Read(ctx, treasury)
	require.NoError(t, err)
	assert.Equal(t, 1, s.TokenCalls())
	clock.advance(2 * time.Second)
	_, err = c.Read(ctx, treasury)
	require.NoError(t, err)
	assert.Equal(t, 2, s.TokenCalls())
}

func TestTokenLife(t *testing.T) {
	cases := map[string]time.Duration{
		`3600`:   time.Hour,
		`"3600"`: time.Hour,
		`120`:    2 * time.Minute,
		`" 90 "`: 90 * time.Second,
		`1.5`:    1500 * time.Millisecond,
		`0`:      time.Hour,
		`"0"`:    time.Hour,
		`-5`:     time.Hour,
		`"soon"`: time.Hour,
		`null`:   time.Hour,
		`{}`:     time.Hour,
		`1e300`:  time.Duration(float64(int64(^uint64(0)>>1)/int64(time.Second)) * float64(time.Second)),
	}
	for in, want := range cases {
		var a tokenAnswer
		require.NoError(t, json.Unmarshal([]byte(`{"accessToken": "x", "expiresIn": `+in+`}`), &a), in)
		assert.Equal(t, want, tokenLife(a.ExpiresIn), in)
	}
	var a tokenAnswer
	require.NoError(t, json.Unmarshal([]byte(`{"accessToken": "x"}`), &a))
	assert.Equal(t, time.Hour, tokenLife(a.ExpiresIn), "missing")
}

func TestConcurrentCallersShareOneTokenFetch(t *testing.T) {
	s := newSim(t)
	c := oauthClient(s)
	s.SetFault(providertest.Fault{Hang: 200 * time.Millisecond, Path: "/oauth/token", Times: 1})
	var wg sync.WaitGroup
	errs := make([]error, 20)
	for i := range errs {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			_, errs[i] = c.Read(context.Background(), treasury)
		}(i)
	}
	wg.Wait()
	for _, err := range errs {
		assert.NoError(t, err)
	}
	assert.Equal(t, 1, s.TokenCalls())
	assert.Equal(t, 20, s.Count(http.MethodGet))
}

func TestWaiterStopsWhenItsContextEnds(t *testing.T) {
	s := newSim(t)
	c := oauthClient(s)
	s.SetFault(providertest.Fault{Hang: time.Second, Path: "/oauth/token", Times: 1})

	leader := make(chan error, 1)
	go func() {
		_, err := c.Read(context.Background(), treasury)
		leader <- err
	}()
	require.Eventually(t, func() bool { return s.Count(http.MethodPost) == 1 }, time.Second, time.Millisecond)

	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := c.Read(ctx, treasury)
	assert.Equal(t, provider.KindTimeout, kindOf(t, err).Kind)
	assert.Less(t, time.Since(start), 500*time.Millisecond, "it did not wait for the fetch")

	ctx, cancel = context.WithCancel(context.Background())
	cancel()
	_, err = c.Read(ctx, treasury)
	assert.Equal(t, provider.KindCanceled, kindOf(t, err).Kind)

	require.NoError(t, <-leader)
	assert.Equal(t, 1, s.TokenCalls())
}

func TestWaiterFetchesWhenTheFetcherGivesUp(t *testing.T) {
	s := newSim(t)
	c := oauthClient(s)
	s.SetFault(providertest.Fault{Hang: 2 * time.Second, Path: "/oauth/token", Times: 1})

	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	leader := make(chan error, 1)
	go func() {
		_, err := c.Read(ctx, treasury)
		leader <- err
	}()
	require.Eventually(t, func() bool { return s.Count(http.MethodPost) == 1 }, time.Second, time.Millisecond)

	cred, err := c.Read(context.Background(), treasury)
	require.NoError(t, err, "the waiter fetched a token of its own")
	assert.Equal(t, provider.StatusActive, cred.Status)
	assert.Equal(t, provider.KindTimeout, provider.KindOf(<-leader))
	assert.Equal(t, 2, s.Count(http.MethodPost), "two token calls: the abandoned one and the waiter's")
}

func TestWaitersShareTheFetchError(t *testing.T) {
	s := newSim(t)
	c := NewOAuthClient(s.URL, "local-client-id", "wrong", newUpstream())
	s.SetFault(providertest.Fault{Hang: 200 * time.Millisecond, Path: "/oauth/token", Times: 1})
	var wg sync.WaitGroup
	var auth atomic.Int32
	for i := 0; i < 10; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := c.Read(context.Background(), treasury)
			if provider.KindOf(err) == provider.KindAuth {
				auth.Add(1)
			}
		}()
	}
	wg.Wait()
	assert.Equal(t, int32(10), auth.Load())
	assert.Equal(t, 1, s.TokenCalls())
}

// vendor answers fixed bodies: the GET answer for every GET, the PUT answer for every PUT.
func vendor(t *testing.T, getStatus int, getBody string, putStatus int, putBody string) (*httptest.Server, *atomic.Int32) {
	t.Helper()
	var puts atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if r.Method == http.MethodPut {
			puts.Add(1)
			w.WriteHeader(putStatus)
			_, _ = io.WriteString(w, putBody)
			return
		}
		w.WriteHeader(getStatus)
		_, _ = io.WriteString(w, getBody)
	}))
	t.Cleanup(srv.Close)
	return srv, &puts
}

const secretCredential = `{"id": "` + treasury + `", "name": "Treasury", "category": "WALLETS",
	"clientId": "cid-1", "clientSecret": "SUPER-SECRET-VALUE", "active": %s, "status": %s,
	"permissions": ["vault:read"], "proposedPermissions": [], "createdBy": "u", "organizationId": "o",
	"createdAt": "2022-03-29T10:22:22.420Z", "updatedAt": "2022-03-29T10:22:22.420Z",
	"allowedIps": ["88.9.2.1"], "somethingNew": {"x": 1}}`

func credBody(active, status string) string { return fmt.Sprintf(secretCredential, active, status) }

func TestErrorMapping(t *testing.T) {
	cases := []struct {
		name   string
		status int
		body   string
		kind   provider.Kind
		detail string
	}{
		{"400 invalid argument", 400, `{"code": 3, "message": "bad SUPER-SECRET-VALUE"}`, provider.KindRejected, "Palisade error code 3"},
		{"400 failed precondition", 400, `{"code": 9, "message": "credential is deleted"}`, provider.KindConflict, "Palisade error code 9"},
		{"400 aborted", 400, `{"code": 10, "message": "x"}`, provider.KindConflict, "Palisade error code 10"},
		{"412 failed precondition", 412, `{"code": 9, "message": "x", "details": [{"@type": "type.googleapis.com/google.rpc.ErrorInfo"}]}`, provider.KindConflict, "Palisade error code 9"},
		{"412 code as string", 412, `{"code": "10"}`, provider.KindConflict, "Palisade error code 10"},
		{"412 other code", 412, `{"code": 3}`, provider.KindRejected, "Palisade error code 3"},
		{"409", 409, `{"code": 6, "message": "already exists"}`, provider.KindConflict, "Palisade error code 6"},
		{"409 no body", 409, ``, provider.KindConflict, ""},
		{"401", 401, `{"code": 16, "message": "unauthenticated"}`, provider.KindAuth, "Palisade error code 16"},
		{"403", 403, `{"code": 7, "message": "permission denied"}`, provider.KindForbidden, "Palisade error code 7"},
		{"404", 404, `{"code": 5, "message": "not found"}`, provider.KindNotFound, "Palisade error code 5"},
		{"404 html", 404, `<html>nope</html>`, provider.KindNotFound, ""},
		{"429", 429, `{"code": 8}`, provider.KindRateLimited, "provider rate limit reached"},
		{"500", 500, `{"code": 13, "message": "SUPER-SECRET-VALUE"}`, provider.KindUpstream, "provider answered HTTP 500"},
		{"302", 302, ``, provider.KindUpstream, ""},
	}
	for _, tc := range cases {
		t.Run("read "+tc.name, func(t *testing.T) {
			srv, _ := vendor(t, tc.status, tc.body, 200, "")
			_, err := NewClient(srv.URL, "tok", newUpstream()).Read(context.Background(), treasury)
			pe := kindOf(t, err)
			assert.Equal(t, tc.kind, pe.Kind)
			assert.Equal(t, tc.status, pe.StatusCode)
			assert.Equal(t, tc.detail, pe.Detail)
			assert.NotContains(t, err.Error(), "SUPER-SECRET-VALUE")
		})
		if tc.status == 429 || tc.status == 500 {
			continue
		}
		t.Run("change "+tc.name, func(t *testing.T) {
			srv, puts := vendor(t, 200, credBody("true", `"ENABLED"`), tc.status, tc.body)
			_, err := NewClient(srv.URL, "tok", newUpstream()).Change(context.Background(), &provider.Change{ID: treasury, Status: provider.StatusInactive})
			pe := kindOf(t, err)
			assert.Equal(t, tc.kind, pe.Kind)
			assert.Equal(t, tc.detail, pe.Detail)
			assert.Equal(t, int32(1), puts.Load())
			assert.NotContains(t, err.Error(), "SUPER-SECRET-VALUE")
		})
	}
}

func TestDeletedRefusalFromSimulator(t *testing.T) {
	// Should the read and the write race with a deletion, the vendor's own refusal maps to a
	// conflict too.
	srv, puts := vendor(t, 200, credBody("true", `"ENABLED"`), 400, `{"code": 9, "message": "credential is deleted", "details": [{"@type": "type.googleapis.com/google.rpc.ErrorInfo"}]}`)
	_, err := NewClient(srv.URL, "tok", newUpstream()).Change(context.Background(), &provider.Change{ID: treasury, Status: provider.StatusInactive})
	assert.Equal(t, provider.KindConflict, provider.KindOf(err))
	assert.Equal(t, int32(1), puts.Load())
}

func TestMalformedAnswers(t *testing.T) {
	for _, body := range []string{``, `{"id": "x", "active": tru`, `[1, 2]`, `"text"`} {
		srv, _ := vendor(t, 200, body, 200, "")
		_, err := NewClient(srv.URL, "tok", newUpstream()).Read(context.Background(), treasury)
		assert.Equal(t, provider.KindUpstream, provider.KindOf(err), body)
	}

	s := newSim(t)
	s.SetFault(providertest.Fault{Malformed: true})
	_, err := staticClient(s).Read(context.Background(), treasury)
	assert.Equal(t, provider.KindUpstream, provider.KindOf(err))
	s.SetFault(providertest.Fault{WrongContentType: true})
	_, err = staticClient(s).Read(context.Background(), treasury)
	assert.Equal(t, provider.KindUpstream, provider.KindOf(err))
	s.SetFault(providertest.Fault{Status: http.StatusServiceUnavailable})
	_, err = staticClient(s).Read(context.Background(), treasury)
	pe := kindOf(t, err)
	assert.Equal(t, provider.KindUpstream, pe.Kind)
	assert.Equal(t, http.StatusServiceUnavailable, pe.StatusCode)
}

func TestTolerantDecoding(t *testing.T) {
	body := `{"id": 12345, "name": "N", "category": {}, "active": "false", "status": "DISABLED",
		"permissions": "not-a-list", "proposedPermissions": [1, {"x": 1}, "p"], "allowedIps": null,
		"clientSecret": "SUPER-SECRET-VALUE", "extra": [1]}`
	srv, _ := vendor(t, 200, body, 200, "")
	cred, err := NewClient(srv.URL, "tok", newUpstream()).Read(context.Background(), treasury)
	require.NoError(t, err)
	assert.Equal(t, provider.StatusInactive, cred.Status)
	assert.JSONEq(t, `{"id": 12345, "name": "N", "proposed_permissions": [1, "p"]}`, metadataJSON(t, cred))

	srv, _ = vendor(t, 200, `{"id": "x", "status": "ENABLED"}`, 200, "")
	cred, err = NewClient(srv.URL, "tok", newUpstream()).Read(context.Background(), treasury)
	require.NoError(t, err)
	assert.Equal(t, provider.StatusUnknown, cred.Status, "no active flag")
	assert.Equal(t, "ENABLED", cred.ProviderStatus)
}

func TestChangeAnswerWithoutBodyIsReadBack(t *testing.T) {
	var gets atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPut {
			w.WriteHeader(http.StatusNoContent)
			return
		}
		if gets.Add(1) == 1 {
			_, _ = io.WriteString(w, credBody("true", `"ENABLED"`))
			return
		}
		_, _ = io.WriteString(w, credBody("true", `"DISABLE_APPROVAL_PENDING"`))
	}))
	defer srv.Close()
	res, err := NewClient(srv.URL, "tok", newUpstream()).Change(context.Background(), &provider.Change{ID: treasury, Status: provider.StatusInactive})
	require.NoError(t, err)
	assert.True(t, res.Changed)
	assert.Equal(t, provider.StatusActive, res.Status)
	assert.Equal(t, provider.StatusInactive, res.PendingStatus)
	assert.Equal(t, int32(2), gets.Load())
}

func TestChangeAnswerPendingTheOtherWayIsNotPending(t *testing.T) {
	srv, _ := vendor(t, 200, credBody("true", `"ENABLED"`), 200, credBody("true", `"ENABLE_APPROVAL_PENDING"`))
	res, err := NewClient(srv.URL, "tok", newUpstream()).Change(context.Background(), &provider.Change{ID: treasury, Status: provider.StatusInactive})
	require.NoError(t, err)
	assert.True(t, res.Changed)
	assert.Equal(t, provider.StatusActive, res.Status)
	assert.Empty(t, res.PendingStatus)
	assert.Equal(t, "ENABLE_APPROVAL_PENDING", res.ProviderStatus)
}

func TestNoSecretLeaves(t *testing.T) {
	srv, _ := vendor(t, 200, credBody("true", `"ENABLED"`), 200, credBody("false", `"DISABLED"`))
	c := NewClient(srv.URL, "the-static-token", newUpstream())
	cred, err := c.Read(context.Background(), treasury)
	require.NoError(t, err)
	res, err := c.Change(context.Background(), &provider.Change{ID: treasury, Status: provider.StatusInactive})
	require.NoError(t, err)
	for _, v := range []any{cred, res, cred.Metadata, res.Metadata} {
		b, err := json.Marshal(v)
		require.NoError(t, err)
		assert.NotContains(t, string(b), "SUPER-SECRET-VALUE")
		assert.NotContains(t, strings.ToLower(string(b)), "secret")
		assert.NotContains(t, fmt.Sprintf("%+v %#v", v, v), "SUPER-SECRET-VALUE")
	}
	assert.Contains(t, metadataJSON(t, cred), `"client_id":"cid-1"`)

	// With the simulator, which answers a real clientSecret, and every error on the way.
	s := newSim(t)
	want, _ := s.Credential(treasury)
	require.NotEmpty(t, want.ClientSecret)
	oc := oauthClient(s)
	cred, err = oc.Read(context.Background(), treasury)
	require.NoError(t, err)
	assert.NotContains(t, metadataJSON(t, cred), want.ClientSecret)
	res, err = oc.Change(context.Background(), &provider.Change{ID: treasury, Status: provider.StatusInactive})
	require.NoError(t, err)
	b, _ := json.Marshal(res)
	assert.NotContains(t, string(b), want.ClientSecret)

	token := strings.TrimPrefix(s.Requests()[1].Header.Get("Authorization"), "Bearer ")
	require.NotEmpty(t, token)
	var errs []error
	s.SetFault(providertest.Fault{Malformed: true})
	_, err = oc.Read(context.Background(), treasury)
	errs = append(errs, err)
	s.Clear()
	s.ExpireTokens()
	s.SetFault(providertest.Fault{Status: http.StatusUnauthorized, Path: treasury})
	_, err = oc.Read(context.Background(), treasury)
	errs = append(errs, err)
	s.Clear()
	_, err = NewOAuthClient(s.URL, "local-client-id", "local-client-secret-wrong", newUpstream()).Read(context.Background(), treasury)
	errs = append(errs, err)
	s.Update(treasury, func(cr *palisadetest.Credential) { cr.Status = "DELETED" })
	_, err = oc.Change(context.Background(), &provider.Change{ID: treasury, Status: provider.StatusActive})
	errs = append(errs, err)
	for _, err := range errs {
		require.Error(t, err)
		text := fmt.Sprintf("%v %+v %#v", err, err, err)
		for _, secret := range []string{want.ClientSecret, "local-client-secret", token} {
			assert.NotContains(t, text, secret)
		}
	}
}
