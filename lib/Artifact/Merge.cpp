//===- Merge.cpp - partial artifacts and their merge ----------------------===//
//
// A merged artifact must be the bytes of a single compile, so every part of
// it is rebuilt the way moeq-compile builds it:
//  - manifest.json: layers in layer order; device_params renumbered (one
//    entry per tensor for the whole artifact, first use first, address
//    tables per use); kernels by name (std::map order, like the compiler's)
//    with the largest dynamic shared memory of any launch; passthrough by
//    tensor name (the importer's order); printed by llvm::json, which sorts
//    keys and round-trips numbers;
//  - the safetensors files: SafeTensorsWriter orders tensors by dtype size
//    and name, so the union of the parts' tensors gives the single file;
//  - kernels/: the union (a kernel's name carries a hash of its
//    configuration, so a name shared by slices is one kernel, stored once);
//  - report.txt and report.html: renderReport() and renderReportHTML() over
//    the merged manifest and report data.
//
//===----------------------------------------------------------------------===//
#include "moeq/Artifact/Merge.h"
#include "moeq/Artifact/HFFiles.h"
#include "moeq/IO/AtomicOutput.h"
#include "moeq/IO/SafeTensors.h"
#include "moeq/Artifact/FileDigests.h"
#include "moeq/Runtime/ManifestVersion.h"

#include "llvm/ADT/STLExtras.h"
#include "llvm/ADT/SmallString.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/raw_ostream.h"
#include "llvm/Support/xxhash.h"

#include <map>
#include <set>

using namespace mlir::moeq;
using namespace mlir::moeq::artifact;
namespace json = llvm::json;
using llvm::Error;
using llvm::Expected;
using llvm::StringRef;
using llvm::Twine;

/// Bytes per read when tensors are copied or compared.
static constexpr uint64_t kChunkBytes = uint64_t(4) << 20;

/// The entries of an array that may be absent.
static const json::Array &entries(const json::Array *array) {
  static const json::Array empty;
  return array ? *array : empty;
}

//===----------------------------------------------------------------------===//
// Partial descriptions
//===----------------------------------------------------------------------===//

bool mlir::moeq::artifact::isArtifactEntry(StringRef name, bool isDirectory) {
  if (isDirectory)
    return name == "kernels" || name == kHFDirectory;
  return llvm::is_contained(
      {"manifest.json", "experts.safetensors", "params.safetensors", "report.txt",
       "report.html"},
      name);
}

json::Value mlir::moeq::artifact::toJSON(const PartialInfo &info) {
  return json::Object{{"layers", json::Array{info.begin, info.end}},
                      {"num_layers", info.numLayers},
                      {"options", json::Object(info.options)},
                      {"fingerprint", info.fingerprint},
                      {"report", toJSON(info.report)}};
}

Expected<PartialInfo> mlir::moeq::artifact::partialFromJSON(const json::Value &value) {
  const json::Object *object = value.getAsObject();
  if (!object)
    return llvm::createStringError("'partial' is not an object");
  const json::Array *range = object->getArray("layers");
  std::optional<int64_t> begin, end;
  if (range && range->size() == 2) {
    begin = (*range)[0].getAsInteger();
    end = (*range)[1].getAsInteger();
  }
  std::optional<int64_t> numLayers = object->getInteger("num_layers");
  const json::Object *options = object->getObject("options");
  std::optional<StringRef> fingerprint = object->getString("fingerprint");
  const json::Value *report = object->get("report");
  if (!begin || !end || !numLayers || !options || !fingerprint || !report)
    return llvm::createStringError(
        "'partial' needs 'layers' [begin, end], 'num_layers', 'options', 'fingerprint' "
        "and 'report'");
  if (!(0 <= *begin && *begin < *end && *end <= *numLayers))
    return llvm::createStringError(llvm::formatv(
        "'partial': layers {0}:{1} are not a range of the {2} layers", *begin, *end, *numLayers));
  Expected<ReportData> data = reportDataFromJSON(*report);
  if (!data)
    return data.takeError();
  return PartialInfo{*begin, *end, *numLayers, *options, fingerprint->str(), std::move(*data)};
}

