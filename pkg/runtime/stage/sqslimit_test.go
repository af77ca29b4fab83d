package stage

import (
	"context"
	"encoding/base64"
	"errors"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gwpipe/gwpipe/pkg/record"
)

// sizedBatch is a batch of two records, the second of n incompressible
// bytes (a fixed seed), and the size of its payload in base64.
func sizedBatch(t *testing.T, n int) (*record.Batch, int) {
	t.Helper()
	r := rand.New(rand.NewPCG(1, 2))
	msg := make([]byte, n)
	for i := range msg {
		msg[i] = byte(r.Uint32())
	}
	b := &record.Batch{ID: "b", Origin: &record.Origin{Source: "test"}, Records: []record.Record{
		{EventID: "small", Message: []byte("x")}, {EventID: "large", Message: msg}}}
	raw, err := EncodeBatch(b)
	require.NoError(t, err)
	return b, base64.StdEncoding.EncodedLen(len(raw))
}

// TestSQSMessagesFitTheSNSLimit: SNS counts a message's attributes in its
// 256 KiB (watermill-aws sends the message's UUID as one), so a batch whose
// payload alone fits but whose attributes take it over the limit is split,
// not published for SNS to refuse ("Message too long": the stage's input,
// or the Firehose request, failed again on every retry).
func TestSQSMessagesFitTheSNSLimit(t *testing.T) {
	c := claimCodec{t: &SQS{cfg: SQSConfig{MessageLimit: SNSMessageLimit}}}
	// The record size whose payload is just over the limit.
	lo, hi := 1, SNSMessageLimit
	for lo < hi {
		mid := (lo + hi) / 2
		if _, size := sizedBatch(t, mid); size > SNSMessageLimit {
			hi = mid
		} else {
			lo = mid + 1
		}
	}
	inWindow := 0
	for n := lo - 80; n < lo+5; n++ {
		b, size := sizedBatch(t, n)
		msg, err := c.Marshal(context.Background(), b)
		if err != nil {
			require.True(t, errors.Is(err, ErrTooLarge), "%d bytes: %v", n, err)
			continue
		}
		if size > SNSMessageLimit-snsAttributeBytes(msg.UUID) {
			inWindow++
		}
		assert.LessOrEqual(t, len(msg.Payload)+len(msg.UUID)+len("_watermill_message_uuid")+len("String"), SNSMessageLimit,
			"a %d-byte payload with its attributes is over SNS's limit", len(msg.Payload))
	}
	assert.Zero(t, inWindow)
}

type capturePublisher struct {
	message.Publisher
	got []*message.Message
}

func (c *capturePublisher) Publish(_ string, msgs ...*message.Message) error {
	c.got = append(c.got, msgs...)
	return nil
}

// TestSNSPublisherCountsAttributesAndDropsTheReceipt: a message received
// and published again (a dead letter keeps the received message's
// metadata) goes without its receipt handle, which means nothing to another
// worker, and one whose attributes take it over SNS's limit is refused with
// its size rather than by SNS.
func TestSNSPublisherCountsAttributesAndDropsTheReceipt(t *testing.T) {
	inner := &capturePublisher{}
	p := snsPublisher{inner, 1000}
	received := message.NewMessage("u1", []byte("batch"))
	received.Metadata.Set(receiptKey, strings.Repeat("r", 500))
	received.Metadata.Set("reason", "intake refused it")
	require.NoError(t, p.Publish("dlq", received))
	require.Len(t, inner.got, 1)
	assert.NotContains(t, inner.got[0].Metadata, receiptKey)
	assert.Equal(t, "intake refused it", inner.got[0].Metadata.Get("reason"))
	assert.Equal(t, strings.Repeat("r", 500), received.Metadata.Get(receiptKey), "the received message is left as it is")

	big := message.NewMessage("u2", []byte(strings.Repeat("x", 900)))
	big.Metadata.Set("reason", strings.Repeat("y", 100))
	err := p.Publish("dlq", big)
	require.ErrorIs(t, err, ErrTooLarge)
	assert.Len(t, inner.got, 1, "not sent")
}
