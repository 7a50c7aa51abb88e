package cluster

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/yaml"
)

// RefresherNamespace is the refresher's namespace: its Lease and the source Secrets.
const RefresherNamespace = "credgate-refresher"

// Service accounts of the manifests, whose identities the processes run as.
var (
	ServingAccount   = ServiceAccount{Namespace: Namespace, Name: "credgate"}
	RefresherAccount = ServiceAccount{Namespace: RefresherNamespace, Name: "credgate-refresher"}
)

// ServiceAccount names a service account.
type ServiceAccount struct{ Namespace, Name string }

// Username is the name the API server authorizes the account as.
func (a ServiceAccount) Username() string {
	return "system:serviceaccount:" + a.Namespace + ":" + a.Name
}

// installRBAC creates the RBAC objects of the manifests (manifests/rbac, the self-managed
// overlay's, whose certificates the test cluster uses, and the refresher's), so that credgate
// serve and credgate refresher run with exactly the rights an install gives them — and the
// policy that holds credgate to its webhooks' CA bundle.
func (c *Cluster) installRBAC(ctx context.Context) error {
	for _, f := range []string{"rbac/rbac.yaml", "overlays/self-managed/rbac.yaml", "refresher/namespace.yaml", "refresher/rbac.yaml"} {
		objs, err := readObjects(filepath.Join(c.Root, "manifests", f))
		if err != nil {
			return err
		}
		for _, o := range objs {
			if err := c.Client.Create(ctx, o); err != nil {
				return fmt.Errorf("create %s %s from manifests/%s: %w", o.GetKind(), o.GetName(), f, err)
			}
		}
	}
	return nil
}

// Documents returns the documents of the multi-document YAML file at path, as apimachinery's
// YAML reader splits them (on "---" lines), leaving out those that hold nothing but space.
func Documents(path string) ([][]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	r := utilyaml.NewYAMLReader(bufio.NewReader(f))
	var docs [][]byte
	for {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			return docs, nil
		}
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", path, err)
		}
		if len(bytes.TrimSpace(doc)) > 0 {
			docs = append(docs, doc)
		}
	}
}

// readObjects reads the objects of a multi-document YAML file.
func readObjects(path string) ([]*unstructured.Unstructured, error) {
	docs, err := Documents(path)
	if err != nil {
		return nil, err
	}
	var objs []*unstructured.Unstructured
	for _, doc := range docs {
		u := &unstructured.Unstructured{}
		if err := yaml.Unmarshal(doc, &u.Object); err != nil {
			return nil, fmt.Errorf("parse %s: %w", path, err)
		}
		if len(u.Object) > 0 {
			objs = append(objs, u)
		}
	}
	return objs, nil
}

// kubeconfigFor writes a kubeconfig that authenticates as the service account a (a client
// certificate with its user name and groups: RBAC authorizes it as the account).
func (c *Cluster) kubeconfigFor(a ServiceAccount) (string, error) {
	u, err := c.env.AddUser(envtest.User{Name: a.Username(),
		Groups: []string{"system:serviceaccounts", "system:serviceaccounts:" + a.Namespace}}, nil)
	if err != nil {
		return "", fmt.Errorf("add user %s: %w", a.Username(), err)
	}
	kc, err := u.KubeConfig()
	if err != nil {
		return "", err
	}
	path := filepath.Join(c.WorkDir, "kubeconfig-"+a.Name)
	return path, os.WriteFile(path, kc, 0o600)
}

// ClientAs returns a client that authenticates as the service account a, as credgate serve
// (ServingAccount) or credgate refresher (RefresherAccount) do.
func (c *Cluster) ClientAs(a ServiceAccount) (client.Client, error) {
	path := c.servingKubeconfig
	if a == RefresherAccount {
		path = c.refresherKubeconfig
	}
	if a != ServingAccount && a != RefresherAccount {
		return nil, fmt.Errorf("no kubeconfig for %s", a.Username())
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", path)
	if err != nil {
		return nil, err
	}
	return client.New(cfg, client.Options{Scheme: c.Client.Scheme()})
}
