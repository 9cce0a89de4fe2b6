"""Check report.html as headless Chromium parsed it (its --dump-dom output) against the
artifact's manifest, and the screenshot Chromium took of it.

  check_report_html.py DOM_HTML MANIFEST_JSON SCREENSHOT_PNG

- The bit map (svg#bitmap) holds one rect.cell per layer, expert and linear (gate, up, down)
  of the manifest, each with the bits the manifest gives that linear (16: not quantized).
- svg#memory has its 4 bars; svg#time one bar per MoE layer; with an allocation, one trade-off
  chart per allocated layer (plus the model's, with granularity layer).
- The screenshot is a PNG of the requested size.
Prints what it counted and OK, or MISMATCH and exits 1.
"""
import json
import struct
import sys
from html.parser import HTMLParser


class Collector(HTMLParser):
    def __init__(self):
        super().__init__()
        self.svg = None
        self.cells = []
        self.bars = {}
        self.figures = 0

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "svg" and a.get("id"):
            self.svg = a["id"]
        if tag == "rect" and a.get("class") == "cell" and self.svg == "bitmap":
            self.cells.append((int(a["data-layer"]), int(a["data-expert"]), a["data-linear"],
                               int(a["data-bits"])))
        if tag == "rect" and a.get("class") == "bar":
            self.bars[self.svg] = self.bars.get(self.svg, 0) + 1
        if tag == "figure" and a.get("class") == "frontier":
            self.figures += 1

    def handle_endtag(self, tag):
        if tag == "svg":
            self.svg = None


def expected_cells(manifest):
    cells = []
    for layer in manifest["layers"]:
        for linear in ("gate", "up", "down"):
            for e, expert in enumerate(layer.get("experts", [])):
                entry = expert["linears"].get(linear, {})
                entry = entry.get("delta", {}).get("a", entry)
                cells.append((layer["layer"], e, linear, entry.get("bits", 16)))
    return cells


def png_size(path):
    data = open(path, "rb").read(32)
    if data[:8] != b"\x89PNG\r\n\x1a\n" or data[12:16] != b"IHDR":
        return None
    return struct.unpack(">II", data[16:24])


def main():
    dom, manifest_path, png = sys.argv[1:4]
    manifest = json.load(open(manifest_path))
    page = Collector()
    page.feed(open(dom).read())
    want = expected_cells(manifest)
    ok = sorted(page.cells) == sorted(want)
    print("bit map: %d cells (%d layers x experts x 3 linears expected: %d)%s" % (
        len(page.cells), len(manifest["layers"]), len(want), "" if ok else " MISMATCH"))
    layers = len(manifest["layers"])
    allocated = sum(1 for l in manifest["layers"] if "tradeoff_loss" in l.get("allocation", {}))
    allocated += "tradeoff_loss" in manifest.get("allocation", {})
    print("memory bars %d, time bars %d of %d layers, trade-off charts %d of %d" % (
        page.bars.get("memory", 0), page.bars.get("time", 0), layers, page.figures, allocated))
    ok &= page.bars.get("memory") == 4 and page.bars.get("time") == layers
    ok &= page.figures == allocated
    size = png_size(png)
    print("screenshot: %s" % ("%dx%d PNG" % size if size else "not a PNG"))
    ok &= size is not None
    print("OK" if ok else "MISMATCH")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
