//go:build unix

package docs

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Shell blocks. A ```sh block (or bash, shell) of README.md and docs/*.md holds commands that
// a reader copies as written, with no output to compare. TestShellBlocks runs each in a fresh
// copy of the repository (the files a clone holds), with bash -euo pipefail, and wants exit
// status 0. A block that cannot run in a test says why in its info string:
//
//	```sh {skip-test: builds Caddy with xcaddy, about 3 minutes; .ci/run runs make build}
//
// (a long build, a server that runs until Ctrl-C, a tool that is not a dependency of the
// project). A block is run or tagged, never silently left out.

// shellLangs are the info-string languages of the blocks TestShellBlocks runs.
var shellLangs = map[string]bool{"sh": true, "bash": true, "shell": true}

// skipRE matches the tag that keeps a shell block out of the test, with its reason.
var skipRE = regexp.MustCompile(`\{skip-test:\s*(.*?)\s*\}`)

// awaitingTag lists untagged blocks of pages that other work owns, by the page and the
// beginning of the block's first line, with the reason to write into the tag. The test treats
// them as tagged and logs it; an entry that matches no untagged block fails the test: remove
// it once the page carries the tag.
var awaitingTag = map[string]string{}

// A shellBlock is a fenced block whose language is a shell.
type shellBlock struct {
	line   int    // of the opening fence, 1-based
	skip   string // the skip-test reason, "" when it is to run
	tagged bool   // the info string has a skip-test tag (perhaps with an empty reason)
	body   string
}

// shellBlocks returns the document's shell blocks, and an error for a skip-test tag on a
// block that is not one (the tests would run it anyway, or never).
func shellBlocks(path string) ([]shellBlock, error) {
	src, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	lines := strings.Split(string(src), "\n")
	var out []shellBlock
	for i := 0; i < len(lines); i++ {
		m := fenceRE.FindStringSubmatch(lines[i])
		if m == nil {
			continue
		}
		fence, info := m[1], m[2]
		start := i
		var body []string
		for i++; i < len(lines) && !strings.HasPrefix(strings.TrimSpace(lines[i]), fence); i++ {
			body = append(body, lines[i])
		}
		if i == len(lines) {
			return nil, errors.New(path + ": code block never closed")
		}
		lang, _, _ := strings.Cut(strings.TrimSpace(info), " ")
		tag := skipRE.FindStringSubmatch(info)
		if !shellLangs[lang] {
			if tag != nil {
				return nil, errors.New(path + ":" + strconv.Itoa(start+1) + ": a skip-test tag on a " + lang + " block, which TestShellBlocks does not run")
			}
			continue
		}
		b := shellBlock{line: start + 1, body: strings.Join(body, "\n") + "\n"}
		if tag != nil {
			b.tagged, b.skip = true, tag[1]
		}
		out = append(out, b)
	}
	return out, nil
}

// TestShellBlocks runs every untagged shell block of the documents in a fresh copy of the
// repository, and checks that every tagged one gives a reason.
func TestShellBlocks(t *testing.T) {
	docs, err := documents(bins.Root)
	if err != nil {
		t.Fatal(err)
	}
	used := map[string]bool{}
	ran, skipped := 0, 0
	for _, doc := range docs {
		name, _ := filepath.Rel(bins.Root, doc)
		name = filepath.ToSlash(name)
		blocks, err := shellBlocks(doc)
		if err != nil {
			t.Error(err)
			continue
		}
		for _, b := range blocks {
			where := name + ":" + strconv.Itoa(b.line)
			if b.tagged {
				if b.skip == "" {
					t.Errorf("%s: a skip-test tag without a reason: say why the block cannot run in a test", where)
				}
				skipped++
				continue
			}
			if key, reason := awaiting(name, b.body); key != "" {
				used[key] = true
				t.Logf("%s: not tagged; treated as {skip-test: %s} until the page says so", where, reason)
				skipped++
				continue
			}
			ran++
			t.Run(strings.ReplaceAll(where, "/", "_"), func(t *testing.T) {
				dir := freshCopy(t)
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
				defer cancel()
				cmd := exec.CommandContext(ctx, "bash", "-euo", "pipefail", "-c", b.body)
				cmd.Dir = dir
				// Its own process group, killed whole at the end: a block that starts a
				// server (an untagged `make run`) leaves nothing running on the ports.
				cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
				cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
				cmd.WaitDelay = 5 * time.Second
				start := time.Now()
				out, err := cmd.CombinedOutput()
				_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
				if err != nil {
					t.Errorf("%s: the block fails from a fresh clone (%v), or tag it ```sh {skip-test: why}:\n%s\n--- it printed:\n%s", where, err, b.body, out)
					return
				}
				t.Logf("%s: ran in %v", where, time.Since(start).Round(time.Millisecond))
			})
		}
	}
	for key := range awaitingTag {
		if !used[key] {
			page, first, _ := strings.Cut(key, "\x00")
			t.Errorf("awaitingTag: no untagged block of %s begins with %q: the page is tagged (or changed); remove the entry", page, first)
		}
	}
	t.Logf("shell blocks: %d run, %d tagged skip-test", ran, skipped)
	if ran+skipped == 0 {
		t.Error("no shell block found: the parser or the documents changed")
	}
}

