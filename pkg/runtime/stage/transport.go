package stage

import (
	"cmp"
	"context"
	"errors"
	"fmt"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/pubsub/gochannel"

	"github.com/gwpipe/gwpipe/pkg/record"
)

// Transport is the pub/sub that joins stages, with the codec that puts a
// batch into a message and back.
type Transport interface {
	Publisher() message.Publisher
	// Subscriber returns a subscriber for one consumer group (a stage name):
	// every group receives every message of a topic once.
	Subscriber(group string) (message.Subscriber, error)
	Codec() Codec
	// InProcess reports whether the source's acknowledgement can travel with
	// the batch (see record.Batch.Ack). Durable transports acknowledge each
	// hop after the output is published instead.
	InProcess() bool
	Close() error
}

// Codec turns batches into messages and back.
type Codec interface {
	Marshal(ctx context.Context, b *record.Batch) (*message.Message, error)
	Unmarshal(msg *message.Message) (*record.Batch, error)
}

// Memory is the in-process transport: Watermill's GoChannel, with the batch
// itself carried in the message context, so nothing is copied or encoded.
//
// GoChannel gives every subscriber of a topic every message and applies no
// back-pressure (BlockPublishUntilSubscriberAck would serialise the topic);
// the Runtime bounds in-flight batches itself.
type Memory struct {
	gc *gochannel.GoChannel
}

// NewMemory returns the in-process transport.
func NewMemory(logger watermill.LoggerAdapter) *Memory {
	return &Memory{gc: gochannel.NewGoChannel(gochannel.Config{PreserveContext: true}, logger)}
}

func (m *Memory) Publisher() message.Publisher                  { return m.gc }
func (m *Memory) Subscriber(string) (message.Subscriber, error) { return m.gc, nil }
func (m *Memory) Codec() Codec                                  { return memoryCodec{} }
func (m *Memory) InProcess() bool                               { return true }
func (m *Memory) Close() error                                  { return m.gc.Close() }

type batchKey struct{}

type memoryCodec struct{}

func (memoryCodec) Marshal(ctx context.Context, b *record.Batch) (*message.Message, error) {
	msg := message.NewMessageWithContext(context.WithValue(context.WithoutCancel(ctx), batchKey{}, b), watermill.NewUUID(), nil)
	return msg, nil
}

func (memoryCodec) Unmarshal(msg *message.Message) (*record.Batch, error) {
	b, ok := msg.Context().Value(batchKey{}).(*record.Batch)
	if !ok || b == nil {
		return nil, Permanent(errors.New("memory transport: message carries no batch"))
	}
	return b, nil
}

// ErrUnknownTransport is returned for a transport kind this build lacks.
var ErrUnknownTransport = errors.New("unknown transport")

// NewTransport builds the transport of the given kind.
func NewTransport(ctx context.Context, cfg TransportConfig, logger watermill.LoggerAdapter) (Transport, error) {
	switch cfg.Kind {
	case "", "memory":
		return NewMemory(logger), nil
	case "nats":
		n := cfg.NATS
		n.Subscribers = cmp.Or(n.Subscribers, cfg.Subscribers)
		return NewNATS(ctx, n, logger)
	case "sqs":
		q := cfg.SQS
		q.Subscribers = cmp.Or(q.Subscribers, cfg.Subscribers)
		return NewSQS(ctx, q, logger)
	default:
		return nil, fmt.Errorf("%w %q (memory, nats or sqs)", ErrUnknownTransport, cfg.Kind)
	}
}
