//go:build e2e

package e2e

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/credgate/credgate/api/v1alpha1"
	"github.com/credgate/credgate/audit"
	"github.com/credgate/credgate/charts"
	"github.com/credgate/credgate/manifests"
)

var nsSeq atomic.Int64

// namespace creates a namespace for one test and deletes it after.
func namespace(t *testing.T) string {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("e2e-%d-%d", time.Now().Unix()%100000, nsSeq.Add(1))}}
	if err := c.Client.Create(t.Context(), ns); err != nil {
		t.Fatal(err)
	}
	// t.Context() is canceled before cleanups run: the delete needs a context of its own.
	t.Cleanup(func() { _ = c.Client.Delete(context.Background(), ns) })
	return ns.Name
}

// credential creates a Secret with data and a Credential of type typ reading it.
func credential(t *testing.T, ns, name string, typ v1alpha1.CredentialType, data map[string]string, edit func(*v1alpha1.CredentialSpec)) {
	t.Helper()
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name + "-secret", Namespace: ns}, StringData: data}
	if err := c.Client.Create(t.Context(), secret); err != nil {
		t.Fatal(err)
	}
	cred := &v1alpha1.Credential{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: v1alpha1.CredentialSpec{Type: typ, SecretRef: &v1alpha1.SecretReference{Name: secret.Name}}}
	if edit != nil {
		edit(&cred.Spec)
	}
	if err := c.Client.Create(t.Context(), cred); err != nil {
		t.Fatal(err)
	}
}

// job returns a Job in ns requesting creds with one container.
func job(ns, name string, creds []string, env ...corev1.EnvVar) *batchv1.Job {
	labels := map[string]string{}
	for _, cr := range creds {
		labels["credentials.credgate.dev/"+cr] = "true"
	}
	return &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: labels},
		Spec: batchv1.JobSpec{Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{
			RestartPolicy: corev1.RestartPolicyNever,
			Containers:    []corev1.Container{{Name: "trainer", Image: "trainer:1", Env: env}},
		}}},
	}
}

// jobPod waits for the Job controller to create a pod of Job ns/name, and returns it.
func jobPod(t *testing.T, ns, name string) corev1.Pod {
	t.Helper()
	var pod corev1.Pod
	eventually(t, 60*time.Second, func() (bool, string) {
		var pods corev1.PodList
		if err := c.Client.List(t.Context(), &pods, client.InNamespace(ns), client.MatchingLabels{"batch.kubernetes.io/job-name": name}); err != nil {
			return false, err.Error()
		}
		if len(pods.Items) == 0 {
			return false, "the Job controller created no pod of Job " + name
		}
		pod = pods.Items[0]
		return true, ""
	})
	return pod
}

// eventually polls cond every 100ms for up to d, and fails with the last message.
func eventually(t *testing.T, d time.Duration, cond func() (bool, string)) {
	t.Helper()
	var msg string
	// Not t.Context(): a cleanup waits too, after the test's context is canceled.
	err := wait.PollUntilContextTimeout(context.Background(), 100*time.Millisecond, d, true, func(context.Context) (bool, error) {
		var ok bool
		ok, msg = cond()
		return ok, nil
	})
	if err != nil {
		t.Fatalf("after %s: %s", d, msg)
	}
}

