package audit

import (
	"time"
)

// The fixture: 49 synthetic events between fixtureStart and fixtureEnd with
// hand-computed totals (see the expectations in the tests).
//
//	intercept 36: openai-api 16 (alice 8, bob 6, 10.0.0.20 2; 1 block, 1 redact),
//	              anthropic-api 10 (alice 4, carol 6; 1 alert),
//	              gemini-api 6 (bob), chatgpt 4 (carol, personal key; 2 alert, 2 block)
//	tunnel 5:     copilot 3 (10.0.0.20), 2 to a bank (not AI)
//	connect_block 2: deepseek-chat (alice, bob)
//	dns 4:        deepseek-chat 2, openai-api 1, example.com 1 (not AI)
//	sensor 2:     deepseek-chat (5 flows), gemini-api (3 flows)
var (
	fixturePeriodFrom = time.Date(2026, 11, 2, 0, 0, 0, 0, time.UTC)
	fixturePeriodTo   = time.Date(2026, 11, 4, 0, 0, 0, 0, time.UTC)
	fixtureStart      = time.Date(2026, 11, 2, 8, 0, 0, 0, time.UTC)
	policyA           = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	policyB           = "sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
	fpCorpOpenAI      = "sha256:c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0"
	fpPersOpenAI      = "sha256:9e9e9e9e9e9e9e9e9e9e9e9e9e9e9e9e"
	fpCorpAnthropic   = "sha256:a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1"
	fixturePrompt     = "TOP-SECRET-PROMPT-TEXT-never-in-reports"
)

func boolp(b bool) *bool { return &b }

type fx struct {
	kind, user, ip, provider, service, category string
	action, rule                                string
	fp                                          string
	corp                                        *bool
	tokIn, tokOut, reqB, respB                  int64
	status                                      int
	findings                                    map[string]int
	redactions                                  int
	flows, sensorBytes                          int64
	host                                        string
}

