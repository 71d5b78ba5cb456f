// Package browsertest drives a real headless Chromium from tests, through
// the Chrome DevTools Protocol over its WebSocket, with nothing but the
// standard library: open a page, type into it, press keys, evaluate
// JavaScript, collect the page's script errors, and take screenshots. Tests
// skip (saying why) when no Chromium is installed; CI installs Debian's
// chromium package.
package browsertest

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/sha1"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Chromium returns the path of an installed Chromium (CHROMIUM names one
// explicitly), or "" when there is none.
func Chromium() string {
	if p := os.Getenv("CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// Page is one browser tab, opened by Open. Its methods fail the test on
// errors.
type Page struct {
	tb   testing.TB
	conn *conn

	mu     sync.Mutex
	errors []string
	loaded chan struct{}
}

// Open starts a headless Chromium (skipping the test when none is
// installed) with a window of width×height and returns its one tab, on
// about:blank. Everything is stopped when the test ends.
func Open(tb testing.TB, width, height int) *Page {
	tb.Helper()
	bin := Chromium()
	if bin == "" {
		tb.Skip("no chromium installed (apt-get install chromium, as .ci/run does; or set CHROMIUM)")
	}
	profile, err := os.MkdirTemp("", "stravahook-chromium-")
	if err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin,
		"--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
		"--no-first-run", "--no-default-browser-check", "--disable-extensions",
		"--disable-background-networking", "--disable-component-update",
		"--remote-debugging-address=127.0.0.1", "--remote-debugging-port=0",
		"--user-data-dir="+profile,
		fmt.Sprintf("--window-size=%d,%d", width, height),
		"about:blank")
	// Stopped with SIGTERM, Chromium shuts down its own helper processes,
	// which otherwise keep writing to the profile being removed.
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 10 * time.Second
	stderr, err := cmd.StderrPipe()
	if err != nil {
		tb.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		cancel()
		tb.Fatalf("start %s: %v", bin, err)
	}
	tb.Cleanup(func() {
		cancel()
		_ = cmd.Wait()
		for attempt := 0; ; attempt++ {
			err := os.RemoveAll(profile)
			if err == nil || attempt == 20 {
				if err != nil {
					tb.Logf("remove chromium's profile: %v", err)
				}
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
	})
	endpoint := make(chan string, 1)
	var early strings.Builder
	go func() {
		sc := bufio.NewScanner(stderr)
		re := regexp.MustCompile(`DevTools listening on (ws://\S+)`)
		for sc.Scan() {
			if m := re.FindStringSubmatch(sc.Text()); m != nil {
				endpoint <- m[1]
				break
			}
			early.WriteString(sc.Text() + "\n")
		}
		close(endpoint)
		_, _ = io.Copy(io.Discard, stderr)
	}()
	var browserURL string
	select {
	case u, ok := <-endpoint:
		if !ok {
			tb.Fatalf("chromium exited before listening:\n%s", early.String())
		}
		browserURL = u
	case <-time.After(30 * time.Second):
		tb.Fatalf("chromium did not start within 30 s")
	}
	wsURL := pageTarget(tb, browserURL)
	c, err := dial(wsURL)
	if err != nil {
		tb.Fatalf("connect to the tab: %v", err)
	}
	tb.Cleanup(c.close)
	p := &Page{tb: tb, conn: c}
	c.onEvent = p.event
	for _, domain := range []string{"Page.enable", "Runtime.enable", "Log.enable"} {
		p.call(domain, nil, nil)
	}
	p.call("Emulation.setDeviceMetricsOverride", map[string]any{"width": width, "height": height, "deviceScaleFactor": 1, "mobile": false}, nil)
	return p
}

// pageTarget finds the tab Chromium opened, through its /json/list.
func pageTarget(tb testing.TB, browserURL string) string {
	u, err := url.Parse(browserURL)
	if err != nil {
		tb.Fatal(err)
	}
	res, err := http.Get("http://" + u.Host + "/json/list")
	if err != nil {
		tb.Fatalf("list chromium's tabs: %v", err)
	}
	defer res.Body.Close()
	var targets []struct{ Type, WebSocketDebuggerURL string }
	if err := json.NewDecoder(res.Body).Decode(&targets); err != nil {
		tb.Fatalf("list chromium's tabs: %v", err)
	}
	for _, t := range targets {
		if t.Type == "page" {
			return t.WebSocketDebuggerURL
		}
	}
	tb.Fatalf("chromium has no tab: %+v", targets)
	return ""
}

// event records script errors and page loads.
func (p *Page) event(method string, params json.RawMessage) {
	p.mu.Lock()
	defer p.mu.Unlock()
	switch method {
	case "Runtime.exceptionThrown":
		var e struct {
			ExceptionDetails struct {
				Text      string
				URL       string
				Exception struct{ Description string }
			}
		}
		_ = json.Unmarshal(params, &e)
		d := e.ExceptionDetails
		p.errors = append(p.errors, strings.TrimSpace(d.Text+" "+d.Exception.Description+" "+d.URL))
	case "Runtime.consoleAPICalled":
		var e struct {
			Type string
			Args []struct {
				Value       any
				Description string
			}
		}
		_ = json.Unmarshal(params, &e)
		if e.Type == "error" || e.Type == "assert" {
			var parts []string
			for _, a := range e.Args {
				parts = append(parts, fmt.Sprint(a.Value)+a.Description)
			}
			p.errors = append(p.errors, "console."+e.Type+": "+strings.Join(parts, " "))
		}
	case "Log.entryAdded":
		// Script and security (CSP) errors; a resource that cannot load
		// (map tiles offline) is the "network" source and is expected.
		var e struct {
			Entry struct{ Source, Level, Text, URL string }
		}
		_ = json.Unmarshal(params, &e)
		if e.Entry.Level == "error" && (e.Entry.Source == "javascript" || e.Entry.Source == "security") {
			p.errors = append(p.errors, e.Entry.Source+": "+e.Entry.Text+" "+e.Entry.URL)
		}
	case "Page.loadEventFired":
		if p.loaded != nil {
			close(p.loaded)
			p.loaded = nil
		}
	}
}

// ScriptErrors are the uncaught exceptions, console errors and script or
// CSP errors the page reported so far.
func (p *Page) ScriptErrors() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.errors...)
}

// Navigate opens url and waits for its load event.
func (p *Page) Navigate(url string) {
	p.tb.Helper()
	loaded := make(chan struct{})
	p.mu.Lock()
	p.loaded = loaded
	p.mu.Unlock()
	var res struct{ ErrorText string }
	p.call("Page.navigate", map[string]any{"url": url}, &res)
	if res.ErrorText != "" {
		p.tb.Fatalf("navigate to %s: %s", url, res.ErrorText)
	}
	select {
	case <-loaded:
	case <-time.After(30 * time.Second):
		p.tb.Fatalf("%s did not load within 30 s", url)
	}
}

// Reload reloads the page and waits for its load event.
func (p *Page) Reload() {
	p.tb.Helper()
	loaded := make(chan struct{})
	p.mu.Lock()
	p.loaded = loaded
	p.mu.Unlock()
	p.call("Page.reload", map[string]any{"ignoreCache": false}, nil)
	select {
	case <-loaded:
	case <-time.After(30 * time.Second):
		p.tb.Fatalf("the page did not reload within 30 s")
	}
}

// Eval evaluates a JavaScript expression (awaiting a promise) and decodes
// its value into out (when not nil).
func (p *Page) Eval(expr string, out any) {
	p.tb.Helper()
	var res struct {
		Result           struct{ Value json.RawMessage }
		ExceptionDetails *struct {
			Text      string
			Exception struct{ Description string }
		}
	}
	p.call("Runtime.evaluate", map[string]any{"expression": expr, "returnByValue": true, "awaitPromise": true}, &res)
	if res.ExceptionDetails != nil {
		p.tb.Fatalf("evaluate %s: %s %s", expr, res.ExceptionDetails.Text, res.ExceptionDetails.Exception.Description)
	}
	if out != nil {
		if err := json.Unmarshal(res.Result.Value, out); err != nil {
			p.tb.Fatalf("evaluate %s: result %s: %v", expr, res.Result.Value, err)
		}
	}
}

// WaitFor evaluates expr until it is true, failing after timeout.
func (p *Page) WaitFor(expr string, timeout time.Duration) {
	p.tb.Helper()
	deadline := time.Now().Add(timeout)
	for {
		var ok bool
		p.Eval("Boolean("+expr+")", &ok)
		if ok {
			return
		}
		if time.Now().After(deadline) {
			p.tb.Fatalf("gave up after %v waiting for %s; script errors: %q", timeout, expr, p.ScriptErrors())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Type sends text to the focused element as the keyboard would.
func (p *Page) Type(text string) {
	p.tb.Helper()
	p.call("Input.insertText", map[string]any{"text": text}, nil)
}

// PressEnter presses and releases the Enter key.
func (p *Page) PressEnter() {
	p.tb.Helper()
	for _, kind := range []string{"keyDown", "keyUp"} {
		params := map[string]any{"type": kind, "key": "Enter", "code": "Enter", "windowsVirtualKeyCode": 13, "nativeVirtualKeyCode": 13}
		if kind == "keyDown" {
			params["text"] = "\r"
		}
		p.call("Input.dispatchKeyEvent", params, nil)
	}
}

// Click clicks, with the mouse, the middle of the first element matching
// a CSS selector.
func (p *Page) Click(selector string) {
	p.tb.Helper()
	var at struct{ X, Y float64 }
	sel, _ := json.Marshal(selector)
	p.Eval(`(() => { const r = document.querySelector(`+string(sel)+`).getBoundingClientRect();
		return {x: r.left + r.width / 2, y: r.top + r.height / 2}; })()`, &at)
	for _, kind := range []string{"mousePressed", "mouseReleased"} {
		p.call("Input.dispatchMouseEvent", map[string]any{"type": kind, "x": at.X, "y": at.Y, "button": "left", "clickCount": 1}, nil)
	}
}

// Screenshot returns the page as a PNG.
func (p *Page) Screenshot() []byte {
	p.tb.Helper()
	var res struct{ Data string }
	p.call("Page.captureScreenshot", map[string]any{"format": "png"}, &res)
	png, err := base64.StdEncoding.DecodeString(res.Data)
	if err != nil {
		p.tb.Fatalf("screenshot: %v", err)
	}
	return png
}

func (p *Page) call(method string, params any, out any) {
	p.tb.Helper()
	result, err := p.conn.call(method, params, 60*time.Second)
	if err != nil {
		p.tb.Fatalf("%s: %v", method, err)
	}
	if out != nil {
		if err := json.Unmarshal(result, out); err != nil {
			p.tb.Fatalf("%s: decode %s: %v", method, result, err)
		}
	}
}

// conn is a DevTools protocol session over a WebSocket (RFC 6455, client
// side: masked text frames out; text, continuation, ping and close in).
type conn struct {
	nc      net.Conn
	br      *bufio.Reader
	onEvent func(method string, params json.RawMessage)

	writeMu sync.Mutex
	mu      sync.Mutex
	nextID  int64
	waiting map[int64]chan message
	err     error
}

type message struct {
	ID     int64           `json:"id,omitempty"`
	Method string          `json:"method,omitempty"`
	Params json.RawMessage `json:"params,omitempty"`
	Result json.RawMessage `json:"result,omitempty"`
	Error  *struct {
		Code    int
		Message string
	} `json:"error,omitempty"`
}

func dial(wsURL string) (*conn, error) {
	u, err := url.Parse(wsURL)
	if err != nil {
		return nil, err
	}
	nc, err := net.DialTimeout("tcp", u.Host, 10*time.Second)
	if err != nil {
		return nil, err
	}
	keyBytes := make([]byte, 16)
	_, _ = rand.Read(keyBytes)
	key := base64.StdEncoding.EncodeToString(keyBytes)
	req := "GET " + u.RequestURI() + " HTTP/1.1\r\nHost: " + u.Host + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: " + key + "\r\nSec-WebSocket-Version: 13\r\n\r\n"
	if _, err := io.WriteString(nc, req); err != nil {
		nc.Close()
		return nil, err
	}
	br := bufio.NewReaderSize(nc, 1<<16)
	res, err := http.ReadResponse(br, &http.Request{Method: "GET"})
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("websocket handshake: %w", err)
	}
	sum := sha1.Sum([]byte(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
	if res.StatusCode != http.StatusSwitchingProtocols || res.Header.Get("Sec-WebSocket-Accept") != base64.StdEncoding.EncodeToString(sum[:]) {
		nc.Close()
		return nil, fmt.Errorf("websocket handshake: %s", res.Status)
	}
	c := &conn{nc: nc, br: br, waiting: map[int64]chan message{}}
	go c.readLoop()
	return c, nil
}

func (c *conn) close() { _ = c.nc.Close() }

func (c *conn) call(method string, params any, timeout time.Duration) (json.RawMessage, error) {
	c.mu.Lock()
	if c.err != nil {
		c.mu.Unlock()
		return nil, c.err
	}
	c.nextID++
	id := c.nextID
	reply := make(chan message, 1)
	c.waiting[id] = reply
	c.mu.Unlock()
	body, err := json.Marshal(map[string]any{"id": id, "method": method, "params": params})
	if err != nil {
		return nil, err
	}
	if err := c.writeFrame(body); err != nil {
		return nil, err
	}
	select {
	case m, ok := <-reply:
		if !ok {
			return nil, c.err
		}
		if m.Error != nil {
			return nil, fmt.Errorf("%s (%d)", m.Error.Message, m.Error.Code)
		}
		return m.Result, nil
	case <-time.After(timeout):
		return nil, fmt.Errorf("no answer within %v", timeout)
	}
}

func (c *conn) writeFrame(payload []byte) error {
	c.writeMu.Lock()
	defer c.writeMu.Unlock()
	header := []byte{0x81} // FIN, text
	switch n := len(payload); {
	case n < 126:
		header = append(header, 0x80|byte(n))
	case n <= 0xffff:
		header = append(header, 0x80|126, byte(n>>8), byte(n))
	default:
		header = append(header, 0x80|127)
		header = binary.BigEndian.AppendUint64(header, uint64(n))
	}
	mask := make([]byte, 4)
	_, _ = rand.Read(mask)
	header = append(header, mask...)
	masked := make([]byte, len(payload))
	for i, b := range payload {
		masked[i] = b ^ mask[i%4]
	}
	_, err := c.nc.Write(append(header, masked...))
	return err
}

func (c *conn) readLoop() {
	var err error
	defer func() {
		c.mu.Lock()
		c.err = fmt.Errorf("devtools connection closed: %w", err)
		for id, ch := range c.waiting {
			close(ch)
			delete(c.waiting, id)
		}
		c.mu.Unlock()
	}()
	var msg []byte
	for {
		var fin bool
		var opcode byte
		var payload []byte
		if fin, opcode, payload, err = c.readFrame(); err != nil {
			return
		}
		switch opcode {
		case 0x8: // close
			err = errors.New("closed by chromium")
			return
		case 0x9, 0xA: // ping, pong: chromium sends no pings to its clients
			continue
		}
		msg = append(msg, payload...)
		if !fin {
			continue
		}
		var m message
		if json.Unmarshal(msg, &m) == nil {
			if m.ID != 0 {
				c.mu.Lock()
				ch := c.waiting[m.ID]
				delete(c.waiting, m.ID)
				c.mu.Unlock()
				if ch != nil {
					ch <- m
				}
			} else if m.Method != "" && c.onEvent != nil {
				c.onEvent(m.Method, m.Params)
			}
		}
		msg = nil
	}
}

func (c *conn) readFrame() (fin bool, opcode byte, payload []byte, err error) {
	var h [2]byte
	if _, err = io.ReadFull(c.br, h[:]); err != nil {
		return
	}
	fin, opcode = h[0]&0x80 != 0, h[0]&0x0f
	n := uint64(h[1] & 0x7f)
	switch n {
	case 126:
		var ext [2]byte
		if _, err = io.ReadFull(c.br, ext[:]); err != nil {
			return
		}
		n = uint64(binary.BigEndian.Uint16(ext[:]))
	case 127:
		var ext [8]byte
		if _, err = io.ReadFull(c.br, ext[:]); err != nil {
			return
		}
		n = binary.BigEndian.Uint64(ext[:])
	}
	switch {
	case h[1]&0x80 != 0:
		err = errors.New("masked frame: a server must not mask (RFC 6455 5.1)")
		return
	case n > 256<<20:
		err = fmt.Errorf("frame of %d bytes", n)
		return
	}
	payload = make([]byte, n)
	_, err = io.ReadFull(c.br, payload)
	return
}