// TestJobPodsGetCredentials (scenario a): a labelled Job, through the real Job controller,
// becomes a pod that the API server stores with every injected variable, volume and pull
// secret.
func TestJobPodsGetCredentials(t *testing.T) {
	ns := namespace(t)
	credential(t, ns, "wandb", v1alpha1.TypeWandB, map[string]string{"api-key": "wandb-placeholder"}, nil)
	credential(t, ns, "kaggle", v1alpha1.TypeKaggle, map[string]string{"kaggle.json": `{"username":"u","key":"k"}`}, nil)
	reg := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "registry-secret", Namespace: ns},
		Type: corev1.SecretTypeDockerConfigJson, StringData: map[string]string{".dockerconfigjson": `{"auths":{}}`}}
	if err := c.Client.Create(t.Context(), reg); err != nil {
		t.Fatal(err)
	}
	if err := c.Client.Create(t.Context(), &v1alpha1.Credential{ObjectMeta: metav1.ObjectMeta{Name: "registry", Namespace: ns},
		Spec: v1alpha1.CredentialSpec{Type: v1alpha1.TypeDockerRegistry, SecretRef: &v1alpha1.SecretReference{Name: reg.Name}}}); err != nil {
		t.Fatal(err)
	}

	j := job(ns, "train", []string{"wandb", "kaggle", "registry"})
	if err := c.Client.Create(t.Context(), j); err != nil {
		t.Fatalf("create Job: %v", err)
	}
	pod := jobPod(t, ns, "train")
	if ref := metav1.GetControllerOf(&pod); ref == nil || ref.Kind != "Job" || ref.Name != "train" {
		t.Errorf("pod %s is not controlled by Job train: %v", pod.Name, ref)
	}
	ctr := pod.Spec.Containers[0]
	env := map[string]*corev1.EnvVarSource{}
	for _, e := range ctr.Env {
		env[e.Name] = e.ValueFrom
	}
	if src := env["WANDB_API_KEY"]; src == nil || src.SecretKeyRef == nil || src.SecretKeyRef.Name != "wandb-secret" || src.SecretKeyRef.Key != "api-key" {
		t.Errorf("WANDB_API_KEY not injected from wandb-secret/api-key: %+v", ctr.Env)
	}
	if _, ok := env["KAGGLE_CONFIG_DIR"]; !ok {
		t.Errorf("KAGGLE_CONFIG_DIR not injected: %+v", ctr.Env)
	}
	if !slices.ContainsFunc(pod.Spec.Volumes, func(v corev1.Volume) bool {
		return v.Secret != nil && v.Secret.SecretName == "kaggle-secret"
	}) {
		t.Errorf("no volume of kaggle-secret: %+v", pod.Spec.Volumes)
	}
	if !slices.ContainsFunc(ctr.VolumeMounts, func(m corev1.VolumeMount) bool { return m.ReadOnly && strings.Contains(m.Name, "kaggle") }) {
		t.Errorf("kaggle volume not mounted read-only: %+v", ctr.VolumeMounts)
	}
	if !slices.Contains(pod.Spec.ImagePullSecrets, corev1.LocalObjectReference{Name: "registry-secret"}) {
		t.Errorf("registry-secret not in imagePullSecrets: %+v", pod.Spec.ImagePullSecrets)
	}
	if pod.Annotations["credgate.dev/injected"] == "" {
		t.Errorf("pod lacks the credgate.dev/injected annotation: %v", pod.Annotations)
	}
}

// TestAdminScopedRefused (scenario b): a Job using an admin-scoped credential is refused at
// create with the policy's message; the refusal is in the audit file and left an Event.
func TestAdminScopedRefused(t *testing.T) {
	ns := namespace(t)
	credential(t, ns, "aws-admin", v1alpha1.TypeAWS, map[string]string{"aws_access_key_id": "AKIA", "aws_secret_access_key": "s"},
		func(s *v1alpha1.CredentialSpec) {
			s.Access.PolicyDocument = &apiextensionsv1.JSON{Raw: []byte(`{"Statement":{"Effect":"Allow","Action":"*","Resource":"*"}}`)}
		})
	err := c.Client.Create(t.Context(), job(ns, "train", []string{"aws-admin"}))
	if err == nil || !strings.Contains(err.Error(), "[admin-scoped-credential]") {
		t.Fatalf("create Job: err = %v, want a refusal naming admin-scoped-credential", err)
	}
	if !apierrors.IsForbidden(err) {
		t.Errorf("refusal is not Forbidden: %v", err)
	}
	eventually(t, 10*time.Second, func() (bool, string) {
		recs, err := auditRecords()
		if err != nil {
			return false, err.Error()
		}
		for _, r := range recs {
			if r.Namespace == ns && r.Event == audit.EventDenied && r.Kind == "Job" && r.Name == "train" &&
				slices.ContainsFunc(r.Violations, func(v audit.Violation) bool { return v.Rule == "admin-scoped-credential" }) {
				return true, ""
			}
		}
		return false, fmt.Sprintf("no denial of Job %s/train in the audit file (%d records)", ns, len(recs))
	})
	eventually(t, 20*time.Second, func() (bool, string) {
		var evs eventsv1.EventList
		if err := c.Client.List(t.Context(), &evs, client.InNamespace(ns)); err != nil {
			return false, err.Error()
		}
		for _, e := range evs.Items {
			if e.Reason == "CredentialsRejected" && e.Type == corev1.EventTypeWarning && strings.Contains(e.Note, "admin-scoped-credential") {
				return true, ""
			}
		}
		return false, fmt.Sprintf("no CredentialsRejected Event in %s (%d events)", ns, len(evs.Items))
	})
}

