// Package docs checks the documentation: every console example of README.md and docs/*.md
// runs against a freshly started gateway and simulators and must print what the document
// shows, and every link between the documents resolves inside the repository.
//
// The conventions a document follows (docs/development.md explains them too):
//   - A ```console block holds commands (lines beginning with "$ "; a trailing `\` continues
//     one on the next line) each followed by its output, up to the next "$ ".
//   - Commands run with bash in a work directory of the document's own (holding a link to the
//     repository's examples/), with localhost:8080, localhost:2019 and the simulators'
//     127.0.0.1:9101-9104 (or localhost:910x) pointed at the test's free ports; their
//     addresses in the output are mapped back. `bin/credgate` is the gateway binary (where
//     `make run` builds it in a clone; a bare `credgate` is not on PATH, as in a fresh clone),
//     whose `credentials` command talks to the test's gateway ($CREDGATE_URL).
//   - A paragraph that says "freshly started" (say, "on a freshly started `make run`") starts
//     fresh processes from there on, and a document must say so before its first example.
//     The blocks after it run in the document's order, against the same processes.
//   - A block whose info string has file=NAME (```json file=incident.json) is written to NAME
//     in the work directory when the test reaches it.
//   - Output is compared exactly, after one rule (normalize): CRs, trailing blanks and
//     surrounding empty lines dropped, RFC 3339 times and HTTP dates replaced by placeholders.
//     In the document, a line of output that begins with a blank continues the line before
//     (unwrap), so that long JSON may be wrapped for reading.
package docs

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/credgate/credgate/tests/gateway"
)

// update writes what the gateway answers into the documents in place of the outputs that
// differ (review the diff; wrap long lines again where it helps reading).
var update = flag.Bool("update", false, "write the actual outputs into the documents")

// bins are the gateway and simulators, built once for every test of the package.
var bins *gateway.Binaries

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	if _, err := exec.LookPath("curl"); err != nil {
		fmt.Fprintln(os.Stderr, "tests/docs: the documented examples need curl:", err)
		return 1
	}
	return gateway.Main(m, &bins)
}

// TestConsoleExamples runs every document's console examples, in order, against fresh
// processes wherever the document says it starts from a fresh `make run`.
func TestConsoleExamples(t *testing.T) {
	docs, err := documents(bins.Root)
	if err != nil {
		t.Fatal(err)
	}
	examples := 0
	for _, doc := range docs {
		steps, err := parse(doc)
		if err != nil {
			t.Fatal(err)
		}
		name, _ := filepath.Rel(bins.Root, doc)
		t.Run(name, func(t *testing.T) {
			var fixes []fix
			defer func() {
				if err := applyFixes(doc, fixes); err != nil {
					t.Error(err)
				}
			}()
			// Commands run as from a clone's root after `make run`: the sample files are at
			// hand, and bin/ holds the gateway (bin/credgate) and the simulators.
			work := t.TempDir()
			for link, target := range map[string]string{
				"examples": filepath.Join(bins.Root, "examples"),
				"bin":      filepath.Dir(bins.Gateway),
			} {
				if err := os.Symlink(target, filepath.Join(work, link)); err != nil {
					t.Fatal(err)
				}
			}
			var in *gateway.Instance
			for _, s := range steps {
				switch {
				case s.fresh:
					// A section of its own: stop what ran (in.stop), start anew.
					in = startFresh(t, in)
				case s.file != "":
					if err := os.WriteFile(filepath.Join(work, s.file), []byte(s.content), 0o600); err != nil {
						t.Fatal(err)
					}
				default:
					examples++
					if in == nil {
						t.Fatalf("%s:%d: an example before the document says what it starts from (\"on a freshly started `make run`\")", name, s.line)
					}
					out, err := runExample(in, work, in.Rewrite(s.command))
					got := normalize(in.Unrewrite(out))
					if want := normalize(unwrap(s.want)); got != want {
						if *update {
							fixes = append(fixes, fix{s.outStart, s.outEnd, strings.TrimRight(strings.ReplaceAll(in.Unrewrite(out), "\r", ""), "\n")})
							t.Logf("%s:%d: updated", name, s.line)
							continue
						}
						t.Errorf("%s:%d: $ %s\n(exit: %v)\n--- the document shows:\n%s\n--- the gateway answers:\n%s",
							name, s.line, s.command, err, want, got)
					}
				}
			}
		})
	}
	if examples == 0 {
		t.Error("no console example found: the parser or the documents changed")
	}
}

