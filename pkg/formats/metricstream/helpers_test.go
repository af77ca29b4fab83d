package metricstream

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	colmetricpb "go.opentelemetry.io/proto/otlp/collector/metrics/v1"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/gwpipe/gwpipe/pkg/record"
	"github.com/gwpipe/gwpipe/pkg/testkit/corpus"
)

// awsDatum is one JSON-output object, as AWS documents the format
// (CloudWatch-metric-streams-formats-json), read with encoding/json: an
// oracle independent of the decoder under test.
type awsDatum = corpus.Datum

func readDatums(t testing.TB, path string) []awsDatum {
	t.Helper()
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	var out []awsDatum
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var d awsDatum
		require.NoError(t, json.Unmarshal(sc.Bytes(), &d))
		out = append(out, d)
	}
	require.NoError(t, sc.Err())
	return out
}

// otelRequest builds the ExportMetricsServiceRequest CloudWatch writes for
// datums (the corpus's encoder, written from the OpenTelemetry 1.0.0
// output's specification).
func otelRequest(datums []awsDatum) *colmetricpb.ExportMetricsServiceRequest {
	return corpus.ExportRequest(datums)
}

// otelRecord frames the datums as CloudWatch does: each
// ExportMetricsServiceRequest preceded by its length as an unsigned varint,
// at most perFrame datums each.
func otelRecord(t testing.TB, datums []awsDatum, perFrame int) []byte {
	t.Helper()
	var out []byte
	for len(datums) > 0 {
		n := min(perFrame, len(datums))
		out = appendFrame(t, out, otelRequest(datums[:n]))
		datums = datums[n:]
	}
	return out
}

func appendFrame(t testing.TB, out []byte, req proto.Message) []byte {
	t.Helper()
	b, err := proto.Marshal(req)
	require.NoError(t, err)
	out = protowire.AppendVarint(out, uint64(len(b)))
	return append(out, b...)
}

// render writes a point on one line, for golden files and comparisons.
func render(m record.Metric) string {
	return fmt.Sprintf("%s %s ts=%d interval=%d value=%s unit=%s tags=%s",
		m.Name, m.Kind, m.Timestamp, m.Interval, strconv.FormatFloat(m.Value, 'g', -1, 64), m.Unit, strings.Join(m.Tags, ","))
}

func renderAll(ms []record.Metric) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = render(m)
	}
	return out
}

// decodeAll decodes data with a fresh decoder of cfg.
func decodeAll(t testing.TB, cfg Config, data []byte) ([]record.Metric, error) {
	t.Helper()
	d, err := NewDecoder(cfg)
	require.NoError(t, err)
	var got []record.Metric
	n, err := d.Decode(data, func(m record.Metric) { got = append(got, m) })
	require.Equal(t, len(got), n, "Decode's count matches the points emitted")
	return got, err
}

func mustRead(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	return b
}

func lines(b []byte) [][]byte { return bytes.Split(bytes.TrimRight(b, "\n"), []byte("\n")) }
