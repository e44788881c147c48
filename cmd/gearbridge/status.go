package main

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"text/tabwriter"
	"time"
)

// runStatus prints the admin `status` table of a running server.
func runStatus(args []string) error {
	fs := flag.NewFlagSet("status", flag.ContinueOnError)
	server := fs.String("server", "127.0.0.1:4730", "the Gearman server, HOST:PORT")
	timeout := fs.Duration("timeout", 5*time.Second, "give up after this long")
	if err := fs.Parse(args); err != nil {
		return usageError{err}
	}
	lines, err := adminListing(*server, "status", *timeout)
	if err != nil {
		return err
	}
	return printStatus(os.Stdout, lines)
}

// adminListing sends one admin command and returns the lines of its
// listing, up to the terminating ".".
func adminListing(addr, command string, timeout time.Duration) ([]string, error) {
	conn, err := net.DialTimeout("tcp", addr, timeout)
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
