//go:build linux

package main

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"
)

// tlsRedis is the TLS Redis the measured processes use: a private one
// (.ci/redis-extra.sh starts it for .bench/deployed.sh), so that INFO
// commandstats counts nothing but what they send.
type tlsRedis struct {
	addr   string
	caFile string
	roots  *x509.CertPool
}

func newTLSRedis(rawURL, caFile string) (*tlsRedis, error) {
	u, err := url.Parse(rawURL)
	if err != nil || u.Scheme != "rediss" || u.Port() == "" || u.User != nil {
		return nil, fmt.Errorf("-redis-url must be rediss://host:port without a password, got %q", rawURL)
	}
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("-redis-ca: %w", err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("-redis-ca %s holds no PEM certificate", caFile)
	}
	return &tlsRedis{addr: u.Host, caFile: caFile, roots: roots}, nil
}

func (r *tlsRedis) url() string { return "rediss://" + r.addr }

// redisConn is the kit's own connection, for PING and INFO commandstats.
type redisConn struct {
	conn net.Conn
	r    *bufio.Reader
}

func (r *tlsRedis) dial() (*redisConn, error) {
	d := &net.Dialer{Timeout: 2 * time.Second}
	host, _, _ := net.SplitHostPort(r.addr)
	conn, err := tls.DialWithDialer(d, "tcp", r.addr, &tls.Config{RootCAs: r.roots, ServerName: host})
	if err != nil {
		return nil, err
	}
	return &redisConn{conn: conn, r: bufio.NewReader(conn)}, nil
}

func (c *redisConn) close() { c.conn.Close() }

// do sends one command and returns a simple-string or bulk-string reply.
func (c *redisConn) do(args ...string) (string, error) {
	var b strings.Builder
	fmt.Fprintf(&b, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
	}
	_ = c.conn.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.conn.Write([]byte(b.String())); err != nil {
		return "", err
	}
	line, err := c.r.ReadString('\n')
	if err != nil {
		return "", err
	}
	line = strings.TrimRight(line, "\r\n")
	switch {
	case strings.HasPrefix(line, "+"):
		return line[1:], nil
	case strings.HasPrefix(line, "-"):
		return "", errors.New(line[1:])
	case strings.HasPrefix(line, "$"):
		n, err := strconv.Atoi(line[1:])
		if err != nil || n < 0 {
			return "", fmt.Errorf("bad bulk reply %q", line)
		}
		buf := make([]byte, n+2)
		if _, err := io.ReadFull(c.r, buf); err != nil {
			return "", err
		}
		return string(buf[:n]), nil
	}
	return "", fmt.Errorf("unexpected reply %q", line)
}

// commandCalls is INFO commandstats as command name → calls, without the
// kit's own INFO calls.
type commandCalls map[string]int

func (c *redisConn) commandStats() (commandCalls, error) {
	info, err := c.do("INFO", "commandstats")
	if err != nil {
		return nil, fmt.Errorf("INFO commandstats: %w", err)
	}
	calls := commandCalls{}
	for _, line := range strings.Split(info, "\n") {
		line = strings.TrimSpace(line)
		name, rest, ok := strings.Cut(strings.TrimPrefix(line, "cmdstat_"), ":")
		if !ok || !strings.HasPrefix(line, "cmdstat_") || name == "info" {
			continue
		}
		for _, field := range strings.Split(rest, ",") {
			if v, ok := strings.CutPrefix(field, "calls="); ok {
				n, err := strconv.Atoi(v)
				if err != nil {
					return nil, fmt.Errorf("INFO commandstats: %q", line)
				}
				calls[name] = n
			}
		}
	}
	return calls, nil
}

// since returns what was called between before and c.
func (c commandCalls) since(before commandCalls) commandCalls {
	d := commandCalls{}
	for name, n := range c {
		if n > before[name] {
			d[name] = n - before[name]
		}
	}
	return d
}

func (c commandCalls) total() int {
	n := 0
	for _, v := range c {
		n += v
	}
	return n
}

// String lists the commands, e.g. "hello, ping, zadd" or "zadd×2".
func (c commandCalls) String() string {
	if len(c) == 0 {
		return "none"
	}
	names := make([]string, 0, len(c))
	for name := range c {
		names = append(names, name)
	}
	sort.Strings(names)
	for i, name := range names {
		if c[name] > 1 {
			names[i] = name + "×" + strconv.Itoa(c[name])
		}
	}
	return strings.Join(names, ", ")
}

func tail(b []byte, lines int) string {
	s := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(s) > lines {
		s = s[len(s)-lines:]
	}
	return strings.Join(s, "\n")
}
