package tempcreds

import (
	"context"
	"errors"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/credgate/credgate/api/v1alpha1"
)

func TestGlob(t *testing.T) {
	for _, tc := range []struct {
		pattern, s string
		want       bool
	}{
		{"arn:aws:iam::1:role/train", "arn:aws:iam::1:role/train", true},
		{"arn:aws:iam::1:role/train", "arn:aws:iam::1:role/trainer", false},
		{"arn:aws:iam::1:role/team-a-*", "arn:aws:iam::1:role/team-a-reader", true},
		{"arn:aws:iam::1:role/team-a-*", "arn:aws:iam::1:role/team-b-reader", false},
		{"arn:aws:iam::1:role/*", "arn:aws:iam::1:role/path/to/x", true},
		{"arn:aws:iam::?:role/x", "arn:aws:iam::1:role/x", true},
		{"arn:aws:iam::?:role/x", "arn:aws:iam::12:role/x", false},
		{"*", "", true},
		{"", "x", false},
		{"a*b*c", "axxbyyc", true},
		{"a*b*c", "axxbyy", false},
	} {
		if got := Glob(tc.pattern, tc.s); got != tc.want {
			t.Errorf("Glob(%q, %q) = %v, want %v", tc.pattern, tc.s, got, tc.want)
		}
	}
	// Bounded cost: a pathological pattern against a long ARN stays quadratic at worst.
	long := strings.Repeat("a", 2048)
	if Glob(strings.Repeat("*a", 100)+"b", long) {
		t.Error("matched")
	}
}

func TestGrantCheck(t *testing.T) {
	source := func(a map[string]string) *corev1.Secret {
		return &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "keys", Namespace: "credgate-refresher", Annotations: a}}
	}
	role := "arn:aws:iam::1:role/team-a-reader"
	for _, tc := range []struct {
		name       string
		grant      map[string]string
		ns         string
		labels     map[string]string
		endpoint   string
		externalID string
		wantErr    string // "" granted
	}{
		{name: "no annotations grant nothing", grant: nil, ns: "team-a", wantErr: "namespace team-a is not granted"},
		{name: "granted by name", grant: map[string]string{GrantNamespaces: "team-a, team-c", GrantRoleARNs: "arn:aws:iam::1:role/team-a-*"}, ns: "team-a"},
		{name: "another namespace", grant: map[string]string{GrantNamespaces: "team-a", GrantRoleARNs: "arn:aws:iam::1:role/*"}, ns: "team-b",
			wantErr: "namespace team-b is not granted"},
		{name: "granted by selector", grant: map[string]string{GrantNamespaceSelector: "team=a", GrantRoleARNs: "arn:aws:iam::1:role/*"},
			ns: "x", labels: map[string]string{"team": "a"}},
		{name: "selector does not match", grant: map[string]string{GrantNamespaceSelector: "team=a", GrantRoleARNs: "arn:aws:iam::1:role/*"},
			ns: "x", labels: map[string]string{"team": "b"}, wantErr: "namespace x is not granted"},
		{name: "role not granted", grant: map[string]string{GrantNamespaces: "team-a", GrantRoleARNs: "arn:aws:iam::1:role/team-b-*"}, ns: "team-a",
			wantErr: "is not among the roles it grants"},
		{name: "tenant endpoint for AWS keys", grant: map[string]string{GrantNamespaces: "team-a", GrantRoleARNs: "*"}, ns: "team-a",
			endpoint: "https://attacker.example", wantErr: "for AWS's STS only"},
		{name: "tenant endpoint not the granted one", grant: map[string]string{GrantNamespaces: "team-a", GrantRoleARNs: "*", GrantSTSEndpoint: "https://minio.storage:9000"},
			ns: "team-a", endpoint: "https://attacker.example", wantErr: "not the STS endpoint"},
		{name: "granted endpoint, normalised", grant: map[string]string{GrantNamespaces: "team-a", GrantRoleARNs: "*", GrantSTSEndpoint: "https://MinIO.storage:9000/"},
			ns: "team-a", endpoint: "https://minio.storage:9000"},
		{name: "the tenant's external ID", grant: map[string]string{GrantNamespaces: "team-a", GrantRoleARNs: "*", GrantExternalID: "platform-$(namespace)"},
			ns: "team-a", externalID: "team-b", wantErr: "externalID is not the one its grant sets"},
		{name: "an external ID without a granted one", grant: map[string]string{GrantNamespaces: "team-a", GrantRoleARNs: "*"},
			ns: "team-a", externalID: "team-a", wantErr: "externalID is not the one its grant sets"},
		{name: "the granted external ID", grant: map[string]string{GrantNamespaces: "team-a", GrantRoleARNs: "*", GrantExternalID: "platform-$(namespace)"},
			ns: "team-a", externalID: "platform-team-a"},
		{name: "granted endpoint, none in the Credential", grant: map[string]string{GrantNamespaces: "team-a", GrantRoleARNs: "*", GrantSTSEndpoint: "https://minio.storage:9000"},
			ns: "team-a", wantErr: "not the STS endpoint"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g, err := ParseGrant(source(tc.grant))
			if err != nil {
				t.Fatal(err)
			}
			err = g.Check(tc.ns, tc.labels, role, tc.endpoint, tc.externalID)
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.wantErr != "" && (err == nil || !errors.Is(err, ErrNotGranted) || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("error %v, want one containing %q", err, tc.wantErr)
			}
			if err != nil && (strings.Contains(err.Error(), "team-c") || strings.Contains(err.Error(), "team-b-*")) {
				t.Errorf("the message reveals what the source grants to others: %v", err)
			}
		})
	}
}

