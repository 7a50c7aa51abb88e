package webhook

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/go-openapi/jsonpointer"
	"github.com/google/go-cmp/cmp"
	admissionv1 "k8s.io/api/admission/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/credgate/credgate/credential"
	"github.com/credgate/credgate/policies"
	"github.com/credgate/credgate/review"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/golden")

// outcome is what the API server acts on in an AdmissionResponse.
type outcome struct {
	UID     types.UID
	Allowed bool
	Code    int32
	Patched bool
}

func outcomeOf(r *admissionv1.AdmissionResponse) outcome {
	return outcome{UID: r.UID, Allowed: r.Allowed, Code: r.Result.Code, Patched: len(r.Patch) > 0}
}

// staticAWSWarning is the built-in static-credentials rule's warning for the aws credential.
const staticAWSWarning = "[static-credentials] credential aws gives the pod long-lived keys: AWS (AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN); prefer temporary credentials (an assumed role with a session policy, or web identity)"

// setsWandbKey makes the first container of a fixture's pod, or Job's pod template, set
// WANDB_API_KEY itself.
func setsWandbKey(req map[string]any) {
	spec := req["object"].(map[string]any)["spec"].(map[string]any)
	if tmpl, ok := spec["template"].(map[string]any); ok {
		spec = tmpl["spec"].(map[string]any)
	}
	ctr := spec["containers"].([]any)[0].(map[string]any)
	ctr["env"] = []any{map[string]any{"name": "WANDB_API_KEY", "valueFrom": map[string]any{
		"secretKeyRef": map[string]any{"name": "my-own-wandb", "key": "key"}}}}
}

// errCacheTimeout is what a Credential informer that never synced answers, word for word.
var errCacheTimeout = errors.New("Timeout: failed waiting for *v1alpha1.Credential Informer to sync") //nolint:staticcheck // controller-runtime's text

