package policies

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"maps"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/credgate/credgate/api/v1alpha1"
	"github.com/credgate/credgate/credential"
)

var updateSchema = flag.Bool("update-schema", false, "rewrite policies/schema/input.json and docs/policy-input.schema.json")

// The schema's two copies: the one embedded in the binary and the one in the docs, for editors.
const (
	schemaFile     = "schema/input.json"
	schemaDocsFile = "../docs/policy-input.schema.json"
)

// TestInputSchemaUpToDate: the embedded schema is what generateInputSchema writes — the input
// document of input.go, its Kubernetes parts reflected from the Kubernetes types credgate is
// built with — and docs/policy-input.schema.json is the same file, byte for byte. Run
// `go test ./policies -run TestInputSchemaUpToDate -update-schema` after changing either.
func TestInputSchemaUpToDate(t *testing.T) {
	want, err := generateInputSchema()
	if err != nil {
		t.Fatal(err)
	}
	if *updateSchema {
		for _, f := range []string{schemaFile, schemaDocsFile} {
			if err := os.WriteFile(f, want, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, f := range []string{schemaFile, schemaDocsFile} {
		got, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s is not what the generator writes (the input document or the Kubernetes types changed?): run go test ./policies -run TestInputSchemaUpToDate -update-schema", f)
		}
	}
	if !*updateSchema && !bytes.Equal(inputSchemaJSON, want) {
		t.Error("the embedded schema differs from schema/input.json: rebuild")
	}
}

// generateInputSchema writes the JSON Schema (draft-07) of the input document, as Value
// builds it (input.go).
func generateInputSchema() ([]byte, error) {
	g := &schemaGen{defs: map[string]any{}}
	str := map[string]any{"type": "string"}
	strs := map[string]any{"type": "array", "items": str}
	boolean := map[string]any{"type": "boolean"}
	integer := map[string]any{"type": "integer"}
	strMap := map[string]any{"type": "object", "additionalProperties": str}
	closed := func(desc string, required []string, props map[string]any) map[string]any {
		o := map[string]any{"type": "object", "properties": props, "additionalProperties": false}
		if desc != "" {
			o["description"] = desc
		}
		if len(required) > 0 {
			o["required"] = required
		}
		return o
	}
	describe := func(desc string, s map[string]any) map[string]any {
		o := map[string]any{"description": desc}
		for k, v := range s {
			o[k] = v
		}
		return o
	}
	anyDocument := map[string]any{"description": "a JSON document, as written (an IAM-style policy document)", "type": "object"}

	objectMeta, err := g.ref(reflect.TypeFor[metav1.ObjectMeta]())
	if err != nil {
		return nil, err
	}
	podSpec, err := g.ref(reflect.TypeFor[corev1.PodSpec]())
	if err != nil {
		return nil, err
	}
	openObject := func(desc string) map[string]any {
		return map[string]any{"description": desc, "type": []string{"object", "null"}}
	}
	var types []string
	for _, t := range credential.Types() {
		types = append(types, string(t))
	}

	env := closed("a variable credgate injects: from a Secret key (fromSecret, key, optional) or a literal (value)",
		[]string{"name", "fromSecret", "overridable"}, map[string]any{
			"name":        str,
			"fromSecret":  boolean,
			"overridable": describe("a container's own definition of the variable wins (literals only)", boolean),
			"key":         describe("the Secret's key (fromSecret)", str),
			"optional":    describe("the key may be absent (fromSecret)", boolean),
			"value":       describe("the literal value (not fromSecret): the Credential's, never a Secret's", str),
		})
	env["if"] = map[string]any{"properties": map[string]any{"fromSecret": map[string]any{"const": true}}}
	env["then"] = map[string]any{"required": []string{"key", "optional"}, "not": map[string]any{"required": []string{"value"}}}
	env["else"] = map[string]any{"required": []string{"value"}, "not": map[string]any{"anyOf": []any{
		map[string]any{"required": []string{"key"}}, map[string]any{"required": []string{"optional"}}}}}

	cred := closed("a requested Credential that exists, resolved: what credgate will inject, presets applied, never a secret value",
		[]string{"name", "type", "secretRef", "env", "files", "mountPath", "volumeName", "token", "imagePullSecret", "access", "aws", "gcp", "azure", "allowedServiceAccounts", "status"},
		map[string]any{
			"name":      str,
			"type":      map[string]any{"description": "the preset type", "type": "string", "enum": types},
			"secretRef": closed("its Secret; null for a generic credential without one", []string{"name"}, map[string]any{"name": str}),
			"env":       map[string]any{"type": "array", "items": env},
			"files": map[string]any{"description": "each projected file; empty when the whole Secret is mounted", "type": "array",
				"items": closed("", []string{"key", "path", "mode"}, map[string]any{
					"key": str, "path": describe("absolute", str), "mode": integer})},
			"mountPath":       describe(`where its volume is mounted ("" without files)`, str),
			"volumeName":      describe(`its volume's name ("" without files)`, str),
			"token":           closed("the projected service-account token of a webIdentity credential, else null", []string{"path", "audience", "expirationSeconds"}, map[string]any{"path": describe("absolute", str), "audience": str, "expirationSeconds": integer}),
			"imagePullSecret": describe("its Secret joins imagePullSecrets", boolean),
			"access": closed("what it declares it grants", []string{"level", "roles"}, map[string]any{
				"level":          map[string]any{"type": "string", "enum": []string{"", string(v1alpha1.AccessReadOnly), string(v1alpha1.AccessReadWrite), string(v1alpha1.AccessAdmin)}},
				"roles":          strs,
				"policyDocument": anyDocument,
			}),
			"aws": closed("for aws and s3-compatible credentials the API server's defaults applied (mode static without spec.aws); {} for other types", nil, map[string]any{
				"mode":          map[string]any{"type": "string", "enum": []string{string(v1alpha1.AWSStatic), string(v1alpha1.AWSAssumeRole), string(v1alpha1.AWSWebIdentity)}},
				"region":        str,
				"endpoint":      str,
				"roleArn":       str,
				"sessionPolicy": anyDocument,
			}),
			"gcp": closed("for gcp credentials the API server's defaults applied (mode keyFile without spec.gcp); {} for other types", nil, map[string]any{
				"mode":                map[string]any{"type": "string", "enum": []string{string(v1alpha1.GCPKeyFile), string(v1alpha1.GCPWorkloadIdentityFederation), string(v1alpha1.GCPImpersonation)}},
				"serviceAccountEmail": describe(`the service account impersonated ("" when none)`, str),
				"scopes":              describe("the access token's scopes, defaults applied (mode impersonation); [] in other modes", strs),
			}),
			"azure": closed("for azure credentials the API server's defaults applied (mode clientSecret without spec.azure); {} for other types", nil, map[string]any{
				"mode":     map[string]any{"type": "string", "enum": []string{string(v1alpha1.AzureClientSecret), string(v1alpha1.AzureWorkloadIdentity)}},
				"clientID": describe(`spec.azure.clientID ("" when unset: mode clientSecret reads it from the Secret)`, str),
				"tenantID": describe(`spec.azure.tenantID ("" when unset: mode clientSecret reads it from the Secret)`, str),
			}),
			"allowedServiceAccounts": strs,
			"status": closed("", []string{"conditions", "generation"}, map[string]any{
				"conditions": map[string]any{"type": "array", "items": closed("", []string{"type", "status", "reason", "message", "observedGeneration"}, map[string]any{
					"type": str, "status": str, "reason": str, "message": str, "observedGeneration": integer})},
				"generation": describe("the Credential's metadata.generation", integer),
				"expiresAt":  describe("RFC 3339, UTC", map[string]any{"type": "string", "format": "date-time"}),
			}),
		})
	// Nullable as anyOf, not type [object, null]: OPA types the latter as an object, and a rule
	// comparing it with null (cred.token == null) would not type-check. (OPA types the anyOf as
	// any: what is below them is not checked.)
	for _, k := range []string{"secretRef", "token"} {
		props := cred["properties"].(map[string]any)
		o := props[k].(map[string]any)
		desc := o["description"]
		delete(o, "description")
		props[k] = map[string]any{"description": desc, "anyOf": []any{map[string]any{"type": "null"}, o}}
	}

	root := closed("", []string{"request", "namespace", "object", "pod", "credentials", "missing", "available", "targets"}, map[string]any{
		"request": closed("the admission request", []string{"operation", "namespace", "name", "dryRun", "kind", "userInfo"}, map[string]any{
			"operation": map[string]any{"type": "string", "enum": []string{"CREATE", "UPDATE"}},
			"namespace": str,
			"name":      describe("may be empty for generated names", str),
			"dryRun":    boolean,
			"kind":      closed("of the object admitted", []string{"group", "version", "kind"}, map[string]any{"group": str, "version": str, "kind": str}),
			"userInfo":  closed("who made the request", []string{"username", "groups"}, map[string]any{"username": str, "groups": strs}),
		}),
		"namespace": closed("the Namespace object", []string{"name", "labels"}, map[string]any{"name": str, "labels": strMap}),
		"object": closed("the object exactly as submitted: a Pod, Job, CronJob, Deployment, StatefulSet, DaemonSet or ReplicaSet", nil, map[string]any{
			"apiVersion": str, "kind": str, "metadata": objectMeta,
			"spec":   openObject("the kind's spec"),
			"status": openObject("the kind's status"),
		}),
		"pod": closed("the pod being admitted, whatever the kind: the Pod, or the workload's pod template, with the workload's credential labels copied in ({} when the object has no pod template)", nil, map[string]any{
			"apiVersion": describe("a Pod's", str), "kind": describe("a Pod's", str), "metadata": objectMeta, "spec": podSpec,
			"status": openObject("a Pod's status"),
		}),
		"credentials": map[string]any{"description": "the requested Credentials that exist, resolved", "type": "array", "items": cred},
		"missing":     describe("requested names with no Credential in the namespace", strs),
		"available":   describe("the names of the namespace's Credentials, filled in only when missing is not empty", strs),
		"targets":     describe("the containers and init containers that receive credentials", strs),
	})
	root["$schema"] = "http://json-schema.org/draft-07/schema#"
	root["$id"] = "https://credgate.dev/schemas/policy-input.json"
	root["title"] = "credgate policy input"
	root["description"] = "The input document credgate's Rego policies evaluate (input): docs/policies.md, \"The input document\". Kubernetes objects are as the API server sends them (any field may be null)."
	root["definitions"] = g.defs
	var b bytes.Buffer
	if err := writeCompactJSON(&b, root, "", true); err != nil {
		return nil, err
	}
	b.WriteByte('\n')
	return b.Bytes(), nil
}

// schemaKeywords order a schema's members; other members (property names) follow, sorted.
var schemaKeywords = []string{"$schema", "$id", "$ref", "title", "description", "type", "format", "enum", "const", "required",
	"properties", "additionalProperties", "items", "if", "then", "else", "not", "anyOf", "definitions"}

// writeCompactJSON writes v indented by two spaces a level, each value that fits on a line of
// 100 characters on one line; a schema's members in the order of schemaKeywords (schema says
// whether v is a schema, or a map of them: properties, definitions).
func writeCompactJSON(b *bytes.Buffer, v any, indent string, schema bool) error {
	keys := func(m map[string]any) []string {
		return slices.SortedFunc(maps.Keys(m), func(x, y string) int {
			rx, ry := len(schemaKeywords), len(schemaKeywords)
			if schema {
				rx, ry = rankOf(x), rankOf(y)
			}
			if rx != ry {
				return rx - ry
			}
			return strings.Compare(x, y)
		})
	}
	child := func(k string) bool { return !schema || k != "properties" && k != "definitions" }
	var inline func(v any, schema bool) (string, error)
	inline = func(v any, schema bool) (string, error) {
		switch t := v.(type) {
		case map[string]any:
			var parts []string
			for _, k := range slices.SortedFunc(maps.Keys(t), func(x, y string) int {
				rx, ry := len(schemaKeywords), len(schemaKeywords)
				if schema {
					rx, ry = rankOf(x), rankOf(y)
				}
				if rx != ry {
					return rx - ry
				}
				return strings.Compare(x, y)
			}) {
				key, _ := json.Marshal(k)
				val, err := inline(t[k], !schema || k != "properties" && k != "definitions")
				if err != nil {
					return "", err
				}
				parts = append(parts, string(key)+": "+val)
			}
			return "{" + strings.Join(parts, ", ") + "}", nil
		case []string:
			var parts []string
			for _, e := range t {
				q, _ := json.Marshal(e)
				parts = append(parts, string(q))
			}
			return "[" + strings.Join(parts, ", ") + "]", nil
		case []any:
			var parts []string
			for _, e := range t {
				val, err := inline(e, true)
				if err != nil {
					return "", err
				}
				parts = append(parts, val)
			}
			return "[" + strings.Join(parts, ", ") + "]", nil
		default:
			var one bytes.Buffer
			enc := json.NewEncoder(&one)
			enc.SetEscapeHTML(false)
			if err := enc.Encode(v); err != nil {
				return "", err
			}
			return strings.TrimSpace(one.String()), nil
		}
	}
	line, err := inline(v, schema)
	if err != nil {
		return err
	}
	if len(indent)+len(line) <= 100 {
		b.WriteString(line)
		return nil
	}
	inner := indent + "  "
	switch t := v.(type) {
	case map[string]any:
		b.WriteString("{\n")
		ks := keys(t)
		for i, k := range ks {
			key, _ := json.Marshal(k)
			b.WriteString(inner)
			b.Write(key)
			b.WriteString(": ")
			if err := writeCompactJSON(b, t[k], inner, child(k)); err != nil {
				return err
			}
			if i < len(ks)-1 {
				b.WriteByte(',')
			}
			b.WriteByte('\n')
		}
		b.WriteString(indent + "}")
	case []any:
		b.WriteString("[\n")
		for i, e := range t {
			b.WriteString(inner)
			if err := writeCompactJSON(b, e, inner, true); err != nil {
				return err
			}
			if i < len(t)-1 {
				b.WriteByte(',')
			}
			b.WriteByte('\n')
		}
		b.WriteString(indent + "]")
	default:
		b.WriteString(line)
	}
	return nil
}

func rankOf(k string) int {
	if i := slices.Index(schemaKeywords, k); i >= 0 {
		return i
	}
	return len(schemaKeywords)
}

// schemaGen reflects Kubernetes API types into JSON Schema definitions.
type schemaGen struct {
	defs map[string]any
}

// Types with a JSON form of their own (they implement json.Marshaler).
var (
	quantityType = reflect.TypeFor[resource.Quantity]()
	intOrString  = reflect.TypeFor[intstr.IntOrString]()
	timeType     = reflect.TypeFor[metav1.Time]()
	microTime    = reflect.TypeFor[metav1.MicroTime]()
	fieldsV1     = reflect.TypeFor[metav1.FieldsV1]()
	marshaler    = reflect.TypeFor[json.Marshaler]()
)

// definitionName names a type as Kubernetes' OpenAPI does: io.k8s.api.core.v1.Container.
func definitionName(t reflect.Type) string {
	p := t.PkgPath()
	if rest, ok := strings.CutPrefix(p, "k8s.io/"); ok {
		p = "io.k8s." + rest
	}
	return strings.ReplaceAll(p, "/", ".") + "." + t.Name()
}

// ref returns the schema of a value of type t: nullable, as a JSON document may have it.
func (g *schemaGen) ref(t reflect.Type) (map[string]any, error) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t {
	case quantityType:
		return map[string]any{"description": "a resource quantity", "type": []string{"string", "number", "null"}}, nil
	case intOrString:
		return map[string]any{"type": []string{"string", "integer", "null"}}, nil
	case timeType, microTime:
		return map[string]any{"type": []string{"string", "null"}, "format": "date-time"}, nil
	case fieldsV1:
		return map[string]any{"type": []string{"object", "null"}}, nil
	}
	if t.Implements(marshaler) || reflect.PointerTo(t).Implements(marshaler) {
		return nil, fmt.Errorf("%s has a JSON form of its own the generator does not know", t)
	}
	switch t.Kind() {
	case reflect.String:
		return map[string]any{"type": []string{"string", "null"}}, nil
	case reflect.Bool:
		return map[string]any{"type": []string{"boolean", "null"}}, nil
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64, reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return map[string]any{"type": []string{"integer", "null"}}, nil
	case reflect.Float32, reflect.Float64:
		return map[string]any{"type": []string{"number", "null"}}, nil
	case reflect.Slice:
		if t.Elem().Kind() == reflect.Uint8 {
			return map[string]any{"description": "base64", "type": []string{"string", "null"}}, nil
		}
		items, err := g.ref(t.Elem())
		if err != nil {
			return nil, err
		}
		return map[string]any{"type": []string{"array", "null"}, "items": items}, nil
	case reflect.Map:
		if t.Key().Kind() != reflect.String {
			return nil, fmt.Errorf("%s: map keys must be strings", t)
		}
		values, err := g.ref(t.Elem())
		if err != nil {
			return nil, err
		}
		return map[string]any{"type": []string{"object", "null"}, "additionalProperties": values}, nil
	case reflect.Struct:
		name := definitionName(t)
		if _, ok := g.defs[name]; !ok {
			g.defs[name] = nil // being written: a recursive type refers to itself
			props := map[string]any{}
			if err := g.fields(t, props); err != nil {
				return nil, err
			}
			g.defs[name] = map[string]any{"type": []string{"object", "null"}, "properties": props, "additionalProperties": false}
		}
		return map[string]any{"$ref": "#/definitions/" + name}, nil
	}
	return nil, fmt.Errorf("%s: kind %s not supported", t, t.Kind())
}

// fields adds the JSON fields of struct t to props, inlined structs' included.
func (g *schemaGen) fields(t reflect.Type, props map[string]any) error {
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name, opts, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" {
			continue
		}
		if f.Anonymous && name == "" || slices.Contains(strings.Split(opts, ","), "inline") {
			ft := f.Type
			for ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			if err := g.fields(ft, props); err != nil {
				return err
			}
			continue
		}
		if name == "" {
			name = f.Name
		}
		s, err := g.ref(f.Type)
		if err != nil {
			return fmt.Errorf("%s.%s: %w", t.Name(), f.Name, err)
		}
		props[name] = s
	}
	return nil
}
