//go:build e2e

package e2e

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/credgate/credgate/api/v1alpha1"
)

// The tests of this file hold what a Job's or CronJob's pods get to the Credentials as they are
// when each pod is created: the API server stores workloads with the credential labels in their
// pod templates and nothing else, the real Job and CronJob controllers create the pods, and the
// pod webhook injects them.

const trainerLabel = "credentials.credgate.dev/trainer"

// epochs is the one variable of the workloads' containers' own.
var epochs = corev1.EnvVar{Name: "EPOCHS", Value: "3"}

// trainerCredential creates the Secret secret (keys token and run-group) and, the first time,
// the generic Credential trainer reading it: TRAINER_TOKEN and TRAINER_RUN_GROUP from the
// Secret, TRAINER_MODE=offline.
func trainerCredential(t *testing.T, ns, secret string) {
	t.Helper()
	if err := c.Client.Create(t.Context(), &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: secret, Namespace: ns},
		StringData: map[string]string{"token": "t", "run-group": "g"}}); err != nil {
		t.Fatal(err)
	}
	if err := c.Client.Create(t.Context(), &v1alpha1.Credential{ObjectMeta: metav1.ObjectMeta{Name: "trainer", Namespace: ns},
		Spec: v1alpha1.CredentialSpec{Type: v1alpha1.TypeGeneric, SecretRef: &v1alpha1.SecretReference{Name: secret},
			Env: []v1alpha1.EnvVar{
				{Name: "TRAINER_TOKEN", Key: new("token")},
				{Name: "TRAINER_RUN_GROUP", Key: new("run-group")},
				{Name: "TRAINER_MODE", Value: new("offline")},
			}}}); err != nil {
		t.Fatal(err)
	}
}

// changeTrainerCredential renames trainer's Secret to secret (created here) and removes its
// TRAINER_RUN_GROUP and TRAINER_MODE, then waits until credgate injects it so.
func changeTrainerCredential(t *testing.T, ns, secret string) {
	t.Helper()
	if err := c.Client.Create(t.Context(), &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: secret, Namespace: ns},
		StringData: map[string]string{"token": "t2"}}); err != nil {
		t.Fatal(err)
	}
	var cred v1alpha1.Credential
	if err := c.Client.Get(t.Context(), client.ObjectKey{Namespace: ns, Name: "trainer"}, &cred); err != nil {
		t.Fatal(err)
	}
	cred.Spec.SecretRef.Name = secret
	cred.Spec.Env = cred.Spec.Env[:1]
	if err := c.Client.Update(t.Context(), &cred); err != nil {
		t.Fatal(err)
	}
	// credgate reads Credentials from an informer: a pod submitted as a server-side dry run
	// shows when it has the update.
	eventually(t, 10*time.Second, func() (bool, string) {
		p := pod(ns, fmt.Sprintf("probe-%d", time.Now().UnixNano()), map[string]string{trainerLabel: "true"})
		if err := c.Client.Create(t.Context(), p, client.DryRunAll); err != nil {
			return false, err.Error()
		}
		env := p.Spec.Containers[0].Env
		return len(env) == 1 && secretOf(env[0]) == secret, fmt.Sprintf("a pod admitted now gets %s", envString(env))
	})
}

// checkCurrentTrainer checks that the container has what trainer injects after
// changeTrainerCredential, and nothing it injected before.
func checkCurrentTrainer(t *testing.T, what string, ctr corev1.Container, secret string) {
	t.Helper()
	var names []string
	for _, e := range ctr.Env {
		if strings.HasPrefix(e.Name, "TRAINER_") {
			names = append(names, e.Name)
		}
	}
	if !slices.Equal(names, []string{"TRAINER_TOKEN"}) {
		t.Errorf("%s: trainer's variables are %v, want TRAINER_TOKEN alone (TRAINER_RUN_GROUP and TRAINER_MODE were removed from the Credential): %s",
			what, names, envString(ctr.Env))
	}
	for _, e := range ctr.Env {
		if e.Name == "TRAINER_TOKEN" && secretOf(e) != secret {
			t.Errorf("%s: TRAINER_TOKEN reads Secret %q, want %q (renamed in the Credential)", what, secretOf(e), secret)
		}
	}
}