// TestHandler sends AdmissionReview fixtures through Endpoint.ServeHTTP, the path
// the API server's requests take, and checks the AdmissionReview that comes back. Every
// response is also compared with testdata/golden/<case>.json (go test -update rewrites them).
func TestHandler(t *testing.T) {
	tests := []struct {
		name     string
		kind     string // which endpoint: the Kinds entry the Handler serves
		validate bool   // the validating endpoint rather than the mutating one
		fixture  string
		edit     func(req map[string]any) // optional change to the fixture's request
		store    credential.Store         // nil: testStore()
		// enforcement overrides the built-in policies' default actions.
		enforcement policies.Enforcement
		want        outcome
		// wantMsg and notMsg are substrings the response message must and must not contain.
		wantMsg, notMsg []string
		wantWarnings    []string
		// wantLog are substrings the log must contain.
		wantLog []string
		// check inspects the object after the response's patch is applied to it.
		check func(t *testing.T, original, patched []byte)
	}{
		{
			name:    "malformed JSON body",
			kind:    "Pod",
			fixture: "malformed.json",
			want:    outcome{Code: 400},
			wantMsg: []string{"decode the AdmissionReview", "unexpected EOF within \"/request/object\""},
		},
		{
			name:    "deployment sent to the pod endpoint",
			kind:    "Pod",
			fixture: "deployment-to-pod.json",
			want:    outcome{UID: "9a3e7f10-2b4c-4d5e-8f60-718293a4b5c1", Code: 400},
			wantMsg: []string{"this webhook admits v1/Pod, not apps/v1/Deployment", "webhook configuration"},
		},
		{
			name:    "object is not of the kind the request says",
			kind:    "Pod",
			fixture: "pod-labelled.json",
			edit: func(req map[string]any) {
				req["object"] = map[string]any{"apiVersion": "apps/v1", "kind": "Deployment", "metadata": map[string]any{"name": "inference"}}
			},
			want:    outcome{UID: "5b0d1c6e-3f1a-4f0b-9a57-0c1d2e3f4a02", Code: 400},
			wantMsg: []string{"decode Pod"},
		},
		{
			name:    "no object",
			kind:    "Pod",
			fixture: "pod-no-object.json",
			want:    outcome{UID: "5b0d1c6e-3f1a-4f0b-9a57-0c1d2e3f4a06", Code: 400},
			wantMsg: []string{"the admission request has no object"},
		},
		{
			name:    "pod without containers",
			kind:    "Pod",
			fixture: "pod-no-containers.json",
			want:    outcome{UID: "5b0d1c6e-3f1a-4f0b-9a57-0c1d2e3f4a05", Code: 400},
			wantMsg: []string{"no containers", "spec.containers is empty"},
		},
		{
			name:    "pod DELETE is not mutated",
			kind:    "Pod",
			fixture: "pod-delete.json",
			want:    outcome{UID: "5b0d1c6e-3f1a-4f0b-9a57-0c1d2e3f4a07", Allowed: true, Code: 200},
			wantMsg: []string{"does not mutate this operation"},
		},
		{
			name:    "pod UPDATE is not mutated",
			kind:    "Pod",
			fixture: "pod-update.json",
			want:    outcome{UID: "5b0d1c6e-3f1a-4f0b-9a57-0c1d2e3f4a08", Allowed: true, Code: 200},
			wantMsg: []string{"does not mutate this operation"},
		},
		{
			name:    "unlabelled pod",
			kind:    "Pod",
			fixture: "pod-unlabelled.json",
			want:    outcome{UID: "5b0d1c6e-3f1a-4f0b-9a57-0c1d2e3f4a01", Allowed: true, Code: 200},
			wantMsg: []string{"no credentials requested"},
		},
		{
			name:    "label value yes",
			kind:    "Pod",
			fixture: "pod-label-yes.json",
			want:    outcome{UID: "5b0d1c6e-3f1a-4f0b-9a57-0c1d2e3f4a03", Code: 403},
			wantMsg: []string{
				"[invalid-credential-label]",
				`label credentials.credgate.dev/wandb has value "yes"`,
				`use "true" to request the credential or "false" to opt out`,
			},
			wantLog: []string{`"msg"="refused"`, `"rules"=["invalid-credential-label"]`},
		},
		{
			name:    "unknown credential",
			kind:    "Pod",
			fixture: "pod-unknown-credential.json",
			want:    outcome{UID: "5b0d1c6e-3f1a-4f0b-9a57-0c1d2e3f4a04", Code: 403},
			wantMsg: []string{
				"[unknown-credential]",
				`credential "openai" does not exist in namespace "ml-team" (it has: aws, hf, kaggle, mlflow, wandb)`,
				"credentials.credgate.dev/openai",
			},
			// The namespace that has an openai Credential is not disclosed.
			notMsg:  []string{"other-team", `"wandb" does not exist`},
			wantLog: []string{`"rules"=["unknown-credential"]`, `"credentials"=["openai" "wandb"]`},
		},
		{
			name:    "credential store fails",
			kind:    "Pod",
			fixture: "pod-labelled.json",
			store:   &fakeStore{Store: testStore(), getErr: errCacheTimeout},
			want:    outcome{UID: "5b0d1c6e-3f1a-4f0b-9a57-0c1d2e3f4a02", Code: 500},
			wantMsg: []string{"credgate could not review the request; see the credgate logs"},
			notMsg:  []string{"Informer", "Timeout", "wandb", "refused", "denied"},
			wantLog: []string{`"msg"="review failed"`, errCacheTimeout.Error(), `"uid"="5b0d1c6e-3f1a-4f0b-9a57-0c1d2e3f4a02"`},
		},
		{
			name:    "credential store fails listing names for an unknown credential",
			kind:    "Pod",
			fixture: "pod-unknown-credential.json",
			store:   &fakeStore{Store: testStore(), namesErr: errCacheTimeout},
			want:    outcome{UID: "5b0d1c6e-3f1a-4f0b-9a57-0c1d2e3f4a04", Code: 500},
			wantMsg: []string{"credgate could not review the request; see the credgate logs"},
			notMsg:  []string{"Informer", "openai", "does not exist"},
			wantLog: []string{`"msg"="review failed"`, errCacheTimeout.Error()},
		},
		{
			name:    "labelled job",
			kind:    "Job",
			fixture: "job-labelled.json",
			want:    outcome{UID: "c47e0a2b-6d1f-4e83-9b25-3a4c5d6e7f81", Allowed: true, Code: 200, Patched: true},
			wantLog: []string{`"msg"="checked; its pods get the credentials when they are created"`, `"credentials"=["kaggle" "wandb"]`},
			// The pod template gets the Job's credential labels and nothing else: the Job
			// controller's pods get the credentials when they are created.
			check: func(t *testing.T, original, patched []byte) {
				checkLabelsOnly(t, "Job", original, patched, map[string]string{
					"app":                             "train-llm",
					"credentials.credgate.dev/wandb":  "true",
					"credentials.credgate.dev/kaggle": "true",
				})
			},
		},
		{
			// What mutate would leave alone is still shown when the Job is submitted, though
			// nothing but labels reaches its template.
			name:        "job that already sets a credential variable, conflicting-env enforced as warn",
			kind:        "Job",
			fixture:     "job-labelled.json",
			edit:        setsWandbKey,
			enforcement: policies.Enforcement{"conflicting-env": policies.ActionWarn},
			want:        outcome{UID: "c47e0a2b-6d1f-4e83-9b25-3a4c5d6e7f81", Allowed: true, Code: 200, Patched: true},
			wantWarnings: []string{
				`[conflicting-env] container "trainer" already sets WANDB_API_KEY, which credential wandb injects; remove it from the container (or, for a literal, mark the Credential's variable overridable)`,
				`credential wandb: container "trainer" already sets WANDB_API_KEY; credgate left the container's definition in place`,
			},
			check: func(t *testing.T, original, patched []byte) {
				checkLabelsOnly(t, "Job", original, patched, map[string]string{
					"app":                             "train-llm",
					"credentials.credgate.dev/wandb":  "true",
					"credentials.credgate.dev/kaggle": "true",
				})
			},
		},
		{
			// What a client other than the API server may send: no pod template metadata, no
			// status, no resources. Re-encoding the typed Job adds them; the patch must not.
			name:    "minimal job",
			kind:    "Job",
			fixture: "job-labelled.json",
			edit: func(req map[string]any) {
				job := req["object"].(map[string]any)
				delete(job, "status")
				tmpl := job["spec"].(map[string]any)["template"].(map[string]any)
				delete(tmpl, "metadata")
				delete(tmpl["spec"].(map[string]any)["containers"].([]any)[0].(map[string]any), "resources")
			},
			want: outcome{UID: "c47e0a2b-6d1f-4e83-9b25-3a4c5d6e7f81", Allowed: true, Code: 200, Patched: true},
			check: func(t *testing.T, _, patched []byte) {
				for _, path := range []string{"status", "spec.template.metadata.creationTimestamp", "spec.template.spec.containers.0.resources"} {
					if v := lookup(t, patched, path); v != nil {
						t.Errorf("patched job has %s: %v", path, v)
					}
				}
				meta, _ := templateOf(t, "Job", patched)
				want := map[string]string{"credentials.credgate.dev/wandb": "true", "credentials.credgate.dev/kaggle": "true"}
				if diff := cmp.Diff(want, meta.Labels); diff != "" {
					t.Errorf("pod template labels (-want +got):\n%s", diff)
				}
			},
		},
		{
			name:    "job whose pod template opts out",
			kind:    "Job",
			fixture: "job-opt-out.json",
			want:    outcome{UID: "c47e0a2b-6d1f-4e83-9b25-3a4c5d6e7f82", Allowed: true, Code: 200},
			wantMsg: []string{"no credentials requested"},
		},
		{
			name:         "cronjob create",
			kind:         "CronJob",
			fixture:      "cronjob-create.json",
			want:         outcome{UID: "e1f2a3b4-c5d6-4e7f-8a9b-0c1d2e3f4a51", Allowed: true, Code: 200, Patched: true},
			wantWarnings: []string{staticAWSWarning},
			check:        checkCronJob,
		},
		{
			name:         "cronjob update",
			kind:         "CronJob",
			fixture:      "cronjob-update.json",
			want:         outcome{UID: "e1f2a3b4-c5d6-4e7f-8a9b-0c1d2e3f4a52", Allowed: true, Code: 200, Patched: true},
			wantWarnings: []string{staticAWSWarning},
			check:        checkCronJob,
		},
		{
			// The CronJob was created labelled hf, and credgate copied the label into its pod
			// template; the update sets the CronJob's label to "false": the copy follows, and
			// the pods of its later Jobs no longer request hf.
			name:    "cronjob update setting its label to false",
			kind:    "CronJob",
			fixture: "cronjob-update.json",
			edit: cronLabels(
				map[string]any{"credentials.credgate.dev/hf": "true"}, map[string]any{"credentials.credgate.dev/hf": "true"},
				map[string]any{"credentials.credgate.dev/hf": "false"}, map[string]any{"credentials.credgate.dev/hf": "true"}),
			want:         outcome{UID: "e1f2a3b4-c5d6-4e7f-8a9b-0c1d2e3f4a52", Allowed: true, Code: 200, Patched: true},
			wantWarnings: []string{staticAWSWarning},
			check: func(t *testing.T, original, patched []byte) {
				checkLabelsOnly(t, "CronJob", original, patched, map[string]string{
					"app": "nightly-eval", "credentials.credgate.dev/hf": "false", "credentials.credgate.dev/aws": "true",
				})
			},
		},
		{
			name:    "cronjob update removing its label",
			kind:    "CronJob",
			fixture: "cronjob-update.json",
			edit: cronLabels(
				map[string]any{"credentials.credgate.dev/hf": "true"}, map[string]any{"credentials.credgate.dev/hf": "true"},
				map[string]any{}, map[string]any{"credentials.credgate.dev/hf": "true"}),
			want:         outcome{UID: "e1f2a3b4-c5d6-4e7f-8a9b-0c1d2e3f4a52", Allowed: true, Code: 200, Patched: true},
			wantWarnings: []string{staticAWSWarning},
			check: func(t *testing.T, original, patched []byte) {
				checkLabelsOnly(t, "CronJob", original, patched, map[string]string{
					"app": "nightly-eval", "credentials.credgate.dev/aws": "true",
				})
			},
		},
		{
			// A pod template label the update sets itself is the template's own: it wins over
			// the CronJob's, as at creation.
			name:    "cronjob update setting its label to false and the template label to true",
			kind:    "CronJob",
			fixture: "cronjob-update.json",
			edit: cronLabels(
				map[string]any{"credentials.credgate.dev/hf": "true"}, map[string]any{},
				map[string]any{"credentials.credgate.dev/hf": "false"}, map[string]any{"credentials.credgate.dev/hf": "true"}),
			want:         outcome{UID: "e1f2a3b4-c5d6-4e7f-8a9b-0c1d2e3f4a52", Allowed: true, Code: 200},
			wantWarnings: []string{staticAWSWarning},
		},
		{
			name:    "native sidecar, pod resources and fields from a newer API server",
			kind:    "Pod",
			fixture: "pod-future-fields.json",
			want:    outcome{UID: "3c2b1a09-8f7e-4d6c-9b5a-4f3e2d1c0b01", Allowed: true, Code: 200, Patched: true},
			check: func(t *testing.T, original, patched []byte) {
				for _, path := range []string{
					"spec.someFutureField",
					"spec.resources",
					"spec.initContainers.0.restartPolicy",
					"spec.containers.0.futureContainerField",
					"spec.containers.0.resources",
				} {
					want, got := lookup(t, original, path), lookup(t, patched, path)
					if want == nil {
						t.Fatalf("fixture has no %s", path)
					}
					if diff := cmp.Diff(want, got); diff != "" {
						t.Errorf("%s changed (-want +got):\n%s", path, diff)
					}
				}
				if got := lookup(t, patched, "spec.containers.0.resources.limits.cpu"); got != "1000m" {
					t.Errorf(`cpu limit is %v, want "1000m" as the user spelled it`, got)
				}
				// The native sidecar is a container like any other: it gets the credentials too.
				_, spec := templateOf(t, "Pod", patched)
				for _, c := range append(spec.InitContainers, spec.Containers...) {
					if names := envNames(c.Env); !slices.Contains(names, "HF_TOKEN") || !slices.Contains(names, "KAGGLE_CONFIG_DIR") {
						t.Errorf("container %s has env %v, want HF_TOKEN and KAGGLE_CONFIG_DIR", c.Name, names)
					}
				}
			},
		},
		{
			name:         "training pod created by the job controller",
			kind:         "Pod",
			fixture:      "pod-training.json",
			want:         outcome{UID: "0e8f2a6c-5d41-4b7a-9c3e-81f4d2a6b903", Allowed: true, Code: 200, Patched: true},
			wantWarnings: []string{staticAWSWarning},
			check: func(t *testing.T, _, patched []byte) {
				meta, spec := templateOf(t, "Pod", patched)
				checkInjectedAnnotation(t, meta, "aws,hf,wandb")
				credEnv := []string{
					"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_REGION", "AWS_DEFAULT_REGION",
					"HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "WANDB_API_KEY",
				}
				want := map[string][]string{
					"download": slices.Concat([]string{"AWS_MAX_ATTEMPTS"}, credEnv, []string{"WANDB_PROJECT", "WANDB_ENTITY"}),
					// The trainer sets WANDB_PROJECT itself; the credential's literal is overridable.
					"trainer": slices.Concat([]string{"WANDB_PROJECT", "NCCL_DEBUG", "POD_NAME"}, credEnv, []string{"WANDB_ENTITY"}),
					"metrics": slices.Concat([]string{"EXPORT_INTERVAL"}, credEnv, []string{"WANDB_PROJECT", "WANDB_ENTITY"}),
				}
				got := map[string][]string{}
				for _, c := range append(spec.InitContainers, spec.Containers...) {
					got[c.Name] = envNames(c.Env)
				}
				if diff := cmp.Diff(want, got); diff != "" {
					t.Errorf("env names per container (-want +got):\n%s", diff)
				}
			},
		},
		{
			// The training pod given a file credential too: kaggle's file is mounted beside the
			// containers' own mounts, and nothing the pod sets is lost (checkPatch) — its own
			// mounts, variables and volumes, nor what credgate does not decode (decodeObject):
			// resources, ports, probes, security contexts, affinity.
			name:    "training pod given a file credential beside its own mounts",
			kind:    "Pod",
			fixture: "pod-training.json",
			edit: func(req map[string]any) {
				pod := req["object"].(map[string]any)
				pod["metadata"].(map[string]any)["labels"].(map[string]any)["credentials.credgate.dev/kaggle"] = "true"
				spec := pod["spec"].(map[string]any)
				spec["securityContext"] = map[string]any{"fsGroup": 1000}
				spec["affinity"] = map[string]any{"nodeAffinity": map[string]any{"preferredDuringSchedulingIgnoredDuringExecution": []any{
					map[string]any{"weight": 1, "preference": map[string]any{"matchExpressions": []any{map[string]any{"key": "gpu", "operator": "Exists"}}}}}}}
				trainer := spec["containers"].([]any)[0].(map[string]any)
				trainer["ports"] = []any{map[string]any{"name": "dist", "containerPort": 29500}}
				trainer["livenessProbe"] = map[string]any{"tcpSocket": map[string]any{"port": "dist"}}
				trainer["securityContext"] = map[string]any{"runAsNonRoot": true}
			},
			want:         outcome{UID: "0e8f2a6c-5d41-4b7a-9c3e-81f4d2a6b903", Allowed: true, Code: 200, Patched: true},
			wantWarnings: []string{staticAWSWarning},
			check: func(t *testing.T, original, patched []byte) {
				_, before := templateOf(t, "Pod", original)
				meta, after := templateOf(t, "Pod", patched)
				checkInjectedAnnotation(t, meta, "aws,hf,kaggle,wandb")
				mounts := 0
				for i, c := range append(after.InitContainers, after.Containers...) {
					own := append(before.InitContainers, before.Containers...)[i].VolumeMounts
					if len(own) == 0 || len(c.VolumeMounts) <= len(own) {
						t.Errorf("container %s: %d mounts of its own, %d after: want its own and kaggle's", c.Name, len(own), len(c.VolumeMounts))
					}
					mounts += len(own)
				}
				if mounts == 0 || len(after.Volumes) <= len(before.Volumes) {
					t.Errorf("the pod's own mounts (%d) or volumes (%d, %d after): the case tests nothing", mounts, len(before.Volumes), len(after.Volumes))
				}
			},
		},
		{
			// A pod of a Job that a CronJob injected by an earlier version of credgate made:
			// since then wandb's Secret was renamed (wandb-old-secret to wandb-secret), its
			// WANDB_RUN_GROUP and WANDB_MODE removed, kaggle's file mode changed, and kaggle
			// no longer gives a pull secret. What the earlier injection recognisably added is
			// removed, then the current credentials are injected: no conflicting-env refusal
			// for the renamed Secret, no stale WANDB_RUN_GROUP. WANDB_MODE, a literal, cannot
			// be told from the pod's own and stays; so do the non-target metrics container's
			// own variable and every field credgate's types do not know.
			name:         "pod created from a template an earlier credgate injected",
			kind:         "Pod",
			fixture:      "pod-earlier-injection.json",
			want:         outcome{UID: "7a1d0c3e-2b4f-4e6a-9d8c-5f0e1a2b3c41", Allowed: true, Code: 200, Patched: true},
			wantWarnings: []string{earlierPodWarning},
			check: func(t *testing.T, _, patched []byte) {
				meta, spec := templateOf(t, "Pod", patched)
				checkInjectedAnnotation(t, meta, "kaggle,wandb")
				checkEarlierRemoved(t, spec, []corev1.EnvVar{
					{Name: "KAGGLE_CONFIG_DIR", Value: "/var/run/secrets/credgate/kaggle"},
					secretEnv("WANDB_API_KEY", "wandb-secret", "api-key", false),
					{Name: "WANDB_ENTITY", Value: "ml-team"},
				})
				wantVolumes := []corev1.Volume{{Name: "data", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
					{Name: "credgate-kaggle", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{
						SecretName:  "kaggle-secret",
						Items:       []corev1.KeyToPath{{Key: "kaggle.json", Path: "kaggle.json", Mode: new(int32(0o400))}},
						DefaultMode: new(int32(0o400)),
					}}}}
				if diff := cmp.Diff(wantVolumes, spec.Volumes); diff != "" {
					t.Errorf("volumes (-want +got):\n%s", diff)
				}
				wantMounts := []corev1.VolumeMount{{Name: "data", MountPath: "/data"},
					{Name: "credgate-kaggle", MountPath: "/var/run/secrets/credgate/kaggle", ReadOnly: true}}
				if diff := cmp.Diff(wantMounts, spec.Containers[0].VolumeMounts); diff != "" {
					t.Errorf("trainer volume mounts (-want +got):\n%s", diff)
				}
				// What is kept is kept as submitted, with fields credgate's types do not know.
				for _, path := range []string{"spec.containers.0.env.1.futureEnvField", "spec.volumes.0.futureVolumeField"} {
					if got := lookup(t, patched, path); got != "kept" {
						t.Errorf("%s = %v, want kept", path, got)
					}
				}
			},
		},
		{
			name:    "pod created from a template an earlier credgate injected, requesting nothing now",
			kind:    "Pod",
			fixture: "pod-earlier-injection.json",
			edit: func(req map[string]any) {
				labels := req["object"].(map[string]any)["metadata"].(map[string]any)["labels"].(map[string]any)
				labels["credentials.credgate.dev/wandb"], labels["credentials.credgate.dev/kaggle"] = "false", "false"
			},
			want:         outcome{UID: "7a1d0c3e-2b4f-4e6a-9d8c-5f0e1a2b3c41", Allowed: true, Code: 200, Patched: true},
			wantWarnings: []string{strings.Replace(earlierPodWarning, "removed 4 variables", "removed 3 variables", 1)},
			check: func(t *testing.T, _, patched []byte) {
				meta, spec := templateOf(t, "Pod", patched)
				if v, ok := meta.Annotations["credgate.dev/injected"]; ok {
					t.Errorf("the pod still has credgate.dev/injected: %q", v)
				}
				// Credentials no longer requested vouch for no variable by name: one reading a
				// Secret since renamed stays (mutate.Strip), a limit docs/credentials.md names.
				want := []corev1.EnvVar{
					{Name: "WANDB_PROJECT", Value: "llm-sweeps"},
					{Name: "NCCL_DEBUG", Value: "INFO"},
					secretEnv("WANDB_API_KEY", "wandb-old-secret", "api-key", false),
					{Name: "WANDB_MODE", Value: "offline"},
				}
				if diff := cmp.Diff(want, spec.Containers[0].Env); diff != "" {
					t.Errorf("trainer env (-want +got):\n%s", diff)
				}
				if diff := cmp.Diff([]corev1.VolumeMount{{Name: "data", MountPath: "/data"}}, spec.Containers[0].VolumeMounts); diff != "" {
					t.Errorf("trainer volume mounts (-want +got):\n%s", diff)
				}
			},
		},
		{
			// A Job made by a CronJob whose pod template an earlier credgate injected: the
			// template comes out with the credential labels and nothing of the injection.
			name:    "job whose pod template an earlier credgate injected",
			kind:    "Job",
			fixture: "job-labelled.json",
			edit: func(req map[string]any) {
				tmpl := req["object"].(map[string]any)["spec"].(map[string]any)["template"].(map[string]any)
				tmpl["metadata"].(map[string]any)["annotations"] = map[string]any{"credgate.dev/injected": "kaggle,wandb sha256:0f1e2d3c4b5a6978"}
				spec := tmpl["spec"].(map[string]any)
				ctr := spec["containers"].([]any)[0].(map[string]any)
				ctr["env"] = append(ctr["env"].([]any),
					map[string]any{"name": "KAGGLE_CONFIG_DIR", "value": "/var/run/secrets/credgate/kaggle"},
					map[string]any{"name": "WANDB_API_KEY", "valueFrom": map[string]any{"secretKeyRef": map[string]any{"name": "wandb-secret", "key": "api-key"}}},
					map[string]any{"name": "WANDB_ENTITY", "value": "ml-team"})
				ctr["volumeMounts"] = []any{map[string]any{"name": "credgate-kaggle", "mountPath": "/var/run/secrets/credgate/kaggle", "readOnly": true}}
				spec["volumes"] = []any{map[string]any{"name": "credgate-kaggle", "secret": map[string]any{"secretName": "kaggle-secret"}}}
			},
			want: outcome{UID: "c47e0a2b-6d1f-4e83-9b25-3a4c5d6e7f81", Allowed: true, Code: 200, Patched: true},
			wantWarnings: []string{"this Job's pod template carries an injection of kaggle, wandb by an earlier version of credgate (annotation credgate.dev/injected): " +
				"credgate removed 3 variables, 1 volume, 1 mount and its annotation; credentials are now injected into each pod when it is created (docs/credentials.md)"},
			check: func(t *testing.T, _, patched []byte) {
				// As if the Job had been submitted without the earlier injection.
				checkLabelsOnly(t, "Job", requestOf(t, readFixture(t, "job-labelled.json")).Object.Raw, patched, map[string]string{
					"app":                             "train-llm",
					"credentials.credgate.dev/wandb":  "true",
					"credentials.credgate.dev/kaggle": "true",
				})
			},
		},
		{
			name:    "pod that already sets a credential variable",
			kind:    "Pod",
			fixture: "pod-labelled.json",
			edit:    setsWandbKey,
			want:    outcome{UID: "5b0d1c6e-3f1a-4f0b-9a57-0c1d2e3f4a02", Code: 403},
			wantMsg: []string{`[conflicting-env] container "trainer" already sets WANDB_API_KEY, which credential wandb injects`},
			wantLog: []string{`"rules"=["conflicting-env"]`},
		},
		{
			name:        "pod that already sets a credential variable, conflicting-env enforced as warn",
			kind:        "Pod",
			fixture:     "pod-labelled.json",
			edit:        setsWandbKey,
			enforcement: policies.Enforcement{"conflicting-env": policies.ActionWarn},
			want:        outcome{UID: "5b0d1c6e-3f1a-4f0b-9a57-0c1d2e3f4a02", Allowed: true, Code: 200, Patched: true},
			wantWarnings: []string{
				`[conflicting-env] container "trainer" already sets WANDB_API_KEY, which credential wandb injects; remove it from the container (or, for a literal, mark the Credential's variable overridable)`,
				`credential wandb: container "trainer" already sets WANDB_API_KEY; credgate left the container's definition in place`,
			},
			check: func(t *testing.T, _, patched []byte) {
				_, spec := templateOf(t, "Pod", patched)
				want := []corev1.EnvVar{
					secretEnv("WANDB_API_KEY", "my-own-wandb", "key", false),
					{Name: "WANDB_PROJECT", Value: "experiments"},
					{Name: "WANDB_ENTITY", Value: "ml-team"},
				}
				if diff := cmp.Diff(want, spec.Containers[0].Env); diff != "" {
					t.Errorf("trainer env (-want +got):\n%s", diff)
				}
			},
		},
		{
			name:    "credential not ready",
			kind:    "Pod",
			fixture: "pod-labelled.json",
			edit: func(req map[string]any) {
				req["object"].(map[string]any)["metadata"].(map[string]any)["labels"].(map[string]any)["credentials.credgate.dev/mlflow"] = "true"
			},
			want: outcome{UID: "5b0d1c6e-3f1a-4f0b-9a57-0c1d2e3f4a02", Code: 403},
			wantMsg: []string{
				"[credential-not-ready] credential mlflow is not ready (SecretMissing: Secret ml-team/mlflow-secret not found)",
			},
		},
		{
			name:     "validating: labelled job",
			kind:     "Job",
			validate: true,
			fixture:  "job-labelled.json",
			want:     outcome{UID: "c47e0a2b-6d1f-4e83-9b25-3a4c5d6e7f81", Allowed: true, Code: 200},
		},
		{
			// The validating webhook sees the object after every mutating webhook: a later one
			// may have set a credential's variable.
			name:     "validating: pod that already sets a credential variable",
			kind:     "Pod",
			validate: true,
			fixture:  "pod-labelled.json",
			edit:     setsWandbKey,
			want:     outcome{UID: "5b0d1c6e-3f1a-4f0b-9a57-0c1d2e3f4a02", Code: 403},
			wantMsg:  []string{"[conflicting-env]", "WANDB_API_KEY"},
		},
		{
			name:     "validating: credential store fails",
			kind:     "Pod",
			validate: true,
			fixture:  "pod-labelled.json",
			store:    &fakeStore{Store: testStore(), getErr: errCacheTimeout},
			want:     outcome{UID: "5b0d1c6e-3f1a-4f0b-9a57-0c1d2e3f4a02", Code: 500},
			wantMsg:  []string{"credgate could not review the request; see the credgate logs"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body := readFixture(t, tt.fixture)
			if tt.edit != nil {
				body = editRequest(t, body, tt.edit)
			}
			store := tt.store
			if store == nil {
				store = testStore()
			}
			r := newReviewer(t, store)
			r.Enforcement = tt.enforcement
			m := newHandler(t, tt.kind, r)
			m.ValidateOnly = tt.validate
			var logs logBuffer
			resp, _ := serve(t, newWebhook(t, m, newLogger(&logs)), body)

			if diff := cmp.Diff(tt.want, outcomeOf(resp)); diff != "" {
				t.Errorf("response (-want +got):\n%s\nmessage: %s", diff, resp.Result.Message)
			}
			for _, s := range tt.wantMsg {
				if !strings.Contains(resp.Result.Message, s) {
					t.Errorf("message %q does not contain %q", resp.Result.Message, s)
				}
			}
			for _, s := range tt.notMsg {
				if strings.Contains(resp.Result.Message, s) {
					t.Errorf("message %q contains %q", resp.Result.Message, s)
				}
			}
			if diff := cmp.Diff(tt.wantWarnings, resp.Warnings); diff != "" {
				t.Errorf("warnings (-want +got):\n%s", diff)
			}
			for _, s := range tt.wantLog {
				if !strings.Contains(logs.String(), s) {
					t.Errorf("log does not contain %s; log:\n%s", s, logs.String())
				}
			}
			if !resp.Allowed && resp.Result.Code == 403 && resp.Result.Reason != metav1.StatusReasonForbidden {
				t.Errorf("denial has reason %q, want %q", resp.Result.Reason, metav1.StatusReasonForbidden)
			}
			if len(resp.Patch) > 0 {
				original := requestOf(t, body).Object.Raw
				patched := checkPatch(t, original, resp)
				if tt.check != nil {
					tt.check(t, original, patched)
				}
			} else if tt.check != nil {
				t.Error("response has no patch to check")
			}
			checkGolden(t, resp)
		})
	}
}

