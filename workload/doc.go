// Package workload knows the objects credgate admits — Pods, batch/v1 Jobs and CronJobs, and
// for offline evaluation the apps/v1 workloads — and what users say on them: which
// credentials a pod requests (credentials.credgate.dev/<name> labels) and which of its
// containers get them (the credgate.dev/containers annotation).
package workload
