package tempcreds

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"regexp"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"
	metav1ac "k8s.io/client-go/applyconfigurations/meta/v1"
	"k8s.io/client-go/tools/events"
	"k8s.io/client-go/util/workqueue"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/credgate/credgate/api/v1alpha1"
	"github.com/credgate/credgate/credential"
)

// The keys of a source Secret: the long-lived keys credgate assumes roles with.
const (
	SourceAccessKeyID     = "aws_access_key_id"
	SourceSecretAccessKey = "aws_secret_access_key"
)

// FieldOwner is the server-side-apply field manager of the Secrets the refresher writes.
const FieldOwner = "credgate"

// DefaultDuration is a session's lifetime when a Credential does not say.
const DefaultDuration = time.Hour

// Reasons of the Ready and Verified conditions the refresher sets.
const (
	ReasonMinted               = "Minted"
	ReasonRefreshRetrying      = "RefreshRetrying"
	ReasonSourceSecretNotFound = "SourceSecretNotFound"
	ReasonSourceSecretInvalid  = "SourceSecretInvalid"
	ReasonSourceNotGranted     = "SourceNotGranted"
	ReasonNamespaceNotEnabled  = "NamespaceNotEnabled"
	ReasonSourceUnavailable    = "SourceUnavailable"
	ReasonAssumeRoleFailed     = "AssumeRoleFailed"
	// ReasonGenerateAccessTokenFailed: the source (or IAM Credentials) refused to mint a GCP
	// access token.
	ReasonGenerateAccessTokenFailed = "GenerateAccessTokenFailed"
	ReasonSecretWriteFailed         = "SecretWriteFailed"
	ReasonProbeSucceeded            = "ProbeSucceeded"
	ReasonProbeFailed               = "ProbeFailed"
	ReasonNoProbe                   = "NoProbe"
)

// Refresher keeps the temporary credentials of every refreshed Credential (aws mode
// assumeRole, gcp mode impersonation): one mint per Credential (not per pod) — an AssumeRole
// with its session policy, or a generateAccessToken for its service account — written to a
// credgate-owned Secret in the Credential's namespace, and minted again at about two thirds
// of the credentials' lifetime. It runs on the elected leader only. Failures become the Ready
// condition, which the credential-not-ready rule turns into audited refusals.
type Refresher struct {
	// Client reads Credentials (from the cache), writes their status and applies Secrets.
	Client client.Client
	// Reader reads source Secrets (a cache of the source namespace only) and namespace labels.
	Reader client.Reader
	// Namespace is where source Secrets live: the refresher's own namespace, which neither
	// tenants nor the admission server can read.
	Namespace string
	// MaxDuration, if set, caps every AWS session's lifetime. Below STS's 15-minute minimum it
	// works only with servers that accept shorter sessions (the tests' MinIO).
	MaxDuration time.Duration
	// MaxGCPLifetime, if set, caps every GCP access token's lifetime.
	MaxGCPLifetime time.Duration
	Log            logr.Logger
	// Metrics, if set, counts refreshes and exports expiry times.
	Metrics *Metrics
	// Events, if set, records failed refreshes as Warning Events on the Credential (reason:
	// the Ready reason), for kubectl describe credential.
	Events events.EventRecorder

	mu         sync.Mutex
	lastMinted map[types.NamespacedName]time.Time
	nsMints    map[string]*rate.Limiter

	// now, assume, verify and generate are replaced by unit tests.
	now      func() time.Time
	assume   func(context.Context, Source, Request) (Credentials, error)
	verify   func(context.Context, *v1alpha1.AWS, Credentials) (reason, message string, ok bool)
	generate func(context.Context, []byte, TokenRequest) (AccessToken, error)
}

