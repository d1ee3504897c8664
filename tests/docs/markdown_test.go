package docs

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
)

// A step is what a document asks of the test, in its order: start fresh processes, write a
// file, or run a command and compare what it prints.
type step struct {
	line int // where it starts in the document (1-based)

	fresh bool // a paragraph that says "freshly started": stop everything, start anew

	file, content string // a ```<lang> file=<name> block: written to the work directory

	command, want string // a `$ ` command of a ```console block and the output shown after it
	// The document's lines (0-based, end excluded) holding want, blank lines after it left out.
	outStart, outEnd int
}

var fenceRE = regexp.MustCompile("^(```+|~~~+)\\s*(.*)$")

// parse reads a Markdown document into steps:
//   - a line outside code blocks that contains "freshly started" (as in "on a freshly
//     started `make run`") starts fresh processes at that point;
//   - a fenced block whose info string has `file=NAME` (```json file=incident.json) is
//     written to NAME in the document's work directory, for the commands that follow;
//   - a ```console block: each line beginning with "$ " is a command (a line ending in `\`
//     continues it on the next), and the lines after it up to the next "$ " are its output.
func parse(path string) ([]step, error) {
	src, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	lines := strings.Split(string(src), "\n")
	var steps []step
	for i := 0; i < len(lines); i++ {
		m := fenceRE.FindStringSubmatch(lines[i])
		if m == nil {
			if strings.Contains(lines[i], "freshly started") {
				steps = append(steps, step{line: i + 1, fresh: true})
			}
			continue
		}
		fence, info := m[1], strings.Fields(m[2])
		start := i
		var body []string
		for i++; i < len(lines) && !strings.HasPrefix(strings.TrimSpace(lines[i]), fence); i++ {
			body = append(body, lines[i])
		}
		if i == len(lines) {
			return nil, fmt.Errorf("%s:%d: code block never closed", path, start+1)
		}
		for _, word := range info {
			if name, ok := strings.CutPrefix(word, "file="); ok {
				steps = append(steps, step{line: start + 1, file: name, content: strings.Join(body, "\n") + "\n"})
			}
		}
		if len(info) > 0 && info[0] == "console" {
			cmds, err := parseConsole(body, start+2)
			if err != nil {
				return nil, fmt.Errorf("%s:%w", path, err)
			}
			steps = append(steps, cmds...)
		}
	}
	return steps, nil
}

// parseConsole splits a console block (its first line is document line first) into commands
// and their expected output.
func parseConsole(body []string, first int) ([]step, error) {
	var steps []step
	for i := 0; i < len(body); {
		cmd, ok := strings.CutPrefix(body[i], "$ ")
		if !ok {
			if strings.TrimSpace(body[i]) == "" {
				i++
				continue
			}
			return nil, fmt.Errorf("%d: output before any `$ ` command", first+i)
		}
		s := step{line: first + i}
		for strings.HasSuffix(cmd, `\`) && i+1 < len(body) {
			i++
			cmd += "\n" + body[i]
		}
		s.command = cmd
		var out []string
		for i++; i < len(body) && !strings.HasPrefix(body[i], "$ "); i++ {
			out = append(out, body[i])
		}
		s.want = strings.Join(out, "\n")
		s.outEnd = first - 1 + i
		s.outStart = s.outEnd - len(out)
		for j := len(out) - 1; j >= 0 && strings.TrimSpace(out[j]) == ""; j-- {
			s.outEnd--
		}
		steps = append(steps, s)
	}
	return steps, nil
}

// unwrap undoes the documents' line wrapping of long output: a line of expected output that
// begins with a space or a tab continues the line before it (its leading blanks dropped), so
// that a long JSON answer can be shown over several lines and still be compared exactly.
func unwrap(s string) string {
	var out []string
	for _, line := range strings.Split(s, "\n") {
		if len(out) > 0 && out[len(out)-1] != "" && (strings.HasPrefix(line, " ") || strings.HasPrefix(line, "\t")) {
			out[len(out)-1] += strings.TrimLeft(line, " \t")
			continue
		}
		out = append(out, line)
	}
	return strings.Join(out, "\n")
}

// The volatile values that normalize replaces: RFC 3339 times (a credential's updated_at, a
// ZStack expiry set to "now", a breaker's opened_at) and HTTP dates (the Date header).
var (
	rfc3339RE  = regexp.MustCompile(`\b\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})`)
	httpDateRE = regexp.MustCompile(`\b(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d{2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2} GMT\b`)
)

// normalize is the one rule by which output and expectation are compared: carriage returns
// (curl -i prints headers with CRLF) and trailing blanks of lines go, leading and trailing
// empty lines go, and every RFC 3339 time and HTTP date becomes a placeholder. Nothing else
// is forgiven.
func normalize(s string) string {
	s = strings.ReplaceAll(s, "\r", "")
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		lines[i] = strings.TrimRight(l, " \t")
	}
	s = strings.Trim(strings.Join(lines, "\n"), "\n")
	s = rfc3339RE.ReplaceAllString(s, "<time>")
	return httpDateRE.ReplaceAllString(s, "<http-date>")
}

// The Markdown documents the tests check: README.md and docs/*.md.
func documents(root string) ([]string, error) {
	docs, err := filepath.Glob(filepath.Join(root, "docs", "*.md"))
	if err != nil {
		return nil, err
	}
	return append([]string{filepath.Join(root, "README.md")}, docs...), nil
}

var (
	linkRE    = regexp.MustCompile(`\]\(([^)\s]+)\)`)
	headingRE = regexp.MustCompile(`^#{1,6}\s+(.*)$`)
)

// links returns the targets of the document's inline links outside code blocks and code spans.
func links(src string) []string {
	var out []string
	inFence := ""
	for _, line := range strings.Split(src, "\n") {
		if m := fenceRE.FindStringSubmatch(line); m != nil {
			switch {
			case inFence == "":
				inFence = m[1]
			case strings.HasPrefix(strings.TrimSpace(line), inFence):
				inFence = ""
			}
			continue
		}
		if inFence != "" {
			continue
		}
		line = regexp.MustCompile("`[^`]*`").ReplaceAllString(line, "")
		for _, m := range linkRE.FindAllStringSubmatch(line, -1) {
			out = append(out, m[1])
		}
	}
	return out
}

// anchors returns the anchors GitHub makes of the document's headings: lower case, spaces to
// hyphens, punctuation other than hyphens and underscores dropped; repeats get -1, -2, ...
func anchors(src string) map[string]bool {
	out := map[string]bool{}
	seen := map[string]int{}
	inFence := ""
	for _, line := range strings.Split(src, "\n") {
		if m := fenceRE.FindStringSubmatch(line); m != nil {
			switch {
			case inFence == "":
				inFence = m[1]
			case strings.HasPrefix(strings.TrimSpace(line), inFence):
				inFence = ""
			}
			continue
		}
		m := headingRE.FindStringSubmatch(line)
		if inFence != "" || m == nil {
			continue
		}
		var b strings.Builder
		for _, r := range strings.ToLower(strings.TrimSpace(m[1])) {
			switch {
			case r == ' ':
				b.WriteRune('-')
			case r == '-' || r == '_' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r > 127:
				b.WriteRune(r)
			}
		}
		a := b.String()
		if n := seen[a]; n > 0 {
			out[fmt.Sprintf("%s-%d", a, n)] = true
		} else {
			out[a] = true
		}
		seen[a]++
	}
	return out
}
