package audit

import "time"

// row is the scalar projection of an Event: the columns of the events table,
// and the input of the inventory aggregation. Building the inventory from
// rows (not decoded JSON) lets the store scan millions of events quickly.
type row struct {
	ID          string
	TimeMS      int64
	Kind        string
	ClientIP    string
	User        string
	Provider    string
	Service     string
	Category    string
	Endpoint    string
	Model       string
	DestHost    string
	Action      string
	Rule        string
	TokensIn    int64
	TokensOut   int64
	ReqBytes    int64
	RespBytes   int64
	Status      int
	KeyFP       string
	Corporate   *bool
	PolicyHash  string
	Redactions  int
	Findings    int
	Flows       int64
	SensorBytes int64
}

func rowOf(e *Event) row {
	r := row{
		ID:         e.ID,
		TimeMS:     e.Time.UnixMilli(),
		Kind:       e.Kind,
		ClientIP:   e.Client.IP,
		User:       e.Client.User,
		Provider:   e.Provider,
		Service:    e.Service,
		Category:   e.Category,
		Endpoint:   e.Endpoint,
		Model:      e.Model,
		DestHost:   e.Dest.Host,
		PolicyHash: e.PolicyHash,
		Redactions: e.Redactions,
	}
	if r.DestHost == "" {
		r.DestHost = e.Dest.SNI
	}
	if e.Decision != nil {
		r.Action, r.Rule = e.Decision.Action, e.Decision.Rule
	}
	if e.Request != nil {
		r.ReqBytes = e.Request.Bytes
	}
	if e.Response != nil {
		r.RespBytes = e.Response.Bytes
		r.Status = e.Response.Status
		r.TokensIn = e.Response.Tokens.Input
		r.TokensOut = e.Response.Tokens.Output
	}
	if e.Account != nil {
		r.KeyFP = e.Account.KeyFingerprint
		r.Corporate = e.Account.Corporate
	}
	for _, n := range e.Findings {
		r.Findings += n
	}
	if e.Sensor != nil {
		r.Flows = e.Sensor.Flows
		r.SensorBytes = e.Sensor.Bytes
	}
	return r
}

func (r *row) time() time.Time { return time.UnixMilli(r.TimeMS).UTC() }
