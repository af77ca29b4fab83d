package ddlogs

// onSubmitted has the client call f each time the batcher took in n records
// of a Deliver call.
func onSubmitted(f func(n int)) Option { return func(c *Client) { c.obs.submitted = f } }

// onSealed has the client call f each time the batcher sealed a payload,
// with the reason (full, idle, linger or close) and its number of logs.
func onSealed(f func(reason string, logs int)) Option {
	return func(c *Client) { c.obs.sealed = f }
}

func init() { testPoison = true }