// runExample runs a console example's command line with bash in dir, as a user of `make run`
// would from a clone's root: $CREDGATE_URL points `bin/credgate credentials` at the instance
// (its default, localhost:8080, is where `make run` serves), and PATH is the test's own, so a
// document that says `credgate` where a clone has `bin/credgate` fails here as it would there.
func runExample(in *gateway.Instance, dir, line string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "-c", line)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CREDGATE_URL="+in.URL())
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// startFresh stops the processes of the previous section (if any) and starts new ones.
func startFresh(t *testing.T, prev *gateway.Instance) *gateway.Instance {
	if prev != nil {
		prev.Stop()
	}
	return bins.Start(t, "")
}

// TestLinks checks that every relative link of the documents points at a file of the
// repository (never outside it: a clone has nothing beside it) and, with a #fragment, at a
// heading of that file.
func TestLinks(t *testing.T) {
	docs, err := documents(bins.Root)
	if err != nil {
		t.Fatal(err)
	}
	for _, doc := range docs {
		src, err := os.ReadFile(doc)
		if err != nil {
			t.Fatal(err)
		}
		name, _ := filepath.Rel(bins.Root, doc)
		for _, link := range links(string(src)) {
			if strings.Contains(link, "://") || strings.HasPrefix(link, "mailto:") {
				continue
			}
			path, frag, _ := strings.Cut(link, "#")
			target := doc
			if path != "" {
				target = filepath.Join(filepath.Dir(doc), filepath.FromSlash(path))
				rel, err := filepath.Rel(bins.Root, target)
				if err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
					t.Errorf("%s: link %q points outside the repository", name, link)
					continue
				}
				if _, err := os.Stat(target); err != nil {
					t.Errorf("%s: link %q: %v", name, link, err)
					continue
				}
			}
			if frag == "" {
				continue
			}
			if !strings.HasSuffix(target, ".md") {
				t.Errorf("%s: link %q: a fragment of a file that is not Markdown", name, link)
				continue
			}
			tsrc, err := os.ReadFile(target)
			if err != nil {
				t.Errorf("%s: link %q: %v", name, link, err)
				continue
			}
			if !anchors(string(tsrc))[frag] {
				t.Errorf("%s: link %q: no heading with that anchor", name, link)
			}
		}
	}
}

// TestNormalize pins the comparison rule down.
func TestNormalize(t *testing.T) {
	got := normalize(unwrap("HTTP/1.1 200 OK\r\nDate: Mon, 23 Nov 2026 11:44:40 GMT  \r\n\r\n" +
		`{"a":1,` + "\n" + `   "t":"2026-11-23T11:44:40.307Z"}` + "\n\n"))
	want := "HTTP/1.1 200 OK\nDate: <http-date>\n\n{\"a\":1,\"t\":\"<time>\"}"
	if got != want {
		t.Errorf("normalize: got\n%s\nwant\n%s", got, want)
	}
}

// A fix replaces a document's lines [start, end) with text.
type fix struct {
	start, end int
	text       string
}

// applyFixes rewrites the document with fixes (in document order), for -update.
func applyFixes(path string, fixes []fix) error {
	if len(fixes) == 0 {
		return nil
	}
	src, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	lines := strings.Split(string(src), "\n")
	for i := len(fixes) - 1; i >= 0; i-- {
		f := fixes[i]
		var repl []string
		if f.text != "" {
			repl = strings.Split(f.text, "\n")
		}
		lines = append(lines[:f.start], append(repl, lines[f.end:]...)...)
	}
	return os.WriteFile(path, []byte(strings.Join(lines, "\n")), 0o644)
}
