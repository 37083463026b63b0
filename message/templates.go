package message

import (
	"bytes"
	"embed"
	"fmt"
	htmltemplate "html/template"
	"io"
	"io/fs"
	"strings"
	texttemplate "text/template"

	"github.com/finchkit/finchreauth"
)

//go:embed templates/*.tmpl
var defaultFiles embed.FS

// The default templates, parsed once. They are never modified after
// parsing, and executing a template is safe for concurrent use.
var (
	defaultSubject = texttemplate.Must(texttemplate.ParseFS(defaultFiles, "templates/subject.tmpl"))
	defaultText    = texttemplate.Must(texttemplate.ParseFS(defaultFiles, "templates/text.tmpl"))
	defaultHTML    = htmltemplate.Must(htmltemplate.ParseFS(defaultFiles, "templates/html.tmpl"))
)

// Defaults returns the default templates, to copy as a starting point:
// subject.tmpl and text.tmpl (text/template) and html.tmpl (html/template).
// They use only the fields of Data and the templates' built-in functions, so
// they parse without a FuncMap:
//
//	html, err := htmltemplate.ParseFS(message.Defaults(), "html.tmpl")
func Defaults() fs.FS {
	sub, err := fs.Sub(defaultFiles, "templates")
	if err != nil {
		panic(err) // unreachable: "templates" is a valid path
	}
	return sub
}

// Templates renders messages. Each template is executed (Execute, not
// ExecuteTemplate) with the Data of the Event; a nil field means the default
// template, so the zero value renders the default message. A Templates is
// safe for concurrent use once its fields are set.
type Templates struct {
	// Subject renders the subject line; its white space, line breaks
	// included, is collapsed to single spaces. If nil, the default is used.
	Subject *texttemplate.Template
	// Text renders the plain-text body. If nil, the default is used.
	Text *texttemplate.Template
	// HTML renders the HTML body. If nil, the default is used.
	HTML *htmltemplate.Template
}

// Render returns the message for e. A nil *Templates renders the default
// message. An error comes from executing a template: it names the template
// ("message: HTML template: ...") and wraps the template's error.
func (t *Templates) Render(e finchreauth.Event) (Message, error) {
	d := NewData(e)
	var m Message
	var err error
	if m.Subject, err = execute(t.subject(), "subject", d); err != nil {
		return Message{}, err
	}
	m.Subject = strings.Join(strings.Fields(m.Subject), " ")
	if m.Text, err = execute(t.text(), "text", d); err != nil {
		return Message{}, err
	}
	if m.HTML, err = execute(t.html(), "HTML", d); err != nil {
		return Message{}, err
	}
	return m, nil
}

// executor is what the text and HTML templates have in common.
type executor interface {
	Execute(w io.Writer, data any) error
}

func execute(tmpl executor, which string, d Data) (string, error) {
	var b bytes.Buffer
	if err := tmpl.Execute(&b, d); err != nil {
		return "", fmt.Errorf("message: %s template: %w", which, err)
	}
	return b.String(), nil
}

func (t *Templates) subject() *texttemplate.Template {
	if t == nil || t.Subject == nil {
		return defaultSubject
	}
	return t.Subject
}

func (t *Templates) text() *texttemplate.Template {
	if t == nil || t.Text == nil {
		return defaultText
	}
	return t.Text
}

func (t *Templates) html() *htmltemplate.Template {
	if t == nil || t.HTML == nil {
		return defaultHTML
	}
	return t.HTML
}
