package policies

// managedFieldsPaths are where an admitted object's managed fields sit in the policy input: the
// object's, and the pod's (the same value for a Pod; a workload's pod template has none).
var managedFieldsPaths = [][]string{
	{"object", "metadata", "managedFields"},
	{"pod", "metadata", "managedFields"},
}

// ReadsManagedFields reports whether the revision's policies may read an object's
// metadata.managedFields: the API server stamps them with the time to the second, so pods a Job
// creates from one template differ there alone, and a decision that cannot have read them holds
// for each of them (review.KeyRequest.IgnoreManagedFields).
//
// It is decided once, when the revision is compiled, from every reference to the input in
// every module (inputReads): a reference whose constant part stops at or before managedFields
// (input, input.pod, input.object.metadata, input.pod.metadata[k]) may read them; one that
// leaves that path by a constant name (input.pod.spec, input.pod.metadata.labels,
// input.credentials) cannot. So it errs towards true: a policy that passes input.pod to a
// function reads it all.
func (r *Revision) ReadsManagedFields() bool { return r.readsManagedFields }

// readsManagedFields reports whether a policy that reads reads may read the managed fields.
func readsManagedFields(reads *readSet) bool {
	for _, path := range managedFieldsPaths {
		if reads.reaches(path) {
			return true
		}
	}
	return false
}
