package credential_test

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/credgate/credgate/api/v1alpha1"
	"github.com/credgate/credgate/credential"
)

// cred returns a Credential called name of type typ reading the Secret name+"-secret".
func cred(name string, typ v1alpha1.CredentialType, mod ...func(*v1alpha1.CredentialSpec)) *v1alpha1.Credential {
	c := &v1alpha1.Credential{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "team-a"},
		Spec:       v1alpha1.CredentialSpec{Type: typ, SecretRef: &v1alpha1.SecretReference{Name: name + "-secret"}},
	}
	for _, m := range mod {
		m(&c.Spec)
	}
	return c
}

func withEnv(env ...v1alpha1.EnvVar) func(*v1alpha1.CredentialSpec) {
	return func(s *v1alpha1.CredentialSpec) { s.Env = append(s.Env, env...) }
}

func withFiles(f v1alpha1.Files) func(*v1alpha1.CredentialSpec) {
	return func(s *v1alpha1.CredentialSpec) { s.Files = &f }
}

func withAWS(region, endpoint string) func(*v1alpha1.CredentialSpec) {
	return func(s *v1alpha1.CredentialSpec) { s.AWS = &v1alpha1.AWS{Region: region, Endpoint: endpoint} }
}

func withDatabase(k v1alpha1.DatabaseKind) func(*v1alpha1.CredentialSpec) {
	return func(s *v1alpha1.CredentialSpec) { s.Database = &v1alpha1.Database{Kind: k} }
}

func withPullSecret(b bool) func(*v1alpha1.CredentialSpec) {
	return func(s *v1alpha1.CredentialSpec) { s.ImagePullSecret = &b }
}

func keyEnv(name, key string) v1alpha1.EnvVar    { return v1alpha1.EnvVar{Name: name, Key: &key} }
func litEnv(name, val string) v1alpha1.EnvVar    { return v1alpha1.EnvVar{Name: name, Value: &val} }
func fromSecret(name, key string) credential.Env { return credential.Env{Name: name, Key: key} }
func optional(name, key string) credential.Env {
	return credential.Env{Name: name, Key: key, Optional: true}
}
func literal(name, val string) credential.Env { return credential.Env{Name: name, Value: val} }

// mounted is the secret volume of credential name at its default mount path.
func mounted(name string, items ...credential.FileItem) *credential.Files {
	return at("/var/run/secrets/credgate/"+name, name, items...)
}

// at is the secret volume of credential name at mountPath.
func at(mountPath, name string, items ...credential.FileItem) *credential.Files {
	return &credential.Files{MountPath: mountPath, VolumeName: "credgate-" + name, DefaultMode: 0o400, Items: items}
}

// injection is the part of a Resolved that reaches a pod.
type injection struct {
	SecretName      string
	Env             []credential.Env
	Files           *credential.Files
	ImagePullSecret bool
}

var awsKeys = []credential.Env{
	fromSecret("AWS_ACCESS_KEY_ID", "aws_access_key_id"),
	fromSecret("AWS_SECRET_ACCESS_KEY", "aws_secret_access_key"),
	optional("AWS_SESSION_TOKEN", "aws_session_token"),
}

