package policies

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/open-policy-agent/opa/v1/ast"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
)

// maxDepth bounds the nesting of a document parseJSON accepts, as encoding/json does.
const maxDepth = 10000

// parseJSON parses one JSON document straight into an OPA value: the object of every
// admission request goes into the policy input, and building OPA terms from the bytes, rather
// than from encoding/json's map[string]any, halves the work and the allocations. The result
// is the value ast.InterfaceToValue gives for the document decoded with UseNumber; the tests
// hold the two to that (TestParseJSON, FuzzParseJSON).
//
// BenchmarkJSON says why it is worth its lines (medians of 5 runs on the 2-core development
// machine, December 2026): the object of a pod the Job controller creates (4.0 KB), and a Job's
// whole sample input (canary/job-every-cloud.json, 9.4 KB), compact, parsed by
//
//	                                         pod: time, bytes, allocs    Job input: time, bytes, allocs
//	parseJSON                                126 µs   39 KB    469       387 µs    90 KB   1,138
//	ast.ValueFromReader                      326 µs   86 KB  1,354       769 µs   201 KB   2,998
//	util.UnmarshalJSON, ast.InterfaceToValue 357 µs   86 KB  1,354       692 µs   201 KB   2,998
//
// under half the time and bytes, and about a third of the allocations, of OPA's own paths.
func parseJSON(data []byte) (ast.Value, error) {
	return parseJSONReads(data, nil)
}

// parseJSONReads parses data as parseJSON does, but keeps of each object only the members in
// reads (nil: all of them), and of each element of an array what reads says of its elements
// (readSet.each; all of it unless said): the members no policy reads are checked and skipped,
// never built. What is kept is exactly parseJSON's value there.
func parseJSONReads(data []byte, reads *readSet) (ast.Value, error) {
	p := jsonParser{data: data, text: string(data)}
	t, err := p.value(0, reads)
	if err != nil {
		return nil, err
	}
	p.space()
	if p.pos < len(p.data) {
		return nil, p.errorf("unexpected %q after the document", p.data[p.pos])
	}
	return t.Value, nil
}

type jsonParser struct {
	data []byte
	// text is data as one string: a string token without escapes is a substring of it, not a
	// copy of its own.
	text string
	pos  int
	// slab holds the terms, allocated a block at a time rather than one by one.
	slab []ast.Term
	// members holds the members of the objects being parsed, innermost last: an object's are
	// copied into it when it ends, so one slice serves them all.
	members [][2]*ast.Term
	// elems holds the elements of the arrays being parsed, innermost last.
	elems []*ast.Term
	// lists holds the arrays' elements once they end, allocated a block at a time: each
	// array's is a slice of it, of exactly its length and capacity.
	lists []*ast.Term
}

// list returns terms as a slice of its own, from the lists block.
func (p *jsonParser) list(terms []*ast.Term) []*ast.Term {
	n := len(terms)
	if cap(p.lists)-len(p.lists) < n {
		p.lists = make([]*ast.Term, 0, max(n, 256))
	}
	start := len(p.lists)
	p.lists = append(p.lists, terms...)
	return p.lists[start : start+n : start+n]
}

// term returns a term for v from the slab. Appending within the slab's capacity never moves
// it, so the pointers handed out stay valid.
func (p *jsonParser) term(v ast.Value) *ast.Term {
	if len(p.slab) == cap(p.slab) {
		p.slab = make([]ast.Term, 0, 128)
	}
	p.slab = append(p.slab, ast.Term{Value: v})
	return &p.slab[len(p.slab)-1]
}

func (p *jsonParser) errorf(format string, args ...any) error {
	return fmt.Errorf("invalid JSON at offset %d: %s", p.pos, fmt.Sprintf(format, args...))
}

func (p *jsonParser) space() {
	for p.pos < len(p.data) {
		switch p.data[p.pos] {
		case ' ', '\t', '\n', '\r':
			p.pos++
		default:
			return
		}
	}
}

func (p *jsonParser) value(depth int, reads *readSet) (*ast.Term, error) {
	if depth > maxDepth {
		return nil, p.errorf("nested deeper than %d", maxDepth)
	}
	p.space()
	if p.pos >= len(p.data) {
		return nil, p.errorf("unexpected end of input")
	}
	switch c := p.data[p.pos]; {
	case c == '{':
		return p.object(depth, reads)
	case c == '[':
		return p.array(depth, reads.elems())
	case c == '"':
		s, err := p.string()
		if err != nil {
			return nil, err
		}
		if t, ok := commonValues[s]; ok {
			return t, nil
		}
		return p.term(ast.String(s)), nil
	case c == 't':
		return p.literal("true", ast.InternedTerm(true))
	case c == 'f':
		return p.literal("false", ast.InternedTerm(false))
	case c == 'n':
		return p.literal("null", ast.InternedNullTerm)
	case c == '-' || c >= '0' && c <= '9':
		return p.number()
	default:
		return nil, p.errorf("unexpected %q", c)
	}
}