// SetupWithManager registers the refresher as a controller of mgr. Status updates do not
// wake it: it wakes on spec changes and when the next refresh is due.
func (r *Refresher) SetupWithManager(mgr ctrl.Manager) error {
	is := func(o client.Object) bool {
		c, ok := o.(*v1alpha1.Credential)
		return ok && (credential.Refreshed(&c.Spec) || hasRefresherStatus(c))
	}
	// Credentials that were refreshed too: the refresher clears its status.
	refreshed := predicate.Funcs{
		CreateFunc:  func(e event.CreateEvent) bool { return is(e.Object) },
		UpdateFunc:  func(e event.UpdateEvent) bool { return is(e.ObjectOld) || is(e.ObjectNew) },
		DeleteFunc:  func(e event.DeleteEvent) bool { return is(e.Object) },
		GenericFunc: func(e event.GenericEvent) bool { return is(e.Object) },
	}
	if err := mgr.GetFieldIndexer().IndexField(context.Background(), &v1alpha1.Credential{}, sourceIndex, sourceName); err != nil {
		return fmt.Errorf("index credentials by source: %w", err)
	}
	return ctrl.NewControllerManagedBy(mgr).
		Named("refresher").
		For(&v1alpha1.Credential{}, builder.WithPredicates(refreshed, predicate.GenerationChangedPredicate{})).
		// A source Secret whose keys or grant change, and a namespace whose labels change (a
		// grant may select it), wake the Credentials that depend on them.
		Watches(&corev1.Secret{}, handler.EnqueueRequestsFromMapFunc(r.usersOfSource),
			builder.WithPredicates(predicate.NewPredicateFuncs(func(o client.Object) bool { return o.GetNamespace() == r.Namespace }))).
		Watches(&corev1.Namespace{}, handler.EnqueueRequestsFromMapFunc(r.usersInNamespace),
			builder.WithPredicates(predicate.LabelChangedPredicate{})).
		WithOptions(controller.Options{
			MaxConcurrentReconciles: 2,
			// Back off from a failing STS or IAM Credentials: 2s, 4s, ... up to 5 minutes.
			RateLimiter: workqueue.NewTypedItemExponentialFailureRateLimiter[reconcile.Request](2*time.Second, 5*time.Minute),
		}).
		Complete(r)
}

// validRegion is the pattern the CRD holds spec.aws.region to.
var validRegion = regexp.MustCompile(`^[a-z0-9-]+$`)

// validServiceAccountEmail is the pattern the CRD holds spec.gcp.serviceAccountEmail to.
var validServiceAccountEmail = regexp.MustCompile(`^[a-z0-9-]+@[a-z0-9.-]+$`)

// sourceIndex indexes Credentials by the source Secret they name.
const sourceIndex = "sourceSecretRef.name"

func sourceName(o client.Object) []string {
	c, ok := o.(*v1alpha1.Credential)
	if !ok {
		return nil
	}
	if ref := sourceRef(c); ref != nil {
		return []string{ref.Name}
	}
	return nil
}

// sourceRef is the source Secret c names: spec.aws.sourceSecretRef or spec.gcp.sourceSecretRef.
func sourceRef(c *v1alpha1.Credential) *v1alpha1.SecretReference {
	switch {
	case c.Spec.AWS != nil && c.Spec.AWS.SourceSecretRef != nil:
		return c.Spec.AWS.SourceSecretRef
	case c.Spec.GCP != nil && c.Spec.GCP.SourceSecretRef != nil:
		return c.Spec.GCP.SourceSecretRef
	}
	return nil
}

// cloud names the cloud of a refreshed credential, for metrics: "aws" or "gcp".
func cloud(c *v1alpha1.Credential) string {
	if credential.GCPMode(&c.Spec) == v1alpha1.GCPImpersonation {
		return "gcp"
	}
	return "aws"
}

// usersOfSource maps a source Secret to the Credentials that name it.
func (r *Refresher) usersOfSource(ctx context.Context, o client.Object) []reconcile.Request {
	var list v1alpha1.CredentialList
	if err := r.Client.List(ctx, &list, client.MatchingFields{sourceIndex: o.GetName()}); err != nil {
		r.Log.Error(err, "list credentials of a source", "source", o.GetName())
		return nil
	}
	return requests(list.Items)
}

