package main

import (
	"time"

	"github.com/gearbridge/gearbridge/bridge"
	"github.com/gearbridge/gearbridge/server"
)

// defaultReadyMasterOutage is how long a Jenkins master may be unreachable
// before /readyz fails: longer than a Jenkins restart, so that routine
// restarts do not take gearbridge out of service.
const defaultReadyMasterOutage = 5 * time.Minute

// showBridge puts the bridge's fleet on the status page and /api/status,
// and its masters into /readyz.
func showBridge(srv *server.Server, b *bridge.Bridge, maxOutage time.Duration) {
	srv.SetFleet(b.Fleet)
	srv.AddReadyCheck("jenkins", func() error { return b.Ready(maxOutage) })
}
