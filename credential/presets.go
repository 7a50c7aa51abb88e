package credential

import (
	"path"
	"strings"

	"github.com/credgate/credgate/api/v1alpha1"
)

// preset is what a credential type brings by default: Secret-keyed and literal variables, the
// files it mounts, whether its Secret is an image-pull secret, and a small function deriving
// the variables that depend on the spec or on where the files ended up.
type preset struct {
	env []Env
	// files are the preset's file items; nil mounts nothing unless the Credential lists files.
	files []FileItem
	// wholeSecret mounts every key of the Secret (for presets whose optional keys cannot be
	// projected one by one: a missing projected key stops the pod from starting).
	wholeSecret bool
	pullSecret  bool
	// derive returns variables computed from the spec and the final file layout; f is nil
	// when no files are mounted.
	derive func(spec *v1alpha1.CredentialSpec, f *Files) []Env
	// aliases are variables that older tools read under another name: each copies its
	// primary's final definition (after the Credential's own env) unless the Credential sets
	// the alias itself.
	aliases []alias
}

// alias makes variable name a copy of variable of.
type alias struct{ name, of string }

func secretEnv(name, key string) Env         { return Env{Name: name, Key: key} }
func optionalSecretEnv(name, key string) Env { return Env{Name: name, Key: key, Optional: true} }
func literalEnv(name, value string) Env      { return Env{Name: name, Value: value} }

var awsKeys = []Env{
	secretEnv("AWS_ACCESS_KEY_ID", "aws_access_key_id"),
	secretEnv("AWS_SECRET_ACCESS_KEY", "aws_secret_access_key"),
	optionalSecretEnv("AWS_SESSION_TOKEN", "aws_session_token"),
}

// presets maps every credential type to its preset. It is read-only.
var presets = map[v1alpha1.CredentialType]preset{
	v1alpha1.TypeGeneric: {},
	v1alpha1.TypeAWS:     {env: awsKeys, derive: awsDerive, aliases: awsAliases},
	v1alpha1.TypeS3Compatible: {env: awsKeys, aliases: awsAliases, derive: func(s *v1alpha1.CredentialSpec, f *Files) []Env {
		env := awsDerive(s, f)
		if s.AWS != nil && s.AWS.Endpoint != "" {
			env = append(env, literalEnv("AWS_ENDPOINT_URL_S3", s.AWS.Endpoint))
		}
		return env
	}},
	v1alpha1.TypeGCP: {
		files: []FileItem{{Key: "key.json", Path: "key.json", Mode: DefaultFileMode}},
		derive: func(_ *v1alpha1.CredentialSpec, f *Files) []Env {
			p, ok := filePath(f, "key.json")
			if !ok || f.Token != nil { // workload identity federation points at its own file
				return nil
			}
			return []Env{literalEnv("GOOGLE_APPLICATION_CREDENTIALS", p)}
		},
		// Client libraries read GOOGLE_APPLICATION_CREDENTIALS; the gcloud CLI reads this.
		aliases: []alias{{"CLOUDSDK_AUTH_CREDENTIAL_FILE_OVERRIDE", "GOOGLE_APPLICATION_CREDENTIALS"}},
	},
	v1alpha1.TypeAzure: {env: []Env{
		secretEnv("AZURE_CLIENT_ID", "client-id"),
		secretEnv("AZURE_TENANT_ID", "tenant-id"),
		secretEnv("AZURE_CLIENT_SECRET", "client-secret"),
	}},
	v1alpha1.TypeHuggingFace: {
		env: []Env{secretEnv("HF_TOKEN", "token")},
		// huggingface_hub before 0.20 reads only the older name.
		aliases: []alias{{"HUGGING_FACE_HUB_TOKEN", "HF_TOKEN"}},
	},
	v1alpha1.TypeWandB: {env: []Env{secretEnv("WANDB_API_KEY", "api-key")}},
	v1alpha1.TypeMLflow: {env: []Env{
		secretEnv("MLFLOW_TRACKING_USERNAME", "username"),
		secretEnv("MLFLOW_TRACKING_PASSWORD", "password"),
	}},
	v1alpha1.TypeKaggle: {
		files: []FileItem{{Key: "kaggle.json", Path: "kaggle.json", Mode: DefaultFileMode}},
		derive: func(_ *v1alpha1.CredentialSpec, f *Files) []Env {
			// The Kaggle CLI reads $KAGGLE_CONFIG_DIR/kaggle.json (Validate keeps the name).
			p, ok := filePath(f, "kaggle.json")
			if !ok {
				return nil
			}
			return []Env{literalEnv("KAGGLE_CONFIG_DIR", path.Dir(p))}
		},
	},
	v1alpha1.TypeGitSSH:         {wholeSecret: true, derive: gitSSHDerive},
	v1alpha1.TypeDockerRegistry: {pullSecret: true},
	v1alpha1.TypeNGC: {
		env:        []Env{secretEnv("NGC_API_KEY", "api-key")},
		pullSecret: true,
		// NIM containers read NGC_API_KEY; the ngc CLI reads NGC_CLI_API_KEY.
		aliases: []alias{{"NGC_CLI_API_KEY", "NGC_API_KEY"}},
	},
	v1alpha1.TypeDatabase: {derive: databaseDerive},
}