func TestResolvePresets(t *testing.T) {
	const sshCmd = "ssh -i '%s' -o IdentitiesOnly=yes -o UserKnownHostsFile='%s' -o StrictHostKeyChecking=yes"
	tests := []struct {
		name string
		cred *v1alpha1.Credential
		want injection
	}{
		{
			name: "generic without secretRef injects only its literals",
			cred: &v1alpha1.Credential{ObjectMeta: metav1.ObjectMeta{Name: "lit"}, Spec: v1alpha1.CredentialSpec{
				Type: v1alpha1.TypeGeneric, Env: []v1alpha1.EnvVar{litEnv("MODE", "fast")}}},
			want: injection{Env: []credential.Env{literal("MODE", "fast")}},
		},
		{
			name: "generic injects exactly what it lists",
			cred: cred("gen", v1alpha1.TypeGeneric, withEnv(keyEnv("TOKEN", "token"),
				v1alpha1.EnvVar{Name: "REGION", Value: new("eu"), Overridable: true}),
				withFiles(v1alpha1.Files{}), withPullSecret(true)),
			want: injection{SecretName: "gen-secret", Env: []credential.Env{
				fromSecret("TOKEN", "token"), {Name: "REGION", Value: "eu", Overridable: true}},
				Files: mounted("gen"), ImagePullSecret: true},
		},
		{
			name: "generic with nothing listed injects nothing",
			cred: cred("empty", v1alpha1.TypeGeneric),
			want: injection{SecretName: "empty-secret"},
		},
		{
			name: "aws without region",
			cred: cred("aws", v1alpha1.TypeAWS),
			want: injection{SecretName: "aws-secret", Env: awsKeys},
		},
		{
			name: "aws with region",
			cred: cred("aws", v1alpha1.TypeAWS, withAWS("eu-west-3", "")),
			want: injection{SecretName: "aws-secret", Env: slices.Concat(awsKeys, []credential.Env{
				literal("AWS_REGION", "eu-west-3"), literal("AWS_DEFAULT_REGION", "eu-west-3")})},
		},
		{
			name: "aws user env replaces a preset variable in place and adds its own",
			cred: cred("aws", v1alpha1.TypeAWS, withEnv(keyEnv("AWS_ACCESS_KEY_ID", "id"),
				keyEnv("AWS_SESSION_TOKEN", "token"), litEnv("AWS_PROFILE_NAME", "x"))),
			want: injection{SecretName: "aws-secret", Env: []credential.Env{
				fromSecret("AWS_ACCESS_KEY_ID", "id"),
				fromSecret("AWS_SECRET_ACCESS_KEY", "aws_secret_access_key"),
				fromSecret("AWS_SESSION_TOKEN", "token"), // no longer optional
				literal("AWS_PROFILE_NAME", "x"),
			}},
		},
		{
			name: "s3-compatible",
			cred: cred("wasabi", v1alpha1.TypeS3Compatible, withAWS("eu-central-2", "https://s3.eu-central-2.wasabisys.com")),
			want: injection{SecretName: "wasabi-secret", Env: slices.Concat(awsKeys, []credential.Env{
				literal("AWS_REGION", "eu-central-2"), literal("AWS_DEFAULT_REGION", "eu-central-2"),
				literal("AWS_ENDPOINT_URL_S3", "https://s3.eu-central-2.wasabisys.com")})},
		},
		{
			name: "s3-compatible without region",
			cred: cred("minio", v1alpha1.TypeS3Compatible, withAWS("", "http://minio.storage:9000")),
			want: injection{SecretName: "minio-secret", Env: slices.Concat(awsKeys, []credential.Env{
				literal("AWS_ENDPOINT_URL_S3", "http://minio.storage:9000")})},
		},
		{
			name: "gcp",
			cred: cred("gcp", v1alpha1.TypeGCP),
			want: injection{SecretName: "gcp-secret", Env: []credential.Env{
				literal("GOOGLE_APPLICATION_CREDENTIALS", "/var/run/secrets/credgate/gcp/key.json"),
				literal("CLOUDSDK_AUTH_CREDENTIAL_FILE_OVERRIDE", "/var/run/secrets/credgate/gcp/key.json"),
			}, Files: mounted("gcp", credential.FileItem{Key: "key.json", Path: "key.json", Mode: 0o400})},
		},
		{
			name: "gcp custom mountPath moves GOOGLE_APPLICATION_CREDENTIALS",
			cred: cred("gcp", v1alpha1.TypeGCP, withFiles(v1alpha1.Files{MountPath: "/etc/gcp/"})),
			want: injection{SecretName: "gcp-secret", Env: []credential.Env{
				literal("GOOGLE_APPLICATION_CREDENTIALS", "/etc/gcp/key.json"),
				literal("CLOUDSDK_AUTH_CREDENTIAL_FILE_OVERRIDE", "/etc/gcp/key.json"),
			}, Files: at("/etc/gcp", "gcp", credential.FileItem{Key: "key.json", Path: "key.json", Mode: 0o400})},
		},
		{
			name: "gcp custom items: the variables follow the key's path and the mode is kept",
			cred: cred("gcp", v1alpha1.TypeGCP, withFiles(v1alpha1.Files{Items: []v1alpha1.FileItem{
				{Key: "key.json", Path: "./sa//credentials.json", Mode: new(int32(0o440))}}})),
			want: injection{SecretName: "gcp-secret", Env: []credential.Env{
				literal("GOOGLE_APPLICATION_CREDENTIALS", "/var/run/secrets/credgate/gcp/sa/credentials.json"),
				literal("CLOUDSDK_AUTH_CREDENTIAL_FILE_OVERRIDE", "/var/run/secrets/credgate/gcp/sa/credentials.json"),
			}, Files: mounted("gcp", credential.FileItem{Key: "key.json", Path: "sa/credentials.json", Mode: 0o440})},
		},
		{
			name: "gcp user literal replaces the derived variable and its alias follows",
			cred: cred("gcp", v1alpha1.TypeGCP, withEnv(litEnv("GOOGLE_APPLICATION_CREDENTIALS", "/other.json"))),
			want: injection{SecretName: "gcp-secret", Env: []credential.Env{
				literal("GOOGLE_APPLICATION_CREDENTIALS", "/other.json"),
				literal("CLOUDSDK_AUTH_CREDENTIAL_FILE_OVERRIDE", "/other.json"),
			}, Files: mounted("gcp", credential.FileItem{Key: "key.json", Path: "key.json", Mode: 0o400})},
		},
		{
			name: "huggingface alias follows an overridden key",
			cred: cred("hf", v1alpha1.TypeHuggingFace, withEnv(v1alpha1.EnvVar{Name: "HF_TOKEN", Key: new("hf-token")})),
			want: injection{SecretName: "hf-secret", Env: []credential.Env{
				fromSecret("HF_TOKEN", "hf-token"), fromSecret("HUGGING_FACE_HUB_TOKEN", "hf-token")}},
		},
		{
			name: "an alias the Credential sets itself is kept",
			cred: cred("aws", v1alpha1.TypeAWS, withAWS("eu-west-1", ""), withEnv(litEnv("AWS_DEFAULT_REGION", "us-east-1"))),
			want: injection{SecretName: "aws-secret", Env: []credential.Env{
				fromSecret("AWS_ACCESS_KEY_ID", "aws_access_key_id"), fromSecret("AWS_SECRET_ACCESS_KEY", "aws_secret_access_key"),
				optional("AWS_SESSION_TOKEN", "aws_session_token"), literal("AWS_REGION", "eu-west-1"),
				literal("AWS_DEFAULT_REGION", "us-east-1")}},
		},
		{
			name: "azure",
			cred: cred("azure", v1alpha1.TypeAzure),
			want: injection{SecretName: "azure-secret", Env: []credential.Env{
				fromSecret("AZURE_CLIENT_ID", "client-id"),
				fromSecret("AZURE_TENANT_ID", "tenant-id"),
				fromSecret("AZURE_CLIENT_SECRET", "client-secret"),
			}},
		},
		{
			name: "huggingface",
			cred: cred("hf", v1alpha1.TypeHuggingFace),
			want: injection{SecretName: "hf-secret", Env: []credential.Env{
				fromSecret("HF_TOKEN", "token"), fromSecret("HUGGING_FACE_HUB_TOKEN", "token")}},
		},
		{
			name: "wandb",
			cred: cred("wandb", v1alpha1.TypeWandB),
			want: injection{SecretName: "wandb-secret", Env: []credential.Env{fromSecret("WANDB_API_KEY", "api-key")}},
		},
		{
			name: "wandb with project and entity literals",
			cred: cred("wandb", v1alpha1.TypeWandB, withEnv(
				v1alpha1.EnvVar{Name: "WANDB_PROJECT", Value: new("experiments"), Overridable: true},
				litEnv("WANDB_ENTITY", "team-a"))),
			want: injection{SecretName: "wandb-secret", Env: []credential.Env{
				fromSecret("WANDB_API_KEY", "api-key"),
				{Name: "WANDB_PROJECT", Value: "experiments", Overridable: true},
				literal("WANDB_ENTITY", "team-a"),
			}},
		},
		{
			name: "mlflow with its tracking URI literal",
			cred: cred("mlflow", v1alpha1.TypeMLflow, withEnv(litEnv("MLFLOW_TRACKING_URI", "https://mlflow.example"))),
			want: injection{SecretName: "mlflow-secret", Env: []credential.Env{
				fromSecret("MLFLOW_TRACKING_USERNAME", "username"),
				fromSecret("MLFLOW_TRACKING_PASSWORD", "password"),
				literal("MLFLOW_TRACKING_URI", "https://mlflow.example"),
			}},
		},
		{
			name: "kaggle",
			cred: cred("kaggle", v1alpha1.TypeKaggle),
			want: injection{SecretName: "kaggle-secret",
				Env:   []credential.Env{literal("KAGGLE_CONFIG_DIR", "/var/run/secrets/credgate/kaggle")},
				Files: mounted("kaggle", credential.FileItem{Key: "kaggle.json", Path: "kaggle.json", Mode: 0o400})},
		},
		{
			name: "kaggle custom mountPath moves KAGGLE_CONFIG_DIR",
			cred: cred("kaggle", v1alpha1.TypeKaggle, withFiles(v1alpha1.Files{MountPath: "/root/.kaggle"})),
			want: injection{SecretName: "kaggle-secret",
				Env:   []credential.Env{literal("KAGGLE_CONFIG_DIR", "/root/.kaggle")},
				Files: at("/root/.kaggle", "kaggle", credential.FileItem{Key: "kaggle.json", Path: "kaggle.json", Mode: 0o400})},
		},
		{
			name: "kaggle custom item in a subdirectory",
			cred: cred("kaggle", v1alpha1.TypeKaggle, withFiles(v1alpha1.Files{Items: []v1alpha1.FileItem{
				{Key: "kaggle.json", Path: "cfg/kaggle.json"}}})),
			want: injection{SecretName: "kaggle-secret",
				Env:   []credential.Env{literal("KAGGLE_CONFIG_DIR", "/var/run/secrets/credgate/kaggle/cfg")},
				Files: mounted("kaggle", credential.FileItem{Key: "kaggle.json", Path: "cfg/kaggle.json", Mode: 0o400})},
		},
		{
			name: "git-ssh mounts the whole Secret",
			cred: cred("git", v1alpha1.TypeGitSSH),
			want: injection{SecretName: "git-secret", Env: []credential.Env{literal("GIT_SSH_COMMAND", fmt.Sprintf(sshCmd,
				"/var/run/secrets/credgate/git/ssh-privatekey", "/var/run/secrets/credgate/git/known_hosts"))},
				Files: mounted("git")},
		},
		{
			name: "git-ssh custom mountPath moves GIT_SSH_COMMAND paths",
			cred: cred("git", v1alpha1.TypeGitSSH, withFiles(v1alpha1.Files{MountPath: "/root/.ssh"})),
			want: injection{SecretName: "git-secret", Env: []credential.Env{literal("GIT_SSH_COMMAND",
				fmt.Sprintf(sshCmd, "/root/.ssh/ssh-privatekey", "/root/.ssh/known_hosts"))},
				Files: at("/root/.ssh", "git")},
		},
		{
			name: "git-ssh custom items",
			cred: cred("git", v1alpha1.TypeGitSSH, withFiles(v1alpha1.Files{MountPath: "/root/.ssh", Items: []v1alpha1.FileItem{
				{Key: "ssh-privatekey", Path: "id_ed25519"}, {Key: "known_hosts", Path: "known_hosts", Mode: new(int32(0o444))}}})),
			want: injection{SecretName: "git-secret", Env: []credential.Env{literal("GIT_SSH_COMMAND",
				fmt.Sprintf(sshCmd, "/root/.ssh/id_ed25519", "/root/.ssh/known_hosts"))},
				Files: at("/root/.ssh", "git",
					credential.FileItem{Key: "ssh-privatekey", Path: "id_ed25519", Mode: 0o400},
					credential.FileItem{Key: "known_hosts", Path: "known_hosts", Mode: 0o444})},
		},
		{
			name: "docker-registry",
			cred: cred("registry", v1alpha1.TypeDockerRegistry),
			want: injection{SecretName: "registry-secret", ImagePullSecret: true},
		},
		{
			name: "docker-registry with imagePullSecret turned off",
			cred: cred("registry", v1alpha1.TypeDockerRegistry, withPullSecret(false)),
			want: injection{SecretName: "registry-secret"},
		},
		{
			name: "ngc",
			cred: cred("ngc", v1alpha1.TypeNGC),
			want: injection{SecretName: "ngc-secret", Env: []credential.Env{fromSecret("NGC_API_KEY", "api-key"), fromSecret("NGC_CLI_API_KEY", "api-key")},
				ImagePullSecret: true},
		},
		{
			name: "database postgres",
			cred: cred("pg", v1alpha1.TypeDatabase, withDatabase(v1alpha1.DatabasePostgres)),
			want: injection{SecretName: "pg-secret", Env: []credential.Env{
				fromSecret("PGUSER", "username"), fromSecret("PGPASSWORD", "password"),
				optional("PGHOST", "host"), optional("PGPORT", "port"),
				optional("PGDATABASE", "database"), optional("DATABASE_URL", "uri"),
			}},
		},
		{
			name: "database mysql",
			cred: cred("my", v1alpha1.TypeDatabase, withDatabase(v1alpha1.DatabaseMySQL)),
			want: injection{SecretName: "my-secret", Env: []credential.Env{
				fromSecret("MYSQL_USER", "username"), fromSecret("MYSQL_PASSWORD", "password"),
				optional("MYSQL_HOST", "host"), optional("MYSQL_TCP_PORT", "port"),
				optional("MYSQL_DATABASE", "database"), optional("DATABASE_URL", "uri"),
			}},
		},
		{
			name: "database mongodb",
			cred: cred("mongo", v1alpha1.TypeDatabase, withDatabase(v1alpha1.DatabaseMongoDB)),
			want: injection{SecretName: "mongo-secret", Env: []credential.Env{
				fromSecret("MONGODB_USERNAME", "username"), fromSecret("MONGODB_PASSWORD", "password"),
				optional("MONGODB_HOST", "host"), optional("MONGODB_PORT", "port"),
				optional("MONGODB_DATABASE", "database"), optional("MONGODB_URI", "uri"),
			}},
		},
	}
	covered := map[v1alpha1.CredentialType]bool{}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := credential.Resolve(tt.cred)
			if err != nil {
				t.Fatalf("Resolve() error = %v", err)
			}
			covered[r.Type] = true
			if r.Name != tt.cred.Name || r.Source != tt.cred || r.Type != tt.cred.Spec.Type {
				t.Errorf("Resolve() = {Name: %q, Type: %q, Source: %p}, want {%q, %q, %p}",
					r.Name, r.Type, r.Source, tt.cred.Name, tt.cred.Spec.Type, tt.cred)
			}
			got := injection{SecretName: r.SecretName, Env: r.Env, Files: r.Files, ImagePullSecret: r.ImagePullSecret}
			if diff := cmp.Diff(tt.want, got, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("Resolve() mismatch (-want +got):\n%s", diff)
			}
		})
	}
	for _, typ := range credential.Types() {
		if !covered[typ] {
			t.Errorf("no test resolves a credential of type %s", typ)
		}
	}
}

