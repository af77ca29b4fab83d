package top

import (
	"fmt"
	"io"
	"math"
	"strings"

	"charm.land/lipgloss/v2"
	"charm.land/lipgloss/v2/table"
)

var (
	titleStyle  = lipgloss.NewStyle().Bold(true)
	headerStyle = lipgloss.NewStyle().Bold(true).Padding(0, 1)
	cellStyle   = lipgloss.NewStyle().Padding(0, 1)
	totalStyle  = cellStyle.Bold(true)
	badStyle    = lipgloss.NewStyle().Foreground(lipgloss.Color("9"))
	faintStyle  = lipgloss.NewStyle().Faint(true)
)

// render draws one section's table; worker rows get a WORKER column when
// the view shows a fleet. Cells holding a problem (errors, refusals) are
// red when non-zero.
func render(title string, fleet bool, headers []string, rows [][]string, workers []string, bad map[int]bool) string {
	if len(rows) == 0 {
		return ""
	}
	if fleet {
		headers = append([]string{"WORKER"}, headers...)
		for i := range rows {
			rows[i] = append([]string{workers[i]}, rows[i]...)
		}
		shifted := map[int]bool{}
		for c := range bad {
			shifted[c+1] = true
		}
		bad = shifted
	}
	t := table.New().
		Border(lipgloss.HiddenBorder()).BorderTop(false).BorderBottom(false).BorderLeft(false).BorderRight(false).
		BorderColumn(false).BorderHeader(false).
		Headers(headers...).Rows(rows...).
		StyleFunc(func(row, col int) lipgloss.Style {
			if row == table.HeaderRow {
				return headerStyle
			}
			s := cellStyle
			if fleet && rows[row][0] == Total {
				s = totalStyle
			}
			if col > 0 {
				s = s.Align(lipgloss.Right)
			}
			if v := rows[row][col]; bad[col] && v != "0" && v != "-" {
				s = s.Inherit(badStyle)
			}
			return s
		})
	return titleStyle.Render(title) + "\n" + t.Render() + "\n"
}

// View renders the frame for a terminal of the given width (0: any).
func (f Frame) View(title string, width int) string {
	var b strings.Builder
	fleet := len(f.Workers) > 1
	b.WriteString(titleStyle.Render(title))
	if f.Interval > 0 {
		b.WriteString(faintStyle.Render(fmt.Sprintf("   rates over the last %.1fs", f.Interval.Seconds())))
	} else {
		b.WriteString(faintStyle.Render("   rates from the next refresh on"))
	}
	b.WriteString("\n")
	for _, w := range f.Workers {
		if w.Err != nil {
			b.WriteString(badStyle.Render(fmt.Sprintf("%s: %v", w.Addr, w.Err)) + "\n")
		}
	}
	b.WriteString("\n")

	var rows [][]string
	var workers []string
	for _, s := range f.Stages {
		rows = append(rows, []string{s.Stage, rateText(s.InRate), rateText(s.OutRate), num(s.InFlight), num(s.Queue), num(s.Errors), num(s.Dead), num(s.BrokerDLQ), msText(s.P99)})
		workers = append(workers, s.Worker)
	}
	b.WriteString(render("Stages", fleet, []string{"STAGE", "IN", "OUT", "IN FLIGHT", "QUEUE", "ERRORS", "DEAD", "BROKER DLQ", "P99"}, rows, workers, map[int]bool{5: true, 6: true, 7: true}))

	rows, workers = nil, nil
	for _, s := range f.Sources {
		rows = append(rows, []string{s.Source, rateText(s.Rate), refusedText(s.Refused), refusedText(s.NotAcked), msText(s.AckP99)})
		workers = append(workers, s.Worker)
	}
	if len(rows) > 0 {
		b.WriteString("\n" + render("Sources", fleet, []string{"SOURCE", "REQUESTS", "REFUSED (BY STATUS)", "ADMITTED, NOT ACKED", "ACK P99"}, rows, workers, map[int]bool{2: true, 3: true}))
	}

	rows, workers = nil, nil
	for _, d := range f.Delivery {
		rows = append(rows, []string{d.What, rateText(d.Rate), num(d.Accepted), num(d.Refused), num(d.Filtered), num(d.Retries), bytesText(d.Bytes), byteRateText(d.ByteRate), msText(d.P99)})
		workers = append(workers, d.Worker)
	}
	if len(rows) > 0 {
		b.WriteString("\n" + render("Delivery to Datadog", fleet, []string{"SIGNAL", "ACCEPTED", "TOTAL", "REFUSED", "FILTERED", "RETRIES", "BYTES", "BYTES/S", "P99"}, rows, workers, map[int]bool{3: true}))
	}

	rows, workers = nil, nil
	for _, e := range f.Enrich {
		hit := percentText(e.HitRate)
		if !e.AWSTags {
			hit = "off"
		}
		rows = append(rows, []string{"tags", hit, num(e.Partial)})
		workers = append(workers, e.Worker)
	}
	if len(rows) > 0 {
		b.WriteString("\n" + render("Enrichment", fleet, []string{"", "TAG CACHE HITS", "PARTIAL TAGS"}, rows, workers, map[int]bool{2: true}))
	}
	b.WriteString("\n" + faintStyle.Render("q quits"))
	out := b.String()
	if width > 0 {
		out = lipgloss.NewStyle().MaxWidth(width).Render(out)
	}
	return out
}

