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
// Some Events are not about a broken connection, or are not any
// notification of the episode (Data.Request, Data.LastNotice,
// Data.Escalation):
//
//   - Event.Request "upgrade" (RequestProducts): the connection works, and
//     keeps working; the employer is asked to grant access to the products
//     it lacks ("Grant access to benefits as well as deductions and
//     contributions in your Gusto payroll connection"), listed beside
//     those that keep syncing. Nothing in it says the connection is broken.
//   - Event.Request "campaign" (StartCampaign): the employer is asked to
//     reconnect a working connection before Event.Deadline; the reminders
//     count down ("Reminder: 7 days left to reconnect your Gusto payroll
//     connection"). The campaign's name is the application's, and is not
//     shown.
//   - Event.LastNotice: the last message of an episode the application
//     abandons ("Last notice: your Gusto payroll connection will be
//     disconnected on April 2, 2025"), and that nothing more follows.
//   - Event.Escalation: the message to send to a second contact as well
//     ("Still not reconnected after 14 days: your Gusto payroll
//     connection"), which asks to forward it to whoever looks after
//     payroll.
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
