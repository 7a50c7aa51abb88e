package workload_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/credgate/credgate/workload"
)

func TestRequested(t *testing.T) {
	tests := []struct {
		name         string
		labels       map[string]string
		wantNames    []string
		wantProblems int
	}{
		{name: "none", labels: map[string]string{"app": "train"}},
		{name: "true and false", labels: map[string]string{
			"credentials.credgate.dev/wandb": "true", "credentials.credgate.dev/hf": "false",
			"credentials.credgate.dev/aws": "true"}, wantNames: []string{"aws", "wandb"}},
		{name: "bad values all reported", labels: map[string]string{
			"credentials.credgate.dev/wandb": "yes", "credentials.credgate.dev/hf": "True",
			"credentials.credgate.dev/aws": "true"}, wantNames: []string{"aws"}, wantProblems: 2},
		{name: "empty value", labels: map[string]string{"credentials.credgate.dev/wandb": ""}, wantProblems: 1},
		{name: "key names no credential", labels: map[string]string{
			"credentials.credgate.dev/":                           "true",
			"credentials.credgate.dev/..":                         "true",
			"credentials.credgate.dev/a/b":                        "false",
			"credentials.credgate.dev/Wandb":                      "true",
			"credentials.credgate.dev/" + strings.Repeat("a", 64): "true",
			"credentials.credgate.dev/hf.v2":                      "true"}, wantNames: []string{"hf.v2"}, wantProblems: 5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			names, problems := workload.Requested(tt.labels)
			if diff := cmp.Diff(tt.wantNames, names); diff != "" {
				t.Errorf("names (-want +got):\n%s", diff)
			}
			if len(problems) != tt.wantProblems {
				t.Errorf("problems = %q, want %d", problems, tt.wantProblems)
			}
		})
	}
}

func TestInheritLabels(t *testing.T) {
	const wandb, hf = "credentials.credgate.dev/wandb", "credentials.credgate.dev/hf"
	tmpl := func(labels map[string]string) corev1.PodTemplateSpec {
		return corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c"}}}}
	}
	tests := []struct {
		name string
		obj  runtime.Object
		want map[string]string
	}{
		{name: "job label copied", obj: &batchv1.Job{
			ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{wandb: "true", "team": "a"}},
			Spec:       batchv1.JobSpec{Template: tmpl(nil)}},
			want: map[string]string{wandb: "true"}},
		{name: "template opts out", obj: &batchv1.Job{
			ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{wandb: "true", hf: "true"}},
			Spec:       batchv1.JobSpec{Template: tmpl(map[string]string{wandb: "false"})}},
			want: map[string]string{wandb: "false", hf: "true"}},
		{name: "cronjob and its job template", obj: &batchv1.CronJob{
			ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{wandb: "true", hf: "true"}},
			Spec: batchv1.CronJobSpec{JobTemplate: batchv1.JobTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{hf: "false"}},
				Spec:       batchv1.JobSpec{Template: tmpl(nil)}}}},
			want: map[string]string{wandb: "true", hf: "false"}},
		{name: "deployment labels are not copied", obj: &appsv1.Deployment{
			ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{wandb: "true"}},
			Spec:       appsv1.DeploymentSpec{Template: tmpl(nil)}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := workload.PodTemplate(tt.obj)
			if err != nil {
				t.Fatal(err)
			}
			workload.InheritLabels(tt.obj, got)
			if diff := cmp.Diff(tt.want, got.Meta.Labels); diff != "" {
				t.Errorf("pod template labels (-want +got):\n%s", diff)
			}
		})
	}
}

