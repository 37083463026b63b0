package message_test

import (
	"testing"
	"time"

	"github.com/finchkit/finchreauth/message"
)

func TestProductName(t *testing.T) {
	for product, want := range map[string]string{
		"company":               "company information",
		"directory":             "employee directory",
		"individual":            "employee personal details",
		"employment":            "employment and income details",
		"payment":               "payroll payments",
		"pay_statement":         "pay statements",
		"benefits":              "benefits",
		"ssn":                   "Social Security numbers",
		"deduction":             "deductions and contributions",
		"documents":             "employee documents",
		"time_off":              "time off",
		"org_chart_v2":          "org chart v2",
		" directory ":           "employee directory",
		"":                      "",
		"time_off\r\nBcc: x":    "time off Bcc: x",
		"org\x1b[2J\u202echart": "org [2J chart",
	} {
		if got := message.ProductName(product); got != want {
			t.Errorf("ProductName(%q) = %q, want %q", product, got, want)
		}
	}
}

func TestFormatAge(t *testing.T) {
	for _, tt := range []struct {
		d    time.Duration
		want string
	}{
		{-time.Hour, "less than a minute"},
		{0, "less than a minute"},
		{59 * time.Second, "less than a minute"},
		{time.Minute, "1 minute"},
		{59*time.Minute + 59*time.Second, "59 minutes"},
		{time.Hour, "1 hour"},
		{23*time.Hour + 59*time.Minute, "23 hours"},
		{24 * time.Hour, "1 day"},
		{47 * time.Hour, "1 day"},
		{72*time.Hour + 15*time.Minute, "3 days"},
		{400 * 24 * time.Hour, "400 days"},
	} {
		if got := message.FormatAge(tt.d); got != tt.want {
			t.Errorf("FormatAge(%v) = %q, want %q", tt.d, got, tt.want)
		}
	}
}
