package credential_test

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/google/go-cmp/cmp"
	"golang.org/x/oauth2/google"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/credgate/credgate/api/v1alpha1"
	"github.com/credgate/credgate/credential"
	"github.com/credgate/credgate/mutate"
	"github.com/credgate/credgate/test/podenv"
	"github.com/credgate/credgate/workload"
)

// These tests take each preset the whole way a user's job does: Resolve the Credential, inject
// it into a pod with mutate.Apply, materialise the container as the kubelet would start it
// (test/podenv), and ask the real client library or CLI what it makes of the result.

// secret returns the Secret that credential cred reads (see cred in presets_test.go).
func secret(cred string, data map[string]string) *corev1.Secret {
	s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: cred + "-secret", Namespace: "team-a"}, Data: map[string][]byte{}}
	for k, v := range data {
		s.Data[k] = []byte(v)
	}
	return s
}

// inject resolves c, injects it into the container "trainer" of a pod and materialises that
// container with the Secret sec.
func inject(t *testing.T, c *v1alpha1.Credential, sec *corev1.Secret) (*corev1.Pod, *podenv.Container) {
	t.Helper()
	r, err := credential.Resolve(c)
	if err != nil {
		t.Fatalf("Resolve() error = %v", err)
	}
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "train-42", Namespace: "team-a"},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "trainer", Image: "python:3.12"}}},
	}
	tmpl := workload.Template{Meta: &pod.ObjectMeta, Spec: &pod.Spec}
	if conflicts := mutate.Apply(tmpl, []credential.Resolved{r}, []string{"trainer"}); len(conflicts) > 0 {
		t.Fatalf("mutate.Apply() conflicts = %+v", conflicts)
	}
	ctr, err := podenv.Materialise(&pod.Spec, "trainer", []*corev1.Secret{sec}, t.TempDir())
	if err != nil {
		t.Fatalf("Materialise() error = %v", err)
	}
	return pod, ctr
}

// setProcessEnv makes env the process environment for the rest of the test, after unsetting
// every ambient variable starting with one of clear, so the host's own configuration cannot
// stand in for what the pod provides.
func setProcessEnv(t *testing.T, env map[string]string, clear ...string) {
	t.Helper()
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		for _, prefix := range clear {
			if strings.HasPrefix(k, prefix) {
				t.Setenv(k, "") // restores the ambient value after the test
				if err := os.Unsetenv(k); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	for k, v := range env {
		t.Setenv(k, v)
	}
}

// fileMode returns the permission bits of the file at p, failing the test if there is none.
func fileMode(t *testing.T, p string) fs.FileMode {
	t.Helper()
	st, err := os.Stat(p)
	if err != nil {
		t.Fatalf("stat mounted file: %v", err)
	}
	return st.Mode().Perm()
}

// fakeS3 is an S3 endpoint that answers ListBuckets and records the requests it gets.
type fakeS3 struct {
	mu   sync.Mutex
	auth []string
}

func (f *fakeS3) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	f.auth = append(f.auth, r.Method+" "+r.URL.Path+" "+r.Header.Get("Authorization"))
	f.mu.Unlock()
	w.Header().Set("Content-Type", "application/xml")
	_, _ = w.Write([]byte(`<?xml version="1.0" encoding="UTF-8"?>
<ListAllMyBucketsResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Owner><ID>fake</ID></Owner>
<Buckets><Bucket><Name>credgate-fake-bucket</Name><CreationDate>2026-01-01T00:00:00.000Z</CreationDate></Bucket></Buckets>
</ListAllMyBucketsResult>`))
}

func (f *fakeS3) requests() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.auth...)
}

