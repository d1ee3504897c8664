package credentialstatus

import (
	"encoding/json"
	"testing"

	"github.com/credgate/credgate/module/provider"
)

// FuzzParseBatch feeds parseBatch any body, with a limit of 3 items.
//
// Invariants: it returns a batch or a problem, never both nor neither; a problem of the
// envelope is a 400 or, for too many items, a 413; a batch holds 1 to 3 items, and each item
// is either refused with a problem or has a valid ID and status; a repeated item points to an
// earlier first occurrence of the same provider and ID; and a body that encoding/json does not
// accept as JSON is never a batch.
func FuzzParseBatch(f *testing.F) {
	for _, seed := range []string{
		`{"items": [{"id": "12345", "status": "inactive"}], "reason": "INC-42", "dry_run": false}`,
		`{"items": [{"id": "1", "status": "inactive"}, {"id": "1", "status": "inactive"}, {"id": "1", "status": "active"}]}`,
		`{"items": [{"id": "1", "status": "inactive", "provider": "p", "expires_at": "2099-01-01T00:00:00Z"}]}`,
		`{"items": [{"id": "", "status": "x"}, {"status": "active"}, 7, null]}`,
		`{"items": [1, 2, 3, 4]}`,
		`{"items": []}`, `{}`, `[]`, `{"items": [{"id": "1", "status": "active"}]} x`,
		`{"items": [{"id": "1", "status": "active"}], "items": []}`,
		`{"dry_run": "yes", "items": [{"id": "1", "status": "active"}]}`,
		`{"ITEMS": []}`, `{"items": [{"ID": "1", "status": "active"}]}`,
		`{"items": [{"id": "a\u0000b", "status": "inactive"}]}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		b, p := parseBatch(body, 3)
		if (b == nil) == (p == nil) {
			t.Fatalf("batch %v and problem %v", b, p)
		}
		if p != nil {
			if p.Status != 400 && p.Status != 413 {
				t.Fatalf("envelope problem with status %d: %v", p.Status, p)
			}
			return
		}
		if !json.Valid(body) {
			t.Fatalf("a batch from invalid JSON %q", body)
		}
		if len(b.items) < 1 || len(b.items) > 3 {
			t.Fatalf("%d items", len(b.items))
		}
		for i, it := range b.items {
			if it.first > i || it.first < 0 {
				t.Fatalf("item %d: first %d", i, it.first)
			}
			if it.first != i {
				f := b.items[it.first]
				if f.id != it.id || f.req.hint != it.req.hint || f.first != it.first {
					t.Fatalf("item %d repeats %d, which differs", i, it.first)
				}
				continue
			}
			if it.p != nil {
				continue
			}
			if err := validateID(it.id); err != nil {
				t.Fatalf("item %d: accepted ID %q: %v", i, it.id, err)
			}
			switch it.req.status {
			case provider.StatusActive, provider.StatusInactive, provider.StatusRevoked:
			default:
				t.Fatalf("item %d: accepted status %q", i, it.req.status)
			}
		}
	})
}