std::string mlir::moeq::artifact::fingerprintOptions(const json::Object &options) {
  std::string text = llvm::formatv("{0}", json::Value(json::Object(options))).str();
  return llvm::formatv("{0:x16}", llvm::xxh3_64bits(text)).str();
}

Expected<std::pair<int64_t, int64_t>>
mlir::moeq::artifact::parseLayerRange(StringRef text, int64_t numLayers) {
  auto [first, last] = text.split(':');
  int64_t begin = 0, end = 0;
  if (!text.contains(':') || first.getAsInteger(10, begin) || last.getAsInteger(10, end))
    return llvm::createStringError("--layers must be A:B (decoder layers A to B-1), got '" +
                                   text + "'");
  if (!(0 <= begin && begin < end && end <= numLayers))
    return llvm::createStringError(
        llvm::formatv("--layers {0}: the model has layers 0:{1}; a slice A:B needs "
                      "0 <= A < B <= {1}",
                      text, numLayers));
  return std::make_pair(begin, end);
}

std::optional<int64_t> mlir::moeq::artifact::tensorLayer(StringRef name, int64_t numLayers) {
  size_t at = name.starts_with("layers.") ? 0 : name.find(".layers.");
  if (at == StringRef::npos)
    return std::nullopt;
  StringRef rest = name.drop_front(at == 0 && name.starts_with("layers.") ? 7 : at + 8);
  auto [digits, tail] = rest.split('.');
  int64_t layer = 0;
  if (!rest.contains('.') || digits.getAsInteger(10, layer) || layer < 0 || layer >= numLayers)
    return std::nullopt;
  return layer;
}

bool mlir::moeq::artifact::sliceOwnsTensor(StringRef name, int64_t begin, int64_t end,
                                           int64_t numLayers) {
  std::optional<int64_t> layer = tensorLayer(name, numLayers);
  return layer ? begin <= *layer && *layer < end : begin == 0;
}

//===----------------------------------------------------------------------===//
// Parts
//===----------------------------------------------------------------------===//