// The SDKs read AWS_REGION; the v1 CLI and older tools read AWS_DEFAULT_REGION.
var awsAliases = []alias{{"AWS_DEFAULT_REGION", "AWS_REGION"}}

func awsDerive(s *v1alpha1.CredentialSpec, _ *Files) []Env {
	if s.AWS == nil || s.AWS.Region == "" {
		return nil
	}
	return []Env{literalEnv("AWS_REGION", s.AWS.Region)}
}

// gitSSHDerive builds GIT_SSH_COMMAND around the mounted key. IdentitiesOnly stops ssh from
// offering other keys; host keys are checked strictly against the mounted known_hosts (and the
// image's global one), so a missing known_hosts fails loudly instead of trusting any host.
// git runs the command through sh -c: paths are single-quoted (Validate already limits them
// to characters that need no quoting).
func gitSSHDerive(_ *v1alpha1.CredentialSpec, f *Files) []Env {
	key, ok := filePath(f, "ssh-privatekey")
	if !ok {
		return nil
	}
	cmd := "ssh -i " + shellQuote(key) + " -o IdentitiesOnly=yes"
	if hosts, ok := filePath(f, "known_hosts"); ok {
		cmd += " -o UserKnownHostsFile=" + shellQuote(hosts)
	}
	cmd += " -o StrictHostKeyChecking=yes"
	return []Env{literalEnv("GIT_SSH_COMMAND", cmd)}
}

func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// databaseDerive names the variables after what each kind's clients read: libpq (psql,
// psycopg, pgx) reads PG*; the mysql client reads MYSQL_HOST and MYSQL_TCP_PORT.
func databaseDerive(s *v1alpha1.CredentialSpec, _ *Files) []Env {
	if s.Database == nil {
		return nil
	}
	switch s.Database.Kind {
	case v1alpha1.DatabasePostgres:
		return []Env{
			secretEnv("PGUSER", "username"), secretEnv("PGPASSWORD", "password"),
			optionalSecretEnv("PGHOST", "host"), optionalSecretEnv("PGPORT", "port"),
			optionalSecretEnv("PGDATABASE", "database"), optionalSecretEnv("DATABASE_URL", "uri"),
		}
	case v1alpha1.DatabaseMySQL:
		return []Env{
			secretEnv("MYSQL_USER", "username"), secretEnv("MYSQL_PASSWORD", "password"),
			optionalSecretEnv("MYSQL_HOST", "host"), optionalSecretEnv("MYSQL_TCP_PORT", "port"),
			optionalSecretEnv("MYSQL_DATABASE", "database"), optionalSecretEnv("DATABASE_URL", "uri"),
		}
	case v1alpha1.DatabaseMongoDB:
		return []Env{
			secretEnv("MONGODB_USERNAME", "username"), secretEnv("MONGODB_PASSWORD", "password"),
			optionalSecretEnv("MONGODB_HOST", "host"), optionalSecretEnv("MONGODB_PORT", "port"),
			optionalSecretEnv("MONGODB_DATABASE", "database"), optionalSecretEnv("MONGODB_URI", "uri"),
		}
	}
	return nil
}

// filePath returns the absolute path at which Secret key appears in f.
func filePath(f *Files, key string) (string, bool) {
	if f == nil {
		return "", false
	}
	if len(f.Items) == 0 {
		return path.Join(f.MountPath, key), true
	}
	for _, it := range f.Items {
		if it.Key == key {
			return path.Join(f.MountPath, it.Path), true
		}
	}
	return "", false
}

// Types lists every credential type, in a stable order.
func Types() []v1alpha1.CredentialType {
	return []v1alpha1.CredentialType{
		v1alpha1.TypeGeneric, v1alpha1.TypeAWS, v1alpha1.TypeS3Compatible, v1alpha1.TypeGCP,
		v1alpha1.TypeAzure, v1alpha1.TypeHuggingFace, v1alpha1.TypeWandB, v1alpha1.TypeMLflow,
		v1alpha1.TypeKaggle, v1alpha1.TypeGitSSH, v1alpha1.TypeDockerRegistry, v1alpha1.TypeNGC,
		v1alpha1.TypeDatabase,
	}
}

// isDNSLabel reports whether s can be a volume name as it is.
func isDNSLabel(s string) bool {
	if s == "" || len(s) > 63 || strings.HasPrefix(s, "-") || strings.HasSuffix(s, "-") {
		return false
	}
	for _, c := range s {
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '-' {
			return false
		}
	}
	return true
}