// usersInNamespace maps a namespace to its refreshed Credentials.
func (r *Refresher) usersInNamespace(ctx context.Context, o client.Object) []reconcile.Request {
	var list v1alpha1.CredentialList
	if err := r.Client.List(ctx, &list, client.InNamespace(o.GetName())); err != nil {
		r.Log.Error(err, "list credentials of a namespace", "namespace", o.GetName())
		return nil
	}
	return requests(list.Items)
}

func requests(cs []v1alpha1.Credential) []reconcile.Request {
	var out []reconcile.Request
	for i := range cs {
		if credential.Refreshed(&cs[i].Spec) {
			out = append(out, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&cs[i])})
		}
	}
	return out
}

// Reconcile implements reconcile.Reconciler.
func (r *Refresher) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	var cached v1alpha1.Credential
	if err := r.Client.Get(ctx, req.NamespacedName, &cached); err != nil {
		if apierrors.IsNotFound(err) {
			// A deleted Credential's Secret goes with it (owner reference).
			r.Metrics.forget(req.Namespace, req.Name)
			r.forgetMinted(req.NamespacedName)
		}
		return reconcile.Result{}, client.IgnoreNotFound(err)
	}
	if old := cached.Status.SecretName; old != "" && old != credential.ManagedSecretName(&cached) && ownManagedSecret(&cached, old) {
		// The Credential left the mode (or the cloud) its credentials were minted for: empty
		// them first, so that nothing keeps serving them — not running pods, and not a
		// Credential that now names that Secret itself.
		if err := r.withdrawFrom(ctx, &cached, old); err != nil {
			return reconcile.Result{}, err
		}
	}
	if !credential.Refreshed(&cached.Spec) {
		r.Metrics.forget(req.Namespace, req.Name)
		if !hasRefresherStatus(&cached) {
			return reconcile.Result{}, nil
		}
		// No longer refreshed: what the refresher recorded (its conditions, expiry) does not
		// describe the credential any more. The managed Secret, emptied, stays until the
		// Credential is deleted (credgate may not delete Secrets).
		c := cached.DeepCopy()
		c.Status = v1alpha1.CredentialStatus{}
		return reconcile.Result{}, r.Client.Status().Update(ctx, c)
	}
	c := cached.DeepCopy() // the cache shares its objects
	if c.Status.SecretName != credential.ManagedSecretName(c) {
		c.Status.SecretName = "" // withdrawn above
	}
	now := r.clock()
	d := r.sessionDuration(c)
	// The grant is checked on every reconcile, due or not: a source Secret or namespace
	// that changes wakes the refresher, and a revoked grant refuses new pods at once.
	source, reason, err := r.source(ctx, c)
	if err == nil {
		d = source.limit(d)
		if at := r.refreshAt(c, d); now.Before(at) {
			// Not due: a replica that just became leader exports the expiry all the same.
			r.Metrics.expires(cloud(c), c.Namespace, c.Name, float64(c.Status.ExpiresAt.Unix()))
			return reconcile.Result{RequeueAfter: at.Sub(now)}, nil
		}
		// A Credential whose spec a tenant edits in a loop mints at most once a
		// MinMintInterval: the source's STS quota is the platform's. Refreshes on schedule
		// are not held back.
		if wait := r.mintedRecently(req.NamespacedName, now); wait > 0 && specChanged(c) {
			return reconcile.Result{RequeueAfter: wait}, nil
		}
	}
	var m minted
	if err == nil && !r.namespaceMayMint(req.Namespace, now) {
		// A namespace creating (and deleting) Credentials in a loop mints at most
		// NamespaceMintRate a second, after a burst: the source's STS quota is the platform's.
		return reconcile.Result{RequeueAfter: time.Second / NamespaceMintRate}, nil
	}
	if err == nil {
		r.markMinted(req.NamespacedName, now)
		m, reason, err = source.mint(ctx, c, d)
	}
	if revoked(reason) && c.Status.SecretName != "" {
		// The grant was revoked, or the source removed: running pods stop getting the
		// credentials minted under it.
		if werr := r.withdraw(ctx, c); werr != nil {
			err = errors.Join(err, werr)
		}
	}
	if err == nil {
		if err = r.applySecret(ctx, c, m.data); err != nil {
			reason = ReasonSecretWriteFailed
			if apierrors.IsForbidden(err) {
				reason = ReasonNamespaceNotEnabled
				err = fmt.Errorf("the refresher may not write Secrets in namespace %s: the platform team enables a namespace with a RoleBinding to the ClusterRole credgate-refresher-secrets (docs/aws.md, docs/gcp.md): %w", c.Namespace, err)
			}
		}
	}
	if err != nil {
		r.Metrics.refreshed(cloud(c), reason)
		if r.Events != nil {
			r.Events.Eventf(c, nil, corev1.EventTypeWarning, reason, "Refresh", "%v", err)
		}
		r.failed(c, reason, err, now)
		if uerr := r.Client.Status().Update(ctx, c); uerr != nil {
			err = errors.Join(err, fmt.Errorf("update status: %w", uerr))
		}
		// controller-runtime logs err (redacted) and requeues with backoff.
		return reconcile.Result{}, fmt.Errorf("%s: %w", reason, err)
	}

	r.Metrics.refreshed(cloud(c), ReasonMinted)
	expires := m.expires
	if expires.IsZero() {
		expires = now.Add(d)
	}
	r.Metrics.expires(cloud(c), c.Namespace, c.Name, float64(expires.Unix()))
	c.Status.ExpiresAt = &metav1.Time{Time: expires.UTC().Truncate(time.Second)}
	c.Status.SecretName = credential.ManagedSecretName(c)
	meta.SetStatusCondition(&c.Status.Conditions, metav1.Condition{
		Type: v1alpha1.ConditionReady, Status: metav1.ConditionTrue, Reason: ReasonMinted, ObservedGeneration: c.Generation,
		Message: fmt.Sprintf("%s; temporary credentials in Secret %s expire at %s",
			m.what, c.Status.SecretName, c.Status.ExpiresAt.UTC().Format(time.RFC3339)),
	})
	if m.verify == nil {
		meta.RemoveStatusCondition(&c.Status.Conditions, v1alpha1.ConditionVerified)
	} else {
		vReason, vMessage, ok := m.verify(ctx)
		verified := metav1.Condition{Type: v1alpha1.ConditionVerified, Status: metav1.ConditionFalse, Reason: vReason,
			Message: vMessage, ObservedGeneration: c.Generation}
		switch {
		case ok:
			verified.Status = metav1.ConditionTrue
		case vReason == ReasonNoProbe:
			verified.Status = metav1.ConditionUnknown
		}
		meta.SetStatusCondition(&c.Status.Conditions, verified)
	}
	if err := r.Client.Status().Update(ctx, c); err != nil {
		return reconcile.Result{}, fmt.Errorf("update status of credential %s: %w", req.NamespacedName, err)
	}
	r.Log.Info("minted temporary credentials", "credential", req.NamespacedName, "cloud", cloud(c), "expiresAt", c.Status.ExpiresAt.Time)
	return reconcile.Result{RequeueAfter: r.refreshAt(c, d).Sub(now)}, nil
}

