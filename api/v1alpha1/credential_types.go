package v1alpha1

import (
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// CredentialType selects a preset: the Secret keys read and what is injected by default.
// +kubebuilder:validation:Enum=generic;aws;s3-compatible;gcp;azure;huggingface;wandb;mlflow;kaggle;git-ssh;docker-registry;ngc;database
type CredentialType string

// The credential types (docs/credentials.md). Each has a preset in package credential.
const (
	TypeGeneric        CredentialType = "generic"
	TypeAWS            CredentialType = "aws"
	TypeS3Compatible   CredentialType = "s3-compatible"
	TypeGCP            CredentialType = "gcp"
	TypeAzure          CredentialType = "azure"
	TypeHuggingFace    CredentialType = "huggingface"
	TypeWandB          CredentialType = "wandb"
	TypeMLflow         CredentialType = "mlflow"
	TypeKaggle         CredentialType = "kaggle"
	TypeGitSSH         CredentialType = "git-ssh"
	TypeDockerRegistry CredentialType = "docker-registry"
	TypeNGC            CredentialType = "ngc"
	TypeDatabase       CredentialType = "database"
)

// AccessLevel is what a credential declares it grants.
// +kubebuilder:validation:Enum=read-only;read-write;admin
type AccessLevel string

// Access levels.
const (
	AccessReadOnly  AccessLevel = "read-only"
	AccessReadWrite AccessLevel = "read-write"
	AccessAdmin     AccessLevel = "admin"
)

// DatabaseKind selects the variable names of the database preset.
// +kubebuilder:validation:Enum=postgres;mysql;mongodb
type DatabaseKind string

// Database kinds.
const (
	DatabasePostgres DatabaseKind = "postgres"
	DatabaseMySQL    DatabaseKind = "mysql"
	DatabaseMongoDB  DatabaseKind = "mongodb"
)

// Credential says what to inject into the pods that request it with the label
// credentials.credgate.dev/<name>: "true", and declares what it grants. It never holds secret
// values: those stay in the Secret named by spec.secretRef, in the same namespace.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=cred;creds,categories=credgate
// +kubebuilder:printcolumn:name="Type",type=string,JSONPath=`.spec.type`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Expires",type=date,JSONPath=`.status.expiresAt`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
// +kubebuilder:validation:XValidation:rule="self.metadata.name.size() <= 63",message="metadata.name must be at most 63 characters: it becomes the label key credentials.credgate.dev/<name>"
type Credential struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   CredentialSpec   `json:"spec"`
	Status CredentialStatus `json:"status,omitempty"`
}

