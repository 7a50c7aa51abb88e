// Package cluster runs a real, local control plane with credgate in it: etcd and
// kube-apiserver (controller-runtime's envtest, from bin/), kube-controller-manager with the
// Job and CronJob controllers, and credgate serve as its own process over TLS, registered with
// the webhook configurations of manifests/webhook and the CRD of manifests/crd. The end-to-end
// tests and make run use it. The binaries are built from source by make control-plane build.
package cluster
