package server

import (
	"bytes"
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/gearbridge/gearbridge"
	"github.com/gearbridge/gearbridge/protocol"
)

// ERROR texts exactly as gearmand 1.1.20 sends them.
const (
	errInvalidCommand  = "Command not expected"
	errWorkNotFound    = "Job given in work result not found"
	errDataNotFound    = "Job does not exist on server"
	errExceptionNoJob  = "An exception was received for a job that does not exist"
	errUniqueTooLarge  = "Unique value too large"
	errQueueFull       = "Job queue is full"
	errUnknownOption   = "Server does not recognize given option"
	errHandleTooLarge  = "Error occurred due to GEARMAND_JOB_HANDLE_SIZE being too small from snprintf"
	errFunctionTooLong = "Function name too large"
	errReducerTooLong  = "Reducer name too large"
)

// handleHeld handles what c's transport read, with s.mu held: a message,
// or a request the codec refused, which gets gearmand's ERROR reply. It
// reports false for any other error, after which the connection is closed.
// An event loop may take the lock once for several requests (see
// eventLoop.handleReady). The caller has counted the packet. A new job is appended to newJobs; the
// caller persists it once the lock is released.
func (s *Server) handleHeld(c *session, msg protocol.Message, err error, newJobs *[]*job) bool {
	var perr *protocol.ProtocolError
	s.current = c // c's own replies are written with the rest of its batch
	defer func() { s.current = nil }()
	switch {
	case err == nil && msg.Packet == nil:
		s.handleAdmin(c, msg.Line)
	case err == nil:
		if j := s.dispatch(c, msg.Packet); j != nil {
			*newJobs = append(*newJobs, j)
		}
	case errors.As(err, &perr):
		s.send(c, protocol.AppendError(nil, perr.Code, perr.Text))
	default:
		return false
	}
	return true
}

// persist hands a new job to the store; the job becomes visible when the
// store says it is durable. The answer may come on any goroutine, even
// before Add returns, so its replies always go through the writers.
func (s *Server) persist(j *job) {
	rec := j.Job // a copy: the store encodes it while we go on
	s.store.Add(&rec, func(err error) { s.committed(j, err) })
}