// checkTemplateLabelsOnly checks that a workload's pod template, as the API server stores it,
// has the credential label and nothing injected: its one container has its own variables
// alone.
func checkTemplateLabelsOnly(t *testing.T, what string, tmpl corev1.PodTemplateSpec, want string, own ...corev1.EnvVar) {
	t.Helper()
	if got := tmpl.Labels[trainerLabel]; got != want {
		t.Errorf("%s: pod template label %s = %q, want %q", what, trainerLabel, got, want)
	}
	if v, ok := tmpl.Annotations["credgate.dev/injected"]; ok {
		t.Errorf("%s: pod template has credgate.dev/injected %q", what, v)
	}
	for _, ctr := range tmpl.Spec.Containers {
		if !slices.Equal(ctr.Env, own) || len(ctr.VolumeMounts) > 0 {
			t.Errorf("%s: container %s of the pod template has %s and mounts %v, want %s and nothing injected",
				what, ctr.Name, envString(ctr.Env), ctr.VolumeMounts, envString(own))
		}
	}
	if len(tmpl.Spec.Volumes)+len(tmpl.Spec.ImagePullSecrets) > 0 {
		t.Errorf("%s: pod template has volumes %v, pull secrets %v", what, tmpl.Spec.Volumes, tmpl.Spec.ImagePullSecrets)
	}
}

// cronJob returns a suspended CronJob (its controller makes no Job of its own) labelled for
// trainer.
func cronJob(ns, name string) *batchv1.CronJob {
	return &batchv1.CronJob{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: map[string]string{trainerLabel: "true"}},
		Spec: batchv1.CronJobSpec{Schedule: "0 0 1 1 *", Suspend: new(true),
			JobTemplate: batchv1.JobTemplateSpec{Spec: batchv1.JobSpec{Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{
				RestartPolicy: corev1.RestartPolicyNever,
				Containers:    []corev1.Container{{Name: "trainer", Image: "trainer:1", Env: []corev1.EnvVar{epochs}}},
			}}}},
		},
	}
}

// jobFromCronJob creates a Job from the CronJob's job template, owned by it, as
// kubectl create job --from=cronjob/<name> does, and returns the pod the Job controller makes.
func jobFromCronJob(t *testing.T, ns, cronJob, name string) corev1.Pod {
	t.Helper()
	var cj batchv1.CronJob
	if err := c.Client.Get(t.Context(), client.ObjectKey{Namespace: ns, Name: cronJob}, &cj); err != nil {
		t.Fatal(err)
	}
	annotations := map[string]string{"cronjob.kubernetes.io/instantiate": "manual"}
	for k, v := range cj.Spec.JobTemplate.Annotations {
		annotations[k] = v
	}
	j := &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: cj.Spec.JobTemplate.Labels, Annotations: annotations,
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "batch/v1", Kind: "CronJob", Name: cj.Name, UID: cj.UID, Controller: new(true)}}},
		Spec: cj.Spec.JobTemplate.Spec,
	}
	if err := c.Client.Create(t.Context(), j); err != nil {
		t.Fatalf("create Job %s from CronJob %s: %v", name, cronJob, err)
	}
	var stored batchv1.Job
	if err := c.Client.Get(t.Context(), client.ObjectKey{Namespace: ns, Name: name}, &stored); err != nil {
		t.Fatal(err)
	}
	checkTemplateLabelsOnly(t, "Job "+name+" as stored", stored.Spec.Template, cj.Spec.JobTemplate.Spec.Template.Labels[trainerLabel], epochs)
	return jobPod(t, ns, name)
}

// TestCronJobPodsGetCurrentCredentials: a CronJob is stored with trainer's label in its pod
// template and nothing injected. The Credential then drops two variables and reads a renamed
// Secret; the pod of a Job made from the CronJob afterwards gets the Credential as it is now —
// not the variables it had when the CronJob was created, not its old Secret (which, injected
// into the template, made every later pod a conflicting-env refusal).
func TestCronJobPodsGetCurrentCredentials(t *testing.T) {
	ns := namespace(t)
	trainerCredential(t, ns, "trainer-v1")
	if err := c.Client.Create(t.Context(), cronJob(ns, "nightly")); err != nil {
		t.Fatalf("create CronJob: %v", err)
	}
	var cj batchv1.CronJob
	if err := c.Client.Get(t.Context(), client.ObjectKey{Namespace: ns, Name: "nightly"}, &cj); err != nil {
		t.Fatal(err)
	}
	checkTemplateLabelsOnly(t, "CronJob as stored", cj.Spec.JobTemplate.Spec.Template, "true", epochs)

	changeTrainerCredential(t, ns, "trainer-v2")
	p := jobFromCronJob(t, ns, "nightly", "nightly-manual-1")
	if ref := metav1.GetControllerOf(&p); ref == nil || ref.Kind != "Job" || ref.Name != "nightly-manual-1" {
		t.Errorf("pod %s is not controlled by Job nightly-manual-1: %v", p.Name, ref)
	}
	checkCurrentTrainer(t, "pod of the Job made from the CronJob", p.Spec.Containers[0], "trainer-v2")
	if p.Annotations["credgate.dev/injected"] == "" {
		t.Errorf("pod lacks credgate.dev/injected: %v", p.Annotations)
	}
}

