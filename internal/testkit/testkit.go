// Package testkit holds test helpers that more than one package's tests
// use: the soaks' seed, and the check of an accepted socket's keep-alive
// options.
package testkit

import (
	"os"
	"strconv"
	"testing"
	"time"
)

// SoakSeed skips the test unless GB_SOAK is set (make soak), and returns
// the seed of its random choices: GB_SOAK_SEED, or a new one, logged so
// that a failing run can be replayed.
func SoakSeed(t testing.TB) uint64 {
	t.Helper()
	if os.Getenv("GB_SOAK") == "" {
		t.Skip("a randomized soak; run it with GB_SOAK=1 (make soak)")
	}
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("GB_SOAK_SEED"); s != "" {
		var err error
		if seed, err = strconv.ParseUint(s, 10, 64); err != nil {
			t.Fatalf("GB_SOAK_SEED: %v", err)
		}
	}
	t.Logf("seed %d (GB_SOAK_SEED replays it)", seed)
	return seed
}
