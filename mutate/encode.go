package mutate

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"unicode/utf8"

	"gomodules.xyz/jsonpatch/v2"
	corev1 "k8s.io/api/core/v1"
)

// EncodePatch encodes ops as the JSON patch of an admission response: the bytes json.Marshal
// gives, in one pass. json.Marshal calls each operation's MarshalJSON, which marshals a struct
// holding it, and then re-reads and compacts what that returned: about a tenth of a new pod's
// admission went there (BenchmarkEncodePatch). FuzzPatch and TestEncodePatch hold the two to
// the same bytes.
func EncodePatch(ops []jsonpatch.Operation) ([]byte, error) {
	if ops == nil {
		return []byte("null"), nil
	}
	var buf bytes.Buffer
	buf.Grow(64 + 160*len(ops))
	enc := json.NewEncoder(&buf) // escapes HTML, as json.Marshal does
	buf.WriteByte('[')
	for i := range ops {
		op := &ops[i]
		if i > 0 {
			buf.WriteByte(',')
		}
		buf.WriteString(`{"op":`)
		if err := encodeString(&buf, enc, op.Operation); err != nil {
			return nil, err
		}
		buf.WriteString(`,"path":`)
		if err := encodeString(&buf, enc, op.Path); err != nil {
			return nil, err
		}
		switch {
		case op.Value != nil:
			buf.WriteString(`,"value":`)
			if err := encodeValue(&buf, enc, op.Value); err != nil {
				return nil, fmt.Errorf("encode the value of %s %s: %w", op.Operation, op.Path, err)
			}
		case op.Operation == "add" || op.Operation == "replace":
			buf.WriteString(`,"value":null`) // as Operation.MarshalJSON writes it
		}
		buf.WriteByte('}')
	}
	buf.WriteByte(']')
	return buf.Bytes(), nil
}

// encodeString writes s as a JSON string: as it is, quoted, when no byte of it needs escaping
// (json.Marshal escapes control characters, quotes, backslashes, <, > and &, invalid UTF-8,
// U+2028 and U+2029), through enc otherwise.
func encodeString(buf *bytes.Buffer, enc *json.Encoder, s string) error {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= utf8.RuneSelf || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			return encodeValue(buf, enc, s)
		}
	}
	buf.WriteByte('"')
	buf.WriteString(s)
	buf.WriteByte('"')
	return nil
}

// encodeValue writes v as json.Marshal encodes it: written directly when it is a value credgate
// adds most (encodeKnown), else enc's output without the newline Encode ends it with.
func encodeValue(buf *bytes.Buffer, enc *json.Encoder, v any) error {
	if ok, err := encodeKnown(buf, enc, v); ok || err != nil {
		return err
	}
	if err := enc.Encode(v); err != nil {
		return err
	}
	buf.Truncate(buf.Len() - 1)
	return nil
}

// encodeKnown writes the values Patch adds most — a variable and a mount, one or a list of them
// — in the shapes credgate gives them (a literal or a Secret's key; a plain mount), as
// encoding/json writes them: their members in the order of the fields, those empty left out
// as omitempty says. That was most of the time of encoding a patch: encoding/json finds each
// field by reflection, and for a variable walks the five sources a variable may have
// (BenchmarkEncodePatch). It reports false, having written nothing, for any other value or
// shape. TestEncodePatch and FuzzEncodeKnown hold it to json.Marshal byte for byte, and
// TestEncodeKnownFields fails when k8s.io/api gives these types a field it does not know.
func encodeKnown(buf *bytes.Buffer, enc *json.Encoder, v any) (bool, error) {
	switch v := v.(type) {
	case *corev1.EnvVar:
		if v == nil || !knownEnv(v) { // (a nil pointer: null, from encoding/json)
			return false, nil
		}
		return true, encodeEnv(buf, enc, v)
	case *corev1.VolumeMount:
		if v == nil || !knownMount(v) {
			return false, nil
		}
		return true, encodeMount(buf, enc, v)
	case []corev1.EnvVar:
		return encodeKnownList(buf, enc, v, knownEnv, encodeEnv)
	case []corev1.VolumeMount:
		return encodeKnownList(buf, enc, v, knownMount, encodeMount)
	}
	return false, nil
}

// encodeKnownList writes list when every element is known, each by encode.
func encodeKnownList[E any](buf *bytes.Buffer, enc *json.Encoder, list []E, known func(*E) bool, encode func(*bytes.Buffer, *json.Encoder, *E) error) (bool, error) {
	if list == nil {
		return false, nil
	}
	for i := range list {
		if !known(&list[i]) {
			return false, nil
		}
	}
	buf.WriteByte('[')
	for i := range list {
		if i > 0 {
			buf.WriteByte(',')
		}
		if err := encode(buf, enc, &list[i]); err != nil {
			return true, err
		}
	}
	buf.WriteByte(']')
	return true, nil
}

// knownEnv reports whether e is a literal or a Secret's key, as credgate injects them.
func knownEnv(e *corev1.EnvVar) bool {
	return e.ValueFrom == nil || e.ValueFrom.SecretKeyRef != nil && *e.ValueFrom == corev1.EnvVarSource{SecretKeyRef: e.ValueFrom.SecretKeyRef}
}

func encodeEnv(buf *bytes.Buffer, enc *json.Encoder, e *corev1.EnvVar) error {
	buf.WriteString(`{"name":`)
	if err := encodeString(buf, enc, e.Name); err != nil {
		return err
	}
	if e.Value != "" {
		buf.WriteString(`,"value":`)
		if err := encodeString(buf, enc, e.Value); err != nil {
			return err
		}
	}
	if e.ValueFrom != nil {
		ref := e.ValueFrom.SecretKeyRef
		buf.WriteString(`,"valueFrom":{"secretKeyRef":{`)
		if ref.Name != "" {
			buf.WriteString(`"name":`)
			if err := encodeString(buf, enc, ref.Name); err != nil {
				return err
			}
			buf.WriteByte(',')
		}
		buf.WriteString(`"key":`)
		if err := encodeString(buf, enc, ref.Key); err != nil {
			return err
		}
		if ref.Optional != nil {
			buf.WriteString(`,"optional":`)
			buf.WriteString(strconv.FormatBool(*ref.Optional))
		}
		buf.WriteString(`}}`)
	}
	buf.WriteByte('}')
	return nil
}

// knownMount reports whether m sets only a name, a path, read-only and a subpath, as credgate's
// mounts do.
func knownMount(m *corev1.VolumeMount) bool {
	return m.RecursiveReadOnly == nil && m.MountPropagation == nil && m.SubPathExpr == "" && len(m.BindMountOptions) == 0
}

func encodeMount(buf *bytes.Buffer, enc *json.Encoder, m *corev1.VolumeMount) error {
	buf.WriteString(`{"name":`)
	if err := encodeString(buf, enc, m.Name); err != nil {
		return err
	}
	if m.ReadOnly {
		buf.WriteString(`,"readOnly":true`)
	}
	buf.WriteString(`,"mountPath":`)
	if err := encodeString(buf, enc, m.MountPath); err != nil {
		return err
	}
	if m.SubPath != "" {
		buf.WriteString(`,"subPath":`)
		if err := encodeString(buf, enc, m.SubPath); err != nil {
			return err
		}
	}
	buf.WriteByte('}')
	return nil
}