// TestCronJobLabelSetToFalse: setting a CronJob's credential label to "false" after it was
// created (an UPDATE) reaches the label credgate copied into its pod template, and the pods of
// its later Jobs get no credential.
func TestCronJobLabelSetToFalse(t *testing.T) {
	ns := namespace(t)
	trainerCredential(t, ns, "trainer-v1")
	if err := c.Client.Create(t.Context(), cronJob(ns, "nightly")); err != nil {
		t.Fatalf("create CronJob: %v", err)
	}
	var cj batchv1.CronJob
	if err := c.Client.Get(t.Context(), client.ObjectKey{Namespace: ns, Name: "nightly"}, &cj); err != nil {
		t.Fatal(err)
	}
	cj.Labels[trainerLabel] = "false" // kubectl label cronjob nightly credentials.credgate.dev/trainer=false --overwrite
	if err := c.Client.Update(t.Context(), &cj); err != nil {
		t.Fatalf("update CronJob: %v", err)
	}
	if err := c.Client.Get(t.Context(), client.ObjectKey{Namespace: ns, Name: "nightly"}, &cj); err != nil {
		t.Fatal(err)
	}
	checkTemplateLabelsOnly(t, "CronJob as stored after the update", cj.Spec.JobTemplate.Spec.Template, "false", epochs)

	p := jobFromCronJob(t, ns, "nightly", "nightly-manual-1")
	for _, e := range p.Spec.Containers[0].Env {
		if strings.HasPrefix(e.Name, "TRAINER_") {
			t.Errorf("the pod of a Job made after the label was set to false has %s: %s", e.Name, envString(p.Spec.Containers[0].Env))
		}
	}
	if v, ok := p.Annotations["credgate.dev/injected"]; ok {
		t.Errorf("pod has credgate.dev/injected %q, want none", v)
	}
}

// TestJobPodsCreatedAfterCredentialChange: a Job created suspended is stored with nothing
// injected; its pods, created once it is resumed after the Credential changed, get the
// Credential as it is then.
func TestJobPodsCreatedAfterCredentialChange(t *testing.T) {
	ns := namespace(t)
	trainerCredential(t, ns, "trainer-v1")
	j := job(ns, "train", []string{"trainer"})
	j.Spec.Suspend = new(true)
	if err := c.Client.Create(t.Context(), j); err != nil {
		t.Fatalf("create Job: %v", err)
	}
	var stored batchv1.Job
	if err := c.Client.Get(t.Context(), client.ObjectKey{Namespace: ns, Name: "train"}, &stored); err != nil {
		t.Fatal(err)
	}
	checkTemplateLabelsOnly(t, "Job as stored", stored.Spec.Template, "true")

	changeTrainerCredential(t, ns, "trainer-v2")
	resume := client.RawPatch(types.MergePatchType, []byte(`{"spec":{"suspend":false}}`))
	if err := c.Client.Patch(t.Context(), &stored, resume); err != nil {
		t.Fatalf("resume Job: %v", err)
	}
	p := jobPod(t, ns, "train")
	checkCurrentTrainer(t, "pod of the resumed Job", p.Spec.Containers[0], "trainer-v2")
}