// TestHandlerReinvocation feeds each patched object back to the webhook, as the API server
// does under reinvocationPolicy: IfNeeded: the second response must admit it with no patch.
func TestHandlerReinvocation(t *testing.T) {
	tests := []struct {
		kind    string
		fixture string
	}{
		{"Pod", "pod-labelled.json"},
		{"Pod", "pod-future-fields.json"},
		{"Pod", "pod-training.json"},
		{"Pod", "pod-earlier-injection.json"},
		{"Job", "job-labelled.json"},
		{"CronJob", "cronjob-create.json"},
		{"CronJob", "cronjob-update.json"},
	}
	for _, tt := range tests {
		t.Run(tt.fixture, func(t *testing.T) {
			h := newWebhook(t, newHandler(t, tt.kind, newReviewer(t, testStore())), newLogger(&logBuffer{}))
			body := readFixture(t, tt.fixture)
			first, _ := serve(t, h, body)
			if len(first.Patch) == 0 {
				t.Fatalf("first invocation did not patch: %s", first.Result.Message)
			}
			patched, err := applyPatch(requestOf(t, body).Object.Raw, first)
			if err != nil {
				t.Fatal(err)
			}

			second, _ := serve(t, h, withObject(t, body, patched))
			want := outcome{UID: first.UID, Allowed: true, Code: 200}
			if diff := cmp.Diff(want, outcomeOf(second)); diff != "" {
				t.Errorf("second invocation (-want +got):\n%s\npatch: %s", diff, second.Patch)
			}
			if second.PatchType != nil {
				t.Errorf("second invocation has patch type %s and no patch", *second.PatchType)
			}
			checkSettled(t, tt.kind, testNamespace, patched)

			// Then the validating webhook sees the object as it will be stored: it admits it,
			// without repeating the mutating webhook's warnings.
			m := newHandler(t, tt.kind, newReviewer(t, testStore()))
			m.ValidateOnly = true
			validated, _ := serve(t, newWebhook(t, m, newLogger(&logBuffer{})), withObject(t, body, patched))
			if diff := cmp.Diff(want, outcomeOf(validated)); diff != "" {
				t.Errorf("validation (-want +got):\n%s\nmessage: %s", diff, validated.Result.Message)
			}
			if len(validated.Warnings) > 0 {
				t.Errorf("validation warns %q; the mutating webhook already did", validated.Warnings)
			}
		})
	}
}

