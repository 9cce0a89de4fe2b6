//===- StatisticsFiles.cpp - calibration statistics on disk ---------------===//
#include "moeq/Calibration/StatisticsFiles.h"
#include "moeq/Calibration/Statistics.h"
#include "moeq/IO/ModelConfig.h"
#include "moeq/IO/WeightsFingerprint.h"
#include "moeq/Runtime/MemoryLimit.h"

#include "llvm/ADT/STLExtras.h"
#include "llvm/ADT/SmallString.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/JSON.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/raw_ostream.h"

#include <algorithm>
#include <cstdio>
#include <cmath>
#include <cstring>
#include <set>
#include <unistd.h>

using namespace mlir::moeq;
using namespace mlir::moeq::calib;

namespace {

llvm::Error error(const llvm::Twine &message) {
  return llvm::createStringError(std::errc::invalid_argument, "%s", message.str().c_str());
}

std::string valueOf(const Metadata &meta, llvm::StringRef key) {
  auto it = meta.find(key.str());
  return it == meta.end() ? std::string() : it->second;
}

std::string describeShape(llvm::ArrayRef<int64_t> shape) {
  std::string text = "[";
  for (size_t i = 0; i < shape.size(); ++i)
    text += (i ? ", " : "") + std::to_string(shape[i]);
  return text + "]";
}

llvm::Expected<Metadata> readIndex(llvm::StringRef path) {
  auto buffer = llvm::MemoryBuffer::getFile(path);
  if (!buffer)
    return error(path + ": cannot read: " + buffer.getError().message());
  llvm::Expected<llvm::json::Value> root = llvm::json::parse((*buffer)->getBuffer());
  if (!root)
    return error(path + ": not JSON: " + llvm::toString(root.takeError()));
  const llvm::json::Object *object = root->getAsObject();
  if (!object)
    return error(path + ": not a JSON object");
  Metadata meta;
  for (const auto &[key, value] : *object) {
    std::optional<llvm::StringRef> text = value.getAsString();
    if (!text)
      return error(path + ": value of '" + key.str() + "' is not a string");
    meta[key.str()] = text->str();
  }
  return meta;
}

std::string renderIndex(const Metadata &index) {
  std::string text;
  llvm::raw_string_ostream os(text);
  llvm::json::OStream json(os, 2);
  json.object([&] {
    for (const auto &[key, value] : index) // std::map: sorted keys
      json.attribute(key, value);
  });
  os << "\n";
  return text;
}

} // namespace

std::string calib::layerFileName(int64_t layer) {
  char name[64];
  std::snprintf(name, sizeof(name), "layer-%03lld.safetensors", static_cast<long long>(layer));
  return name;
}

void calib::packUpper(llvm::ArrayRef<double> matrix, int64_t n, std::vector<float> &packed) {
  packed.resize(packedSize(n));
  size_t k = 0;
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = i; j < n; ++j)
      packed[k++] = float(matrix[i * n + j]);
}

std::string calib::joinLayers(llvm::ArrayRef<int64_t> layers) {
  std::string text;
  for (int64_t layer : layers)
    text += (text.empty() ? "" : ",") + std::to_string(layer);
  return text;
}

llvm::Expected<ModelDescription> calib::describeModel(const io::MoEModelConfig &config,
                                                      const io::Checkpoint *checkpoint) {
  ModelDescription model{config.modelType,
                         config.numLayers,
                         config.hiddenSize,
                         config.moeIntermediateSize,
                         config.sharedIntermediateSize(),
                         config.numExperts,
                         config.topK,
                         {},
                         {}};
  for (int64_t layer = 0; layer < config.numLayers; ++layer)
    if (config.isMoELayer(layer))
      model.moeLayers.push_back(layer);
  if (checkpoint) {
    llvm::Expected<std::string> fingerprint = io::weightsFingerprint(*checkpoint, config);
    if (!fingerprint)
      return fingerprint.takeError();
    model.weightsFingerprint = std::move(*fingerprint);
  }
  return model;
}

