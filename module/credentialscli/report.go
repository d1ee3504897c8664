package credentialscli

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/schollz/progressbar/v3"
)

// tally counts the results of a run.
type tally struct {
	done                                int // items with a result
	changed, unchanged, pending, failed int
	wouldChange                         int
	replayed                            int // results the gateway replayed from an earlier run
	failures                            map[string]*failure
	outputErr                           error
}

// failure is one kind of failure: how many items, and the first for an example.
type failure struct {
	kind  string
	count int
	id    string
	p     problem
}

func (t *tally) add(id string, res result, replayed bool) {
	t.done++
	if replayed {
		t.replayed++
	}
	switch {
	case res.Error != nil:
		t.failed++
		if t.failures == nil {
			t.failures = map[string]*failure{}
		}
		kind := res.Error.short()
		f := t.failures[kind]
		if f == nil {
			f = &failure{kind: kind, id: id, p: *res.Error}
			t.failures[kind] = f
		}
		f.count++
	case res.DryRun || res.WouldChange != nil:
		if res.WouldChange != nil && *res.WouldChange {
			t.wouldChange++
		} else {
			t.unchanged++
		}
	case res.PendingStatus != "":
		t.pending++
	case res.Changed != nil && !*res.Changed:
		t.unchanged++
	default: // changed, or written without a read ("changed": null, reads off)
		t.changed++
	}
}

// progress shows a run's progress on a terminal (a bar on stderr), and nothing elsewhere.
type progress struct {
	bar    *progressbar.ProgressBar
	err    io.Writer
	dryRun bool
}

func newProgress(std stdio, total int, dryRun bool) progress {
	p := progress{err: std.err, dryRun: dryRun}
	if !std.tty {
		return p
	}
	p.bar = progressbar.NewOptions(total,
		progressbar.OptionSetWriter(std.err),
		progressbar.OptionSetDescription(describe(&tally{}, dryRun)),
		progressbar.OptionSetWidth(30),
		progressbar.OptionShowCount(),
		progressbar.OptionShowIts(),
		progressbar.OptionSetItsString("items"),
		progressbar.OptionSetPredictTime(true),
		progressbar.OptionThrottle(100*time.Millisecond),
		progressbar.OptionSetRenderBlankState(true),
	)
	return p
}

// describe is the bar's text: the changes and failures so far.
func describe(t *tally, dryRun bool) string {
	if dryRun {
		return fmt.Sprintf("%d would change, %d failed", t.wouldChange, t.failed)
	}
	return fmt.Sprintf("%d changed, %d failed", t.changed+t.pending, t.failed)
}

func (p progress) update(t *tally) {
	if p.bar == nil {
		return
	}
	p.bar.Describe(describe(t, p.dryRun))
	_ = p.bar.Add(1)
}

// note prints a line of news, above the bar on a terminal.
func (p progress) note(msg string) {
	if p.bar != nil {
		_ = p.bar.Clear()
	}
	fmt.Fprintf(p.err, "note: %s\n", msg)
	if p.bar != nil {
		_ = p.bar.RenderBlank()
	}
}

// finish draws the bar one last time, as it ended, and leaves its line.
func (p progress) finish() {
	if p.bar == nil {
		return
	}
	_ = p.bar.RenderBlank()
	_ = p.bar.Exit()
	fmt.Fprintln(p.err)
}

// summary prints what the run did; notDone items have no result (an interrupted run).
func (r *runner) summary(notDone int) {
	t := &r.tally
	w := r.std.out
	total := len(r.items)
	if r.dryRun {
		fmt.Fprintf(w, "%d %s (dry run, nothing written): %d would change, %d unchanged, %d failed\n",
			total, plural(total, "item", "items"), t.wouldChange, t.unchanged, t.failed)
	} else {
		fmt.Fprintf(w, "%d %s: %d changed, %d unchanged, %d pending approval, %d failed\n",
			total, plural(total, "item", "items"), t.changed, t.unchanged, t.pending, t.failed)
	}
	fs := make([]*failure, 0, len(t.failures))
	for _, f := range t.failures {
		fs = append(fs, f)
	}
	sort.Slice(fs, func(i, j int) bool {
		if fs[i].count != fs[j].count {
			return fs[i].count > fs[j].count
		}
		return fs[i].kind < fs[j].kind
	})
	for _, f := range fs {
		status := ""
		if f.p.Status != 0 {
			status = fmt.Sprintf(" (%d)", f.p.Status)
		}
		detail := oneLine(f.p.Detail)
		if detail == "" {
			detail = f.p.Title
		}
		fmt.Fprintf(w, "failed: %d %s%s, e.g. %s: %s\n", f.count, f.kind, status, cut(f.id), detail)
	}
	if t.replayed > 0 {
		fmt.Fprintf(w, "%d of them done by an earlier run: the gateway replayed their results\n", t.replayed)
	}
	if notDone > 0 {
		fmt.Fprintf(w, "interrupted: %d %s not done; run the same command again to finish (what is done is not redone)\n",
			notDone, plural(notDone, "item", "items"))
	}
	if r.output != nil {
		if t.outputErr != nil {
			fmt.Fprintf(r.std.err, "%s: writing %s: %v\n", r.name, r.outputName, t.outputErr)
		} else {
			fmt.Fprintf(w, "results: %s\n", r.outputName)
		}
	}
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// oneLine makes s fit on one line.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}
