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
	s, err := crdSchema()
	if err != nil { // the embedded CRD is built into the binary and tested; this is a build defect
		return field.ErrorList{field.InternalError(nil, err)}
	}
	data, err := json.Marshal(c)
	if err != nil {
		return field.ErrorList{field.InternalError(nil, err)}
	}
	var obj map[string]any
	// The API server's JSON decoding: integers as int64, as its validators expect.
	if err := utiljson.Unmarshal(data, &obj); err != nil {
		return field.ErrorList{field.InternalError(nil, err)}
	}
	obj["apiVersion"], obj["kind"] = v1alpha1.GroupVersion.String(), "Credential"
	spec, _ := obj["spec"].(map[string]any)
	if t, ok := spec["type"]; ok && t == "" {
		delete(spec, "type") // the Go type cannot omit it; a user who leaves it out gets the default
	}
	if md, _ := obj["metadata"].(map[string]any); md != nil && md["namespace"] == nil {
		md["namespace"] = "default" // the API server takes it from the request
	}
	return s.validate(obj)
}

// validatedCache remembers the verdict on each revision of a Credential the API server served:
// admission resolves the same few revisions for every pod, and the schema's validators cost
// far more than a map lookup. It is bounded: when full, it starts over.
var validatedCache = struct {
	sync.Mutex
	m map[revision][]string
}{m: map[revision][]string{}}

type revision struct{ uid, resourceVersion string }

const maxValidatedRevisions = 4096

// validated is Validate, remembered per revision for Credentials that have one. A Credential
// from the API server passed the cluster's CRD already; credgate checks it against its own
// too, so that a cluster whose CRD was not upgraded with credgate never gets credgate to act
// on what its schema refuses.
func validated(c *v1alpha1.Credential) []string {
	if c.UID == "" || c.ResourceVersion == "" {
		return Validate(c)
	}
	key := revision{string(c.UID), c.ResourceVersion}
	validatedCache.Lock()
	errs, ok := validatedCache.m[key]
	validatedCache.Unlock()
	if ok {
		return errs
	}
	errs = Validate(c)
	validatedCache.Lock()
	if len(validatedCache.m) >= maxValidatedRevisions {
		clear(validatedCache.m)
	}
	validatedCache.m[key] = errs
	validatedCache.Unlock()
	return errs
}
