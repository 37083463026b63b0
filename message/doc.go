// Package message builds the notification a Notifier sends when a customer's
// payroll connection needs them: a subject line, a plain-text body and an
// HTML e-mail body, made from a finchreauth.Event.
//
// Finch advises telling the customer that their connection has stopped
// syncing, which services stop working until it is fixed, why fixing it
// helps them and how to do it. The default templates say all of that: whom
// the message is for, the provider, since when the connection is broken
// (and, in a reminder, for how long), the products that stop syncing in
// plain words, which entities of a multi-entity connection are affected and
// which still work, and what to do, which depends on the Event's Status
// (Data.Fix):
//
//   - "reauth": reconnect through Finch Connect ("Reconnect your Gusto
//     payroll connection"), with the reconnect link (a button in HTML, a URL
//     in text), or, when the Event has no link, to sign in to the dashboard
//     instead.
//   - "error_no_account_setup", "error_permissions", and any status of an
//     assisted connection (Event.Connection.Assisted): the employer fixes it
//     in their payroll system ("Action needed in your Gusto account"): create
//     the admin user promised to Finch, add Finch back as an admin with the
//     permissions it needs, or make sure Finch's admin user can still sign
//     in. These messages carry no link: Finch Connect cannot repair them.
//
// Send the message as it is:
//
//	Notifier: finchreauth.NotifierFunc(func(ctx context.Context, e finchreauth.Event) error {
//		m, err := message.Render(e)
//		if err != nil {
//			return err
//		}
//		return mailer.Send(ctx, e.Connection.CustomerEmail, m.Subject, m.Text, m.HTML)
//	}),
//
// or replace any of the templates with a Templates value. Templates receive a
// Data; Defaults holds the default templates, to copy as a starting point.
// The HTML is rendered with html/template, so every value in it is escaped
// for where it appears, and a reconnect link reaches a template only when it
// is an http or https URL.
package message
