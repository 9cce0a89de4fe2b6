//===- ReportHTML.cpp - report.html of a moeq artifact --------------------===//
//
// The report's facts as pictures, in one self-contained HTML file (inline
// SVG and CSS, no script, nothing fetched): the bit map (one cell per layer,
// expert and linear, coloured by bits), memory by component, the cost
// model's predicted time per layer, and the allocation's loss/time
// trade-off. A function of the manifest, the report data and the file sizes
// only, so that moeq-merge renders the page one compile would.
//
//===----------------------------------------------------------------------===//
#include "moeq/Artifact/Report.h"
#include "moeq/CostModel/CostModel.h"

#include "llvm/ADT/STLExtras.h"
#include "llvm/ADT/SmallString.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/raw_ostream.h"

#include <algorithm>
#include <cmath>

using namespace mlir::moeq::artifact;
namespace json = llvm::json;
using llvm::StringRef;

namespace {

constexpr StringRef kLinears[] = {"gate", "up", "down"};

std::string escape(StringRef text) {
  std::string out;
  for (char c : text) {
    switch (c) {
    case '&': out += "&amp;"; break;
    case '<': out += "&lt;"; break;
    case '>': out += "&gt;"; break;
    case '"': out += "&quot;"; break;
    default: out += c;
    }
  }
  return out;
}

/// What a bit-map cell shows of one linear: its weight bits (the factors'
/// for D^2-MoE), 16 when unquantized, and whether activations are
/// quantized too.
struct CellValue {
  int64_t bits = 16;
  int64_t actBits = 16;
  std::string scheme = "not quantized";
};

CellValue cellValue(const json::Object &expert, StringRef linear) {
  const json::Object *linears = expert.getObject("linears");
  const json::Object *entry = linears ? linears->getObject(linear) : nullptr;
  std::string prefix;
  if (const json::Object *delta = entry ? entry->getObject("delta") : nullptr) {
    entry = delta->getObject("a");
    prefix = "D^2-MoE factors ";
  }
  CellValue value;
  if (!entry || !entry->getInteger("bits"))
    return value;
  value.bits = *entry->getInteger("bits");
  value.actBits = entry->getInteger("activation_bits").value_or(16);
  value.scheme = prefix + entry->getString("scheme").value_or("?").str();
  return value;
}

/// Viridis, one colour per weight width (colour-blind safe, ordered by
/// lightness); activations quantized too in warm colours.
StringRef cellColour(const CellValue &value) {
  static constexpr StringRef kBits[] = {"#440154", "#46327e", "#365c8d", "#277f8e",
                                        "#1fa187", "#4ac16d", "#a0da39", "#fde725"};
  if (value.actBits == 8)
    return "#e6550d";
  if (value.actBits < 8)
    return "#d62728";
  if (value.bits >= 1 && value.bits <= 8)
    return kBits[value.bits - 1];
  return "#cccccc";
}

const json::Array *experts(const json::Object &layer) { return layer.getArray("experts"); }

/// One SVG: per MoE layer three rows (gate, up, down), one column per
/// expert; every cell a <rect class="cell"> with its layer, expert, linear
/// and bits as data attributes and a tooltip.
void renderBitMap(const json::Array &layers, llvm::raw_ostream &os) {
  size_t width = 0;
  for (const json::Value &value : layers)
    if (const json::Object *layer = value.getAsObject())
      if (const json::Array *list = experts(*layer))
        width = std::max(width, list->size());
  if (!width) {
    os << "<p>No routed experts in the manifest.</p>\n";
    return;
  }
  int cell = int(std::clamp<size_t>(880 / width, 2, 16));
  int row = std::clamp(cell, 5, 12);
  int left = 96, top = 18, gap = 6;
  int height = top + int(layers.size()) * (3 * row + gap);
  os << llvm::formatv("<svg id=\"bitmap\" xmlns=\"http://www.w3.org/2000/svg\" width=\"{0}\" "
                      "height=\"{1}\" role=\"img\" aria-label=\"bits per layer, expert and "
                      "linear\">\n",
                      left + int(width) * cell + 8, height);
  os << llvm::formatv("<text x=\"{0}\" y=\"12\" class=\"axis\">experts 0-{1}</text>\n", left,
                      width - 1);
  int y = top;
  for (const json::Value &value : layers) {
    const json::Object *layer = value.getAsObject();
    const json::Array *list = layer ? experts(*layer) : nullptr;
    int64_t index = layer ? layer->getInteger("layer").value_or(-1) : -1;
    for (auto [r, linear] : llvm::enumerate(kLinears)) {
      os << llvm::formatv("<text x=\"{0}\" y=\"{1}\" class=\"label\">{2}</text>\n", left - 4,
                          y + int(r) * row + row - 1,
                          r == 0 ? llvm::formatv("layer {0} {1}", index, linear).str()
                                 : linear.str());
      for (auto [e, expert] : llvm::enumerate(list ? *list : json::Array())) {
        const json::Object *object = expert.getAsObject();
        CellValue v = object ? cellValue(*object, linear) : CellValue();
        os << llvm::formatv("<rect class=\"cell\" data-layer=\"{0}\" data-expert=\"{1}\" "
                            "data-linear=\"{2}\" data-bits=\"{3}\" x=\"{4}\" y=\"{5}\" "
                            "width=\"{6}\" height=\"{7}\" fill=\"{8}\"><title>layer {0} "
                            "expert {1} {2}: {9}</title></rect>\n",
                            index, e, linear, v.bits, left + int(e) * cell,
                            y + int(r) * row, std::max(cell - (cell > 4 ? 1 : 0), 1),
                            row - 1, cellColour(v), escape(v.scheme));
      }
    }
    y += 3 * row + gap;
  }
  os << "</svg>\n<div class=\"legend\">";
  for (int64_t bits = 1; bits <= 8; ++bits)
    os << llvm::formatv("<span><i style=\"background:{0}\"></i>{1} bit{2}</span>",
                        cellColour({bits, 16, ""}), bits, bits == 1 ? "" : "s");
  os << llvm::formatv("<span><i style=\"background:{0}\"></i>w8a8</span>"
                      "<span><i style=\"background:{1}\"></i>w4a4</span>"
                      "<span><i style=\"background:{2}\"></i>not quantized</span></div>\n",
                      cellColour({8, 8, ""}), cellColour({4, 4, ""}),
                      cellColour({16, 16, ""}));
}

/// A horizontal bar chart: one bar per (label, value), `unit` after the
/// values.
void renderBars(StringRef id, llvm::ArrayRef<std::pair<std::string, double>> bars,
                StringRef unit, llvm::raw_ostream &os) {
  double most = 0;
  for (const auto &bar : bars)
    most = std::max(most, bar.second);
  int left = 250, barWidth = 520, row = 20;
  os << llvm::formatv("<svg id=\"{0}\" xmlns=\"http://www.w3.org/2000/svg\" width=\"{1}\" "
                      "height=\"{2}\">\n",
                      id, left + barWidth + 120, int(bars.size()) * row + 4);
  for (auto [i, bar] : llvm::enumerate(bars)) {
    int y = int(i) * row + 2;
    double length = most > 0 ? barWidth * bar.second / most : 0;
    os << llvm::formatv("<text x=\"{0}\" y=\"{1}\" class=\"label\">{2}</text>"
                        "<rect class=\"bar\" x=\"{3}\" y=\"{4}\" width=\"{5:F1}\" "
                        "height=\"{6}\"/><text x=\"{7:F1}\" y=\"{1}\" class=\"value\">{8} "
                        "{9}</text>\n",
                        left - 6, y + row - 7, escape(bar.first), left, y, length, row - 4,
                        left + length + 4,
                        bar.second >= 100 ? llvm::formatv("{0:F0}", bar.second).str()
                                          : llvm::formatv("{0:F2}", bar.second).str(),
                        unit);
  }
  os << "</svg>\n";
}

/// Memory by component: the expert codes, their scales/zeros/level tables
/// (the rest of the stored bits), the other tensors and the PTX.
void renderMemory(const ReportData &data, const json::Array &layers, const ArtifactSizes &sizes,
                  llvm::ArrayRef<KernelFile> kernels, llvm::raw_ostream &os) {
  double codeBits = 0, storedBits = 0;
  for (const json::Value &value : layers)
    if (const json::Object *layer = value.getAsObject())
      forEachExpertLinear(*layer, [&](const json::Object &linear) {
        // (D^2-MoE factors: counted in the stored bits only.)
        if (linear.getObject("delta"))
          return;
        if (auto shape = linearShape(linear))
          codeBits += double(shape->first) * double(shape->second) *
                      double(linear.getInteger("bits").value_or(0));
      });
  for (const LayerWeights &layer : data.layers)
    storedBits += layer.storedBits;
  uint64_t ptx = 0;
  for (const KernelFile &kernel : kernels)
    ptx += kernel.ptxBytes;
  constexpr double MiB = 1 << 20;
  std::vector<std::pair<std::string, double>> bars = {
      {"expert weight codes", codeBits / 8 / MiB},
      {"scales, zeros, level tables", std::max(0.0, storedBits - codeBits) / 8 / MiB},
      {"other tensors (params.safetensors)", double(sizes.paramsBytes) / MiB},
      {"PTX kernels", double(ptx) / MiB}};
  renderBars("memory", bars, "MiB", os);
  os << llvm::formatv("<p class=\"note\">experts.safetensors {0:F2} MiB, params.safetensors "
                      "{1:F2} MiB on disk; the other tensors are the attention, embeddings, "
                      "norms, routers and any expert kept in 16 bits.</p>\n",
                      double(sizes.expertsBytes) / MiB, double(sizes.paramsBytes) / MiB);
}

/// The cost model's time of one layer's expert GEMMs at `tokens` tokens
/// per step, routed evenly (tokens x top-k / experts rows per expert);
/// 0 when a linear has no weight format the model prices (D^2-MoE).
double predictLayerSeconds(const json::Object &layer, const mlir::moeq::cost::GpuSpec &gpu,
                           int64_t tokens) {
  int64_t count = layer.getInteger("num_experts").value_or(0);
  int64_t topK = layer.getInteger("top_k").value_or(0);
  if (!count || !topK || !experts(layer))
    return 0;
  int64_t rows = std::max<int64_t>(1, (tokens * topK + count - 1) / count);
  double seconds = 0;
  bool priced = true;
  forEachExpertLinear(layer, [&](const json::Object &linear) {
    std::optional<std::pair<int64_t, int64_t>> shape = linearShape(linear);
    if (!shape || linear.getObject("delta"))
      priced = false;
    if (!priced)
      return;
    auto [n, k] = *shape;
    mlir::moeq::cost::WeightFormat format;
    format.weightBits = unsigned(linear.getInteger("bits").value_or(16));
    format.actBits = unsigned(linear.getInteger("activation_bits").value_or(16));
    int64_t group = linear.getInteger("group_size").value_or(0);
    format.groupSize = group == k ? 0 : group;
    format.symmetric = linear.getBoolean("symmetric").value_or(false);
    format.levelTable = linear.getString("scheme").value_or("").ends_with("_lut");
    format.groupWidths = linear.getArray("group_bits") != nullptr;
    seconds += mlir::moeq::cost::chooseKernel(gpu, rows, n, k, format).cost.seconds;
  });
  if (!priced)
    return 0;
  return seconds;
}

void renderTime(const ReportData &data, const json::Object &manifest, const json::Array &layers,
                llvm::raw_ostream &os) {
  // With an allocation, the time it was made on (the measured routing
  // shares); else the cost model at even routing.
  bool allocated = !layers.empty();
  for (const json::Value &value : layers) {
    const json::Object *layer = value.getAsObject();
    const json::Object *allocation = layer ? layer->getObject("allocation") : nullptr;
    allocated &= allocation && allocation->getNumber("seconds").has_value();
  }
  StringRef chip = manifest.getString("target").value_or("");
  const mlir::moeq::cost::GpuSpec *gpu = mlir::moeq::cost::defaultGpuForChip(chip);
  if (!allocated && !gpu) {
    os << "<p>No cost model for " << escape(chip) << ".</p>\n";
    return;
  }
  int64_t tokens = data.tokensPerStep > 0 ? data.tokensPerStep : 512;
  std::vector<std::pair<std::string, double>> bars;
  std::string gpuName = gpu ? gpu->name.str() : "";
  for (const json::Value &value : layers)
    if (const json::Object *layer = value.getAsObject()) {
      const json::Object *allocation = layer->getObject("allocation");
      double seconds = allocated ? *allocation->getNumber("seconds")
                                 : predictLayerSeconds(*layer, *gpu, tokens);
      if (allocated)
        gpuName = allocation->getString("gpu").value_or(gpuName).str();
      bars.push_back(
          {llvm::formatv("layer {0}", layer->getInteger("layer").value_or(-1)).str(),
           seconds * 1e6});
    }
  os << llvm::formatv("<p class=\"note\">The cost model's prediction for {0} at {1} tokens "
                      "per step, {2}: the expert GEMMs only. A prediction, not a "
                      "measurement.</p>\n",
                      escape(gpuName), tokens,
                      allocated ? "each expert's rows from its measured routing share (what "
                                  "the allocation minimised)"
                                : "routed evenly (tokens x top-k / experts rows per expert)");
  renderBars("time", bars, "us", os);
}

/// One small chart of a trade-off: the frontier's (time, loss) vertices
/// (loss on a log scale) and the chosen point.
void renderFrontier(StringRef title, const json::Object &allocation, llvm::raw_ostream &os) {
  const json::Array *losses = allocation.getArray("tradeoff_loss");
  const json::Array *times = allocation.getArray("tradeoff_seconds");
  if (!losses || !times || losses->size() != times->size() || losses->empty())
    return;
  std::vector<std::pair<double, double>> points; // (us, log10 loss)
  for (size_t i = 0; i < losses->size(); ++i)
    points.push_back({(*times)[i].getAsNumber().value_or(0) * 1e6,
                      std::log10(std::max((*losses)[i].getAsNumber().value_or(0), 1e-300))});
  std::pair<double, double> chosen = {
      allocation.getNumber("seconds").value_or(0) * 1e6,
      std::log10(std::max(allocation.getNumber("loss").value_or(0), 1e-300))};
  double x0 = chosen.first, x1 = chosen.first, y0 = chosen.second, y1 = chosen.second;
  for (auto [x, y] : points) {
    x0 = std::min(x0, x);
    x1 = std::max(x1, x);
    y0 = std::min(y0, y);
    y1 = std::max(y1, y);
  }
  double xSpan = x1 > x0 ? x1 - x0 : 1, ySpan = y1 > y0 ? y1 - y0 : 1;
  int width = 220, height = 150, pad = 28;
  auto px = [&](double x) { return pad + (width - 2 * pad) * (x - x0) / xSpan; };
  auto py = [&](double y) { return height - pad - (height - 2 * pad) * (y - y0) / ySpan; };
  os << llvm::formatv("<figure class=\"frontier\"><svg xmlns=\"http://www.w3.org/2000/svg\" "
                      "width=\"{0}\" height=\"{1}\"><rect class=\"frame\" x=\"{2}\" y=\"{2}\" "
                      "width=\"{3}\" height=\"{4}\"/><polyline class=\"front\" points=\"",
                      width, height, pad, width - 2 * pad, height - 2 * pad);
  for (auto [x, y] : points)
    os << llvm::formatv("{0:F1},{1:F1} ", px(x), py(y));
  os << "\"/>";
  for (auto [x, y] : points)
    os << llvm::formatv("<circle class=\"vertex\" cx=\"{0:F1}\" cy=\"{1:F1}\" r=\"2.5\"/>",
                        px(x), py(y));
  os << llvm::formatv("<circle class=\"chosen\" cx=\"{0:F1}\" cy=\"{1:F1}\" r=\"4.5\"><title>"
                      "chosen: loss {2:E3}, {3:F2} us</title></circle>",
                      px(chosen.first), py(chosen.second),
                      allocation.getNumber("loss").value_or(0), chosen.first);
  os << llvm::formatv("<text x=\"{0}\" y=\"{1}\" class=\"axis\">{2:F2}-{3:F2} us</text>"
                      "<text x=\"2\" y=\"{4}\" class=\"axis\">loss 1e{5:F1}-1e{6:F1}</text>"
                      "</svg><figcaption>{7} ({8} frontier points)</figcaption></figure>\n",
                      pad, height - 8, x0, x1, pad - 8, y0, y1, escape(title), points.size());
}

void renderTradeoff(const json::Object &manifest, const json::Array &layers,
                    llvm::raw_ostream &os) {
  os << "<p class=\"note\">The convex-hull vertices of the achievable (time, loss) points the "
        "exact allocator visited (loss on a log scale; time predicted by the cost model with "
        "the measured routing), and the point minimising r log L + (1 - r) log T "
        "(red).</p>\n<div class=\"frontiers\">\n";
  if (const json::Object *model = manifest.getObject("allocation"))
    renderFrontier("the model (one scheme per layer)", *model, os);
  for (const json::Value &value : layers)
    if (const json::Object *layer = value.getAsObject())
      if (const json::Object *allocation = layer->getObject("allocation"))
        renderFrontier(llvm::formatv("layer {0}", layer->getInteger("layer").value_or(-1)).str(),
                       *allocation, os);
  os << "</div>\n";
}

constexpr StringRef kStyle = R"css(
body { font: 14px/1.4 system-ui, sans-serif; margin: 24px; color: #222; max-width: 1100px; }
h1 { font-size: 22px; } h2 { font-size: 17px; margin-top: 28px; }
pre { background: #f6f6f6; padding: 8px; white-space: pre-wrap; }
svg text { font: 11px system-ui, sans-serif; fill: #222; }
svg text.label { text-anchor: end; } svg text.axis { fill: #666; }
.bar { fill: #277f8e; } .frame { fill: none; stroke: #bbb; }
.front { fill: none; stroke: #365c8d; stroke-width: 1.5; } .vertex { fill: #365c8d; }
.chosen { fill: #d62728; } .note { color: #555; }
.legend span { margin-right: 12px; white-space: nowrap; }
.legend i { display: inline-block; width: 12px; height: 12px; margin-right: 4px;
            vertical-align: -2px; }
.frontiers { display: flex; flex-wrap: wrap; gap: 8px; }
figure.frontier { margin: 0; } figcaption { font-size: 12px; color: #444; }
)css";

} // namespace

void mlir::moeq::artifact::forEachExpertLinear(
    const json::Object &layer, llvm::function_ref<void(const json::Object &)> visit) {
  for (const json::Value &expert : experts(layer) ? *experts(layer) : json::Array())
    if (const json::Object *linears =
            expert.getAsObject() ? expert.getAsObject()->getObject("linears") : nullptr)
      for (const auto &entry : *linears)
        if (const json::Object *linear = entry.second.getAsObject())
          visit(*linear);
}

std::optional<std::pair<int64_t, int64_t>>
mlir::moeq::artifact::linearShape(const json::Object &linear) {
  const json::Array *shape = linear.getArray("shape");
  if (!shape || shape->size() != 2)
    return std::nullopt;
  return std::make_pair((*shape)[0].getAsInteger().value_or(0),
                        (*shape)[1].getAsInteger().value_or(0));
}

ArtifactSizes mlir::moeq::artifact::artifactSizesIn(StringRef dir) {
  auto size = [&](StringRef name) -> uint64_t {
    llvm::SmallString<256> path(dir);
    llvm::sys::path::append(path, name);
    uint64_t bytes = 0;
    return llvm::sys::fs::file_size(path, bytes) ? 0 : bytes;
  };
  return {size("experts.safetensors"), size("params.safetensors")};
}

std::string mlir::moeq::artifact::renderReportHTML(const ReportData &data,
                                                   const json::Object &manifest,
                                                   llvm::ArrayRef<KernelFile> kernels,
                                                   const ArtifactSizes &sizes) {
  std::string text;
  llvm::raw_string_ostream os(text);
  const json::Array empty;
  const json::Array *layers = manifest.getArray("layers");
  if (!layers)
    layers = &empty;
  os << "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        "<title>moeq compile report</title><style>"
     << kStyle << "</style></head><body>\n<h1>moeq compile report</h1>\n<pre>"
     << escape(data.header) << "</pre>\n";
  int64_t weights = 0;
  double storedBits = 0;
  for (const LayerWeights &layer : data.layers) {
    weights += layer.quantized;
    storedBits += layer.storedBits;
  }
  os << llvm::formatv("<p>{0} MoE layers, {1} quantized weights at {2:F3} stored bits per "
                      "weight, {3} kernels for {4}.</p>\n",
                      layers->size(), weights, weights ? storedBits / weights : 0.0,
                      kernels.size(), escape(manifest.getString("target").value_or("")));
  os << "<h2>Bits per layer, expert and linear</h2>\n";
  renderBitMap(*layers, os);
  os << "<h2>Memory by component</h2>\n";
  renderMemory(data, *layers, sizes, kernels, os);
  os << "<h2>Predicted time per layer</h2>\n";
  renderTime(data, manifest, *layers, os);
  if (data.mixedPrecision) {
    os << "<h2>The allocation's loss/time trade-off</h2>\n";
    renderTradeoff(manifest, *layers, os);
  }
  os << "</body></html>\n";
  return text;
}