// specChanged reports whether c's spec changed since its credentials were minted.
func specChanged(c *v1alpha1.Credential) bool {
	ready := meta.FindStatusCondition(c.Status.Conditions, v1alpha1.ConditionReady)
	return ready != nil && ready.ObservedGeneration != c.Generation
}

// revoked reports whether a failure's reason means the platform withdrew the source — its
// grant, its Secret or its keys — rather than that minting failed for a while.
func revoked(reason string) bool {
	switch reason {
	case ReasonSourceNotGranted, ReasonSourceSecretNotFound, ReasonSourceSecretInvalid:
		return true
	}
	return false
}

// MinMintInterval is the least time between two mints for one Credential whose spec changed.
const MinMintInterval = 30 * time.Second

// mintedRecently returns how long key must wait for its next mint, or 0.
func (r *Refresher) mintedRecently(key types.NamespacedName, now time.Time) time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	if at, ok := r.lastMinted[key]; ok && now.Sub(at) < MinMintInterval {
		return MinMintInterval - now.Sub(at)
	}
	return 0
}

func (r *Refresher) markMinted(key types.NamespacedName, now time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.lastMinted == nil {
		r.lastMinted = make(map[types.NamespacedName]time.Time)
	}
	r.lastMinted[key] = now
}

// Bounds of the AssumeRole calls of one namespace: a burst (a team creating its Credentials)
// and then a steady rate. Refreshes on schedule count too; at an hour a session, a namespace
// of 3,600 assumeRole Credentials would still be served.
const (
	NamespaceMintRate  = 1
	NamespaceMintBurst = 20
)

