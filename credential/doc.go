// Package credential turns Credential objects into what gets injected: a preset per type
// applied, the Credential's own env and files merged over it, and the mount paths and
// variables that depend on them derived. It also defines the Store that the webhook (informer
// cache) and credgate eval (files) read Credentials from. Resolution is pure: no I/O.
package credential