// dispatch handles a binary request with s.mu held. It returns a job that
// must be handed to the store once the lock is released.
func (s *Server) dispatch(c *session, p *protocol.Packet) *job {
	c.heard++
	if c.held != 0 {
		// Replies keep request order: the held GRAB is answered first.
		s.releaseHold(c)
	}
	switch p.Type {
	case protocol.SubmitJob:
		return s.submit(c, p.Args[0], p.Args[1], nil, p.Args[2], gearbridge.PriorityNormal, false, "")
	case protocol.SubmitJobHigh:
		return s.submit(c, p.Args[0], p.Args[1], nil, p.Args[2], gearbridge.PriorityHigh, false, "")
	case protocol.SubmitJobLow:
		return s.submit(c, p.Args[0], p.Args[1], nil, p.Args[2], gearbridge.PriorityLow, false, "")
	case protocol.SubmitJobBg:
		return s.submit(c, p.Args[0], p.Args[1], nil, p.Args[2], gearbridge.PriorityNormal, true, "")
	case protocol.SubmitJobHighBg:
		return s.submit(c, p.Args[0], p.Args[1], nil, p.Args[2], gearbridge.PriorityHigh, true, "")
	case protocol.SubmitJobLowBg:
		return s.submit(c, p.Args[0], p.Args[1], nil, p.Args[2], gearbridge.PriorityLow, true, "")
	case protocol.SubmitJobEpoch:
		return s.submit(c, p.Args[0], p.Args[1], p.Args[2], p.Args[3], gearbridge.PriorityNormal, true, "")
	case protocol.SubmitReduceJob, protocol.SubmitReduceJobBackground:
		// libgearman's layout: fn, unique, reducer, aggregator (ignored), data.
		if len(p.Args[2]) > maxFunction {
			s.send(c, protocol.AppendError(nil, "ARGUMENT_TOO_LARGE", errReducerTooLong))
			return nil
		}
		bg := p.Type == protocol.SubmitReduceJobBackground
		return s.submit(c, p.Args[0], p.Args[1], nil, p.Args[4], gearbridge.PriorityNormal, bg, string(p.Args[2]))

	case protocol.GrabJob, protocol.GrabJobUniq, protocol.GrabJobAll:
		s.grab(c, p.Type)
	case protocol.PreSleep:
		if s.hasWork(c) {
			s.wake(c)
		} else {
			c.sleeping = true
		}
	case protocol.CanDo:
		s.canDo(c, cString(p.Args[0]), 0)
	case protocol.CanDoTimeout:
		s.canDo(c, p.Args[0], parseInt(p.Args[1]))
	case protocol.CantDo:
		if f := s.functions[string(cString(p.Args[0]))]; f != nil {
			s.removeAbility(c, f)
		}
	case protocol.ResetAbilities:
		s.resetAbilities(c)

	case protocol.WorkComplete, protocol.WorkFail, protocol.WorkException,
		protocol.WorkStatus, protocol.WorkData, protocol.WorkWarning:
		s.workResult(c, p)

	case protocol.GetStatus:
		s.getStatus(c, cString(p.Args[0]))
	case protocol.GetStatusUnique:
		s.getStatusUnique(c, cString(p.Args[0]))
	case protocol.EchoReq:
		s.send(c, protocol.AppendResponse(nil, protocol.EchoRes, p.Args[0]))
	case protocol.SetClientID:
		id := cString(p.Args[0])
		if len(id) > maxClientID {
			id = id[:maxClientID]
		}
		c.clientID = string(id)
	case protocol.OptionReq:
		// gearmand answers with the whole payload, whatever follows a NUL.
		if name := cString(p.Args[0]); len(name) <= maxOptionName && strings.EqualFold(string(name), "exceptions") {
			c.exceptions = true
			s.send(c, protocol.AppendResponse(nil, protocol.OptionRes, p.Args[0]))
		} else {
			s.send(c, protocol.AppendError(nil, "UNKNOWN_OPTION", errUnknownOption))
		}
	default:
		// Responses sent as requests, the unused type 5, ALL_YOURS and
		// SUBMIT_JOB_SCHED, which gearmand does not implement either.
		s.send(c, protocol.AppendError(nil, "INVALID_COMMAND", errInvalidCommand))
	}
	return nil
}

func (s *Server) canDo(c *session, name []byte, timeout int64) {
	if len(name) > maxFunction {
		s.send(c, protocol.AppendError(nil, "ARGUMENT_TOO_LARGE", errFunctionTooLong))
		return
	}
	s.addAbility(c, string(name), timeout)
	// A job may already be waiting for this new ability.
	if c.sleeping && !c.noopSent && s.hasWork(c) {
		s.wake(c)
	}
}

