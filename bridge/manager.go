package bridge

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/gearbridge/gearbridge/protocol"
)

// manager is a master's management worker, <master>_manager, with
// stop:<master> and set_description:<master>.
type manager struct {
	m      *master
	server string
	id     string
	log    *slog.Logger
}

func newManager(m *master, server string) *manager {
	id := m.cfg.Name + "_manager"
	return &manager{m: m, server: server, id: id, log: m.log.With("worker", id, "server", server)}
}

func (mw *manager) functions() []string {
	return []string{"set_description:" + mw.m.cfg.Name, "stop:" + mw.m.cfg.Name}
}

func (mw *manager) run(ctx context.Context) {
	// waitCtx also ends when a reload stops the master: the manager then
	// leaves while it waits for a job, never in the middle of one (a job
	// it has not answered goes back to the queue when it disconnects).
	waitCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-mw.m.quit:
			cancel()
		case <-waitCtx.Done():
		}
	}()
	bo := backoff{max: 10 * time.Second}
	for waitCtx.Err() == nil {
		conn, err := dialGear(waitCtx, mw.server, mw.m.gearTLS)
		if err == nil {
			bo.reset()
			err = mw.session(ctx, waitCtx, conn)
			conn.close()
		}
		if waitCtx.Err() != nil {
			return
		}
		mw.log.Warn("gearman server connection lost; reconnecting", "err", err)
		sleepCtx(waitCtx, bo.next())
	}
}

// session registers the management functions and serves their jobs one
// at a time; no gate: stopping a build never needs an executor. It waits
// for jobs under waitCtx and answers them under ctx.
func (mw *manager) session(ctx, waitCtx context.Context, conn *gearConn) error {
	if err := conn.sendString(protocol.SetClientID, mw.id); err != nil {
		return err
	}
	if err := register(conn, nil, mw.functions(), true); err != nil {
		return err
	}
	for {
		if err := conn.send(protocol.GrabJobUniq); err != nil {
			return err
		}
		p, err := conn.next(waitCtx)
		if err != nil {
			return err
		}
		switch p.Type {
		case protocol.NoJob:
			if err := conn.send(protocol.PreSleep); err != nil {
				return err
			}
			for {
				p, err := conn.next(waitCtx)
				if err != nil {
					return err
				}
				if p.Type == protocol.Noop {
					break
				}
				if p.Type == protocol.Error {
					return serverError(p)
				}
			}
		case protocol.JobAssignUniq:
			if err := mw.handle(ctx, conn, string(p.Args[0]), string(p.Args[1]), p.Args[3]); err != nil {
				return err
			}
		case protocol.Error:
			return serverError(p)
		}
	}
}

// buildID is the {name, number} part of a management request. number may
// come as a JSON number or a string.
type buildID struct {
	Name            string          `json:"name"`
	Number          json.RawMessage `json:"number"`
	HTMLDescription *string         `json:"html_description"`
}

func (b buildID) number() (int, error) {
	s := strings.Trim(string(b.Number), `"`)
	if b.Name == "" || s == "" || s == "null" {
		return 0, errors.New("Build id is invalid or not specified")
	}
	n, err := strconv.Atoi(s)
	if err != nil || n <= 0 {
		return 0, errors.New("Build id is invalid or not specified")
	}
	return n, nil
}

// handle answers one management job with the plugin's replies: a stopped
// build gives WORK_COMPLETE with no data, a build that is not running gives
// WORK_FAIL, bad input or an unknown build gives WORK_EXCEPTION.
func (mw *manager) handle(ctx context.Context, conn *gearConn, handle, fn string, payload []byte) error {
	var req buildID
	var number int
	err := json.Unmarshal(payload, &req)
	if err == nil {
		number, err = req.number()
	} else {
		err = fmt.Errorf("arguments are not a JSON object: %v", err)
	}
	if err != nil {
		return conn.sendString(protocol.WorkException, handle, err.Error())
	}
	ctx, cancel := context.WithTimeout(ctx, 2*mw.m.jc.timeout)
	defer cancel()
	switch {
	case strings.HasPrefix(fn, "stop:"):
		return mw.stop(ctx, conn, handle, req.Name, number)
	case strings.HasPrefix(fn, "set_description:"):
		html := ""
		if req.HTMLDescription != nil {
			html = *req.HTMLDescription
		}
		return mw.describe(ctx, conn, handle, req.Name, number, html)
	}
	return conn.sendString(protocol.WorkFail, handle)
}

func (mw *manager) stop(ctx context.Context, conn *gearConn, handle, name string, number int) error {
	p := mw.m.lookupProject(name)
	if p == nil {
		return conn.sendString(protocol.WorkException, handle, fmt.Sprintf("Cannot find build %s: %d", name, number))
	}
	path := p.path + strconv.Itoa(number) + "/"
	var b buildJSON
	if err := mw.m.jc.getJSON(ctx, path, "url,building", &b); err != nil {
		if isNotFound(err) {
			return conn.sendString(protocol.WorkException, handle, fmt.Sprintf("Cannot find build %s: %d", name, number))
		}
		return conn.sendString(protocol.WorkException, handle, "Jenkins: "+err.Error())
	}
	if !b.Building {
		return conn.sendString(protocol.WorkFail, handle)
	}
	mw.m.markStopped(b.URL)
	if _, err := mw.m.jc.post(ctx, path+"stop", nil, nil); err != nil {
		return conn.sendString(protocol.WorkException, handle, "Jenkins: "+err.Error())
	}
	mw.log.Info("stopped build", "project", p.fullName, "number", number)
	return conn.sendString(protocol.WorkComplete, handle, "")
}

func (mw *manager) describe(ctx context.Context, conn *gearConn, handle, name string, number int, html string) error {
	p := mw.m.lookupProject(name)
	if p == nil {
		return conn.sendString(protocol.WorkException, handle, fmt.Sprintf("Cannot find build number %d", number))
	}
	path := p.path + strconv.Itoa(number) + "/"
	if _, err := mw.m.jc.post(ctx, path+"submitDescription", nil, url.Values{"description": {html}}); err != nil {
		if isNotFound(err) {
			return conn.sendString(protocol.WorkException, handle, fmt.Sprintf("Cannot find build number %d", number))
		}
		return conn.sendString(protocol.WorkException, handle, "Jenkins: "+err.Error())
	}
	return conn.sendString(protocol.WorkComplete, handle, fmt.Sprintf("Description for Jenkins build %d was updated to %s", number, html))
}
