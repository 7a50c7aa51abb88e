// Package review decides one admission: it finds the pod an object runs, resolves the
// credentials the pod requests, refuses what must be refused, and injects the rest. The
// webhook and `credgate eval` both call it, so what a user evaluates offline is exactly what
// the cluster does.
package review
