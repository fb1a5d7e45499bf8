package audit

import "errors"

// Multi fans every event out to each of its sinks, in order. Each sink keeps
// its own non-blocking contract; Multi adds no buffering of its own.
type Multi []Sink

var _ Sink = Multi(nil)

// Write passes e to every sink.
func (m Multi) Write(e *Event) {
	for _, s := range m {
		s.Write(e)
	}
}

// Close closes every sink, also after an error, and joins the errors.
func (m Multi) Close() error {
	var errs []error
	for _, s := range m {
		if err := s.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