namespace {

struct Part {
  std::string dir;
  json::Object manifest; ///< without "partial"
  PartialInfo info;
  std::string range() const { return llvm::formatv("{0}:{1}", info.begin, info.end).str(); }
  std::string path(const Twine &name) const {
    llvm::SmallString<256> result(dir);
    llvm::sys::path::append(result, name);
    return result.str().str();
  }
};

Error partError(const Part &part, const Twine &message) {
  return llvm::createStringError("part '" + part.dir + "' (layers " + part.range() +
                                 "): " + message);
}

Error partError(StringRef dir, const Twine &message) {
  return llvm::createStringError("part '" + dir + "': " + message);
}

Expected<Part> loadPart(StringRef dir) {
  llvm::SmallString<256> path(dir);
  llvm::sys::path::append(path, "manifest.json");
  llvm::ErrorOr<std::unique_ptr<llvm::MemoryBuffer>> buffer = llvm::MemoryBuffer::getFile(path);
  if (!buffer)
    return partError(dir, "cannot read manifest.json: " + buffer.getError().message());
  Expected<json::Value> value = json::parse((*buffer)->getBuffer());
  if (!value)
    return partError(dir, "manifest.json: " + llvm::toString(value.takeError()));
  json::Object *root = value->getAsObject();
  if (!root || root->getString("format") != "moeq-artifact")
    return partError(dir, "manifest.json is not a moeq artifact manifest");
  std::optional<int64_t> version = root->getInteger("version");
  if (version != ::moeq::kManifestVersion)
    return partError(dir, llvm::formatv("has manifest version {0}; this moeq-merge joins "
                                        "version {1} artifacts: recompile the slice",
                                        version ? std::to_string(*version) : "(none)",
                                        ::moeq::kManifestVersion));
  const json::Value *partial = root->get(kPartialKey);
  if (!partial)
    return partError(dir, "is not a partial artifact (compiled without --layers, it holds "
                          "the whole model): only slices are merged");
  Expected<PartialInfo> info = partialFromJSON(*partial);
  if (!info)
    return partError(dir, "manifest.json: " + llvm::toString(info.takeError()));
  // A slice altered after its compile must not be merged into a model.
  if (Error err = checkFiles(dir, *root))
    return partError(dir, llvm::toString(std::move(err)));
  Part part{dir.str(), std::move(*root), std::move(*info)};
  part.manifest.erase(kPartialKey);
  part.manifest.erase(kFilesKey); // (the merged artifact's are described anew)
  return part;
}

std::string show(const json::Value *value) {
  return value ? llvm::formatv("{0}", *value).str() : std::string("(unset)");
}

/// Parts of one compile agree on every option; the error names those that
/// differ.
Error checkSameCompile(const Part &first, const Part &other) {
  if (other.info.fingerprint == first.info.fingerprint &&
      other.info.numLayers == first.info.numLayers)
    return Error::success();
  std::set<std::string> keys;
  for (const auto &entry : first.info.options)
    keys.insert(entry.first.str());
  for (const auto &entry : other.info.options)
    keys.insert(entry.first.str());
  std::string differences;
  for (const std::string &key : keys) {
    const json::Value *a = other.info.options.get(key), *b = first.info.options.get(key);
    if (!a || !b || *a != *b)
      differences += llvm::formatv("{0}{1} {2} vs {3}", differences.empty() ? "" : ", ", key,
                                   show(a), show(b))
                         .str();
  }
  if (differences.empty())
    differences = llvm::formatv("fingerprint {0} vs {1}, {2} vs {3} layers",
                                other.info.fingerprint, first.info.fingerprint,
                                other.info.numLayers, first.info.numLayers)
                      .str();
  return partError(other, "was compiled with other options, model or architecture than "
                          "part '" +
                              first.dir + "' (" + differences +
                              "): merge only slices of one moeq-compile configuration");
}

/// Sorted by first layer, the parts must tile [0, numLayers).
Error checkCoverage(llvm::ArrayRef<const Part *> sorted) {
  int64_t covered = 0;
  const Part *previous = nullptr;
  for (const Part *part : sorted) {
    if (part->info.begin < covered)
      return partError(*part, "overlaps part '" + previous->dir + "' (layers " +
                                  previous->range() + ")");
    if (part->info.begin > covered)
      return partError(*part, llvm::formatv("no part holds layers {0}:{1}{2}", covered,
                                            part->info.begin,
                                            previous ? " (after part '" + previous->dir + "')"
                                                     : std::string(" (no part starts at 0)")));
    covered = part->info.end;
    previous = part;
  }
  int64_t numLayers = sorted.front()->info.numLayers;
  if (covered < numLayers)
    return partError(*previous, llvm::formatv("no part holds layers {0}:{1} of the {1}-layer "
                                              "model (this is the last part)",
                                              covered, numLayers));
  return Error::success();
}

//===----------------------------------------------------------------------===//
// manifest.json
//===----------------------------------------------------------------------===//

/// The keys rebuilt from every part; the others must agree.
bool isMergedKey(StringRef key) {
  return llvm::is_contained({"layers", "kernels", "device_params", "passthrough"}, key);
}

class ManifestMerger {
public:
  /// Takes the part's layers (moved: a manifest of many layers is large).
  Error add(Part &part) {
    if (Error err = addSharedKeys(part))
      return err;
    Expected<std::vector<int64_t>> params = addDeviceParams(part);
    if (!params)
      return params.takeError();
    if (Error err = addLayers(part, *params))
      return err;
    if (Error err = addKernels(part))
      return err;
    return addPassthrough(part);
  }

  json::Object finish() {
    json::Object root = shared;
    root["layers"] = std::move(layers);
    root["device_params"] = std::move(deviceParams);
    json::Array kernelList;
    for (auto &entry : kernels)
      kernelList.push_back(std::move(entry.second.first));
    root["kernels"] = std::move(kernelList);
    if (hasPassthrough) {
      json::Array tensors;
      for (auto &entry : passthrough)
        tensors.push_back(std::move(entry.second.first));
      root["passthrough"] = std::move(tensors);
    }
    return root;
  }

private:
  Error addSharedKeys(const Part &part) {
    if (!first) {
      first = &part;
      hasPassthrough = part.manifest.get("passthrough") != nullptr;
      for (const auto &entry : part.manifest)
        if (!isMergedKey(entry.first))
          shared[entry.first] = entry.second;
      return Error::success();
    }
    size_t count = 0;
    for (const auto &entry : part.manifest) {
      if (isMergedKey(entry.first))
        continue;
      ++count;
      const json::Value *known = shared.get(entry.first);
      if (!known || *known != entry.second)
        return partError(part, "manifest key '" + entry.first.str() + "' differs from part '" +
                                   first->dir + "'");
    }
    if (count != shared.size())
      return partError(part, "lacks manifest keys of part '" + first->dir + "'");
    return Error::success();
  }