// TestFollowLabels: on an update, a credential label credgate copied into a CronJob's pod
// template follows the CronJob's (or its job template's) label; a value of the template's own
// stays, as at creation.
func TestFollowLabels(t *testing.T) {
	const hf, aws = "credentials.credgate.dev/hf", "credentials.credgate.dev/aws"
	cron := func(own, jobTemplate, template map[string]string) *batchv1.CronJob {
		return &batchv1.CronJob{
			ObjectMeta: metav1.ObjectMeta{Labels: own},
			Spec: batchv1.CronJobSpec{JobTemplate: batchv1.JobTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: jobTemplate},
				Spec: batchv1.JobSpec{Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: template},
					Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c"}}}}}}}}
	}
	m := func(kv ...string) map[string]string {
		out := map[string]string{"app": "x"}
		for i := 0; i < len(kv); i += 2 {
			out[kv[i]] = kv[i+1]
		}
		return out
	}
	tests := []struct {
		name     string
		old, obj *batchv1.CronJob
		want     map[string]string
	}{
		{name: "the CronJob's label set to false", old: cron(m(hf, "true"), nil, m(hf, "true")), obj: cron(m(hf, "false"), nil, m(hf, "true")),
			want: m(hf, "false")},
		{name: "the CronJob's label removed", old: cron(m(hf, "true"), nil, m(hf, "true")), obj: cron(m(), nil, m(hf, "true")),
			want: m()},
		{name: "the CronJob's label set to true again", old: cron(m(hf, "false"), nil, m(hf, "false")), obj: cron(m(hf, "true"), nil, m(hf, "false")),
			want: m(hf, "true")},
		{name: "the job template's label set to false", old: cron(nil, m(aws, "true"), m(aws, "true")), obj: cron(nil, m(aws, "false"), m(aws, "true")),
			want: m(aws, "false")},
		{name: "the job template's label, nearer, wins", old: cron(m(hf, "true"), m(hf, "true"), m(hf, "true")), obj: cron(m(hf, "true"), m(hf, "false"), m(hf, "true")),
			want: m(hf, "false")},
		{name: "the template's own value stays", old: cron(m(hf, "true"), nil, m(hf, "false")), obj: cron(m(hf, "false"), nil, m(hf, "false")),
			want: m(hf, "false")},
		{name: "the template's own opt-out stays when the CronJob's label changes", old: cron(m(hf, "true"), nil, m(hf, "false")), obj: cron(m(), nil, m(hf, "false")),
			want: m(hf, "false")},
		{name: "a label this update sets in the template stays", old: cron(m(hf, "true"), nil, m(hf, "true")), obj: cron(m(hf, "false"), nil, m(hf, "true", aws, "true")),
			want: m(hf, "false", aws, "true")},
		{name: "a template label this update changes stays", old: cron(m(hf, "true"), nil, m(hf, "true")), obj: cron(m(hf, "false"), nil, m(hf, "maybe")),
			want: m(hf, "maybe")},
		{name: "a label added to the CronJob is copied", old: cron(nil, nil, m()), obj: cron(m(hf, "true"), nil, m()),
			want: m(hf, "true")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tmpl, err := workload.PodTemplate(tt.obj)
			if err != nil {
				t.Fatal(err)
			}
			workload.FollowLabels(tt.old, tt.obj, tmpl)
			workload.InheritLabels(tt.obj, tmpl)
			if diff := cmp.Diff(tt.want, tmpl.Meta.Labels); diff != "" {
				t.Errorf("pod template labels (-want +got):\n%s", diff)
			}
		})
	}
}

func TestPodTemplateErrors(t *testing.T) {
	if _, err := workload.PodTemplate(&corev1.Pod{}); !errors.Is(err, workload.ErrMalformed) {
		t.Errorf("pod without containers: err = %v, want ErrMalformed", err)
	}
	if _, err := workload.PodTemplate(&corev1.Service{}); !errors.Is(err, workload.ErrUnsupportedKind) {
		t.Errorf("service: err = %v, want ErrUnsupportedKind", err)
	}
}

func TestTargetContainers(t *testing.T) {
	spec := corev1.PodSpec{
		InitContainers: []corev1.Container{{Name: "download"}},
		Containers:     []corev1.Container{{Name: "trainer"}, {Name: "metrics"}},
	}
	tests := []struct {
		name        string
		annotation  *string
		want        []string
		wantProblem bool
	}{
		{name: "all by default", want: []string{"download", "trainer", "metrics"}},
		{name: "narrowed", annotation: new("trainer, download"), want: []string{"trainer", "download"}},
		{name: "duplicates once", annotation: new("trainer,trainer"), want: []string{"trainer"}},
		{name: "unknown container", annotation: new("trainer,traner"), wantProblem: true},
		{name: "empty", annotation: new(" , "), wantProblem: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			meta := metav1.ObjectMeta{}
			if tt.annotation != nil {
				meta.Annotations = map[string]string{workload.ContainersAnnotation: *tt.annotation}
			}
			got, problem := workload.TargetContainers(workload.Template{Meta: &meta, Spec: &spec})
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("targets (-want +got):\n%s", diff)
			}
			if (problem != "") != tt.wantProblem {
				t.Errorf("problem = %q, want problem: %v", problem, tt.wantProblem)
			}
		})
	}
}