// TestSDKAWS loads the aws-sdk-go-v2 default configuration from the environment an aws or
// s3-compatible credential gives a pod.
func TestSDKAWS(t *testing.T) {
	keys := map[string]string{
		"aws_access_key_id":     "AKIACREDGATEFAKE0001",
		"aws_secret_access_key": "fake/Secret+Access/Key0000000000000000001",
	}
	withToken := map[string]string{"aws_session_token": "FwoGZXIvYXdzEFAKE//session+token=="}
	for k, v := range keys {
		withToken[k] = v
	}
	type creds struct{ AccessKeyID, SecretAccessKey, SessionToken, Source string }
	tests := []struct {
		name    string
		typ     v1alpha1.CredentialType
		region  string
		data    map[string]string
		fakeS3  bool // the Credential's endpoint is a fake S3 server the client then calls
		want    creds
		wantEnv []string
	}{
		{
			name: "aws static keys without a session token", typ: v1alpha1.TypeAWS, region: "eu-west-3", data: keys,
			want:    creds{keys["aws_access_key_id"], keys["aws_secret_access_key"], "", config.CredentialsSourceName},
			wantEnv: []string{"AWS_ACCESS_KEY_ID", "AWS_DEFAULT_REGION", "AWS_REGION", "AWS_SECRET_ACCESS_KEY"},
		},
		{
			name: "aws with a session token", typ: v1alpha1.TypeAWS, region: "us-east-2", data: withToken,
			want: creds{keys["aws_access_key_id"], keys["aws_secret_access_key"], withToken["aws_session_token"],
				config.CredentialsSourceName},
			wantEnv: []string{"AWS_ACCESS_KEY_ID", "AWS_DEFAULT_REGION", "AWS_REGION", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"},
		},
		{
			name: "s3-compatible", typ: v1alpha1.TypeS3Compatible, region: "eu-central-2", data: keys, fakeS3: true,
			want: creds{keys["aws_access_key_id"], keys["aws_secret_access_key"], "", config.CredentialsSourceName},
			wantEnv: []string{"AWS_ACCESS_KEY_ID", "AWS_DEFAULT_REGION", "AWS_ENDPOINT_URL_S3", "AWS_REGION",
				"AWS_SECRET_ACCESS_KEY"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := t.Context()
			endpoint, server := "", &fakeS3{}
			if tt.fakeS3 {
				srv := httptest.NewServer(server)
				t.Cleanup(srv.Close)
				endpoint = srv.URL
			}
			_, ctr := inject(t, cred("store", tt.typ, withAWS(tt.region, endpoint)), secret("store", tt.data))
			if diff := cmp.Diff(tt.wantEnv, sortedKeys(ctr.Env)); diff != "" {
				t.Errorf("pod environment mismatch (-want +got):\n%s", diff)
			}
			nowhere := filepath.Join(t.TempDir(), "absent")
			setProcessEnv(t, ctr.Env, "AWS_")
			t.Setenv("AWS_CONFIG_FILE", nowhere+"/config")
			t.Setenv("AWS_SHARED_CREDENTIALS_FILE", nowhere+"/credentials")
			t.Setenv("AWS_EC2_METADATA_DISABLED", "true")

			cfg, err := config.LoadDefaultConfig(ctx)
			if err != nil {
				t.Fatalf("LoadDefaultConfig() error = %v", err)
			}
			if cfg.Region != tt.region {
				t.Errorf("cfg.Region = %q, want %q", cfg.Region, tt.region)
			}
			c, err := cfg.Credentials.Retrieve(ctx)
			if err != nil {
				t.Fatalf("Credentials.Retrieve() error = %v", err)
			}
			if diff := cmp.Diff(tt.want, creds{c.AccessKeyID, c.SecretAccessKey, c.SessionToken, c.Source}); diff != "" {
				t.Errorf("credentials mismatch (-want +got):\n%s", diff)
			}

			client := s3.NewFromConfig(cfg)
			var gotEndpoint string
			if p := client.Options().BaseEndpoint; p != nil {
				gotEndpoint = *p
			}
			if gotEndpoint != endpoint {
				t.Errorf("s3 client BaseEndpoint = %q, want %q", gotEndpoint, endpoint)
			}
			if !tt.fakeS3 {
				return
			}
			out, err := client.ListBuckets(ctx, &s3.ListBucketsInput{})
			if err != nil {
				t.Fatalf("ListBuckets() against the fake S3 endpoint: %v", err)
			}
			if len(out.Buckets) != 1 || out.Buckets[0].Name == nil || *out.Buckets[0].Name != "credgate-fake-bucket" {
				t.Errorf("ListBuckets() = %+v, want the fake server's bucket", out.Buckets)
			}
			// The request reached the endpoint, signed with the Secret's key id for the spec's region.
			scope := "Credential=" + tt.want.AccessKeyID + "/"
			region := "/" + tt.region + "/s3/aws4_request"
			reqs := server.requests()
			if len(reqs) != 1 || !strings.Contains(reqs[0], scope) || !strings.Contains(reqs[0], region) {
				t.Errorf("fake S3 server got %q, want one request signed with %q...%q", reqs, scope, region)
			}
		})
	}
}

// fakeServiceAccount returns a service-account key file like the one the GCP console downloads,
// with a freshly generated private key.
func fakeServiceAccount(t *testing.T) ([]byte, *rsa.PublicKey) {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.MarshalIndent(map[string]string{
		"type":                        "service_account",
		"project_id":                  "credgate-fake-project",
		"private_key_id":              "0123456789abcdef0123456789abcdef01234567",
		"private_key":                 string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})),
		"client_email":                "trainer@credgate-fake-project.iam.gserviceaccount.com",
		"client_id":                   "104242424242424242424",
		"auth_uri":                    "https://accounts.google.com/o/oauth2/auth",
		"token_uri":                   "https://oauth2.googleapis.com/token",
		"auth_provider_x509_cert_url": "https://www.googleapis.com/oauth2/v1/certs",
		"universe_domain":             "googleapis.com",
	}, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return b, &key.PublicKey
}

