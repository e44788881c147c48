package bridge

import (
	"slices"
	"testing"
	"time"
)

// After a job server restart, 400 executor workers start their backoffs
// at the same instant: their delays must not be equal, or they all
// reconnect in the same millisecond, and again at every retry.
func TestBackoffSpreadsWorkersThatFailTogether(t *testing.T) {
	const workers = 400
	for retry := 1; retry <= 3; retry++ {
		bos := make([]backoff, workers)
		delays := make([]time.Duration, workers)
		for i := range bos {
			bos[i].max = 10 * time.Second
			for range retry {
				delays[i] = bos[i].next()
			}
		}
		slices.Sort(delays)
		distinct := len(slices.Compact(slices.Clone(delays)))
		spread := delays[len(delays)-1] - delays[0]
		ceil := backoffBase << (retry - 1)
		// 400 uniform draws over [ceil/2, ceil] cover most of it.
		if distinct < workers*9/10 || spread < ceil/4 {
			t.Errorf("retry %d: %d distinct delays from %v to %v; want them spread over [%v, %v]",
				retry, distinct, delays[0], delays[len(delays)-1], ceil/2, ceil)
		}
	}
}

// Each delay lies in the upper half of a ceiling that doubles up to max:
// it grows, never exceeds max, and never drops to a spin; reset starts over.
func TestBackoffGrowsWithinBounds(t *testing.T) {
	for _, max := range []time.Duration{10 * time.Second, 2 * time.Second, 150 * time.Millisecond, 0} {
		for _, draw := range []func(int64) int64{
			func(int64) int64 { return 0 },       // the lowest delays
			func(n int64) int64 { return n - 1 }, // the highest
			nil,                                  // random
		} {
			b := backoff{max: max, rand: draw}
			limit := max
			if limit == 0 {
				limit = backoffMax
			}
			for round := 0; round < 2; round++ {
				ceil := time.Duration(0)
				for i := 0; i < 16; i++ {
					if ceil == 0 {
						ceil = backoffBase
					} else {
						ceil = min(2*ceil, limit)
					}
					ceil = min(ceil, limit)
					d := b.next()
					if d < ceil-ceil/2 || d > ceil || d > limit {
						t.Fatalf("max %v, retry %d: delay %v outside [%v, %v]", max, i+1, d, ceil-ceil/2, ceil)
					}
				}
				if ceil != limit {
					t.Fatalf("max %v: ceiling %v after 16 retries", max, ceil)
				}
				b.reset()
			}
		}
	}
}