// TestResolveDoesNotShareState checks that resolving one Credential leaves the preset (shared by
// every Credential of the type) as it was.
func TestResolveDoesNotShareState(t *testing.T) {
	custom := cred("a", v1alpha1.TypeAWS, withEnv(keyEnv("AWS_ACCESS_KEY_ID", "other")))
	if _, err := credential.Resolve(custom); err != nil {
		t.Fatal(err)
	}
	r, err := credential.Resolve(cred("b", v1alpha1.TypeAWS))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(awsKeys, r.Env); diff != "" {
		t.Errorf("preset changed by an earlier Resolve (-want +got):\n%s", diff)
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name string
		cred *v1alpha1.Credential
		// want lists, in order, a fragment of each problem reported; nil means valid.
		want []string
	}{
		{name: "valid", cred: cred("wandb", v1alpha1.TypeWandB)},
		{name: "63-character name", cred: cred(strings.Repeat("a", 63), v1alpha1.TypeWandB)},
		{name: "dotted name", cred: cred("team.wandb", v1alpha1.TypeWandB)},
		{name: "mode 0 and 0777", cred: cred("f", v1alpha1.TypeGeneric, withFiles(v1alpha1.Files{Items: []v1alpha1.FileItem{
			{Key: "a", Path: "a", Mode: new(int32(0))}, {Key: "b", Path: "b", Mode: new(int32(0o777))}}}))},
		{name: "dots that are not '..'", cred: cred("f", v1alpha1.TypeGeneric, withFiles(v1alpha1.Files{Items: []v1alpha1.FileItem{
			{Key: "a", Path: "..a/b..c/.d"}}}))},
		{
			name: "name longer than 63 characters",
			cred: cred(strings.Repeat("a", 64), v1alpha1.TypeWandB),
			want: []string{"<nil>: Invalid value: metadata.name must be at most 63 characters"},
		},
		{
			name: "uppercase name",
			cred: cred("WandB", v1alpha1.TypeWandB),
			want: []string{`metadata.name: Invalid value: "WandB": a lowercase RFC 1123 subdomain`, `spec.secretRef.name: Invalid value: "WandB-secret"`},
		},
		{
			name: "unknown type",
			cred: cred("x", "vault"),
			want: []string{"<nil>: Invalid value: null: some validation rules were not checked",
				`spec.type: Unsupported value: "vault": supported values: "generic", "aws", "s3-compatible", "gcp", "azure", "huggingface", "wandb", "mlflow", "kaggle", "git-ssh", "docker-registry", "ngc", "database"`},
		},
		{
			name: "preset type without secretRef",
			cred: &v1alpha1.Credential{ObjectMeta: metav1.ObjectMeta{Name: "hf"}, Spec: v1alpha1.CredentialSpec{Type: v1alpha1.TypeHuggingFace}},
			want: []string{"spec: Invalid value: spec.secretRef is required for every type but generic"},
		},
		{
			name: "bad env name",
			cred: cred("x", v1alpha1.TypeGeneric, withEnv(litEnv("1BAD", "v"), litEnv("BAD-NAME", "v"))),
			want: []string{`spec.env[0].name: Invalid value: "1BAD": spec.env[0].name in body should match '^[A-Za-z_][A-Za-z0-9_]*$'`,
				`spec.env[1].name: Invalid value: "BAD-NAME"`},
		},
		{
			name: "both key and value",
			cred: cred("x", v1alpha1.TypeGeneric, withEnv(v1alpha1.EnvVar{Name: "A", Key: new("k"), Value: new("v")})),
			want: []string{"spec.env[0]: Invalid value: set exactly one of key (from the Secret) or value (a literal)"},
		},
		{
			name: "neither key nor value",
			cred: cred("x", v1alpha1.TypeGeneric, withEnv(v1alpha1.EnvVar{Name: "A"})),
			want: []string{"spec.env[0]: Invalid value: set exactly one of key"},
		},
		{
			name: "bad Secret key",
			cred: cred("x", v1alpha1.TypeGeneric, withEnv(keyEnv("A", "a b"))),
			want: []string{`spec.env[0].key: Invalid value: "a b"`},
		},
		{
			name: "overridable Secret key",
			cred: cred("x", v1alpha1.TypeGeneric, withEnv(v1alpha1.EnvVar{Name: "A", Key: new("k"), Overridable: true})),
			want: []string{"spec.env[0]: Invalid value: only literal values can be overridable"},
		},
		{
			name: "generic with an env key but no secretRef",
			cred: &v1alpha1.Credential{ObjectMeta: metav1.ObjectMeta{Name: "x"}, Spec: v1alpha1.CredentialSpec{
				Type: v1alpha1.TypeGeneric, Env: []v1alpha1.EnvVar{keyEnv("TOKEN", "token")}}},
			want: []string{"spec: Invalid value: env keys, files and imagePullSecret read the Secret: set spec.secretRef"},
		},
		{
			name: "generic with files and imagePullSecret but no secretRef",
			cred: &v1alpha1.Credential{ObjectMeta: metav1.ObjectMeta{Name: "x"}, Spec: v1alpha1.CredentialSpec{
				Type: v1alpha1.TypeGeneric, Files: &v1alpha1.Files{}, ImagePullSecret: new(true)}},
			want: []string{"spec: Invalid value: env keys, files and imagePullSecret read the Secret"},
		},
		{
			name: "relative mountPath",
			cred: cred("x", v1alpha1.TypeGeneric, withFiles(v1alpha1.Files{MountPath: "etc/creds"})),
			want: []string{`spec.files.mountPath: Invalid value: "etc/creds"`},
		},
		{
			name: "absolute item path",
			cred: cred("x", v1alpha1.TypeGeneric, withFiles(v1alpha1.Files{Items: []v1alpha1.FileItem{{Key: "k", Path: "/etc/k"}}})),
			want: []string{`spec.files.items[0].path: Invalid value: "/etc/k": path must be relative to mountPath`},
		},
		{
			name: "'..' in item path",
			cred: cred("x", v1alpha1.TypeGeneric, withFiles(v1alpha1.Files{Items: []v1alpha1.FileItem{
				{Key: "a", Path: "../a"}, {Key: "b", Path: "x/../../b"}, {Key: "c", Path: "x/.."}}})),
			want: []string{`spec.files.items[0].path: Invalid value: "../a": path may not contain '..'`,
				`spec.files.items[1].path: Invalid value: "x/../../b": path may not contain`, `spec.files.items[2].path: Invalid value: "x/..": path may not contain`},
		},
		{
			name: "empty item path and bad item key",
			cred: cred("x", v1alpha1.TypeGeneric, withFiles(v1alpha1.Files{Items: []v1alpha1.FileItem{{Key: "a/b", Path: ""}}})),
			want: []string{`spec.files.items[0].key: Invalid value: "a/b"`, `spec.files.items[0].path: Invalid value: "": spec.files.items[0].path in body should be at least 1 chars long`},
		},
		{
			name: "mode out of range",
			cred: cred("x", v1alpha1.TypeGeneric, withFiles(v1alpha1.Files{Items: []v1alpha1.FileItem{
				{Key: "a", Path: "a", Mode: new(int32(0o1000))}, {Key: "b", Path: "b", Mode: new(int32(-1))}}})),
			want: []string{"spec.files.items[0].mode: Invalid value: 512: spec.files.items[0].mode in body should be less than or equal to 511",
				"spec.files.items[1].mode: Invalid value: -1: spec.files.items[1].mode in body should be greater than or equal to 0"},
		},
		{
			name: "s3-compatible without aws",
			cred: cred("x", v1alpha1.TypeS3Compatible),
			want: []string{"type s3-compatible needs spec.aws.endpoint"},
		},
		{
			name: "s3-compatible with a region but no endpoint",
			cred: cred("x", v1alpha1.TypeS3Compatible, withAWS("eu-central-2", "")),
			want: []string{"type s3-compatible needs spec.aws.endpoint"},
		},
		{
			name: "database without kind",
			cred: cred("x", v1alpha1.TypeDatabase),
			want: []string{"type database needs spec.database.kind"},
		},
		{name: "type omitted defaults to generic", cred: &v1alpha1.Credential{ObjectMeta: metav1.ObjectMeta{Name: "x"},
			Spec: v1alpha1.CredentialSpec{Env: []v1alpha1.EnvVar{{Name: "MODE", Value: new("fast")}}}}},
		{
			name: "paths a shell would split",
			cred: cred("git", v1alpha1.TypeGitSSH, withFiles(v1alpha1.Files{MountPath: "/root/my keys;id", Items: []v1alpha1.FileItem{
				{Key: "ssh-privatekey", Path: "id $(reboot)"}}})),
			want: []string{`spec.files.items[0].path: Invalid value: "id $(reboot)"`, `spec.files.mountPath: Invalid value: "/root/my keys;id"`},
		},
		{
			name: "duplicates and empty secret name",
			cred: cred("x", v1alpha1.TypeGeneric, withEnv(litEnv("A", "1"), litEnv("A", "2")),
				withFiles(v1alpha1.Files{Items: []v1alpha1.FileItem{{Key: "k", Path: "a"}, {Key: "k", Path: "b"}}}),
				func(s *v1alpha1.CredentialSpec) { s.SecretRef.Name = "" }),
			want: []string{`spec.env[1]: Duplicate value: {"name":"A"}`, `spec.files.items[1]: Duplicate value: {"key":"k"}`,
				`spec.secretRef.name: Invalid value: "": spec.secretRef.name in body should be at least 1 chars long`},
		},
		{
			name: "aws region and endpoint, database kind, kaggle file name",
			cred: cred("x", v1alpha1.TypeKaggle, withAWS("EU West 1", "minio:9000"),
				withFiles(v1alpha1.Files{Items: []v1alpha1.FileItem{{Key: "kaggle.json", Path: "creds.json"}}}),
				func(s *v1alpha1.CredentialSpec) { s.Database = &v1alpha1.Database{Kind: "postgresql"} }),
			want: []string{"<nil>: Invalid value: null: some validation rules were not checked", `spec.aws.endpoint: Invalid value: "minio:9000"`,
				`spec.aws.region: Invalid value: "EU West 1"`, `spec.database.kind: Unsupported value: "postgresql"`},
		},
		{
			name: "kaggle.json under another name",
			cred: cred("k", v1alpha1.TypeKaggle, withFiles(v1alpha1.Files{Items: []v1alpha1.FileItem{{Key: "kaggle.json", Path: "creds.json"}}})),
			want: []string{"spec: Invalid value: the Kaggle CLI reads a file named kaggle.json"},
		},
		{name: "kaggle.json in a folder", cred: cred("k", v1alpha1.TypeKaggle, withFiles(v1alpha1.Files{Items: []v1alpha1.FileItem{
			{Key: "kaggle.json", Path: "cfg/kaggle.json"}}}))},
		{
			name: "unknown access level",
			cred: cred("x", v1alpha1.TypeWandB, func(s *v1alpha1.CredentialSpec) { s.Access.Level = "root" }),
			want: []string{"<nil>: Invalid value: null: some validation rules were not checked",
				`spec.access.level: Unsupported value: "root": supported values: "read-only", "read-write", "admin"`},
		},
		{
			name: "every problem listed at once",
			cred: &v1alpha1.Credential{ObjectMeta: metav1.ObjectMeta{Name: strings.Repeat("x", 64)}, Spec: v1alpha1.CredentialSpec{
				Type: v1alpha1.TypeS3Compatible,
				Env: []v1alpha1.EnvVar{
					{Name: "1X", Value: new("v")},
					{Name: "B", Key: new("k"), Value: new("v")},
					{Name: "C", Key: new("k"), Overridable: true},
				},
				Files: &v1alpha1.Files{MountPath: "rel", Items: []v1alpha1.FileItem{
					{Key: "k", Path: "/abs"}, {Key: "k2", Path: "a/../b", Mode: new(int32(0o7777))}}},
			}},
			want: []string{
				"<nil>: Invalid value: metadata.name must be at most 63 characters",
				`spec.env[0].name: Invalid value: "1X"`,
				"spec.env[1]: Invalid value: set exactly one of key",
				"spec.env[2]: Invalid value: only literal values can be overridable",
				`spec.files.items[0].path: Invalid value: "/abs": path must be relative to mountPath`,
				"spec.files.items[1].mode: Invalid value: 4095",
				`spec.files.items[1].path: Invalid value: "a/../b": path may not contain '..'`,
				`spec.files.mountPath: Invalid value: "rel"`,
				"spec: Invalid value: env keys, files and imagePullSecret read the Secret: set spec.secretRef",
				"spec: Invalid value: spec.secretRef is required for every type but generic",
				"spec: Invalid value: type s3-compatible needs spec.aws.endpoint",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := credential.Validate(tt.cred)
			if !matchAll(tt.want, got) {
				t.Errorf("Validate() mismatch; want one problem containing each fragment, in order (-want +got):\n%s",
					cmp.Diff(tt.want, got))
			}
			_, err := credential.Resolve(tt.cred)
			switch {
			case len(tt.want) == 0 && err != nil:
				t.Errorf("Resolve() error = %v, want nil", err)
			case len(tt.want) > 0 && !errors.Is(err, credential.ErrInvalid):
				t.Errorf("Resolve() error = %v, want one wrapping ErrInvalid", err)
			case len(tt.want) > 0 && !strings.Contains(err.Error(), strings.Join(got, "; ")):
				t.Errorf("Resolve() error = %q, want it to list every problem: %q", err, got)
			}
		})
	}
}

