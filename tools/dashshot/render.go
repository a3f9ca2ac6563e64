package main

import (
	"encoding/json"
	"fmt"
	"html"
	"math"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/l7lb/l7lb/internal/promql"
)

// The parts of Grafana's dashboard JSON that the rendering uses.
type dashboard struct {
	Title  string  `json:"title"`
	Panels []panel `json:"panels"`
}

type panel struct {
	Type        string                   `json:"type"`
	Title       string                   `json:"title"`
	GridPos     struct{ H, W, X, Y int } `json:"gridPos"`
	Targets     []target                 `json:"targets"`
	FieldConfig struct {
		Defaults struct {
			Unit       string `json:"unit"`
			Thresholds struct {
				Steps []struct {
					Color string   `json:"color"`
					Value *float64 `json:"value"`
				} `json:"steps"`
			} `json:"thresholds"`
			Mappings []struct {
				Type    string                           `json:"type"`
				Options map[string]struct{ Text string } `json:"options"`
			} `json:"mappings"`
		} `json:"defaults"`
	} `json:"fieldConfig"`
	Options struct {
		TextMode string `json:"textMode"`
	} `json:"options"`
	Transformations []struct {
		ID      string `json:"id"`
		Options struct {
			ExcludeByName map[string]bool   `json:"excludeByName"`
			RenameByName  map[string]string `json:"renameByName"`
		} `json:"options"`
	} `json:"transformations"`
}

type target struct {
	Expr         string `json:"expr"`
	LegendFormat string `json:"legendFormat"`
	Instant      bool   `json:"instant"`
}

func parseDashboard(raw []byte) (*dashboard, error) {
	var d dashboard
	if err := json.Unmarshal(raw, &d); err != nil {
		return nil, fmt.Errorf("dashboard JSON: %w", err)
	}
	return &d, nil
}

// grafanaVars are the dashboard's variables as the screenshot sets them:
// every job, instance and target group (the variables' allValue), and the
// rate interval of a 1 s scrape (Grafana: at least 4 scrape intervals).
func grafanaVars(rateInterval time.Duration) *strings.Replacer {
	return strings.NewReplacer("$__rate_interval", fmt.Sprintf("%dms", rateInterval.Milliseconds()),
		"$job", ".*", "$instance", ".*", "$target_group", ".*")
}

type point struct {
	t time.Time
	v float64
}

// line is one series of a time series or stat panel.
type line struct {
	name string
	pts  []point
}

// panelData is what a panel shows: lines (time series, stat) or rows
// (table), or the error that kept it empty.
type panelData struct {
	lines []line
	cols  []string
	rows  [][]string
	err   error
}

// evaluate runs the panel's queries over the scraped samples at every
// scrape time (tables: at the last one, as an instant query).
func evaluate(p panel, store *promql.Store, times []time.Time, vars *strings.Replacer) panelData {
	var d panelData
	if p.Type == "table" {
		return evaluateTable(p, store, times[len(times)-1], vars)
	}
	for _, tg := range p.Targets {
		n, err := promql.Parse(vars.Replace(tg.Expr))
		if err != nil {
			return panelData{err: err}
		}
		byKey := map[string]*line{}
		var order []string
		for _, t := range times {
			v, err := store.Eval(n, t)
			if err != nil {
				return panelData{err: err}
			}
			for _, e := range asVector(v) {
				if math.IsNaN(e.V) || math.IsInf(e.V, 0) {
					continue
				}
				key := e.Labels.String()
				l := byKey[key]
				if l == nil {
					l = &line{name: legend(tg.LegendFormat, e.Labels)}
					byKey[key] = l
					order = append(order, key)
				}
				l.pts = append(l.pts, point{t, e.V})
			}
		}
		for _, k := range order {
			d.lines = append(d.lines, *byKey[k])
		}
	}
	return d
}

func asVector(v promql.Value) promql.Vector {
	switch v := v.(type) {
	case promql.Vector:
		return v
	case promql.Scalar:
		return promql.Vector{{Labels: promql.Labels{}, V: float64(v)}}
	}
	return nil
}

var legendVar = regexp.MustCompile(`\{\{\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\}\}`)

// legend is Grafana's legendFormat: {{label}} replaced by the series'
// value; without a format, the series' labels.
func legend(format string, l promql.Labels) string {
	if format == "" {
		delete(l, "__name__")
		return l.String()
	}
	return legendVar.ReplaceAllStringFunc(format, func(m string) string {
		return l[legendVar.FindStringSubmatch(m)[1]]
	})
}

