package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/finchkit/finchreauth"
)

// campaign is the campaign command: where a campaign (Transport.StartCampaign)
// stands, read from the Store.
func campaign(ctx context.Context, args []string, stdout, stderr io.Writer, now func() time.Time) int {
	fs := flag.NewFlagSet("campaign", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, "usage: finchreauth campaign -store STORE -name NAME [flags]\n\nPrints where a campaign stands: the connections asked, done and overdue.\n\n")
		fs.PrintDefaults()
	}
	c := storeFlags(fs)
	sealed := fs.Bool("sealed", false, "the Store's tokens are sealed: read the records leaving the tokens unopened")
	name := fs.String("name", "", "the campaign's name, as the application's finchreauth.Campaign.Name (required)")
	if code, ok := parse(fs, args, stderr); !ok {
		return code
	}
	switch {
	case c.spec == "":
		return usageError(fs, stderr, "-store is required")
	case *name == "":
		return usageError(fs, stderr, "-name is required")
	}
	var skip skipped
	tr, where, done, err := readStore(ctx, *c, *sealed, now, &skip)
	if err != nil {
		fmt.Fprintln(stderr, shownError(err))
		return 1
	}
	defer done()
	p, err := tr.CampaignProgress(ctx, *name)
	if err != nil {
		fmt.Fprintf(stderr, "finchreauth: reading %s: %s%s\n", where, shownError(err), hint(err, *sealed))
		return 1
	}
	printProgress(stdout, shown(*name, maxShown), where, p)
	return skip.report(stderr, where, *sealed)
}

// printProgress prints where the campaign named name stands in the Store
// where.
func printProgress(w io.Writer, name, where string, p finchreauth.CampaignProgress) {
	if p.Asked == 0 && p.Done == 0 {
		fmt.Fprintf(w, "No connection was asked by campaign \"%s\" in %s.\n", name, where)
		return
	}
	fmt.Fprintf(w, "Campaign \"%s\" in %s:\n", name, where)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "  asked\t%d\twaiting for their employer to reconnect\n", p.Asked)
	fmt.Fprintf(tw, "  overdue\t%d\tof those asked, past the deadline\n", p.Overdue)
	fmt.Fprintf(tw, "  done\t%d\treconnected since they were asked\n", p.Done)
	tw.Flush()
}