// awaiting returns the awaitingTag entry that the untagged block of page matches, if any.
func awaiting(page, body string) (key, reason string) {
	first, _, _ := strings.Cut(strings.TrimSpace(body), "\n")
	for k, r := range awaitingTag {
		p, prefix, _ := strings.Cut(k, "\x00")
		if p == page && strings.HasPrefix(first, prefix) {
			return k, r
		}
	}
	return "", ""
}

// freshCopy copies what a clone of the repository holds (the files git tracks, and new ones
// it does not ignore) into a new directory: a block's commands see no build output, no bin/,
// nothing a developer's checkout has that a clone has not, and cannot change the checkout.
func freshCopy(t *testing.T) string {
	t.Helper()
	list := exec.Command("git", "ls-files", "-z", "--cached", "--others", "--exclude-standard")
	list.Dir = bins.Root
	var stderr bytes.Buffer
	list.Stderr = &stderr
	out, err := list.Output()
	if err != nil {
		t.Fatalf("git ls-files in %s (the shell blocks run in a copy of a clone): %v\n%s", bins.Root, err, stderr.String())
	}
	dir := t.TempDir()
	for _, rel := range strings.Split(strings.TrimRight(string(out), "\x00"), "\x00") {
		if rel == "" {
			continue
		}
		src := filepath.Join(bins.Root, filepath.FromSlash(rel))
		info, err := os.Lstat(src)
		if errors.Is(err, fs.ErrNotExist) {
			continue // deleted in the checkout, not yet committed
		}
		if err != nil {
			t.Fatal(err)
		}
		dst := filepath.Join(dir, filepath.FromSlash(rel))
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			t.Fatal(err)
		}
		if info.Mode()&fs.ModeSymlink != 0 {
			target, err := os.Readlink(src)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(target, dst); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if !info.Mode().IsRegular() {
			continue
		}
		data, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(dst, data, info.Mode().Perm()); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// TestShellBlockTags pins the parsing of shell blocks and their tags down.
func TestShellBlockTags(t *testing.T) {
	doc := filepath.Join(t.TempDir(), "doc.md")
	src := "```sh\necho run\n```\n\n```sh {skip-test: starts a server}\nmake run\n```\n\n" +
		"```bash {skip-test:}\nx\n```\n\n```console\n$ echo hi\nhi\n```\n"
	if err := os.WriteFile(doc, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := shellBlocks(doc)
	if err != nil {
		t.Fatal(err)
	}
	want := []shellBlock{
		{line: 1, body: "echo run\n"},
		{line: 5, skip: "starts a server", tagged: true, body: "make run\n"},
		{line: 9, tagged: true, body: "x\n"},
	}
	if len(got) != len(want) {
		t.Fatalf("got %+v, want %+v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("block %d: got %+v, want %+v", i, got[i], want[i])
		}
	}
	bad := filepath.Join(t.TempDir(), "bad.md")
	if err := os.WriteFile(bad, []byte("```json {skip-test: no}\n{}\n```\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := shellBlocks(bad); err == nil {
		t.Error("a skip-test tag on a json block: no error")
	}
}