func fixtureEvents() []Event {
	var specs []fx
	rep := func(n int, f fx) {
		for i := 0; i < n; i++ {
			specs = append(specs, f)
		}
	}
	oa := fx{kind: KindIntercept, provider: "openai", service: "openai-api", category: "api", action: "allow",
		tokIn: 100, tokOut: 50, reqB: 1000, respB: 2000, status: 200, host: "api.openai.com"}
	alice := oa
	alice.user, alice.ip, alice.fp, alice.corp = "alice", "10.0.0.11", fpCorpOpenAI, boolp(true)
	rep(7, alice)
	aliceBlock := alice
	aliceBlock.action, aliceBlock.rule = "block", "no-cloud-keys"
	aliceBlock.tokIn, aliceBlock.tokOut, aliceBlock.respB, aliceBlock.status = 0, 0, 200, 403
	aliceBlock.findings = map[string]int{"aws_access_key": 1}
	rep(1, aliceBlock)
	bob := oa
	bob.user, bob.ip, bob.fp, bob.corp = "bob", "10.0.0.12", fpCorpOpenAI, boolp(true)
	rep(5, bob)
	bobRedact := bob
	bobRedact.action, bobRedact.rule, bobRedact.redactions = "redact", "mask-pii", 2
	bobRedact.findings = map[string]int{"email": 2}
	rep(1, bobRedact)
	anon := oa
	anon.ip = "10.0.0.20"
	rep(2, anon)

	an := fx{kind: KindIntercept, provider: "anthropic", service: "anthropic-api", category: "api", action: "allow",
		tokIn: 200, tokOut: 80, reqB: 1500, respB: 3000, status: 200, fp: fpCorpAnthropic, corp: boolp(true), host: "api.anthropic.com"}
	anA := an
	anA.user, anA.ip = "alice", "10.0.0.11"
	rep(4, anA)
	anC := an
	anC.user, anC.ip = "carol", "10.0.0.13"
	rep(5, anC)
	anCAlert := anC
	anCAlert.action, anCAlert.rule, anCAlert.findings = "alert", "pii-alert", map[string]int{"email": 1}
	rep(1, anCAlert)

	ge := fx{kind: KindIntercept, provider: "google", service: "gemini-api", category: "api", action: "allow",
		user: "bob", ip: "10.0.0.12", tokIn: 50, tokOut: 20, reqB: 500, respB: 800, status: 200, host: "generativelanguage.googleapis.com"}
	rep(6, ge)

	cg := fx{kind: KindIntercept, provider: "openai", service: "chatgpt", category: "chat", user: "carol", ip: "10.0.0.13",
		fp: fpPersOpenAI, corp: boolp(false), reqB: 700, host: "chatgpt.com"}
	cgAlert := cg
	cgAlert.action, cgAlert.rule, cgAlert.tokIn, cgAlert.tokOut, cgAlert.respB, cgAlert.status = "alert", "personal-account", 30, 40, 1200, 200
	rep(2, cgAlert)
	cgBlock := cg
	cgBlock.action, cgBlock.rule, cgBlock.respB, cgBlock.status = "block", "no-personal-accounts", 200, 403
	rep(1, cgBlock)
	cgBlock.findings = map[string]int{"credit_card": 1}
	rep(1, cgBlock)

	rep(3, fx{kind: KindTunnel, provider: "github", service: "copilot", category: "coding", ip: "10.0.0.20",
		reqB: 5000, respB: 20000, host: "copilot-proxy.githubusercontent.com"})
	rep(2, fx{kind: KindTunnel, ip: "10.0.0.20", reqB: 800, respB: 9000, host: "bank.example"})

	dsBlock := fx{kind: KindConnectBlock, provider: "deepseek", service: "deepseek-chat", category: "chat",
		action: "block", rule: "unsanctioned-ai", host: "chat.deepseek.com"}
	dsBlock.user, dsBlock.ip = "alice", "10.0.0.11"
	rep(1, dsBlock)
	dsBlock.user, dsBlock.ip = "bob", "10.0.0.12"
	rep(1, dsBlock)

	dns := fx{kind: KindDNS, provider: "deepseek", service: "deepseek-chat", category: "chat", host: "chat.deepseek.com"}
	dns.ip = "10.0.0.20"
	rep(1, dns)
	dns.ip = "10.0.0.13"
	rep(1, dns)
	rep(1, fx{kind: KindDNS, provider: "openai", service: "openai-api", category: "api", ip: "10.0.0.11", host: "api.openai.com"})
	rep(1, fx{kind: KindDNS, ip: "10.0.0.11", host: "example.com"})

	rep(1, fx{kind: KindSensor, provider: "deepseek", service: "deepseek-chat", category: "chat", ip: "10.0.0.30",
		flows: 5, sensorBytes: 40000, host: "chat.deepseek.com"})
	rep(1, fx{kind: KindSensor, provider: "google", service: "gemini-api", category: "api", ip: "10.0.0.31",
		flows: 3, sensorBytes: 9000, host: "generativelanguage.googleapis.com"})

	// Spread the events over the period in an interleaved order:
	// slot = i*10 mod n (10 is coprime with 49), 40 minutes apart.
	n := len(specs)
	out := make([]Event, n)
	for i, s := range specs {
		t := fixtureStart.Add(time.Duration((i*10)%n) * 40 * time.Minute)
		e := Event{
			ID: NewID(t), Time: t, Kind: s.kind,
			Client:   Client{IP: s.ip, Port: 40000 + i, User: s.user},
			Dest:     Dest{Host: s.host, Port: 443},
			Provider: s.provider, Service: s.service, Category: s.category,
			Findings: s.findings, Redactions: s.redactions,
		}
		if s.kind == KindIntercept {
			e.Endpoint, e.Model = "chat", "model-x"
			e.Request = &ReqInfo{Bytes: s.reqB, Parts: 2}
			e.Response = &RespInfo{Status: s.status, Bytes: s.respB, Tokens: Tokens{Input: s.tokIn, Output: s.tokOut}}
			e.Prompt = fixturePrompt
			e.Latency = &Latency{Upstream: 120, Total: 125, FirstByte: 80}
		}
		if s.kind == KindTunnel {
			e.Request = &ReqInfo{Bytes: s.reqB}
			e.Response = &RespInfo{Bytes: s.respB}
		}
		if s.action != "" {
			e.Decision = &Decision{Action: s.action, Rule: s.rule, Reason: "rule " + s.rule + " matched"}
			e.PolicyHash = policyA
			if !t.Before(time.Date(2026, 11, 3, 0, 0, 0, 0, time.UTC)) {
				e.PolicyHash = policyB
			}
		}
		if s.fp != "" {
			e.Account = &Account{KeyFingerprint: s.fp, Corporate: s.corp}
		}
		if s.kind == KindDNS {
			e.DNS = &DNSInfo{Name: s.host, QType: "A", Answers: []string{"203.0.113.7"}, Rcode: "NOERROR", Action: "forward"}
		}
		if s.kind == KindSensor {
			e.Sensor = &SensorInfo{Source: "sni", FirstSeen: t, LastSeen: t.Add(time.Minute), Flows: s.flows, Bytes: s.sensorBytes, Packets: 10 * s.flows}
		}
		out[i] = e
	}
	return out
}