// TestEarlierInjectionRemoved: objects carrying an injection by an earlier version of credgate
// — a Job whose pod template it injected, as a CronJob injected before the upgrade makes them,
// and a pod of such a Job — are stored without it: the Job's template with the label alone,
// its pod and the pod with what trainer injects now. The pod's creator is warned.
func TestEarlierInjectionRemoved(t *testing.T) {
	ns := namespace(t)
	trainerCredential(t, ns, "trainer-v1")
	changeTrainerCredential(t, ns, "trainer-v2")
	// What credgate injected into a pod template when trainer still read trainer-v1 and set
	// TRAINER_RUN_GROUP, with a volume under its reserved names. (A literal the Credential no
	// longer sets cannot be told from the pod's own, and would stay: docs/credentials.md.)
	earlier := func(meta *metav1.ObjectMeta, spec *corev1.PodSpec) {
		meta.Labels = map[string]string{trainerLabel: "true"}
		meta.Annotations = map[string]string{"credgate.dev/injected": "trainer sha256:0123456789abcdef"}
		ctr := &spec.Containers[0]
		ctr.Env = append(ctr.Env,
			corev1.EnvVar{Name: "TRAINER_TOKEN", ValueFrom: secretRef("trainer-v1", "token")},
			corev1.EnvVar{Name: "TRAINER_RUN_GROUP", ValueFrom: secretRef("trainer-v2", "run-group")})
		ctr.VolumeMounts = append(ctr.VolumeMounts, corev1.VolumeMount{Name: "credgate-trainer", MountPath: "/var/run/secrets/credgate/trainer", ReadOnly: true})
		spec.Volumes = append(spec.Volumes, corev1.Volume{Name: "credgate-trainer",
			VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: "trainer-v1"}}})
	}

	t.Run("Job", func(t *testing.T) {
		j := job(ns, "train", nil, epochs)
		earlier(&j.Spec.Template.ObjectMeta, &j.Spec.Template.Spec)
		if err := c.Client.Create(t.Context(), j); err != nil {
			t.Fatalf("create Job: %v", err)
		}
		var stored batchv1.Job
		if err := c.Client.Get(t.Context(), client.ObjectKey{Namespace: ns, Name: "train"}, &stored); err != nil {
			t.Fatal(err)
		}
		checkTemplateLabelsOnly(t, "Job as stored", stored.Spec.Template, "true", epochs)
		p := jobPod(t, ns, "train")
		checkCurrentTrainer(t, "pod of the Job", p.Spec.Containers[0], "trainer-v2")
		if slices.ContainsFunc(p.Spec.Volumes, func(v corev1.Volume) bool { return v.Name == "credgate-trainer" }) {
			t.Errorf("the pod has the earlier injection's volume: %v", p.Spec.Volumes)
		}
	})

	t.Run("Pod", func(t *testing.T) {
		var warnings warningCollector
		cfg := rest.CopyConfig(c.Config)
		cfg.WarningHandler = &warnings
		cl, err := client.New(cfg, client.Options{Scheme: c.Client.Scheme()})
		if err != nil {
			t.Fatal(err)
		}
		p := pod(ns, "train-0", nil)
		earlier(&p.ObjectMeta, &p.Spec)
		if err := cl.Create(t.Context(), p); err != nil {
			t.Fatalf("create the pod: %v", err)
		}
		var stored corev1.Pod
		if err := c.Client.Get(t.Context(), client.ObjectKey{Namespace: ns, Name: "train-0"}, &stored); err != nil {
			t.Fatal(err)
		}
		checkCurrentTrainer(t, "pod as stored", stored.Spec.Containers[0], "trainer-v2")
		if slices.ContainsFunc(stored.Spec.Volumes, func(v corev1.Volume) bool { return v.Name == "credgate-trainer" }) {
			t.Errorf("the pod has the earlier injection's volume: %v", stored.Spec.Volumes)
		}
		if len(stored.Spec.Containers[0].VolumeMounts) > 0 {
			t.Errorf("the pod mounts %v", stored.Spec.Containers[0].VolumeMounts)
		}
		if !slices.ContainsFunc(warnings.all(), func(w string) bool {
			return strings.Contains(w, "this pod carries an injection of trainer by an earlier version of credgate")
		}) {
			t.Errorf("warnings %q, want one about the earlier injection", warnings.all())
		}
	})
}

// warningCollector keeps the warnings the API server returns.
type warningCollector struct {
	mu sync.Mutex
	w  []string
}

func (c *warningCollector) HandleWarningHeader(_ int, _ string, text string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.w = append(c.w, text)
}

func (c *warningCollector) all() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.w)
}

func secretRef(name, key string) *corev1.EnvVarSource {
	return &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: name}, Key: key}}
}

// secretOf is the Secret a variable reads, "" for a literal.
func secretOf(e corev1.EnvVar) string {
	if e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil {
		return ""
	}
	return e.ValueFrom.SecretKeyRef.Name
}

// envString shows variables by name and source, never a value.
func envString(env []corev1.EnvVar) string {
	parts := make([]string, len(env))
	for i, e := range env {
		switch s := secretOf(e); {
		case s != "":
			parts[i] = e.Name + "<-" + s + "/" + e.ValueFrom.SecretKeyRef.Key
		case e.ValueFrom != nil:
			parts[i] = e.Name + "<-(field)"
		default:
			parts[i] = e.Name + "=(literal)"
		}
	}
	return "[" + strings.Join(parts, " ") + "]"
}
