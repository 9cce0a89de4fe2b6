//===- Report.cpp - report.txt of a moeq artifact -------------------------===//
#include "moeq/Artifact/Report.h"

#include "llvm/ADT/STLExtras.h"
#include "llvm/ADT/StringMap.h"
#include "llvm/ADT/StringSet.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/raw_ostream.h"

#include <algorithm>
#include <climits>
#include <map>

using namespace mlir::moeq::artifact;
namespace json = llvm::json;
using llvm::StringRef;

//===----------------------------------------------------------------------===//
// Report data <-> JSON
//===----------------------------------------------------------------------===//

json::Value mlir::moeq::artifact::toJSON(const ReportData &data) {
  json::Array layers;
  for (const LayerWeights &layer : data.layers)
    layers.push_back(json::Object{{"layer", layer.layer},
                                  {"quantized_weights", layer.quantized},
                                  {"stored_bits", layer.storedBits},
                                  {"original_weights", layer.original}});
  json::Array assembled;
  for (const AssembledKernel &kernel : data.assembled)
    assembled.push_back(json::Object{{"kernel", kernel.kernel},
                                     {"registers", kernel.registers},
                                     {"spill_bytes", kernel.spillBytes},
                                     {"stack_bytes", kernel.stackBytes}});
  return json::Object{{"header", data.header},
                      {"mixed_precision", data.mixedPrecision},
                      {"tokens", data.tokensPerStep},
                      {"layers", std::move(layers)},
                      {"ptxas", data.ptxasRan ? json::Value(std::move(assembled))
                                              : json::Value(nullptr)}};
}

namespace {
/// Reads keys of one JSON object, remembering the first missing or
/// mistyped one for the error.
class ObjectReader {
public:
  ObjectReader(const json::Object &object, StringRef where) : object(object), where(where) {}

  int64_t integer(StringRef key) {
    if (std::optional<int64_t> value = object.getInteger(key))
      return *value;
    fail(key, "an integer");
    return 0;
  }
  double number(StringRef key) {
    if (std::optional<double> value = object.getNumber(key))
      return *value;
    fail(key, "a number");
    return 0;
  }
  bool boolean(StringRef key) {
    if (std::optional<bool> value = object.getBoolean(key))
      return *value;
    fail(key, "a boolean");
    return false;
  }
  std::string string(StringRef key) {
    if (std::optional<StringRef> value = object.getString(key))
      return value->str();
    fail(key, "a string");
    return "";
  }
  const json::Array *array(StringRef key) {
    if (const json::Array *value = object.getArray(key))
      return value;
    fail(key, "an array");
    return nullptr;
  }
  llvm::Error takeError() {
    if (error.empty())
      return llvm::Error::success();
    return llvm::createStringError(llvm::inconvertibleErrorCode(), error);
  }

private:
  void fail(StringRef key, StringRef kind) {
    if (error.empty())
      error = (llvm::Twine(where) + ": '" + key + "' is not " + kind).str();
  }
  const json::Object &object;
  std::string where, error;
};
} // namespace

llvm::Expected<ReportData> mlir::moeq::artifact::reportDataFromJSON(const json::Value &value) {
  const json::Object *object = value.getAsObject();
  if (!object)
    return llvm::createStringError("the report data is not an object");
  ObjectReader reader(*object, "report");
  ReportData data;
  data.header = reader.string("header");
  data.mixedPrecision = reader.boolean("mixed_precision");
  data.tokensPerStep = reader.integer("tokens");
  const json::Array *layers = reader.array("layers");
  // null: ptxas did not run.
  const json::Value *ptxas = object->get("ptxas");
  data.ptxasRan = ptxas && ptxas->kind() != json::Value::Null;
  const json::Array *assembled = data.ptxasRan ? reader.array("ptxas") : nullptr;
  if (llvm::Error err = reader.takeError())
    return std::move(err);
  for (const json::Value &entry : *layers) {
    const json::Object *layer = entry.getAsObject();
    if (!layer)
      return llvm::createStringError("report: a 'layers' entry is not an object");
    ObjectReader fields(*layer, "report layer");
    data.layers.push_back({fields.integer("layer"), fields.integer("quantized_weights"),
                           fields.number("stored_bits"), fields.integer("original_weights")});
    if (llvm::Error err = fields.takeError())
      return std::move(err);
  }
  for (const json::Value &entry : assembled ? *assembled : json::Array()) {
    const json::Object *kernel = entry.getAsObject();
    if (!kernel)
      return llvm::createStringError("report: a 'ptxas' entry is not an object");
    ObjectReader fields(*kernel, "report ptxas entry");
    data.assembled.push_back({fields.string("kernel"), fields.integer("registers"),
                              fields.integer("spill_bytes"), fields.integer("stack_bytes")});
    if (llvm::Error err = fields.takeError())
      return std::move(err);
  }
  return data;
}

