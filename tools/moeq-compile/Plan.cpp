//===- Plan.cpp - moeq-compile --dry-run and the closing summary ----------===//
#include "Plan.h"

#include "moeq/Artifact/Report.h"
#include "moeq/Dialect/MoEQ/IR/MoEQ.h"
#include "moeq/IO/Checkpoint.h"
#include "moeq/Passes/ExpertWeights.h"
#include "moeq/Quant/GPTQ.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/BuiltinOps.h"

#include "llvm/ADT/STLExtras.h"
#include "llvm/ADT/StringSet.h"
#include "llvm/Support/Chrono.h"
#include "llvm/Support/FormatVariadic.h"

#include <chrono>
#include <map>
#include <random>

using namespace mlir;
using namespace mlir::moeq;
namespace json = llvm::json;

namespace {

constexpr double kGiB = double(1ull << 30);

/// The routed (and, when quantized, shared) expert weights of the model.
struct ExpertInventory {
  int64_t moeLayers = 0, experts = 0, topK = 0;
  int64_t weights = 0;                 ///< quantized weights
  std::vector<std::pair<int64_t, int64_t>> shapes; ///< [rows, cols] of every quantized linear
  llvm::StringSet<> tensors;           ///< checkpoint tensors they come from
};

ExpertInventory takeInventory(ModuleOp module, bool withShared) {
  ExpertInventory inventory;
  module.walk([&](MoEOp moe) {
    ++inventory.moeLayers;
    inventory.experts = std::max<int64_t>(inventory.experts, moe.getGate().size());
    inventory.topK = moe.getTopK();
    for (const WeightSlot &slot : getWeightSlots(moe, withShared)) {
      ArrayRef<int64_t> shape = getWeightShape(slot.operand->get().getType());
      inventory.shapes.push_back({shape[0], shape[1]});
      inventory.weights += shape[0] * shape[1];
      if (auto param = slot.operand->get().getDefiningOp<ParamOp>()) {
        ExternalParamAttr ref = param.getSource() ? *param.getSource() : param.getRef();
        inventory.tensors.insert(ref.getKey().getValue());
      }
    }
  });
  return inventory;
}

/// Seconds the quantizer takes on one random `rows x cols` weight here
/// (one thread, as the quantizing passes run each weight).
double timeQuantizer(int64_t rows, int64_t cols, const quant::Scheme &scheme, bool gptq) {
  std::mt19937 rng(7);
  std::normal_distribution<float> normal(0, 0.02f);
  std::vector<float> weights(size_t(rows * cols));
  for (float &w : weights)
    w = normal(rng);
  std::vector<double> hessian;
  if (gptq) {
    // Any positive definite Hessian costs the same: a diagonal one.
    hessian.assign(size_t(cols * cols), 0.0);
    for (int64_t i = 0; i < cols; ++i)
      hessian[size_t(i * cols + i)] = 1.0 + double(i % 7);
  }
  quant::ScopedBLASThreads single(1);
  auto start = std::chrono::steady_clock::now();
  llvm::Expected<quant::QuantizedMatrix> q =
      quant::quantizeWeights(weights, rows, cols, scheme, hessian);
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (!q)
    llvm::consumeError(q.takeError());
  return seconds;
}

/// The most quantizations SliM-LLM's golden search of k makes on a weight
/// of `groups` column groups (k = 0 .. groups / 2), wherever the best k is:
/// the search itself, counted on unimodal losses.
int groupBitsSearchLength(int64_t groups) {
  size_t count = groups >= 2 ? size_t(groups / 2 + 1) : 0;
  int most = 0;
  for (size_t minimum = 0; minimum < count; ++minimum) {
    int evaluations = 0;
    auto loss = [&](size_t k) -> llvm::Expected<double> {
      ++evaluations;
      return std::fabs(double(k) - double(minimum));
    };
    llvm::Expected<size_t> found =
        quant::searchLeastLoss(count, loss, quant::CandidateSearch::Golden);
    if (!found)
      llvm::consumeError(found.takeError());
    most = std::max(most, evaluations);
  }
  return most;
}

std::string formatBytes(double bytes) {
  if (bytes < (1 << 20))
    return llvm::formatv("{0:F1} KiB", bytes / 1024).str();
  if (bytes < kGiB)
    return llvm::formatv("{0:F1} MiB", bytes / (1 << 20)).str();
  return llvm::formatv("{0:F2} GiB", bytes / kGiB).str();
}

std::string formatDuration(double seconds) {
  if (seconds < 120)
    return llvm::formatv("{0:F0} s", seconds).str();
  if (seconds < 7200)
    return llvm::formatv("{0:F0} min", seconds / 60).str();
  return llvm::formatv("{0:F1} h", seconds / 3600).str();
}

} // namespace

