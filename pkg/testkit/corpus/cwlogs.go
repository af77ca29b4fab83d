package corpus

// Envelope is a CloudWatch Logs subscription envelope (what a subscription
// filter puts in one Firehose record or S3 object), written and read with
// encoding/json: an oracle independent of the decoders under test.
type Envelope struct {
	MessageType         string     `json:"messageType"`
	Owner               string     `json:"owner"`
	LogGroup            string     `json:"logGroup"`
	LogStream           string     `json:"logStream"`
	SubscriptionFilters []string   `json:"subscriptionFilters"`
	LogEvents           []LogEvent `json:"logEvents"`
	// PolicyLevel is set by account-level subscription policies only.
	PolicyLevel string `json:"policyLevel,omitempty"`
}

// LogEvent is one entry of an Envelope's logEvents.
type LogEvent struct {
	ID        string `json:"id"`
	Timestamp int64  `json:"timestamp"`
	Message   string `json:"message"`
}
