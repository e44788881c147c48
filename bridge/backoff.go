package bridge

import (
	"math/rand/v2"
	"time"
)

// backoffBase is the ceiling of the first retry delay; backoffMax is the
// cap of a backoff that names none.
const (
	backoffBase = 100 * time.Millisecond
	backoffMax  = time.Minute
)

// backoff spaces the retries of every loop in the bridge that reconnects
// or asks again (job server connections, polls, triggers). The ceiling
// doubles from backoffBase up to max; each delay is drawn at random from
// the upper half of the ceiling ("equal jitter"). The jitter keeps the
// hundreds of executor workers that lost the same job server from
// reconnecting in lock-step; the lower half bound keeps a retry from ever
// spinning.
type backoff struct {
	max  time.Duration // the cap; 0 means backoffMax
	ceil time.Duration // the current ceiling, 0 before the first retry
	// rand returns a number in [0, n); nil means math/rand/v2 (safe for
	// concurrent use and seeded per process).
	rand func(n int64) int64
}

// next returns the delay before the next retry.
func (b *backoff) next() time.Duration {
	if b.ceil == 0 {
		b.ceil = backoffBase
	} else {
		b.ceil *= 2
	}
	limit := b.max
	if limit <= 0 {
		limit = backoffMax
	}
	b.ceil = min(b.ceil, limit)
	half := b.ceil / 2
	random := rand.Int64N
	if b.rand != nil {
		random = b.rand
	}
	return b.ceil - half + time.Duration(random(int64(half)+1))
}

// reset starts over after a success.
func (b *backoff) reset() { b.ceil = 0 }