// submit handles every SUBMIT_JOB variant.
func (s *Server) submit(c *session, fnName, uniqueArg, epochArg, payload []byte, prio gearbridge.Priority, background bool, reducer string) *job {
	if len(uniqueArg) > maxUnique {
		s.send(c, protocol.AppendError(nil, "ARGUMENT_TOO_LARGE", errUniqueTooLarge))
		return nil
	}
	if len(fnName) > maxFunction {
		s.send(c, protocol.AppendError(nil, "ARGUMENT_TOO_LARGE", errFunctionTooLong))
		return nil
	}
	name, unique := string(fnName), string(uniqueArg)
	f := s.function(name)
	key := UniqueKey(name, unique, payload)

	if existing := s.unique[key]; key != "" && existing != nil {
		s.metrics.coalesced.Inc()
		if background {
			// Keep the job even if its foreground clients go away: this
			// background submitter was promised it will run.
			existing.detached = true
		} else {
			s.attach(existing, c)
		}
		created := protocol.AppendResponse(nil, protocol.JobCreated, []byte(existing.Handle))
		if existing.state == statePending {
			s.waitForCommit(c, existing, created)
			return nil
		}
		s.send(c, created)
		if !background && existing.state == stateRunning {
			s.replayProgress(c, existing)
		}
		return nil
	}

	if max := f.maxQueue[prio]; max > 0 && f.total()+f.pending >= max {
		s.send(c, protocol.AppendError(nil, "QUEUE_ERROR", errQueueFull))
		return nil
	}

	id, handle := s.newHandle()
	j := &job{
		Job: gearbridge.Job{
			ID:         id,
			Handle:     handle,
			Function:   name,
			Unique:     unique,
			Payload:    payload,
			Priority:   prio,
			Background: background,
			Epoch:      parseInt(epochArg),
			Reducer:    reducer,
		},
		fn:        f,
		state:     statePending,
		uniqueKey: key,
		detached:  background,
		heapIndex: -1,
		submitted: s.cfg.Now(),
	}
	if epochArg != nil && j.Epoch < 0 {
		j.Epoch = 0
	}
	if key != "" {
		s.unique[key] = j
	}
	if !background {
		s.attach(j, c)
	}
	if s.volatile {
		s.jobs[handle] = j
		s.metrics.submitted.Inc()
		s.send(c, protocol.AppendResponse(nil, protocol.JobCreated, []byte(handle)))
		s.enqueue(j)
		return nil
	}
	f.pending++
	s.waitForCommit(c, j, protocol.AppendResponse(nil, protocol.JobCreated, []byte(handle)))
	return j
}

// replayProgress tells a client that attaches to a running job what the
// job's clients heard so far: its last WORK_DATA and WORK_STATUS. gearmand
// sends a late client only what comes after it attached, so a client that
// reattaches after a restart would not learn, say, the Jenkins build a
// bridge job is running until it ends.
func (s *Server) replayProgress(c *session, j *job) {
	h := []byte(j.Handle)
	if j.lastData != nil {
		s.send(c, protocol.AppendResponse(nil, protocol.WorkData, h, j.lastData))
	}
	if j.num != nil {
		s.send(c, protocol.AppendResponse(nil, protocol.WorkStatus, h, j.num, j.den))
	}
}

// waitForCommit queues reply for c behind j's commit.
func (s *Server) waitForCommit(c *session, j *job, reply []byte) {
	e := &outEntry{data: reply}
	c.replies = append(c.replies, e)
	j.commitWaiters = append(j.commitWaiters, commitWaiter{c: c, entry: e})
}

func (s *Server) grab(c *session, typ protocol.Type) {
	c.sleeping, c.noopSent = false, false
	j := s.nextJob(c)
	if j == nil {
		if s.cfg.GrabHold > 0 && len(c.abilities) > 0 {
			s.holdGrab(c, typ)
			return
		}
		s.send(c, noJobPacket)
		return
	}
	s.assign(c, j)
	s.sendAssignment(c, j, typ)
}

// holdGrab keeps an unanswered GRAB for a moment: a job that arrives in
// that time goes straight to this worker (JOB_ASSIGN), which saves the
// NO_JOB, PRE_SLEEP, NOOP and second GRAB that would otherwise carry it.
// After GrabHold, or as soon as the worker sends anything else, the GRAB
// is answered NO_JOB as usual.
func (s *Server) holdGrab(c *session, typ protocol.Type) {
	s.setHeld(c, typ)
	// The deadline is on the timer's clock, real time, not cfg.Now: it only
	// tells a timer that fired late for an earlier hold from this one.
	c.holdUntil = time.Now().Add(s.cfg.GrabHold)
	if c.holdTimer == nil {
		c.holdTimer = time.AfterFunc(s.cfg.GrabHold, func() { s.holdExpired(c) })
	} else {
		c.holdTimer.Reset(s.cfg.GrabHold)
	}
}

func (s *Server) holdExpired(c *session) {
	s.mu.Lock()
	defer s.unlock()
	if c.held != 0 && !c.closed && !time.Now().Before(c.holdUntil) {
		s.releaseHold(c)
	}
}