  /// Appends the part's device parameters; returns the merged index of
  /// each. A tensor already listed by an earlier part keeps its entry (the
  /// compiler lists each tensor once, at its first use); an address table
  /// is listed per use, after its entries, with its rows renumbered.
  Expected<std::vector<int64_t>> addDeviceParams(const Part &part) {
    std::vector<int64_t> merged;
    const json::Array *params = part.manifest.getArray("device_params");
    for (const json::Value &entry : entries(params)) {
      const json::Object *object = entry.getAsObject();
      if (!object)
        return partError(part, llvm::formatv("device_params[{0}] is not an object",
                                             merged.size()));
      if (const json::Array *rows = object->getArray("addresses")) {
        json::Object table = *object;
        json::Array renumbered;
        for (const json::Value &row : *rows) {
          json::Array indices;
          for (const json::Value &index : entries(row.getAsArray())) {
            std::optional<int64_t> i = index.getAsInteger();
            if (!i || *i < 0 || *i >= int64_t(merged.size()))
              return partError(part, llvm::formatv("device_params[{0}] lists an entry that "
                                                   "does not precede it",
                                                   merged.size()));
            indices.push_back(merged[*i]);
          }
          renumbered.push_back(std::move(indices));
        }
        table["addresses"] = std::move(renumbered);
        merged.push_back(deviceParams.size());
        deviceParams.push_back(std::move(table));
        continue;
      }
      auto [it, inserted] =
          paramIndex.try_emplace(llvm::formatv("{0}", entry).str(), int64_t(deviceParams.size()));
      if (inserted)
        deviceParams.push_back(entry);
      merged.push_back(it->second);
    }
    return merged;
  }

  /// The part's layers, their plans' {"param": i} arguments renumbered.
  Error addLayers(Part &part, llvm::ArrayRef<int64_t> params) {
    json::Array *partLayers = part.manifest.getArray("layers");
    if (!partLayers)
      return Error::success();
    for (json::Value &value : *partLayers) {
      json::Value copy = std::move(value);
      json::Object *layer = copy.getAsObject();
      std::optional<int64_t> index = layer ? layer->getInteger("layer") : std::nullopt;
      if (!index || *index < part.info.begin || *index >= part.info.end)
        return partError(part, "holds a layer outside its range");
      if (Error err = renumberPlan(part, *layer, params))
        return err;
      layers.push_back(std::move(copy));
    }
    return Error::success();
  }

  /// Points the {"param": i} arguments of a layer's plan at the merged
  /// device_params.
  Error renumberPlan(const Part &part, json::Object &layer, llvm::ArrayRef<int64_t> params) {
    json::Object *plan = layer.getObject("plan");
    json::Array *steps = plan ? plan->getArray("steps") : nullptr;
    if (!steps)
      return Error::success();
    for (json::Value &step : *steps) {
      json::Array *args = step.getAsObject() ? step.getAsObject()->getArray("args") : nullptr;
      if (!args)
        continue;
      for (json::Value &arg : *args) {
        json::Object *binding = arg.getAsObject();
        std::optional<int64_t> param = binding ? binding->getInteger("param") : std::nullopt;
        if (!param)
          continue;
        if (*param < 0 || *param >= int64_t(params.size()))
          return partError(part, llvm::formatv("layer {0}'s plan binds device_params[{1}], "
                                               "which does not exist",
                                               layer.getInteger("layer").value_or(-1), *param));
        (*binding)["param"] = params[*param];
      }
    }
    return Error::success();
  }

