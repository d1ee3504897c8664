package credentialscli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestParseIDList(t *testing.T) {
	items, err := parseList(strings.NewReader("# INC-42\r\n12345\r\n\n   # indented comment\n  67890  \nce4918bf-a199-4ce2-85a3-d0d296855384\n"))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, it := range items {
		got = append(got, fmt.Sprintf("%d:%s", it.line, it.ID))
	}
	if want := "2:12345 5:67890 6:ce4918bf-a199-4ce2-85a3-d0d296855384"; strings.Join(got, " ") != want {
		t.Errorf("got %v, want %s", got, want)
	}
}

func TestParseCSV(t *testing.T) {
	src := "\xef\xbb\xbf# exported from the ticket\n" +
		"ID, Status ,reason,provider,expires_at\n" +
		"12345,inactive,\"leaked, in paste #1\",,\n" +
		"\n" +
		"# a comment between rows\n" +
		"67890,,\"said \"\"oops\"\", twice\",digicert-partner-b,\n" +
		"cred-a1b2c3d4-e5f6-7890-abcd-ef1234567890,active,,,2027-01-01T00:00:00Z\n"
	items, err := parseList(strings.NewReader(src))
	if err != nil {
		t.Fatal(err)
	}
	want := []item{
		{ID: "12345", Status: "inactive", Reason: "leaked, in paste #1", line: 3},
		{ID: "67890", Reason: `said "oops", twice`, Provider: "digicert-partner-b", line: 6},
		{ID: "cred-a1b2c3d4-e5f6-7890-abcd-ef1234567890", Status: "active", ExpiresAt: "2027-01-01T00:00:00Z", line: 7},
	}
	if fmt.Sprint(items) != fmt.Sprint(want) {
		t.Errorf("got  %+v\nwant %+v", items, want)
	}
	// --status fills in the empty cell, --reason nothing (every row but one has its own).
	if err := defaults(items, "inactive", "", "INC-42", ""); err != nil {
		t.Fatal(err)
	}
	if items[1].Status != "inactive" || items[0].Reason != "leaked, in paste #1" || items[2].Reason != "INC-42" {
		t.Errorf("defaults: %+v", items)
	}
}

func TestParseErrors(t *testing.T) {
	for _, tc := range []struct{ src, want string }{
		{"name,status\nx,inactive\n", "names no id column"},
		{"id,stauts\n12345,inactive\n", `unknown CSV column "stauts"`},
		{"id,id\n1,2\n", `column "id" twice`},
		{"id,status\n12345\n", "line 2: 1 cells, the header has 2"},
		{"id,reason\n12345,\"unbalanced\n", "extraneous or missing"},
		{"12345\nhas space\n../x\n", "line 2: ID \"has space\""},
		{"12345\n" + strings.Repeat("x", 300) + "\n", "over 256 bytes"},
	} {
		_, err := parseList(strings.NewReader(tc.src))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: got %v, want an error with %q", tc.src, err, tc.want)
		}
	}
	items, _ := parseList(strings.NewReader("id,status\n1,\n2,inactive\n3,off\n"))
	err := defaults(items, "", "", "", "2027-13-01")
	if err == nil || !strings.Contains(err.Error(), "line 2: no status") || !strings.Contains(err.Error(), `line 4: status "off"`) ||
		!strings.Contains(err.Error(), "not RFC 3339") {
		t.Errorf("defaults: %v", err)
	}
}

func TestWithIndex(t *testing.T) {
	got := string(withIndex([]byte(`{"index":3,"id":"a","error":{"status":404,"index":1}}`), 1003))
	if want := `{"index":1003,"id":"a","error":{"status":404,"index":1}}`; got != want {
		t.Errorf("got %s, want %s", got, want)
	}
}

func TestKeys(t *testing.T) {
	a := []item{{ID: "1", Status: "inactive"}, {ID: "2", Status: "inactive"}}
	b := []item{{ID: "1", Status: "inactive", Reason: "x"}, {ID: "2", Status: "inactive"}}
	if runKey(a, false) != runKey(a, false) || runKey(a, false) == runKey(a, true) || runKey(a, false) == runKey(b, false) {
		t.Error("the run key must be a function of the items and the dry run")
	}
	k := chunkKey("run", a[:1], false)
	if len(k) > 64 || k == chunkKey("run", a[1:], false) || k == chunkKey("other", a[:1], false) || k == chunkKey("run", a[:1], true) {
		t.Errorf("chunk keys: %s", k)
	}
}

