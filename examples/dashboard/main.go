// Command dashboard is a demo to click through in a browser: an HR
// application's "payroll connections" dashboard for five employers, built on
// finchreauth, with a fake Finch (package finchtest: the API and the Connect
// pages) in the same process.
//
//	go run ./examples/dashboard            # from the repository root
//	go run ./examples/dashboard -addr 127.0.0.1:9000
//
// It prints the URL to open and serves until interrupted (Ctrl-C). On the
// dashboard, break an employer's connection as if they had changed their
// payroll password, run a sync to see Finch's 401 through the Transport, read
// the notification in the inbox, follow its link to Finch Connect, and come
// back reconnected, cancelled, or with the wrong account. Once reconnected,
// the next sync (through Transport.Client) carries the new token, Finch's
// data sync job runs on the demo clock until the data is fresh, and the
// card lists the requests that failed while it was broken. The assisted
// connection shows the needs Finch Connect cannot repair: Finch's admin user
// loses its permissions in the payroll system, and the employer restores
// them there. The health sweep finds a break Finch reported to nobody
// before any sync fails; an upgrade asks an employer for products its token
// lacks, and shows what Finch did not grant; a campaign asks every Gusto
// connection to re-authenticate by a date, and counts its progress. Nothing
// leaves the machine: the "e-mails" land in the demo's inbox.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8080", "the address the application listens on (host:port; port 0 picks one)")
	verbose := flag.Bool("v", false, "log what the library does (tokens by fingerprint only)")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	cfg := config{Addr: *addr}
	if *verbose {
		cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	d, err := newDemo(cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "dashboard:", err)
		os.Exit(1)
	}
	fmt.Printf("Payroll connections demo: open %s\n", d.URL)
	fmt.Printf("(fake Finch API and Connect at %s)\n", d.finch.URL)
	fmt.Println("Ctrl-C stops it.")
	if err := d.Serve(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "dashboard:", err)
		os.Exit(1)
	}
	fmt.Println("stopped")
}
