package credentialscli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"
)

// getOptions are the flags of `credentials get`.
type getOptions struct {
	common
	provider    string
	output      string
	concurrency int
}

// getTimeout bounds one read.
const getTimeout = 60 * time.Second

func runGet(c *cobra.Command, args []string, o *getOptions) int {
	std := osStdio()
	std.out, std.err = c.OutOrStdout(), c.ErrOrStderr()
	usage := func(msg string) int {
		fmt.Fprintf(std.err, "%s: %s\nRun '%s --help' for usage.\n", commandPath(c), msg, commandPath(c))
		return exitNotStart
	}
	if len(args) == 0 {
		return usage("no IDs: give one or more as arguments")
	}
	var errs errorList
	for _, id := range args {
		if msg := checkID(id); msg != "" {
			errs.add(errors.New(msg))
		}
	}
	if err := errs.err(); err != nil {
		return usage(err.Error())
	}
	if o.concurrency < 1 {
		return usage("--concurrency must be at least 1")
	}
	base, headers, err := o.target()
	if err != nil {
		return usage(err.Error())
	}
	out := std.out
	if o.output != "" {
		f, err := os.Create(o.output)
		if err != nil {
			return usage(err.Error())
		}
		defer f.Close()
		out = f
	}
	ctx, stop := signalContext()
	defer stop()

	client := &http.Client{Transport: transport(), Timeout: getTimeout}
	type answer struct {
		line        []byte
		failed      bool
		unreachable error
	}
	answers := make([]answer, len(args))
	done := make([]chan struct{}, len(args))
	for i := range done {
		done[i] = make(chan struct{})
	}
	var wg sync.WaitGroup
	slots := make(chan struct{}, o.concurrency)
	for i, id := range args {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer close(done[i])
			slots <- struct{}{}
			defer func() { <-slots }()
			line, failed, err := getOne(ctx, client, base, headers, id, o.provider)
			answers[i] = answer{line, failed, err}
		}()
	}
	// Print in the order of the arguments, each as soon as it and those before it are in;
	// while every answer so far is "unreachable", hold them: if all are, nothing could start.
	failed, unreachable := 0, 0
	var firstErr error
	var held [][]byte
	for i := range args {
		<-done[i]
		a := answers[i]
		if a.unreachable != nil {
			unreachable++
			if firstErr == nil {
				firstErr = a.unreachable
			}
			a.line, _ = json.Marshal(struct {
				ID    string  `json:"id"`
				Error problem `json:"error"`
			}{args[i], problem{Type: "urn:credgate:cli:gateway-unreachable", Title: "Gateway unreachable", Detail: a.unreachable.Error()}})
			a.failed = true
		}
		if a.failed {
			failed++
		}
		held = append(held, a.line)
		if unreachable < i+1 {
			for _, line := range held {
				fmt.Fprintf(out, "%s\n", line)
			}
			held = held[:0]
		}
	}
	wg.Wait()
	switch {
	case unreachable == len(args):
		fmt.Fprintf(std.err, "%s: no gateway at %s: %v\n", commandPath(c), base, bare(firstErr))
		return exitNotStart
	case failed > 0:
		return exitFailed
	}
	return exitOK
}

// getOne reads one credential's status: the gateway's answer on one line, or for a problem
// {"id", "error": <problem>}.
func getOne(ctx context.Context, client *http.Client, base string, headers [][2]string, id, provider string) (line []byte, failed bool, err error) {
	u := base + "/credentials/" + url.PathEscape(id) + "/status"
	if provider != "" {
		u += "?provider=" + url.QueryEscape(provider)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, true, err
	}
	for _, h := range headers {
		req.Header.Add(h[0], h[1])
	}
	req.Header.Set("Accept", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return nil, true, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return nil, true, err
	}
	if resp.StatusCode == http.StatusOK && json.Valid(data) {
		return compact(data), false, nil
	}
	var raw json.RawMessage
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "application/problem+json") && json.Valid(data) {
		raw = compact(data)
	} else {
		p := problem{Title: http.StatusText(resp.StatusCode), Status: resp.StatusCode, Detail: cut(strings.TrimSpace(string(data)))}
		raw, _ = json.Marshal(p)
	}
	line, _ = json.Marshal(struct {
		ID    string          `json:"id"`
		Error json.RawMessage `json:"error"`
	}{id, raw})
	return line, true, nil
}

// compact puts a JSON document on one line.
func compact(data []byte) []byte {
	var buf bytes.Buffer
	if json.Compact(&buf, data) != nil {
		return data
	}
	return buf.Bytes()
}
