package credential_test

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/credgate/credgate/api/v1alpha1"
	"github.com/credgate/credgate/credential"
)

// awsCredential is a Credential of typ with spec.aws a and no secretRef.
func awsCredential(name string, typ v1alpha1.CredentialType, a v1alpha1.AWS) *v1alpha1.Credential {
	return &v1alpha1.Credential{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ml"},
		Spec: v1alpha1.CredentialSpec{Type: typ, AWS: &a}}
}

const roleARN = "arn:aws:iam::123456789012:role/trainer"

func TestResolveTemporaryAWS(t *testing.T) {
	tests := []struct {
		name string
		cred *v1alpha1.Credential
		want injection
	}{
		{
			name: "assumeRole mounts the managed Secret and points the SDKs at its config file",
			cred: awsCredential("s3", v1alpha1.TypeS3Compatible, v1alpha1.AWS{Mode: v1alpha1.AWSAssumeRole, RoleARN: roleARN,
				Region: "us-east-1", Endpoint: "http://minio:9000", SourceSecretRef: &v1alpha1.SecretReference{Name: "keys"}}),
			want: injection{
				SecretName: "credgate-aws-s3",
				Files: mounted("s3", credential.FileItem{Key: "config", Path: "config", Mode: 0o400},
					credential.FileItem{Key: "credentials.json", Path: "credentials.json", Mode: 0o400}),
				Env: []credential.Env{
					literal("AWS_CONFIG_FILE", "/var/run/secrets/credgate/s3/config"),
					literal("AWS_SDK_LOAD_CONFIG", "1"),
					literal("AWS_REGION", "us-east-1"), literal("AWS_DEFAULT_REGION", "us-east-1"),
					literal("AWS_ENDPOINT_URL_S3", "http://minio:9000"),
				},
			},
		},
		{
			name: "webIdentity projects a token and sets the role: no Secret at all",
			cred: awsCredential("irsa", v1alpha1.TypeAWS, v1alpha1.AWS{Mode: v1alpha1.AWSWebIdentity, RoleARN: roleARN,
				WebIdentity: &v1alpha1.WebIdentity{Audience: "sts.example.com", ExpirationSeconds: new(int64(7200))}}),
			want: injection{
				Files: &credential.Files{MountPath: "/var/run/secrets/credgate/irsa", VolumeName: "credgate-irsa", DefaultMode: 0o400,
					Token: &credential.Token{Path: "token", Audience: "sts.example.com", ExpirationSeconds: 7200}},
				Env: []credential.Env{
					literal("AWS_ROLE_ARN", roleARN),
					literal("AWS_WEB_IDENTITY_TOKEN_FILE", "/var/run/secrets/credgate/irsa/token"),
				},
			},
		},
		{
			name: "webIdentity on an S3-compatible server: its STS too",
			cred: awsCredential("minio", v1alpha1.TypeS3Compatible, v1alpha1.AWS{Mode: v1alpha1.AWSWebIdentity,
				RoleARN: "arn:minio:iam:::role/abc", Endpoint: "http://minio:9000"}),
			want: injection{
				Files: &credential.Files{MountPath: "/var/run/secrets/credgate/minio", VolumeName: "credgate-minio", DefaultMode: 0o400,
					Token: &credential.Token{Path: "token", Audience: "sts.amazonaws.com", ExpirationSeconds: 3600}},
				Env: []credential.Env{
					literal("AWS_ROLE_ARN", "arn:minio:iam:::role/abc"),
					literal("AWS_WEB_IDENTITY_TOKEN_FILE", "/var/run/secrets/credgate/minio/token"),
					literal("AWS_ENDPOINT_URL_STS", "http://minio:9000"),
					literal("AWS_ENDPOINT_URL_S3", "http://minio:9000"),
				},
			},
		},
		{
			name: "webIdentity defaults: the STS audience, an hour",
			cred: awsCredential("irsa", v1alpha1.TypeAWS, v1alpha1.AWS{Mode: v1alpha1.AWSWebIdentity, RoleARN: roleARN}),
			want: injection{
				Files: &credential.Files{MountPath: "/var/run/secrets/credgate/irsa", VolumeName: "credgate-irsa", DefaultMode: 0o400,
					Token: &credential.Token{Path: "token", Audience: "sts.amazonaws.com", ExpirationSeconds: 3600}},
				Env: []credential.Env{
					literal("AWS_ROLE_ARN", roleARN),
					literal("AWS_WEB_IDENTITY_TOKEN_FILE", "/var/run/secrets/credgate/irsa/token"),
				},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := credential.Resolve(tt.cred)
			if err != nil {
				t.Fatal(err)
			}
			got := injection{SecretName: r.SecretName, Env: r.Env, Files: r.Files, ImagePullSecret: r.ImagePullSecret}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Resolve() (-want +got):\n%s", diff)
			}
			for _, e := range r.Env {
				if e.FromSecret() {
					t.Errorf("%s reads a Secret key: temporary modes inject no keys", e.Name)
				}
			}
		})
	}
}