//===----------------------------------------------------------------------===//
// Kernel order
//===----------------------------------------------------------------------===//

std::vector<KernelFile> mlir::moeq::artifact::orderKernels(const json::Object &manifest,
                                                           llvm::ArrayRef<KernelFile> kernels) {
  llvm::StringSet<> gemms;
  if (const json::Array *described = manifest.getArray("kernels"))
    for (const json::Value &value : *described)
      if (const json::Object *entry = value.getAsObject())
        if (entry->getObject("tile") || entry->getArray("groups"))
          gemms.insert(entry->getString("name").value_or(""));
  // First launches over the layers' plans, in layer and step order.
  std::vector<std::string> launched;
  llvm::StringSet<> seen;
  if (const json::Array *layers = manifest.getArray("layers"))
    for (const json::Value &layer : *layers) {
      const json::Object *plan = layer.getAsObject() ? layer.getAsObject()->getObject("plan")
                                                     : nullptr;
      const json::Array *steps = plan ? plan->getArray("steps") : nullptr;
      if (!steps)
        continue;
      for (const json::Value &step : *steps)
        if (std::optional<StringRef> name =
                step.getAsObject() ? step.getAsObject()->getString("launch") : std::nullopt)
          if (seen.insert(*name).second)
            launched.push_back(name->str());
    }
  std::map<std::string, KernelFile> byName;
  for (const KernelFile &kernel : kernels)
    byName.emplace(kernel.name, kernel);
  std::vector<KernelFile> ordered;
  auto take = [&](StringRef name) {
    auto it = byName.find(name.str());
    if (it == byName.end())
      return;
    ordered.push_back(it->second);
    byName.erase(it);
  };
  for (const std::string &name : launched)
    if (gemms.contains(name))
      take(name);
  for (const std::string &name : launched)
    take(name);
  for (auto &[name, kernel] : byName)
    ordered.push_back(kernel);
  return ordered;
}

//===----------------------------------------------------------------------===//
// Rendering
//===----------------------------------------------------------------------===//