// evaluateTable is Grafana's table format of an instant query: one row per
// series, a column per label and one for the value; the organize
// transformation hides and renames columns.
func evaluateTable(p panel, store *promql.Store, at time.Time, vars *strings.Replacer) panelData {
	var d panelData
	exclude, rename := map[string]bool{}, map[string]string{}
	for _, tr := range p.Transformations {
		if tr.ID == "organize" {
			for k, v := range tr.Options.ExcludeByName {
				exclude[k] = v
			}
			for k, v := range tr.Options.RenameByName {
				rename[k] = v
			}
		}
	}
	var elems promql.Vector
	labelSet := map[string]bool{}
	for _, tg := range p.Targets {
		n, err := promql.Parse(vars.Replace(tg.Expr))
		if err != nil {
			return panelData{err: err}
		}
		v, err := store.Eval(n, at)
		if err != nil {
			return panelData{err: err}
		}
		for _, e := range asVector(v) {
			elems = append(elems, e)
			for k := range e.Labels {
				if k != "__name__" {
					labelSet[k] = true
				}
			}
		}
	}
	var labels []string
	for k := range labelSet {
		labels = append(labels, k)
	}
	sort.Strings(labels)
	var cols []string
	for _, c := range append(labels, "Value") {
		if exclude[c] {
			continue
		}
		cols = append(cols, c)
		if r := rename[c]; r != "" {
			d.cols = append(d.cols, r)
		} else {
			d.cols = append(d.cols, c)
		}
	}
	for _, e := range elems {
		var row []string
		for _, c := range cols {
			if c == "Value" {
				row = append(row, formatValue(p.FieldConfig.Defaults.Unit, e.V))
			} else {
				row = append(row, e.Labels[c])
			}
		}
		d.rows = append(d.rows, row)
	}
	sort.Slice(d.rows, func(i, j int) bool { return strings.Join(d.rows[i], "\x00") < strings.Join(d.rows[j], "\x00") })
	return d
}

// formatValue prints v in Grafana's unit.
func formatValue(unit string, v float64) string {
	switch unit {
	case "percentunit":
		return trim(v*100, 1) + "%"
	case "s":
		a := math.Abs(v)
		switch {
		case a == 0:
			return "0 s"
		case a < 1e-3:
			return trim(v*1e6, 0) + " µs"
		case a < 1:
			return trim(v*1e3, 1) + " ms"
		case a < 120:
			return trim(v, 1) + " s"
		case a < 7200:
			return trim(v/60, 1) + " min"
		default:
			return trim(v/3600, 1) + " h"
		}
	case "d":
		return trim(v, 1) + " days"
	case "reqps":
		return short(v) + " req/s"
	case "cps":
		return short(v) + " c/s"
	case "ops":
		return short(v) + " ops/s"
	case "Bps":
		return si(v, "B/s")
	}
	return short(v)
}

func trim(v float64, decimals int) string {
	s := strconv.FormatFloat(v, 'f', decimals, 64)
	if strings.Contains(s, ".") {
		s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
	}
	return s
}

func short(v float64) string {
	a := math.Abs(v)
	switch {
	case a >= 1e9:
		return trim(v/1e9, 2) + " B"
	case a >= 1e6:
		return trim(v/1e6, 2) + " M"
	case a >= 1e3:
		return trim(v/1e3, 2) + " K"
	case a >= 10:
		return trim(v, 1)
	}
	return trim(v, 3)
}

func si(v float64, unit string) string {
	a := math.Abs(v)
	switch {
	case a >= 1e9:
		return trim(v/1e9, 2) + " G" + unit
	case a >= 1e6:
		return trim(v/1e6, 2) + " M" + unit
	case a >= 1e3:
		return trim(v/1e3, 2) + " k" + unit
	}
	return trim(v, 1) + " " + unit
}

// Grafana's named colours and its classic palette for series.
var namedColors = map[string]string{"green": "#73BF69", "orange": "#FF9830", "red": "#F2495C", "yellow": "#FADE2A", "blue": "#5794F2", "purple": "#B877D9"}

var palette = []string{"#7EB26D", "#EAB839", "#6ED0E0", "#EF843C", "#E24D42", "#1F78C1", "#BA43A9", "#705DA0", "#508642", "#CCA300", "#447EBC", "#C15C17"}

// Layout: Grafana's grid is 24 columns wide; a grid row is 30 px.
const (
	pageWidth = 1600
	rowHeight = 30
	gap       = 6
)

// pageHeight is the height of the rendered grid.
func pageHeight(d *dashboard) int {
	h := 0
	for _, p := range d.Panels {
		h = max(h, p.GridPos.Y+p.GridPos.H)
	}
	return h*rowHeight + 60
}