Metadata calib::indexMetadata(const ModelDescription &model) {
  Metadata index{{"format", kStatisticsFormat.str()},
          {"version", std::to_string(kStatisticsVersion)},
          {"gram_dtype", "F32"},
          {"gram_storage", "upper_packed"},
          {"model_type", model.modelType},
          {"num_hidden_layers", std::to_string(model.numLayers)},
          {"hidden_size", std::to_string(model.hidden)},
          {"moe_intermediate_size", std::to_string(model.intermediate)},
          {"shared_intermediate_size", std::to_string(model.sharedIntermediate)},
          {"num_experts", std::to_string(model.experts)},
          {"top_k", std::to_string(model.topK)},
          {"moe_layers", joinLayers(model.moeLayers)}};
  if (!model.weightsFingerprint.empty())
    index[io::kWeightsFingerprintKey.str()] = model.weightsFingerprint;
  return index;
}

llvm::Error calib::prepareStatisticsDirectory(llvm::StringRef dir, const Metadata &index,
                                              bool create) {
  llvm::SmallString<256> indexPath(dir);
  llvm::sys::path::append(indexPath, kIndexFileName);
  llvm::sys::fs::file_status status;
  if (!llvm::sys::fs::status(dir, status)) {
    if (!llvm::sys::fs::is_directory(status))
      return error(dir + " exists and is not a directory: statistics (format " +
                   llvm::Twine(kStatisticsVersion) +
                   ") are a directory, one file per MoE layer; choose another path");
    if (llvm::sys::fs::exists(indexPath)) {
      llvm::Expected<Metadata> existing = readIndex(indexPath);
      if (!existing)
        return existing.takeError();
      for (const auto &[key, value] : index)
        if (valueOf(*existing, key) != value)
          return error(dir + " holds statistics of another model or format: " + key + " is '" +
                       valueOf(*existing, key) + "' in " + indexPath + ", this run has '" +
                       value + "' (write them to another directory)");
      return llvm::Error::success();
    }
    std::error_code ec;
    llvm::sys::fs::directory_iterator it(dir, ec), end;
    if (ec)
      return error(dir + ": cannot list: " + ec.message());
    if (it != end)
      return error(dir + " is a non-empty directory without a statistics index (" +
                   kIndexFileName + "); choose an empty or new directory");
  }
  if (!create)
    return llvm::Error::success();
  if (std::error_code ec = llvm::sys::fs::create_directories(dir))
    return error("cannot create the statistics directory '" + dir + "': " + ec.message());
  // Written atomically: concurrent producers of other slices of the same
  // model write the same bytes.
  llvm::SmallString<256> temp(indexPath);
  temp += llvm::formatv(".tmp.{0}", ::getpid()).str();
  {
    std::error_code ec;
    llvm::raw_fd_ostream os(temp, ec);
    if (ec)
      return error("cannot write '" + temp + "': " + ec.message());
    os << renderIndex(index);
    os.close();
    if (os.has_error()) {
      llvm::sys::fs::remove(temp);
      return error("cannot write '" + temp + "': " + os.error().message());
    }
  }
  if (std::error_code ec = llvm::sys::fs::rename(temp, indexPath)) {
    llvm::sys::fs::remove(temp);
    return error("cannot write '" + indexPath + "': " + ec.message());
  }
  return llvm::Error::success();
}

llvm::Expected<std::vector<int64_t>> calib::parseLayerSelection(llvm::StringRef spec,
                                                                int64_t numLayers) {
  std::set<int64_t> layers;
  llvm::SmallVector<llvm::StringRef> items;
  spec.split(items, ',', /*MaxSplit=*/-1, /*KeepEmpty=*/false);
  auto bad = [&](llvm::StringRef item, const llvm::Twine &why) {
    return error("--layers '" + spec + "': '" + item + "' " + why);
  };
  for (llvm::StringRef raw : items) {
    llvm::StringRef item = raw.trim();
    int64_t first = 0, last = 0;
    if (item.contains(':')) {
      auto [a, b] = item.split(':');
      a = a.trim();
      b = b.trim();
      if ((!a.empty() && a.getAsInteger(10, first)) || (!b.empty() && b.getAsInteger(10, last)))
        return bad(item, "is not a layer L or a range A:B");
      if (a.empty())
        first = 0;
      if (b.empty())
        last = numLayers;
    } else {
      if (item.getAsInteger(10, first))
        return bad(item, "is not a layer L or a range A:B");
      last = first + 1;
    }
    if (first < 0 || last > numLayers || first >= last)
      return bad(item, "is not a non-empty range of the model's layers 0.." +
                           llvm::Twine(numLayers - 1));
    for (int64_t layer = first; layer < last; ++layer)
      layers.insert(layer);
  }
  if (layers.empty())
    return error("--layers '" + spec + "' selects no layer");
  return std::vector<int64_t>(layers.begin(), layers.end());
}