namespace {

/// One linear of a manifest expert in the bit map: its weight bits, 'x'
/// for w8a8 and 'y' for w4a4 (activations quantized too), '-' unquantized.
/// A D^2-MoE linear shows the bits of its low-rank factors.
char bitsGlyph(const json::Object &expert, StringRef linear) {
  const json::Object *linears = expert.getObject("linears");
  const json::Object *entry = linears ? linears->getObject(linear) : nullptr;
  if (const json::Object *delta = entry ? entry->getObject("delta") : nullptr)
    entry = delta->getObject("a");
  std::optional<int64_t> value = entry ? entry->getInteger("bits") : std::nullopt;
  std::optional<int64_t> act = entry ? entry->getInteger("activation_bits") : std::nullopt;
  if (act && *act < 16)
    return *act == 8 ? 'x' : 'y';
  return value ? char('0' + *value) : '-';
}

/// The allocation of every layer (budget, bits used, loss, time, optimality
/// gap) and the bit map: one digit per expert for gate/up and for down.
void describeAllocation(const json::Array &layers, llvm::raw_ostream &os) {
  static const llvm::StringMap<StringRef> kLosses = {
      {"output", "measured layer-output error of each quantized linear (MxMoE)"},
      {"hessian", "Hessian proxy tr(dW H dW^T) per linear"},
      {"weight", "weight error ||dW||^2 (data-free: no --stats)"}};
  for (const json::Value &value : layers)
    if (const json::Object *layer = value.getAsObject())
      if (const json::Object *alloc = layer->getObject("allocation")) {
        StringRef loss = alloc->getString("sensitivity").value_or("");
        os << "sensitivity: " << loss << ": " << kLosses.lookup(loss) << "\n";
        os << llvm::formatv("cost model: {0} at {1} tokens per step\n",
                            alloc->getString("gpu").value_or(""),
                            alloc->getInteger("tokens").value_or(0));
        break;
      }
  os << "allocation per layer (exact; time = the expert GEMMs' predicted time):\n";
  os << "  layer  avg bits  loss          time (us)  objective   gap       solves\n";
  for (const json::Value &value : layers) {
    const json::Object *layer = value.getAsObject();
    const json::Object *alloc = layer ? layer->getObject("allocation") : nullptr;
    if (!alloc)
      continue;
    os << llvm::formatv("  {0,5}  {1,8:F3}  {2,12:E4}  {3,9:F2}  {4,10:F4}  {5,8:E1}  {6,5}\n",
                        layer->getInteger("layer").value_or(-1),
                        alloc->getNumber("avg_bits").value_or(0),
                        alloc->getNumber("loss").value_or(0),
                        alloc->getNumber("seconds").value_or(0) * 1e6,
                        alloc->getNumber("objective").value_or(0),
                        alloc->getNumber("gap").value_or(0),
                        alloc->getInteger("milp_solves").value_or(0));
  }
  os << "bit map (weight bits, one column per expert; gate and up share a scheme; "
        "x = w8a8, y = w4a4):\n";
  for (const json::Value &value : layers) {
    const json::Object *layer = value.getAsObject();
    const json::Array *experts = layer ? layer->getArray("experts") : nullptr;
    if (!experts)
      continue;
    std::string gateUp, down;
    for (const json::Value &expert : *experts)
      if (const json::Object *e = expert.getAsObject()) {
        gateUp += bitsGlyph(*e, "gate");
        down += bitsGlyph(*e, "down");
      }
    os << llvm::formatv("  layer {0,3}  gate/up {1}\n             down    {2}\n",
                        layer->getInteger("layer").value_or(-1), gateUp, down);
  }
}

/// The quantized weights and their stored size, summed in layer order.
void describeWeights(const ReportData &data, llvm::raw_ostream &os) {
  int64_t weights = 0, original = 0;
  double storedBits = 0;
  for (const LayerWeights &layer : data.layers) {
    weights += layer.quantized;
    storedBits += layer.storedBits;
    original += layer.original;
  }
  os << llvm::formatv("quantized weights: {0} ({1:F2} MiB at 16 bits -> {2:F2} MiB packed, "
                      "{3:F3} bits/weight with scales, zeros or level tables)\n",
                      weights, weights * 2.0 / (1 << 20), storedBits / 8 / (1 << 20),
                      weights ? storedBits / weights : 0.0);
  // D^2-MoE: the stored bits per weight of the original (uncompressed)
  // experts, what a memory budget refers to.
  if (original)
    os << llvm::formatv("D^2-MoE: {0:F3} stored bits per original expert weight ({1} weights)\n",
                        storedBits / original, original);
}

/// SliM-LLM: how many quantized expert linears trade bits between their
/// column groups, and how many groups moved; nothing when none does.
void describeGroupWidths(const json::Array &layers, llvm::raw_ostream &os) {
  int64_t linears = 0, mixed = 0, groups = 0, moved = 0;
  for (const json::Value &value : layers)
    if (const json::Object *layer = value.getAsObject())
      forEachExpertLinear(*layer, [&](const json::Object &linear) {
        std::optional<int64_t> bits = linear.getInteger("bits");
        if (!bits)
          return;
        ++linears;
        const json::Array *widths = linear.getArray("group_bits");
        if (!widths)
          return;
        ++mixed;
        groups += int64_t(widths->size());
        for (const json::Value &width : *widths)
          moved += width.getAsInteger().value_or(*bits) != *bits;
      });
  if (mixed)
    os << llvm::formatv("group widths (SliM-LLM): {0} of {1} quantized routed-expert linears mix "
                        "widths ({2} of their {3} column groups one bit up or down, as many "
                        "each way); the others measured better with uniform widths\n",
                        mixed, linears, moved, groups);
}

void describeDecompositions(const json::Array &layers, llvm::raw_ostream &os) {
  for (const json::Value &value : layers) {
    const json::Object *layer = value.getAsObject();
    const json::Object *delta = layer ? layer->getObject("delta") : nullptr;
    if (!delta)
      continue;
    const json::Array *ranks = delta->getArray("ranks");
    auto rank = [&](size_t i) {
      return ranks && ranks->size() > i ? (*ranks)[i].getAsInteger().value_or(0) : 0;
    };
    os << llvm::formatv("  layer {0}: D^2-MoE base + rank {1}/{2}/{3} deltas ({4} merge, "
                        "{5} SVD), {6:P1} of the expert parameters kept, base channels "
                        "{7}\n",
                        layer->getInteger("layer").value_or(-1), rank(0), rank(1), rank(2),
                        delta->getString("merge").value_or(""),
                        delta->getBoolean("whiten").value_or(false) ? "whitened" : "plain",
                        delta->getNumber("params_kept").value_or(0),
                        delta->getInteger("base_channels").value_or(0));
  }
}

const json::Object *findKernel(const json::Object &manifest, StringRef name) {
  if (const json::Array *described = manifest.getArray("kernels"))
    for (const json::Value &value : *described)
      if (const json::Object *entry = value.getAsObject())
        if (entry->getString("name") == name)
          return entry;
  return nullptr;
}

void describeKernel(const KernelFile &kernel, StringRef chip, const json::Object *entry,
                    llvm::raw_ostream &os) {
  os << "  kernels/" << kernel.name << ".ptx (" << chip << ", " << kernel.ptxBytes
     << " bytes of PTX";
  if (entry && entry->getBoolean("persistent").value_or(false))
    os << llvm::formatv(", persistent over {0} experts, {1} warps, {2} B shared",
                        entry->getArray("groups") ? entry->getArray("groups")->size() : 0,
                        entry->getInteger("warps").value_or(0),
                        entry->getInteger("shared_memory_bytes").value_or(0));
  else if (const json::Object *tile = entry ? entry->getObject("tile") : nullptr)
    os << llvm::formatv(", {0} {1}x{2}x{3}, {4} warps, {5} stages, {6} B shared",
                        tile->getString("path").value_or(""), tile->getInteger("bm").value_or(0),
                        tile->getInteger("bn").value_or(0), tile->getInteger("bk").value_or(0),
                        tile->getInteger("warps").value_or(0),
                        tile->getInteger("stages").value_or(0),
                        entry->getInteger("shared_memory_bytes").value_or(0));
  os << ")\n";
}

/// The assembler's summary, spilling kernels in the report's kernel order.
void describeAssembly(const ReportData &data, llvm::ArrayRef<KernelFile> ordered,
                      StringRef chip, llvm::raw_ostream &os) {
  if (!data.ptxasRan || data.assembled.empty()) {
    os << "ptxas: not run (no CUDA toolkit found, or --ptxas=none): the kernels are not "
          "assembled\n";
    return;
  }
  std::map<std::string, const AssembledKernel *> byName;
  int64_t fewest = INT64_MAX, most = 0;
  for (const AssembledKernel &r : data.assembled) {
    byName[r.kernel] = &r;
    fewest = std::min(fewest, r.registers);
    most = std::max(most, r.registers);
  }
  std::string spilling;
  for (const KernelFile &kernel : ordered) {
    auto it = byName.find(kernel.name);
    if (it == byName.end())
      continue;
    const AssembledKernel &r = *it->second;
    if (r.spillBytes || r.stackBytes)
      spilling += llvm::formatv(" {0} ({1} B spills, {2} B stack)", r.kernel, r.spillBytes,
                                r.stackBytes);
  }
  os << llvm::formatv("ptxas: {0} kernels assembled for {1}, {2}-{3} registers, {4}\n",
                      data.assembled.size(), chip, fewest, most,
                      spilling.empty() ? std::string("no spills, no stack")
                                       : "spilling:" + spilling);
}

} // namespace

