package finchreauth

import (
	"slices"
	"strings"
)

// Drift is what changed in a connection across a reconnect: what
// /introspect said of it with the old token and with the new one. Whoever
// re-authenticates may not be the admin who connected first (the first one
// left), may grant fewer products, and a provider may merge or split
// entities; the application learns of it with the Reconnection, not from a
// sync that returns less. Fields are set only for what changed.
type Drift struct {
	// ProviderBefore and ProviderAfter are set when the provider changed.
	ProviderBefore string `json:"provider_before,omitempty"`
	ProviderAfter  string `json:"provider_after,omitempty"`
	// UsernameBefore and UsernameAfter are set when another user
	// authenticated.
	UsernameBefore string `json:"username_before,omitempty"`
	UsernameAfter  string `json:"username_after,omitempty"`
	// EntitiesMissing were connected before and are not now;
	// EntitiesAdded are new.
	EntitiesMissing []string `json:"entities_missing,omitempty"`
	EntitiesAdded   []string `json:"entities_added,omitempty"`
	// ProductsLost were granted before and are not now; ProductsGained
	// are new.
	ProductsLost   []string `json:"products_lost,omitempty"`
	ProductsGained []string `json:"products_gained,omitempty"`
	// AssistedChanged: the connection became assisted, or stopped being
	// (Assisted is what it is now).
	AssistedChanged bool `json:"assisted_changed,omitempty"`
	Assisted        bool `json:"assisted,omitempty"`
}

// drift compares what Finch said before and after; nil when either is
// unknown or nothing changed.
func drift(before, after *Connection) *Drift {
	if before == nil || after == nil {
		return nil
	}
	var d Drift
	if before.ProviderID != after.ProviderID && before.ProviderID != "" && after.ProviderID != "" {
		d.ProviderBefore, d.ProviderAfter = before.ProviderID, after.ProviderID
	}
	if before.Username != after.Username && before.Username != "" && after.Username != "" {
		d.UsernameBefore, d.UsernameAfter = before.Username, after.Username
	}
	ids := func(c *Connection) []string {
		var out []string
		for _, e := range c.Entities {
			out = append(out, e.ID)
		}
		return out
	}
	d.EntitiesMissing, d.EntitiesAdded = difference(ids(before), ids(after)), difference(ids(after), ids(before))
	d.ProductsLost, d.ProductsGained = difference(before.Products, after.Products), difference(after.Products, before.Products)
	if before.Assisted != after.Assisted {
		d.AssistedChanged, d.Assisted = true, after.Assisted
	}
	if d.empty() {
		return nil
	}
	return &d
}

func (d *Drift) empty() bool {
	return d.ProviderAfter == "" && d.UsernameAfter == "" && len(d.EntitiesMissing)+len(d.EntitiesAdded)+len(d.ProductsLost)+len(d.ProductsGained) == 0 && !d.AssistedChanged
}

// String says what changed, for the timeline.
func (d *Drift) String() string {
	var parts []string
	add := func(what string, xs []string) {
		if len(xs) > 0 {
			parts = append(parts, what+" "+strings.Join(xs, ", "))
		}
	}
	if d.ProviderAfter != "" {
		parts = append(parts, "provider "+d.ProviderBefore+" -> "+d.ProviderAfter)
	}
	if d.UsernameAfter != "" {
		parts = append(parts, "another user authenticated")
	}
	add("entities missing:", d.EntitiesMissing)
	add("entities added:", d.EntitiesAdded)
	add("products lost:", d.ProductsLost)
	add("products gained:", d.ProductsGained)
	if d.AssistedChanged {
		parts = append(parts, "assisted changed")
	}
	return strings.Join(parts, "; ")
}

// difference is a's elements that b lacks, sorted.
func difference(a, b []string) []string {
	var out []string
	for _, x := range a {
		if !slices.Contains(b, x) && !slices.Contains(out, x) {
			out = append(out, x)
		}
	}
	slices.Sort(out)
	return out
}
