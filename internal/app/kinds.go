package app

import (
	"context"
	"strings"

	"github.com/go-logr/logr"
	"k8s.io/apimachinery/pkg/api/meta"

	"github.com/credgate/credgate/webhook"
)

// unservedKinds logs, once at start, which of the custom workload kinds credgate admits the
// cluster does not serve (their CRDs are absent). Nothing else changes for them: their
// handlers need no informer and read no object of the kind, and a webhook rule for a resource
// the API server does not serve matches nothing — until the CRD is installed, when it applies
// without a restart.
func unservedKinds(mapper meta.RESTMapper, log logr.Logger) everyReplica {
	return func(context.Context) error {
		var absent []string
		for _, k := range webhook.Kinds {
			if !k.Workload.Custom() {
				continue
			}
			if _, err := mapper.RESTMapping(k.GVK.GroupKind(), k.GVK.Version); meta.IsNoMatchError(err) {
				absent = append(absent, k.GVK.Kind+"."+k.GVK.Group+"/"+k.GVK.Version)
			}
		}
		if len(absent) > 0 {
			log.Info("workload kinds not served by this cluster (their CRDs are absent), skipped until they are installed: "+strings.Join(absent, ", "),
				"kinds", absent)
		}
		return nil
	}
}