// skip reads one value as value does, and as strictly, without building it.
func (p *jsonParser) skip(depth int) error {
	if depth > maxDepth {
		return p.errorf("nested deeper than %d", maxDepth)
	}
	p.space()
	if p.pos >= len(p.data) {
		return p.errorf("unexpected end of input")
	}
	var err error
	switch c := p.data[p.pos]; {
	case c == '{':
		err = p.each('}', "an object", func() error {
			if _, err := p.memberName(); err != nil {
				return err
			}
			return p.skip(depth + 1)
		})
	case c == '[':
		err = p.each(']', "an array", func() error { return p.skip(depth + 1) })
	case c == '"':
		_, err = p.string()
	case c == 't':
		_, err = p.literal("true", nil)
	case c == 'f':
		_, err = p.literal("false", nil)
	case c == 'n':
		_, err = p.literal("null", nil)
	case c == '-' || c >= '0' && c <= '9':
		var tok string
		if tok, err = p.numberToken(); err == nil && ast.InternedIntNumberTermFromString(tok) == nil {
			err = p.checkNumber(tok)
		}
	default:
		err = p.errorf("unexpected %q", c)
	}
	return err
}

// each reads the members of the object or array that starts at p.pos and ends with end,
// each by one: after '{' or '[', until its end, with ',' between.
func (p *jsonParser) each(end byte, what string, one func() error) error {
	p.pos++ // { or [
	p.space()
	if p.pos < len(p.data) && p.data[p.pos] == end {
		p.pos++
		return nil
	}
	for {
		p.space()
		if err := one(); err != nil {
			return err
		}
		p.space()
		if p.pos >= len(p.data) {
			return p.errorf("unexpected end of input in %s", what)
		}
		switch p.data[p.pos] {
		case ',':
			p.pos++
		case end:
			p.pos++
			return nil
		default:
			return p.errorf("expected ',' or '%c' in %s", end, what)
		}
	}
}

func (p *jsonParser) literal(word string, t *ast.Term) (*ast.Term, error) {
	if len(p.data)-p.pos < len(word) || string(p.data[p.pos:p.pos+len(word)]) != word {
		return nil, p.errorf("invalid literal")
	}
	p.pos += len(word)
	return t, nil
}

// object reads an object, keeping of it only the members in reads (nil: all of them).
func (p *jsonParser) object(depth int, reads *readSet) (*ast.Term, error) {
	base := len(p.members)
	defer func() { p.members = p.members[:base] }()
	err := p.each('}', "an object", func() error {
		k, err := p.memberName()
		if err != nil {
			return err
		}
		below, ok := reads.sub(k) // what is read of the member's value: nil for all of it
		if !ok {
			return p.skip(depth + 1)
		}
		v, err := p.value(depth+1, below)
		if err != nil {
			return err
		}
		key, ok := fieldNames()[k]
		if !ok {
			key = p.term(ast.String(k))
		}
		p.members = append(p.members, [2]*ast.Term{key, v})
		return nil
	})
	if err != nil {
		return nil, err
	}
	items := p.members[base:]
	if !repeats(items) {
		// NewObject holds the members in one block: one allocation, not one per member.
		return p.term(ast.NewObject(items...)), nil
	}
	// Insert, unlike NewObject, keeps one value for a repeated member name: the last, as
	// encoding/json does.
	o := ast.NewObjectWithCapacity(len(items))
	for _, kv := range items {
		o.Insert(kv[0], kv[1])
	}
	return p.term(o), nil
}

// repeats reports whether some member name of items is repeated, which no object the API server
// writes has. Pairs are compared up to a few members, a set built above: the cost stays linear.
func repeats(items [][2]*ast.Term) bool {
	if len(items) <= 16 {
		for i := 1; i < len(items); i++ {
			for j := range i {
				if items[i][0].Value.(ast.String) == items[j][0].Value.(ast.String) {
					return true
				}
			}
		}
		return false
	}
	seen := make(map[ast.String]struct{}, len(items))
	for _, kv := range items {
		k := kv[0].Value.(ast.String)
		if _, ok := seen[k]; ok {
			return true
		}
		seen[k] = struct{}{}
	}
	return false
}

// memberName reads an object member's name and the ':' after it.
func (p *jsonParser) memberName() (string, error) {
	if p.pos >= len(p.data) || p.data[p.pos] != '"' {
		return "", p.errorf("expected a member name")
	}
	k, err := p.string()
	if err != nil {
		return "", err
	}
	p.space()
	if p.pos >= len(p.data) || p.data[p.pos] != ':' {
		return "", p.errorf("expected ':' after a member name")
	}
	p.pos++
	return k, nil
}

