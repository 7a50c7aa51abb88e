package main

import (
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/credgate/credgate/api/v1alpha1"
)

// credentialNames are the Credentials every namespace holds: the shapes of
// examples/credentials.yaml that one training pod can hold at once (one AWS and one GCP
// identity, mount paths apart), so that one pod per namespace uses all of them.
var credentialNames = []string{
	"wandb", "hf", "aws-data", "gcs", "mlflow", "kaggle", "github", "registry", "features-db", "eval-config",
}

// regions spread the AWS Credentials over a few regions, as teams' buckets are.
var regions = []string{"eu-west-1", "us-east-1", "us-west-2", "eu-central-1", "ap-northeast-1"}

// namespaceName is the i-th namespace of the run.
func namespaceName(i int) string { return fmt.Sprintf("scale-%04d", i) }

// tenant returns namespace i with a team label, as platforms label their tenants' namespaces.
func tenant(i int) *corev1.Namespace {
	return &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: namespaceName(i),
		Labels: map[string]string{"team": fmt.Sprintf("team-%04d", i), "cost-center": fmt.Sprintf("cc-%03d", i%97)}}}
}

// tenantCredentials returns the Credentials of namespace i and the Secrets they read, one
// Secret per Credential, in the order of credentialNames. Values differ from namespace to
// namespace (project, region, bucket), as they do between teams: no two namespaces' objects
// are the same bytes.
func tenantCredentials(i int) ([]*v1alpha1.Credential, []*corev1.Secret) {
	ns := namespaceName(i)
	team := fmt.Sprintf("team-%04d", i)
	var creds []*v1alpha1.Credential
	var secrets []*corev1.Secret
	add := func(name string, typ v1alpha1.CredentialType, secretType corev1.SecretType, data map[string]string, edit func(*v1alpha1.CredentialSpec)) {
		secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name + "-secret", Namespace: ns}, Type: secretType, StringData: data}
		cred := &v1alpha1.Credential{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
			Spec: v1alpha1.CredentialSpec{Type: typ, SecretRef: &v1alpha1.SecretReference{Name: secret.Name}}}
		if edit != nil {
			edit(&cred.Spec)
		}
		creds, secrets = append(creds, cred), append(secrets, secret)
	}
	placeholder := func(what string) string { return fmt.Sprintf("placeholder-%s-%s", what, team) }

	add("wandb", v1alpha1.TypeWandB, "", map[string]string{"api-key": placeholder("wandb")}, func(s *v1alpha1.CredentialSpec) {
		s.Env = []v1alpha1.EnvVar{
			{Name: "WANDB_PROJECT", Value: new("experiments-" + team), Overridable: true},
			{Name: "WANDB_ENTITY", Value: new(team)},
		}
		s.Access.Level = v1alpha1.AccessReadWrite
	})
	add("hf", v1alpha1.TypeHuggingFace, "", map[string]string{"token": "hf_" + placeholder("token")}, func(s *v1alpha1.CredentialSpec) {
		s.Access.Level = v1alpha1.AccessReadOnly
	})
	add("aws-data", v1alpha1.TypeAWS, "", map[string]string{
		"aws_access_key_id": fmt.Sprintf("AKIAPLACEHOLDER%04d", i), "aws_secret_access_key": placeholder("aws-secret"),
	}, func(s *v1alpha1.CredentialSpec) {
		s.AWS = &v1alpha1.AWS{Region: regions[i%len(regions)]}
		bucket := "arn:aws:s3:::datasets-" + team
		s.Access.Level = v1alpha1.AccessReadOnly
		s.Access.PolicyDocument = &apiextensionsv1.JSON{Raw: fmt.Appendf(nil,
			`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["s3:GetObject","s3:ListBucket"],"Resource":[%q,%q]}]}`,
			bucket, bucket+"/*")}
	})
	add("gcs", v1alpha1.TypeGCP, "", map[string]string{
		"key.json": fmt.Sprintf(`{"type": "service_account", "project_id": "%s", "client_email": "trainer@%s.iam.gserviceaccount.com"}`, team, team),
	}, func(s *v1alpha1.CredentialSpec) {
		s.Access = v1alpha1.Access{Level: v1alpha1.AccessReadOnly, Roles: []string{"roles/storage.objectViewer"}}
	})
	add("mlflow", v1alpha1.TypeMLflow, "", map[string]string{"username": team, "password": placeholder("password")}, func(s *v1alpha1.CredentialSpec) {
		s.Env = []v1alpha1.EnvVar{{Name: "MLFLOW_TRACKING_URI", Value: new("https://mlflow." + team + ".example.com")}}
	})
	add("kaggle", v1alpha1.TypeKaggle, "", map[string]string{
		"kaggle.json": fmt.Sprintf(`{"username": "%s", "key": "%s"}`, team, placeholder("kaggle")),
	}, nil)
	add("github", v1alpha1.TypeGitSSH, corev1.SecretTypeSSHAuth, map[string]string{
		"ssh-privatekey": "placeholder: an OpenSSH private key of " + team + "\n",
		"known_hosts":    "github.com ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl\n",
	}, nil)
	add("registry", v1alpha1.TypeDockerRegistry, corev1.SecretTypeDockerConfigJson, map[string]string{
		".dockerconfigjson": fmt.Sprintf(`{"auths": {"registry.example.com": {"auth": "%s"}}}`, placeholder("auth")),
	}, nil)
	add("features-db", v1alpha1.TypeDatabase, "", map[string]string{
		"username": team, "password": placeholder("password"), "host": "features-db." + ns + ".svc", "port": "5432", "database": "features",
	}, func(s *v1alpha1.CredentialSpec) {
		s.Database = &v1alpha1.Database{Kind: v1alpha1.DatabasePostgres}
		s.Access.Level = v1alpha1.AccessReadOnly
	})
	add("eval-config", v1alpha1.TypeGeneric, "", map[string]string{
		"token": placeholder("eval-token"), "config.yaml": "suite: default\nteam: " + team + "\n",
	}, func(s *v1alpha1.CredentialSpec) {
		s.Env = []v1alpha1.EnvVar{{Name: "EVAL_API_TOKEN", Key: new("token")}}
		s.Files = &v1alpha1.Files{MountPath: "/etc/eval", Items: []v1alpha1.FileItem{{Key: "config.yaml", Path: "config.yaml", Mode: new(int32(0o440))}}}
	})
	return creds, secrets
}

