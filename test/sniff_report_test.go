package test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/aigress/aigress/audit"
	"github.com/aigress/aigress/test/mockllm"
)

// TestSniffThenReport is the "done when": a capture recorded with
// tcpdump while real curl talks TLS (HTTP/2) to fake AI hosts and a bank,
// then `aigress sniff --pcap` and `aigress report` / `aigress inventory`
// on the real binary give the right services, clients and counts.
func TestSniffThenReport(t *testing.T) {
	needTool(t, "tcpdump")
	needTool(t, "curl")
	tp := newTopo(t)
	const cli2IP = "10.200.0.3"
	// A second client address on the client namespace's interface.
	dev := strings.Fields(sh(t, "ip", "-n", tp.cli, "-o", "-4", "addr", "show", "to", cliIP))
	if len(dev) < 2 {
		t.Fatalf("no interface holds %s", cliIP)
	}
	sh(t, "ip", "-n", tp.cli, "addr", "add", cli2IP+"/24", "dev", dev[1])

	// Fake AI hosts (one address, told apart by SNI) and a bank, in the
	// upstream namespace.
	ai, err := mockllm.StartOn(listenIn(t, tp.up, aiIP+":443"), mockllm.Options{Hosts: []string{"api.openai.com", "api.anthropic.com"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ai.Close() })
	bank, err := mockllm.StartPlainTLSOn(listenIn(t, tp.up, bankIP+":443"), "bank.example")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { bank.Close() })

	// tcpdump on the gateway's LAN side, packet-buffered.
	dir := t.TempDir()
	pcap := filepath.Join(dir, "capture.pcap")
	dump := exec.Command("ip", inNS(tp.gw, "tcpdump", "-i", tp.vgw, "-n", "-U", "--immediate-mode", "-s", "0", "-w", pcap, "tcp", "port", "443")[1:]...)
	dumpErr, err := dump.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := dump.Start(); err != nil {
		t.Fatal(err)
	}
	stopped := false
	stopDump := func() {
		if stopped {
			return
		}
		stopped = true
		_ = dump.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { _ = dump.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = dump.Process.Kill()
			<-done
		}
	}
	t.Cleanup(stopDump)
	type started struct {
		ok  bool
		log string
	}
	ready := make(chan started, 2)
	go func() {
		sc := bufio.NewScanner(dumpErr)
		var lines []string
		for sc.Scan() {
			lines = append(lines, sc.Text())
			if strings.Contains(sc.Text(), "listening on") {
				ready <- started{ok: true}
			}
		}
		ready <- started{log: strings.Join(lines, "\n")}
	}()
	select {
	case r := <-ready:
		if !r.ok {
			t.Fatalf("tcpdump did not start:\n%s", r.log)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("tcpdump did not start within 15s")
	}

	// Client traffic: .2 calls OpenAI twice, Anthropic once and the bank
	// once; .3 calls OpenAI once. Every curl is its own TCP connection.
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	curl := func(from, host, ip, path string) {
		t.Helper()
		out, errOut, err := runCmd(t, ctx, nil, "ip", "netns", "exec", tp.cli, "curl", "-sS", "-k", "--http2", "--max-time", "10",
			"--interface", from, "--resolve", host+":443:"+ip, "-o", "/dev/null", "-w", "%{http_version}", "https://"+host+path)
		if err != nil || out != "2" {
			t.Fatalf("curl %s from %s: %v (http version %q)\n%s", host, from, err, out, errOut)
		}
	}
	curl(cliIP, "api.openai.com", aiIP, "/v1/models")
	curl(cliIP, "api.openai.com", aiIP, "/v1/models")
	curl(cliIP, "api.anthropic.com", aiIP, "/v1/models")
	curl(cliIP, "bank.example", bankIP, "/")
	curl(cli2IP, "api.openai.com", aiIP, "/v1/models")
	time.Sleep(200 * time.Millisecond) // the last FIN/ACKs
	stopDump()
	if got := len(ai.Requests()); got != 4 {
		t.Fatalf("fake AI host saw %d requests, want 4", got)
	}
	for _, r := range ai.Requests() {
		if r.Proto != "HTTP/2.0" {
			t.Fatalf("request over %s, want HTTP/2.0", r.Proto)
		}
	}
	if bank.Hits() != 1 {
		t.Fatalf("bank saw %d requests, want 1", bank.Hits())
	}
	if st, err := os.Stat(pcap); err != nil || st.Size() < 1000 {
		t.Fatalf("capture: %v %v", st, err)
	}

	data := filepath.Join(dir, "data")
	run := func(args ...string) string {
		t.Helper()
		out, errOut, err := runCmd(t, ctx, nil, aigressBin, args...)
		if err != nil {
			t.Fatalf("aigress %s: %v\n%s\n%s", strings.Join(args, " "), err, out, errOut)
		}
		return out
	}
	sum := run("sniff", "--pcap", pcap, "--data-dir", data)
	for _, want := range []string{"OpenAI API", "Anthropic API", "3 events;", "quic 0", "event store " + filepath.Join(data, "events.db") + ": written 3, dropped 0, errors 0"} {
		if !strings.Contains(sum, want) {
			t.Errorf("sniff summary lacks %q:\n%s", want, sum)
		}
	}

	t.Logf("aigress sniff:\n%s", sum)

	// Inventory: exact services, clients and flows.
	var inv audit.Inventory
	if err := json.Unmarshal([]byte(run("inventory", "--data-dir", data, "--format", "json")), &inv); err != nil {
		t.Fatal(err)
	}
	type invRow struct {
		Provider, Service string
		Clients, Sources  []string
		Flows             int64
		Status            string
	}
	var gotInv []invRow
	for _, s := range inv.Services {
		if s.Bytes <= 0 || s.FirstSeen.IsZero() || s.LastSeen.Before(s.FirstSeen) {
			t.Errorf("service %s: bytes %d, seen %v..%v", s.Service, s.Bytes, s.FirstSeen, s.LastSeen)
		}
		gotInv = append(gotInv, invRow{s.Provider, s.Service, s.Clients, s.Sources, s.SensorFlows, s.Status})
	}
	wantInv := []invRow{
		{"openai", "OpenAI API", []string{cliIP, cli2IP}, []string{"sensor"}, 3, "unknown"},
		{"anthropic", "Anthropic API", []string{cliIP}, []string{"sensor"}, 1, "unknown"},
	}
	if !reflect.DeepEqual(gotInv, wantInv) {
		t.Errorf("inventory\n got %+v\nwant %+v", gotInv, wantInv)
	}

	// Report (JSON): the same figures, collected by the sensor.
	reportJSON := filepath.Join(dir, "report.json")
	run("report", "--data-dir", data, "--from", "1h", "--to", "now", "--format", "json", "--out", reportJSON)
	raw, err := os.ReadFile(reportJSON)
	if err != nil {
		t.Fatal(err)
	}
	var rep audit.ReportData
	if err := json.Unmarshal(raw, &rep); err != nil {
		t.Fatal(err)
	}
	s := rep.Summary
	if s.Events != 3 || s.SensorFlows != 4 || s.Services != 2 || s.Clients != 2 || s.Requests != 0 || s.DNSQueries != 0 || s.Blocked != 0 {
		t.Errorf("summary %+v", s)
	}
	var coll []string
	for _, c := range rep.Collection {
		if c.Events > 0 {
			coll = append(coll, fmt.Sprintf("%s=%d", c.Source, c.Events))
		}
	}
	if !reflect.DeepEqual(coll, []string{"sensor=3"}) {
		t.Errorf("collection %+v", rep.Collection)
	}
	type svcRow struct {
		Service           string
		Activity          int64
		Clients           int
		Sources           []string
		Requests, Blocked int64
	}
	var gotSvc []svcRow
	for _, r := range rep.TopServices {
		gotSvc = append(gotSvc, svcRow{r.Service, r.Activity, r.Clients, r.Sources, r.Requests, r.Blocked})
	}
	wantSvc := []svcRow{{"OpenAI API", 3, 2, []string{"sensor"}, 0, 0}, {"Anthropic API", 1, 1, []string{"sensor"}, 0, 0}}
	if !reflect.DeepEqual(gotSvc, wantSvc) {
		t.Errorf("top services\n got %+v\nwant %+v", gotSvc, wantSvc)
	}
	if strings.Contains(string(raw), "bank.example") {
		t.Error("the bank is in the report")
	}

	// Report (HTML): one file naming the services, with its charts.
	reportHTML := filepath.Join(dir, "report.html")
	run("report", "--data-dir", data, "--from", "1h", "--to", "now", "--format", "html", "--out", reportHTML)
	html, err := os.ReadFile(reportHTML)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"<svg", "OpenAI API", "Anthropic API", cli2IP} {
		if !strings.Contains(string(html), want) {
			t.Errorf("HTML report lacks %q", want)
		}
	}
	if strings.Contains(string(html), "bank.example") {
		t.Error("the bank is in the HTML report")
	}
}
