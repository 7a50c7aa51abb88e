// Package webhook serves credgate's admission webhooks over HTTP: per admitted kind (Pods, and
// the workloads whose pod templates it reviews at submission), a mutating and a validating
// endpoint that guard and decode the AdmissionReview once, hand it to package review, and
// answer with the JSON patch of what credgate added (reused for an identical admission while
// nothing it read has changed), a denial, or an error — never confusing the three. Each
// answer is counted and timed (Metrics), refusals leave a Warning Event, and the decisions an
// auditor wants are recorded before the answer. Handlers holds what they share and registers
// them on a controller-runtime webhook server.
//
// The process around them — the manager, its caches, certificates, the policy watcher,
// readiness and shutdown — is package internal/app's.
package webhook
