package main

import (
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
)

// httpAddr settles --http (explicit: it was given). Unless it was given, the HTTP side listens on
// loopback at the Gearman port + 1 (4731 beside 4730), so that moving
// --port moves both and `--port 4731` cannot collide with the default HTTP
// port; --port 0 gives HTTP a free port too. An explicit --http on the
// Gearman port itself is refused here rather than as "address in use".
func httpAddr(f *serveFlags, explicit bool) error {
	if !explicit {
		switch {
		case f.port == 0:
			f.http = "127.0.0.1:0"
		case f.port == 65535:
			return fmt.Errorf("--port 65535 leaves no port for the HTTP side (the Gearman port + 1): give --http ADDR, or --http \"\" to turn it off")
		default:
			f.http = net.JoinHostPort("127.0.0.1", strconv.Itoa(f.port+1))
		}
		return nil
	}
	if f.http == "" || f.port == 0 {
		return nil
	}
	host, port, err := net.SplitHostPort(f.http)
	if err != nil {
		return fmt.Errorf("--http %q: %w", f.http, err)
	}
	if port == strconv.Itoa(f.port) && overlap(host, f.listen) {
		return fmt.Errorf("--http %s is the Gearman port (--port %d): give HTTP another port", f.http, f.port)
	}
	return nil
}

// overlap reports whether listeners on hosts a and b (either may be empty,
// all interfaces) would share an address.
func overlap(a, b string) bool {
	wild := func(h string) bool {
		ip := net.ParseIP(h)
		return h == "" || ip != nil && ip.IsUnspecified()
	}
	return wild(a) || wild(b) || a == b
}

// logFormats are the values of --log-format.
var logFormats = map[string]func(io.Writer, *slog.HandlerOptions) slog.Handler{
	"text": func(w io.Writer, o *slog.HandlerOptions) slog.Handler { return slog.NewTextHandler(w, o) },
	"json": func(w io.Writer, o *slog.HandlerOptions) slog.Handler { return slog.NewJSONHandler(w, o) },
}
