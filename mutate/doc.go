// Package mutate injects resolved credentials into a pod: environment variables through
// secretKeyRef, one read-only secret volume per credential, image-pull secrets and the
// credgate.dev/injected annotation (Apply); it removes what an injection by an earlier version
// of credgate recognisably added (Strip); and it derives the JSON patches of both (Patch of what
// is added, Rewrite of what is taken away). It is pure and idempotent: no I/O, the same input
// gives the same output, and applying it to its own output changes nothing.
package mutate
