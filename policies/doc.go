// Package policies holds credgate's built-in Rego rules (the .rego files beside this one, each
// with a _test.rego) and the engine that evaluates them with users' own policies: compiled and
// prepared once per revision, evaluated on the canary inputs before it serves, swapped
// atomically when the policy directory changes, evaluated per admission against an input
// document built directly as an OPA value.
//
// Packages: each built-in rule is a package under credgate.builtin (credgate.builtin.
// static_credentials), described by its # METADATA annotation; credgate.lib holds the helpers
// user policies may import, credgate.test the fixtures of Rego tests. User policies add to deny
// and warn in credgate.admission, the entry point, and may declare packages of their own outside
// credgate; every other package under credgate, and data.credgate, is reserved (ReservedError).
package policies
