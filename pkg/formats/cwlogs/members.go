package cwlogs

import (
	"io"

	"github.com/klauspost/compress/gzip"
)

// ByteSource is what Members reads gzip members from: a reader that can
// give back the byte after a member, so that nothing past it is consumed
// (bytes.Reader, bufio.Reader).
type ByteSource interface {
	io.Reader
	io.ByteScanner
}

// Members reads the gzip members of its source one after the other, as a
// multistream gzip reader does, also when line ends separate them: a
// delimiter processor's "\n" after each record (an S3 destination's "new
// line delimiter"; docs/wire-formats.md#cloudwatch-framings). What follows
// a member is otherwise another member, or the end. One reader serves the
// in-memory records of Gunzip and the streamed objects of the S3 reader.
type Members struct {
	src  ByteSource
	zr   *gzip.Reader
	done bool
}

// Reset starts reading the members of src with zr (a pooled reader, or a
// new one); it fails as gzip.Reader.Reset does on the first header.
func (m *Members) Reset(zr *gzip.Reader, src ByteSource) error {
	*m = Members{src: src, zr: zr}
	if err := zr.Reset(src); err != nil {
		return err
	}
	zr.Multistream(false) // one member at a time: src is left just after it
	return nil
}

// Reader is the gzip reader in use, to Close.
func (m *Members) Reader() *gzip.Reader { return m.zr }

func (m *Members) Read(p []byte) (int, error) {
	for {
		if m.done {
			return 0, io.EOF
		}
		n, err := m.zr.Read(p)
		if err != io.EOF {
			return n, err
		}
		// The member ended (its checksum verified): skip line ends, then
		// read the next member's header, or end.
		for {
			c, err := m.src.ReadByte()
			if err == io.EOF {
				m.done = true
				break
			}
			if err != nil {
				return n, err
			}
			if c != '\n' && c != '\r' {
				_ = m.src.UnreadByte()
				break
			}
		}
		if !m.done {
			if err := m.zr.Reset(m.src); err != nil {
				if err == io.EOF {
					err = io.ErrUnexpectedEOF
				}
				return n, err
			}
			m.zr.Multistream(false)
		}
		if n > 0 {
			return n, nil
		}
	}
}