// namespaceMayMint takes one mint from ns's budget, or reports that there is none now.
func (r *Refresher) namespaceMayMint(ns string, now time.Time) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.nsMints == nil {
		r.nsMints = make(map[string]*rate.Limiter)
	}
	l, ok := r.nsMints[ns]
	if !ok {
		l = rate.NewLimiter(NamespaceMintRate, NamespaceMintBurst)
		r.nsMints[ns] = l
	}
	return l.AllowN(now, 1)
}

func (r *Refresher) forgetMinted(key types.NamespacedName) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.lastMinted, key)
}

// hasRefresherStatus reports whether c's status was written by the refresher: a managed
// Secret, or a Ready condition with one of its reasons.
func hasRefresherStatus(c *v1alpha1.Credential) bool {
	if c.Status.SecretName != "" {
		return true
	}
	ready := meta.FindStatusCondition(c.Status.Conditions, v1alpha1.ConditionReady)
	if ready == nil {
		return false
	}
	switch ready.Reason {
	case ReasonMinted, ReasonRefreshRetrying, ReasonSourceSecretNotFound, ReasonSourceSecretInvalid,
		ReasonSourceNotGranted, ReasonSourceUnavailable, ReasonAssumeRoleFailed, ReasonGenerateAccessTokenFailed,
		ReasonSecretWriteFailed, ReasonNamespaceNotEnabled:
		return true
	}
	return false
}

// refreshAt is when c's credentials are next due: now if it has none for its current spec,
// else two thirds into the session, less a per-Credential jitter of up to a tenth of it so
// that Credentials minted together are not refreshed together.
func (r *Refresher) refreshAt(c *v1alpha1.Credential, d time.Duration) time.Time {
	ready := meta.FindStatusCondition(c.Status.Conditions, v1alpha1.ConditionReady)
	if ready == nil || ready.Status != metav1.ConditionTrue || ready.ObservedGeneration != c.Generation ||
		c.Status.ExpiresAt == nil || c.Status.SecretName != credential.ManagedSecretName(c) {
		return time.Time{}
	}
	h := fnv.New32a()
	_, _ = h.Write([]byte(c.UID))
	jitter := time.Duration(float64(d/10) * float64(h.Sum32()) / float64(1<<32))
	return c.Status.ExpiresAt.Add(-d/3 - jitter)
}

// sessionDuration is the lifetime of c's credentials: spec.aws.durationSeconds or
// spec.gcp.lifetimeSeconds, else DefaultDuration, capped by MaxDuration or MaxGCPLifetime.
func (r *Refresher) sessionDuration(c *v1alpha1.Credential) time.Duration {
	d := DefaultDuration
	var s *int32
	limit := r.MaxDuration
	if cloud(c) == "gcp" {
		s, limit = c.Spec.GCP.LifetimeSeconds, r.MaxGCPLifetime
	} else {
		s = c.Spec.AWS.DurationSeconds
	}
	if s != nil {
		d = time.Duration(*s) * time.Second
	}
	if limit > 0 && d > limit {
		d = limit
	}
	return d
}

// minted is what one mint produced: the managed Secret's data, when the credentials expire,
// what was minted (the start of the Ready message) and, where the cloud has one, the probe
// behind the Verified condition.
type minted struct {
	data    map[string][]byte
	expires time.Time
	what    string
	verify  func(context.Context) (reason, message string, ok bool)
}

// A minter mints a Credential's credentials with a source that grants it.
type minter interface {
	// mint mints c's credentials for d; on failure it returns the condition reason.
	mint(ctx context.Context, c *v1alpha1.Credential, d time.Duration) (minted, string, error)
	// limit is the lifetime the source's grant allows, d at most.
	limit(d time.Duration) time.Duration
}

