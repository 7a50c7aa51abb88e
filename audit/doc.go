// Package audit records admission decisions that refused, warned about or flagged a workload:
// one versioned JSON line per decision, written durably (group-committed and fsynced) before
// the webhook answers, to a rotated file and/or a stream such as stdout. It also reads the
// records back for credgate audit. A record names users, workloads, credentials and rules;
// it never holds an object body or a secret value.
package audit
