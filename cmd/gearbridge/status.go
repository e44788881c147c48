package main

import (
	"bufio"
	"crypto/tls"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/gearbridge/gearbridge/server"
)

// runStatus prints the admin `status` table of a running server: from its
// Gearman port (HOST:PORT, over TLS with --ssl), or from its HTTP side's
// /api/status (an http:// or https:// URL, with --token-file).
func runStatus(args []string) error {
	fs := flag.NewFlagSet("status", flag.ContinueOnError)
	server := fs.String("server", "127.0.0.1:4730", "the Gearman server, HOST:PORT, or the HTTP side's URL (http[s]://HOST:PORT)")
	timeout := fs.Duration("timeout", 5*time.Second, "give up after this long")
	ssl := fs.Bool("ssl", false, "connect to the Gearman port over TLS (the server's --ssl)")
	caFile := fs.String("ca-file", "", "PEM file of the CAs to trust for --ssl or an https URL (default: the system's)")
	cert := fs.String("cert", "", "with --ssl: client certificate (PEM) for a server with --ssl-ca-file")
	key := fs.String("key", "", "with --ssl: the client certificate's key (PEM)")
	tokenFile := fs.String("token-file", "", "with an http(s) URL: file holding the server's bearer token (its --http-token-file)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err // exit 0
		}
		return usageError{err}
	}
	var lines []string
	var err error
	if strings.Contains(*server, "://") {
		lines, err = httpStatus(*server, *tokenFile, *caFile, *timeout)
	} else {
		var tlsCfg *tls.Config
		if *ssl {
			if tlsCfg, err = clientTLS(*caFile, *cert, *key); err != nil {
				return usageError{err}
			}
		}
		lines, err = adminListing(*server, "status", *timeout, tlsCfg)
	}
	if err != nil {
		return err
	}
	return printStatus(os.Stdout, lines)
}

// httpStatus reads /api/status and returns it as admin `status` lines.
func httpStatus(base, tokenFile, caFile string, timeout time.Duration) ([]string, error) {
	client, token, err := httpClient(tokenFile, caFile)
	if err != nil {
		return nil, err
	}
	client.Timeout = timeout
	url := strings.TrimSuffix(base, "/") + "/api/status"
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return nil, fmt.Errorf("GET %s: %s: %s", url, resp.Status, strings.TrimSpace(string(msg)))
	}
	var st server.Status
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		return nil, fmt.Errorf("GET %s: %w", url, err)
	}
	lines := make([]string, len(st.Functions))
	for i, f := range st.Functions {
		lines[i] = fmt.Sprintf("%s\t%d\t%d\t%d", f.Name, f.Total, f.Running, f.Workers)
	}
	return lines, nil
}

// adminListing sends one admin command and returns the lines of its
// listing, up to the terminating ".". With tlsCfg it speaks TLS.
func adminListing(addr, command string, timeout time.Duration, tlsCfg *tls.Config) ([]string, error) {
	d := &net.Dialer{Timeout: timeout}
	var conn net.Conn
	var err error
	if tlsCfg != nil {
		conn, err = tls.DialWithDialer(d, "tcp", addr, tlsCfg)
	} else {
		conn, err = d.Dial("tcp", addr)
	}
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", addr, err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(timeout))
	if _, err := io.WriteString(conn, command+"\r\n"); err != nil {
		return nil, fmt.Errorf("send %q to %s: %w", command, addr, err)
	}
	var lines []string
	r := bufio.NewReader(conn)
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return nil, fmt.Errorf("read %q reply from %s: %w", command, addr, err)
		}
		line = strings.TrimRight(line, "\r\n")
		if line == "." {
			return lines, nil
		}
		if strings.HasPrefix(line, "ERR ") {
			return nil, fmt.Errorf("%s answered %q", addr, line)
		}
		lines = append(lines, line)
	}
}

func printStatus(w io.Writer, lines []string) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "FUNCTION\tTOTAL\tRUNNING\tWORKERS")
	for _, l := range lines {
		fmt.Fprintln(tw, l)
	}
	return tw.Flush()
}
