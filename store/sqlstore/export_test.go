package sqlstore

// ListQueries returns the SQL of s's three listings (by Since, by Due, every
// record by id), for TestExplain.
func ListQueries(s *Store) (since, due, every string, err error) {
	q, err := s.init()
	if err != nil {
		return "", "", "", err
	}
	return q.listSince, q.listDue, q.listEvery, nil
}
