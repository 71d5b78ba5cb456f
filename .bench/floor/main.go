// Command floor is the cold-start floor of .bench/deployed.sh: the least a
// Go process that serves from Redis has to do before it can answer. It opens
// one TLS connection to the rediss:// URL in REDIS_URL (trusting the system
// roots, so SSL_CERT_FILE applies exactly as it does to the functions), sends
// one PING, prints "ready" once PONG is back, and then answers each line on
// stdin with one more PING round trip ("pong"). It exits at the end of stdin.
//
// Standard library only; built like Vercel builds a function
// (go build -ldflags "-s -w").
package main

import (
	"bufio"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"time"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "floor:", err)
		os.Exit(1)
	}
}

func run() error {
	if os.Getenv("FLOOR_REDIS") == "off" {
		return answer(func() error { return nil })
	}
	u, err := url.Parse(os.Getenv("REDIS_URL"))
	if err != nil || u.Scheme != "rediss" || u.Port() == "" {
		return errors.New("REDIS_URL must be rediss://host:port")
	}
	dialer := &net.Dialer{Timeout: 5 * time.Second}
	conn, err := tls.DialWithDialer(dialer, "tcp", u.Host, &tls.Config{ServerName: u.Hostname()})
	if err != nil {
		return fmt.Errorf("dial %s: %w", u.Host, err)
	}
	defer conn.Close()
	replies := bufio.NewReader(conn)
	return answer(func() error { return ping(conn, replies) })
}

// answer runs work once and prints "ready", then once more per line of
// stdin, printing "pong" after each.
func answer(work func() error) error {
	say := func(line string) error {
		if err := work(); err != nil {
			return err
		}
		_, err := os.Stdout.WriteString(line + "\n")
		return err
	}
	if err := say("ready"); err != nil {
		return err
	}
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		if err := say("pong"); err != nil {
			return err
		}
	}
	return in.Err()
}

func ping(conn net.Conn, replies *bufio.Reader) error {
	if _, err := conn.Write([]byte("*1\r\n$4\r\nPING\r\n")); err != nil {
		return fmt.Errorf("send PING: %w", err)
	}
	line, err := replies.ReadString('\n')
	if err != nil {
		return fmt.Errorf("read PING reply: %w", err)
	}
	if line != "+PONG\r\n" {
		return fmt.Errorf("unexpected PING reply %q", line)
	}
	return nil
}