// TestConflictRefused (scenario c): a Job whose container already sets a variable the
// credential injects is refused at submission.
func TestConflictRefused(t *testing.T) {
	ns := namespace(t)
	credential(t, ns, "wandb", v1alpha1.TypeWandB, map[string]string{"api-key": "k"}, nil)
	err := c.Client.Create(t.Context(), job(ns, "train", []string{"wandb"}, corev1.EnvVar{Name: "WANDB_API_KEY", Value: "mine"}))
	if err == nil || !strings.Contains(err.Error(), "[conflicting-env]") {
		t.Fatalf("create Job: err = %v, want a refusal naming conflicting-env", err)
	}
}

// TestCredentialLifecycle (scenario f): a Credential created, updated or deleted is what the
// next admission sees: a Job's, and a pod's, which is when credentials are injected.
func TestCredentialLifecycle(t *testing.T) {
	ns := namespace(t)
	create := func(name string) error { return c.Client.Create(t.Context(), job(ns, name, []string{"late"})) }
	if err := create("before"); err == nil || !strings.Contains(err.Error(), "[unknown-credential]") {
		t.Fatalf("before the Credential exists: err = %v, want unknown-credential", err)
	}
	credential(t, ns, "late", v1alpha1.TypeGeneric, map[string]string{"token": "t"}, func(s *v1alpha1.CredentialSpec) {
		s.Env = []v1alpha1.EnvVar{{Name: "LATE_TOKEN", Key: new("token")}}
	})
	// Created a moment ago: the informer may not have it yet; the direct GET on a miss does.
	if err := create("created"); err != nil {
		t.Fatalf("right after the Credential was created: %v", err)
	}
	var cred v1alpha1.Credential
	if err := c.Client.Get(t.Context(), client.ObjectKey{Namespace: ns, Name: "late"}, &cred); err != nil {
		t.Fatal(err)
	}
	cred.Spec.Env = append(cred.Spec.Env, v1alpha1.EnvVar{Name: "LATE_REGION", Value: new("eu-west-1")})
	if err := c.Client.Update(t.Context(), &cred); err != nil {
		t.Fatal(err)
	}
	n := 0
	eventually(t, 10*time.Second, func() (bool, string) {
		n++
		name := fmt.Sprintf("updated-%d", n)
		p := pod(ns, name, map[string]string{"credentials.credgate.dev/late": "true"})
		if err := c.Client.Create(t.Context(), p); err != nil {
			return false, err.Error()
		}
		env := p.Spec.Containers[0].Env
		return slices.ContainsFunc(env, func(e corev1.EnvVar) bool { return e.Name == "LATE_REGION" }),
			fmt.Sprintf("the pod admitted after the update lacks LATE_REGION: %v", envNames(env))
	})
	if err := c.Client.Delete(t.Context(), &cred); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, func() (bool, string) {
		n++
		err := create(fmt.Sprintf("deleted-%d", n))
		return err != nil && strings.Contains(err.Error(), "[unknown-credential]"),
			fmt.Sprintf("after the Credential was deleted: err = %v", err)
	})
}