  /// A kernel used by several slices is one entry; its dynamic shared
  /// memory is the most any launch uses, over all layers.
  Error addKernels(const Part &part) {
    const json::Array *partKernels = part.manifest.getArray("kernels");
    for (const json::Value &value : entries(partKernels)) {
      const json::Object *entry = value.getAsObject();
      std::optional<StringRef> name = entry ? entry->getString("name") : std::nullopt;
      if (!name)
        return partError(part, "a kernels entry has no name");
      auto it = kernels.find(name->str());
      if (it == kernels.end()) {
        kernels.emplace(name->str(), std::make_pair(*entry, &part));
        continue;
      }
      json::Object &known = it->second.first;
      std::optional<int64_t> a = known.getInteger("shared_memory_bytes");
      std::optional<int64_t> b = entry->getInteger("shared_memory_bytes");
      json::Object lhs = known, rhs = *entry;
      lhs.erase("shared_memory_bytes");
      rhs.erase("shared_memory_bytes");
      if (json::Value(std::move(lhs)) != json::Value(std::move(rhs)))
        return partError(part, "describes kernel '" + *name + "' otherwise than part '" +
                                   it->second.second->dir + "'");
      if (a || b)
        known["shared_memory_bytes"] = std::max(a.value_or(0), b.value_or(0));
    }
    return Error::success();
  }

  Error addPassthrough(const Part &part) {
    const json::Array *tensors = part.manifest.getArray("passthrough");
    for (const json::Value &value : entries(tensors)) {
      std::optional<StringRef> name =
          value.getAsObject() ? value.getAsObject()->getString("tensor") : std::nullopt;
      if (!name)
        return partError(part, "a passthrough entry names no tensor");
      auto [it, inserted] = passthrough.try_emplace(name->str(), value, &part);
      if (!inserted && it->second.first != value)
        return partError(part, "describes passthrough tensor '" + *name +
                                   "' otherwise than part '" + it->second.second->dir + "'");
    }
    return Error::success();
  }