// source reads the source Secret of c and checks that it grants c; it returns what mints c's
// credentials with it, or the condition reason.
func (r *Refresher) source(ctx context.Context, c *v1alpha1.Credential) (minter, string, error) {
	ref := sourceRef(c)
	if ref == nil { // the API server requires one; a Credential stored otherwise gets nothing
		return nil, ReasonSourceSecretNotFound, errors.New("the credential names no source Secret")
	}
	var src corev1.Secret
	key := client.ObjectKey{Namespace: r.Namespace, Name: ref.Name}
	if err := r.Reader.Get(ctx, key, &src); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, ReasonSourceSecretNotFound, fmt.Errorf("source Secret %s not found (source Secrets live in the refresher's namespace, %s)", key, r.Namespace)
		}
		return nil, ReasonSourceUnavailable, fmt.Errorf("read source Secret %s: %w", key, err)
	}
	grant, err := r.granted(ctx, c, &src)
	if err != nil {
		if !errors.Is(err, ErrNotGranted) {
			return nil, ReasonSourceUnavailable, err
		}
		return nil, ReasonSourceNotGranted, err
	}
	if cloud(c) == "gcp" {
		keyFile := src.Data[SourceGCPKey]
		if err := checkServiceAccountKey(keyFile); err != nil {
			return nil, ReasonSourceSecretInvalid, fmt.Errorf("source Secret %s: key %s: %w", key, SourceGCPKey, err)
		}
		return gcpMinter{r: r, key: keyFile, grant: grant}, "", nil
	}
	source := Source{AccessKeyID: string(src.Data[SourceAccessKeyID]), SecretAccessKey: string(src.Data[SourceSecretAccessKey])}
	if source.AccessKeyID == "" || source.SecretAccessKey == "" {
		return nil, ReasonSourceSecretInvalid, fmt.Errorf("source Secret %s needs keys %s and %s", key, SourceAccessKeyID, SourceSecretAccessKey)
	}
	return awsMinter{r: r, source: source, grant: grant}, "", nil
}

// awsMinter assumes a Credential's role with a source's long-lived keys.
type awsMinter struct {
	r      *Refresher
	source Source
	grant  Grant
}

// limit is d: an AWS session's lifetime is bounded by its role (MaxSessionDuration).
func (awsMinter) limit(d time.Duration) time.Duration { return d }

// mint assumes c's role with the source at the granted endpoint, with the granted external ID.
func (m awsMinter) mint(ctx context.Context, c *v1alpha1.Credential, d time.Duration) (minted, string, error) {
	a := c.Spec.AWS
	req := Request{
		RoleARN:     a.RoleARN,
		ExternalID:  m.grant.ExternalIDFor(c.Namespace),
		SessionName: SessionName(c.Namespace, c.Name),
		Duration:    d,
		AllowShort:  m.r.MaxDuration > 0 && m.r.MaxDuration < MinDuration,
		Region:      a.Region,
		Endpoint:    m.grant.Endpoint,
	}
	if p := a.SessionPolicy; p != nil && len(p.Raw) > 0 {
		req.SessionPolicy = string(p.Raw)
	}
	assume := m.r.assume
	if assume == nil {
		assume = AssumeRole
	}
	creds, err := assume(ctx, m.source, req)
	if err != nil {
		return minted{}, ReasonAssumeRoleFailed, redact(err, m.source.SecretAccessKey, m.source.AccessKeyID)
	}
	body, err := ProcessOutput(creds)
	if err != nil {
		return minted{}, ReasonAssumeRoleFailed, fmt.Errorf("render credentials: %w", err)
	}
	probed := *a
	probed.Endpoint = m.grant.Endpoint // the granted endpoint, as the mint used
	return minted{
		data:    awsSecretData(c, body),
		expires: creds.Expiration,
		what:    fmt.Sprintf("assumed %s as %s", a.RoleARN, req.SessionName),
		verify: func(ctx context.Context) (string, string, bool) {
			if m.r.verify != nil {
				return m.r.verify(ctx, &probed, creds)
			}
			return Verify(ctx, &probed, creds)
		},
	}, "", nil
}