// array reads an array, keeping of each element what each reads (nil: all of it).
func (p *jsonParser) array(depth int, each *readSet) (*ast.Term, error) {
	base := len(p.elems)
	defer func() { p.elems = p.elems[:base] }()
	err := p.each(']', "an array", func() error {
		v, err := p.value(depth+1, each)
		if err != nil {
			return err
		}
		p.elems = append(p.elems, v)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return p.term(ast.NewArray(p.list(p.elems[base:])...)), nil
}

// string reads a string token. One without escapes, control characters or invalid UTF-8 is
// taken as it is; any other is decoded by encoding/json, so escapes and replacement of
// invalid bytes are exactly its.
func (p *jsonParser) string() (string, error) {
	start := p.pos
	p.pos++ // "
	plain := true
	for p.pos < len(p.data) {
		c := p.data[p.pos]
		switch {
		case c == '"':
			p.pos++
			raw := p.data[start:p.pos]
			if plain {
				return p.text[start+1 : p.pos-1], nil
			}
			var s string
			if err := json.Unmarshal(raw, &s); err != nil {
				return "", p.errorf("invalid string: %v", err)
			}
			return s, nil
		case c == '\\':
			plain = false
			p.pos += 2
		case c < 0x20:
			return "", p.errorf("control character in a string")
		case c >= utf8.RuneSelf:
			r, size := utf8.DecodeRune(p.data[p.pos:])
			if r == utf8.RuneError && size == 1 {
				plain = false
			}
			p.pos += size
		default:
			p.pos++
		}
	}
	p.pos = len(p.data)
	return "", p.errorf("unterminated string")
}

var errNumber = errors.New("invalid number")

// number reads a number token, checked against JSON's grammar.
func (p *jsonParser) number() (*ast.Term, error) {
	tok, err := p.numberToken()
	if err != nil {
		return nil, err
	}
	if t := ast.InternedIntNumberTermFromString(tok); t != nil {
		return t, nil
	}
	v, err := ast.InterfaceToValue(json.Number(tok))
	if err != nil {
		return nil, p.errorf("%v", err)
	}
	return p.term(v), nil
}

// checkNumber refuses a number token as number does (one out of OPA's range, 1e999999), for
// skip: a member skipped is refused exactly when it would be parsed.
func (p *jsonParser) checkNumber(tok string) error {
	if _, err := ast.InterfaceToValue(json.Number(tok)); err != nil {
		return p.errorf("%v", err)
	}
	return nil
}

// numberToken reads a number token, checked against JSON's grammar.
func (p *jsonParser) numberToken() (string, error) {
	start := p.pos
	digits := func() int {
		n := 0
		for p.pos < len(p.data) && p.data[p.pos] >= '0' && p.data[p.pos] <= '9' {
			p.pos++
			n++
		}
		return n
	}
	if p.data[p.pos] == '-' {
		p.pos++
	}
	switch {
	case p.pos < len(p.data) && p.data[p.pos] == '0':
		p.pos++
	case digits() == 0:
		return "", p.errorf("%v", errNumber)
	}
	if p.pos < len(p.data) && p.data[p.pos] == '.' {
		p.pos++
		if digits() == 0 {
			return "", p.errorf("%v", errNumber)
		}
	}
	if p.pos < len(p.data) && (p.data[p.pos] == 'e' || p.data[p.pos] == 'E') {
		p.pos++
		if p.pos < len(p.data) && (p.data[p.pos] == '+' || p.data[p.pos] == '-') {
			p.pos++
		}
		if digits() == 0 {
			return "", p.errorf("%v", errNumber)
		}
	}
	return p.text[start:p.pos], nil
}

// commonValues are string values the API server writes into every pod, as shared terms:
// defaults of each container, and the projected volume of the service account's token. A
// shared term costs no allocation; each of these would cost one, several times per pod.
var commonValues = func() map[string]*ast.Term {
	m := map[string]*ast.Term{}
	for _, v := range []string{
		"/dev/termination-log", "File", "FallbackToLogsOnError", "IfNotPresent", "Always", "Never", "OnFailure", "TCP", "UDP",
		"/var/run/secrets/kubernetes.io/serviceaccount", "kube-root-ca.crt", "ca.crt", "token", "namespace", "metadata.namespace", "v1",
		"ClusterFirst", "default-scheduler", "PreemptLowerPriority", "Exists", "NoExecute", "NoSchedule",
		"node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable", "default",
	} {
		m[v] = ast.StringTerm(v)
	}
	return m
}()

// fieldNames are the member names of the objects credgate admits — every JSON field name of
// the Pod, Job and CronJob types, at any depth — as shared terms: most member names of an
// admitted object are among them, and a shared term costs no allocation (terms are immutable).
// Any other name gets its own.
var fieldNames = sync.OnceValue(func() map[string]*ast.Term {
	names := map[string]*ast.Term{}
	seen := map[reflect.Type]bool{}
	var walk func(reflect.Type)
	walk = func(t reflect.Type) {
		for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice || t.Kind() == reflect.Array || t.Kind() == reflect.Map {
			if t.Kind() == reflect.Map {
				walk(t.Key())
			}
			t = t.Elem()
		}
		if t.Kind() != reflect.Struct || seen[t] {
			return
		}
		seen[t] = true
		for i := range t.NumField() {
			f := t.Field(i)
			name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			if name != "" && name != "-" {
				if _, ok := names[name]; !ok {
					names[name] = ast.StringTerm(name)
				}
			}
			walk(f.Type)
		}
	}
	for _, v := range []any{corev1.Pod{}, batchv1.Job{}, batchv1.CronJob{}} {
		walk(reflect.TypeOf(v))
	}
	return names
})