// releaseHold answers a held GRAB with NO_JOB.
func (s *Server) releaseHold(c *session) {
	s.setHeld(c, 0)
	s.send(c, noJobPacket)
}

// setHeld records c's held GRAB (typ), or its end (0), and counts it in
// each of c's functions, so that a new job looks for a held worker only
// where there is one. c's functions cannot change while its GRAB is held:
// any packet from c releases the hold first.
func (s *Server) setHeld(c *session, typ protocol.Type) {
	if (c.held != 0) != (typ != 0) {
		d := 1
		if typ == 0 {
			d = -1
		}
		for f := range c.abilities {
			f.held += d
		}
	}
	c.held = typ
}

// sendAssignment sends j to worker c in the reply its GRAB variant wants.
func (s *Server) sendAssignment(c *session, j *job, typ protocol.Type) {
	h, fn, payload := []byte(j.Handle), []byte(j.fn.name), j.Payload
	switch {
	case typ == protocol.GrabJobAll && j.Reducer != "":
		s.send(c, protocol.AppendResponse(nil, protocol.JobAssignAll, h, fn, []byte(j.Unique), []byte(j.Reducer), payload))
	case typ == protocol.GrabJob:
		s.send(c, protocol.AppendResponse(nil, protocol.JobAssign, h, fn, payload))
	default:
		s.send(c, protocol.AppendResponse(nil, protocol.JobAssignUniq, h, fn, []byte(j.Unique), payload))
	}
}

// workResult handles WORK_* packets. Only the worker holding the job may
// send them, as in gearmand.
func (s *Server) workResult(c *session, p *protocol.Packet) {
	handle := p.Args[0]
	if p.Type == protocol.WorkFail && len(handle) > maxHandle {
		s.send(c, protocol.AppendError(nil, "ARGUMENT_TOO_LARGE", errHandleTooLarge))
		return
	}
	j := s.runningJob(c, handle)
	if j == nil && p.Type == protocol.WorkFail && c.excepted != "" && c.excepted == string(handle) {
		c.excepted = "" // the Perl worker's WORK_FAIL after its WORK_EXCEPTION
		return
	}
	if j == nil {
		if _, ok := c.takenBack[string(handle)]; ok {
			s.dropLateResult(c, p.Type, string(handle))
			return
		}
		text := errWorkNotFound
		switch p.Type {
		case protocol.WorkData, protocol.WorkWarning:
			text = errDataNotFound
		case protocol.WorkException:
			text = errExceptionNoJob
		}
		s.send(c, protocol.AppendError(nil, "JOB_NOT_FOUND", text))
		return
	}
	switch p.Type {
	case protocol.WorkStatus:
		j.num, j.den = p.Args[1], p.Args[2]
		s.forward(j, protocol.WorkStatus, p.Args...)
	case protocol.WorkData, protocol.WorkWarning:
		if p.Type == protocol.WorkData {
			j.lastData = p.Args[1]
		}
		s.forward(j, p.Type, p.Args...)
	case protocol.WorkComplete:
		s.metrics.completed.Inc()
		s.metrics.latency.Observe(s.cfg.Now().Sub(j.submitted).Seconds())
		s.forward(j, protocol.WorkComplete, p.Args...)
		s.finish(j)
	case protocol.WorkFail:
		s.metrics.failed.Inc()
		s.forward(j, protocol.WorkFail, handle)
		s.finish(j)
	case protocol.WorkException:
		s.metrics.failed.Inc()
		var exc, fail []byte
		for _, l := range j.listeners {
			if l.exceptions {
				if exc == nil {
					exc = protocol.AppendResponse(nil, protocol.WorkException, p.Args...)
				}
				s.send(l, exc)
			} else {
				// Without the exceptions option a client hears WORK_FAIL.
				if fail == nil {
					fail = protocol.AppendResponse(nil, protocol.WorkFail, handle)
				}
				s.send(l, fail)
			}
		}
		c.excepted = string(handle)
		s.finish(j)
	}
}

