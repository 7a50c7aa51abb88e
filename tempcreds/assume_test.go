package tempcreds

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestSessionName(t *testing.T) {
	for _, tt := range []struct{ ns, cred, want string }{
		{"ml-team", "s3-data", "credgate@ml-team.s3-data"},
		{"team_a", "aws.prod", "credgate@team_a.aws.prod"},
		{strings.Repeat("n", 63), "cred", "credgate@" + strings.Repeat("n", 55)},
	} {
		got := SessionName(tt.ns, tt.cred)
		if got != tt.want || !validSessionName.MatchString(got) {
			t.Errorf("SessionName(%q, %q) = %q (valid %t), want %q", tt.ns, tt.cred, got, validSessionName.MatchString(got), tt.want)
		}
	}
}

func TestBoundDuration(t *testing.T) {
	for _, tt := range []struct {
		in    time.Duration
		short bool
		want  time.Duration
		err   bool
	}{
		{0, false, time.Hour, false},
		{90 * time.Minute, false, 90 * time.Minute, false},
		{time.Minute, false, 0, true},
		{time.Minute, true, time.Minute, false},
		{13 * time.Hour, false, 0, true},
		{1500 * time.Millisecond, true, time.Second, false},
	} {
		got, err := boundDuration(tt.in, tt.short)
		if (err != nil) != tt.err || got != tt.want {
			t.Errorf("boundDuration(%s, %t) = %s, %v", tt.in, tt.short, got, err)
		}
		if err != nil && !errors.Is(err, ErrInvalid) {
			t.Errorf("error %v is not ErrInvalid", err)
		}
	}
}