// TestRegisterServesEveryKind serves Register's webhooks from a real controller-runtime webhook
// server mux over HTTPS, and sends every kind's fixture to every path: each path admits its
// own kind only, the mutating one with a patch, the validating one without.
func TestRegisterServesEveryKind(t *testing.T) {
	fixtures := map[string]string{"Pod": "pod-labelled.json", "Job": "job-labelled.json", "CronJob": "cronjob-create.json"}
	srv := newWebhookServer(t, testStore())
	for _, k := range Kinds {
		for kind, fixture := range fixtures {
			for _, path := range []string{k.Path, k.ValidatePath} {
				t.Run(path+"/"+kind, func(t *testing.T) {
					body := readFixture(t, fixture)
					resp := post(t, srv, srv.URL+path, body)
					want := outcome{UID: requestOf(t, body).UID, Code: 400}
					if kind == k.GVK.Kind {
						want = outcome{UID: want.UID, Allowed: true, Code: 200, Patched: path == k.Path}
					}
					if diff := cmp.Diff(want, outcomeOf(resp)); diff != "" {
						t.Errorf("response (-want +got):\n%s\nmessage: %s", diff, resp.Result.Message)
					}
				})
			}
		}
	}
}

// checkPatch checks what every credgate patch must be: a JSON patch that, first, takes away
// only what credgate may take away — the variables, volumes, mounts, image-pull secrets and
// annotation of an injection by an earlier credgate, a credential label copied into a
// CronJob's pod template that follows the CronJob's (mutate.Rewrite) — then only adds (and
// rewrites credgate's own annotation, or fills a member the object sent as null); that applies
// to the submitted object, and leaves every other value of it in place. It returns the patched
// object.
func checkPatch(t *testing.T, original []byte, resp *admissionv1.AdmissionResponse) []byte {
	t.Helper()
	if resp.PatchType == nil || *resp.PatchType != admissionv1.PatchTypeJSONPatch {
		t.Errorf("patch type %v, want JSONPatch", resp.PatchType)
	}
	var ops []struct {
		Op    string `json:"op"`
		Path  string `json:"path"`
		Value any    `json:"value,omitempty"`
	}
	if err := json.Unmarshal(resp.Patch, &ops); err != nil {
		t.Fatalf("decode patch: %v", err)
	}
	// The operations that take away come first; the document they leave is what the rest
	// must preserve.
	n := 0
	for n < len(ops) && (ops[n].Op == "remove" || ops[n].Op == "replace" && credentialLabelRE.MatchString(ops[n].Path)) {
		if !takenAwayRE.MatchString(ops[n].Path) && !credentialLabelRE.MatchString(ops[n].Path) {
			t.Errorf("patch has %s %s: credgate takes away only an earlier injection and credential labels it copied", ops[n].Op, ops[n].Path)
		}
		n++
	}
	taken := original
	if n > 0 {
		first, err := json.Marshal(ops[:n])
		if err != nil {
			t.Fatal(err)
		}
		if taken, err = applyPatch(original, &admissionv1.AdmissionResponse{Patch: first}); err != nil {
			t.Fatalf("apply the operations that take away: %v\n%s", err, first)
		}
	}
	var o any
	mustUnmarshal(t, taken, &o)
	for _, op := range ops[n:] {
		ownAnnotation := strings.HasSuffix(op.Path, "/annotations/credgate.dev~1injected")
		if op.Op != "add" && (op.Op != "replace" || !ownAnnotation && !isNull(o, op.Path)) {
			t.Errorf("patch has %s %s: after taking away, credgate only adds, fills nulls and rewrites its own annotation", op.Op, op.Path)
		}
		for _, a := range artefacts(op.Value, op.Path) {
			t.Errorf("patch adds %s: an encoding artefact (null or {}), not a change credgate means", a)
		}
	}
	patched, err := applyPatch(original, resp)
	if err != nil {
		t.Fatalf("apply patch: %v\n%s", err, resp.Patch)
	}
	var p any
	mustUnmarshal(t, patched, &p)
	for _, problem := range preserved(o, p, "") {
		t.Errorf("the patch changed the submitted object: %s", problem)
	}
	return patched
}

