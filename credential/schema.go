package credential

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"

	apiextensionsinternal "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	structuralschema "k8s.io/apiextensions-apiserver/pkg/apiserver/schema"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/schema/cel"
	structuraldefaulting "k8s.io/apiextensions-apiserver/pkg/apiserver/schema/defaulting"
	structurallisttype "k8s.io/apiextensions-apiserver/pkg/apiserver/schema/listtype"
	apiservervalidation "k8s.io/apiextensions-apiserver/pkg/apiserver/validation"
	apimachineryvalidation "k8s.io/apimachinery/pkg/api/validation"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	utiljson "k8s.io/apimachinery/pkg/util/json"
	"k8s.io/apimachinery/pkg/util/validation/field"
	celconfig "k8s.io/apiserver/pkg/apis/cel"
	"sigs.k8s.io/yaml"

	"github.com/credgate/credgate/api/v1alpha1"
	"github.com/credgate/credgate/manifests/crd"
)

// crdSchema is the Credential CRD's schema, prepared once as the API server prepares it: the
// OpenAPI validator, the structural schema (defaults, list types) and the compiled CEL rules.
var crdSchema = sync.OnceValues(func() (*crdValidator, error) {
	var def apiextensionsv1.CustomResourceDefinition
	if err := yaml.UnmarshalStrict(crd.Credentials, &def); err != nil {
		return nil, fmt.Errorf("decode the Credential CRD: %w", err)
	}
	for _, v := range def.Spec.Versions {
		if v.Name != v1alpha1.GroupVersion.Version || v.Schema == nil {
			continue
		}
		var internal apiextensionsinternal.CustomResourceValidation
		if err := apiextensionsv1.Convert_v1_CustomResourceValidation_To_apiextensions_CustomResourceValidation(v.Schema, &internal, nil); err != nil {
			return nil, fmt.Errorf("convert the Credential CRD's schema: %w", err)
		}
		structural, err := structuralschema.NewStructural(internal.OpenAPIV3Schema)
		if err != nil {
			return nil, fmt.Errorf("the Credential CRD's schema is not structural: %w", err)
		}
		validator, _, err := apiservervalidation.NewSchemaValidator(internal.OpenAPIV3Schema)
		if err != nil {
			return nil, fmt.Errorf("the Credential CRD's schema: %w", err)
		}
		return &crdValidator{
			structural: structural,
			openAPI:    validator,
			cel:        cel.NewValidator(structural, true, celconfig.PerCallLimit),
		}, nil
	}
	return nil, fmt.Errorf("the Credential CRD has no schema for version %s", v1alpha1.GroupVersion.Version)
})

type crdValidator struct {
	structural *structuralschema.Structural
	openAPI    apiservervalidation.SchemaValidator
	cel        *cel.Validator
}

// validate checks obj (a Credential as JSON-decoded maps) the way the API server checks a
// create: status dropped, defaults applied, then metadata, the OpenAPI schema, list types, and
// the CEL rules unless an earlier error makes them meaningless (as the API server skips them).
func (s *crdValidator) validate(obj map[string]any) field.ErrorList {
	delete(obj, "status")
	structuraldefaulting.Default(obj, s.structural)
	u := &unstructured.Unstructured{Object: obj}
	errs := apimachineryvalidation.ValidateObjectMetaAccessor(u, true, apimachineryvalidation.NameIsDNSSubdomain, field.NewPath("metadata"))
	errs = append(errs, apiservervalidation.ValidateCustomResource(nil, obj, s.openAPI)...)
	errs = append(errs, structurallisttype.ValidateListSetsAndMaps(nil, s.structural, obj)...)
	if s.cel == nil {
		return errs
	}
	for _, e := range errs {
		switch e.Type {
		case field.ErrorTypeNotSupported, field.ErrorTypeRequired, field.ErrorTypeTooLong, field.ErrorTypeTooMany, field.ErrorTypeTypeInvalid:
			return append(errs, field.Invalid(nil, nil, "some validation rules were not checked because the object was invalid; correct the existing errors to complete validation"))
		}
	}
	celErrs, _ := s.cel.Validate(context.Background(), nil, s.structural, obj, nil, celconfig.RuntimeCELCostBudget)
	return append(errs, celErrs...)
}