// shapesText says, for the report, what the Credentials of a namespace are.
func shapesText() string {
	return "wandb (env from a Secret + 2 literals), hf, aws-data (static keys, region, IAM policyDocument), gcs (key file, role), " +
		"mlflow (+ a literal), kaggle (file), github (git-ssh: files), registry (imagePullSecret), features-db (postgres), " +
		"eval-config (generic: env key + a file at /etc/eval)"
}

// trainingPod is the pod of namespace ns that requests every Credential of the namespace: a
// training pod as a platform runs it (an init container downloading data, a trainer with
// resources, an emptyDir and shared memory), created directly rather than by a Job, so that
// credgate reads no owner for the audit record of its warnings.
func trainingPod(ns string) *corev1.Pod {
	labels := map[string]string{"app": "train-llm", "team": strings.TrimPrefix(ns, "scale-")}
	for _, n := range credentialNames {
		labels["credentials.credgate.dev/"+n] = "true"
	}
	data := []corev1.VolumeMount{{Name: "data", MountPath: "/data"}}
	return &corev1.Pod{
		TypeMeta:   metav1.TypeMeta{Kind: "Pod", APIVersion: "v1"},
		ObjectMeta: metav1.ObjectMeta{Name: "train-llm", Namespace: ns, Labels: labels},
		Spec: corev1.PodSpec{
			RestartPolicy: corev1.RestartPolicyNever,
			InitContainers: []corev1.Container{{
				Name: "download", Image: "ghcr.io/example/fetch:2.1.0",
				Command: []string{"fetch", "--from", "s3://datasets/llm/v3", "--to", "/data"}, VolumeMounts: data,
			}},
			Containers: []corev1.Container{{
				Name: "trainer", Image: "ghcr.io/example/trainer:1.4.0",
				Command: []string{"torchrun", "--nproc-per-node=8", "train.py"},
				Args:    []string{"--config", "configs/llm-7b.yaml", "--data", "/data", "--output", "/data/out"},
				Env: []corev1.EnvVar{
					{Name: "NCCL_DEBUG", Value: "INFO"},
					{Name: "OMP_NUM_THREADS", Value: "8"},
					{Name: "HF_HOME", Value: "/data/hf"},
				},
				Resources: corev1.ResourceRequirements{
					Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("30"), corev1.ResourceMemory: resource.MustParse("200Gi")},
					Limits:   corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("220Gi")},
				},
				VolumeMounts: append(data, corev1.VolumeMount{Name: "dshm", MountPath: "/dev/shm"}),
			}},
			Volumes: []corev1.Volume{
				{Name: "data", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{SizeLimit: new(resource.MustParse("200Gi"))}}},
				{Name: "dshm", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{Medium: corev1.StorageMediumMemory, SizeLimit: new(resource.MustParse("16Gi"))}}},
			},
		},
	}
}
