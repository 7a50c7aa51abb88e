// Package eval runs credgate's admission path offline: it reads workloads and Credentials (and
// optionally their Secrets) from YAML, reviews every workload exactly as the webhook does, and
// writes the objects as the API server would store them — the submitted document with the
// webhook's JSON patch applied.
package eval