bool ::moeq::compile::printCompilePlan(ModuleOp module, const PlanOptions &o,
                                       llvm::raw_ostream &os) {
  auto fail = [&](const llvm::Twine &message) {
    os.flush(); // (the plan before the error, when both go to one terminal)
    llvm::errs() << "moeq-compile: error: --dry-run: " << message << "\n";
    return false;
  };
  auto model = module->getAttrOfType<DictionaryAttr>(mlir::moeq::kModelAttrName);
  auto text = [&](StringRef key) -> std::string {
    auto value = model ? model.getAs<StringAttr>(key) : StringAttr();
    return value ? value.getValue().str() : std::string("?");
  };
  auto integer = [&](StringRef key) -> int64_t {
    auto value = model ? model.getAs<IntegerAttr>(key) : IntegerAttr();
    return value ? value.getInt() : 0;
  };
  ExpertInventory inventory = takeInventory(module, o.quantizeShared);
  if (inventory.shapes.empty())
    return fail("the model has no MoE layer to quantize");

  // The schemes, each with its stored bits per weight at the model's widths.
  std::string error;
  SmallVector<SchemeAttr> candidates;
  for (StringRef name : llvm::split(o.avgBits > 0 ? o.schemes : o.scheme, ',')) {
    SchemeAttr scheme = SchemeAttr::fromMangledName(module.getContext(), name.trim(), error);
    if (!scheme)
      return fail(error);
    candidates.push_back(scheme);
  }
  auto storedBits = [&](SchemeAttr scheme) {
    double bits = 0;
    for (auto [rows, cols] : inventory.shapes)
      bits += double(rows) * cols * fitSchemeToInputs(scheme, cols).getBitsPerWeight(cols);
    return bits;
  };

  std::unique_ptr<io::Checkpoint> checkpoint;
  if (auto opened = io::Checkpoint::open(o.modelDir))
    checkpoint = std::move(*opened);
  else
    return fail(llvm::toString(opened.takeError()));
  uint64_t totalBytes = 0, expertBytes = 0;
  for (StringRef name : checkpoint->tensorNames()) {
    const io::TensorInfo *info = checkpoint->find(name);
    totalBytes += info->numBytes();
    // (MXFP4 experts: the weight's _blocks and _scales tensors.)
    StringRef base = name;
    if (!base.consume_back("_blocks"))
      base.consume_back("_scales");
    if (inventory.tensors.contains(name) || inventory.tensors.contains(base))
      expertBytes += info->numBytes();
  }

  os << "moeq-compile plan (--dry-run: nothing is quantized or written)\n";
  os << llvm::formatv("  model:      {0}: {1}, {2} decoder layers, {3} MoE layers of {4} "
                      "experts (top-{5}), hidden {6}, expert width {7}{8}\n",
                      o.modelDir, text("model_type"), integer("num_layers"),
                      inventory.moeLayers, inventory.experts, inventory.topK,
                      integer("hidden_size"), integer("moe_intermediate_size"),
                      integer("shared_intermediate_size")
                          ? llvm::formatv(", shared expert width {0}",
                                          integer("shared_intermediate_size"))
                                .str()
                          : std::string());
  os << llvm::formatv("  checkpoint: {0} of tensors, {1} of them the expert weights to "
                      "quantize ({2} linears, {3} weights{4})\n",
                      formatBytes(totalBytes), formatBytes(expertBytes), inventory.shapes.size(),
                      inventory.weights,
                      o.quantizeShared ? ", shared experts included" : "");
  os << "  target:     " << o.arch << (o.serve.empty() ? "" : ", served by " + o.serve)
     << "\n";
  double outputBits = 0;
  std::string budgetError;
  if (o.avgBits > 0) {
    os << llvm::formatv("  scheme:     mixed precision at {0:F3} average bits (granularity "
                        "{1}, r = {2:F2}), candidates:\n",
                        o.avgBits, o.granularity, o.r);
    double least = INFINITY;
    for (SchemeAttr scheme : candidates) {
      double bits = storedBits(scheme);
      least = std::min(least, bits);
      os << llvm::formatv("                {0,-14} {1:F3} bits per weight here\n",
                          scheme.getMangledName(), bits / inventory.weights);
    }
    if (least > o.avgBits * inventory.weights)
      budgetError = llvm::formatv("the memory budget of {0:F3} average bits cannot be met: "
                                  "the smallest candidate needs {1:F3}",
                                  o.avgBits, least / inventory.weights);
    outputBits = o.avgBits * inventory.weights;
  } else {
    outputBits = storedBits(candidates.front());
    os << llvm::formatv("  scheme:     {0} for every expert weight ({1:F3} bits per weight)\n",
                        candidates.front().getMangledName(), outputBits / inventory.weights);
  }
  os << "  method:     " << o.method
     << (o.method == "rtn" ? "" : o.withStatistics ? " with the statistics' Hessians"
                                                   : " without statistics (= round to nearest)")
     << (o.groupBits ? ", SliM-LLM group widths" : "")
     << (o.deltaCompression > 0 ? llvm::formatv(", D^2-MoE at {0} compression first",
                                               o.deltaCompression)
                                      .str()
                                : std::string())
     << "\n";
  os << llvm::formatv("  output:     about {0} experts.safetensors{1}, {2} "
                      "params.safetensors (the other tensors)\n",
                      formatBytes(outputBits / 8), o.avgBits > 0 ? " (at most: the budget)" : "",
                      formatBytes(double(totalBytes - expertBytes)));

  // Time: the quantizer timed here on the model's two weight shapes, times
  // the quantizations each weight gets (mixed precision: one per candidate
  // for the sensitivity, then the chosen one), over the threads.
  auto [gateRows, gateCols] = inventory.shapes.front();
  std::pair<int64_t, int64_t> down = inventory.shapes.front();
  for (auto shape : inventory.shapes)
    if (shape.second != gateCols) {
      down = shape;
      break;
    }
  quant::Scheme timed{4, 128, false};
  if (gateCols % 128 || down.second % 128)
    timed.groupSize = 0;
  bool gptq = o.method != "rtn" && o.withStatistics;
  double gateSeconds = timeQuantizer(gateRows, gateCols, timed, gptq);
  double downSeconds = timeQuantizer(down.first, down.second, timed, gptq);
  auto secondsOf = [&](int64_t rows, int64_t cols) {
    return cols == gateCols && rows == gateRows ? gateSeconds
           : cols == down.second                ? downSeconds
                                 : gateSeconds * double(rows) * cols / (gateRows * gateCols);
  };
  double serial = 0;
  for (auto [rows, cols] : inventory.shapes)
    serial += secondsOf(rows, cols);
  int quantizations = o.avgBits > 0 ? int(candidates.size()) + 1 : 1;
  double seconds = serial * quantizations / std::max(1u, o.threads);
  // SliM-LLM's widths: per weight in groups of 128, the k the golden
  // search tries (each one more quantization; at most, since only weights
  // given an asymmetric group scheme take part).
  double groupBitsSeconds = 0;
  // The finest group size a candidate that can mix widths has (more
  // groups, more k to try).
  int64_t mixGroup = 0;
  int mixable = 0; // candidates that can mix widths (each priced by a search)
  for (SchemeAttr scheme : candidates)
    if (canMixGroupWidths(fitSchemeToInputs(scheme, gateCols), gateCols)) {
      mixGroup = mixGroup ? std::min(mixGroup, scheme.getGroupSize()) : scheme.getGroupSize();
      ++mixable;
    }
  // Pricing: per mixable candidate one search, plus the uniform run, on
  // groupBitsRows of the weight's rows (GPTQ's time is linear in rows).
  double pricingSeconds = 0;
  if (o.groupBits && mixGroup) {
    for (auto [rows, cols] : inventory.shapes) {
      double search = secondsOf(rows, cols) * double(groupBitsSearchLength(cols / mixGroup));
      groupBitsSeconds += search;
      if (o.priceGroupBits && o.avgBits > 0) {
        double sampled = o.groupBitsRows > 0 && o.groupBitsRows < rows
                             ? double(o.groupBitsRows) / double(rows)
                             : 1.0;
        pricingSeconds += (search + secondsOf(rows, cols)) * sampled * mixable;
      }
    }
    groupBitsSeconds /= std::max(1u, o.threads);
    pricingSeconds /= std::max(1u, o.threads);
    seconds += groupBitsSeconds + pricingSeconds;
  }
  os << llvm::formatv("  time:       about {0} for the quantization on {1} thread{2} "
                      "({3} {4}{12} per weight; one {5}x{6} weight took {7:F4} s here, one "
                      "{8}x{9} {10:F4} s){11}\n",
                      formatDuration(seconds), o.threads, o.threads == 1 ? "" : "s",
                      quantizations, gptq ? "GPTQ run" : "rounding", gateRows, gateCols,
                      gateSeconds, down.first, down.second, downSeconds,
                      o.avgBits > 0 && o.withStatistics
                          ? ", plus the sensitivity's layer outputs on the calibration samples"
                          : "",
                      quantizations == 1 ? "" : "s");
  if (o.groupBits && mixGroup)
    os << llvm::formatv("              (of which at most {0} for SliM-LLM's group widths: "
                        "up to {1} more runs per {2}-wide weight in groups of {3})\n",
                        formatDuration(groupBitsSeconds),
                        groupBitsSearchLength(gateCols / mixGroup), gateCols, mixGroup);
  if (pricingSeconds > 0)
    os << llvm::formatv("              (and at most {0} for pricing them: a search per "
                        "candidate that can mix widths ({1}), on {2} rows of each weight)\n",
                        formatDuration(pricingSeconds), mixable,
                        o.groupBitsRows > 0 ? "up to " + std::to_string(o.groupBitsRows)
                                            : std::string("all"));
  if (!budgetError.empty())
    return fail(budgetError);
  return true;
}