func auditRecords() ([]audit.Record, error) {
	data, err := os.ReadFile(c.AuditPath)
	if err != nil {
		return nil, err
	}
	var out []audit.Record
	err = audit.Read(bufio.NewReader(bytes.NewReader(data)), c.AuditPath, func(r *audit.Record) error {
		out = append(out, *r)
		return nil
	}, func(audit.Problem) {})
	return out, err
}

// requestsServed is the total of credgate_admission_requests_total on credgate's metrics
// endpoint.
func requestsServed(t *testing.T) float64 {
	t.Helper()
	return metricSum(t, "credgate_admission_requests_total{")
}

// metricSum is the sum of the samples on credgate's metrics endpoint whose line starts with
// series (a metric name and "{", or a name with labels).
func metricSum(t *testing.T, series string) float64 {
	t.Helper()
	return metricSumAt(t, c.Metrics, series)
}

// metricSumAt is metricSum of the metrics endpoint at addr.
func metricSumAt(t *testing.T, addr, series string) float64 {
	t.Helper()
	res, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	total := 0.0
	sc := bufio.NewScanner(res.Body)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, series) {
			continue
		}
		f := strings.Fields(line)
		v, err := strconv.ParseFloat(f[len(f)-1], 64)
		if err != nil {
			t.Fatal(err)
		}
		total += v
	}
	return total
}

func pod(ns, name string, labels map[string]string) *corev1.Pod {
	return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: labels},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "i:1"}}}}
}

// TestOnlyLabelledPodsDependOnCredgate (scenario d): the webhook configurations send credgate
// only pods that carry a credential label. An unlabelled pod never reaches it (its request
// counter does not move) and is created even while credgate is stopped; a labelled pod is
// refused while it is stopped (fail closed).
func TestOnlyLabelledPodsDependOnCredgate(t *testing.T) {
	ns := namespace(t)
	credential(t, ns, "wandb", v1alpha1.TypeWandB, map[string]string{"api-key": "k"}, nil)
	labelled := map[string]string{"credentials.credgate.dev/wandb": "true"}

	before := requestsServed(t)
	if err := c.Client.Create(t.Context(), pod(ns, "plain", map[string]string{"app": "x"})); err != nil {
		t.Fatal(err)
	}
	if after := requestsServed(t); after != before {
		t.Errorf("an unlabelled pod reached credgate: requests %v -> %v", before, after)
	}
	if err := c.Client.Create(t.Context(), pod(ns, "labelled", labelled)); err != nil {
		t.Fatal(err)
	}
	if after := requestsServed(t); after <= before {
		t.Errorf("a labelled pod did not reach credgate: requests %v -> %v", before, after)
	}

	c.StopCredgate()
	t.Cleanup(func() {
		if err := c.StartCredgate(context.Background()); err != nil {
			t.Fatalf("restart credgate: %v", err)
		}
	})
	if err := c.Client.Create(t.Context(), pod(ns, "plain-while-down", nil)); err != nil {
		t.Errorf("an unlabelled pod was refused while credgate is down: %v", err)
	}
	err := c.Client.Create(t.Context(), pod(ns, "labelled-while-down", labelled))
	if err == nil || !strings.Contains(err.Error(), "failed calling webhook") {
		t.Errorf("a labelled pod while credgate is down: err = %v, want the webhook call to fail", err)
	}
}

