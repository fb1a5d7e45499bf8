package enforce

import "fmt"

// Action is what policy does with a request.
type Action string

// Actions, from mildest to strictest.
const (
	ActionAllow  Action = "allow"
	ActionAlert  Action = "alert"
	ActionRedact Action = "redact"
	ActionBlock  Action = "block"
	ActionQuota  Action = "quota" // refused because a quota is exhausted
)

// Decision is a policy verdict: what to do, which rule said so and why.
type Decision struct {
	Action Action `json:"action"`
	RuleID string `json:"rule"`
	Reason string `json:"reason"`
	// Message, when set, is the rule's text for the user (block pages and
	// provider-shaped errors); Reason stays the audit text.
	Message string `json:"message,omitempty"`
}

func (d Decision) String() string {
	if d.RuleID == "" {
		return fmt.Sprintf("%s: %s", d.Action, d.Reason)
	}
	return fmt.Sprintf("%s by %s: %s", d.Action, d.RuleID, d.Reason)
}