var (
	// takenAwayRE matches what credgate takes away of an earlier injection: a variable, a
	// mount, a volume, an image-pull secret (or the whole list, when nothing is left of it),
	// the injected annotation (or all annotations, when it was the only one).
	takenAwayRE = regexp.MustCompile(`/(env|volumeMounts|volumes|imagePullSecrets)(/[0-9]+)?$|/metadata/annotations(/credgate\.dev~1injected)?$`)
	// credentialLabelRE matches a credential label of a pod template.
	credentialLabelRE = regexp.MustCompile(`/template/metadata/labels/credentials\.credgate\.dev~1[^/]+$`)
)

// artefacts lists the null values and empty objects in v: what re-encoding a typed object
// adds ("creationTimestamp": null, "resources": {}, "status": {}) and credgate never means to.
func artefacts(v any, path string) []string {
	switch t := v.(type) {
	case nil:
		return []string{path + ": null"}
	case map[string]any:
		if len(t) == 0 {
			return []string{path + ": {}"}
		}
		var out []string
		for k, e := range t {
			out = append(out, artefacts(e, path+"/"+k)...)
		}
		return out
	case []any:
		var out []string
		for i, e := range t {
			out = append(out, artefacts(e, path+"/"+strconv.Itoa(i))...)
		}
		return out
	}
	return nil
}