void ::moeq::compile::printCompileSummary(const json::Object &manifest, uint64_t expertsBytes,
                                        uint64_t paramsBytes, size_t kernels, double seconds,
                                        llvm::raw_ostream &os) {
  os << "summary:\n  layer  experts  avg bits  schemes (linears)\n";
  const json::Array *layers = manifest.getArray("layers");
  double allWeights = 0, allBits = 0;
  for (const json::Value &value : layers ? *layers : json::Array()) {
    const json::Object *layer = value.getAsObject();
    const json::Array *experts = layer ? layer->getArray("experts") : nullptr;
    if (!experts)
      continue;
    std::map<std::string, int> schemes;
    double weights = 0, bits = 0;
    ::mlir::moeq::artifact::forEachExpertLinear(*layer, [&](const json::Object &outer) {
      const json::Object *linear = &outer;
      if (const json::Object *delta = linear->getObject("delta"))
        linear = delta->getObject("a");
      std::string scheme = linear ? linear->getString("scheme").value_or("f16").str() : "f16";
      ++schemes[scheme];
      std::optional<std::pair<int64_t, int64_t>> shape =
          linear ? ::mlir::moeq::artifact::linearShape(*linear) : std::nullopt;
      if (!shape)
        return;
      double count = double(shape->first) * double(shape->second);
      int64_t group = linear->getInteger("group_size").value_or(0);
      bool symmetric = linear->getBoolean("symmetric").value_or(false);
      int64_t width = linear->getInteger("bits").value_or(16);
      // Per group: an f16 scale (and zero when asymmetric), or a level
      // table of 2^bits f16 levels.
      double overhead = StringRef(scheme).ends_with("_lut") ? 16.0 * (1 << width)
                        : symmetric                         ? 16.0
                                                            : 32.0;
      weights += count;
      bits += count * (width + (group ? overhead / group : 0.0));
    });
    std::string list;
    for (const auto &[scheme, count] : schemes)
      list += llvm::formatv("{0}{1} x{2}", list.empty() ? "" : ", ", scheme, count).str();
    os << llvm::formatv("  {0,5}  {1,7}  {2,8:F3}  {3}\n", layer->getInteger("layer").value_or(-1),
                        experts->size(), weights ? bits / weights : 0.0, list);
    allWeights += weights;
    allBits += bits;
  }
  os << llvm::formatv("  total: {0:F3} bits per expert weight, experts.safetensors {1:F2} MiB, "
                      "params.safetensors {2:F2} MiB, {3} kernels, {4:F1} s\n",
                      allWeights ? allBits / allWeights : 0.0, expertsBytes / double(1 << 20),
                      paramsBytes / double(1 << 20), kernels, seconds);
}