  const Part *first = nullptr;
  bool hasPassthrough = false;
  json::Object shared;
  json::Array layers, deviceParams;
  std::map<std::string, int64_t> paramIndex;
  // Sorted by name, as the compiler's.
  std::map<std::string, std::pair<json::Object, const Part *>> kernels;
  std::map<std::string, std::pair<json::Value, const Part *>> passthrough;
};

//===----------------------------------------------------------------------===//
// Report data
//===----------------------------------------------------------------------===//

/// Whether a part's report says how ptxas judged kernels: a slice without
/// kernels (dense layers only) has nothing to say.
bool hasKernels(const Part &part) { return !entries(part.manifest.getArray("kernels")).empty(); }

/// All slices with kernels were checked by ptxas, or none was: the report
/// of the whole model says one or the other.
Error checkSamePtxas(llvm::ArrayRef<const Part *> sorted) {
  const Part *reference = nullptr;
  for (const Part *part : sorted) {
    if (!hasKernels(*part))
      continue;
    if (!reference) {
      reference = part;
      continue;
    }
    if (part->info.report.ptxasRan == reference->info.report.ptxasRan)
      continue;
    std::string other = "'" + reference->dir + "'";
    bool checked = part->info.report.ptxasRan;
    return partError(*part, llvm::formatv("ptxas checked the kernels of {0} but not those of "
                                          "{1}: compile every slice with (or every slice "
                                          "without) ptxas",
                                          checked ? "this part" : other,
                                          checked ? other : "this part"));
  }
  return Error::success();
}

Expected<ReportData> mergeReports(llvm::ArrayRef<const Part *> sorted) {
  const Part &first = *sorted.front();
  if (Error err = checkSamePtxas(sorted))
    return std::move(err);
  ReportData merged = first.info.report;
  merged.layers.clear();
  merged.assembled.clear();
  for (const Part *part : sorted)
    if (hasKernels(*part))
      merged.ptxasRan = part->info.report.ptxasRan;
  std::map<std::string, std::pair<AssembledKernel, const Part *>> assembled;
  for (const Part *part : sorted) {
    const ReportData &report = part->info.report;
    if (report.header != merged.header || report.mixedPrecision != merged.mixedPrecision ||
        report.tokensPerStep != merged.tokensPerStep)
      return partError(*part, "describes its options otherwise than part '" + first.dir + "'");
    llvm::append_range(merged.layers, report.layers);
    for (const AssembledKernel &kernel : report.assembled) {
      auto [it, inserted] = assembled.try_emplace(kernel.kernel, kernel, part);
      const AssembledKernel &known = it->second.first;
      if (!inserted && (known.registers != kernel.registers ||
                        known.spillBytes != kernel.spillBytes ||
                        known.stackBytes != kernel.stackBytes))
        return partError(*part, "ptxas assembled kernel '" + kernel.kernel +
                                    "' otherwise than for part '" + it->second.second->dir +
                                    "' (another ptxas?)");
    }
  }
  for (auto &entry : assembled)
    merged.assembled.push_back(entry.second.first);
  return merged;
}

//===----------------------------------------------------------------------===//
// kernels/
//===----------------------------------------------------------------------===//

Expected<std::unique_ptr<llvm::MemoryBuffer>> readFile(const Part &part, StringRef path) {
  llvm::ErrorOr<std::unique_ptr<llvm::MemoryBuffer>> buffer =
      llvm::MemoryBuffer::getFile(path, /*IsText=*/false, /*RequiresNullTerminator=*/false);
  if (!buffer)
    return partError(part, "cannot read '" + path + "': " + buffer.getError().message());
  return std::move(*buffer);
}

/// Copies every part's files of directory `subdir` (kernels/, hf/) into
/// `outDir`, a file present in several parts once (same name: same bytes,
/// or an error); counts the files written and those shared.
Error mergeDirectory(llvm::ArrayRef<const Part *> parts, StringRef subdir, StringRef outDir,
                     unsigned &written, unsigned &shared) {
  if (std::error_code ec = llvm::sys::fs::create_directories(outDir))
    return llvm::createStringError("cannot create '" + outDir + "': " + ec.message());
  std::map<std::string, const Part *> owner;
  for (const Part *part : parts) {
    std::string dir = part->path(subdir);
    if (!llvm::sys::fs::is_directory(dir))
      continue;
    std::error_code ec;
    for (llvm::sys::fs::directory_iterator it(dir, ec), end; it != end && !ec; it.increment(ec)) {
      std::string name = llvm::sys::path::filename(it->path()).str();
      llvm::SmallString<256> target(outDir);
      llvm::sys::path::append(target, name);
      auto [known, inserted] = owner.try_emplace(name, part);
      if (inserted) {
        if (std::error_code copy = llvm::sys::fs::copy_file(it->path(), target))
          return partError(*part, "cannot copy " + subdir + "/" + name + ": " + copy.message());
        ++written;
        continue;
      }
      Expected<std::unique_ptr<llvm::MemoryBuffer>> a = readFile(*part, it->path());
      if (!a)
        return a.takeError();
      Expected<std::unique_ptr<llvm::MemoryBuffer>> b = readFile(*known->second, target);
      if (!b)
        return b.takeError();
      if ((*a)->getBuffer() != (*b)->getBuffer())
        return partError(*part, subdir + "/" + name + " differs from part '" +
                                    known->second->dir +
                                    "''s (one name, other bytes: compiled by another moeq?)");
      ++shared;
    }
    if (ec)
      return partError(*part, "cannot list " + subdir + "/: " + ec.message());
  }
  return Error::success();
}

/// The PTX files of the merged artifact, for the report.
Expected<std::vector<KernelFile>> listPTX(StringRef dir) {
  std::vector<KernelFile> files;
  std::error_code ec;
  for (llvm::sys::fs::directory_iterator it(dir, ec), end; it != end && !ec; it.increment(ec)) {
    StringRef name = llvm::sys::path::filename(it->path());
    uint64_t size = 0;
    if (!name.consume_back(".ptx"))
      continue;
    if (std::error_code sizeError = llvm::sys::fs::file_size(it->path(), size))
      return llvm::createStringError("cannot read '" + it->path() + "': " + sizeError.message());
    files.push_back({name.str(), size});
  }
  if (ec)
    return llvm::createStringError("cannot list '" + dir + "': " + ec.message());
  return files;
}

//===----------------------------------------------------------------------===//
// Safetensors files
//===----------------------------------------------------------------------===//

/// The union of one safetensors file of every part, streamed: each tensor
/// is copied chunk by chunk from its part when the merged file is written.
class TensorMerger {
public:
  explicit TensorMerger(StringRef fileName) : fileName(fileName.str()) {}

