package sniff

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The end-to-end test re-executes the test binary as the fake AI server
// inside a network namespace.
const helperEnv = "AIGRESS_SNIFF_TEST_SERVER"

func TestMain(m *testing.M) {
	if addr := os.Getenv(helperEnv); addr != "" {
		runTestServer(addr)
		return
	}
	os.Exit(m.Run())
}

// runTestServer serves HTTPS (HTTP/2) on addr:443 and HTTP on addr:80
// until killed.
func runTestServer(addr string) {
	cert := selfSignedCert("api.openai.com", "api.anthropic.com", "bank.example")
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, `{"object":"list","data":[],"proto":%q}`, r.Proto)
	})
	ln, err := tls.Listen("tcp", net.JoinHostPort(addr, "443"), &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{"h2", "http/1.1"}})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	plain, err := net.Listen("tcp", net.JoinHostPort(addr, "80"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Println("ready")
	_ = (&http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}).Serve(plain)
}

func selfSignedCert(names ...string) tls.Certificate {
	return selfSigned(panicTB{}, names...)
}

// panicTB lets the helper process reuse selfSigned.
type panicTB struct{ testing.TB }

func (panicTB) Helper()               {}
func (panicTB) Fatal(args ...any)     { panic(fmt.Sprint(args...)) }
func (panicTB) Fatalf(string, ...any) { panic("fatal") }

func run(t *testing.T, name string, args ...string) {
	t.Helper()
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}

func TestCaptureEndToEnd(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root for network namespaces and tcpdump (euid != 0)")
	}
	for _, b := range []string{"ip", "tcpdump", "curl"} {
		if _, err := exec.LookPath(b); err != nil {
			t.Skipf("%s not installed (test/setup.d/sniff.sh installs it)", b)
		}
	}
	n := os.Getpid() % 1000
	cns, sns := fmt.Sprintf("snfc%d", n), fmt.Sprintf("snfs%d", n)
	cveth, sveth := fmt.Sprintf("snfc%dv", n), fmt.Sprintf("snfs%dv", n)
	sub := fmt.Sprintf("10.231.%d", n%250)
	clientIP, serverIP := sub+".2", sub+".1"

	run(t, "ip", "netns", "add", cns)
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", cns).Run() })
	run(t, "ip", "netns", "add", sns)
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", sns).Run() })
	run(t, "ip", "link", "add", cveth, "type", "veth", "peer", "name", sveth)
	t.Cleanup(func() { _ = exec.Command("ip", "link", "del", cveth).Run() })
	run(t, "ip", "link", "set", cveth, "netns", cns)
	run(t, "ip", "link", "set", sveth, "netns", sns)
	run(t, "ip", "-n", cns, "addr", "add", clientIP+"/24", "dev", cveth)
	run(t, "ip", "-n", sns, "addr", "add", serverIP+"/24", "dev", sveth)
	for _, ns := range []string{cns, sns} {
		run(t, "ip", "-n", ns, "link", "set", "lo", "up")
	}
	run(t, "ip", "-n", cns, "link", "set", cveth, "up")
	run(t, "ip", "-n", sns, "link", "set", sveth, "up")

	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()

	// The server: this test binary, in the server namespace.
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	srv := exec.CommandContext(ctx, "ip", "netns", "exec", sns, self)
	srv.Env = append(os.Environ(), helperEnv+"="+serverIP)
	srvOut, _ := srv.StdoutPipe()
	srv.Stderr = os.Stderr
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Process.Kill(); _ = srv.Wait() })
	if line, _ := bufio.NewReader(srvOut).ReadString('\n'); strings.TrimSpace(line) != "ready" {
		t.Fatalf("server: %q", line)
	}

	// tcpdump in the client namespace.
	pcap := filepath.Join(t.TempDir(), "capture.pcap")
	td := exec.CommandContext(ctx, "ip", "netns", "exec", cns, "tcpdump", "-i", cveth, "--immediate-mode", "-U", "-n", "-s", "0", "-Z", "root", "-w", pcap)
	tdErr, _ := td.StderrPipe()
	if err := td.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = td.Process.Kill(); _ = td.Wait() })
	tdLines := bufio.NewReader(tdErr)
	for {
		line, err := tdLines.ReadString('\n')
		if err != nil {
			t.Fatalf("tcpdump did not start: %v", err)
		}
		if strings.Contains(line, "listening on") {
			break
		}
	}
	tdDone := make(chan string, 1)
	go func() { b, _ := io.ReadAll(tdLines); tdDone <- string(b) }()

	curl := func(args ...string) {
		t.Helper()
		full := append([]string{"netns", "exec", cns, "curl", "-sS", "--max-time", "10", "-o", "/dev/null"}, args...)
		if out, err := exec.CommandContext(ctx, "ip", full...).CombinedOutput(); err != nil {
			t.Fatalf("curl %v: %v\n%s", args, err, out)
		}
	}
	for i := 0; i < 2; i++ {
		curl("-k", "--http2", "--resolve", "api.openai.com:443:"+serverIP, "https://api.openai.com/v1/models")
	}
	curl("-k", "--http2", "--resolve", "api.anthropic.com:443:"+serverIP, "https://api.anthropic.com/v1/models")
	curl("-k", "--http2", "--resolve", "bank.example:443:"+serverIP, "https://bank.example/")
	curl("--resolve", "api.openai.com:80:"+serverIP, "http://api.openai.com/v1/models")

	time.Sleep(200 * time.Millisecond) // let the last FIN/ACKs reach tcpdump
	_ = td.Process.Signal(syscall.SIGINT)
	tdTail := <-tdDone
	_ = td.Wait()
	t.Logf("tcpdump: %s", strings.TrimSpace(tdTail))

	f, err := os.Open(pcap)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var c collector
	s := newTestSensor(&c, nil)
	if err := s.ReadPcap(ctx, f); err != nil {
		t.Fatal(err)
	}
	s.Flush()
	type flows struct {
		Client, Service, Source, Host string
		Flows                         int64
	}
	var got []flows
	for _, e := range c.events {
		got = append(got, flows{e.Client.IP, e.Service, e.Sensor.Source, e.Dest.Host, e.Sensor.Flows})
		if e.Sensor.Bytes <= 0 || e.Sensor.Packets <= 0 || e.Dest.IP != serverIP {
			t.Errorf("event %+v / %+v", e.Dest, e.Sensor)
		}
	}
	want := []flows{
		{clientIP, "Anthropic API", SourceSNI, "api.anthropic.com", 1},
		{clientIP, "OpenAI API", SourceHTTPHost, "api.openai.com", 1},
		{clientIP, "OpenAI API", SourceSNI, "api.openai.com", 2},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("events\n got %+v\nwant %+v\nstats %+v", got, want, s.Stats())
	}
	if st := s.Stats(); st.SNIFound != 4 || st.HTTPHosts != 1 || st.Malformed != 0 {
		t.Errorf("stats %+v", st)
	}
}
