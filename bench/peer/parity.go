package main

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/credgate/credgate/review"
)

// decided is credgate's in-process decision of one sample, as each webhook makes it.
type decided struct {
	s   sample
	uid string
	// mut is the mutating webhook's decision; val the validating webhook's, of the pod as
	// the mutating one admitted it.
	mut, val *decision
}

// decideSamples decides every sample in process, mutating and validating, and checks that
// credgate decides what the sample says. withoutOwner strips the pods' ownerReferences.
func decideSamples(ctx context.Context, d *decider, base []byte, withoutOwner bool) ([]decided, error) {
	out := make([]decided, 0, len(samples))
	for i, s := range samples {
		ar, err := s.review(base, i, withoutOwner)
		if err != nil {
			return nil, err
		}
		mut, err := d.decide(ctx, ar, false)
		if err != nil {
			return nil, fmt.Errorf("sample %s: %w", s.Name, err)
		}
		if err := s.expect(&mut.Decision); err != nil {
			return nil, err
		}
		valAR, err := validatingReview(ar, &mut.Decision)
		if err != nil {
			return nil, fmt.Errorf("sample %s: %w", s.Name, err)
		}
		val, err := d.decide(ctx, valAR, true)
		if err != nil {
			return nil, fmt.Errorf("sample %s, validating: %w", s.Name, err)
		}
		if val.Decision.Denied() != mut.Decision.Denied() {
			return nil, fmt.Errorf("sample %s: the validating webhook decides otherwise than the mutating one: %v, then %v",
				s.Name, mut.Decision.Violations, val.Decision.Violations)
		}
		out = append(out, decided{s: s, uid: sampleUID(i), mut: mut, val: val})
	}
	return out, nil
}

// expect checks that d is what s says: refused by exactly its rules, or admitted with a patch.
func (s sample) expect(d *review.Decision) error {
	var rules []string
	for _, v := range d.Violations {
		rules = append(rules, v.Rule)
	}
	slices.Sort(rules)
	rules = slices.Compact(rules)
	want := slices.Sorted(slices.Values(s.Denied))
	switch {
	case !slices.Equal(rules, want):
		return fmt.Errorf("sample %s: credgate refuses it by %v, the sample says %v (violations: %v)", s.Name, rules, want, d.Violations)
	case !d.Denied() && (!d.Mutated || len(d.Patch) == 0):
		return fmt.Errorf("sample %s: admitted without a patch", s.Name)
	}
	return nil
}

// liveWait bounds how long parity waits for credgate serve to answer as credgate decides in
// process: its informer may not list a Credential created a moment ago yet.
const liveWait = 15 * time.Second

