package enforce

import (
	"fmt"
	"path"
	"sort"
	"strings"

	"github.com/aigress/aigress/classify"
)

// Rule IDs of decisions that no rule of the policy made.
const (
	RuleDefault       = "default"
	RuleUninspectable = "uninspectable"
	RulePersonal      = "accounts.personal"
	RuleConnect       = "connect"
)

// Input is everything Decide looks at.
type Input struct {
	Identity Identity
	Service  classify.Service
	Request  *classify.Request
	Findings []classify.PartFinding
	Account  AccountInfo
}

// Severity orders actions from mildest (0) to strictest.
func (a Action) Severity() int {
	switch a {
	case ActionAllow:
		return 0
	case ActionAlert:
		return 1
	case ActionRedact:
		return 2
	case ActionBlock:
		return 3
	case ActionQuota:
		return 4
	}
	return -1
}

// Refuses reports whether the action stops the request.
func (a Action) Refuses() bool { return a == ActionBlock || a == ActionQuota }

// UserMessage is the text shown to the user: Message when set, else Reason.
func (d Decision) UserMessage() string {
	if d.Message != "" {
		return d.Message
	}
	return d.Reason
}

func globAny(globs []string, s string) bool {
	s = strings.ToLower(s)
	for _, g := range globs {
		if ok, _ := path.Match(g, s); ok {
			return true
		}
	}
	return false
}

func anyGroup(want, have []string) bool {
	for _, w := range want {
		for _, h := range have {
			if w == h {
				return true
			}
		}
	}
	return false
}

// matchWho checks identity and service conditions (known at CONNECT time).
func (m *matcher) matchWho(id Identity, svc classify.Service) bool {
	if len(m.groups) > 0 && !anyGroup(m.groups, id.Groups) {
		return false
	}
	if len(m.users) > 0 && (id.User == "" || !globAny(m.users, id.User)) {
		return false
	}
	if len(m.providers) > 0 && !globAny(m.providers, svc.Provider) {
		return false
	}
	if len(m.services) > 0 && !globAny(m.services, svc.Service) {
		return false
	}
	if len(m.categories) > 0 && !globAny(m.categories, string(svc.Category)) {
		return false
	}
	return true
}

// requestLevel reports whether the matcher needs the request to decide.
func (m *matcher) requestLevel() bool {
	return len(m.models) > 0 || len(m.endpoints) > 0 || m.account != "" || m.findings != nil
}

func (m *matcher) matchRequest(req *classify.Request, acct AccountInfo) bool {
	model, endpoint := "", ""
	if req != nil {
		model, endpoint = req.Model, req.Endpoint
	}
	if len(m.models) > 0 && !globAny(m.models, model) {
		return false
	}
	if len(m.endpoints) > 0 && !globAny(m.endpoints, endpoint) {
		return false
	}
	if m.account != "" && m.account != acct.Class() {
		return false
	}
	return true
}

func (f *findingFilter) match(fd classify.Finding) bool {
	if fd.Confidence < f.minConf {
		return false
	}
	if len(f.types) == 0 && len(f.categories) == 0 {
		return true
	}
	return f.types[fd.Type] || f.categories[fd.Category]
}

// matched returns the findings the filter selects.
func (f *findingFilter) matched(fs []classify.PartFinding) []classify.PartFinding {
	var out []classify.PartFinding
	for _, fd := range fs {
		if f.match(fd.Finding) {
			out = append(out, fd)
		}
	}
	return out
}

// summary is "2 aws_access_key, 1 email" for reasons.
func summary(fs []classify.PartFinding) string {
	counts := map[string]int{}
	for _, f := range fs {
		counts[f.Type]++
	}
	keys := make([]string, 0, len(counts))
	for k := range counts {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%d %s", counts[k], k)
	}
	return strings.Join(parts, ", ")
}

