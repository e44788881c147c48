package server

import (
	"bytes"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/gearbridge/gearbridge"
	"github.com/gearbridge/gearbridge/protocol"
)

// VersionString is what the admin `version` command reports: gearmand's
// protocol level and our release.
func VersionString() string { return "1.1.20+gearbridge-" + gearbridge.Version }

// handleAdmin answers one text admin line, byte for byte as gearmand 1.1.20
// does where gearmand is sane. Listings end in "\n", OK and ERR lines in
// "\r\n": gearadmin and Zuul depend on both. s.mu must be held.
func (s *Server) handleAdmin(c *session, line []byte) {
	s.metrics.adminCommands.Inc()
	args := protocol.AdminFields(line)
	cmd := ""
	if len(args) > 0 {
		cmd = strings.ToLower(args[0])
	}
	var out []byte
	switch cmd {
	case "status":
		out = s.adminStatus()
	case "prioritystatus":
		out = s.adminPriorityStatus()
	case "workers":
		out = s.adminWorkers()
	case "version":
		out = []byte("OK " + VersionString() + "\n")
	case "getpid":
		out = []byte("OK " + strconv.Itoa(os.Getpid()) + "\n")
	case "verbose":
		out = []byte("OK " + s.cfg.VerboseLevel + "\n")
	case "maxqueue":
		out = s.adminMaxQueue(args)
	case "show":
		out = s.adminShow(args)
	case "cancel":
		out = s.adminCancel(args)
	case "create":
		out = s.adminCreate(args)
	case "drop":
		out = s.adminDrop(args)
	case "shutdown":
		out = s.adminShutdown(c, args)
	default:
		out = []byte("ERR UNKNOWN_COMMAND Unknown+server+command" + firstOr(args) + "\r\n")
	}
	s.send(c, out)
}

func firstOr(args []string) string {
	if len(args) == 0 {
		return ""
	}
	return args[0]
}

func invalidArguments(cmd string) []byte {
	return []byte("ERR INVALID_ARGUMENTS An+incomplete+set+of+arguments+was+sent+to+this+command+" + cmd + "\r\n")
}

func (s *Server) sortedFunctions() []*function {
	fns := make([]*function, 0, len(s.functions))
	for _, f := range s.functions {
		fns = append(fns, f)
	}
	slices.SortFunc(fns, func(a, b *function) int { return strings.Compare(a.name, b.name) })
	return fns
}

// adminStatus is the `status` table: per function, jobs (queued and
// running), running jobs and workers.
func (s *Server) adminStatus() []byte {
	return s.functionTable(func(f *function) []int {
		return []int{f.total(), f.running, len(f.workers)}
	})
}

// adminPriorityStatus is the `prioritystatus` table: per function, queued
// jobs by priority (high, normal, low) and workers.
func (s *Server) adminPriorityStatus() []byte {
	return s.functionTable(func(f *function) []int {
		q := f.queuedByPriority()
		return append(q[:], len(f.workers))
	})
}

// functionTable is one line per function, sorted: its name and the numbers
// cols gives, tab-separated; then the "." line.
func (s *Server) functionTable(cols func(*function) []int) []byte {
	var b bytes.Buffer
	for _, f := range s.sortedFunctions() {
		b.WriteString(f.name)
		for _, n := range cols(f) {
			b.WriteByte('\t')
			b.WriteString(strconv.Itoa(n))
		}
		b.WriteByte('\n')
	}
	b.WriteString(".\n")
	return b.Bytes()
}

func (s *Server) adminWorkers() []byte {
	var b bytes.Buffer
	for _, w := range s.workerList() {
		b.WriteString(strconv.FormatUint(w.ID, 10))
		b.WriteByte(' ')
		b.WriteString(w.Peer)
		b.WriteByte(' ')
		b.WriteString(w.ClientID)
		b.WriteString(" :")
		for _, name := range w.Functions {
			b.WriteByte(' ')
			b.WriteString(name)
		}
		b.WriteByte('\n')
	}
	b.WriteString(".\n")
	return b.Bytes()
}

