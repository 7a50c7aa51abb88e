// Package webhook serves credgate's admission webhooks over HTTPS with controller-runtime: per
// admitted kind (Pods, and the workloads whose pod templates it reviews at submission), a
// mutating and a validating endpoint that guard and decode the AdmissionReview once, hand it to
// package review, and answer with the JSON patch of what credgate added (reused for an
// identical admission while nothing it read has changed), a denial, or an error — never
// confusing the three. It also assembles credgate serve: the manager and its trimmed caches,
// certificate rotation, the policy watcher and CredentialPolicy status, audit, Events,
// metrics, readiness, and graceful shutdown (Run).
package webhook