// matchAll reports whether got has exactly one entry per fragment of want, each containing it.
func matchAll(want, got []string) bool {
	if len(want) != len(got) {
		return false
	}
	for i := range want {
		if !strings.Contains(got[i], want[i]) {
			return false
		}
	}
	return true
}

func TestVolumeName(t *testing.T) {
	long := strings.Repeat("a", 63)
	tests := []struct {
		name string
		want string // exact name, or "" when only validity and uniqueness are checked
	}{
		{name: "wandb", want: "credgate-wandb"},
		{name: strings.Repeat("b", 54), want: "credgate-" + strings.Repeat("b", 54)}, // exactly 63
		{name: strings.Repeat("b", 55)},
		{name: long},
		{name: long[:62] + "b"}, // shares its first 40 characters with long
		{name: "team.wandb", want: "credgate--team-wandb-" + sha20("team.wandb")},
		{name: "team-wandb", want: "credgate-team-wandb"},
		// The hashed name of a.b, as an ordinary name: credgate-<name> as it is.
		{name: "a.b", want: "credgate--a-b-2e7336dc8eba87ef472d"},
		{name: "a-b-2e7336dc", want: "credgate-a-b-2e7336dc"},
		{name: "a-b", want: "credgate-a-b"},
		{name: "a--b", want: "credgate-a--b"},
		{name: "a..b"},
		{name: strings.Repeat("c", 29) + ".d"}, // the cut at 30 characters ends in a dot
		{name: strings.Repeat("e", 39) + "-" + strings.Repeat("f", 23)},
		{name: "1"},
	}
	seen := map[string]string{}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := credential.VolumeName(tt.name)
			if ordinary := len(validation.IsDNS1123Label(tt.name)) == 0 && len(tt.name) <= 54; ordinary != !strings.HasPrefix(got, credential.VolumePrefix+"-") {
				t.Errorf("VolumeName(%q) = %q: the double dash must mark exactly the names that are not ordinary", tt.name, got)
			}
			if tt.want != "" && got != tt.want {
				t.Errorf("VolumeName(%q) = %q, want %q", tt.name, got, tt.want)
			}
			if errs := validation.IsDNS1123Label(got); len(errs) > 0 {
				t.Errorf("VolumeName(%q) = %q, not a DNS label: %v", tt.name, got, errs)
			}
			if !strings.HasPrefix(got, credential.VolumePrefix) {
				t.Errorf("VolumeName(%q) = %q, want prefix %q", tt.name, got, credential.VolumePrefix)
			}
			if again := credential.VolumeName(tt.name); again != got {
				t.Errorf("VolumeName(%q) is not stable: %q then %q", tt.name, got, again)
			}
			if other, ok := seen[got]; ok {
				t.Errorf("VolumeName(%q) = VolumeName(%q) = %q", tt.name, other, got)
			}
			seen[got] = tt.name
		})
	}
}