// TestManifestsDryRun (scenario g): every object the kustomizations under manifests/ render —
// the base and both certificate overlays — and every object the Helm chart renders (charts/,
// with its default values and with cert-manager certificates) passes a server-side dry run
// against the real API server. Objects of APIs this cluster does not serve (cert-manager's) are
// listed, not sent.
func TestManifestsDryRun(t *testing.T) {
	n := 0
	dryRun := func(t *testing.T, objs []*unstructured.Unstructured) {
		for _, u := range objs {
			if strings.HasSuffix(u.GroupVersionKind().Group, "cert-manager.io") {
				t.Logf("not sent (cert-manager is not installed here): %s %s", u.GetKind(), u.GetName())
				continue
			}
			n++
			// An object the harness installed (the CRD, the webhook configurations pointed
			// at the local credgate, the namespaces and RBAC) is dry-run replaced by the
			// manifest's; any other is dry-run created.
			existing := &unstructured.Unstructured{}
			existing.SetGroupVersionKind(u.GroupVersionKind())
			err := c.Client.Get(t.Context(), client.ObjectKeyFromObject(u), existing)
			switch {
			case err == nil:
				u.SetResourceVersion(existing.GetResourceVersion())
				err = c.Client.Update(t.Context(), u, client.DryRunAll)
			case apierrors.IsNotFound(err):
				err = c.Client.Create(t.Context(), u, client.DryRunAll)
			}
			if err != nil {
				t.Errorf("%s %s: server-side dry run: %v", u.GetKind(), u.GetName(), err)
			}
		}
	}
	for _, dir := range []string{"base", "overlays/self-managed", "overlays/cert-manager"} {
		t.Run(dir, func(t *testing.T) {
			objs, err := manifests.Objects(filepath.Join(c.Root, "manifests", dir))
			if err != nil {
				t.Fatal(err)
			}
			dryRun(t, objs)
		})
	}
	// The chart renders into the release namespace credgate-system, which Helm creates
	// (--create-namespace) and the harness has.
	for _, mode := range []string{"self", "cert-manager"} {
		t.Run("helm/certificates="+mode, func(t *testing.T) {
			objs, err := charts.Render(map[string]any{"certificates": map[string]any{"mode": mode}})
			if err != nil {
				t.Fatalf("render charts/credgate: %v", err)
			}
			if len(objs) == 0 {
				t.Fatal("the chart renders nothing")
			}
			dryRun(t, objs)
		})
	}
	if n == 0 {
		t.Fatal("no objects rendered from manifests/ and charts/")
	}
	t.Logf("%d objects passed a server-side dry run", n)
}

// TestRequireTemporaryNamespace: policies see namespace labels through credgate's informer —
// static AWS keys warn in an ordinary namespace and are refused in one labelled
// credgate.dev/require-temporary=true.
func TestRequireTemporaryNamespace(t *testing.T) {
	plain := namespace(t)
	strict := namespace(t)
	var ns corev1.Namespace
	if err := c.Client.Get(t.Context(), client.ObjectKey{Name: strict}, &ns); err != nil {
		t.Fatal(err)
	}
	ns.Labels["credgate.dev/require-temporary"] = "true"
	if err := c.Client.Update(t.Context(), &ns); err != nil {
		t.Fatal(err)
	}
	keys := map[string]string{"aws_access_key_id": "AKIA", "aws_secret_access_key": "s"}
	credential(t, plain, "aws", v1alpha1.TypeAWS, keys, nil)
	credential(t, strict, "aws", v1alpha1.TypeAWS, keys, nil)
	if err := c.Client.Create(t.Context(), job(plain, "train", []string{"aws"})); err != nil {
		t.Errorf("static keys in an ordinary namespace: %v, want admitted with a warning", err)
	}
	eventually(t, 10*time.Second, func() (bool, string) {
		err := c.Client.Create(t.Context(), job(strict, fmt.Sprintf("train-%d", time.Now().UnixNano()), []string{"aws"}))
		return err != nil && strings.Contains(err.Error(), "[static-credentials]"),
			fmt.Sprintf("static keys where temporary ones are required: err = %v, want a static-credentials refusal", err)
	})
}

func envNames(env []corev1.EnvVar) []string {
	names := make([]string, len(env))
	for i, e := range env {
		names[i] = e.Name
	}
	return names
}