func TestValidateAWSModes(t *testing.T) {
	keys := &v1alpha1.SecretReference{Name: "keys"}
	tests := []struct {
		name string
		cred *v1alpha1.Credential
		want []string
	}{
		{name: "assumeRole", cred: awsCredential("a", v1alpha1.TypeAWS, v1alpha1.AWS{Mode: v1alpha1.AWSAssumeRole, RoleARN: roleARN,
			SourceSecretRef: keys, ExternalID: "ml-42", DurationSeconds: new(int32(900)),
			SessionPolicy: &apiextensionsv1.JSON{Raw: []byte(`{"Statement":[]}`)}, Verify: &v1alpha1.AWSVerify{Bucket: "data"}})},
		{name: "webIdentity", cred: awsCredential("w", v1alpha1.TypeAWS, v1alpha1.AWS{Mode: v1alpha1.AWSWebIdentity, RoleARN: roleARN})},
		{
			name: "assumeRole without role or source keys",
			cred: awsCredential("a", v1alpha1.TypeAWS, v1alpha1.AWS{Mode: v1alpha1.AWSAssumeRole}),
			want: []string{"spec.aws: Invalid value: modes assumeRole and webIdentity need spec.aws.roleArn",
				"spec.aws: Invalid value: spec.aws.sourceSecretRef is required for mode assumeRole"},
		},
		{
			name: "assumeRole with a tenant Secret too",
			cred: func() *v1alpha1.Credential {
				c := awsCredential("a", v1alpha1.TypeAWS, v1alpha1.AWS{Mode: v1alpha1.AWSAssumeRole, RoleARN: roleARN, SourceSecretRef: keys})
				c.Spec.SecretRef = keys
				return c
			}(),
			want: []string{"spec: Invalid value: aws modes assumeRole and webIdentity are for types aws and s3-compatible, and take no spec.secretRef"},
		},
		{
			name: "assumeRole options on webIdentity",
			cred: awsCredential("w", v1alpha1.TypeAWS, v1alpha1.AWS{Mode: v1alpha1.AWSWebIdentity, RoleARN: roleARN, SourceSecretRef: keys,
				DurationSeconds: new(int32(3600))}),
			want: []string{"spec.aws: Invalid value: externalID, durationSeconds, sessionPolicy and verify apply to mode assumeRole only",
				"spec.aws: Invalid value: spec.aws.sourceSecretRef is required for mode assumeRole, and only used by it"},
		},
		{
			name: "static without secretRef",
			cred: awsCredential("s", v1alpha1.TypeAWS, v1alpha1.AWS{Region: "eu-west-1"}),
			want: []string{"spec: Invalid value: spec.secretRef is required for every type but generic"},
		},
		{
			name: "a temporary mode on another type",
			cred: awsCredential("g", v1alpha1.TypeGCP, v1alpha1.AWS{Mode: v1alpha1.AWSWebIdentity, RoleARN: roleARN}),
			want: []string{"spec: Invalid value: aws modes assumeRole and webIdentity are for types aws and s3-compatible"},
		},
		{
			name: "bad values",
			cred: awsCredential("a", v1alpha1.TypeAWS, v1alpha1.AWS{Mode: v1alpha1.AWSAssumeRole, RoleARN: "trainer", SourceSecretRef: keys,
				ExternalID: "x", DurationSeconds: new(int32(60)), Verify: &v1alpha1.AWSVerify{Bucket: "No_Bucket"}}),
			want: []string{"spec.aws.durationSeconds: Invalid value: 60", `spec.aws.externalID: Invalid value: "x"`,
				`spec.aws.roleArn: Invalid value: "trainer"`, `spec.aws.verify.bucket: Invalid value: "No_Bucket"`},
		},
		{
			name: "unknown mode and token lifetime",
			cred: awsCredential("a", v1alpha1.TypeAWS, v1alpha1.AWS{Mode: "vault", WebIdentity: &v1alpha1.WebIdentity{ExpirationSeconds: new(int64(60))}}),
			want: []string{"<nil>: Invalid value: null: some validation rules were not checked", `spec.aws.mode: Unsupported value: "vault"`,
				"spec.aws.webIdentity.expirationSeconds: Invalid value: 60"},
		},
		{
			name: "webIdentity options on assumeRole",
			cred: awsCredential("a", v1alpha1.TypeAWS, v1alpha1.AWS{Mode: v1alpha1.AWSAssumeRole, RoleARN: roleARN, SourceSecretRef: keys,
				WebIdentity: &v1alpha1.WebIdentity{Audience: "sts"}}),
			want: []string{"spec.aws: Invalid value: spec.aws.webIdentity applies to mode webIdentity only"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := credential.Validate(tt.cred); !matchAll(tt.want, got) {
				t.Errorf("Validate() = %q, want fragments %q", got, tt.want)
			}
		})
	}
}

func TestAWSConfigFile(t *testing.T) {
	got := string(credential.AWSConfigFile("ml", "s3"))
	if !strings.Contains(got, "[default]\ncredential_process = /bin/cat /var/run/secrets/credgate/s3/credentials.json\n") {
		t.Errorf("config file:\n%s", got)
	}
}
