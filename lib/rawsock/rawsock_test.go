package rawsock_test

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stravahook/stravahook/lib/rawsock"
)

// pair returns a raw connection and the plain one at its other end.
func pair(t *testing.T) (*rawsock.Conn, net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			close(accepted)
			return
		}
		accepted <- c
	}()
	dialed, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	raw, err := rawsock.Wrap(dialed.(*net.TCPConn))
	if err != nil {
		t.Fatal(err)
	}
	peer, ok := <-accepted
	if !ok {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { raw.Close(); peer.Close() })
	return raw, peer
}

func TestBytesArriveIntactBothWays(t *testing.T) {
	raw, peer := pair(t)
	// Larger than the socket buffers, so writes fill them, wait and
	// resume, and reads come back in pieces.
	big := make([]byte, 8<<20)
	rand.Read(big)

	errc := make(chan error, 1)
	go func() {
		_, err := raw.Write(big)
		errc <- err
	}()
	got := make([]byte, len(big))
	if _, err := io.ReadFull(peer, got); err != nil {
		t.Fatalf("peer read: %v", err)
	}
	if err := <-errc; err != nil {
		t.Fatalf("raw write: %v", err)
	}
	if !bytes.Equal(got, big) {
		t.Fatal("peer received different bytes than were written")
	}

	go func() {
		_, err := peer.Write(big)
		errc <- err
	}()
	if _, err := io.ReadFull(raw, got); err != nil {
		t.Fatalf("raw read: %v", err)
	}
	if err := <-errc; err != nil {
		t.Fatalf("peer write: %v", err)
	}
	if !bytes.Equal(got, big) {
		t.Fatal("raw side read different bytes than were written")
	}
}

func TestReadReportsEOFWhenPeerCloses(t *testing.T) {
	raw, peer := pair(t)
	peer.Write([]byte("bye"))
	peer.Close()
	got, err := io.ReadAll(raw)
	if err != nil || string(got) != "bye" {
		t.Fatalf("ReadAll = %q, %v; want \"bye\", nil (io.EOF ends it)", got, err)
	}
	if n, err := raw.Read(make([]byte, 1)); n != 0 || err != io.EOF {
		t.Fatalf("Read after EOF = %d, %v; want 0, io.EOF", n, err)
	}
}

func TestReadDeadlineIsATimeout(t *testing.T) {
	raw, _ := pair(t)
	raw.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
	_, err := raw.Read(make([]byte, 1))
	var netErr net.Error
	if !errors.As(err, &netErr) || !netErr.Timeout() || !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("Read past the deadline = %v; want a net.Error with Timeout() and os.ErrDeadlineExceeded", err)
	}
	var opErr *net.OpError
	if !errors.As(err, &opErr) || opErr.Op != "read" {
		t.Fatalf("error %v is not a *net.OpError for read", err)
	}
}

func TestCloseUnblocksAWaitingRead(t *testing.T) {
	raw, _ := pair(t)
	errc := make(chan error, 1)
	go func() {
		_, err := raw.Read(make([]byte, 1))
		errc <- err
	}()
	time.Sleep(20 * time.Millisecond)
	raw.Close()
	select {
	case err := <-errc:
		if !errors.Is(err, net.ErrClosed) {
			t.Fatalf("Read on a closed conn = %v; want net.ErrClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Read still blocked after Close")
	}
}

func TestWriteToAResetConnectionFails(t *testing.T) {
	raw, peer := pair(t)
	peer.(*net.TCPConn).SetLinger(0) // close with RST
	peer.Close()
	var err error
	for range 100 { // the first writes may still be accepted by the kernel
		if _, err = raw.Write([]byte("x")); err != nil {
			break
		}
		time.Sleep(time.Millisecond)
	}
	var opErr *net.OpError
	if !errors.As(err, &opErr) || opErr.Op != "write" {
		t.Fatalf("Write to a reset connection = %v; want a *net.OpError for write", err)
	}
}

func TestConcurrentWritesDoNotInterleave(t *testing.T) {
	raw, peer := pair(t)
	const writers, size = 8, 256 << 10
	var wg sync.WaitGroup
	for i := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			raw.Write(bytes.Repeat([]byte{byte('a' + i)}, size))
		}()
	}
	got := make([]byte, writers*size)
	if _, err := io.ReadFull(peer, got); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	for off := 0; off < len(got); off += size {
		block := got[off : off+size]
		if bytes.Count(block, block[:1]) != size {
			t.Fatalf("bytes of different writes interleaved in block at %d", off)
		}
	}
}

// net/http over the listener: keep-alive requests with bodies, the
// server's background read between requests, and shutdown.
func TestHTTPServerOverListener(t *testing.T) {
	tcpLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "%s %d", r.Method, len(body))
	}), ReadTimeout: 5 * time.Second}
	var mu sync.Mutex
	newConns := 0
	srv.ConnState = func(_ net.Conn, state http.ConnState) {
		if state == http.StateNew {
			mu.Lock()
			newConns++
			mu.Unlock()
		}
	}
	go srv.Serve(rawsock.Listen(tcpLn.(*net.TCPListener)))
	defer srv.Close()

	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1}}
	url := "http://" + tcpLn.Addr().String() + "/"
	for i := range 200 {
		body := strings.Repeat("b", i*97)
		resp, err := client.Post(url, "text/plain", strings.NewReader(body))
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		got, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if want := fmt.Sprintf("POST %d", len(body)); string(got) != want {
			t.Fatalf("request %d answered %q, want %q", i, got, want)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if newConns != 1 {
		t.Fatalf("200 keep-alive requests used %d connections, want 1", newConns)
	}
}