// Decide applies the policy to a classified request.
//
// Rules come in two kinds. Access rules (no match.findings) are walked in
// order and the first that matches decides; with none, default_action
// does; a personal account meets accounts.personal_action before them.
// Data rules (with match.findings) are walked in order too, and the first
// that matches and selects at least one finding decides. An access block
// wins; otherwise the stricter of the two results is the decision (the
// data rule's on a tie). This keeps allow-lists and data handling
// independent: an allow rule does not switch redaction off, and a
// redaction does not let an unapproved model through.
// A request whose body could not be inspected gets the fail mode of its
// service: fail-closed blocks; fail-open goes on through the rules without
// findings and is raised to at least alert.
func (p *Policy) Decide(in Input) Decision {
	req := in.Request
	uninspectable := ""
	if req != nil {
		uninspectable = req.Uninspectable
	}
	if uninspectable != "" {
		mode := p.failModeFor(in.Service)
		if mode == ActionBlock {
			return Decision{Action: ActionBlock, RuleID: RuleUninspectable,
				Reason: fmt.Sprintf("request to %s cannot be inspected (%s) and policy fails closed", svcName(in.Service), uninspectable)}
		}
		in.Findings = nil
	}
	d := p.decideRules(in)
	if uninspectable != "" && d.Action == ActionAllow {
		d = Decision{Action: ActionAlert, RuleID: RuleUninspectable,
			Reason: fmt.Sprintf("request to %s passed uninspected (%s): policy fails open", svcName(in.Service), uninspectable)}
	}
	return d
}

func svcName(s classify.Service) string {
	switch {
	case s.Service != "":
		return s.Service
	case s.Provider != "":
		return s.Provider
	}
	return "an unknown service"
}

func (p *Policy) failModeFor(s classify.Service) Action {
	if a, ok := p.failPer[strings.ToLower(s.Service)]; ok {
		return a
	}
	if a, ok := p.failPer[strings.ToLower(s.Provider)]; ok {
		return a
	}
	return p.failDef
}

func (p *Policy) decideRules(in Input) Decision {
	access := p.decideAccess(in)
	if access.Action == ActionBlock {
		return access
	}
	data, ok := p.decideData(in)
	if ok && data.Action.Severity() >= access.Action.Severity() {
		return data
	}
	return access
}

// decideAccess walks the access rules (rules without findings).
func (p *Policy) decideAccess(in Input) Decision {
	// A personal account meets personal_action first when it blocks; a
	// milder personal_action (alert) must not let the request skip the
	// access rules, so the stricter of the two decides.
	var personal *Decision
	if p.personal != "" && p.personal != ActionAllow && in.Account.Class() == AccountPersonal {
		reason := p.doc.Accounts.PersonalReason
		if reason == "" {
			reason = fmt.Sprintf("personal AI accounts are not allowed for %s; use the corporate account", svcName(in.Service))
		}
		d := Decision{Action: p.personal, RuleID: RulePersonal, Reason: reason}
		if d.Action == ActionBlock {
			return d
		}
		personal = &d
	}
	d := Decision{Action: p.defAction, RuleID: RuleDefault, Reason: p.defaultReason(in)}
	for _, r := range p.rules {
		if r.m.findings != nil {
			continue
		}
		if r.m.matchWho(in.Identity, in.Service) && r.m.matchRequest(in.Request, in.Account) {
			d = Decision{Action: r.action, RuleID: r.id, Reason: p.ruleReason(r, in, nil), Message: r.message}
			break
		}
	}
	if personal != nil && personal.Action.Severity() > d.Action.Severity() {
		return *personal
	}
	return d
}

// decideData walks the data rules (rules with findings).
func (p *Policy) decideData(in Input) (Decision, bool) {
	if len(in.Findings) == 0 {
		return Decision{}, false
	}
	for _, r := range p.rules {
		if r.m.findings == nil {
			continue
		}
		if !r.m.matchWho(in.Identity, in.Service) || !r.m.matchRequest(in.Request, in.Account) {
			continue
		}
		hit := r.m.findings.matched(in.Findings)
		if len(hit) == 0 {
			continue
		}
		return Decision{Action: r.action, RuleID: r.id, Reason: p.ruleReason(r, in, hit), Message: r.message}, true
	}
	return Decision{}, false
}

func (p *Policy) ruleReason(r *rule, in Input, hit []classify.PartFinding) string {
	if r.reason != "" {
		if len(hit) > 0 {
			return r.reason + " (" + summary(hit) + ")"
		}
		return r.reason
	}
	model := ""
	if in.Request != nil && in.Request.Model != "" {
		model = " model " + in.Request.Model
	}
	switch {
	case len(hit) > 0:
		return "found " + summary(hit)
	case r.action == ActionBlock:
		return fmt.Sprintf("%s%s is not allowed by policy", svcName(in.Service), model)
	}
	return fmt.Sprintf("%s%s: %s", svcName(in.Service), model, r.action)
}

func (p *Policy) defaultReason(in Input) string {
	if p.defAction == ActionBlock {
		return fmt.Sprintf("%s is not on the allow-list", svcName(in.Service))
	}
	return "no rule matched"
}

