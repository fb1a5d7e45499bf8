package audit

import (
	"bytes"
	"context"
	"image"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// colorBox counts the pixels within tol of c and their bounding box.
type colorBox struct {
	n      int
	bounds image.Rectangle
}

func findColor(img image.Image, hex string, tol int) colorBox {
	var want [3]int
	for i := 0; i < 3; i++ {
		var v int
		for _, ch := range hex[1+2*i : 3+2*i] {
			v *= 16
			switch {
			case ch >= '0' && ch <= '9':
				v += int(ch - '0')
			default:
				v += int(ch-'a') + 10
			}
		}
		want[i] = v
	}
	abs := func(x int) int {
		if x < 0 {
			return -x
		}
		return x
	}
	var cb colorBox
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			r, g, bl, _ := img.At(x, y).RGBA()
			if abs(int(r>>8)-want[0]) <= tol && abs(int(g>>8)-want[1]) <= tol && abs(int(bl>>8)-want[2]) <= tol {
				p := image.Rect(x, y, x+1, y+1)
				if cb.n == 0 {
					cb.bounds = p
				} else {
					cb.bounds = cb.bounds.Union(p)
				}
				cb.n++
			}
		}
	}
	return cb
}

// TestReportScreenshot renders the HTML report in headless Chromium and
// checks the screenshot: the page is not blank and its charts are drawn
// (the timeline's bars, the services and findings bar charts, in their
// distinctive colours, where the layout puts them). The PNG is kept in
// $AIGRESS_SCREENSHOT_DIR when set, for a human look.
func TestReportScreenshot(t *testing.T) {
	chromium, err := exec.LookPath("chromium")
	if err != nil {
		t.Skip("chromium is not installed (test/setup.d/audit.sh installs Debian's chromium package)")
	}
	dir := t.TempDir()
	htmlPath := filepath.Join(dir, "report.html")
	var buf bytes.Buffer
	if err := RenderReport(&buf, FormatHTML, fixtureReport(t)); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(htmlPath, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	shot := filepath.Join(dir, "report.png")
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
		"--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--hide-scrollbars", "--user-data-dir="+filepath.Join(dir, "profile"),
		"--screenshot="+shot, "--window-size=1280,2000", "file://"+htmlPath)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "HOME="+dir)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("chromium: %v\n%s", err, out)
	}
	f, err := os.Open(shot)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatal(err)
	}
	if keep := os.Getenv("AIGRESS_SCREENSHOT_DIR"); keep != "" {
		data, _ := os.ReadFile(shot)
		_ = os.WriteFile(filepath.Join(keep, "report.png"), data, 0o644)
		_ = os.WriteFile(filepath.Join(keep, "report.html"), buf.Bytes(), 0o644)
	}
	if b := img.Bounds(); b.Dx() != 1280 || b.Dy() != 2000 {
		t.Fatalf("screenshot is %v", b)
	}

	// Not blank: the header band is dark navy and the page has many colours.
	colours := map[uint32]bool{}
	for y := 0; y < 2000; y += 4 {
		for x := 0; x < 1280; x += 4 {
			r, g, b, _ := img.At(x, y).RGBA()
			colours[(r>>8)<<16|(g>>8)<<8|b>>8] = true
		}
	}
	if len(colours) < 50 {
		t.Errorf("page looks blank: %d distinct colours", len(colours))
	}
	if r, g, b, _ := img.At(640, 40).RGBA(); r>>8 > 60 || g>>8 > 80 || b>>8 < 40 {
		t.Errorf("header band not rendered: pixel (640,40) = %d,%d,%d", r>>8, g>>8, b>>8)
	}

	timeline := findColor(img, colorRequests, 10)
	services := findColor(img, colorServices, 10)
	findings := findColor(img, colorFindings, 10)
	t.Logf("timeline bars: %d px in %v; services: %d px in %v; findings: %d px in %v",
		timeline.n, timeline.bounds, services.n, services.bounds, findings.n, findings.bounds)
	// The timeline: many bars side by side across the chart, some tall.
	if timeline.n < 1500 || timeline.bounds.Dx() < 600 || timeline.bounds.Dy() < 60 {
		t.Errorf("timeline chart not rendered: %d px in %v", timeline.n, timeline.bounds)
	}
	// Top services: horizontal bars in the left column, below the timeline.
	if services.n < 1500 || services.bounds.Min.Y <= timeline.bounds.Max.Y || services.bounds.Max.X > 700 {
		t.Errorf("services chart not rendered where expected: %d px in %v", services.n, services.bounds)
	}
	// Findings by type: below the services chart.
	if findings.n < 500 || findings.bounds.Min.Y <= services.bounds.Max.Y {
		t.Errorf("findings chart not rendered where expected: %d px in %v", findings.n, findings.bounds)
	}
}
