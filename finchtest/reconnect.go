package finchtest

import (
	"errors"
	"slices"
)

// NextReconnect is what the next reconnect of a connection changes besides
// healing it: the products granted, who authenticated, which entities the
// connection covers. See SetNextReconnect.
type NextReconnect struct {
	// GrantOnly limits the products granted: the new token gets the
	// products asked for (a session's or a classic link's products, or the
	// connection's for a code from IssueCode) that GrantOnly lists, in the
	// order asked, as when the employer unticks some in Connect. The
	// exchange's products and /introspect's then say so. If nil, every
	// product asked for is granted.
	GrantOnly []string

	// Username is who authenticates this time (another admin, because the
	// first one left); /introspect reports it from then on. If empty, the
	// username stays.
	Username string

	// AddEntities are entities the connection gains. Their zero fields are
	// filled as AddConnection fills them; they are listed in the exchange's
	// entity_ids and in /introspect.
	AddEntities []Entity

	// RemoveEntities are the ids of entities the connection loses. Finch
	// says a re-authentication never removes entities (POST
	// /disconnect-entity does); this lets a test check that a library
	// survives it all the same. Unknown ids are ignored.
	RemoveEntities []string
}

// SetNextReconnect sets what the next reconnect of a connection changes:
// it applies when the next code of the connection is exchanged at POST
// /auth/token (from Approve, a Connect session or IssueCode), then it is
// spent. It replaces an earlier NextReconnect not yet spent. Status changes
// of the reconnect send their webhooks as usual; gaining or losing an
// entity sends none.
//
// It reports an error, and changes nothing, for an unknown or disconnected
// connection, or when RemoveEntities would leave it no entity.
func (s *Server) SetNextReconnect(connectionID string, r NextReconnect) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	cs, ok := s.conns[connectionID]
	if !ok || cs.disconnected {
		return errors.New("finchtest: SetNextReconnect: no such connection, or it was disconnected")
	}
	kept := slices.DeleteFunc(slices.Clone(cs.conn.Entities), func(en Entity) bool {
		return slices.Contains(r.RemoveEntities, en.ID)
	})
	if len(kept)+len(r.AddEntities) == 0 {
		return errors.New("finchtest: SetNextReconnect would leave the connection no entity")
	}
	r.GrantOnly = slices.Clone(r.GrantOnly)
	r.AddEntities = slices.Clone(r.AddEntities)
	r.RemoveEntities = slices.Clone(r.RemoveEntities)
	cs.next = &r
	return nil
}

// applyReconnectLocked makes the changes of r to cs, whose products are
// those asked for. s.mu must be held.
func (s *Server) applyReconnectLocked(cs *connState, r *NextReconnect) {
	c := &cs.conn
	if r.GrantOnly != nil {
		c.Products = slices.DeleteFunc(c.Products, func(p string) bool { return !slices.Contains(r.GrantOnly, p) })
	}
	if r.Username != "" {
		c.Username = r.Username
	}
	c.Entities = slices.DeleteFunc(c.Entities, func(en Entity) bool { return slices.Contains(r.RemoveEntities, en.ID) })
	for _, en := range r.AddEntities {
		s.seq++
		if en.ID == "" {
			en.ID = hashID(c.ID, "added entity", s.seq)
		}
		if en.Name == "" {
			en.Name = c.CustomerName
		}
		c.Entities = append(c.Entities, en)
	}
}
