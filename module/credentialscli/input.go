package credentialscli

import (
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
)

// An item is one line of the list: a credential and the change asked for it, as a batch item.
type item struct {
	ID        string `json:"id"`
	Status    string `json:"status"`
	Provider  string `json:"provider,omitempty"`
	Reason    string `json:"reason,omitempty"`
	ExpiresAt string `json:"expires_at,omitempty"`

	line int // the input line it came from (0: a command-line argument)
}

// columns are the CSV columns a header may name; id is required.
var columns = []string{"id", "status", "provider", "reason", "expires_at"}

// maxErrors is how many input errors are listed before "and N more".
const maxErrors = 5

// parseList reads a list: one ID per line, or CSV whose first significant line (not blank, not
// a # comment) is a header naming id. Cells left empty stay empty (the flags fill them in).
func parseList(r io.Reader) ([]item, error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, err
	}
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf")) // a spreadsheet's byte order mark
	first := ""
	for _, line := range strings.Split(string(data), "\n") {
		if t := strings.TrimSpace(line); t != "" && !strings.HasPrefix(t, "#") {
			first = t
			break
		}
	}
	if first == "" {
		return nil, nil
	}
	header, err := csv.NewReader(strings.NewReader(first)).Read()
	if err == nil {
		for _, name := range header {
			if strings.EqualFold(strings.TrimSpace(name), "id") {
				return parseCSV(data)
			}
		}
	}
	if strings.Contains(first, ",") {
		return nil, fmt.Errorf("the first line %q looks like CSV but names no id column (CSV needs a header: id,status,...)", cut(first))
	}
	return parseIDs(data)
}

// parseIDs reads one ID per line.
func parseIDs(data []byte) ([]item, error) {
	var items []item
	var errs errorList
	for i, line := range strings.Split(string(data), "\n") {
		t := strings.TrimSpace(line)
		if t == "" || strings.HasPrefix(t, "#") {
			continue
		}
		if msg := checkID(t); msg != "" {
			errs.add(fmt.Errorf("line %d: %s", i+1, msg))
			continue
		}
		items = append(items, item{ID: t, line: i + 1})
	}
	return items, errs.err()
}

// parseCSV reads RFC 4180 CSV with a header.
func parseCSV(data []byte) ([]item, error) {
	r := csv.NewReader(bytes.NewReader(data))
	r.Comment = '#'
	r.TrimLeadingSpace = true
	header, err := r.Read()
	if err != nil {
		return nil, fmt.Errorf("CSV header: %w", err)
	}
	at := map[string]int{}
	for i, name := range header {
		name = strings.ToLower(strings.TrimSpace(name))
		known := false
		for _, c := range columns {
			known = known || c == name
		}
		if !known {
			hline, _ := r.FieldPos(i)
			return nil, fmt.Errorf("line %d: unknown CSV column %q (the columns are %s)", hline, cut(name), strings.Join(columns, ", "))
		}
		if _, dup := at[name]; dup {
			hline, _ := r.FieldPos(i)
			return nil, fmt.Errorf("line %d: CSV column %q twice", hline, name)
		}
		at[name] = i
	}
	cell := func(rec []string, name string) string {
		if i, ok := at[name]; ok {
			return strings.TrimSpace(rec[i])
		}
		return ""
	}
	var items []item
	var errs errorList
	for {
		rec, err := r.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			var pe *csv.ParseError
			if errors.As(err, &pe) && errors.Is(pe.Err, csv.ErrFieldCount) {
				errs.add(fmt.Errorf("line %d: %d cells, the header has %d", pe.StartLine, len(rec), len(header)))
				continue
			}
			errs.add(err) // unbalanced quotes: the rest of the file cannot be trusted
			break
		}
		line, _ := r.FieldPos(0)
		it := item{ID: cell(rec, "id"), Status: cell(rec, "status"), Provider: cell(rec, "provider"),
			Reason: cell(rec, "reason"), ExpiresAt: cell(rec, "expires_at"), line: line}
		if msg := checkID(it.ID); msg != "" {
			errs.add(fmt.Errorf("line %d: %s", line, msg))
			continue
		}
		items = append(items, it)
	}
	return items, errs.err()
}

// checkID says what is wrong with an ID the gateway would refuse (API.md: 1 to 256 bytes of
// visible ASCII other than /, and not . or ..), or "".
func checkID(id string) string {
	switch {
	case id == "":
		return "no ID"
	case len(id) > 256:
		return fmt.Sprintf("ID %q is over 256 bytes", cut(id))
	case id == "." || id == "..":
		return fmt.Sprintf("ID %q is not allowed", id)
	}
	for i := 0; i < len(id); i++ {
		if c := id[i]; c < 0x21 || c > 0x7e || c == '/' {
			return fmt.Sprintf("ID %q has a character other than visible ASCII, or a /", cut(id))
		}
	}
	return ""
}

// defaults fills in what the items left out from the flags and checks the result.
func defaults(items []item, status, provider, reason, expiresAt string) error {
	var errs errorList
	for i := range items {
		it := &items[i]
		where := fmt.Sprintf("line %d", it.line)
		if it.line == 0 {
			where = "ID " + cut(it.ID)
		}
		if it.Status == "" {
			it.Status = status
		}
		if it.Provider == "" {
			it.Provider = provider
		}
		if it.Reason == "" {
			it.Reason = reason
		}
		if it.ExpiresAt == "" {
			it.ExpiresAt = expiresAt
		}
		switch it.Status {
		case "active", "inactive", "revoked":
		case "":
			errs.add(fmt.Errorf("%s: no status: give --status, or a status column with a value in every row", where))
		default:
			errs.add(fmt.Errorf("%s: status %q: want active, inactive or revoked", where, cut(it.Status)))
		}
		if it.ExpiresAt != "" {
			if _, err := time.Parse(time.RFC3339, it.ExpiresAt); err != nil {
				errs.add(fmt.Errorf("%s: expires_at %q is not RFC 3339 (2027-01-01T00:00:00Z)", where, cut(it.ExpiresAt)))
			}
		}
		if len(it.Reason) > 1024 {
			errs.add(fmt.Errorf("%s: the reason is over 1024 bytes", where))
		}
	}
	return errs.err()
}

// errorList gathers input errors, to report the first few and how many there were.
type errorList struct {
	first []string
	n     int
}

func (l *errorList) add(err error) {
	l.n++
	if len(l.first) < maxErrors {
		l.first = append(l.first, err.Error())
	}
}

func (l *errorList) err() error {
	if l.n == 0 {
		return nil
	}
	msg := strings.Join(l.first, "\n")
	if l.n > len(l.first) {
		msg += fmt.Sprintf("\n(and %d more)", l.n-len(l.first))
	}
	return errors.New(msg)
}

// cut shortens what a user typed for a message.
func cut(s string) string {
	if len(s) > 80 {
		return s[:77] + "..."
	}
	return s
}