// granted checks that src grants c — its namespace, and its role, endpoint and external ID
// or its service account — and returns the grant: the endpoint and external ID to use are
// the grant's, never a tenant's.
func (r *Refresher) granted(ctx context.Context, c *v1alpha1.Credential, src *corev1.Secret) (Grant, error) {
	g, err := ParseGrant(src)
	if err != nil {
		// What is malformed goes to the refresher's log, not to a tenant's status: the
		// grant's values are the platform's.
		r.Log.Info("a source Secret's grant is malformed: it grants nothing", "source", client.ObjectKeyFromObject(src), "error", err.Error())
		return Grant{}, fmt.Errorf("%w: source Secret %s/%s has a malformed grant; ask your platform team (the refresher's log says what)", ErrNotGranted, src.Namespace, src.Name)
	}
	var ns corev1.Namespace
	if g.Selector != nil {
		if err := r.Reader.Get(ctx, client.ObjectKey{Name: c.Namespace}, &ns); err != nil {
			return Grant{}, fmt.Errorf("read namespace %s: %w", c.Namespace, err)
		}
	}
	if cloud(c) == "gcp" {
		if e := c.Spec.GCP.ServiceAccountEmail; !validServiceAccountEmail.MatchString(e) {
			// As for a region: the API server refuses it, and it must not steer the call.
			return Grant{}, fmt.Errorf("%w: spec.gcp.serviceAccountEmail %q is not a service account's email", ErrNotGranted, e)
		}
		err = g.CheckGCP(c.Namespace, ns.Labels, c.Spec.GCP.ServiceAccountEmail)
	} else {
		if r := c.Spec.AWS.Region; r != "" && !validRegion.MatchString(r) {
			// The API server refuses such a region; a Credential stored before that rule, or
			// by other means, must not steer the STS call either.
			return Grant{}, fmt.Errorf("%w: spec.aws.region %q is not a region name", ErrNotGranted, r)
		}
		err = g.Check(c.Namespace, ns.Labels, c.Spec.AWS.RoleARN, c.Spec.AWS.Endpoint, c.Spec.AWS.ExternalID)
	}
	if err != nil {
		return Grant{}, fmt.Errorf("source Secret %s/%s may not be used: %w (grants are the source Secret's credgate.dev/ annotations, set by the platform team)",
			src.Namespace, src.Name, err)
	}
	return g, nil
}

// redact keeps secret values (source keys, tokens) out of an error that reaches a condition
// or a log line, whatever the server put in its message.
func redact(err error, secrets ...string) error {
	msg := err.Error()
	clean := msg
	for _, v := range secrets {
		if v != "" {
			clean = strings.ReplaceAll(clean, v, "[redacted]")
		}
	}
	if clean == msg {
		return err
	}
	return errors.New(clean)
}

// processOutput is the credential_process output format the AWS SDKs read.
type processOutput struct {
	Version         int    `json:"Version"`
	AccessKeyID     string `json:"AccessKeyId"`
	SecretAccessKey string `json:"SecretAccessKey"`
	SessionToken    string `json:"SessionToken"`
	Expiration      string `json:"Expiration,omitempty"`
}

// ProcessOutput renders creds in the credential_process output format.
func ProcessOutput(creds Credentials) ([]byte, error) {
	out := processOutput{Version: 1, AccessKeyID: creds.AccessKeyID, SecretAccessKey: creds.SecretAccessKey, SessionToken: creds.SessionToken}
	if !creds.Expiration.IsZero() {
		out.Expiration = creds.Expiration.UTC().Format(time.RFC3339)
	}
	return json.Marshal(out)
}

// awsSecretData is the managed Secret of assumeRole Credential c holding the
// credential_process output body.
func awsSecretData(c *v1alpha1.Credential, body []byte) map[string][]byte {
	return map[string][]byte{
		credential.AWSConfigKey:  credential.AWSConfigFile(c.Namespace, c.Name),
		credential.AWSProcessKey: body,
	}
}

