package storebench

import (
	"sync"
	"sync/atomic"
)

// each calls fn(i) for every i in [0, n), on workers goroutines, and
// returns the first error; a worker whose call failed stops, the others go
// on to the end.
func each(n, workers int, fn func(i int) error) error {
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for range workers {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				if err := fn(i); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	return <-errs
}