  Error add(const Part &part) {
    std::string path = part.path(fileName);
    if (!llvm::sys::fs::exists(path))
      return Error::success();
    Expected<std::unique_ptr<io::SafeTensorsFile>> file = io::SafeTensorsFile::open(path);
    if (!file)
      return partError(part, llvm::toString(file.takeError()));
    if (Error err = addMetadata(part, **file))
      return err;
    for (const io::TensorInfo &info : (*file)->tensors())
      if (Error err = addTensor(part, **file, info))
        return err;
    files.push_back(std::move(*file));
    return Error::success();
  }

  /// Writes the merged file (if any part had one).
  Error write(StringRef path, MergeSummary &summary) {
    if (files.empty())
      return Error::success();
    summary.tensors += writer.size();
    summary.tensorBytes += bytes;
    return writer.writeAtomically(path);
  }

private:
  Error addMetadata(const Part &part, const io::SafeTensorsFile &file) {
    if (!metadataOwner) {
      metadataOwner = &part;
      metadata = file.metadata();
      for (const auto &[key, value] : metadata)
        writer.setMetadata(key, value);
      return Error::success();
    }
    if (file.metadata() != metadata)
      return partError(part, fileName + "'s metadata differs from part '" +
                                 metadataOwner->dir + "''s");
    return Error::success();
  }

  Error addTensor(const Part &part, const io::SafeTensorsFile &file,
                  const io::TensorInfo &info) {
    auto [it, inserted] = sources.try_emplace(info.name, Source{&part, &file, &info});
    if (!inserted)
      return checkSameTensor(part, file, info, it->second);
    bytes += info.numBytes();
    const io::SafeTensorsFile *from = &file;
    const io::TensorInfo *tensor = &info;
    return writer.addTensor(info.name, info.dtype, info.shape,
                            [from, tensor](llvm::raw_ostream &os) {
                              return from->forEachChunk(
                                  *tensor, 0, tensor->numBytes(), kChunkBytes,
                                  [&os](uint64_t, llvm::ArrayRef<uint8_t> chunk) {
                                    os.write(reinterpret_cast<const char *>(chunk.data()),
                                             chunk.size());
                                    return Error::success();
                                  });
                            });
  }

  struct Source {
    const Part *part;
    const io::SafeTensorsFile *file;
    const io::TensorInfo *info;
  };

  /// A tensor in two parts (neither slice should carry another's, but the
  /// same tensor twice is harmless) must be the same, compared in chunks.
  Error checkSameTensor(const Part &part, const io::SafeTensorsFile &file,
                        const io::TensorInfo &info, const Source &known) {
    auto differs = [&] {
      return partError(part, fileName + ": tensor '" + info.name + "' differs from part '" +
                                 known.part->dir + "''s");
    };
    if (info.dtype != known.info->dtype || info.shape != known.info->shape)
      return differs();
    std::vector<uint8_t> other;
    bool same = true;
    Error err = file.forEachChunk(
        info, 0, info.numBytes(), kChunkBytes,
        [&](uint64_t offset, llvm::ArrayRef<uint8_t> chunk) -> Error {
          other.resize(chunk.size());
          if (Error read = known.file->readBytes(*known.info, offset, other))
            return read;
          same = same && llvm::ArrayRef<uint8_t>(other) == chunk;
          return Error::success();
        });
    if (err)
      return partError(part, llvm::toString(std::move(err)));
    return same ? Error::success() : differs();
  }

