package main

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
)

func TestRunServesScenario(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	errc := make(chan error, 1)
	go func() {
		errc <- run(ctx, []string{"--scenario", "example.yaml", "--listen", "127.0.0.1:0"}, pw)
		pw.Close()
	}()
	line, err := bufio.NewReader(pr).ReadString('\n')
	if err != nil {
		t.Fatalf("reading the URL line: %v", err)
	}
	go io.Copy(io.Discard, pr)
	url := line[strings.Index(line, "http://") : len(line)-1]

	req, _ := http.NewRequest("GET", url+"job/team/job/deploy/api/json?tree=fullName", nil)
	req.SetBasicAuth("gearbridge", "11d5e3cf0b1a4f2a9c6e8b7d4a3f2e1c0b")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	err = json.NewDecoder(resp.Body).Decode(&m)
	resp.Body.Close()
	if err != nil || resp.StatusCode != 200 || m["fullName"] != "team/deploy" {
		t.Fatalf("GET deploy job: %d %v %v", resp.StatusCode, m, err)
	}
	cancel()
	if err := <-errc; err != nil {
		t.Fatalf("run: %v", err)
	}
}

func TestRunRejectsBadScenario(t *testing.T) {
	err := run(context.Background(), []string{"--scenario", "does-not-exist.yaml", "--listen", "127.0.0.1:0"}, io.Discard)
	if err == nil {
		t.Fatal("run with a missing scenario succeeded")
	}
}
