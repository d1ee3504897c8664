// Package credentialscli is the operators' client of a credgate gateway, the Caddy subcommand
// `credgate credentials` (docs/cli.md):
//
//	credgate credentials get ID...
//	credgate credentials set --status S (--file F | - | ID...) [--reason R] [--dry-run] [--output F]
//
// `set` sends its list to POST /credentials/status in chunks, each with an Idempotency-Key
// derived from the whole run and the chunk's own items, so that the same command run again
// after a crash gets the finished chunks replayed by the gateway and does the rest. It reads
// the answers as NDJSON while they stream, shows a progress bar when stderr is a terminal, and
// ends with a summary. Exit status: 0 when every item succeeded (or would, in a dry run), 1
// when any failed, 2 when the run could not start.
package credentialscli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/spf13/cobra"
	"golang.org/x/term"
)

// The exit statuses.
const (
	exitOK       = 0 // every item succeeded, or would
	exitFailed   = 1 // some item failed (or was not done)
	exitNotStart = 2 // usage errors, unknown flags, no gateway
)

// DefaultURL is the gateway's address without --url and $CREDGATE_URL.
const DefaultURL = "http://localhost:8080"

func init() {
	caddycmd.RegisterCommand(caddycmd.Command{
		Name:  "credentials",
		Usage: "get|set [flags] [ID...]",
		Short: "Reads or changes credentials' statuses through a credgate gateway",
		Long: `
A client of a running credgate gateway (default $CREDGATE_URL, else ` + DefaultURL + `).

  credentials get ID...
      reads each credential's status (GET /credentials/{id}/status) and prints one
      JSON answer per line.

  credentials set --status S (--file FILE | - | ID...)
      changes them all, in batches of --chunk items (POST /credentials/status). FILE
      holds one ID per line, or CSV with a header naming id and any of status,
      provider, reason, expires_at; blank lines and # comments are skipped. Running
      the same command again after a crash replays the batches that finished and
      does the rest.

Exit status: 0 when every item succeeded (or would, with --dry-run), 1 when any
failed, 2 when the run could not start (usage errors, no gateway).`,
		CobraFunc: commands,
	})
}

// commands builds the `credentials` command and its `get` and `set`.
func commands(cmd *cobra.Command) {
	cmd.SilenceErrors = true
	cmd.SetFlagErrorFunc(flagError)
	cmd.RunE = func(c *cobra.Command, args []string) error {
		if len(args) == 0 {
			return usageError(c, "name a command: get or set")
		}
		return usageError(c, fmt.Sprintf("unknown command %q: use get or set", args[0]))
	}

	get := &cobra.Command{
		Use:   "get [flags] ID...",
		Short: "Prints the status of each credential, one JSON answer per line",
		Example: `  credgate credentials get 12345 ce4918bf-a199-4ce2-85a3-d0d296855384
  credgate credentials get --url https://credgate.internal --header 'Authorization: Bearer ...' 12345`,
	}
	var gopts getOptions
	gf := get.Flags()
	commonFlags(gf, &gopts.common)
	gf.StringVar(&gopts.provider, "provider", "", "the provider that owns the IDs (skips resolution)")
	gf.StringVar(&gopts.output, "output", "", "write the answers to `FILE`, one JSON per line, instead of stdout")
	gf.IntVar(&gopts.concurrency, "concurrency", 8, "reads at once")
	get.RunE = func(c *cobra.Command, args []string) error {
		return exit(runGet(c, args, &gopts))
	}

	set := &cobra.Command{
		Use:   "set --status S [flags] (--file FILE | - | ID...)",
		Short: "Changes the status of a list of credentials, in batches, resumably",
		Example: `  credgate credentials set --status inactive --file leaked.csv --reason INC-42 --dry-run
  credgate credentials set --status inactive --file leaked.csv --reason INC-42 --output results.jsonl
  cut -d, -f1 leaked.csv | credgate credentials set --status inactive -`,
	}
	var sopts setOptions
	sf := set.Flags()
	commonFlags(sf, &sopts.common)
	sf.StringVar(&sopts.status, "status", "", "the status to set: active, inactive or revoked (default for CSV rows without one)")
	sf.StringVar(&sopts.file, "file", "", "read the list from `FILE` (- for stdin): one ID per line, or CSV with a header")
	sf.StringVar(&sopts.provider, "provider", "", "the provider that owns the IDs (skips resolution)")
	sf.StringVar(&sopts.reason, "reason", "", "the reason kept in the audit trail")
	sf.StringVar(&sopts.expiresAt, "expires-at", "", "with --status active, the expiry (RFC 3339) where the provider's status is one")
	sf.BoolVar(&sopts.dryRun, "dry-run", false, "resolve and read every item, write nothing")
	sf.StringVar(&sopts.output, "output", "", "write every item's result to `FILE`, one JSON object per line")
	sf.StringVar(&sopts.idempotencyKey, "idempotency-key", "", "the run's key (default: a hash of the input and the options)")
	sf.IntVar(&sopts.chunk, "chunk", 1000, "items per batch (a 413 from the gateway halves it)")
	set.RunE = func(c *cobra.Command, args []string) error {
		return exit(runSet(c, args, &sopts))
	}

	for _, c := range []*cobra.Command{get, set} {
		c.SilenceErrors = true
		c.SilenceUsage = true
		c.SetFlagErrorFunc(flagError)
		cmd.AddCommand(c)
	}
}