std::string mlir::moeq::artifact::renderReport(const ReportData &data,
                                               const json::Object &manifest,
                                               llvm::ArrayRef<KernelFile> kernels) {
  std::string text;
  llvm::raw_string_ostream os(text);
  os << "moeq compile report\n===================\n";
  if (const json::Object *partial = manifest.getObject("partial")) {
    const json::Array *range = partial->getArray("layers");
    if (range && range->size() == 2)
      os << llvm::formatv("partial artifact: layers {0}:{1} of {2} (join the slices with "
                          "moeq-merge)\n",
                          (*range)[0].getAsInteger().value_or(-1),
                          (*range)[1].getAsInteger().value_or(-1),
                          partial->getInteger("num_layers").value_or(-1));
  }
  os << data.header;
  describeWeights(data, os);
  if (const json::Array *layers = manifest.getArray("layers")) {
    os << "MoE layers: " << layers->size() << "\n";
    if (data.mixedPrecision)
      describeAllocation(*layers, os);
    describeGroupWidths(*layers, os);
    describeDecompositions(*layers, os);
  }
  StringRef chip = manifest.getString("target").value_or("");
  std::vector<KernelFile> ordered = orderKernels(manifest, kernels);
  os << llvm::formatv("kernels ({0}; tiles from the cost model at {1} tokens per step):\n",
                      ordered.size(), data.tokensPerStep);
  for (const KernelFile &kernel : ordered)
    describeKernel(kernel, chip, findKernel(manifest, kernel.name), os);
  describeAssembly(data, ordered, chip, os);
  return text;
}
