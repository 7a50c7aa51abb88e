package audit_test

import (
	"path/filepath"
	"testing"

	"github.com/credgate/credgate/audit"
)

// benchLine is about the size of a real denial record.
var benchLine = []byte(`{"v":1,"time":"2026-11-23T10:00:00Z","event":"admission_denied","requestUID":"5b0d1c6e-3f1a-4f0b-9a57-0c1d2e3f4a02","dryRun":false,"operation":"CREATE","user":"alice@example.com","groups":["team-a","system:authenticated"],"namespace":"ml-team","kind":"Job","name":"train-42","owner":{"kind":"CronJob","name":"nightly"},"credentials":["aws-admin","wandb"],"violations":[{"rule":"admin-scoped-credential","credential":"aws-admin","message":"credential aws-admin: its access.policyDocument allows every action on every resource (or iam:*); scope its statements to the actions and resources the job needs","action":"deny"}],"enforcement":"deny","policyRevision":"sha256:cd92d712a5391f0e"}`)

// BenchmarkFileSink measures a durable write (write and fsync) of one record: alone, where
// every record pays a whole fsync, and from concurrent writers, where group commit shares an
// fsync among the records waiting for it. records/s is the throughput.
func BenchmarkFileSink(b *testing.B) {
	for _, c := range []struct {
		name    string
		writers int // per GOMAXPROCS; 0 is one writer
	}{{"writers=1", 0}, {"writers=8xGOMAXPROCS", 8}, {"writers=64xGOMAXPROCS", 64}} {
		b.Run(c.name, func(b *testing.B) {
			s, err := audit.OpenFile(filepath.Join(b.TempDir(), "audit.log"), audit.FileOptions{})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			b.SetBytes(int64(len(benchLine)) + 1)
			b.ReportAllocs()
			if c.writers == 0 {
				for b.Loop() {
					if err := s.Write(b.Context(), benchLine); err != nil {
						b.Fatal(err)
					}
				}
			} else {
				b.SetParallelism(c.writers)
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						if err := s.Write(b.Context(), benchLine); err != nil {
							b.Error(err)
							return
						}
					}
				})
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
		})
	}
}
