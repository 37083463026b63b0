package message

import (
	"fmt"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// ProductName returns a Finch product in words, as the customer knows it:
// "pay statements" for "pay_statement". A product it does not know shows
// with underscores as spaces, and every control or format character (a
// line break, an escape, a bidi override) as a space: it shows in a
// subject and a text body as plain words.
func ProductName(product string) string {
	switch product = strings.TrimSpace(product); product {
	case "company":
		return "company information"
	case "directory":
		return "employee directory"
	case "individual":
		return "employee personal details"
	case "employment":
		return "employment and income details"
	case "payment":
		return "payroll payments"
	case "pay_statement":
		return "pay statements"
	case "benefits":
		return "benefits"
	case "ssn":
		return "Social Security numbers"
	case "deduction":
		return "deductions and contributions"
	case "documents":
		return "employee documents"
	}
	return strings.Join(strings.Fields(strings.Map(func(r rune) rune {
		if r == '_' || unicode.IsControl(r) || unicode.Is(unicode.Cf, r) {
			return ' '
		}
		return r
	}, product)), " ")
}

// FormatAge returns a duration in words, rounded down to its largest unit:
// "less than a minute", "1 minute", "5 hours", "3 days".
func FormatAge(d time.Duration) string {
	switch {
	case d >= 24*time.Hour:
		return plural(int64(d/(24*time.Hour)), "day")
	case d >= time.Hour:
		return plural(int64(d/time.Hour), "hour")
	case d >= time.Minute:
		return plural(int64(d/time.Minute), "minute")
	}
	return "less than a minute"
}

func plural(n int64, unit string) string {
	if n == 1 {
		return "1 " + unit
	}
	return fmt.Sprintf("%d %ss", n, unit)
}

// providerName returns a provider id's display name: a common provider's
// name as it writes it, or the id with underscores as spaces and each word
// capitalised.
func providerName(id string) string {
	switch id = strings.TrimSpace(id); id {
	case "adp_run":
		return "ADP Run"
	case "adp_workforce_now":
		return "ADP Workforce Now"
	case "bamboo_hr":
		return "BambooHR"
	case "quickbooks":
		return "QuickBooks"
	case "trinet":
		return "TriNet"
	}
	words := strings.Fields(strings.ReplaceAll(id, "_", " "))
	for i, w := range words {
		r, n := utf8.DecodeRuneInString(w)
		words[i] = string(unicode.ToUpper(r)) + w[n:]
	}
	return strings.Join(words, " ")
}