uint64_t calib::layerStatisticsBytes(const LayerShape &shape, int version) {
  uint64_t h = shape.hidden, inter = shape.intermediate, s = shape.sharedIntermediate;
  uint64_t e = shape.experts, n = shape.samplesPerExpert;
  // Matrix bytes: dense F64 (version 1) or packed F32 triangles.
  auto matrix = [&](uint64_t k) { return version == 1 ? 8 * k * k : 4 * (k * (k + 1) / 2); };
  uint64_t sampleBytes = version == 1 ? 8 : 4;
  uint64_t bytes = 8 + 8 * e + 8 * e + matrix(h); // tokens, counts, affinities, gram_all
  uint64_t perExpert = 2 * matrix(h) + 2 * matrix(inter);
  if (n)
    perExpert += sampleBytes * n * h + 8 * n;
  bytes += e * perExpert;
  if (s) {
    bytes += matrix(s);
    if (n) // the shared expert's samples, of all tokens
      bytes += sampleBytes * n * h + 8 * n;
    if (shape.sharedGated)
      bytes += matrix(h) + matrix(s);
  }
  return bytes;
}

bool calib::isReadableAs(io::DType dtype, llvm::ArrayRef<int64_t> stored,
                         llvm::ArrayRef<int64_t> shape) {
  if (dtype != io::DType::F64 && dtype != io::DType::F32 && dtype != io::DType::I64)
    return false;
  if (stored == shape)
    return true;
  return dtype != io::DType::I64 && shape.size() == 2 && shape[0] == shape[1] &&
         stored.size() == 1 && stored[0] == packedSize(shape[0]);
}

llvm::Expected<std::vector<double>>
calib::decodeAsFloat64(io::DType dtype, llvm::ArrayRef<int64_t> stored,
                       llvm::ArrayRef<uint8_t> bytes, llvm::ArrayRef<int64_t> shape,
                       llvm::StringRef name) {
  if (!isReadableAs(dtype, stored, shape))
    return error("'" + name + "' is " + io::dtypeName(dtype) + " " + describeShape(stored) +
                 ", expected F64, F32 or I64 " + describeShape(shape) +
                 (shape.size() == 2 && shape[0] == shape[1]
                      ? " (or its packed upper triangle [" +
                            std::to_string(packedSize(shape[0])) + "])"
                      : std::string()));
  int64_t count = 1, wanted = 1;
  for (int64_t d : stored)
    count *= d;
  for (int64_t d : shape)
    wanted *= d;
  // (A packed triangle is unpacked to the whole matrix.)
  std::string tooLarge = ::moeq::checkAllocationSize(
      uint64_t(std::max(count, wanted)) * sizeof(double), "reading '" + name.str() + "' as f64");
  if (!tooLarge.empty())
    return error(tooLarge);
  std::vector<double> values(count);
  if (dtype == io::DType::F64) {
    std::memcpy(values.data(), bytes.data(), count * sizeof(double));
  } else if (dtype == io::DType::F32) {
    const uint8_t *p = bytes.data();
    for (int64_t i = 0; i < count; ++i, p += 4) {
      float f;
      std::memcpy(&f, p, 4);
      values[i] = f;
    }
  } else {
    const uint8_t *p = bytes.data();
    for (int64_t i = 0; i < count; ++i, p += 8) {
      int64_t v;
      std::memcpy(&v, p, 8);
      values[i] = double(v);
    }
  }
  // NaN or infinity in a Gram matrix, sample or Fisher value would flow
  // silently into every Hessian and loss computed from it: refuse the file.
  for (size_t i = 0; i < values.size(); ++i)
    if (!std::isfinite(values[i]))
      return error("'" + name + "' holds " + (std::isnan(values[i]) ? "NaN" : "an infinity") +
                   " at element " + std::to_string(i) +
                   ": the statistics are corrupt (compute them again)");
  if (stored == shape)
    return values;
  // A packed upper triangle: mirror it into the full matrix.
  int64_t n = shape[0];
  std::vector<double> full(n * n);
  size_t k = 0;
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = i; j < n; ++j, ++k)
      full[i * n + j] = full[j * n + i] = values[k];
  return full;
}

//===----------------------------------------------------------------------===//
// StatisticsReader
//===----------------------------------------------------------------------===//