// preserved lists every value of orig that is not the same in patched: maps must keep every
// key, arrays every element at its index (they may grow), scalars their value, exactly. The
// one value credgate rewrites is its own credgate.dev/injected annotation.
func preserved(orig, patched any, path string) []string {
	if strings.HasSuffix(path, ".annotations.credgate.dev/injected") {
		return nil
	}
	switch o := orig.(type) {
	case nil:
		return nil // an explicit null credgate may fill
	case map[string]any:
		p, ok := patched.(map[string]any)
		if !ok {
			return []string{fmt.Sprintf("%s: object became %T", path, patched)}
		}
		var problems []string
		for k, v := range o {
			pv, ok := p[k]
			if !ok {
				problems = append(problems, path+"."+k+": removed")
				continue
			}
			problems = append(problems, preserved(v, pv, path+"."+k)...)
		}
		return problems
	case []any:
		p, ok := patched.([]any)
		if !ok || len(p) < len(o) {
			return []string{fmt.Sprintf("%s: array of %d became %v", path, len(o), patched)}
		}
		var problems []string
		for i := range o {
			problems = append(problems, preserved(o[i], p[i], path+"."+strconv.Itoa(i))...)
		}
		return problems
	}
	if !equality.Semantic.DeepEqual(orig, patched) {
		return []string{fmt.Sprintf("%s: %v became %v", path, orig, patched)}
	}
	return nil
}

