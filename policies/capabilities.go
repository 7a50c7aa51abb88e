package policies

import (
	"slices"
	"sync"

	"github.com/open-policy-agent/opa/v1/ast"
)

// forbiddenBuiltins are the Rego built-in functions policies may not call: they reach out of
// the admission (the network, the server's environment) or make a decision depend on chance.
// A policy that names one does not compile, with the function in the error.
var forbiddenBuiltins = []string{
	"http.send",
	"net.lookup_ip_addr",
	"opa.runtime",
	"rand.intn",
	"uuid.rfc4122",
	"providers.aws.sign_req",
	"trace", // a trace note could quote the input into OPA's tracer; use messages instead
}

// capabilities are OPA's capabilities for this version less forbiddenBuiltins, computed once.
var capabilities = sync.OnceValue(func() *ast.Capabilities {
	c := ast.CapabilitiesForThisVersion()
	c.Builtins = slices.DeleteFunc(slices.Clone(c.Builtins), func(b *ast.Builtin) bool {
		return slices.Contains(forbiddenBuiltins, b.Name)
	})
	return c
})
