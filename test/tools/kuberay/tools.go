//go:build tools

// Package tools records the command this module builds, so that go mod tidy keeps its
// dependencies. Build it with: go build -o <out> github.com/ray-project/kuberay/ray-operator
package tools

import _ "github.com/ray-project/kuberay/ray-operator"
