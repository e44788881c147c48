// Package jenkinstest is an in-process Jenkins for tests: the REST API the
// gearbridge Jenkins bridge uses, served by an httptest server, with a Go
// control API and an injectable clock. It is test support, not part of the
// product binary; cmd emulator serves it from a YAML scenario for manual use.
//
// # Starting
//
//	clock := jenkinstest.NewFakeClock(time.Time{})            // optional
//	e := jenkinstest.New(t, jenkinstest.WithClock(clock))     // closed by t.Cleanup
//	token := e.AddUser("gearbridge", "secret")                // turns security on
//	e.AddNode(jenkinstest.NodeSpec{Name: "n1", Labels: []string{"linux"}, Executors: 2})
//	e.AddJob(jenkinstest.JobSpec{Name: "folder/job", Label: "linux",
//		Params: []jenkinstest.ParamSpec{{Name: "ZUUL_UUID"}}, Concurrent: true,
//		Duration: time.Second})
//	// talk to e.URL with user "gearbridge" and password token
//
// Options: WithVersion (VersionCurrent by default, VersionLegacy for the
// pre-2.94 JSON), WithQuietPeriod (5 s), WithLeftItemTTL (5 min),
// WithStopDelay (100 ms), WithQueueLag, WithAnonymousRead, WithCrumbs,
// WithLogger, WithRequestLogLimit.
//
// # Model
//
// Nodes: the built-in node (name "", 0 executors until ConfigureBuiltIn)
// and agents (AddNode, RemoveNode, SetNodeConnected, SetNodeOffline,
// SetNodeLabels, SetNodeMode, SetNodeExecutors). Jobs, in folders when the
// name has slashes (AddJob, AddFolder, RemoveJob, SetJobDisabled,
// SetJobLabel), with label expressions (ParseLabel), parameter definitions
// (string, text, boolean, choice, and the NodeLabel plugin's node and label
// parameters, which pin a build), and outcomes: each build takes the next
// queued Outcome (SetOutcomes) or the job's Duration/Result. A zero
// duration ends the build as it starts.
//
// The queue follows Jenkins: quiet period (delay=0sec skips it), merging of
// equal requests, blocked / buildable with Jenkins' why texts, build numbers
// assigned at start, left items that keep executable or cancelled for the
// TTL and then 404. HTTP triggers are started by a scheduler goroutine
// after the reply (poll for the start); Go API changes run maintenance at
// once unless WithQueueLag is set. Maintain forces a pass.
//
// Placement follows Jenkins' default load balancer, a consistent hash of
// the job's full name over the nodes that can take it: an unpinned build of
// a job lands on the same node whenever that node is idle, whichever
// executor the client had in mind (PlacementOrder tells where, so a test can
// choose names for which a missing pin shows). A node or label parameter
// value, or the script console's LabelAssignmentAction, pins the build.
//
// Builds: HoldBuilds(pattern) makes new builds of matching jobs run until
// Release(pattern), FinishBuild, a stop, or a restart. Stop is
// asynchronous (WithStopDelay). Builds, RunningBuilds and BuildRecord
// report them. Restart aborts running builds and forgets left items and
// sessions. SetQuietingDown blocks starts.
//
// Pipeline jobs (JobSpec.Pipeline): a WorkflowJob has no label of its own;
// its runs (WorkflowRun, no builtOn) are flyweight: they start on a one-off
// executor of the built-in node, listed in its computer's oneOffExecutors,
// even with no executor free anywhere, and resume after Restart. A crash
// Restart ends other builds ABORTED from 2.447 and FAILURE before
// (WithRestartResult overrides). WithLeftItemGap makes a started item's
// LeftItem show executable: null, cancelled: false for a moment.
//
// # Assertions
//
// QueueItems (the current queue), QueueHistory (every item ever) and
// WaitedItems: an item that was due but could not start at once records
// why (QueueRecord.WaitReasons) and for how long (ExecutorWait), so a bridge
// test can assert that none of its builds waited in Jenkins' queue for an
// executor. QueueRecord.User tells bridge-triggered items from native ones
// (Trigger queues a native build).
//
// Requests returns the request log, CountRequests counts entries matching
// "METHOD /path" patterns; InjectFault makes matching requests fail with a
// status, a delay on the emulator's clock, or a connection reset (before
// handling, or after it: a lost reply), for a number of times or until
// removed.
//
// # HTTP surface
//
// GET /api/json, /crumbIssuer/api/json, /whoAmI/api/json, /computer/api/json,
// /computer/<name|(built-in)|(master)>/api/json, /computer/<name>/config.xml,
// /label/<expr>/api/json, /job/<a>/job/<b>/api/json and config.xml,
// /job/.../<n|lastBuild|...>/api/json, /queue/api/json,
// /queue/item/<id>/api/json. POST /job/.../build, buildWithParameters,
// enable, disable, /job/.../<n>/stop, submitDescription,
// /queue/cancelItem?id=, /computer/<name>/toggleOffline and
// changeOfflineCause, /quietDown, /cancelQuietDown. Every object carries
// _class; tree= (a,b[c]{m,n}) and depth= prune as Stapler does; every reply
// has X-Jenkins; redirects are absolute; status codes follow the version
// profile. Security: Basic auth with a password or an API token (401 when
// wrong, 403 for anonymous unless WithAnonymousRead), crumbs bound to the
// session cookie and user, API-token requests exempt from 2.96.
//
// Permissions: every user may do everything until a test restricts one
// (GrantPermissions, DenyPermission, AllowAll); then a POST that needs
// Job/Build, Job/Cancel, Run/Update, Computer/Disconnect or
// Overall/RunScripts without it gets 403 "<user> is missing the <perm>
// permission". POST /scriptText runs no Groovy: it accepts only the
// gearbridge bridge's trigger script (TriggerScript with a base64 JSON
// request), queues the build pinned to the node with every parameter, and
// prints "gearbridge-queue-item: <id> created|existing"; any other script
// fails as a throwing script does in Jenkins (200 and a stack trace).
package jenkinstest