  std::string fileName;
  std::vector<std::unique_ptr<io::SafeTensorsFile>> files;
  std::map<std::string, Source> sources;
  std::map<std::string, std::string> metadata;
  const Part *metadataOwner = nullptr;
  io::SafeTensorsWriter writer;
  uint64_t bytes = 0;
};

Error mergeTensors(llvm::ArrayRef<const Part *> parts, StringRef fileName,
                   const io::AtomicOutputDirectory &out, MergeSummary &summary) {
  TensorMerger merger(fileName);
  for (const Part *part : parts)
    if (Error err = merger.add(*part))
      return err;
  return merger.write(out.pathFor(fileName), summary);
}

Error writeText(StringRef path, StringRef text) {
  return io::writeFileAtomically(path, text);
}

/// Loads the parts and checks that they are slices of one compile that
/// tile the model; returns them sorted by first layer.
Expected<std::vector<Part>> loadParts(llvm::ArrayRef<std::string> dirs) {
  if (dirs.empty())
    return llvm::createStringError("no parts to merge");
  std::vector<Part> parts;
  for (const std::string &dir : dirs) {
    Expected<Part> part = loadPart(dir);
    if (!part)
      return part.takeError();
    parts.push_back(std::move(*part));
  }
  for (const Part &part : llvm::drop_begin(parts))
    if (Error err = checkSameCompile(parts.front(), part))
      return std::move(err);
  llvm::stable_sort(parts, [](const Part &a, const Part &b) {
    return std::make_pair(a.info.begin, a.info.end) < std::make_pair(b.info.begin, b.info.end);
  });
  std::vector<const Part *> sorted;
  for (const Part &part : parts)
    sorted.push_back(&part);
  if (Error err = checkCoverage(sorted))
    return std::move(err);
  return parts;
}

/// Fills `out`'s temporary directory with the merged files.
Error writeMerged(llvm::ArrayRef<const Part *> parts, const json::Value &manifest,
                  const ReportData &report, const io::AtomicOutputDirectory &out,
                  MergeSummary &summary) {
  for (StringRef file : {"experts.safetensors", "params.safetensors"})
    if (Error err = mergeTensors(parts, file, out, summary))
      return err;
  std::string kernelDir = out.pathFor("kernels");
  if (Error err = mergeDirectory(parts, "kernels", kernelDir, summary.kernels,
                                 summary.sharedKernels))
    return err;
  // The model's Hugging Face files: one copy, the same in every part.
  unsigned hfFiles = 0, hfShared = 0;
  if (Error err = mergeDirectory(parts, kHFDirectory, out.pathFor(kHFDirectory), hfFiles,
                                 hfShared))
    return err;
  Expected<std::vector<KernelFile>> ptx = listPTX(kernelDir);
  if (!ptx)
    return ptx.takeError();
  Expected<json::Object> files = describeFiles(out.path());
  if (!files)
    return files.takeError();
  json::Value described = manifest;
  (*described.getAsObject())[kFilesKey] = std::move(*files);
  if (Error err = writeText(out.pathFor("manifest.json"),
                            llvm::formatv("{0:2}\n", described).str()))
    return err;
  if (Error err = writeText(out.pathFor("report.txt"),
                            renderReport(report, *manifest.getAsObject(), *ptx)))
    return err;
  return writeText(out.pathFor("report.html"),
                   renderReportHTML(report, *manifest.getAsObject(), *ptx,
                                    artifactSizesIn(out.pathFor(""))));
}

} // namespace

Expected<MergeSummary> mlir::moeq::artifact::mergeArtifacts(llvm::ArrayRef<std::string> dirs,
                                                            StringRef output) {
  Expected<std::vector<Part>> loaded = loadParts(dirs);
  if (!loaded)
    return loaded.takeError();
  std::vector<Part *> parts;
  for (Part &part : *loaded)
    parts.push_back(&part);

  ManifestMerger manifests;
  for (Part *part : parts)
    if (Error err = manifests.add(*part))
      return std::move(err);
  json::Value manifest(manifests.finish());
  Expected<ReportData> report = mergeReports(parts);
  if (!report)
    return report.takeError();

  // Replacing a part would delete what is being read.
  for (const Part *part : parts) {
    bool same = false;
    if (!llvm::sys::fs::equivalent(part->dir, output, same) && same)
      return partError(*part, "is the output directory: merge into another one");
  }
  if (Error err = io::checkReplaceableDirectory(output, isArtifactEntry, "a moeq artifact"))
    return std::move(err);
  Expected<io::AtomicOutputDirectory> out = io::AtomicOutputDirectory::create(output);
  if (!out)
    return out.takeError();
  MergeSummary summary;
  summary.begin = parts.front()->info.begin;
  summary.end = parts.back()->info.end;
  if (Error err = writeMerged(parts, manifest, *report, *out, summary))
    return std::move(err);
  if (Error err = out->commit())
    return std::move(err);
  return summary;
}