// checkSettled checks that the patched object needs nothing more: reviewing it again, on the
// typed object, changes nothing. Unlike the second response's empty patch, this cannot be
// satisfied by a patch filter that drops a change credgate meant to make.
func checkSettled(t *testing.T, kind, namespace string, patched []byte) {
	t.Helper()
	scheme, err := testScheme()
	if err != nil {
		t.Fatal(err)
	}
	obj, err := scheme.New(kindNamed(t, kind).GVK)
	if err != nil {
		t.Fatal(err)
	}
	mustUnmarshal(t, patched, obj)
	again := obj.DeepCopyObject()
	r := newReviewer(t, testStore())
	if _, err := r.Review(t.Context(), review.Request{Namespace: namespace, Object: again}); err != nil {
		t.Fatal(err)
	}
	if !equality.Semantic.DeepEqual(obj, again) {
		t.Errorf("reviewing the patched object again changes it (-patched +reviewed):\n%s", cmp.Diff(obj, again))
	}
}

func checkCronJob(t *testing.T, original, patched []byte) {
	// The CronJob's label and its job template's label both reach the pod template, and
	// nothing else does.
	checkLabelsOnly(t, "CronJob", original, patched, map[string]string{
		"app":                          "nightly-eval",
		"credentials.credgate.dev/hf":  "true",
		"credentials.credgate.dev/aws": "true",
	})
}

// earlierPodWarning is the warning on a pod of pod-earlier-injection.json.
const earlierPodWarning = "this pod carries an injection of kaggle, wandb by an earlier version of credgate (annotation credgate.dev/injected), " +
	"from a pod template it injected: credgate removed 4 variables, 1 volume, 1 mount, 1 image-pull secret and its annotation, " +
	"so that the pod gets the current credentials alone; re-create the workload that created the pod from its manifest so that its " +
	"template no longer carries it (docs/credentials.md)"