StatisticsReader::~StatisticsReader() = default;

bool StatisticsReader::isStatisticsDirectory(llvm::StringRef path) {
  llvm::SmallString<256> index(path);
  llvm::sys::path::append(index, kIndexFileName);
  return llvm::sys::fs::is_directory(path) && llvm::sys::fs::exists(index);
}

llvm::Expected<std::unique_ptr<StatisticsReader>>
StatisticsReader::open(llvm::StringRef path) {
  std::unique_ptr<StatisticsReader> reader(new StatisticsReader());
  reader->Path = path.str();
  if (llvm::sys::fs::is_directory(path)) {
    llvm::SmallString<256> index(path);
    llvm::sys::path::append(index, kIndexFileName);
    if (!llvm::sys::fs::exists(index))
      return error(path + " is not a moeq calibration statistics directory (no " +
                   kIndexFileName + ")");
    llvm::Expected<Metadata> meta = readIndex(index);
    if (!meta)
      return meta.takeError();
    reader->Meta = std::move(*meta);
    if (valueOf(reader->Meta, "format") != kStatisticsFormat)
      return error(path + " is not a moeq calibration statistics directory (" +
                   kIndexFileName + ": 'format' is '" + valueOf(reader->Meta, "format") + "')");
    if (valueOf(reader->Meta, "version") != "2")
      return error(path + ": statistics format version '" + valueOf(reader->Meta, "version") +
                   "' is not supported (this moeq reads versions 1 and 2)");
    reader->Version = 2;
    return reader;
  }
  auto file = io::SafeTensorsFile::open(path);
  if (!file)
    return file.takeError();
  reader->Meta = (*file)->metadata();
  if (valueOf(reader->Meta, "format") != kStatisticsFormat)
    return error(path + " is not a moeq calibration statistics file (metadata 'format' is '" +
                 valueOf(reader->Meta, "format") + "')");
  std::string version = valueOf(reader->Meta, "version");
  if (version == "2")
    return error(path + ": a version 2 statistics layer file; give its directory (the one "
                        "holding " + kIndexFileName + ")");
  if (version != "1")
    return error(path + ": statistics format version '" + version +
                 "' is not supported (this moeq reads versions 1 and 2)");
  reader->Version = 1;
  reader->Single = std::move(*file);
  return reader;
}

std::vector<int64_t> StatisticsReader::moeLayers() const {
  std::vector<int64_t> layers;
  llvm::SmallVector<llvm::StringRef> items;
  llvm::StringRef(valueOf(Meta, "moe_layers")).split(items, ',', -1, false);
  for (llvm::StringRef item : items) {
    int64_t layer;
    if (!item.trim().getAsInteger(10, layer))
      layers.push_back(layer);
  }
  return layers;
}

std::string StatisticsReader::fileOf(int64_t layer) const {
  if (Version == 1)
    return Path;
  llvm::SmallString<256> file(Path);
  llvm::sys::path::append(file, layerFileName(layer));
  return file.str().str();
}

std::vector<int64_t> StatisticsReader::availableLayers() const {
  std::vector<int64_t> layers = moeLayers();
  if (Version == 2)
    llvm::erase_if(layers, [&](int64_t layer) { return !llvm::sys::fs::exists(fileOf(layer)); });
  return layers;
}

llvm::Expected<const io::SafeTensorsFile *> StatisticsReader::layerFile(int64_t layer) {
  std::lock_guard<std::mutex> lock(Mutex);
  auto it = Layers.find(layer);
  if (it != Layers.end())
    return it->second.get();
  std::vector<int64_t> moe = moeLayers();
  if (!llvm::is_contained(moe, layer))
    return error(Path + ": layer " + llvm::Twine(layer) +
                 " is not a MoE layer of the model these statistics describe (moe_layers " +
                 valueOf(Meta, "moe_layers") + ")");
  std::string file = fileOf(layer);
  if (!llvm::sys::fs::exists(file)) {
    std::vector<int64_t> present = availableLayers();
    return error(Path + ": no statistics for layer " + llvm::Twine(layer) + ": " + file +
                 " does not exist (present: layers " +
                 (present.empty() ? std::string("none") : joinLayers(present)) +
                 "; produce it with moeq-stats or moeq_calibrate.py --layers " +
                 llvm::Twine(layer) + ":" + llvm::Twine(layer + 1) + " -o " + Path + ")");
  }
  auto opened = io::SafeTensorsFile::open(file);
  if (!opened)
    return opened.takeError();
  const Metadata &meta = (*opened)->metadata();
  for (const auto &[key, value] : Meta)
    if (valueOf(meta, key) != value)
      return error(file + " does not belong to these statistics: its " + key + " is '" +
                   valueOf(meta, key) + "', " + Path + "/" + kIndexFileName + " has '" + value +
                   "'");
  if (valueOf(meta, "layer") != std::to_string(layer))
    return error(file + " holds the statistics of layer '" + valueOf(meta, "layer") +
                 "', expected layer " + llvm::Twine(layer));
  const io::SafeTensorsFile *result = opened->get();
  Layers[layer] = std::move(*opened);
  return result;
}