// stub is a gateway's batch endpoint: it takes at most max items, answers NDJSON with
// "changed" for every item, and records the keys it saw. cut > 0 ends the first answer after
// that many lines, without the summary.
type stub struct {
	max, cut int

	mu    sync.Mutex
	keys  []string
	sizes []int
}

func (s *stub) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Items []item `json:"items"`
	}
	_ = json.NewDecoder(r.Body).Decode(&body)
	s.mu.Lock()
	s.keys = append(s.keys, r.Header.Get("Idempotency-Key"))
	s.sizes = append(s.sizes, len(body.Items))
	cut := s.cut
	s.cut = 0
	s.mu.Unlock()
	if len(body.Items) > s.max {
		w.Header().Set("Content-Type", "application/problem+json")
		w.WriteHeader(http.StatusRequestEntityTooLarge)
		fmt.Fprintf(w, `{"type":"urn:credgate:problem:body-too-large","title":"Body too large","status":413,"detail":"more than %d items"}`, s.max)
		return
	}
	w.Header().Set("Content-Type", "application/x-ndjson")
	for i := len(body.Items) - 1; i >= 0; i-- { // in another order than asked
		if cut > 0 && len(body.Items)-i > cut {
			return
		}
		fmt.Fprintf(w, `{"index":%d,"id":%q,"status":"inactive","changed":true}`+"\n", i, body.Items[i].ID)
	}
	fmt.Fprintln(w, `{"summary":{}}`)
}

func runStub(t *testing.T, s *stub, n, chunk int) (*runner, int, string) {
	t.Helper()
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	items := make([]item, n)
	for i := range items {
		items[i] = item{ID: fmt.Sprint(10000 + i), Status: "inactive"}
	}
	var out, errs, results bytes.Buffer
	r := &runner{items: items, endpoint: srv.URL + "/credentials/status", chunk: chunk, runKey: "run",
		std: stdio{out: &out, err: &errs}, client: srv.Client(), name: "credentials set",
		wait: func(context.Context, time.Duration) error { return nil }, output: &results, outputName: "r.jsonl"}
	code := r.run(context.Background())
	var idx []int
	for _, line := range strings.Split(strings.TrimSpace(results.String()), "\n") {
		var v struct{ Index int }
		if err := json.Unmarshal([]byte(line), &v); err != nil {
			t.Fatalf("%q: %v", line, err)
		}
		idx = append(idx, v.Index)
	}
	seen := map[int]bool{}
	for _, i := range idx {
		if seen[i] {
			t.Errorf("index %d twice in the results", i)
		}
		seen[i] = true
	}
	if len(seen) != n {
		t.Errorf("%d results, want %d", len(seen), n)
	}
	return r, code, out.String() + errs.String()
}

// A 413 halves the chunk until the gateway takes it, for the rest of the run.
func TestTooLargeHalves(t *testing.T) {
	s := &stub{max: 3}
	r, code, out := runStub(t, s, 10, 10)
	if code != exitOK || r.tally.changed != 10 {
		t.Fatalf("exit %d, %+v\n%s", code, r.tally, out)
	}
	// 10 refused, 5 refused, then chunks of 2.
	if want := "[10 5 2 2 2 2 2]"; fmt.Sprint(s.sizes) != want {
		t.Errorf("chunk sizes %v, want %s", s.sizes, want)
	}
	if !strings.Contains(out, "refused 10 items in one batch (413); sending 5 at a time") {
		t.Errorf("no note of the halving:\n%s", out)
	}
}

// An answer cut before its summary is asked again with the same key; the items it had
// already are counted once.
func TestCutAnswerIsRetried(t *testing.T) {
	s := &stub{max: 100, cut: 2}
	r, code, out := runStub(t, s, 5, 100)
	if code != exitOK || r.tally.changed != 5 || r.tally.done != 5 {
		t.Fatalf("exit %d, %+v\n%s", code, r.tally, out)
	}
	if len(s.keys) != 2 || s.keys[0] != s.keys[1] {
		t.Errorf("keys %v: want the same key twice", s.keys)
	}
}