// checkEarlierRemoved checks a pod of pod-earlier-injection.json once its earlier injection is
// taken away: the trainer keeps its own variables, then has injected; the metrics container
// (not a target) is untouched; the pull secret of kaggle's Secret is gone.
func checkEarlierRemoved(t *testing.T, spec corev1.PodSpec, injected []corev1.EnvVar) {
	t.Helper()
	want := append([]corev1.EnvVar{
		{Name: "WANDB_PROJECT", Value: "llm-sweeps"}, // the pod's own: wandb's literal is overridable
		{Name: "NCCL_DEBUG", Value: "INFO"},
		{Name: "WANDB_MODE", Value: "offline"}, // a literal wandb no longer sets: not recognisable
	}, injected...)
	if diff := cmp.Diff(want, spec.Containers[0].Env); diff != "" {
		t.Errorf("trainer env (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]corev1.EnvVar{secretEnv("WANDB_API_KEY", "metrics-wandb", "api-key", false)}, spec.Containers[1].Env); diff != "" {
		t.Errorf("metrics env (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]corev1.LocalObjectReference{{Name: "regcred"}}, spec.ImagePullSecrets); diff != "" {
		t.Errorf("image-pull secrets (-want +got):\n%s", diff)
	}
}

// cronLabels sets the credential labels of cronjob-update.json: those of the CronJob and of its
// pod template (beside app: nightly-eval), before the update (oldCron, oldTemplate) and after
// it. Its job template keeps requesting aws.
func cronLabels(oldCron, oldTemplate, cron, template map[string]any) func(req map[string]any) {
	set := func(obj map[string]any, cron, template map[string]any) {
		obj["metadata"].(map[string]any)["labels"] = cron
		labels := map[string]any{"app": "nightly-eval", "credentials.credgate.dev/aws": "true"}
		maps.Copy(labels, template)
		jt := obj["spec"].(map[string]any)["jobTemplate"].(map[string]any)
		jt["spec"].(map[string]any)["template"].(map[string]any)["metadata"].(map[string]any)["labels"] = labels
	}
	return func(req map[string]any) {
		set(req["oldObject"].(map[string]any), oldCron, oldTemplate)
		set(req["object"].(map[string]any), cron, template)
	}
}

// checkLabelsOnly checks that the patch gave the pod template of a workload of kind the labels
// want, and changed nothing else in it: no variable, volume, mount, image-pull secret or
// annotation.
func checkLabelsOnly(t *testing.T, kind string, original, patched []byte, want map[string]string) {
	t.Helper()
	meta, spec := templateOf(t, kind, patched)
	if diff := cmp.Diff(want, meta.Labels); diff != "" {
		t.Errorf("pod template labels (-want +got):\n%s", diff)
	}
	origMeta, origSpec := templateOf(t, kind, original)
	if diff := cmp.Diff(origSpec, spec); diff != "" {
		t.Errorf("pod template spec changed (-submitted +patched):\n%s", diff)
	}
	if diff := cmp.Diff(origMeta.Annotations, meta.Annotations); diff != "" {
		t.Errorf("pod template annotations changed (-submitted +patched):\n%s", diff)
	}
}

var injectedRE = regexp.MustCompile(`^([a-z0-9,.-]+) sha256:[0-9a-f]{16}$`)

// checkInjectedAnnotation checks credgate.dev/injected names exactly names and carries a hash.
func checkInjectedAnnotation(t *testing.T, meta metav1.ObjectMeta, names string) {
	t.Helper()
	v := meta.Annotations["credgate.dev/injected"]
	m := injectedRE.FindStringSubmatch(v)
	if m == nil || m[1] != names {
		t.Errorf(`annotation credgate.dev/injected is %q, want "%s sha256:<16 hex digits>"`, v, names)
	}
}

// templateOf decodes obj, a kind, and returns the pod it runs.
func templateOf(t *testing.T, kind string, obj []byte) (metav1.ObjectMeta, corev1.PodSpec) {
	t.Helper()
	switch kind {
	case "Pod":
		var p corev1.Pod
		mustUnmarshal(t, obj, &p)
		return p.ObjectMeta, p.Spec
	case "Job":
		var j batchv1.Job
		mustUnmarshal(t, obj, &j)
		return j.Spec.Template.ObjectMeta, j.Spec.Template.Spec
	case "CronJob":
		var c batchv1.CronJob
		mustUnmarshal(t, obj, &c)
		return c.Spec.JobTemplate.Spec.Template.ObjectMeta, c.Spec.JobTemplate.Spec.Template.Spec
	}
	t.Fatalf("unknown kind %s", kind)
	return metav1.ObjectMeta{}, corev1.PodSpec{}
}

func secretEnv(name, secret, key string, optional bool) corev1.EnvVar {
	ref := &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: secret}, Key: key}
	if optional {
		ref.Optional = new(true)
	}
	return corev1.EnvVar{Name: name, ValueFrom: &corev1.EnvVarSource{SecretKeyRef: ref}}
}

func envNames(env []corev1.EnvVar) []string {
	names := make([]string, len(env))
	for i, e := range env {
		names[i] = e.Name
	}
	return names
}

// lookup returns the value at a dotted path ("spec.containers.0.name") of a JSON document.
func lookup(t *testing.T, doc []byte, path string) any {
	t.Helper()
	var v any
	mustUnmarshal(t, doc, &v)
	for _, part := range strings.Split(path, ".") {
		switch n := v.(type) {
		case map[string]any:
			v = n[part]
		case []any:
			i, err := strconv.Atoi(part)
			if err != nil || i >= len(n) {
				return nil
			}
			v = n[i]
		default:
			return nil
		}
	}
	return v
}

// isNull reports whether the JSON pointer p names an explicit null in doc.
func isNull(doc any, p string) bool {
	ptr, err := jsonpointer.New(p)
	if err != nil {
		return false
	}
	v, _, err := ptr.Get(doc)
	return err == nil && v == nil
}

func mustUnmarshal(t testing.TB, b []byte, into any) {
	t.Helper()
	if err := json.Unmarshal(b, into); err != nil {
		t.Fatalf("decode %s: %v", b, err)
	}
}

// golden is the part of a response testdata/golden/ records, in a stable form.
type golden struct {
	Allowed  bool             `json:"allowed"`
	Code     int32            `json:"code"`
	Reason   string           `json:"reason,omitempty"`
	Message  string           `json:"message,omitempty"`
	Warnings []string         `json:"warnings,omitempty"`
	Patch    []map[string]any `json:"patch,omitempty"`
}

// checkGolden compares resp with testdata/golden/<test name>.json, or rewrites the file with -update.
// Patch operations are sorted by path: their order within a response is not stable.
func checkGolden(t *testing.T, resp *admissionv1.AdmissionResponse) {
	t.Helper()
	g := golden{Allowed: resp.Allowed, Code: resp.Result.Code, Reason: string(resp.Result.Reason),
		Message: resp.Result.Message, Warnings: resp.Warnings}
	if len(resp.Patch) > 0 {
		mustUnmarshal(t, resp.Patch, &g.Patch) // in order: appends ("/-") depend on it
	}
	got, err := json.MarshalIndent(g, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	got = append(got, '\n')
	_, name, _ := strings.Cut(t.Name(), "/")
	file := filepath.Join("testdata", "golden", strings.NewReplacer(" ", "-", ",", "", ":", "").Replace(name)+".json")
	if *update {
		if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(file, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(file)
	if err != nil {
		t.Fatalf("%v (run go test ./webhook/ -run %s -update to create it)", err, t.Name())
	}
	if diff := cmp.Diff(string(want), string(got)); diff != "" {
		t.Errorf("response differs from %s (-want +got); review, then rerun with -update:\n%s", file, diff)
	}
}
