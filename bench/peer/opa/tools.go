//go:build tools

// Package tools records the command this module builds, so that go mod tidy keeps its
// dependencies. The Makefile builds it with go build.
package tools

import _ "github.com/open-policy-agent/opa"