// schemaErrors returns what the API server would refuse in c, in its words and field paths.
func schemaErrors(c *v1alpha1.Credential) field.ErrorList {
	data, err := json.Marshal(c)
	if err != nil {
		return field.ErrorList{field.InternalError(nil, err)}
	}
	return schemaErrorsJSON(data, true)
}

// ValidateJSON is Validate for a Credential as a user wrote it (JSON): what the Go type
// cannot tell apart from a field left out, such as `type: ""`, is checked as written.
func ValidateJSON(data []byte) []string {
	return errorStrings(schemaErrorsJSON(data, false))
}

func schemaErrorsJSON(data []byte, fromGo bool) field.ErrorList {
	s, err := crdSchema()
	if err != nil { // the embedded CRD is built into the binary and tested; this is a build defect
		return field.ErrorList{field.InternalError(nil, err)}
	}
	var obj map[string]any
	// The API server's JSON decoding: integers as int64, as its validators expect.
	if err := utiljson.Unmarshal(data, &obj); err != nil {
		return field.ErrorList{field.Invalid(nil, nil, err.Error())}
	}
	if obj == nil {
		obj = map[string]any{}
	}
	obj["apiVersion"], obj["kind"] = v1alpha1.GroupVersion.String(), "Credential"
	if spec, _ := obj["spec"].(map[string]any); fromGo && spec != nil && spec["type"] == "" {
		delete(spec, "type") // the Go type cannot omit it; a user who leaves it out gets the default
	}
	md, _ := obj["metadata"].(map[string]any)
	if md == nil {
		md = map[string]any{}
		obj["metadata"] = md
	}
	if ns, _ := md["namespace"].(string); ns == "" {
		md["namespace"] = "default" // the API server takes it from the request
	}
	return s.validate(obj)
}

// validatedCache remembers the verdict on the latest generation of each Credential the API
// server served: admission resolves the same few Credentials for every pod, and the schema's
// validators cost far more than a map lookup. A Credential's generation changes with its spec
// only (status is a subresource; metadata.name cannot change), so a status write by the
// refresher, or a tenant touching annotations, costs no second check. It holds one entry per
// Credential, and starts over when it holds maxValidated of them.
var validatedCache = struct {
	sync.Mutex
	m map[types.UID]verdict
}{m: map[types.UID]verdict{}}

type verdict struct {
	generation int64
	problems   []string
}

const maxValidated = 16384

// MaxCheckedBytes bounds the Credential credgate checks at admission. The CRD bounds every
// list and string, so no valid Credential comes near it; a cluster whose CRD predates those
// bounds could serve a larger one, which is refused rather than checked at a cost the tenant
// chooses.
const MaxCheckedBytes = 256 << 10

// validated is Validate for admission: remembered per generation for Credentials the API
// server served, and refused unchecked above MaxCheckedBytes. A Credential from the API
// server passed the cluster's CRD already; credgate checks it against its own too, so that a
// cluster whose CRD was not upgraded with credgate never gets credgate to act on what its
// schema refuses.
func validated(c *v1alpha1.Credential) []string {
	if c.UID == "" || c.Generation == 0 {
		return checked(c)
	}
	validatedCache.Lock()
	v, ok := validatedCache.m[c.UID]
	validatedCache.Unlock()
	if ok && v.generation == c.Generation {
		return v.problems
	}
	problems := checked(c)
	validatedCache.Lock()
	if len(validatedCache.m) >= maxValidated {
		clear(validatedCache.m)
	}
	validatedCache.m[c.UID] = verdict{c.Generation, problems}
	validatedCache.Unlock()
	return problems
}

func checked(c *v1alpha1.Credential) []string {
	data, err := json.Marshal(c)
	if err != nil {
		return []string{err.Error()}
	}
	if len(data) > MaxCheckedBytes {
		return []string{fmt.Sprintf("the Credential is %d bytes; credgate checks at most %d (its CRD bounds every field well below that: upgrade the cluster's CRD)", len(data), MaxCheckedBytes)}
	}
	return errorStrings(schemaErrorsJSON(data, true))
}
