package strava

import (
	"bytes"
	"math"
)

// decodeEventFast decodes the event shapes Strava actually sends without
// reflection: it runs once per webhook POST. ok=false means "not sure", not
// "invalid": the caller then runs decodeEventSlow, which owns every error
// message. The fast path must never accept a body that decodeEventSlow
// rejects or decodes differently (FuzzDecodeEventFastAgrees checks this), so
// it gives up on anything unusual rather than reproduce encoding/json's
// corner cases: escapes, non-ASCII or control bytes in strings, unknown or
// differently cased keys (encoding/json matches keys case-insensitively),
// duplicate keys, null, numbers that are not plain positive int64s, updates
// values other than strings and booleans, missing fields, enum values the
// slow path would reject, and trailing data.
func decodeEventFast(body []byte) (Event, bool) {
	const (
		seenObjectType = 1 << iota
		seenObjectID
		seenAspectType
		seenUpdates
		seenOwnerID
		seenSubscriptionID
		seenEventTime

		required = seenObjectType | seenObjectID | seenAspectType | seenOwnerID | seenSubscriptionID | seenEventTime
	)
	p := fastScanner{b: body}
	var ev Event
	var seen uint8
	p.skipSpace()
	if !p.consume('{') {
		return Event{}, false
	}
	for {
		p.skipSpace()
		key, ok := p.plainString()
		if !ok {
			return Event{}, false
		}
		p.skipSpace()
		if !p.consume(':') {
			return Event{}, false
		}
		p.skipSpace()
		var field uint8
		switch string(key) {
		case "object_type":
			field = seenObjectType
			ev.ObjectType, ok = p.enum(objectTypes...)
		case "aspect_type":
			field = seenAspectType
			ev.AspectType, ok = p.enum(aspectTypes...)
		case "object_id":
			field = seenObjectID
			ev.ObjectID, ok = p.positiveInt()
		case "owner_id":
			field = seenOwnerID
			ev.OwnerID, ok = p.positiveInt()
		case "event_time":
			field = seenEventTime
			ev.EventTime, ok = p.positiveInt()
		case "subscription_id":
			field = seenSubscriptionID
			if p.peek() == '"' {
				ev.SubscriptionID, ok = p.digitString()
			} else {
				ev.SubscriptionID, ok = p.positiveInt()
			}
		case "updates":
			field = seenUpdates
			ev.Updates, ok = p.updates()
		default:
			return Event{}, false
		}
		// A repeated key would need encoding/json's merge rules (last wins,
		// maps merged): leave it to the slow path.
		if !ok || seen&field != 0 {
			return Event{}, false
		}
		seen |= field
		p.skipSpace()
		if p.consume(',') {
			continue
		}
		if !p.consume('}') {
			return Event{}, false
		}
		break
	}
	p.skipSpace()
	if p.pos != len(p.b) || seen&required != required {
		return Event{}, false
	}
	return ev, true
}

// fastScanner reads the subset of JSON that decodeEventFast accepts. Each
// method reports false as soon as the input leaves that subset.
type fastScanner struct {
	b   []byte
	pos int
}

func (p *fastScanner) skipSpace() {
	for p.pos < len(p.b) {
		switch p.b[p.pos] {
		case ' ', '\t', '\n', '\r':
			p.pos++
		default:
			return
		}
	}
}

func (p *fastScanner) peek() byte {
	if p.pos < len(p.b) {
		return p.b[p.pos]
	}
	return 0
}

func (p *fastScanner) consume(c byte) bool {
	if p.pos < len(p.b) && p.b[p.pos] == c {
		p.pos++
		return true
	}
	return false
}