// applySecret applies c's managed Secret with data (server-side apply: credgate needs neither
// to read nor to list Secrets in tenant namespaces). The Credential owns it.
func (r *Refresher) applySecret(ctx context.Context, c *v1alpha1.Credential, data map[string][]byte) error {
	return r.applySecretNamed(ctx, c, credential.ManagedSecretName(c), data)
}

func (r *Refresher) applySecretNamed(ctx context.Context, c *v1alpha1.Credential, name string, data map[string][]byte) error {
	s := corev1ac.Secret(name, c.Namespace).
		WithLabels(map[string]string{"app.kubernetes.io/managed-by": "credgate", "credgate.dev/credential": c.Name}).
		WithOwnerReferences(metav1ac.OwnerReference().
			WithAPIVersion(v1alpha1.GroupVersion.String()).WithKind("Credential").
			WithName(c.Name).WithUID(c.UID).WithController(true).WithBlockOwnerDeletion(false)).
		WithType(corev1.SecretTypeOpaque).
		WithData(data)
	if err := r.Client.Apply(ctx, s, client.FieldOwner(FieldOwner), client.ForceOwnership); err != nil {
		return fmt.Errorf("apply Secret %s/%s: %w", c.Namespace, name, err)
	}
	return nil
}

// withdraw empties the credentials of c's managed Secret (keeping the AWS config file): the
// SDKs of running pods find no credentials at their next credential_process run, and gcloud
// and the libraries that re-read the token file find none.
func (r *Refresher) withdraw(ctx context.Context, c *v1alpha1.Credential) error {
	return r.withdrawFrom(ctx, c, credential.ManagedSecretName(c))
}

// ownManagedSecret reports whether name is one the refresher could have kept c's credentials
// in: whoever may write a Credential's status must not point the refresher at another one's.
func ownManagedSecret(c *v1alpha1.Credential, name string) bool {
	return name == credential.ManagedSecretPrefixAWS+c.Name || name == credential.ManagedSecretPrefixGCP+c.Name
}

// withdrawFrom empties the credentials of the managed Secret name of c, minted for AWS or GCP
// as its name says.
func (r *Refresher) withdrawFrom(ctx context.Context, c *v1alpha1.Credential, name string) error {
	switch {
	case strings.HasPrefix(name, credential.ManagedSecretPrefixGCP):
		return r.applySecretNamed(ctx, c, name, gcpSecretData(AccessToken{}))
	case strings.HasPrefix(name, credential.ManagedSecretPrefixAWS):
		return r.applySecretNamed(ctx, c, name, awsSecretData(c, []byte{}))
	}
	return nil
}

// failed records a failed refresh. While the credentials already minted for the current
// spec are still valid for a minute, pods keep getting them (Ready stays True, saying that
// refreshes fail); otherwise Ready turns False with the reason, and admission refuses.
func (r *Refresher) failed(c *v1alpha1.Credential, reason string, err error, now time.Time) {
	cond := metav1.Condition{Type: v1alpha1.ConditionReady, Status: metav1.ConditionFalse, Reason: reason,
		Message: err.Error(), ObservedGeneration: c.Generation}
	ready := meta.FindStatusCondition(c.Status.Conditions, v1alpha1.ConditionReady)
	// A revoked grant or a removed source stops new pods at once; the sessions already
	// minted run out.
	if !revoked(reason) && ready != nil && ready.Status == metav1.ConditionTrue && ready.ObservedGeneration == c.Generation &&
		c.Status.ExpiresAt != nil && c.Status.ExpiresAt.After(now.Add(time.Minute)) {
		cond.Status = metav1.ConditionTrue
		cond.Reason = ReasonRefreshRetrying
		cond.Message = fmt.Sprintf("refresh failed (%s: %v); retrying; the current credentials expire at %s",
			reason, err, c.Status.ExpiresAt.UTC().Format(time.RFC3339))
	}
	meta.SetStatusCondition(&c.Status.Conditions, cond)
}

func (r *Refresher) clock() time.Time {
	if r.now != nil {
		return r.now()
	}
	return time.Now()
}
