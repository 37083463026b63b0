package message

import "github.com/finchkit/finchreauth"

// Message is a notification ready to send.
type Message struct {
	// Subject is one line: Render collapses its white space, line breaks
	// included, to single spaces.
	Subject string
	// Text is the plain-text body and HTML the HTML body of an e-mail
	// (a whole document, with inline styles and no external resources).
	Text, HTML string
}

// Render returns the message for e made with the default templates. It is
// safe for concurrent use.
func Render(e finchreauth.Event) (Message, error) {
	return (*Templates)(nil).Render(e)
}
