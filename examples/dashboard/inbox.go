package main

import (
	"context"
	"fmt"
	"strings"
	"sync"

	"github.com/finchkit/finchreauth"
	"github.com/finchkit/finchreauth/message"
)

// inbox is the demo's Notifier: where a real application would send an
// e-mail, it keeps the message, so that the inbox page can show it.
type inbox struct {
	activity *activity

	mu    sync.Mutex
	mails []mail
}

// mail is one message the Notifier sent.
type mail struct {
	N     int // 1 for the first message the inbox received
	To    string
	Event finchreauth.Event
	message.Message
}

// Kind says what the message is: the episode's first notification or its
// n-th reminder; a request's (an upgrade, a campaign), or its reminder.
func (m mail) Kind() string {
	what := "Notification"
	switch m.Event.Request {
	case "upgrade":
		what = "Upgrade request"
	case "campaign":
		what = "Campaign"
	}
	switch {
	case m.Event.Reminder == 0:
		return what
	case m.Event.Request != "":
		return fmt.Sprintf("%s, reminder %d", what, m.Event.Reminder)
	}
	return fmt.Sprintf("Reminder %d", m.Event.Reminder)
}

// Fix is where the employer fixes the connection: "connect" or "payroll"
// (message.Data.Fix).
func (m mail) Fix() string { return message.NewData(m.Event).Fix }

// Notify implements finchreauth.Notifier. The Transport calls it once per
// notification across every process sharing the Store; a call that failed
// after its message went out is made again, so a mailer uses the episode
// and the reminder number as an idempotency key, as this one does.
func (in *inbox) Notify(_ context.Context, e finchreauth.Event) error {
	m, err := message.Render(e)
	if err != nil {
		return err
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	for _, old := range in.mails {
		if old.Event.Episode == e.Episode && old.Event.Reminder == e.Reminder {
			return nil // sent already
		}
	}
	in.mails = append(in.mails, mail{N: len(in.mails) + 1, To: e.Connection.CustomerEmail, Event: e, Message: m})
	in.activity.add("Notifier", "%s to %s (%s, source %q): %q", kind(e), e.Connection.CustomerEmail, e.Connection.CustomerName, e.Source, m.Subject)
	return nil
}

func kind(e finchreauth.Event) string {
	return mail{Event: e}.Kind()
}

// all returns the messages, newest first.
func (in *inbox) all() []mail {
	in.mu.Lock()
	defer in.mu.Unlock()
	out := make([]mail, len(in.mails))
	for i, m := range in.mails {
		out[len(out)-1-i] = m
	}
	return out
}

func (in *inbox) count() int {
	in.mu.Lock()
	defer in.mu.Unlock()
	return len(in.mails)
}

// srcdoc prepares a message's HTML body for an <iframe srcdoc>: links open
// in the top window, as they would from a mail client, and not inside the
// frame.
func srcdoc(html string) string {
	if i := strings.Index(html, "<head>"); i >= 0 {
		i += len("<head>")
		return html[:i] + `<base target="_top">` + html[i:]
	}
	return `<base target="_top">` + html
}