func TestParseGrantRefusesMalformed(t *testing.T) {
	for name, a := range map[string]map[string]string{
		"selector syntax":         {GrantNamespaceSelector: "team in (a"},
		"selector of everything":  {GrantNamespaceSelector: " "},
		"endpoint with user info": {GrantSTSEndpoint: "https://user:pw@minio:9000"},
		"endpoint scheme":         {GrantSTSEndpoint: "ftp://minio:9000"},
		"external ID characters":  {GrantExternalID: "team a"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := ParseGrant(&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Annotations: a}})
			if name == "selector of everything" {
				// A blank selector is no selector: it grants nothing rather than everything.
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil {
				t.Fatal("accepted")
			}
		})
	}
}

// A Credential in a namespace its source does not grant never reaches STS, and is not Ready
// with its own reason; a grant revoked after minting refuses new pods at once.
func TestRefresherEnforcesGrants(t *testing.T) {
	setGrant := func(h *harness, a map[string]string) {
		t.Helper()
		var s corev1.Secret
		if err := h.client.Get(context.Background(), client.ObjectKey{Namespace: "credgate-refresher", Name: "keys"}, &s); err != nil {
			t.Fatal(err)
		}
		s.Annotations = a
		if err := h.client.Update(context.Background(), &s); err != nil {
			t.Fatal(err)
		}
	}
	notGranted := func(h *harness) {
		t.Helper()
		ready := meta.FindStatusCondition(h.credential().Status.Conditions, v1alpha1.ConditionReady)
		if ready == nil || ready.Status != metav1.ConditionFalse || ready.Reason != ReasonSourceNotGranted {
			t.Fatalf("Ready: %+v", ready)
		}
	}
	t.Run("another team's source", func(t *testing.T) {
		h := newHarness(t, assumeRole())
		setGrant(h, map[string]string{GrantNamespaces: "team-a", GrantRoleARNs: "*"})
		if _, err := h.reconcile(); err == nil {
			t.Fatal("no error")
		}
		notGranted(h)
		if len(h.sts.calls) != 0 {
			t.Errorf("%d AssumeRole calls, want none", len(h.sts.calls))
		}
	})
	t.Run("a tenant's endpoint", func(t *testing.T) {
		a := assumeRole()
		a.Endpoint = "https://attacker.example"
		h := newHarness(t, a)
		_, _ = h.reconcile()
		notGranted(h)
		if len(h.sts.calls) != 0 {
			t.Errorf("%d AssumeRole calls, want none", len(h.sts.calls))
		}
	})
	t.Run("granted by namespace label", func(t *testing.T) {
		h := newHarness(t, assumeRole())
		setGrant(h, map[string]string{GrantNamespaceSelector: "team=ml", GrantRoleARNs: "arn:aws:iam::1:role/train"})
		if _, err := h.reconcile(); err != nil {
			t.Fatal(err)
		}
		if len(h.sts.calls) != 1 {
			t.Errorf("%d AssumeRole calls, want 1", len(h.sts.calls))
		}
	})
	t.Run("revoked after minting", func(t *testing.T) {
		h := newHarness(t, assumeRole())
		if _, err := h.reconcile(); err != nil {
			t.Fatal(err)
		}
		setGrant(h, map[string]string{GrantNamespaces: "other", GrantRoleARNs: "*"})
		// Long before the refresh is due, and with the minted credentials valid for most of
		// an hour: Ready turns False all the same.
		_, _ = h.reconcile()
		notGranted(h)
		if len(h.sts.calls) != 1 {
			t.Errorf("%d AssumeRole calls, want 1", len(h.sts.calls))
		}
		// The credentials minted under the grant are withdrawn from running pods.
		var managed corev1.Secret
		if err := h.client.Get(context.Background(), client.ObjectKey{Namespace: "ml", Name: "credgate-aws-s3"}, &managed); err != nil {
			t.Fatal(err)
		}
		if n := len(managed.Data["credentials.json"]); n != 0 || len(managed.Data["config"]) == 0 {
			t.Errorf("managed Secret after revocation: %d bytes of credentials, %d of config", n, len(managed.Data["config"]))
		}
	})
}

// A region that is no region name never steers the STS call, whatever let it be stored.
func TestRefresherRefusesMalformedRegion(t *testing.T) {
	a := assumeRole()
	a.Region = "x.evil.example/"
	h := newHarness(t, a)
	_, _ = h.reconcile()
	ready := meta.FindStatusCondition(h.credential().Status.Conditions, v1alpha1.ConditionReady)
	if ready == nil || ready.Reason != ReasonSourceNotGranted || !strings.Contains(ready.Message, "not a region name") {
		t.Fatalf("Ready: %+v", ready)
	}
	if len(h.sts.calls) != 0 {
		t.Errorf("%d AssumeRole calls, want none", len(h.sts.calls))
	}
}

// The external ID sent is the grant's, for the Credential's namespace; a tenant's own never is.
func TestRefresherSendsTheGrantedExternalID(t *testing.T) {
	h := newHarness(t, assumeRole())
	var s corev1.Secret
	if err := h.client.Get(context.Background(), client.ObjectKey{Namespace: "credgate-refresher", Name: "keys"}, &s); err != nil {
		t.Fatal(err)
	}
	s.Annotations[GrantExternalID] = "platform-$(namespace)"
	if err := h.client.Update(context.Background(), &s); err != nil {
		t.Fatal(err)
	}
	if _, err := h.reconcile(); err != nil {
		t.Fatal(err)
	}
	if len(h.sts.calls) != 1 || h.sts.calls[0].ExternalID != "platform-ml" {
		t.Fatalf("AssumeRole calls: %+v, want one with external ID platform-ml", h.sts.calls)
	}
}
