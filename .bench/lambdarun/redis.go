//go:build linux

package main

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"
)

// tlsRedis is a private redis-server that listens only on TLS, with a
// throwaway CA and server certificate made for this run. The kit owns it, so
// INFO commandstats counts nothing but what the measured processes send.
type tlsRedis struct {
	cmd    *exec.Cmd
	exited chan struct{}
	addr   string
	caFile string
	roots  *x509.CertPool
}

// startTLSRedis writes the certificates into dir and starts redisServer
// (Debian's redis-server supports --tls-port) on a free loopback port.
func startTLSRedis(redisServer, dir string, procs *children) (*tlsRedis, error) {
	caFile, certFile, keyFile, roots, err := writeCertificates(dir)
	if err != nil {
		return nil, err
	}
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		r := &tlsRedis{addr: "127.0.0.1:" + strconv.Itoa(port), caFile: caFile, roots: roots, exited: make(chan struct{})}
		logFile, err := os.Create(filepath.Join(dir, "redis.log"))
		if err != nil {
			return nil, err
		}
		r.cmd = exec.Command(redisServer,
			"--port", "0", "--bind", "127.0.0.1", "--tls-port", strconv.Itoa(port),
			"--tls-cert-file", certFile, "--tls-key-file", keyFile, "--tls-ca-cert-file", caFile,
			"--tls-auth-clients", "no", "--save", "", "--appendonly", "no", "--dir", dir)
		r.cmd.Stdout, r.cmd.Stderr = logFile, logFile
		r.cmd.SysProcAttr = childAttr()
		if err := r.cmd.Start(); err != nil {
			logFile.Close()
			return nil, fmt.Errorf("start %s: %w", redisServer, err)
		}
		procs.add(r.cmd.Process)
		go func() { _ = r.cmd.Wait(); logFile.Close(); close(r.exited) }()
		deadline := time.Now().Add(10 * time.Second)
		for time.Now().Before(deadline) {
			c, err := r.dial()
			if err == nil {
				_, err = c.do("PING")
				c.close()
				if err == nil {
					return r, nil
				}
			}
			lastErr = err
			select {
			case <-r.exited:
				deadline = time.Time{}
			case <-time.After(20 * time.Millisecond):
			}
		}
		r.stop()
		log, _ := os.ReadFile(filepath.Join(dir, "redis.log"))
		lastErr = fmt.Errorf("TLS redis-server on port %d did not answer: %v\n%s", port, lastErr, tail(log, 5))
	}
	return nil, lastErr
}

func (r *tlsRedis) url() string { return "rediss://" + r.addr }

func (r *tlsRedis) stop() {
	_ = r.cmd.Process.Kill()
	<-r.exited
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// writeCertificates makes a throwaway ECDSA P-256 CA and a server certificate
// for 127.0.0.1 and localhost signed by it.
func writeCertificates(dir string) (caFile, certFile, keyFile string, roots *x509.CertPool, err error) {
	now := time.Now()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return
	}
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "stravahook bench CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		return
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: "127.0.0.1"},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:     []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return
	}
	caFile = filepath.Join(dir, "ca.pem")
	certFile = filepath.Join(dir, "redis.pem")
	keyFile = filepath.Join(dir, "redis.key")
	for _, f := range []struct {
		path, kind string
		der        []byte
	}{{caFile, "CERTIFICATE", caDER}, {certFile, "CERTIFICATE", der}, {keyFile, "PRIVATE KEY", keyDER}} {
		if err = os.WriteFile(f.path, pem.EncodeToMemory(&pem.Block{Type: f.kind, Bytes: f.der}), 0o600); err != nil {
			return
		}
	}
	roots = x509.NewCertPool()
	roots.AddCert(ca)
	return caFile, certFile, keyFile, roots, nil
}

// redisConn is the kit's own connection, for PING and INFO commandstats.
type redisConn struct {
	conn net.Conn
	r    *bufio.Reader
}

func (r *tlsRedis) dial() (*redisConn, error) {
	d := &net.Dialer{Timeout: 2 * time.Second}
	conn, err := tls.DialWithDialer(d, "tcp", r.addr, &tls.Config{RootCAs: r.roots, ServerName: "127.0.0.1"})
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