// renderHTML lays the panels out on Grafana's grid.
func renderHTML(d *dashboard, data []panelData, caption string) string {
	var b strings.Builder
	colW := float64(pageWidth) / 24
	fmt.Fprintf(&b, `<!doctype html><html><head><meta charset="utf-8"><title>%s</title><style>
body{margin:0;background:#111217;color:#ccccdc;font:12px/1.3 "DejaVu Sans",Arial,sans-serif;width:%dpx;height:%dpx;position:relative;overflow:hidden}
.hdr{position:absolute;left:8px;top:8px;right:8px;height:36px;font-size:18px;color:#fff}
.hdr small{font-size:12px;color:#8e8e9e;margin-left:12px}
.p{position:absolute;background:#181b1f;border:1px solid #2c3235;border-radius:3px;box-sizing:border-box;padding:6px 8px;overflow:hidden}
.p h3{margin:0 0 4px;font-size:13px;font-weight:500;color:#d8d9da;white-space:nowrap;overflow:hidden;text-overflow:ellipsis}
.row{position:absolute;font-size:15px;color:#d8d9da;font-weight:500;border-bottom:1px solid #2c3235;box-sizing:border-box;padding:4px 8px}
.lg{display:flex;flex-wrap:wrap;gap:2px 10px;font-size:11px;color:#ccccdc;overflow:hidden}
.lg span{white-space:nowrap;max-width:100%%;overflow:hidden;text-overflow:ellipsis}
.lg i{display:inline-block;width:10px;height:3px;margin-right:4px;vertical-align:middle}
.stat{position:absolute;left:8px;right:8px;bottom:8px;top:28px;border-radius:3px;display:flex;flex-direction:column;align-items:center;justify-content:center;color:#fff}
.stat .v{font-size:40px;font-weight:500}.stat .n{font-size:13px;opacity:.85}
table{border-collapse:collapse;width:100%%;font-size:11px}th{text-align:left;color:#33a2e5;font-weight:500;border-bottom:1px solid #2c3235;padding:3px 4px}
td{padding:3px 4px;border-bottom:1px solid #22252b;white-space:nowrap;overflow:hidden;text-overflow:ellipsis;max-width:200px}
.err{color:#F2495C}.none{color:#8e8e9e;position:absolute;top:50%%;left:0;right:0;text-align:center}
</style></head><body><div class="hdr">%s<small>%s</small></div>
`, html.EscapeString(d.Title), pageWidth, pageHeight(d), html.EscapeString(d.Title), html.EscapeString(caption))
	top := 44
	for i, p := range d.Panels {
		x := int(float64(p.GridPos.X) * colW)
		y := top + p.GridPos.Y*rowHeight
		w := int(float64(p.GridPos.W)*colW) - gap
		h := p.GridPos.H*rowHeight - gap
		if p.Type == "row" {
			fmt.Fprintf(&b, `<div class="row" style="left:%dpx;top:%dpx;width:%dpx;height:%dpx">%s</div>`+"\n", x, y, w, h, html.EscapeString(p.Title))
			continue
		}
		fmt.Fprintf(&b, `<div class="p" style="left:%dpx;top:%dpx;width:%dpx;height:%dpx"><h3>%s</h3>`, x, y, w, h, html.EscapeString(p.Title))
		pd := data[i]
		switch {
		case pd.err != nil:
			fmt.Fprintf(&b, `<div class="err">%s</div>`, html.EscapeString(pd.err.Error()))
		case p.Type == "stat":
			b.WriteString(renderStat(p, pd))
		case p.Type == "table":
			b.WriteString(renderTable(pd))
		default:
			b.WriteString(renderSeries(p, pd, w-16, h-12-20))
		}
		b.WriteString("</div>\n")
	}
	b.WriteString("</body></html>\n")
	return b.String()
}

func renderStat(p panel, pd panelData) string {
	if len(pd.lines) == 0 || len(pd.lines[0].pts) == 0 {
		return `<div class="none">No data</div>`
	}
	l := pd.lines[0]
	v := l.pts[len(l.pts)-1].v // lastNotNull
	text := formatValue(p.FieldConfig.Defaults.Unit, v)
	for _, m := range p.FieldConfig.Defaults.Mappings {
		if m.Type != "value" {
			continue
		}
		if o, ok := m.Options[strconv.FormatFloat(v, 'f', -1, 64)]; ok {
			text = o.Text
		}
	}
	color := namedColors["green"]
	for _, s := range p.FieldConfig.Defaults.Thresholds.Steps {
		if s.Value == nil || v >= *s.Value {
			color = colorOf(s.Color)
		}
	}
	name := ""
	if p.Options.TextMode == "value_and_name" {
		name = fmt.Sprintf(`<div class="n">%s</div>`, html.EscapeString(l.name))
	}
	return fmt.Sprintf(`<div class="stat" style="background:%s">%s<div class="v">%s</div></div>`, color, name, html.EscapeString(text))
}

