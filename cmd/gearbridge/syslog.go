package main

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"log/syslog"
	"strings"
	"sync"
)

// syslogHandler sends each record to syslog as one message, with the
// syslog priority of its level; the text is slog's key=value form without
// the time, which syslog adds.
type syslogHandler struct {
	out  *syslogOut
	text slog.Handler // writes into out.buf
}

type syslogOut struct {
	mu  sync.Mutex
	w   *syslog.Writer
	buf bytes.Buffer
}

// newSyslogHandler connects to the syslog at network/addr ("", "" for the
// local one: /dev/log).
func newSyslogHandler(network, addr string, level slog.Leveler) (*syslogHandler, error) {
	w, err := syslog.Dial(network, addr, syslog.LOG_DAEMON|syslog.LOG_INFO, "gearbridge")
	if err != nil {
		return nil, fmt.Errorf("connect to syslog: %w", err)
	}
	out := &syslogOut{w: w}
	text := slog.NewTextHandler(&out.buf, &slog.HandlerOptions{Level: level, ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
		if len(groups) == 0 && a.Key == slog.TimeKey {
			return slog.Attr{}
		}
		return a
	}})
	return &syslogHandler{out: out, text: text}, nil
}

func (h *syslogHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return h.text.Enabled(ctx, l)
}

func (h *syslogHandler) Handle(ctx context.Context, r slog.Record) error {
	o := h.out
	o.mu.Lock()
	defer o.mu.Unlock()
	o.buf.Reset()
	if err := h.text.Handle(ctx, r); err != nil {
		return err
	}
	msg := strings.TrimSuffix(o.buf.String(), "\n")
	switch {
	case r.Level >= logLevels["FATAL"]:
		return o.w.Emerg(msg)
	case r.Level >= logLevels["ALERT"]:
		return o.w.Alert(msg)
	case r.Level >= logLevels["CRITICAL"]:
		return o.w.Crit(msg)
	case r.Level >= slog.LevelError:
		return o.w.Err(msg)
	case r.Level >= slog.LevelWarn:
		return o.w.Warning(msg)
	case r.Level >= logLevels["NOTICE"]:
		return o.w.Notice(msg)
	case r.Level >= slog.LevelInfo:
		return o.w.Info(msg)
	}
	return o.w.Debug(msg)
}

func (h *syslogHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &syslogHandler{out: h.out, text: h.text.WithAttrs(attrs)}
}

func (h *syslogHandler) WithGroup(name string) slog.Handler {
	return &syslogHandler{out: h.out, text: h.text.WithGroup(name)}
}

func (h *syslogHandler) Close() error { return h.out.w.Close() }

// teeHandler sends every record to several handlers.
type teeHandler []slog.Handler

func (t teeHandler) Enabled(ctx context.Context, l slog.Level) bool {
	for _, h := range t {
		if h.Enabled(ctx, l) {
			return true
		}
	}
	return false
}

func (t teeHandler) Handle(ctx context.Context, r slog.Record) error {
	var first error
	for _, h := range t {
		if h.Enabled(ctx, r.Level) {
			if err := h.Handle(ctx, r.Clone()); err != nil && first == nil {
				first = err
			}
		}
	}
	return first
}

func (t teeHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	out := make(teeHandler, len(t))
	for i, h := range t {
		out[i] = h.WithAttrs(attrs)
	}
	return out
}

func (t teeHandler) WithGroup(name string) slog.Handler {
	out := make(teeHandler, len(t))
	for i, h := range t {
		out[i] = h.WithGroup(name)
	}
	return out
}
