package policies

import "testing"

// TestReadsManagedFields: a revision may read the input's managed fields when some module
// refers to them, or to anything holding them, or reaches them by a key it computes; the
// built-in rules do not.
func TestReadsManagedFields(t *testing.T) {
	for _, tt := range []struct {
		name, module string
		want         bool
	}{
		{"built-in only", "", false},
		{"labels and the spec", `package credgate.admission

deny contains "x" if input.pod.metadata.labels.team == "a"
deny contains "y" if input.object.spec.containers[_].image == "evil"
deny contains "z" if input.request.userInfo.username == "mallory"
`, false},
		{"a nested member of the same name", `package credgate.admission

deny contains "x" if input.pod.metadata.annotations.managedFields
`, false},
		{"the pod's", `package credgate.admission

deny contains "x" if input.pod.metadata.managedFields[_].manager == "mallory"
`, true},
		{"the object's", `package credgate.admission

deny contains "x" if count(input.object.metadata.managedFields) > 3
`, true},
		{"a computed key", `package credgate.admission

deny contains "x" if {
	k := concat("", ["managed", "Fields"])
	input.pod.metadata[k]
}
`, true},
		{"the metadata whole", `package credgate.admission

deny contains "x" if json.marshal(input.object.metadata) == ""
`, true},
		{"the input whole", `package credgate.admission

deny contains "x" if {
	walk(input, [path, v])
	v == "mallory"
}
`, true},
		{"the pod through a function", `package credgate.admission

bad(p) if p.metadata.managedFields
deny contains "x" if bad(input.pod)
`, true},
		{"a dynamic key inside a ref elsewhere", `package credgate.admission

deny contains "x" if data.credgate.admission.known[input.object.metadata.managedFields[0].manager]
known := {}
`, true},
		{"an import of the spec", `package credgate.admission

import input.pod.spec as s

deny contains "x" if s.serviceAccountName == "admin"
`, false},
		{"an import of the pod", `package credgate.admission

import input.pod as p

deny contains "x" if p.metadata.managedFields
`, true},
		{"object.get of a constant path", `package credgate.admission

deny contains "x" if count(object.get(input, ["credentials"], [])) > 9
deny contains "y" if object.get(input.pod, ["spec", "hostNetwork"], false)
`, false},
		{"object.get of the metadata", `package credgate.admission

deny contains "x" if object.get(input, ["object", "metadata"], {}).managedFields
`, true},
		{"object.get of a computed key", `package credgate.admission

deny contains "x" if {
	some k in ["labels", "managedFields"]
	object.get(input.pod.metadata, k, null)
}
`, true},
		// Found by an attacker's review: OPA's visitor does not walk a rule head's ref.
		{"a key in a rule head's ref (set)", `package credgate.admission

seen[input.pod.metadata.managedFields[_].manager] contains "x"
deny contains "x" if seen.mallory
`, true},
		{"a key in a rule head's ref (nested)", `package credgate.admission

by.manager[input.object.metadata.managedFields[_].manager] := true
deny contains "x" if by.manager.mallory
`, true},
		// And a with on an object.get of the input was skipped.
		{"a with on object.get", `package credgate.admission

deny contains "x" if {
	object.get(input, ["pod", "spec", "zz"], 0, n) with input.pod.spec.zz as count([1 | input.pod.metadata.managedFields[_].manager == "mallory"])
	n > 0
}
`, true},
		{"a with on object.get, replacing the input", `package credgate.admission

deny contains "x" if count(object.get(input, "credentials", [])) > 0 with input.credentials as input.pod.metadata.managedFields
`, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := builtinWith(t, tt.module).ReadsManagedFields(); got != tt.want {
				t.Errorf("ReadsManagedFields() = %t, want %t", got, tt.want)
			}
		})
	}
}