// checkParity checks every sample on both servers — OPA's violations against what credgate's
// policies found in the same input document, credgate serve's responses against the
// in-process decision — and fills in the targets' requests, in the order of the mix, each
// checking its response against the decision checked here.
func checkParity(ctx context.Context, ds []decided, mut, val, opa *target, http1 bool) ([]parityLine, error) {
	credgate, opaClient := newClient(mut.CA, http1), newClient(opa.CA, http1)
	defer credgate.CloseIdleConnections()
	defer opaClient.CloseIdleConnections()
	reqs := map[*target][]request{}
	var lines []parityLine
	for _, d := range ds {
		// The response of each server to the mutating input, checked here, is what every
		// response under load must be: the same bytes, or failing that the same decision (the
		// cheap comparison first, so that checking costs the generator little, and as little
		// for either server).
		var opaWant []byte
		for _, side := range []struct {
			what string
			dec  *decision
		}{{"mutating", d.mut}, {"validating", d.val}} {
			body, err := post(ctx, opaClient, opa.URL, side.dec.OPABody)
			if err != nil {
				return nil, fmt.Errorf("sample %s (%s input): OPA: %w", d.s.Name, side.what, err)
			}
			deny, warn, err := readOPA(body)
			if err != nil {
				return nil, fmt.Errorf("sample %s (%s input): %w", d.s.Name, side.what, err)
			}
			if diff := sameFindings(side.dec.Found, deny, warn); diff != "" {
				return nil, fmt.Errorf("parity: sample %s (%s input): %s", d.s.Name, side.what, diff)
			}
			if opaWant == nil {
				opaWant = body
			}
		}
		found := d.mut.Found
		reqs[opa] = append(reqs[opa], request{Sample: d.s.Name, Body: d.mut.OPABody, Check: func(body []byte) error {
			if bytes.Equal(body, opaWant) {
				return nil
			}
			deny, warn, err := readOPA(body)
			if err != nil {
				return err
			}
			if diff := sameFindings(found, deny, warn); diff != "" {
				return fmt.Errorf("another decision than the sample's: %s", diff)
			}
			return nil
		}})
		for _, side := range []struct {
			t   *target
			dec *decision
		}{{mut, d.mut}, {val, d.val}} {
			want, live, err := liveVerdict(ctx, credgate, side.t.URL, side.dec, d.uid)
			if err != nil {
				return nil, fmt.Errorf("parity: sample %s, %s: %w", d.s.Name, side.t.Name, err)
			}
			uid := d.uid
			reqs[side.t] = append(reqs[side.t], request{Sample: d.s.Name, Body: side.dec.Review, Check: func(body []byte) error {
				if bytes.Equal(body, want) {
					return nil
				}
				got, err := readVerdict(body, uid)
				if err != nil {
					return err
				}
				if diff := live.same(got); diff != "" {
					return fmt.Errorf("another decision than the sample's: %s", diff)
				}
				return nil
			}})
		}
		lines = append(lines, parityLine{Sample: d.s.Name, Decision: describe(d)})
	}
	for _, t := range []*target{mut, val, opa} {
		for _, i := range mix() {
			t.Requests = append(t.Requests, reqs[t][i])
		}
	}
	return lines, nil
}

// liveVerdict sends dec's review to credgate serve at url until it answers as credgate decided
// in process (for at most liveWait), and returns the answer, as sent and as read.
func liveVerdict(ctx context.Context, hc *http.Client, url string, dec *decision, uid string) ([]byte, verdict, error) {
	var diff string
	for deadline := time.Now().Add(liveWait); ; {
		body, err := post(ctx, hc, url, dec.Review)
		if err != nil {
			return nil, verdict{}, err
		}
		got, err := readVerdict(body, uid)
		if err != nil {
			return nil, verdict{}, err
		}
		if diff = dec.Verdict.same(got); diff == "" {
			return body, got, nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return nil, verdict{}, fmt.Errorf("credgate serve answers otherwise than credgate decides in process: %s", diff)
		}
		fmt.Fprintf(os.Stderr, "   (credgate serve does not answer as decided yet, retrying: %s)\n", diff)
		time.Sleep(500 * time.Millisecond)
	}
}

// describe says what both sides found of a sample, for the report.
func describe(d decided) string {
	dec := d.mut.Decision
	var b strings.Builder
	if dec.Denied() {
		var rules []string
		for _, v := range dec.Violations {
			rules = append(rules, v.Rule)
		}
		slices.Sort(rules)
		b.WriteString("refused: " + strings.Join(slices.Compact(rules), ", "))
	} else {
		fmt.Fprintf(&b, "admitted, %d patch operations", len(dec.Patch))
		var warned []string
		for _, v := range dec.Warned {
			warned = append(warned, v.Rule)
		}
		slices.Sort(warned)
		if len(warned) > 0 {
			b.WriteString(", warned: " + strings.Join(slices.Compact(warned), ", "))
		}
	}
	fmt.Fprintf(&b, "; OPA finds the same (deny %d, warn %d), on the mutating and the validating input", len(d.mut.Found.Deny), len(d.mut.Found.Warn))
	return b.String()
}