// dropLateResult takes a WORK_* packet for a job that was taken back from
// worker c (see takeBack) without an answer. The job runs elsewhere, or
// will; the worker hears nothing, as it would had its result been in time.
func (s *Server) dropLateResult(c *session, typ protocol.Type, handle string) {
	switch typ {
	case protocol.WorkComplete, protocol.WorkFail:
		delete(c.takenBack, handle)
	case protocol.WorkException:
		delete(c.takenBack, handle)
		c.excepted = handle // Perl's WORK_FAIL that follows is dropped too
	}
	s.metrics.lateResults.Inc()
	s.log.Debug("dropping a late packet for a job taken back from its worker", "type", typ.String(), "handle", handle, "conn", c.id)
}

func (s *Server) getStatus(c *session, handle []byte) {
	known, running, num, den := "0", "0", "0", "0"
	if j := s.jobs[string(handle)]; j != nil && j.state != stateDone {
		known = "1"
		if j.state == stateRunning {
			running = "1"
			num, den = statusNumber(j.num), statusNumber(j.den)
		}
	}
	s.send(c, protocol.AppendResponse(nil, protocol.StatusRes, handle,
		[]byte(known), []byte(running), []byte(num), []byte(den)))
}

// cString cuts b at its first NUL. gearmand reads the one argument of
// CAN_DO, CANT_DO, SET_CLIENT_ID, OPTION_REQ, GET_STATUS and
// GET_STATUS_UNIQUE as a C string: a NUL inside the payload ends it.
func cString(b []byte) []byte {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		return b[:i]
	}
	return b
}

// getStatusUnique looks a unique up across all functions; the oldest job
// with it wins, as gearmand's first-in-hash does.
func (s *Server) getStatusUnique(c *session, unique []byte) {
	var found *job
	for name := range s.functions {
		if j := s.unique[name+"\x00"+string(unique)]; j != nil && j.state != statePending && (found == nil || j.ID < found.ID) {
			found = j
		}
	}
	known, running, num, den, clients := "0", "0", "0", "0", "0"
	if found != nil {
		known = "1"
		if found.state == stateRunning {
			running = "1"
			num, den = statusNumber(found.num), statusNumber(found.den)
		}
		clients = strconv.Itoa(len(found.listeners))
	}
	s.send(c, protocol.AppendResponse(nil, protocol.StatusResUnique, unique,
		[]byte(known), []byte(running), []byte(num), []byte(den), []byte(clients)))
}

// statusNumber renders a WORK_STATUS field the way gearmand stores it:
// parsed with atoi, printed as an unsigned number.
func statusNumber(b []byte) string {
	return strconv.FormatUint(uint64(uint32(int32(parseInt(b)))), 10)
}

// parseInt parses like C's strtoll/atoi: optional leading spaces and sign,
// then digits up to the first non-digit; garbage gives 0.
func parseInt(b []byte) int64 {
	i := 0
	for i < len(b) && (b[i] == ' ' || b[i] == '\t') {
		i++
	}
	neg := false
	if i < len(b) && (b[i] == '-' || b[i] == '+') {
		neg = b[i] == '-'
		i++
	}
	var n int64
	for ; i < len(b) && b[i] >= '0' && b[i] <= '9'; i++ {
		if n > (1<<62)/10 {
			break // saturate instead of overflowing
		}
		n = n*10 + int64(b[i]-'0')
	}
	if neg {
		return -n
	}
	return n
}

// secondsDuration converts a CAN_DO_TIMEOUT value. gearbridge reads it in
// seconds, as the Perl and gearman-go workers send it; gearmand reads
// milliseconds, which makes those workers' timeouts 1000 times too short.
func secondsDuration(n int64) time.Duration {
	if n <= 0 {
		return 0
	}
	if n > 1<<31 {
		n = 1 << 31
	}
	return time.Duration(n) * time.Second
}

var timeAfterFunc = time.AfterFunc