// CredentialSpec is what a Credential injects and what it grants.
//
// +kubebuilder:validation:XValidation:rule="self.type != 's3-compatible' || (has(self.aws) && has(self.aws.endpoint))",message="type s3-compatible needs spec.aws.endpoint"
// +kubebuilder:validation:XValidation:rule="self.type != 'database' || has(self.database)",message="type database needs spec.database.kind"
// +kubebuilder:validation:XValidation:rule="self.type == 'generic' || has(self.secretRef) || (has(self.aws) && has(self.aws.mode) && self.aws.mode != 'static') || (has(self.azure) && has(self.azure.mode) && self.azure.mode == 'workloadIdentity') || (has(self.gcp) && has(self.gcp.mode) && self.gcp.mode != 'keyFile')",message="spec.secretRef is required for every type but generic (and aws modes assumeRole and webIdentity, azure mode workloadIdentity, gcp modes workloadIdentityFederation and impersonation)"
// +kubebuilder:validation:XValidation:rule="!has(self.gcp) || self.type == 'gcp'",message="spec.gcp is for type gcp"
// +kubebuilder:validation:XValidation:rule="!has(self.gcp) || !has(self.gcp.mode) || self.gcp.mode != 'workloadIdentityFederation' || (!has(self.secretRef) && has(self.gcp.audience))",message="gcp mode workloadIdentityFederation needs spec.gcp.audience (the workload identity pool provider), and takes no spec.secretRef: the pod's service-account token is the credential"
// +kubebuilder:validation:XValidation:rule="!has(self.gcp) || !has(self.gcp.mode) || self.gcp.mode != 'impersonation' || !has(self.secretRef)",message="gcp mode impersonation takes no spec.secretRef: credgate mints the token with the source key of spec.gcp.sourceSecretRef"
// +kubebuilder:validation:XValidation:rule="!has(self.azure) || self.type == 'azure'",message="spec.azure is for type azure"
// +kubebuilder:validation:XValidation:rule="!has(self.azure) || !has(self.azure.mode) || self.azure.mode != 'workloadIdentity' || (!has(self.secretRef) && has(self.azure.clientID) && has(self.azure.tenantID))",message="azure mode workloadIdentity needs spec.azure.clientID and tenantID, and takes no spec.secretRef: the pod's service-account token is the credential"
// +kubebuilder:validation:XValidation:rule="!has(self.aws) || !has(self.aws.mode) || self.aws.mode == 'static' || (!has(self.secretRef) && (self.type == 'aws' || self.type == 's3-compatible'))",message="aws modes assumeRole and webIdentity are for types aws and s3-compatible, and take no spec.secretRef: credgate provides the identity"
// +kubebuilder:validation:XValidation:rule="!has(self.secretRef) || !(self.secretRef.name.startsWith('credgate-aws-') || self.secretRef.name.startsWith('credgate-gcp-'))",message="spec.secretRef may not name a Secret credgate refresher keeps (credgate-aws-*, credgate-gcp-*): request the Credential it keeps it for"
// +kubebuilder:validation:XValidation:rule="has(self.secretRef) || ((!has(self.env) || self.env.all(e, !has(e.key))) && !has(self.files) && !(has(self.imagePullSecret) && self.imagePullSecret))",message="env keys, files and imagePullSecret read the Secret: set spec.secretRef"
// +kubebuilder:validation:XValidation:rule="self.type != 'kaggle' || !has(self.files) || !has(self.files.items) || self.files.items.all(i, i.key != 'kaggle.json' || i.path == 'kaggle.json' || i.path.endsWith('/kaggle.json'))",message="the Kaggle CLI reads a file named kaggle.json: the path of key kaggle.json must end in it"
type CredentialSpec struct {
	// Type selects a preset; "generic" injects only what env, files and imagePullSecret list.
	// +kubebuilder:default=generic
	Type CredentialType `json:"type"`

	// SecretRef names the Secret, in the Credential's namespace, that holds the values.
	// +optional
	SecretRef *SecretReference `json:"secretRef,omitempty"`

	// Env adds to the preset's variables or overrides them by name.
	// +optional
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MaxItems=64
	Env []EnvVar `json:"env,omitempty"`

	// Files mounts Secret keys as files: one read-only secret volume per credential.
	// +optional
	Files *Files `json:"files,omitempty"`

	// ImagePullSecret adds the Secret to the pod's spec.imagePullSecrets. Registry types
	// (docker-registry, ngc) do so by default.
	// +optional
	ImagePullSecret *bool `json:"imagePullSecret,omitempty"`

	// Access declares what the credential grants; policies read it.
	// +optional
	Access Access `json:"access,omitempty"`

	// AWS holds options of the aws and s3-compatible types.
	// +optional
	AWS *AWS `json:"aws,omitempty"`

	// Azure holds options of the azure type.
	// +optional
	Azure *Azure `json:"azure,omitempty"`

	// GCP holds options of the gcp type.
	// +optional
	GCP *GCP `json:"gcp,omitempty"`

	// Database holds options of the database type.
	// +optional
	Database *Database `json:"database,omitempty"`

	// AllowedServiceAccounts lists the service accounts whose pods may use the credential;
	// empty allows any service account in the namespace.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:MaxLength=253
	AllowedServiceAccounts []string `json:"allowedServiceAccounts,omitempty"`
}

// SecretReference names a Secret in the Credential's namespace.
type SecretReference struct {
	// Name of the Secret.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$`
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`
}

// EnvVar is one environment variable: either from a key of the Secret or a literal value.
//
// +kubebuilder:validation:XValidation:rule="has(self.key) != has(self.value)",message="set exactly one of key (from the Secret) or value (a literal)"
// +kubebuilder:validation:XValidation:rule="!has(self.overridable) || !self.overridable || has(self.value)",message="only literal values can be overridable: a secret value is never overridden by the pod"
type EnvVar struct {
	// Name of the variable, a C identifier.
	// +kubebuilder:validation:Pattern=`^[A-Za-z_][A-Za-z0-9_]*$`
	// +kubebuilder:validation:MaxLength=256
	Name string `json:"name"`

	// Key of the Secret whose value the variable takes (through secretKeyRef).
	// +optional
	// +kubebuilder:validation:Pattern=`^[-._a-zA-Z0-9]+$`
	// +kubebuilder:validation:MaxLength=253
	Key *string `json:"key,omitempty"`

	// Value is a literal, for values that are not secret (a project name, an endpoint).
	// +optional
	// +kubebuilder:validation:MaxLength=32768
	Value *string `json:"value,omitempty"`

	// Overridable lets a container's own definition of the variable win over this literal.
	// +optional
	Overridable bool `json:"overridable,omitempty"`
}

// Files mounts keys of the Secret as read-only files.
type Files struct {
	// MountPath is where the files appear; default /var/run/secrets/credgate/<name>. Letters,
	// digits, '-', '_', '.' and '/' only: paths reach shell commands such as GIT_SSH_COMMAND.
	// +optional
	// +kubebuilder:validation:Pattern=`^/[-._a-zA-Z0-9/]*$`
	// +kubebuilder:validation:MaxLength=1024
	MountPath string `json:"mountPath,omitempty"`

	// Items lists the keys to mount; empty keeps the preset's files, or mounts every key of
	// the Secret for generic credentials.
	// +optional
	// +listType=map
	// +listMapKey=key
	// +kubebuilder:validation:MaxItems=64
	Items []FileItem `json:"items,omitempty"`
}

// FileItem mounts one Secret key as a file.
type FileItem struct {
	// Key of the Secret.
	// +kubebuilder:validation:Pattern=`^[-._a-zA-Z0-9]+$`
	// +kubebuilder:validation:MaxLength=253
	Key string `json:"key"`

	// Path of the file, relative to mountPath; may not contain "..". Letters, digits, '-',
	// '_', '.' and '/' only.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:Pattern=`^[-._a-zA-Z0-9/]+$`
	// +kubebuilder:validation:MaxLength=1024
	// +kubebuilder:validation:XValidation:rule="!self.startsWith('/')",message="path must be relative to mountPath"
	// +kubebuilder:validation:XValidation:rule="!self.split('/').exists(p, p == '..')",message="path may not contain '..'"
	Path string `json:"path"`

	// Mode of the file, 0 to 0777 (octal in YAML: 0400); default 0400.
	// +optional
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=511
	Mode *int32 `json:"mode,omitempty"`
}

// Access declares what a credential grants. Policies refuse admin-scoped credentials.
type Access struct {
	// Level is the declared access level.
	// +optional
	Level AccessLevel `json:"level,omitempty"`

	// PolicyDocument is an IAM-style policy (AWS, Wasabi, MinIO) for policies to inspect.
	// +optional
	// +kubebuilder:pruning:PreserveUnknownFields
	// +kubebuilder:validation:Schemaless
	// +kubebuilder:validation:Type=object
	PolicyDocument *apiextensionsv1.JSON `json:"policyDocument,omitempty"`

	// Roles lists cloud role names the credential holds (GCP, Azure, Kubernetes).
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:MaxLength=2048
	Roles []string `json:"roles,omitempty"`
}

// AWSMode selects how a pod gets its AWS identity.
// +kubebuilder:validation:Enum=static;assumeRole;webIdentity
type AWSMode string

// AWS modes (docs/aws.md).
const (
	// AWSStatic injects the keys of spec.secretRef as they are.
	AWSStatic AWSMode = "static"
	// AWSAssumeRole has credgate assume spec.aws.roleArn with the long-lived keys of
	// spec.aws.sourceSecretRef (in the refresher's namespace) and hand pods the temporary,
	// session-policy-scoped credentials, refreshed before they expire.
	AWSAssumeRole AWSMode = "assumeRole"
	// AWSWebIdentity has the pod's SDK assume spec.aws.roleArn with a projected
	// service-account token: no secret at all.
	AWSWebIdentity AWSMode = "webIdentity"
)

// AWS holds options of the aws and s3-compatible types: where the service is, and how the
// pod gets its identity (docs/aws.md).
//
// +kubebuilder:validation:XValidation:rule="!has(self.mode) || self.mode == 'static' || has(self.roleArn)",message="modes assumeRole and webIdentity need spec.aws.roleArn"
// +kubebuilder:validation:XValidation:rule="has(self.mode) && self.mode == 'assumeRole' ? has(self.sourceSecretRef) : !has(self.sourceSecretRef)",message="spec.aws.sourceSecretRef is required for mode assumeRole, and only used by it"
// +kubebuilder:validation:XValidation:rule="(has(self.mode) && self.mode == 'assumeRole') || (!has(self.externalID) && !has(self.durationSeconds) && !has(self.sessionPolicy) && !has(self.verify))",message="externalID, durationSeconds, sessionPolicy and verify apply to mode assumeRole only"
// +kubebuilder:validation:XValidation:rule="(has(self.mode) && self.mode == 'webIdentity') || !has(self.webIdentity)",message="spec.aws.webIdentity applies to mode webIdentity only"
type AWS struct {
	// Mode is static (the keys of spec.secretRef), assumeRole (temporary credentials that
	// credgate mints and refreshes) or webIdentity (a projected service-account token).
	// +optional
	// +kubebuilder:default=static
	Mode AWSMode `json:"mode,omitempty"`

	// Region sets AWS_REGION and AWS_DEFAULT_REGION.
	// +optional
	// +kubebuilder:validation:Pattern=`^[a-z0-9-]+$`
	// +kubebuilder:validation:MaxLength=64
	Region string `json:"region,omitempty"`

	// Endpoint sets AWS_ENDPOINT_URL_S3, for S3-compatible servers (Wasabi, MinIO, ...); it
	// is also their STS endpoint: the one credgate calls in mode assumeRole, and
	// AWS_ENDPOINT_URL_STS in mode webIdentity.
	// +optional
	// +kubebuilder:validation:Pattern=`^https?://`
	// +kubebuilder:validation:MaxLength=2048
	Endpoint string `json:"endpoint,omitempty"`

	// RoleARN is the role to assume (modes assumeRole and webIdentity): an IAM role ARN, or an
	// S3-compatible server's (MinIO's arn:minio:iam:::role/...).
	// +optional
	// +kubebuilder:validation:Pattern=`^arn:[-a-z0-9]+:iam:[-a-z0-9]*:[^:]*:role/.+$`
	// +kubebuilder:validation:MaxLength=2048
	RoleARN string `json:"roleArn,omitempty"`

	// ExternalID, if set, must equal the external ID its source's grant sets (the source
	// Secret's credgate.dev/external-id annotation): the grant decides what is sent to
	// AssumeRole, never a tenant.
	// +optional
	// +kubebuilder:validation:Pattern=`^[\w+=,.@:/-]+$`
	// +kubebuilder:validation:MinLength=2
	// +kubebuilder:validation:MaxLength=1224
	ExternalID string `json:"externalID,omitempty"`

	// DurationSeconds is the lifetime of each session, 900 to 43200; default 3600. credgate
	// refreshes the credentials at about two thirds of it.
	// +optional
	// +kubebuilder:validation:Minimum=900
	// +kubebuilder:validation:Maximum=43200
	DurationSeconds *int32 `json:"durationSeconds,omitempty"`

	// SessionPolicy is an inline IAM policy that narrows the session to what the job needs
	// (for example s3:GetObject on one bucket prefix). The session may do only what both
	// the role and this policy allow. Policies inspect it like access.policyDocument.
	// +optional
	// +kubebuilder:pruning:PreserveUnknownFields
	// +kubebuilder:validation:Schemaless
	// +kubebuilder:validation:Type=object
	SessionPolicy *apiextensionsv1.JSON `json:"sessionPolicy,omitempty"`

	// SourceSecretRef names the Secret with the long-lived keys (aws_access_key_id,
	// aws_secret_access_key) that credgate assumes the role with. It lives in the refresher's
	// namespace (credgate-refresher), never in the tenant's: pods never see these keys. Its
	// credgate.dev/ annotations must grant this namespace, role and endpoint.
	// +optional
	SourceSecretRef *SecretReference `json:"sourceSecretRef,omitempty"`

	// Verify configures the check behind the Verified condition: HeadBucket on Bucket with
	// the minted credentials. Without it credgate calls STS GetCallerIdentity, where the
	// server supports it (AWS; not most S3-compatible servers).
	// +optional
	Verify *AWSVerify `json:"verify,omitempty"`

	// WebIdentity configures the projected service-account token of mode webIdentity.
	// +optional
	WebIdentity *WebIdentity `json:"webIdentity,omitempty"`
}

// AWSVerify is the probe behind the Verified condition of an assumeRole credential.
type AWSVerify struct {
	// Bucket to call HeadBucket on.
	// +kubebuilder:validation:Pattern=`^[a-z0-9][-a-z0-9.]{1,61}[a-z0-9]$`
	Bucket string `json:"bucket"`
}

// WebIdentity configures the projected service-account token that the pod's SDK exchanges
// for role credentials (AssumeRoleWithWebIdentity).
type WebIdentity struct {
	// Audience of the token; default sts.amazonaws.com.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	Audience string `json:"audience,omitempty"`

	// ExpirationSeconds of the token, 600 to 86400; default 3600. The kubelet refreshes it
	// at 80% of its lifetime.
	// +optional
	// +kubebuilder:validation:Minimum=600
	// +kubebuilder:validation:Maximum=86400
	ExpirationSeconds *int64 `json:"expirationSeconds,omitempty"`
}

// AzureMode says how an azure credential reaches the pod.
// +kubebuilder:validation:Enum=clientSecret;workloadIdentity
type AzureMode string

// Azure modes.
const (
	// AzureClientSecret injects the client-id, tenant-id and client-secret keys of the
	// Secret: a long-lived secret.
	AzureClientSecret AzureMode = "clientSecret"
	// AzureWorkloadIdentity injects no secret: the pod's projected service-account token is
	// exchanged for Entra ID tokens by the Azure SDKs (AZURE_FEDERATED_TOKEN_FILE), against a
	// federated identity credential of the app registration or managed identity.
	AzureWorkloadIdentity AzureMode = "workloadIdentity"
)

// Azure holds options of the azure type.
type Azure struct {
	// Mode: clientSecret (the default) or workloadIdentity.
	// +optional
	Mode AzureMode `json:"mode,omitempty"`

	// ClientID of the app registration or user-assigned managed identity (workloadIdentity).
	// +optional
	// +kubebuilder:validation:Pattern=`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`
	ClientID string `json:"clientID,omitempty"`

	// TenantID of the Entra ID tenant (workloadIdentity): its ID, or a domain name of it.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[0-9A-Za-z][0-9A-Za-z.-]*$`
	TenantID string `json:"tenantID,omitempty"`

	// AuthorityHost is the Entra ID endpoint; default https://login.microsoftonline.com/
	// (sovereign clouds have their own).
	// +optional
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^https://[^\s/?#]+/?$`
	AuthorityHost string `json:"authorityHost,omitempty"`

	// Token is the projected service-account token: its audience (default
	// api://AzureADTokenExchange, what the federated credential expects) and lifetime.
	// +optional
	Token *ProjectedToken `json:"token,omitempty"`
}

// GCPMode says how a gcp credential reaches the pod.
// +kubebuilder:validation:Enum=keyFile;workloadIdentityFederation;impersonation
type GCPMode string

// GCP modes.
const (
	// GCPKeyFile mounts the key.json of the Secret: a long-lived service-account key.
	GCPKeyFile GCPMode = "keyFile"
	// GCPWorkloadIdentityFederation mounts no secret: an external_account credential
	// configuration with which Google's libraries exchange the pod's projected
	// service-account token at Google's STS, and optionally impersonate a service account.
	GCPWorkloadIdentityFederation GCPMode = "workloadIdentityFederation"
	// GCPImpersonation mounts no key: credgate impersonates spec.gcp.serviceAccountEmail with
	// the source service-account key of spec.gcp.sourceSecretRef (in the refresher's
	// namespace) and hands pods the short-lived access token it mints (IAM Credentials
	// generateAccessToken), refreshed before it expires.
	GCPImpersonation GCPMode = "impersonation"
)

// GCP holds options of the gcp type.
// +kubebuilder:validation:XValidation:rule="!has(self.impersonationURL) || has(self.serviceAccountEmail)",message="spec.gcp.impersonationURL needs spec.gcp.serviceAccountEmail"
// +kubebuilder:validation:XValidation:rule="has(self.mode) && self.mode == 'impersonation' ? (has(self.sourceSecretRef) && has(self.serviceAccountEmail)) : (!has(self.sourceSecretRef) && !has(self.scopes) && !has(self.lifetimeSeconds))",message="gcp mode impersonation needs spec.gcp.sourceSecretRef and serviceAccountEmail; sourceSecretRef, scopes and lifetimeSeconds apply to it only"
// +kubebuilder:validation:XValidation:rule="!has(self.mode) || self.mode != 'impersonation' || (!has(self.audience) && !has(self.tokenURL) && !has(self.impersonationURL) && !has(self.token))",message="audience, tokenURL, impersonationURL and token apply to mode workloadIdentityFederation: in mode impersonation the source's grant says where credgate mints tokens"
type GCP struct {
	// Mode: keyFile (the default), workloadIdentityFederation or impersonation.
	// +optional
	Mode GCPMode `json:"mode,omitempty"`

	// Audience is the workload identity pool provider the cluster's issuer is registered
	// with: //iam.googleapis.com/projects/<number>/locations/global/workloadIdentityPools/<pool>/providers/<provider>.
	// +optional
	// +kubebuilder:validation:MaxLength=512
	// +kubebuilder:validation:Pattern=`^//iam\.googleapis\.com/projects/[0-9]+/locations/global/workloadIdentityPools/[-a-z0-9]+/providers/[-a-z0-9]+$`
	Audience string `json:"audience,omitempty"`

	// ServiceAccountEmail is the service account impersonated. In mode
	// workloadIdentityFederation it is optional: the federated identity impersonates it (and
	// needs roles/iam.workloadIdentityUser on it), or, unset, is used directly. In mode
	// impersonation it is required: the source service account impersonates it (and needs
	// roles/iam.serviceAccountTokenCreator on it).
	// +optional
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9-]+@[a-z0-9.-]+$`
	ServiceAccountEmail string `json:"serviceAccountEmail,omitempty"`

	// TokenURL is Google's STS token endpoint; default https://sts.googleapis.com/v1/token
	// (another for a Private Service Connect endpoint).
	// +optional
	// +kubebuilder:validation:MaxLength=512
	// +kubebuilder:validation:Pattern=`^https://[^\s?#]+$`
	TokenURL string `json:"tokenURL,omitempty"`

	// ImpersonationURL is the IAM Credentials generateAccessToken endpoint of the service
	// account; default https://iamcredentials.googleapis.com/v1/projects/-/serviceAccounts/<email>:generateAccessToken.
	// +optional
	// +kubebuilder:validation:MaxLength=512
	// +kubebuilder:validation:Pattern=`^https://[^\s?#]+$`
	ImpersonationURL string `json:"impersonationURL,omitempty"`

	// Token is the projected service-account token: its audience (default the provider's
	// name with an https: prefix, what a provider without allowedAudiences accepts) and lifetime.
	// +optional
	Token *ProjectedToken `json:"token,omitempty"`

	// SourceSecretRef names the Secret with the source service account's key (key key.json,
	// a service_account key file) that credgate impersonates spec.gcp.serviceAccountEmail
	// with (mode impersonation). It lives in the refresher's namespace (credgate-refresher),
	// never in the tenant's: pods never see the key. Its credgate.dev/ annotations must grant
	// this namespace and service account.
	// +optional
	SourceSecretRef *SecretReference `json:"sourceSecretRef,omitempty"`

	// Scopes of the access token (mode impersonation); default
	// https://www.googleapis.com/auth/cloud-platform.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=16
	// +kubebuilder:validation:items:MaxLength=256
	// +kubebuilder:validation:items:Pattern=`^(https://www\.googleapis\.com/auth/[-a-z0-9._/]+|openid|email|profile)$`
	Scopes []string `json:"scopes,omitempty"`

	// LifetimeSeconds of each access token (mode impersonation), 600 to 43200; default 3600.
	// Above 3600 Google requires the organization policy
	// constraints/iam.allowServiceAccountCredentialLifetimeExtension. credgate mints a new
	// token at about two thirds of it.
	// +optional
	// +kubebuilder:validation:Minimum=600
	// +kubebuilder:validation:Maximum=43200
	LifetimeSeconds *int32 `json:"lifetimeSeconds,omitempty"`
}

// ProjectedToken is a service-account token the kubelet projects into the pod and refreshes.
type ProjectedToken struct {
	// Audience of the token.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	Audience string `json:"audience,omitempty"`

	// ExpirationSeconds of the token, 600 to 86400; default 3600. The kubelet refreshes it
	// at 80% of its lifetime.
	// +optional
	// +kubebuilder:validation:Minimum=600
	// +kubebuilder:validation:Maximum=86400
	ExpirationSeconds *int64 `json:"expirationSeconds,omitempty"`
}

// Database holds options of the database type.
type Database struct {
	// Kind selects the variable names: postgres (libpq PG*), mysql (MYSQL_*), mongodb (MONGODB_*).
	Kind DatabaseKind `json:"kind"`
}

// CredentialStatus is the observed state of a Credential.
type CredentialStatus struct {
	// Conditions: Ready; Verified where a provider can be checked.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// ExpiresAt is when the credential expires, for credentials that do.
	// +optional
	ExpiresAt *metav1.Time `json:"expiresAt,omitempty"`

	// SecretName is the Secret credgate keeps the temporary credentials of aws mode
	// assumeRole and gcp mode impersonation in, in the Credential's namespace.
	// +optional
	SecretName string `json:"secretName,omitempty"`
}

// CredentialList is a list of Credentials.
//
// +kubebuilder:object:root=true
type CredentialList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Credential `json:"items"`
}

// Condition types of CredentialStatus.
const (
	ConditionReady    = "Ready"
	ConditionVerified = "Verified"
)
