// Package baseurl owns one question: at which scheme://host did a request
// reach this deployment? The OAuth redirect (FromRequest, as the client
// sees us) and the prompt-drain trigger (OwnHost, never chosen by a client
// header) both need it when PUBLIC_URL is not set.
package baseurl

import (
	"errors"
	"net/http"
	"strings"
)

// ErrBadHost says the request does not name a usable host.
var ErrBadHost = errors.New("cannot tell this deployment's address from the request's Host / X-Forwarded-Host; set PUBLIC_URL")

// OwnHost is "scheme://host" from the request's Host and r.TLS alone, for
// a request that carries a secret: X-Forwarded-Host and -Proto are headers
// any client may send, and must never choose where a secret goes (or that
// it goes in the clear). On Vercel the Host is what routed the request to
// this deployment (and VERCEL_URL is used before it); the fallback serves
// `vercel dev` and servers like it.
func OwnHost(r *http.Request) (string, error) {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	if !validHost(r.Host) {
		return "", ErrBadHost
	}
	return scheme + "://" + r.Host, nil
}

// FromRequest is "scheme://host" as the client sees us: Vercel's proxy
// sets X-Forwarded-Proto and X-Forwarded-Host; without them (stravahook
// serve) r.TLS and r.Host tell.
func FromRequest(r *http.Request) (string, error) {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	if proto := strings.ToLower(firstValue(r.Header.Get("X-Forwarded-Proto"))); proto == "http" || proto == "https" {
		scheme = proto
	}
	host := r.Host
	if fwd := firstValue(r.Header.Get("X-Forwarded-Host")); fwd != "" {
		host = fwd
	}
	if !validHost(host) {
		return "", ErrBadHost
	}
	return scheme + "://" + host, nil
}

// firstValue is the first of a proxy header's comma-separated values: the
// one the client-facing proxy set.
func firstValue(v string) string {
	v, _, _ = strings.Cut(v, ",")
	return strings.TrimSpace(v)
}

// validHost accepts host[:port], IPv6 literals included, and nothing that
// could change the meaning of the URL it is put in.
func validHost(h string) bool {
	if h == "" || len(h) > 255 {
		return false
	}
	for _, c := range h {
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case strings.ContainsRune(".-_:[]", c):
		default:
			return false
		}
	}
	return true
}
