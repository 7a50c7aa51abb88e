// Command demo is make run: it starts a local cluster (package test/cluster: etcd,
// kube-apiserver, the Job controller, credgate serve over TLS), applies the examples, submits
// one Job that is admitted and one that is refused, and shows the injected pod, the refusal as
// kubectl shows it and the audit record. Then it keeps serving until Ctrl-C (--once exits).
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/credgate/credgate/test/cluster"
)

func main() {
	once := flag.Bool("once", false, "exit after the demo instead of serving until Ctrl-C")
	flag.Parse()
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, *once)
	cancel()
	if err != nil {
		fmt.Fprintf(os.Stderr, "error: %v\n", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, once bool) error {
	root, err := os.Getwd()
	if err != nil {
		return err
	}
	c, err := cluster.Start(ctx, cluster.Options{Root: root, Progress: os.Stdout})
	if err != nil {
		return err
	}
	defer func() {
		c.Stop()
		c.RemoveWorkDir()
	}()

	// A client that prints the API server's warnings as kubectl does.
	cfg := rest.CopyConfig(c.Config)
	cfg.WarningHandler = rest.NewWarningWriter(os.Stdout, rest.WarningWriterOptions{})
	cl, err := client.New(cfg, client.Options{Scheme: c.Client.Scheme()})
	if err != nil {
		return err
	}

	step("applying examples/credentials.yaml")
	if err := cl.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "ml-team"}}); err != nil {
		return err
	}
	if err := apply(ctx, cl, filepath.Join(root, "examples", "credentials.yaml")); err != nil {
		return err
	}

	step("kubectl apply -f examples/training-job.yaml   (admitted)")
	job := &batchv1.Job{}
	if err := read(filepath.Join(root, "examples", "training-job.yaml"), job); err != nil {
		return err
	}
	if err := cl.Create(ctx, job); err != nil {
		return fmt.Errorf("the training Job was not admitted: %w", err)
	}
	fmt.Printf("job.batch/%s created\n", job.Name)
	pod, err := jobPod(ctx, cl, job)
	if err != nil {
		return err
	}
	step("the pod the Job controller created, as stored: kubectl get pod " + pod.Name + " -o yaml (spec)")
	out, err := yaml.Marshal(map[string]any{"metadata": map[string]any{"name": pod.Name, "annotations": pod.Annotations,
		"labels": pod.Labels}, "spec": map[string]any{"initContainers": pod.Spec.InitContainers,
		"containers": pod.Spec.Containers, "volumes": pod.Spec.Volumes, "imagePullSecrets": pod.Spec.ImagePullSecrets}})
	if err != nil {
		return err
	}
	fmt.Print(string(out))

	step("kubectl apply -f examples/refused-job.yaml   (refused)")
	refused := &batchv1.Job{}
	if err := read(filepath.Join(root, "examples", "refused-job.yaml"), refused); err != nil {
		return err
	}
	err = cl.Create(ctx, refused)
	if err == nil {
		return errors.New("the refused Job was admitted")
	}
	var status apierrors.APIStatus
	if errors.As(err, &status) {
		fmt.Printf("Error from server (%s): error when creating \"examples/refused-job.yaml\": %s\n", status.Status().Reason, err)
	} else {
		return err
	}

	step("the audit records, " + c.AuditPath + " (credgate audit reads them as a table)")
	data, err := os.ReadFile(c.AuditPath)
	if err != nil {
		return err
	}
	fmt.Print(string(data))

	if once {
		return nil
	}
	step("serving; try it yourself, then Ctrl-C to stop")
	fmt.Printf("  export KUBECONFIG=%s\n  (kubectl is not part of the build; any Kubernetes client works)\n", c.Kubeconfig)
	<-ctx.Done()
	return nil
}

func step(s string) { fmt.Printf("\n== %s\n", s) }

func read(path string, into any) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	return yaml.UnmarshalStrict(data, into)
}

// apply creates every object of a multi-document YAML file.
func apply(ctx context.Context, cl client.Client, path string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	for doc := range bytes.SplitSeq(data, []byte("\n---\n")) {
		u := &unstructured.Unstructured{}
		if err := yaml.Unmarshal(doc, &u.Object); err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		if len(u.Object) == 0 {
			continue
		}
		if err := cl.Create(ctx, u); err != nil {
			return fmt.Errorf("create %s %s: %w", u.GetKind(), u.GetName(), err)
		}
		fmt.Printf("%s/%s created\n", strings.ToLower(u.GetKind()), u.GetName())
	}
	return nil
}

// jobPod waits for the Job controller to create job's pod.
func jobPod(ctx context.Context, cl client.Client, job *batchv1.Job) (*corev1.Pod, error) {
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		var pods corev1.PodList
		if err := cl.List(ctx, &pods, client.InNamespace(job.Namespace), client.MatchingLabels{"batch.kubernetes.io/job-name": job.Name}); err != nil {
			return nil, err
		}
		if len(pods.Items) > 0 {
			return &pods.Items[0], nil
		}
	}
	return nil, fmt.Errorf("the Job controller created no pod for %s in 60s", job.Name)
}