// workerList is every connection, by ID, with its functions newest first
// (as gearmand lists them): what `workers` and /api/status show.
func (s *Server) workerList() []WorkerStatus {
	ids := make([]uint64, 0, len(s.sessions))
	for id := range s.sessions {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	list := make([]WorkerStatus, 0, len(ids))
	for _, id := range ids {
		c := s.sessions[id]
		w := WorkerStatus{ID: c.id, Peer: c.remote, ClientID: c.clientID, Functions: make([]string, 0, len(c.abilityLog))}
		for i := len(c.abilityLog) - 1; i >= 0; i-- {
			w.Functions = append(w.Functions, c.abilityLog[i].name)
		}
		list = append(list, w)
	}
	return list
}

// adminMaxQueue: `maxqueue fn [n]` sets one limit for every priority,
// `maxqueue fn high normal low` one each; a size <= 0 means no limit.
func (s *Server) adminMaxQueue(args []string) []byte {
	if len(args) < 2 {
		return invalidArguments("maxqueue")
	}
	var sizes [gearbridge.NumPriorities]int
	switch len(args) {
	case 2:
	case 3:
		n, _ := strconv.Atoi(args[2])
		sizes = [3]int{n, n, n}
	default:
		for i := 0; i < 3 && 2+i < len(args); i++ {
			sizes[i], _ = strconv.Atoi(args[2+i])
		}
	}
	// gearmand silently ignores unknown functions; so do we.
	if f := s.functions[args[1]]; f != nil {
		for i, n := range sizes {
			f.maxQueue[i] = max(n, 0)
		}
	}
	return []byte("OK\r\n")
}

func (s *Server) adminShow(args []string) []byte {
	switch {
	case len(args) == 2 && strings.EqualFold(args[1], "jobs"):
		var b bytes.Buffer
		for _, j := range s.sortedJobs() {
			retries := j.Attempts
			if j.state == stateRunning && retries > 0 {
				retries-- // the try in progress is not a retry
			}
			ignored := "0"
			if j.cancelled || (!j.detached && len(j.listeners) == 0) {
				ignored = "1"
			}
			// Column 4 is gearmand's job_queued, per job and whatever the
			// durability: set for a job handed to its queue store (every
			// background submit, even with the in-memory queue) and for
			// every job replayed at start-up; cleared by `cancel job`.
			// Foreground jobs show 0 although gearbridge stores them too.
			queued := "0"
			if (j.Background || j.restored) && !j.cancelled {
				queued = "1"
			}
			b.WriteString(j.Handle + "\t" + strconv.FormatUint(uint64(retries), 10) + "\t" + ignored + "\t" + queued + "\n")
		}
		b.WriteString(".\n")
		return b.Bytes()
	case len(args) == 3 && strings.EqualFold(args[1], "unique") && strings.EqualFold(args[2], "jobs"):
		var b bytes.Buffer
		for _, j := range s.sortedJobs() {
			b.WriteString(j.Unique + "\n")
		}
		b.WriteString(".\n")
		return b.Bytes()
	}
	return []byte("ERR UNKNOWN_SHOW_ARGUMENTS\r\n")
}

func (s *Server) sortedJobs() []*job {
	jobs := make([]*job, 0, len(s.jobs))
	for _, j := range s.jobs {
		jobs = append(jobs, j)
	}
	slices.SortFunc(jobs, func(a, b *job) int {
		switch {
		case a.ID < b.ID:
			return -1
		case a.ID > b.ID:
			return 1
		}
		return 0
	})
	return jobs
}

// adminCancel: `cancel job <handle>`. A queued job is removed at once and
// its clients get WORK_FAIL. A running job keeps running in its worker, but
// its clients get WORK_FAIL now and its result goes nowhere.
func (s *Server) adminCancel(args []string) []byte {
	if len(args) < 3 {
		return []byte("ERR UNKNOWN_COMMAND Unknown+server+commandcancel\r\n")
	}
	if !strings.EqualFold(args[1], "job") {
		return []byte("ERR UNKNOWN_ERROR\r\n")
	}
	j := s.jobs[args[2]]
	if j == nil || j.state == stateDone || j.cancelled {
		return []byte("ERR UNKNOWN_JOB\r\n")
	}
	s.forward(j, protocol.WorkFail, []byte(j.Handle))
	s.metrics.cancelled.Inc()
	if j.state == stateRunning {
		j.cancelled = true
		s.dropListeners(j)
		s.store.Remove(j.ID)
		return []byte("OK\r\n")
	}
	s.finish(j)
	return []byte("OK\r\n")
}

func (s *Server) adminCreate(args []string) []byte {
	if len(args) != 3 || !strings.EqualFold(args[1], "function") {
		return invalidArguments("create")
	}
	if len(args[2]) > maxFunction {
		return []byte("ERR CREATE_FUNCTION " + args[2][:maxFunction] + "\r\n")
	}
	s.function(args[2])
	return []byte("OK\r\n")
}

// adminDrop refuses to drop a function that still has queued jobs:
// gearmand drops it and leaves those jobs dangling.
func (s *Server) adminDrop(args []string) []byte {
	if len(args) != 3 || !strings.EqualFold(args[1], "function") {
		return invalidArguments("drop")
	}
	for name, f := range s.functions {
		if !strings.EqualFold(name, args[2]) {
			continue
		}
		if len(f.workers) > 0 || f.running > 0 {
			return []byte("ERR there are still connected workers or executing clients\r\n")
		}
		if f.queued()+f.pending > 0 {
			return []byte("ERR there are still queued jobs\r\n")
		}
		delete(s.functions, name)
		return []byte("OK\r\n")
	}
	return []byte("ERR function not found\r\n")
}

// adminShutdown is honoured only from loopback; elsewhere it is the unknown
// command it is in gearmand 1.1.20.
func (s *Server) adminShutdown(c *session, args []string) []byte {
	ip := net.ParseIP(c.remote)
	if ip == nil || !ip.IsLoopback() || s.cfg.OnShutdown == nil {
		return []byte("ERR UNKNOWN_COMMAND Unknown+server+commandshutdown\r\n")
	}
	graceful := false
	switch {
	case len(args) == 1:
	case len(args) == 2 && strings.EqualFold(args[1], "graceful"):
		graceful = true
	default:
		return invalidArguments("shutdown")
	}
	s.log.Info("shutdown requested over the admin protocol", "graceful", graceful, "peer", c.remote)
	go s.cfg.OnShutdown(graceful)
	return []byte("OK\r\n")
}

func (f *function) queuedByPriority() [gearbridge.NumPriorities]int {
	var n [gearbridge.NumPriorities]int
	for i := range f.queues {
		n[i] = f.queues[i].n
	}
	// Delayed epoch jobs are NORMAL priority, and gearmand lists them.
	n[gearbridge.PriorityNormal] += f.delayed
	return n
}
