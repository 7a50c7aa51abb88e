// Package certs generates the certificates credgate serves its webhooks with: an ECDSA CA and
// a serving certificate signed by it, with the service's DNS names and localhost as SANs.
package certs
