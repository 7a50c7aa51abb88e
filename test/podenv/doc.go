// Package podenv materialises one container of a pod as its process would see it: the
// environment the kubelet builds from literal values and Secret keys, and the files of the Secret
// volumes the container mounts, written under a temporary root. Tests use it to hand a real
// client library (an AWS SDK, oauth2/google, ssh) exactly what a mutated pod would give it.
package podenv
