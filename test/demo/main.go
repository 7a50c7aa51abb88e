// Command demo is make run: it starts a local cluster (package test/cluster: etcd,
// kube-apiserver, the Job controller, credgate serve over TLS), applies the examples, submits
// one Job that is admitted and one that is refused, and shows the injected pod, the refusal as
// kubectl shows it and the audit record. Then it keeps serving until Ctrl-C (--once exits).
//
// --policies DIR (make run POLICIES=DIR) has credgate serve the policies of DIR, reloaded as
// they change. Everything the run writes — the audit log, every process's log, the kubeconfig,
// the certificates — is in --workdir (make run WORKDIR=, default .run), recreated at each
// start and kept after exit; only the control plane's data (etcd) is removed.
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/credgate/credgate/test/cluster"
)

// reloadInterval is how often credgate serve checks --policies for changes.
const reloadInterval = time.Second

// marker marks a work directory as make run's, holding the pid of the run that made it: only
// such a directory (or an empty one) is removed at start.
const marker = ".credgate-run"

type options struct {
	once     bool
	policies string // as given, relative or absolute
	workDir  string // as given, relative or absolute
}

func main() {
	var o options
	flag.BoolVar(&o.once, "once", false, "exit after the demo instead of serving until Ctrl-C")
	flag.StringVar(&o.policies, "policies", "", "serve the .rego policies and data of this directory (credgate serve --policy-dir), reloaded as they change")
	flag.StringVar(&o.workDir, "workdir", ".run", "work directory, recreated at start and kept after exit: audit log, logs, kubeconfig, certificates")
	flag.Parse()
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, o)
	cancel()
	if err != nil {
		fmt.Fprintf(os.Stderr, "error: %v\n", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, o options) error {
	root, err := os.Getwd()
	if err != nil {
		return err
	}
	show := func(path string) string { return relTo(root, path) }
	credgate := filepath.Join(root, "bin", "credgate")

	// Checked before anything starts: a policy directory credgate serve cannot load would
	// only show as credgate serve never becoming ready.
	var policyDir string
	if o.policies != "" {
		if policyDir, err = checkPolicies(credgate, o.policies); err != nil {
			return err
		}
	}
	work, err := prepareWorkDir(o.workDir)
	if err != nil {
		return err
	}
	auditPath := filepath.Join(work, "audit.log")
	serveLog := filepath.Join(work, "serve.log")
	step("work directory " + work + " (recreated at each start, kept after exit)")
	fmt.Printf("  audit log %s, credgate serve's log %s\n", show(auditPath), show(serveLog))

	// cluster.Start makes its work directory (logs, kubeconfig, certificates) with
	// os.MkdirTemp("", …), that is in $TMPDIR: have it made in ours. envtest's etcd and
	// kube-apiserver directories land there too, and are removed when they stop.
	if err := os.Setenv("TMPDIR", work); err != nil {
		return err
	}
	args := []string{"--audit-file=" + auditPath} // the last of a flag given twice wins
	if policyDir != "" {
		args = append(args, "--policy-dir="+policyDir, "--policy-reload-interval="+reloadInterval.String())
	}
	c, err := cluster.Start(ctx, cluster.Options{Root: root, Progress: os.Stdout, CredgateArgs: args})
	clusterDir := linkServeLog(work, serveLog)
	defer func() {
		if c != nil {
			step("stopping the cluster")
			c.Stop()
		}
		step("stopped; the work directory stays: " + work)
		fmt.Printf("  %s audit %s   # the audit records (credgate audit summary: counts)\n", show(credgate), show(auditPath))
		fmt.Printf("  %s   # credgate serve's log\n", show(serveLog))
		if clusterDir != "" {
			fmt.Printf("  %s/   # every process's log, the kubeconfig, the certificates\n", show(clusterDir))
		}
		fmt.Println("  (make run recreates it)")
	}()
	if err != nil {
		return err
	}
	if policyDir != "" {
		step("serving the policies of " + policyDir + ", reloaded within " + reloadInterval.String() + " of a change")
		fmt.Printf("  a change that does not load, compile or evaluate is not served (the previous one stays);\n"+
			"  reloads and their errors, with file and line, are in credgate serve's log:\n"+
			"    tail -f %s | grep policies\n", show(serveLog))
	}

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

	// The policies of --policies may decide otherwise than the built-in ones alone: then the
	// demo says so and goes on.
	step("kubectl apply -f examples/training-job.yaml   (admitted)")
	job := &batchv1.Job{}
	if err := read(filepath.Join(root, "examples", "training-job.yaml"), job); err != nil {
		return err
	}
	if err := cl.Create(ctx, job); err != nil {
		if policyDir == "" || !printRefusal(err, "examples/training-job.yaml") {
			return fmt.Errorf("the training Job was not admitted: %w", err)
		}
		fmt.Printf("(refused with the policies of %s; admitted without them)\n", policyDir)
	} else {
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
	}

	step("kubectl apply -f examples/refused-job.yaml   (refused)")
	refused := &batchv1.Job{}
	if err := read(filepath.Join(root, "examples", "refused-job.yaml"), refused); err != nil {
		return err
	}
	err = cl.Create(ctx, refused)
	switch {
	case err == nil && policyDir != "":
		fmt.Printf("job.batch/%s created\n(admitted with the policies of %s; refused without them)\n", refused.Name, policyDir)
	case err == nil:
		return errors.New("the refused Job was admitted")
	case !printRefusal(err, "examples/refused-job.yaml"):
		return err
	}

	step("the audit records, " + show(auditPath) + " (credgate audit reads them as a table)")
	data, err := os.ReadFile(auditPath)
	if err != nil {
		return err
	}
	fmt.Print(string(data))

	if o.once {
		return nil
	}
	step("serving; try it yourself, then Ctrl-C to stop")
	fmt.Printf("  export KUBECONFIG=%s\n  (kubectl is not part of the build; any Kubernetes client works)\n", c.Kubeconfig)
	if policyDir != "" {
		fmt.Printf("  edit %s: served within %s; tail -f %s | grep policies shows the reloads and their errors\n",
			show(policyDir), reloadInterval, show(serveLog))
		fmt.Printf("  %s policy test %s   # your Rego tests\n", show(credgate), show(policyDir))
	}
	<-ctx.Done()
	return nil
}

// printRefusal prints err as kubectl does if the API server refused the object, and reports
// whether it did.
func printRefusal(err error, file string) bool {
	var status apierrors.APIStatus
	if !errors.As(err, &status) {
		return false
	}
	fmt.Printf("Error from server (%s): error when creating %q: %s\n", status.Status().Reason, file, err)
	return true
}

// checkPolicies returns dir made absolute, or an error if it is no directory or its policies
// do not load and compile with the built-in ones (credgate policy list).
func checkPolicies(credgate, dir string) (string, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	fi, err := os.Stat(abs)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return "", fmt.Errorf("POLICIES=%s: no such directory (%s)", dir, abs)
	case err != nil:
		return "", fmt.Errorf("POLICIES=%s: %w", dir, err)
	case !fi.IsDir():
		return "", fmt.Errorf("POLICIES=%s: not a directory (%s)", dir, abs)
	}
	if _, err := os.Stat(credgate); err != nil {
		return "", errors.New("bin/credgate is missing: run make build")
	}
	out, err := exec.Command(credgate, "policy", "list", abs).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("POLICIES=%s: credgate serve would not start with these policies (credgate policy list %s: %w):\n%s",
			dir, abs, err, bytes.TrimSpace(out))
	}
	return abs, nil
}

