package sqlstore

// ListQueries returns the SQL of s's two listings (by Since, by Due), for
// TestExplain.
func ListQueries(s *Store) (since, due string, err error) {
	q, err := s.init()
	if err != nil {
		return "", "", err
	}
	return q.listSince, q.listDue, nil
}