func colorOf(c string) string {
	if n, ok := namedColors[c]; ok {
		return n
	}
	return c
}

func renderTable(pd panelData) string {
	if len(pd.rows) == 0 {
		return `<div class="none">No data</div>`
	}
	var b strings.Builder
	b.WriteString("<table><tr>")
	for _, c := range pd.cols {
		fmt.Fprintf(&b, "<th>%s</th>", html.EscapeString(c))
	}
	b.WriteString("</tr>")
	for _, r := range pd.rows {
		b.WriteString("<tr>")
		for _, c := range r {
			fmt.Fprintf(&b, "<td>%s</td>", html.EscapeString(c))
		}
		b.WriteString("</tr>")
	}
	b.WriteString("</table>")
	return b.String()
}

// renderSeries draws the lines as an SVG chart with a y axis in the
// panel's unit, a time axis, and a legend under it.
func renderSeries(p panel, pd panelData, w, h int) string {
	var pts int
	for _, l := range pd.lines {
		pts += len(l.pts)
	}
	if pts == 0 {
		return `<div class="none">No data</div>`
	}
	legendLines := min(3, (len(pd.lines)+2)/3)
	chartH := h - legendLines*15 - 4
	const left, bottom = 62, 16
	const topPad = 9 // room for the highest y label
	plotW, plotH := float64(w-left-4), float64(chartH-bottom-topPad)
	var t0, t1 time.Time
	lo, hi := 0.0, math.Inf(-1)
	for _, l := range pd.lines {
		for _, pt := range l.pts {
			if t0.IsZero() || pt.t.Before(t0) {
				t0 = pt.t
			}
			if pt.t.After(t1) {
				t1 = pt.t
			}
			lo, hi = math.Min(lo, pt.v), math.Max(hi, pt.v)
		}
	}
	if hi <= lo {
		hi = lo + 1
	}
	hi += (hi - lo) * 0.08
	span := t1.Sub(t0).Seconds()
	if span <= 0 {
		span = 1
	}
	xOf := func(t time.Time) float64 { return left + t.Sub(t0).Seconds()/span*plotW }
	yOf := func(v float64) float64 { return topPad + (hi-v)/(hi-lo)*plotH }
	var b strings.Builder
	fmt.Fprintf(&b, `<svg width="%d" height="%d" xmlns="http://www.w3.org/2000/svg">`, w, chartH)
	for i := 0; i <= 4; i++ {
		v := lo + (hi-lo)*float64(i)/4
		y := yOf(v)
		fmt.Fprintf(&b, `<line x1="%d" x2="%d" y1="%.1f" y2="%.1f" stroke="#2c3235"/>`, left, w-4, y, y)
		fmt.Fprintf(&b, `<text x="%d" y="%.1f" fill="#8e8e9e" font-size="10" text-anchor="end">%s</text>`, left-4, y+3, html.EscapeString(formatValue(p.FieldConfig.Defaults.Unit, v)))
	}
	for i := 0; i <= 4; i++ {
		t := t0.Add(time.Duration(float64(i) / 4 * span * float64(time.Second)))
		anchor := "middle"
		if i == 0 {
			anchor = "start"
		} else if i == 4 {
			anchor = "end"
		}
		fmt.Fprintf(&b, `<text x="%.1f" y="%d" fill="#8e8e9e" font-size="10" text-anchor="%s">%s</text>`, xOf(t), chartH-3, anchor, t.UTC().Format("15:04:05"))
	}
	for i, l := range pd.lines {
		color := palette[i%len(palette)]
		var seg []string
		flush := func() {
			if len(seg) == 1 {
				seg = append(seg, seg[0])
			}
			if len(seg) > 0 {
				fmt.Fprintf(&b, `<polyline fill="none" stroke="%s" stroke-width="1.5" points="%s"/>`, color, strings.Join(seg, " "))
			}
			seg = nil
		}
		for j, pt := range l.pts {
			// A scrape without the series is a gap, as in Grafana.
			if j > 0 && pt.t.Sub(l.pts[j-1].t) > 3*time.Second {
				flush()
			}
			seg = append(seg, fmt.Sprintf("%.1f,%.1f", xOf(pt.t), yOf(pt.v)))
		}
		flush()
	}
	b.WriteString("</svg>")
	fmt.Fprintf(&b, `<div class="lg" style="max-height:%dpx">`, legendLines*15)
	for i, l := range pd.lines {
		fmt.Fprintf(&b, `<span><i style="background:%s"></i>%s</span>`, palette[i%len(palette)], html.EscapeString(l.name))
	}
	b.WriteString("</div>")
	return b.String()
}
