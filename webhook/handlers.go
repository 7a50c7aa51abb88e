package webhook

import (
	"github.com/go-logr/logr"
	"k8s.io/client-go/tools/events"
	"sigs.k8s.io/controller-runtime/pkg/client"
	crwebhook "sigs.k8s.io/controller-runtime/pkg/webhook"

	"github.com/credgate/credgate/audit"
	"github.com/credgate/credgate/review"
)

// Handlers are what every admission handler shares.
type Handlers struct {
	Reviewer *review.Reviewer
	// Audit records the decisions (nil: none). The mutating handler records every event the
	// auditor wants; the validating handler only refusals, since whatever it admits the
	// mutating handler has recorded already.
	Audit *audit.Auditor
	// Owners resolves the owner above an object's owner (the CronJob of a Job) for the audit
	// record; nil stops at the object's own owner reference.
	Owners OwnerResolver
	// Events receives a Warning Event for every refusal (nil: none).
	Events events.EventRecorder
	// Metrics counts and times the requests (nil: none).
	Metrics *Metrics
	// Decisions keeps recent decisions for identical admissions to reuse (nil: none).
	Decisions *review.Decisions
	Log       logr.Logger
}

// Register serves a mutating and a validating webhook for each of Kinds on srv.
func (h Handlers) Register(srv crwebhook.Server) {
	for _, k := range Kinds {
		mh, vh := h, h
		mh.Log, vh.Log = h.Log.WithValues(keyPath, k.Path), h.Log.WithValues(keyPath, k.ValidatePath)
		srv.Register(k.Path, &Endpoint{Handler: &Handler{Handlers: mh, Kind: k}, RecoverPanic: true})
		srv.Register(k.ValidatePath, &Endpoint{Handler: &Handler{Handlers: vh, Kind: k, ValidateOnly: true}, RecoverPanic: true})
	}
}

// NewOwnerResolver returns the OwnerResolver credgate serve audits with: a metadata-only GET
// through reader (the API server, not a cache) for audited decisions only, each owner found
// kept for a few minutes.
func NewOwnerResolver(reader client.Reader) OwnerResolver { return newAPIOwners(reader) }