llvm::Expected<const io::TensorInfo *>
StatisticsReader::find(llvm::StringRef name, const io::SafeTensorsFile **file) {
  if (Version == 1) {
    if (file)
      *file = Single.get();
    return Single->find(name);
  }
  llvm::StringRef rest = name;
  int64_t layer = -1;
  if (!rest.consume_front("layers.") || rest.consumeInteger(10, layer) ||
      !rest.starts_with("."))
    return nullptr; // Every statistics tensor belongs to a layer.
  llvm::Expected<const io::SafeTensorsFile *> opened = layerFile(layer);
  if (!opened)
    return opened.takeError();
  if (file)
    *file = *opened;
  return (*opened)->find(name);
}

llvm::Expected<std::vector<double>>
StatisticsReader::readFloat64(llvm::StringRef name, llvm::ArrayRef<int64_t> shape) {
  const io::SafeTensorsFile *file = nullptr;
  llvm::Expected<const io::TensorInfo *> info = find(name, &file);
  if (!info)
    return info.takeError();
  if (!*info)
    return error("tensor '" + name + "' not found in the statistics " +
                 (Version == 1 ? Path : file ? file->path().str() : Path));
  return decodeAsFloat64((*info)->dtype, (*info)->shape, file->data(**info), shape,
                         (file->path() + ": " + name).str());
}

llvm::Error StatisticsReader::checkModel(const ModelDescription &model,
                                         llvm::StringRef modelName) const {
  std::vector<std::pair<const char *, std::string>> expected{
      {"hidden_size", std::to_string(model.hidden)},
      {"moe_intermediate_size", std::to_string(model.intermediate)},
      {"num_experts", std::to_string(model.experts)}};
  // Recorded by every producer since version 1, but checked only where
  // the metadata has it (hand-made version 1 files may not).
  for (auto [key, value] :
       {std::pair<const char *, std::string>{"shared_intermediate_size",
                                             std::to_string(model.sharedIntermediate)},
        {"top_k", std::to_string(model.topK)},
        {"num_hidden_layers", std::to_string(model.numLayers)}})
    if (Meta.count(key))
      expected.push_back({key, value});
  // Version 2 lists the model's MoE layers; version 1 the layers covered.
  if (Version == 2)
    expected.push_back({"moe_layers", joinLayers(model.moeLayers)});
  for (const auto &[key, value] : expected)
    if (valueOf(Meta, key) != value)
      return error(Path + " was computed for another model: " + key + " is " +
                   valueOf(Meta, key) + ", " + modelName + " has " + value);
  // Same shapes, other weights (a fine-tune, another checkpoint of the
  // architecture). Statistics made before the fingerprint was recorded
  // cannot be checked.
  std::string recorded = valueOf(Meta, io::kWeightsFingerprintKey.str());
  if (!recorded.empty() && !model.weightsFingerprint.empty() &&
      recorded != model.weightsFingerprint)
    return error(Path + " was computed for a model with other weights: its " +
                 io::kWeightsFingerprintKey + " is " + recorded + ", " + modelName + " has " +
                 model.weightsFingerprint +
                 " (the routers differ: statistics measure one model's activations; compute "
                 "them for this model)");
  return llvm::Error::success();
}

size_t StatisticsReader::openedFiles() const {
  if (Version == 1)
    return 1;
  std::lock_guard<std::mutex> lock(Mutex);
  return Layers.size();
}

void StatisticsReader::releasePages() const {
  if (Single)
    Single->releasePages();
  std::lock_guard<std::mutex> lock(Mutex);
  for (const auto &entry : Layers)
    entry.second->releasePages();
}
