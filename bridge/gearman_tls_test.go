package bridge

import (
	"context"
	"crypto/tls"
	"fmt"
	"strings"
	"testing"

	"github.com/gearbridge/gearbridge/internal/testcert"
	"github.com/gearbridge/gearbridge/protocol"
)

// A tls:// job server is dialled over TLS with gearman.ca_file, presenting
// gearman.cert_file; the settings are checked when the file is read.
func TestGearmanTLSServers(t *testing.T) {
	certs := testcert.New(t)
	ln, err := tls.Listen("tcp", "127.0.0.1:0", certs.ServerConfig(true))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer nc.Close()
				// Answer one ECHO_REQ, whatever it holds.
				p, err := protocol.NewReader(nc, 1<<20, 1<<10).Read()
				if err == nil {
					nc.Write(protocol.AppendResponse(nil, protocol.EchoRes, p.Packet.Arg(0)))
				}
			}()
		}
	}()
	yaml := fmt.Sprintf("gearman:\n  servers: [\"tls://%s\"]\n  ca_file: %s\n  cert_file: %s\n  key_file: %s\n",
		ln.Addr(), certs.CAFile, certs.ClientCertFile, certs.ClientKeyFile)
	cfg, err := ParseConfig([]byte(yaml), "tls.yaml")
	if err != nil {
		t.Fatal(err)
	}
	c, err := dialGear(context.Background(), cfg.Gearman.Servers[0], cfg.Gearman.tls)
	if err != nil {
		t.Fatal(err)
	}
	defer c.close()
	if err := c.sendString(protocol.EchoReq, "over tls"); err != nil {
		t.Fatal(err)
	}
	p, err := c.next(context.Background())
	if err != nil || p.Type != protocol.EchoRes || string(p.Arg(0)) != "over tls" {
		t.Fatalf("echo over TLS: %v %v", p, err)
	}

	for bad, want := range map[string]string{
		"gearman:\n  servers: [\"tls://nohost\"]\n":                         "is not HOST:PORT",
		"gearman:\n  ca_file: /nonexistent/ca.pem\n":                        "gearman.ca_file",
		"gearman:\n  cert_file: " + certs.ClientCertFile + "\n":             "cert_file and key_file go together",
		"gearman:\n  ca_file: " + certs.ClientKeyFile + "\n":                "no PEM certificate",
		"gearman:\n  cert_file: /x.pem\n  key_file: " + certs.CAFile + "\n": "gearman.cert_file",
	} {
		if _, err := ParseConfig([]byte(bad), "bad.yaml"); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want %q", bad, err, want)
		}
	}
}
