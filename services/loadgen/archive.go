package main

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"github.com/gwpipe/gwpipe/pkg/testkit/floor"
	"github.com/gwpipe/gwpipe/pkg/testkit/loadgen"
)

// archiveReport is what -archive wrote.
type archiveReport struct {
	Objects          int      `json:"objects"`
	Files            []string `json:"files"`
	Events           int64    `json:"events"`
	Records          int64    `json:"records"`
	Bytes            int64    `json:"bytes"`              // as stored: gzip members
	DecompressedSize int64    `json:"decompressed_bytes"` // the envelopes
}

// writeArchive writes objects files into dir, each what a Firehose delivery
// stream with a CloudWatch Logs source leaves in S3: the stream's records,
// each a gzip member (CloudWatch compresses every envelope), concatenated.
// Each object ends after the request (of the generator) that takes its
// envelopes to objectBytes decompressed (ISIZE of each member: no second
// pass).
func writeArchive(cfg loadgen.Config, dir string, objects int, objectBytes int64, report bool) int {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		fmt.Fprintf(os.Stderr, "loadgen: %v\n", err)
		return 1
	}
	var rep archiveReport
	var f *os.File
	var w *bufio.Writer
	var objBytes int64
	closeObject := func() error {
		if f == nil {
			return nil
		}
		err := w.Flush()
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		f = nil
		return err
	}
	err := floor.EachRequest(cfg, func(req *loadgen.Request, data, _ [][]byte) (bool, error) {
		for _, d := range data {
			if f == nil {
				name := filepath.Join(dir, fmt.Sprintf("object-%05d.gz", rep.Objects))
				var err error
				if f, err = os.Create(name); err != nil {
					return false, err
				}
				w, objBytes = bufio.NewWriterSize(f, 1<<20), 0
				rep.Objects++
				rep.Files = append(rep.Files, name)
			}
			if _, err := w.Write(d); err != nil {
				return false, err
			}
			size := int64(binary.LittleEndian.Uint32(d[len(d)-4:])) // gzip ISIZE: an envelope is < 4 GiB
			objBytes += size
			rep.Bytes += int64(len(d))
			rep.DecompressedSize += size
			rep.Records++
		}
		rep.Events += int64(len(req.Events))
		// Objects end between requests, so that the events counted are
		// exactly those written.
		if objBytes >= objectBytes {
			if err := closeObject(); err != nil {
				return false, err
			}
		}
		return rep.Objects < objects || f != nil, nil
	})
	if cerr := closeObject(); err == nil {
		err = cerr
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "loadgen: -archive: %v\n", err)
		return 1
	}
	fmt.Fprintf(os.Stderr, "loadgen: %d objects in %s: %d records, %d events, %d bytes stored, %d decompressed\n",
		rep.Objects, dir, rep.Records, rep.Events, rep.Bytes, rep.DecompressedSize)
	if report {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			fmt.Fprintf(os.Stderr, "loadgen: %v\n", err)
			return 1
		}
	}
	return 0
}