// TestVolumeNamesNeverCollide: the hashed volume name of a name that is not an ordinary one
// is never the volume name of another credential. "a.b" once became credgate-a-b-2e7336dc,
// the volume name of a credential called a-b-2e7336dc: a pod requesting both got one volume,
// and a.b's files were silently not mounted.
func TestVolumeNamesNeverCollide(t *testing.T) {
	tests := []struct{ a, b string }{
		{"a.b", "a-b-2e7336dc"},
		{"team.wandb", "team-wandb-" + sha20("team.wandb")},
		{strings.Repeat("x", 55), strings.Repeat("x", 30) + "-" + sha20(strings.Repeat("x", 55))},
		// Once 32 bits of hash: two names a tenant found in 2^16 tries shared a volume.
		{"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-000000000000ee65", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-000000000001a4c2"},
		{"a.b", "a-b"},
		{"a.b.c", "a-b.c"},
	}
	for _, tt := range tests {
		t.Run(tt.a+" "+tt.b, func(t *testing.T) {
			if va, vb := credential.VolumeName(tt.a), credential.VolumeName(tt.b); va == vb {
				t.Errorf("VolumeName(%q) = VolumeName(%q) = %q", tt.a, tt.b, va)
			}
		})
	}
}

// sha20 is the hash VolumeName appends: 10 bytes of sha256, 20 hex digits.
func sha20(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:10])
}