// prepareWorkDir makes dir afresh and returns it made absolute. A directory already there is
// removed only if it is empty or make run made it, and no make run still running uses it.
func prepareWorkDir(dir string) (string, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	entries, err := os.ReadDir(abs)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return "", fmt.Errorf("work directory %s: %w", abs, err)
	case len(entries) > 0:
		data, err := os.ReadFile(filepath.Join(abs, marker))
		if err != nil {
			return "", fmt.Errorf("work directory %s is not empty and was not made by make run (no %s in it): "+
				"remove it, or choose another with WORKDIR=", abs, marker)
		}
		if pid, err := strconv.Atoi(strings.TrimSpace(string(data))); err == nil && pid != os.Getpid() && alive(pid) {
			return "", fmt.Errorf("work directory %s is in use by the make run of pid %d: stop it, or choose another with WORKDIR=", abs, pid)
		}
	}
	if err := os.RemoveAll(abs); err != nil {
		return "", err
	}
	if err := os.MkdirAll(abs, 0o750); err != nil {
		return "", err
	}
	return abs, os.WriteFile(filepath.Join(abs, marker), []byte(strconv.Itoa(os.Getpid())+"\n"), 0o600)
}

// alive reports whether a process of that pid runs (or may: one of another user).
func alive(pid int) bool {
	p, err := os.FindProcess(pid)
	if err != nil {
		return false
	}
	err = p.Signal(syscall.Signal(0))
	return err == nil || errors.Is(err, syscall.EPERM)
}

// linkServeLog links serveLog to credgate serve's log in the cluster's work directory, the one
// directory cluster.Start made in work, and returns that directory ("" if there is none).
func linkServeLog(work, serveLog string) string {
	dirs, _ := filepath.Glob(filepath.Join(work, "credgate-cluster-*"))
	if len(dirs) != 1 {
		return ""
	}
	target := filepath.Join(filepath.Base(dirs[0]), "credgate.log")
	if _, err := os.Stat(filepath.Join(work, target)); err == nil {
		_ = os.Symlink(target, serveLog)
	}
	return dirs[0]
}

// relTo is path relative to root when it is under root, else path.
func relTo(root, path string) string {
	if rel, err := filepath.Rel(root, path); err == nil && rel != "." && rel != ".." &&
		!strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
		return rel
	}
	return path
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
	docs, err := cluster.Documents(path)
	if err != nil {
		return err
	}
	for _, doc := range docs {
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
	var pod *corev1.Pod
	err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 60*time.Second, true, func(context.Context) (bool, error) {
		var pods corev1.PodList
		if err := cl.List(ctx, &pods, client.InNamespace(job.Namespace), client.MatchingLabels{"batch.kubernetes.io/job-name": job.Name}); err != nil {
			return false, err
		}
		if len(pods.Items) > 0 {
			pod = &pods.Items[0]
		}
		return pod != nil, nil
	})
	if wait.Interrupted(err) && ctx.Err() == nil {
		return nil, fmt.Errorf("the Job controller created no pod for %s in 60s", job.Name)
	}
	return pod, err
}