// common are the flags of both commands.
type common struct {
	url     string
	headers []string
}

func commonFlags(fs interface {
	StringVar(*string, string, string, string)
	StringArrayVar(*[]string, string, []string, string)
}, c *common) {
	fs.StringVar(&c.url, "url", "", "the gateway's `URL` (default $CREDGATE_URL, else "+DefaultURL+")")
	fs.StringArrayVar(&c.headers, "header", nil, "a request header, 'Name: value' (repeatable; for authentication)")
}

// target returns the gateway's base URL (see endpoint) and the --header flags (see header).
func (c *common) target() (string, [][2]string, error) {
	base, err := c.endpoint()
	if err != nil {
		return "", nil, err
	}
	headers, err := c.header()
	return base, headers, err
}

// endpoint returns the gateway's base URL without a trailing slash, checked.
func (c *common) endpoint() (string, error) {
	raw := c.url
	if raw == "" {
		raw = os.Getenv("CREDGATE_URL")
	}
	if raw == "" {
		raw = DefaultURL
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return "", fmt.Errorf("--url %q: want http(s)://host[:port][/prefix]", raw)
	}
	return strings.TrimRight(u.String(), "/"), nil
}

// header parses the --header flags.
func (c *common) header() ([][2]string, error) {
	var hs [][2]string
	for _, h := range c.headers {
		name, value, ok := strings.Cut(h, ":")
		name = strings.TrimSpace(name)
		if !ok || name == "" || strings.ContainsAny(name, " \t\r\n") || strings.ContainsAny(value, "\r\n") {
			return nil, fmt.Errorf("--header %q: want 'Name: value'", h)
		}
		hs = append(hs, [2]string{name, strings.TrimSpace(value)})
	}
	return hs, nil
}

// io is where a command reads and writes, and whether stderr is a terminal.
type stdio struct {
	in       io.Reader
	out, err io.Writer
	tty      bool
}

func osStdio() stdio {
	return stdio{in: os.Stdin, out: os.Stdout, err: os.Stderr, tty: term.IsTerminal(int(os.Stderr.Fd()))}
}

// signalContext is cancelled by SIGINT or SIGTERM.
func signalContext() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
}

// errFailed makes Caddy's main exit with status 1; it is silent (the command printed why).
var errFailed = errors.New("some items failed")

// exit turns an exit status into what caddycmd.Main turns back into it: nil for 0, a plain
// error for 1, caddycmd's exit error for any other.
func exit(code int) error {
	switch code {
	case exitOK:
		return nil
	case exitFailed:
		return errFailed
	}
	status := func(caddycmd.Flags) (int, error) { return code, nil }
	return caddycmd.WrapCommandFuncForCobra(status)(&cobra.Command{}, nil)
}

// usageError prints msg and the hint to --help, and exits 2.
func usageError(c *cobra.Command, msg string) error {
	fmt.Fprintf(c.ErrOrStderr(), "%s: %s\nRun '%s --help' for usage.\n", commandPath(c), msg, commandPath(c))
	return exit(exitNotStart)
}

// flagError makes an unknown or malformed flag a usage error (exit 2; cobra's own would be 1).
func flagError(c *cobra.Command, err error) error {
	return usageError(c, err.Error())
}

// commandPath is the command as the user typed it: Caddy's root command is named "caddy"
// whatever the binary's name, so it is replaced with the binary's.
func commandPath(c *cobra.Command) string {
	path := c.CommandPath()
	if len(os.Args) > 0 {
		if _, rest, ok := strings.Cut(path, " "); ok {
			return filepath.Base(os.Args[0]) + " " + rest
		}
	}
	return path
}