// plainString reads a JSON string made only of printable ASCII without
// escapes, so its bytes are exactly its decoded value. The result aliases the
// input.
func (p *fastScanner) plainString() ([]byte, bool) {
	if !p.consume('"') {
		return nil, false
	}
	start := p.pos
	for p.pos < len(p.b) {
		c := p.b[p.pos]
		switch {
		case c == '"':
			p.pos++
			return p.b[start : p.pos-1], true
		case c < 0x20 || c >= 0x80 || c == '\\':
			return nil, false
		}
		p.pos++
	}
	return nil, false
}

// enum reads a string that must be one of allowed and returns the constant,
// which costs no allocation and keeps no reference to the body.
func (p *fastScanner) enum(allowed ...string) (string, bool) {
	s, ok := p.plainString()
	if !ok {
		return "", false
	}
	for _, a := range allowed {
		if string(s) == a {
			return a, true
		}
	}
	return "", false
}

// positiveInt reads a JSON number that is a positive int64 written without
// sign, fraction, exponent or leading zero. Anything that follows the digits
// is left for the caller, whose structural check rejects "1.0" or "1e3".
func (p *fastScanner) positiveInt() (int64, bool) {
	if p.peek() == '0' { // "0" is not positive, "01" is not JSON
		return 0, false
	}
	start := p.pos
	for p.pos < len(p.b) && isDigit(p.b[p.pos]) {
		p.pos++
	}
	return parsePositive(p.b[start:p.pos])
}

// digitString reads subscription_id's legacy form, a string of digits. The
// slow path parses it with strconv.ParseInt, so leading zeros are fine here.
func (p *fastScanner) digitString() (int64, bool) {
	s, ok := p.plainString()
	if !ok {
		return 0, false
	}
	for _, c := range s {
		if !isDigit(c) {
			return 0, false
		}
	}
	return parsePositive(s)
}

// updates reads an object whose values are strings or booleans. An empty
// object gives nil, as the slow path does.
func (p *fastScanner) updates() (map[string]string, bool) {
	if !p.consume('{') {
		return nil, false
	}
	p.skipSpace()
	if p.consume('}') {
		return nil, true
	}
	var m map[string]string
	for {
		p.skipSpace()
		key, ok := p.plainString()
		if !ok {
			return nil, false
		}
		p.skipSpace()
		if !p.consume(':') {
			return nil, false
		}
		p.skipSpace()
		var value string
		switch p.peek() {
		case '"':
			raw, ok := p.plainString()
			if !ok {
				return nil, false
			}
			value = internUpdateText(raw)
		case 't':
			if !p.literal("true") {
				return nil, false
			}
			value = "true"
		case 'f':
			if !p.literal("false") {
				return nil, false
			}
			value = "false"
		default:
			return nil, false
		}
		if m == nil {
			m = make(map[string]string, 1)
		} else if _, dup := m[string(key)]; dup {
			return nil, false
		}
		m[internUpdateText(key)] = value
		p.skipSpace()
		if p.consume(',') {
			continue
		}
		if !p.consume('}') {
			return nil, false
		}
		return m, true
	}
}

// literal reads lit; what follows (as in "truex") is the caller's structural
// check's to reject.
func (p *fastScanner) literal(lit string) bool {
	if !bytes.HasPrefix(p.b[p.pos:], []byte(lit)) {
		return false
	}
	p.pos += len(lit)
	return true
}

// internUpdateText copies b into a string, without allocating for the keys
// and values Strava sends most.
func internUpdateText(b []byte) string {
	switch string(b) {
	case "true":
		return "true"
	case "false":
		return "false"
	case "authorized":
		return "authorized"
	case "title":
		return "title"
	case "type":
		return "type"
	case "private":
		return "private"
	}
	return string(b)
}

// parsePositive parses ASCII digits into an int64 > 0, failing on empty
// input, zero and overflow.
func parsePositive(digits []byte) (int64, bool) {
	if len(digits) == 0 {
		return 0, false
	}
	var n int64
	for _, c := range digits {
		d := int64(c - '0')
		if n > (math.MaxInt64-d)/10 {
			return 0, false
		}
		n = n*10 + d
	}
	return n, n > 0
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }
