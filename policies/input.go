package policies

import (
	"fmt"
	"strconv"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/util"

	"github.com/credgate/credgate/api/v1alpha1"
	"github.com/credgate/credgate/credential"
)

// Input is what credgate knows of one admission; Value turns it into the input document of
// docs/policies.md.
type Input struct {
	Operation string
	Namespace string
	// NamespaceLabels are the labels of the Namespace object.
	NamespaceLabels map[string]string
	Name            string
	User            string
	Groups          []string
	// Group, Version and Kind of the object admitted.
	Group, Version, Kind string
	DryRun               bool
	// Object is the submitted object, JSON.
	Object []byte
	// Parsed is Object already parsed (ParseObject), when the caller decides several pod
	// templates of one object; nil parses Object.
	Parsed ast.Value
	// PodPath is where the pod template sits in Object; empty for a Pod.
	PodPath []string
	// PodLabels are the pod's labels after credgate copied the workload's credential labels.
	PodLabels map[string]string
	// Credentials are the requested credentials that exist, resolved.
	Credentials []credential.Resolved
	// Missing are requested names with no Credential; Available the names that exist in the
	// namespace, filled in only when something is missing.
	Missing, Available []string
	// Targets are the containers that receive credentials.
	Targets []string
	// Cache, when set, keeps the credentials' values between requests.
	Cache *ValueCache
}

// ParseObject parses an object's JSON as the policy input holds it (input.object). The value
// is never changed by Value or by an evaluation: it may be shared.
func ParseObject(raw []byte) (ast.Value, error) {
	object, err := parseJSON(raw)
	if err != nil {
		return nil, fmt.Errorf("parse object for policy input: %w", err)
	}
	return object, nil
}

// Value builds the input document directly as an OPA value: the object is parsed from its
// JSON straight into OPA terms, the rest is built term by term, with no JSON round trip of Go
// structs.
func (in *Input) Value() (ast.Value, error) { return in.value(nil, nil) }

// Member names of the input document, as shared terms.
var (
	keyRequest, keyNamespace, keyObject, keyPod  = ast.StringTerm("request"), ast.StringTerm("namespace"), ast.StringTerm("object"), ast.StringTerm("pod")
	keyCredentials, keyMissing, keyAvailable     = ast.StringTerm("credentials"), ast.StringTerm("missing"), ast.StringTerm("available")
	keyTargets, keyOperation, keyName, keyDryRun = ast.StringTerm("targets"), ast.StringTerm("operation"), ast.StringTerm("name"), ast.StringTerm("dryRun")
	keyKind, keyGroup, keyVersion, keyUserInfo   = ast.StringTerm("kind"), ast.StringTerm("group"), ast.StringTerm("version"), ast.StringTerm("userInfo")
	keyUsername, keyGroups, keyLabels            = ast.StringTerm("username"), ast.StringTerm("groups"), ast.StringTerm("labels")
)

// value is Value with only what reads reads of the input (nil: all of it), and a Pod's object,
// when it is parsed here, only as far as pod reads it (nil: all of it): Engine.EvaluateInput,
// with what the revision's policies may read. A member no policy reads is left out.
func (in *Input) value(reads, pod *readSet) (ast.Value, error) {
	object := in.Parsed
	if object == nil {
		if len(in.PodPath) > 0 {
			pod = nil // a workload's: pod holds for a Pod's object only
		}
		var err error
		if object, err = parseJSONReads(in.Object, pod); err != nil {
			return nil, fmt.Errorf("parse object for policy input: %w", err)
		}
	}
	doc := ast.NewObjectWithCapacity(9)
	if r, ok := reads.sub("request"); ok {
		req := ast.NewObjectWithCapacity(6)
		if r.has("operation") {
			req.Insert(keyOperation, ast.StringTerm(in.Operation))
		}
		if r.has("namespace") {
			req.Insert(keyNamespace, ast.StringTerm(in.Namespace))
		}
		if r.has("name") {
			req.Insert(keyName, ast.StringTerm(in.Name))
		}
		if r.has("dryRun") {
			req.Insert(keyDryRun, ast.InternedTerm(in.DryRun))
		}
		if r.has("kind") {
			req.Insert(keyKind, ast.NewTerm(ast.NewObject(
				ast.Item(keyGroup, ast.StringTerm(in.Group)), ast.Item(keyVersion, ast.StringTerm(in.Version)), ast.Item(keyKind, ast.StringTerm(in.Kind)))))
		}
		if r.has("userInfo") {
			req.Insert(keyUserInfo, ast.NewTerm(ast.NewObject(
				ast.Item(keyUsername, ast.StringTerm(in.User)), ast.Item(keyGroups, ast.NewTerm(stringList(in.Groups))))))
		}
		doc.Insert(keyRequest, ast.NewTerm(req))
	}
	if r, ok := reads.sub("namespace"); ok {
		ns := ast.NewObjectWithCapacity(2)
		if r.has("name") {
			ns.Insert(keyName, ast.StringTerm(in.Namespace))
		}
		if r.has("labels") {
			ns.Insert(keyLabels, ast.NewTerm(stringMap(in.NamespaceLabels)))
		}
		doc.Insert(keyNamespace, ast.NewTerm(ns))
	}
	if reads.has("object") {
		doc.Insert(keyObject, ast.NewTerm(object))
	}
	if reads.has("pod") {
		doc.Insert(keyPod, ast.NewTerm(podValue(object, in.PodPath, in.PodLabels, pod)))
	}
	if reads.has("credentials") {
		creds := make([]*ast.Term, len(in.Credentials))
		for i := range in.Credentials {
			v, err := in.Cache.value(&in.Credentials[i])
			if err != nil {
				return nil, err
			}
			creds[i] = ast.NewTerm(v)
		}
		doc.Insert(keyCredentials, ast.NewTerm(ast.NewArray(creds...)))
	}
	for _, l := range [...]struct {
		key   *ast.Term
		names []string
	}{{keyMissing, in.Missing}, {keyAvailable, in.Available}, {keyTargets, in.Targets}} {
		if reads.has(string(l.key.Value.(ast.String))) {
			doc.Insert(l.key, ast.NewTerm(stringList(l.names)))
		}
	}
	return doc, nil
}

// podValue is the pod template at path in object, with labels replacing its metadata.labels.
// It shares the template's other members with object (values are not mutated). reads is what
// policies read of a Pod (nil: all of it).
func podValue(object ast.Value, path []string, labels map[string]string, reads *readSet) ast.Value {
	tmpl := object
	for _, p := range path {
		var t *ast.Term
		switch v := tmpl.(type) {
		case ast.Object:
			t = v.Get(ast.StringTerm(p))
		case *ast.Array:
			// A list item, by its index (a RayCluster's workerGroupSpecs).
			if i, err := strconv.Atoi(p); err == nil && i >= 0 && i < v.Len() {
				t = v.Elem(i)
			}
		}
		if t == nil {
			return ast.NewObject()
		}
		tmpl = t.Value
	}
	o, ok := tmpl.(ast.Object)
	if !ok {
		return ast.NewObject()
	}
	if len(path) == 0 && (hasLabels(o, labels) || reads != nil && !reads.reaches(podLabelsPath)) {
		// A Pod whose labels are its own (none inherited), or whose labels no policy reads:
		// the object is the pod.
		return o
	}
	return withLabels(o, labels)
}

// podLabelsPath is where a pod's labels are, in the pod.
var podLabelsPath = []string{"metadata", "labels"}

// hasLabels reports whether o's metadata.labels is an object of exactly labels.
func hasLabels(o ast.Object, labels map[string]string) bool {
	meta, ok := valueAt(o, "metadata").(ast.Object)
	if !ok {
		return false
	}
	l, ok := valueAt(meta, "labels").(ast.Object)
	if !ok || l.Len() != len(labels) {
		return false
	}
	same := true
	l.Foreach(func(k, v *ast.Term) {
		ks, ok1 := k.Value.(ast.String)
		vs, ok2 := v.Value.(ast.String)
		if want, ok := labels[string(ks)]; !ok1 || !ok2 || !ok || want != string(vs) {
			same = false
		}
	})
	return same
}

// withLabels is o with labels as its metadata.labels, sharing o's other members.
func withLabels(o ast.Object, labels map[string]string) ast.Value {
	meta := ast.NewObject()
	if m, ok := valueAt(o, "metadata").(ast.Object); ok {
		m.Foreach(func(k, v *ast.Term) {
			if k.Value.Compare(ast.String("labels")) != 0 {
				meta.Insert(k, v)
			}
		})
	}
	meta.Insert(ast.StringTerm("labels"), ast.NewTerm(stringMap(labels)))
	pod := ast.NewObject(item("metadata", meta))
	o.Foreach(func(k, v *ast.Term) {
		if k.Value.Compare(ast.String("metadata")) != 0 {
			pod.Insert(k, v)
		}
	})
	return pod
}

func credentialValue(r *credential.Resolved) (ast.Value, error) {
	env := make([]*ast.Term, len(r.Env))
	for i, e := range r.Env {
		o := ast.NewObject(
			item("name", str(e.Name)),
			item("fromSecret", ast.Boolean(e.FromSecret())),
			item("overridable", ast.Boolean(e.Overridable)),
		)
		if e.FromSecret() {
			o.Insert(ast.StringTerm("key"), ast.StringTerm(e.Key))
			o.Insert(ast.StringTerm("optional"), ast.BooleanTerm(e.Optional))
		} else {
			o.Insert(ast.StringTerm("value"), ast.StringTerm(e.Value))
		}
		env[i] = ast.NewTerm(o)
	}
	var files []*ast.Term
	mountPath, volumeName := "", ""
	var token ast.Value = ast.Null{}
	if f := r.Files; f != nil {
		mountPath, volumeName = f.MountPath, f.VolumeName
		if t := f.Token; t != nil {
			token = ast.NewObject(item("path", str(mountPath+"/"+t.Path)), item("audience", str(t.Audience)),
				item("expirationSeconds", ast.Number(strconv.FormatInt(t.ExpirationSeconds, 10))))
		}
		for _, it := range f.Items {
			files = append(files, ast.NewTerm(ast.NewObject(
				item("key", str(it.Key)),
				item("path", str(mountPath+"/"+it.Path)),
				item("mode", ast.Number(strconv.Itoa(int(it.Mode)))),
			)))
		}
	}
	var secretRef ast.Value = ast.Null{}
	if r.SecretName != "" {
		secretRef = ast.NewObject(item("name", str(r.SecretName)))
	}
	spec := &r.Source.Spec
	access := ast.NewObject(item("level", str(string(spec.Access.Level))), item("roles", stringList(spec.Access.Roles)))
	if pd := spec.Access.PolicyDocument; pd != nil && len(pd.Raw) > 0 {
		v, err := jsonDocument(pd.Raw)
		if err != nil {
			return nil, fmt.Errorf("credential %s: access.policyDocument: %w", r.Name, err)
		}
		access.Insert(ast.StringTerm("policyDocument"), ast.NewTerm(v))
	}
	// The AWS types get their options with the API server's defaults applied (mode static
	// when spec.aws is absent), so that a rule testing aws.mode sees plain static keys too.
	aws := ast.NewObject()
	if a := spec.AWS; a != nil || r.Type == v1alpha1.TypeAWS || r.Type == v1alpha1.TypeS3Compatible {
		if a == nil {
			a = &v1alpha1.AWS{}
		}
		aws.Insert(ast.StringTerm("mode"), ast.StringTerm(string(credential.AWSMode(spec))))
		aws.Insert(ast.StringTerm("region"), ast.StringTerm(a.Region))
		aws.Insert(ast.StringTerm("endpoint"), ast.StringTerm(a.Endpoint))
		aws.Insert(ast.StringTerm("roleArn"), ast.StringTerm(a.RoleARN))
		if sp := a.SessionPolicy; sp != nil && len(sp.Raw) > 0 {
			v, err := jsonDocument(sp.Raw)
			if err != nil {
				return nil, fmt.Errorf("credential %s: aws.sessionPolicy: %w", r.Name, err)
			}
			aws.Insert(ast.StringTerm("sessionPolicy"), ast.NewTerm(v))
		}
	}
	return ast.NewObject(
		item("name", str(r.Name)),
		item("type", str(string(r.Type))),
		item("secretRef", secretRef),
		item("env", ast.NewArray(env...)),
		item("files", ast.NewArray(files...)),
		item("mountPath", str(mountPath)),
		item("volumeName", str(volumeName)),
		item("token", token),
		item("imagePullSecret", ast.Boolean(r.ImagePullSecret)),
		item("access", access),
		item("aws", aws),
		ast.Item(gcpKey, gcpTerm(r.Type, spec)),
		ast.Item(azureKey, azureTerm(r.Type, spec)),
		item("allowedServiceAccounts", stringList(spec.AllowedServiceAccounts)),
		item("status", statusValue(r)),
	), nil
}

// The keys of the gcp and azure objects, shared (terms are not mutated): with the shared
// empty object, a credential of another type allocates nothing for them.
var gcpKey, azureKey = ast.StringTerm("gcp"), ast.StringTerm("azure")

// gcpTerm is the gcp object of a credential of type typ: for type gcp its options with the
// API server's defaults applied (mode keyFile without spec.gcp; scopes, those of the access
// token, only in mode impersonation), so that a rule testing gcp.mode sees every mode; {} for
// other types, one shared empty object.
func gcpTerm(typ v1alpha1.CredentialType, spec *v1alpha1.CredentialSpec) *ast.Term {
	if typ != v1alpha1.TypeGCP {
		return ast.InternedEmptyObject
	}
	mode := credential.GCPMode(spec)
	email, scopes := "", ast.InternedEmptyArray
	if g := spec.GCP; g != nil {
		email = g.ServiceAccountEmail
	}
	if mode == v1alpha1.GCPImpersonation {
		scopes = ast.NewTerm(stringList(credential.GCPScopes(spec.GCP)))
	}
	return ast.NewTerm(ast.NewObject(
		item("mode", str(string(mode))),
		item("serviceAccountEmail", str(email)),
		ast.Item(ast.StringTerm("scopes"), scopes),
	))
}

// azureTerm is the azure object of a credential of type typ: for type azure its options with
// the API server's defaults applied (mode clientSecret without spec.azure); {} for other types.
func azureTerm(typ v1alpha1.CredentialType, spec *v1alpha1.CredentialSpec) *ast.Term {
	if typ != v1alpha1.TypeAzure {
		return ast.InternedEmptyObject
	}
	clientID, tenantID := "", ""
	if a := spec.Azure; a != nil {
		clientID, tenantID = a.ClientID, a.TenantID
	}
	return ast.NewTerm(ast.NewObject(
		item("mode", str(string(credential.AzureMode(spec)))),
		item("clientID", str(clientID)),
		item("tenantID", str(tenantID)),
	))
}

func statusValue(r *credential.Resolved) ast.Value {
	st := &r.Source.Status
	conds := make([]*ast.Term, len(st.Conditions))
	for i, c := range st.Conditions {
		conds[i] = ast.NewTerm(ast.NewObject(
			item("type", str(c.Type)), item("status", str(string(c.Status))),
			item("reason", str(c.Reason)), item("message", str(c.Message)),
			item("observedGeneration", ast.Number(strconv.FormatInt(c.ObservedGeneration, 10))),
		))
	}
	o := ast.NewObject(item("conditions", ast.NewArray(conds...)),
		item("generation", ast.Number(strconv.FormatInt(r.Source.Generation, 10))))
	if st.ExpiresAt != nil {
		o.Insert(ast.StringTerm("expiresAt"), ast.StringTerm(st.ExpiresAt.UTC().Format("2006-01-02T15:04:05Z")))
	}
	return o
}

// jsonDocument converts an embedded JSON document (an IAM policy) to a Rego value.
func jsonDocument(raw []byte) (ast.Value, error) {
	var doc any
	if err := util.UnmarshalJSON(raw, &doc); err != nil {
		return nil, fmt.Errorf("parse: %w", err)
	}
	v, err := ast.InterfaceToValue(doc)
	if err != nil {
		return nil, fmt.Errorf("convert: %w", err)
	}
	return v, nil
}

func item(k string, v ast.Value) [2]*ast.Term { return ast.Item(ast.StringTerm(k), ast.NewTerm(v)) }

func str(s string) ast.Value { return ast.String(s) }

func stringList(s []string) ast.Value {
	terms := make([]*ast.Term, len(s))
	for i, v := range s {
		terms[i] = ast.StringTerm(v)
	}
	return ast.NewArray(terms...)
}

func stringMap(m map[string]string) ast.Value {
	o := ast.NewObjectWithCapacity(len(m))
	for k, v := range m {
		o.Insert(ast.StringTerm(k), ast.StringTerm(v))
	}
	return o
}

func valueAt(o ast.Object, key string) ast.Value {
	k, ok := fieldNames()[key]
	if !ok {
		k = ast.StringTerm(key)
	}
	if t := o.Get(k); t != nil {
		return t.Value
	}
	return nil
}