// verifyJWT checks the RS256 signature of token with pub and returns its header and claims.
func verifyJWT(t *testing.T, token string, pub *rsa.PublicKey) (header, claims map[string]any) {
	t.Helper()
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		t.Fatalf("token has %d parts, want 3", len(parts))
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	if err := rsa.VerifyPKCS1v15(pub, crypto.SHA256, sum[:], sig); err != nil {
		t.Fatalf("token not signed by the service account's key: %v", err)
	}
	for i, v := range []*map[string]any{&header, &claims} {
		b, err := base64.RawURLEncoding.DecodeString(parts[i])
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(b, v); err != nil {
			t.Fatal(err)
		}
	}
	return header, claims
}

// TestSDKGCP has golang.org/x/oauth2/google find Application Default Credentials where a gcp
// credential puts them, then sign a self-signed JWT with the mounted key (no network call).
func TestSDKGCP(t *testing.T) {
	keyJSON, pub := fakeServiceAccount(t)
	tests := []struct {
		name string
		cred *v1alpha1.Credential
	}{
		{name: "default mount", cred: cred("gcp", v1alpha1.TypeGCP)},
		{name: "custom mountPath and item", cred: cred("gcp", v1alpha1.TypeGCP, withFiles(v1alpha1.Files{
			MountPath: "/etc/gcloud", Items: []v1alpha1.FileItem{{Key: "key.json", Path: "sa/credentials.json"}}}))},
	}
	const scope = "https://www.googleapis.com/auth/devstorage.read_only"
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, ctr := inject(t, tt.cred, secret("gcp", map[string]string{"key.json": string(keyJSON)}))
			p := ctr.Env["GOOGLE_APPLICATION_CREDENTIALS"]
			if p == "" {
				// Without it FindDefaultCredentials would probe the GCE metadata server.
				t.Fatalf("GOOGLE_APPLICATION_CREDENTIALS not set; pod environment: %v", sortedKeys(ctr.Env))
			}
			if got := ctr.Env["CLOUDSDK_AUTH_CREDENTIAL_FILE_OVERRIDE"]; got != p {
				t.Errorf("CLOUDSDK_AUTH_CREDENTIAL_FILE_OVERRIDE = %q, want %q (the gcloud CLI reads it)", got, p)
			}
			if m := fileMode(t, p); m != 0o400 {
				t.Errorf("key file mode = %#o, want 0400", m)
			}
			setProcessEnv(t, ctr.Env, "GOOGLE_", "CLOUDSDK_")

			creds, err := google.FindDefaultCredentials(t.Context(), scope)
			if err != nil {
				t.Fatalf("FindDefaultCredentials() error = %v", err)
			}
			if diff := cmp.Diff(string(keyJSON), string(creds.JSON)); diff != "" {
				t.Errorf("credentials JSON is not the Secret's key.json (-want +got):\n%s", diff)
			}
			if creds.ProjectID != "credgate-fake-project" {
				t.Errorf("ProjectID = %q, want credgate-fake-project", creds.ProjectID)
			}
			ts, err := google.JWTAccessTokenSourceWithScope(creds.JSON, scope)
			if err != nil {
				t.Fatalf("JWTAccessTokenSourceWithScope() error = %v", err)
			}
			tok, err := ts.Token()
			if err != nil {
				t.Fatalf("Token() error = %v", err)
			}
			header, claims := verifyJWT(t, tok.AccessToken, pub)
			got := map[string]any{"kid": header["kid"], "iss": claims["iss"], "scope": claims["scope"]}
			want := map[string]any{"kid": "0123456789abcdef0123456789abcdef01234567",
				"iss": "trainer@credgate-fake-project.iam.gserviceaccount.com", "scope": scope}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("self-signed JWT mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

// TestSDKKaggle checks what the Kaggle CLI reads: $KAGGLE_CONFIG_DIR/kaggle.json, which it
// wants readable by its owner only.
func TestSDKKaggle(t *testing.T) {
	const kaggleJSON = `{"username":"credgate-fake-kaggler","key":"0123456789abcdef0123456789abcdef"}`
	tests := []struct {
		name string
		cred *v1alpha1.Credential
	}{
		{name: "default mount", cred: cred("kaggle", v1alpha1.TypeKaggle)},
		{name: "the CLI's own directory", cred: cred("kaggle", v1alpha1.TypeKaggle, withFiles(v1alpha1.Files{MountPath: "/root/.kaggle"}))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, ctr := inject(t, tt.cred, secret("kaggle", map[string]string{"kaggle.json": kaggleJSON}))
			dir, ok := ctr.Env["KAGGLE_CONFIG_DIR"]
			if !ok {
				t.Fatalf("KAGGLE_CONFIG_DIR not set; pod environment: %v", sortedKeys(ctr.Env))
			}
			p := filepath.Join(dir, "kaggle.json")
			b, err := os.ReadFile(p)
			if err != nil {
				t.Fatalf("read $KAGGLE_CONFIG_DIR/kaggle.json: %v", err)
			}
			if diff := cmp.Diff(kaggleJSON, string(b)); diff != "" {
				t.Errorf("kaggle.json is not the Secret's (-want +got):\n%s", diff)
			}
			if m := fileMode(t, p); m != 0o400 {
				t.Errorf("kaggle.json mode = %#o, want 0400", m)
			}
		})
	}
}

// sshConfig runs GIT_SSH_COMMAND the way git does — through sh -c, with the host appended —
// adding -G so the real ssh prints its resolved configuration instead of connecting. The
// (quoted) absolute paths are mapped to where podenv wrote the files.
func sshConfig(t *testing.T, ctr *podenv.Container, host string) map[string][]string {
	t.Helper()
	line := ctr.Env["GIT_SSH_COMMAND"]
	if !strings.HasPrefix(line, "ssh ") {
		t.Fatalf("GIT_SSH_COMMAND = %q, want an ssh command", line)
	}
	line = strings.ReplaceAll(line, "'/", "'"+ctr.Root+"/")
	// -F /dev/null ignores the test machine's ~/.ssh/config.
	args := []string{"-c", line + ` -G -F /dev/null "$0"`, host}
	cmd := exec.CommandContext(t.Context(), "sh", args...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("ssh %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	cfg := map[string][]string{}
	for _, line := range strings.Split(string(out), "\n") {
		if k, v, ok := strings.Cut(line, " "); ok {
			cfg[k] = append(cfg[k], v)
		}
	}
	return cfg
}

// TestSDKGitSSH checks the git-ssh preset with the real OpenSSH client: ssh -G resolves
// GIT_SSH_COMMAND to the mounted key and known_hosts, and ssh-keygen loads the mounted key
// (it refuses a private key that others can read).
func TestSDKGitSSH(t *testing.T) {
	keyDir := t.TempDir()
	keyPath := filepath.Join(keyDir, "id_ed25519")
	if out, err := exec.CommandContext(t.Context(), "ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "credgate-fake",
		"-f", keyPath).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen: %v\n%s", err, out)
	}
	priv, err := os.ReadFile(keyPath)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := os.ReadFile(keyPath + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	knownHosts := "git.example.com " + string(pub)

	tests := []struct {
		name      string
		cred      *v1alpha1.Credential
		data      map[string]string
		key       string // container paths
		knownHost string
	}{
		{
			name: "default mount", cred: cred("git", v1alpha1.TypeGitSSH),
			data: map[string]string{"ssh-privatekey": string(priv), "known_hosts": knownHosts},
			key:  "/var/run/secrets/credgate/git/ssh-privatekey", knownHost: "/var/run/secrets/credgate/git/known_hosts",
		},
		{
			name: "without the optional known_hosts", cred: cred("git", v1alpha1.TypeGitSSH),
			data: map[string]string{"ssh-privatekey": string(priv)},
			key:  "/var/run/secrets/credgate/git/ssh-privatekey", knownHost: "/var/run/secrets/credgate/git/known_hosts",
		},
		{
			name: "custom mountPath and items", cred: cred("git", v1alpha1.TypeGitSSH, withFiles(v1alpha1.Files{
				MountPath: "/root/.ssh", Items: []v1alpha1.FileItem{
					{Key: "ssh-privatekey", Path: "id_ed25519"}, {Key: "known_hosts", Path: "known_hosts"}}})),
			data: map[string]string{"ssh-privatekey": string(priv), "known_hosts": knownHosts},
			key:  "/root/.ssh/id_ed25519", knownHost: "/root/.ssh/known_hosts",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, ctr := inject(t, tt.cred, secret("git", tt.data))
			hostKey, hostKnown := ctr.HostPath(tt.key), ctr.HostPath(tt.knownHost)

			cfg := sshConfig(t, ctr, "git@git.example.com")
			got := map[string][]string{}
			for _, k := range []string{"identitiesonly", "identityfile", "userknownhostsfile", "stricthostkeychecking"} {
				got[k] = cfg[k]
			}
			want := map[string][]string{
				"identitiesonly":        {"yes"},
				"identityfile":          {hostKey},
				"userknownhostsfile":    {hostKnown},
				"stricthostkeychecking": {"true"},
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("ssh -G mismatch (-want +got):\n%s", diff)
			}

			if m := fileMode(t, hostKey); m != 0o400 {
				t.Errorf("private key mode = %#o, want 0400", m)
			}
			out, err := exec.CommandContext(t.Context(), "ssh-keygen", "-y", "-f", hostKey).CombinedOutput()
			if err != nil {
				t.Fatalf("ssh-keygen -y on the mounted key: %v\n%s", err, out)
			}
			if w, g := strings.Fields(string(pub)), strings.Fields(string(out)); len(g) < 2 || g[0] != w[0] || g[1] != w[1] {
				t.Errorf("mounted key's public key = %q, want %q", out, pub)
			}
			if tt.data["known_hosts"] == "" {
				return
			}
			b, err := os.ReadFile(hostKnown)
			if err != nil {
				t.Fatalf("read known_hosts: %v", err)
			}
			if string(b) != knownHosts {
				t.Errorf("known_hosts = %q, want %q", b, knownHosts)
			}
		})
	}
}

// TestSDKEnvPresets checks the presets whose clients are configured by environment alone: the
// pod's environment holds exactly the variables each client documents, with the Secret's values.
//
//   - huggingface_hub reads HF_TOKEN; HUGGING_FACE_HUB_TOKEN is its deprecated older name
//     (huggingface_hub constants.py, "Environment variables" reference).
//   - wandb reads WANDB_API_KEY, WANDB_PROJECT and WANDB_ENTITY (W&B "Environment variables").
//   - azidentity's EnvironmentCredential (and DefaultAzureCredential) reads AZURE_TENANT_ID,
//     AZURE_CLIENT_ID and AZURE_CLIENT_SECRET for a service principal with a secret.
//   - MLflow reads MLFLOW_TRACKING_URI, MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD
//     (HTTP basic auth to the tracking server).
//   - NVIDIA NIM containers read NGC_API_KEY; nvcr.io pulls use the Secret as an image-pull secret.
//   - libpq (psql, psycopg, pgx) reads PGUSER, PGPASSWORD, PGHOST, PGPORT and PGDATABASE
//     ("Environment Variables", PostgreSQL manual 32.15); DATABASE_URL is the twelve-factor URL
//     that ORMs read.
//   - the mysql client reads MYSQL_HOST and MYSQL_TCP_PORT (MySQL manual "Environment Variables").
func TestSDKEnvPresets(t *testing.T) {
	tests := []struct {
		name    string
		cred    *v1alpha1.Credential
		data    map[string]string
		wantEnv map[string]string
		// wantPull is the pod's spec.imagePullSecrets.
		wantPull []corev1.LocalObjectReference
	}{
		{
			name: "huggingface", cred: cred("hf", v1alpha1.TypeHuggingFace),
			data:    map[string]string{"token": "hf_credgateFakeToken0001"},
			wantEnv: map[string]string{"HF_TOKEN": "hf_credgateFakeToken0001", "HUGGING_FACE_HUB_TOKEN": "hf_credgateFakeToken0001"},
		},
		{
			name: "wandb", cred: cred("wandb", v1alpha1.TypeWandB, withEnv(
				v1alpha1.EnvVar{Name: "WANDB_PROJECT", Value: new("experiments"), Overridable: true},
				litEnv("WANDB_ENTITY", "team-a"))),
			data: map[string]string{"api-key": "0123456789abcdef0123456789abcdef01234567"},
			wantEnv: map[string]string{"WANDB_API_KEY": "0123456789abcdef0123456789abcdef01234567",
				"WANDB_PROJECT": "experiments", "WANDB_ENTITY": "team-a"},
		},
		{
			name: "azure", cred: cred("azure", v1alpha1.TypeAzure),
			data: map[string]string{"client-id": "00000000-fake-4000-8000-00000000c1d0",
				"tenant-id": "00000000-fake-4000-8000-000000007e0", "client-secret": "fake~client.secret_0001"},
			wantEnv: map[string]string{"AZURE_CLIENT_ID": "00000000-fake-4000-8000-00000000c1d0",
				"AZURE_TENANT_ID": "00000000-fake-4000-8000-000000007e0", "AZURE_CLIENT_SECRET": "fake~client.secret_0001"},
		},
		{
			name: "mlflow", cred: cred("mlflow", v1alpha1.TypeMLflow, withEnv(litEnv("MLFLOW_TRACKING_URI", "https://mlflow.example"))),
			data: map[string]string{"username": "fake-mlflow-user", "password": "fake-mlflow-pass"},
			wantEnv: map[string]string{"MLFLOW_TRACKING_URI": "https://mlflow.example",
				"MLFLOW_TRACKING_USERNAME": "fake-mlflow-user", "MLFLOW_TRACKING_PASSWORD": "fake-mlflow-pass"},
		},
		{
			name: "ngc", cred: cred("ngc", v1alpha1.TypeNGC),
			data: map[string]string{corev1.DockerConfigJsonKey: `{"auths":{"nvcr.io":{"username":"$oauthtoken","password":"nvapi-fake"}}}`,
				"api-key": "nvapi-fake"},
			wantEnv:  map[string]string{"NGC_API_KEY": "nvapi-fake", "NGC_CLI_API_KEY": "nvapi-fake"},
			wantPull: []corev1.LocalObjectReference{{Name: "ngc-secret"}},
		},
		{
			name: "docker-registry", cred: cred("registry", v1alpha1.TypeDockerRegistry),
			data:     map[string]string{corev1.DockerConfigJsonKey: `{"auths":{"registry.example":{"auth":"ZmFrZTpmYWtl"}}}`},
			wantEnv:  map[string]string{},
			wantPull: []corev1.LocalObjectReference{{Name: "registry-secret"}},
		},
		{
			name: "postgres with every key", cred: cred("pg", v1alpha1.TypeDatabase, withDatabase(v1alpha1.DatabasePostgres)),
			data: map[string]string{"username": "fake_pg_user", "password": "fake-pg-pass", "host": "pg.example",
				"port": "6543", "database": "features", "uri": "postgres://fake_pg_user:fake-pg-pass@pg.example:6543/features"},
			wantEnv: map[string]string{"PGUSER": "fake_pg_user", "PGPASSWORD": "fake-pg-pass", "PGHOST": "pg.example",
				"PGPORT": "6543", "PGDATABASE": "features", "DATABASE_URL": "postgres://fake_pg_user:fake-pg-pass@pg.example:6543/features"},
		},
		{
			name: "postgres with only the required keys", cred: cred("pg", v1alpha1.TypeDatabase, withDatabase(v1alpha1.DatabasePostgres)),
			data:    map[string]string{"username": "fake_pg_user", "password": "fake-pg-pass"},
			wantEnv: map[string]string{"PGUSER": "fake_pg_user", "PGPASSWORD": "fake-pg-pass"},
		},
		{
			name: "mysql", cred: cred("my", v1alpha1.TypeDatabase, withDatabase(v1alpha1.DatabaseMySQL)),
			data: map[string]string{"username": "fake_my_user", "password": "fake-my-pass", "host": "mysql.example", "port": "3307"},
			wantEnv: map[string]string{"MYSQL_USER": "fake_my_user", "MYSQL_PASSWORD": "fake-my-pass",
				"MYSQL_HOST": "mysql.example", "MYSQL_TCP_PORT": "3307"},
		},
		{
			name: "mongodb", cred: cred("mongo", v1alpha1.TypeDatabase, withDatabase(v1alpha1.DatabaseMongoDB)),
			data: map[string]string{"username": "fake_mongo_user", "password": "fake-mongo-pass",
				"uri": "mongodb+srv://fake_mongo_user:fake-mongo-pass@cluster0.example/"},
			wantEnv: map[string]string{"MONGODB_USERNAME": "fake_mongo_user", "MONGODB_PASSWORD": "fake-mongo-pass",
				"MONGODB_URI": "mongodb+srv://fake_mongo_user:fake-mongo-pass@cluster0.example/"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pod, ctr := inject(t, tt.cred, secret(tt.cred.Name, tt.data))
			if diff := cmp.Diff(tt.wantEnv, ctr.Env); diff != "" {
				t.Errorf("pod environment mismatch (-want +got):\n%s", diff)
			}
			if len(ctr.Files) > 0 || len(pod.Spec.Volumes) > 0 {
				t.Errorf("pod has volumes %v and files %v, want none", pod.Spec.Volumes, ctr.Files)
			}
			if diff := cmp.Diff(tt.wantPull, pod.Spec.ImagePullSecrets); diff != "" {
				t.Errorf("imagePullSecrets mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// TestGitSSHItemsWithoutKnownHosts: items that leave out known_hosts must still give ssh a
// command it accepts (no empty UserKnownHostsFile), with strict host checking kept.
func TestGitSSHItemsWithoutKnownHosts(t *testing.T) {
	c := cred("git", v1alpha1.TypeGitSSH, withFiles(v1alpha1.Files{MountPath: "/root/.ssh",
		Items: []v1alpha1.FileItem{{Key: "ssh-privatekey", Path: "id_ed25519"}}}))
	_, ctr := inject(t, c, secret("git", map[string]string{"ssh-privatekey": "k"}))
	cfg := sshConfig(t, ctr, "git@git.example.com")
	if got := cfg["stricthostkeychecking"]; len(got) != 1 || got[0] != "true" {
		t.Errorf("stricthostkeychecking = %q, want true", got)
	}
}
