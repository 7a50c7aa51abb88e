// Package webhook serves credgate's admission webhooks over HTTPS with controller-runtime:
// a mutating handler per admitted kind (Pods, batch/v1 Jobs and CronJobs) that guards and
// decodes the request, hands it to package review, and answers with a JSON patch computed from
// the diff, a denial, or an error — never confusing the three.
package webhook