// ConnectDecision decides at CONNECT time, before any TLS, whether to
// refuse a connection to host. svc and known come from the catalog
// (known is false for hosts that are not AI services). Only block and
// allow are returned: anything not certain to be blocked is allowed here
// and decided per request later.
//
// Order: connect.block (providers, services or host globs); then, for
// known AI services, the access rules walked in order on identity and
// service conditions only (a rule that also needs the request, such as a
// model allow-list, stops the walk: allow now, decide later); with no rule, block_unlisted_ai blocks a
// service that no rule names, and default_action block blocks the rest;
// finally, a known service that cannot be inspected (pinned) gets its fail
// mode.
func (p *Policy) ConnectDecision(id Identity, host string, svc classify.Service, known bool) Decision {
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	reason := func(def string) string {
		if p.doc.Connect.Reason != "" {
			return p.doc.Connect.Reason
		}
		return def
	}
	if globAny(p.connBlock, host) || known && (globAny(p.connBlock, svc.Provider) || globAny(p.connBlock, svc.Service)) {
		return Decision{Action: ActionBlock, RuleID: RuleConnect, Reason: reason(fmt.Sprintf("%s is blocked by policy", hostOr(svc, host, known)))}
	}
	if !known {
		return Decision{Action: ActionAllow, RuleID: RuleConnect, Reason: "not an AI service"}
	}
	allow := Decision{Action: ActionAllow, RuleID: RuleConnect, Reason: "decided per request"}
	decided := false
	for _, r := range p.rules {
		if r.m.findings != nil || !r.m.matchWho(id, svc) {
			continue
		}
		if r.m.requestLevel() {
			decided = true
			break
		}
		if r.action == ActionBlock {
			return Decision{Action: ActionBlock, RuleID: r.id, Reason: p.ruleReason(r, Input{Identity: id, Service: svc}, nil), Message: r.message}
		}
		decided = true
		break
	}
	if !decided {
		if p.doc.Connect.BlockUnlistedAI && !p.listed[strings.ToLower(svc.Provider)] && !p.listed[strings.ToLower(svc.Service)] {
			return Decision{Action: ActionBlock, RuleID: RuleConnect, Reason: reason(fmt.Sprintf("%s is not an approved AI service", svcName(svc)))}
		}
		if p.defAction == ActionBlock {
			return Decision{Action: ActionBlock, RuleID: RuleDefault, Reason: reason(fmt.Sprintf("%s is not on the allow-list", svcName(svc)))}
		}
	}
	if !svc.Inspect && p.failModeFor(svc) == ActionBlock {
		return Decision{Action: ActionBlock, RuleID: RuleUninspectable, Reason: fmt.Sprintf("%s cannot be inspected and policy fails closed", svcName(svc))}
	}
	return allow
}

func hostOr(svc classify.Service, host string, known bool) string {
	if known && svc.Service != "" {
		return svc.Service + " (" + host + ")"
	}
	return host
}

// OutputPolicy describes the response rules for the proxy's stream hook.
type OutputPolicy struct {
	// Enabled is false when no output rule exists: skip output scanning.
	Enabled bool
	// MayBlock is true when some output rule blocks: the proxy must hold
	// back WindowBytes of streamed output so it can still stop it.
	MayBlock bool
	// WindowBytes bounds how much output text may be held back.
	WindowBytes int
}

// OutputRules describes the response rules.
func (p *Policy) OutputRules() OutputPolicy {
	op := OutputPolicy{Enabled: len(p.outRules) > 0, WindowBytes: p.doc.Output.WindowBytes}
	for _, r := range p.outRules {
		if r.action == ActionBlock {
			op.MayBlock = true
		}
	}
	return op
}

// DecideOutput applies the output rules to findings in a model's answer:
// the first rule whose conditions hold and which selects at least one
// finding decides (alert or block); with none, allow.
func (p *Policy) DecideOutput(id Identity, svc classify.Service, findings []classify.Finding) Decision {
	for _, r := range p.outRules {
		if !r.m.matchWho(id, svc) {
			continue
		}
		var hit []classify.PartFinding
		for _, f := range findings {
			if r.f.match(f) {
				hit = append(hit, classify.PartFinding{Finding: f})
			}
		}
		if len(hit) == 0 {
			continue
		}
		reason := r.reason
		if reason == "" {
			reason = "model output contains"
		}
		return Decision{Action: r.action, RuleID: r.id, Reason: reason + " (" + summary(hit) + ")", Message: r.message}
	}
	return Decision{Action: ActionAllow, RuleID: RuleDefault, Reason: "no output rule matched"}
}
