// Package mutate injects resolved credentials into a pod: environment variables through
// secretKeyRef, one read-only secret volume per credential, image-pull secrets and the
// credgate.dev/injected annotation. It is pure and idempotent: no I/O, the same input gives the
// same output, and applying it to its own output changes nothing.
package mutate
