package decode

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/gwpipe/gwpipe/pkg/formats/cwlogs"
	"github.com/gwpipe/gwpipe/pkg/record"
	"github.com/gwpipe/gwpipe/pkg/runtime/membudget"
	"github.com/gwpipe/gwpipe/pkg/runtime/stage"
)

// How decode bounds the memory a raw batch costs (see package membudget):
//
//   - its events leave in pieces of at most MaxEventsPerBatch events and
//     maxPieceBytes bytes, emitted as soon as the record that completes
//     them is decoded, instead of once the whole raw batch is;
//   - each piece holds its footprint in the memory budget until every
//     terminal stage is done with it (or a broker holds it), and emitting
//     waits while the budget is full: that is decode's back-pressure;
//   - a record that decompresses to more than largeRecord bytes is decoded
//     alone, its buffers counted in the budget until its events are
//     emitted; the records of one source unit (a Firehose request) together
//     decompress to at most MaxUnitDecompressedBytes: the rest is
//     dead-lettered.
const (
	maxPieceBytes = 2 << 20
	largeRecord   = 1 << 20
	// workPerByte is what decoding a large record holds per decompressed
	// byte: the decompressed data, the JSON parser's copy of a document and
	// the events' copies.
	workPerByte = 3
)

// WithMemory makes the stage hold what it emits in the process's memory
// budget, and wait while the budget is full.
func (s *Stage) WithMemory(b *membudget.Budget) *Stage {
	s.memory = b
	return s
}

// Handle implements stage.Handler: the raw batch's events are emitted in
// pieces while it is decoded, and its dead letters after them.
func (s *Stage) Handle(ctx context.Context, in *record.Batch, out stage.Output) error {
	return s.run(ctx, in, func(b *record.Batch) error {
		done, err := s.memory.Hold(ctx, b, membudget.Footprint(b))
		if err != nil {
			return err
		}
		defer done()
		return out.Emit(ctx, b)
	}, func(b *record.Batch) error {
		return out.DeadLetter(ctx, b)
	})
}

// Result is what one raw batch decodes to.
type Result struct {
	Batches []*record.Batch // log events, at most MaxEventsPerBatch each
	Dead    *record.Batch   // records that could not be decoded, or nil
}

// Decode decodes a raw batch whole, for callers that read one record at a
// time (package s3obj). It never fails as a whole: a bad record is put in
// Dead with its reason.
func (s *Stage) Decode(in *record.Batch) Result {
	var res Result
	_ = s.run(context.Background(), in, func(b *record.Batch) error {
		res.Batches = append(res.Batches, b)
		return nil
	}, func(b *record.Batch) error {
		if res.Dead == nil {
			res.Dead = b
		} else {
			res.Dead.Records = append(res.Dead.Records, b.Records...)
		}
		return nil
	})
	return res
}

// work is what decoding the current record holds beyond its events: its
// share of its unit's allowance, and, for a large record, the stage's
// large-record slot and the buffers counted in the budget.
type work struct {
	ctx      context.Context
	unit     *record.Unit
	reserved int64 // of the unit's allowance, for the current record
	slot     bool  // holds s.large
	charged  int64 // admitted in the budget for the record's buffers
}

// errAllowance fails a record that would take its unit past its allowance.
type errAllowance struct{ limit int64 }

func (e errAllowance) Error() string {
	return fmt.Sprintf("the records of this request decompress beyond its %d-byte allowance (decode.max_request_decompressed_bytes); this record was not decoded", e.limit)
}

// gunzip removes the gzip layers of a record within its limits: the
// stage's per record, and what is left of its unit's allowance. A record
// that may decompress beyond largeRecord takes the stage's large-record
// slot first, so that such records are decoded one at a time, and counts
// its buffers in the memory budget (released by endRecord).
func (s *Stage) gunzip(sc *scratch, data []byte) ([]byte, error) {
	w := &sc.work
	limit := int64(s.cfg.MaxDecompressedBytes)
	if s.cfg.MaxUnitDecompressedBytes > 0 {
		w.reserved = w.unit.Reserve(limit, s.cfg.MaxUnitDecompressedBytes)
		if w.reserved == 0 {
			return nil, errAllowance{s.cfg.MaxUnitDecompressedBytes}
		}
		limit = w.reserved
	}
	tooLarge := func(err error) error {
		if errors.Is(err, cwlogs.ErrTooLarge) {
			if limit < int64(s.cfg.MaxDecompressedBytes) {
				return errAllowance{s.cfg.MaxUnitDecompressedBytes}
			}
			// The dead letter names the setting a user may raise.
			return fmt.Errorf("%w: more than %d bytes (decode.max_decompressed_bytes)", err, s.cfg.MaxDecompressedBytes)
		}
		return err
	}
	small := min(limit, largeRecord)
	// The gzip trailer tells the size of the last member: a hint only, so
	// that a record that lies about it is stopped at largeRecord.
	if len(data) >= 18 && int64(binary.LittleEndian.Uint32(data[len(data)-4:])) <= small {
		out, err := cwlogs.Gunzip(sc.gz, data, int(small))
		if err == nil || !errors.Is(err, cwlogs.ErrTooLarge) || small == limit {
			return s.decompressed(w, out, tooLarge(err))
		}
	}
	select {
	case s.large <- struct{}{}:
		w.slot = true
	case <-w.ctx.Done():
		return nil, fmt.Errorf("waiting to decode a large record: %w", w.ctx.Err())
	}
	out, err := cwlogs.Gunzip(nil, data, int(limit))
	if err == nil {
		w.charged = workPerByte * int64(len(out))
		s.memory.Force(w.charged)
	}
	return s.decompressed(w, out, tooLarge(err))
}

// decompressed keeps of the unit's allowance what the record used.
func (s *Stage) decompressed(w *work, out []byte, err error) ([]byte, error) {
	if w.reserved > 0 {
		used := int64(len(out))
		if err != nil {
			used = 0
		}
		w.unit.Unreserve(w.reserved - used)
		w.reserved = used
	}
	return out, err
}

// endRecord releases what decoding a record held; failed gives back its
// share of the allowance, since its bytes went to the dead-letter archive
// instead.
func (s *Stage) endRecord(w *work, failed bool) {
	if failed && w.reserved > 0 {
		w.unit.Unreserve(w.reserved)
	}
	w.reserved = 0
	if w.charged > 0 {
		s.memory.Discharge(w.charged)
		w.charged = 0
	}
	if w.slot {
		<-s.large
		w.slot = false
	}
}
