//go:build tools

// Package tools pins build-time dependencies that no Go file imports at run
// time: Vercel's Go runtime compiles each api/*.go against
// github.com/vercel/go-bridge, so `go mod tidy` must keep it in go.mod.
package tools

import _ "github.com/vercel/go-bridge/go/bridge"
