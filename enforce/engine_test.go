package enforce

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sirupsen/logrus"
	logtest "github.com/sirupsen/logrus/hooks/test"
)

func TestEngineReload(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "p.yaml")
	write := func(s string) {
		t.Helper()
		if err := os.WriteFile(f, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(policyHead + "name: one\n")
	p, err := LoadFile(f)
	if err != nil {
		t.Fatal(err)
	}
	log, hook := logtest.NewNullLogger()
	e := NewEngine(p, log)
	reg := prometheus.NewRegistry()
	if err := e.RegisterMetrics(reg); err != nil {
		t.Fatal(err)
	}
	var swapped atomic.Int32
	e.OnSwap(func(*Policy) { swapped.Add(1) })

	write(policyHead + "name: two\n")
	if err := e.ReloadFile(f); err != nil || e.Current().Name() != "two" {
		t.Fatalf("reload: %v %s", err, e.Current().Name())
	}
	write(policyHead + "name: three\nrules:\n  - id: x\n    action: maybe\n")
	err = e.ReloadFile(f)
	if err == nil || !strings.Contains(err.Error(), "p.yaml:6:13") || e.Current().Name() != "two" {
		t.Fatalf("broken reload: %v, serving %s", err, e.Current().Name())
	}
	if ok, failed := e.Reloads(); ok != 1 || failed != 1 || swapped.Load() != 1 {
		t.Fatalf("counters %d %d %d", ok, failed, swapped.Load())
	}
	mfs, err := reg.Gather()
	if err != nil || len(mfs) != 1 || mfs[0].GetName() != "aigress_policy_reloads_total" {
		t.Fatalf("gathered %v %v", mfs, err)
	}
	for _, m := range mfs[0].GetMetric() {
		if v := m.GetCounter().GetValue(); v != 1 {
			t.Fatalf("%v = %v", m.GetLabel(), v)
		}
	}
	if hook.LastEntry() == nil || hook.LastEntry().Level != logrus.ErrorLevel {
		t.Fatal("failed reload not logged")
	}

	// Watch picks up a change and ignores a touch without change.
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { e.Watch(ctx, f, 10*time.Millisecond); close(done) }()
	time.Sleep(30 * time.Millisecond)
	write(policyHead + "name: four\n")
	deadline := time.Now().Add(5 * time.Second)
	for e.Current().Name() != "four" && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	<-done
	if e.Current().Name() != "four" {
		t.Fatalf("watch did not reload: %s", e.Current().Name())
	}
	e.Swap(p)
	if e.Current() != p {
		t.Fatal("swap")
	}
}