func byteRateText(v float64) string {
	if math.IsNaN(v) {
		return "-"
	}
	return bytesText(v) + "/s"
}

// Plain writes the frame as lines of key=value fields, one per row,
// for a log or a pipe: what gwpipe top prints when stdout is not a
// terminal.
func (f Frame) Plain(w io.Writer) error {
	ts := f.Taken.Format("15:04:05")
	var b strings.Builder
	line := func(worker string, kv ...string) {
		b.WriteString(ts)
		if len(f.Workers) > 1 {
			b.WriteString(" worker=" + worker)
		}
		for i := 0; i+1 < len(kv); i += 2 {
			b.WriteString(" " + kv[i] + "=" + kv[i+1])
		}
		b.WriteString("\n")
	}
	for _, wk := range f.Workers {
		if wk.Err != nil {
			line(wk.Addr, "error", fmt.Sprintf("%q", wk.Err.Error()))
		}
	}
	// Values without spaces: one field, one word.
	ms := func(v float64) string { return strings.ReplaceAll(msText(v), " ", "") }
	for _, s := range f.Stages {
		line(s.Worker, "stage", s.Stage, "in", rateText(s.InRate), "out", rateText(s.OutRate), "in_flight", num(s.InFlight),
			"queue", num(s.Queue), "errors", num(s.Errors), "dead", num(s.Dead), "broker_dlq", num(s.BrokerDLQ), "p99", ms(s.P99))
	}
	for _, s := range f.Sources {
		line(s.Worker, "source", s.Source, "requests", rateText(s.Rate), "refused", strings.ReplaceAll(refusedText(s.Refused), " ", ","), "not_acked", strings.ReplaceAll(refusedText(s.NotAcked), " ", ","), "ack_p99", ms(s.AckP99))
	}
	for _, d := range f.Delivery {
		line(d.Worker, "deliver", d.What, "accepted", rateText(d.Rate), "total", num(d.Accepted), "refused", num(d.Refused),
			"filtered", num(d.Filtered), "retries", num(d.Retries), "bytes", strings.ReplaceAll(bytesText(d.Bytes), " ", ""), "p99", ms(d.P99))
	}
	for _, e := range f.Enrich {
		hit := percentText(e.HitRate)
		if !e.AWSTags {
			hit = "off"
		}
		line(e.Worker, "enrich", "tags", "tag_cache_hits", hit, "partial_tags", num(e.Partial))
	}
	_, err := io.WriteString(w, b.String())
	return err
}
