// Package policies holds credgate's built-in Rego rules (the .rego files beside this one, each
// with a _test.rego) and the engine that evaluates them with users' own policies: compiled and
// prepared once per revision, swapped atomically when the policy directory changes, evaluated
// per admission against an input document built directly as an OPA value.
package policies
