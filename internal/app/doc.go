// Package app assembles credgate serve: the controller-runtime manager and its trimmed
// informer caches (Credentials, Namespaces), the webhook server that waits for its
// certificate and serves package webhook's handlers, the policies loaded and watched (files
// and CredentialPolicies) with their status written back, the work of the elected replica
// in terms of the Lease (certificate rotation, CredentialPolicy status), the audit sinks, the
// Event recorder, the metrics (admission, policy, audit, the serving certificate's expiry),
// profiling, readiness, and graceful shutdown (Run). credgate refresher and eval share its
// scheme (NewScheme), and the refresher its Event recorder (NewEventRecorder).
package app
