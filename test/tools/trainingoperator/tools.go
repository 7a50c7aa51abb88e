//go:build tools

// Package tools records the command this module builds, so that go mod tidy keeps its
// dependencies. Build it with:
// go build -o <out> github.com/kubeflow/training-operator/cmd/training-operator.v1
package tools

import _ "github.com/kubeflow/training-operator/cmd/training-operator.v1"
