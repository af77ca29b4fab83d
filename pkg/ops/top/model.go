package top

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	tea "charm.land/bubbletea/v2"
)

// Scraper reads one worker; Scrape over HTTP by default.
type Scraper func(ctx context.Context, addr string) Sample

// HTTPScraper scrapes over HTTP, each scrape within timeout.
func HTTPScraper(client *http.Client, timeout time.Duration) Scraper {
	return func(ctx context.Context, addr string) Sample {
		ctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		return Scrape(ctx, client, addr)
	}
}

// Poller scrapes every worker at once and keeps the previous scrape, so
// that each Poll gives a frame of rates over the interval between them.
type Poller struct {
	Addrs  []string
	Scrape Scraper
	prev   map[string]Sample
}

// Poll scrapes every worker and returns the frame.
func (p *Poller) Poll(ctx context.Context) Frame {
	cur := make(map[string]Sample, len(p.Addrs))
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, a := range p.Addrs {
		wg.Go(func() {
			s := p.Scrape(ctx, a)
			mu.Lock()
			cur[a] = s
			mu.Unlock()
		})
	}
	wg.Wait()
	return p.Next(cur)
}

// Next takes samples scraped elsewhere (tests) as the current ones.
func (p *Poller) Next(cur map[string]Sample) Frame {
	f := Compute(p.Addrs, p.prev, cur)
	// A worker that did not answer keeps its last good sample, so that
	// its rates are right again once it answers.
	next := make(map[string]Sample, len(cur))
	for a, s := range cur {
		if s.Err != nil && p.prev[a].fams != nil {
			s = p.prev[a]
		}
		next[a] = s
	}
	p.prev = next
	return f
}

// Model is the full-screen view on bubbletea: it polls every interval and
// redraws in place; q (or Ctrl-C, Esc) quits.
type Model struct {
	poller   *Poller
	interval time.Duration
	title    string
	ctx      context.Context
	frame    Frame
	polled   bool
	width    int
}

// FrameMsg carries a new frame to the model.
type FrameMsg Frame

// NewModel returns the view of the poller's workers, refreshed every
// interval, under title.
func NewModel(ctx context.Context, p *Poller, interval time.Duration, title string) Model {
	return Model{poller: p, interval: interval, title: title, ctx: ctx}
}

func (m Model) poll() tea.Msg { return FrameMsg(m.poller.Poll(m.ctx)) }

// Init polls at once.
func (m Model) Init() tea.Cmd { return m.poll }

// Update handles keys, resizes and frames; a frame schedules the next poll.
func (m Model) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	switch msg := msg.(type) {
	case tea.KeyPressMsg:
		switch msg.String() {
		case "q", "Q", "ctrl+c", "esc":
			return m, tea.Quit
		}
	case tea.WindowSizeMsg:
		m.width = msg.Width
	case FrameMsg:
		m.frame, m.polled = Frame(msg), true
		return m, tea.Tick(m.interval, func(time.Time) tea.Msg { return m.poll() })
	}
	return m, nil
}

// View draws the last frame, full screen.
func (m Model) View() tea.View {
	v := tea.NewView(m.Text())
	v.AltScreen = true
	v.WindowTitle = m.title
	return v
}

// Text is the screen's content.
func (m Model) Text() string {
	if !m.polled {
		return m.title + "\n\nreading " + strings.Join(m.poller.Addrs, ", ") + " …\n"
	}
	return m.frame.View(m.title, m.width)
}

// RunPlain prints a frame's plain lines every interval until ctx ends:
// the view when stdout is not a terminal. The first frame has no rates
// yet; it is printed after one interval, with them.
func RunPlain(ctx context.Context, w io.Writer, p *Poller, interval time.Duration) error {
	p.Poll(ctx)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		if err := p.Poll(ctx).Plain(w); err != nil {
			return fmt.Errorf("write: %w", err)
		}
	}
}
