//===- Export.cpp - artifacts as checkpoints other tools load -------------===//
//
// The dequantized export rebuilds the checkpoint the artifact was compiled
// from, with every quantized matrix replaced by the values the kernels
// compute ((code - zero) * scale, or the level a code selects):
//  - each quantized linear of the manifest names its `source`, the
//    checkpoint tensor (or the slice of a stacked 3-D tensor: matrix
//    `index`, `transposed`, `rows` [offset, count] every `step` rows) it
//    was quantized from; the pieces of one tensor are put back together and
//    must cover it exactly once;
//  - every other tensor is copied from params.safetensors as it is;
//  - hf/'s config and tokenizer files are copied; a checkpoint that was
//    stored quantized (gpt-oss's MXFP4 experts, DeepSeek-V3's fp8 blocks)
//    loses its quantization_config, since every tensor is now a float, and
//    MXFP4 experts, stored [E, out, in], are written in the [E, in, out]
//    layout transformers uses for unquantized gpt-oss.
// One tensor is built at a time, while the file is written.
//
//===----------------------------------------------------------------------===//
#include "ArtifactExport.h"
#include "moeq/Artifact/HFFiles.h"
#include "moeq/Compress/DeltaDecomposition.h"
#include "moeq/IO/AtomicOutput.h"
#include "moeq/IO/SafeTensors.h"
#include "moeq/Quant/Quantizer.h"
#include "moeq/Artifact/FileDigests.h"
#include "moeq/Runtime/ManifestVersion.h"

#include "llvm/ADT/STLExtras.h"
#include "llvm/ADT/SmallString.h"
#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/JSON.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Path.h"

#include <cstring>
#include <cmath>
#include <map>
#include <set>
#include <tuple>
#include <memory>

using namespace mlir::moeq;
using namespace mlir::moeq::artifact;
using namespace mlir::moeq::artifact::detail;
namespace json = llvm::json;
using llvm::Error;
using llvm::Expected;
using llvm::StringRef;
using llvm::Twine;

namespace mlir::moeq::artifact::detail {

Error ArtifactExport::loadManifest() {
  auto buffer = llvm::MemoryBuffer::getFile(path("manifest.json"));
  if (!buffer)
    return artifactError("cannot read manifest.json: " + buffer.getError().message());
  Expected<json::Value> value = json::parse((*buffer)->getBuffer());
  if (!value)
    return artifactError("manifest.json: " + llvm::toString(value.takeError()));
  const json::Object *root = value->getAsObject();
  if (!root || root->getString("format") != StringRef("moeq-artifact"))
    return artifactError("manifest.json is not a moeq artifact manifest");
  std::optional<int64_t> version = root->getInteger("version");
  if (!version || *version != ::moeq::kManifestVersion)
    return artifactError(llvm::formatv("manifest version {0}, this moeq-export reads version {1}",
                                       version ? std::to_string(*version) : "(none)",
                                       ::moeq::kManifestVersion));
  if (root->get("partial"))
    return artifactError("a partial artifact (moeq-compile --layers): merge the parts with "
                         "moeq-merge first");
  // Nothing is read before every file is known to be the one compiled.
  if (Error err = checkFiles(dir, *root))
    return artifactError(llvm::toString(std::move(err)));
  manifest = std::move(*value);
  return Error::success();
}

Error ArtifactExport::loadConfig() {
  std::string configPath = path(Twine(kHFDirectory) + "/config.json");
  auto buffer = llvm::MemoryBuffer::getFile(configPath);
  if (!buffer)
    return artifactError("no " + Twine(kHFDirectory) +
                         "/config.json (artifacts keep the model's config since this "
                         "release: compile it again)");
  Expected<json::Value> value = json::parse((*buffer)->getBuffer());
  if (!value || !value->getAsObject())
    return artifactError(Twine(kHFDirectory) + "/config.json is not a JSON object" +
                         (value ? "" : ": " + llvm::toString(value.takeError())));
  if (const json::Object *quant = value->getAsObject()->getObject("quantization_config")) {
    std::optional<StringRef> method = quant->getString("quant_method");
    // Checkpoints stored quantized by their authors: every tensor the export
    // writes is a float, so the model loads without a quantizer.
    if (method && (*method == "mxfp4" || *method == "fp8")) {
      dropQuantizationConfig = true;
      mxfp4 = *method == "mxfp4";
    } else {
      return artifactError("the checkpoint's quantization_config (quant_method '" +
                           method.value_or("?") + "') is not one moeq reads");
    }
  }
  config = std::move(*value);
  return Error::success();
}

Expected<const io::SafeTensorsFile *> ArtifactExport::file(StringRef name) {
  if (name.contains('/') || name.contains('\\') || name == "." || name == "..")
    return artifactError("tensor file '" + name + "' is not a file of the artifact");
  auto it = files.find(name.str());
  if (it != files.end())
    return it->second.get();
  auto opened = io::SafeTensorsFile::open(path(name));
  if (!opened)
    return artifactError(llvm::toString(opened.takeError()));
  return (files[name.str()] = std::move(*opened)).get();
}

Expected<std::pair<const io::SafeTensorsFile *, const io::TensorInfo *>>
ArtifactExport::tensor(const json::Object &ref, const Twine &what) {
  std::optional<StringRef> fileName = ref.getString("file"), name = ref.getString("tensor");
  if (!fileName || !name)
    return artifactError(what + ": a tensor reference needs \"file\" and \"tensor\"");
  Expected<const io::SafeTensorsFile *> f = file(*fileName);
  if (!f)
    return f.takeError();
  const io::TensorInfo *info = (*f)->find(*name);
  if (!info)
    return artifactError(what + ": '" + *fileName + "' has no tensor '" + *name + "'");
  return std::make_pair(*f, info);
}

Expected<Selection> parseSelection(const json::Object &source) {
  Selection s;
  std::optional<StringRef> name = source.getString("tensor");
  if (!name || name->empty())
    return exportError("\"source\" needs a \"tensor\" name");
  s.tensor = name->str();
  s.index = source.getInteger("index").value_or(-1);
  s.transposed = source.getBoolean("transposed").value_or(false);
  if (const json::Array *rows = source.getArray("rows")) {
    if (rows->size() != 2 || !(*rows)[0].getAsInteger() || !(*rows)[1].getAsInteger())
      return exportError("\"rows\" of '" + s.tensor + "' must be [offset, count]");
    s.rowOffset = *(*rows)[0].getAsInteger();
    s.rowCount = *(*rows)[1].getAsInteger();
  }
  s.step = source.getInteger("step").value_or(1);
  if (s.index < -1 || s.rowOffset < 0 || s.rowCount < -1 || s.step < 1)
    return exportError("the selection of '" + s.tensor + "' is out of range");
  return s;
}

/// A manifest linear's "shape" [rows, cols] (both positive).
Error readShape(const json::Object &linear, const std::string &where, int64_t &rows,
                int64_t &cols) {
  const json::Array *shape = linear.getArray("shape");
  if (!shape || shape->size() != 2 || !(*shape)[0].getAsInteger() ||
      !(*shape)[1].getAsInteger() || *(*shape)[0].getAsInteger() <= 0 ||
      *(*shape)[1].getAsInteger() <= 0)
    return exportError(where + ": \"shape\" must be [rows, cols]");
  rows = *(*shape)[0].getAsInteger();
  cols = *(*shape)[1].getAsInteger();
  return Error::success();
}

Error ArtifactExport::addDeltaLinear(const json::Object &linear, Piece piece,
                                     const json::Object *deltaBases) {
  const std::string &where = piece.where;
  if (format != ExportFormat::Dequantized)
    return artifactError(where + ": D^2-MoE's base + low-rank deltas have no " +
                         (format == ExportFormat::GGUF ? "GGUF" : "compressed-tensors") +
                         " form: export this artifact with --format dequantized");
  const json::Object *delta = linear.getObject("delta");
  const json::Object *base = deltaBases ? deltaBases->getObject(piece.role) : nullptr;
  const json::Object *a = delta->getObject("a"), *b = delta->getObject("b");
  if (!base || !a || !b)
    return artifactError(where + ": a D^2-MoE linear needs its layer's \"delta_bases\" " +
                         piece.role + " and its \"a\" and \"b\" factors");
  const json::Object *source = linear.getObject("source");
  if (!source)
    return artifactError(where + ": the D^2-MoE linear names no \"source\" tensor "
                                 "(compiled by an older moeq: compile it again)");
  for (auto [factor, name] : {std::pair{base, "base"}, {a, "a"}, {b, "b"}}) {
    Piece part;
    part.linear = factor;
    part.where = where + " " + name;
    part.layer = piece.layer;
    part.expert = piece.expert;
    part.role = piece.role;
    if (Error err = readShape(*factor, part.where, part.rows, part.cols))
      return artifactError(llvm::toString(std::move(err)));
    piece.factors.push_back(std::move(part));
  }
  const Piece &basePart = piece.factors[0], &aPart = piece.factors[1], &bPart = piece.factors[2];
  piece.rows = aPart.rows;
  piece.cols = bPart.cols;
  if (aPart.cols != bPart.rows || basePart.rows > piece.rows || basePart.cols > piece.cols)
    return artifactError(llvm::formatv("{0}: base [{1}, {2}], a [{3}, {4}] and b [{5}, {6}] "
                                       "do not make one weight",
                                       where, basePart.rows, basePart.cols, aPart.rows,
                                       aPart.cols, bPart.rows, bPart.cols));
  Expected<Selection> selection = parseSelection(*source);
  if (!selection)
    return artifactError(where + ": " + llvm::toString(selection.takeError()));
  piece.selection = std::move(*selection);
  std::string tensorName = piece.selection.tensor;
  targets[tensorName].pieces.push_back(std::move(piece));
  return Error::success();
}

Error ArtifactExport::addLinear(const json::Object &linear, Piece piece,
                                const json::Object *deltaBases) {
  const std::string &where = piece.where;
  piece.linear = &linear;
  if (linear.get("delta"))
    return addDeltaLinear(linear, std::move(piece), deltaBases);
  std::optional<StringRef> scheme = linear.getString("scheme");
  if (!scheme)
    return artifactError(where + ": no scheme");
  if (*scheme == "f16") {
    keptLinears.push_back(std::move(piece));
    return Error::success(); // kept in full precision: in params.safetensors
  }
  const json::Object *source = linear.getObject("source");
  if (!source)
    return artifactError(where + ": the quantized linear names no \"source\" tensor "
                                 "(compiled by an older moeq: compile it again)");
  Expected<Selection> selection = parseSelection(*source);
  if (!selection)
    return artifactError(where + ": " + llvm::toString(selection.takeError()));
  if (Error err = readShape(linear, where, piece.rows, piece.cols))
    return artifactError(llvm::toString(std::move(err)));
  piece.selection = std::move(*selection);
  // gpt-oss's MXFP4 experts are stored [E, out, in]; unquantized, [E, in, out].
  if (mxfp4 && piece.selection.index >= 0)
    piece.selection.transposed = !piece.selection.transposed;
  std::string tensorName = piece.selection.tensor;
  targets[tensorName].pieces.push_back(std::move(piece));
  return Error::success();
}

Error ArtifactExport::collectPieces() {
  const json::Array *layers = manifest.getAsObject()->getArray("layers");
  if (!layers)
    return artifactError("manifest.json has no \"layers\"");
  for (const json::Value &layerValue : *layers) {
    const json::Object *layer = layerValue.getAsObject();
    if (!layer)
      return artifactError("a layer of manifest.json is not an object");
    int64_t layerIndex = layer->getInteger("layer").value_or(-1);
    std::string at = "layer " + std::to_string(layerIndex);
    auto addLinears = [&](const json::Object *owner, const std::string &where,
                          int64_t expertIndex) -> Error {
      const json::Object *linears = owner ? owner->getObject("linears") : nullptr;
      if (!linears)
        return artifactError(where + ": no \"linears\"");
      for (StringRef role : {"gate", "up", "down"}) {
        const json::Object *linear = linears->getObject(role);
        if (!linear)
          return artifactError(where + ": no " + role + " linear");
        Piece piece;
        piece.where = where + " " + role.str();
        piece.layer = layerIndex;
        piece.expert = expertIndex;
        piece.role = role.str();
        if (Error err = addLinear(*linear, std::move(piece), layer->getObject("delta_bases")))
          return err;
      }
      return Error::success();
    };
    if (const json::Array *experts = layer->getArray("experts"))
      for (const json::Value &expert : *experts) {
        const json::Object *e = expert.getAsObject();
        int64_t expertIndex = e ? e->getInteger("expert").value_or(-1) : -1;
        std::string where = at + " expert " + std::to_string(expertIndex);
        if (Error err = addLinears(e, where, expertIndex))
          return err;
      }
    if (const json::Object *shared = layer->getObject("shared_expert"))
      if (Error err = addLinears(shared, at + " shared expert", -1))
        return err;
  }
  return Error::success();
}

/// The stored row of logical row `r` of a piece.
int64_t storedRow(const Selection &s, int64_t r) {
  return s.rowCount >= 0 ? s.rowOffset + r * s.step : r;
}

Error ArtifactExport::planTargets() {
  for (auto &[name, target] : targets) {
    const Piece &first = target.pieces.front();
    int64_t cols = first.cols, rows = 0, matrices = 0;
    for (const Piece &p : target.pieces) {
      if (p.cols != cols || p.selection.transposed != first.selection.transposed ||
          (p.selection.index < 0) != (first.selection.index < 0))
        return artifactError("the pieces of '" + name + "' (" + first.where + ", " + p.where +
                             ") do not fit together");
      if (p.selection.rowCount >= 0 && p.selection.rowCount != p.rows)
        return artifactError(p.where + ": \"rows\" selects " +
                             Twine(p.selection.rowCount) + " rows of a " + Twine(p.rows) +
                             "-row matrix");
      // (Sizes from the headers now: an artifact that does not fit fails
      // before anything is written.)
      if (Error err = checkPiece(p))
        return err;
      rows = std::max(rows, storedRow(p.selection, p.rows - 1) + 1);
      matrices = std::max(matrices, p.selection.index + 1);
    }
    target.rowsPerMatrix = rows;
    std::vector<int64_t> matrix = first.selection.transposed
                                      ? std::vector<int64_t>{cols, rows}
                                      : std::vector<int64_t>{rows, cols};
    target.shape = matrix;
    if (first.selection.index >= 0)
      target.shape.insert(target.shape.begin(), matrices);
  }
  return Error::success();
}

Expected<quant::Scheme> ArtifactExport::schemeOf(const Piece &piece) {
  const json::Object &linear = *piece.linear;
  const json::Object *tensors = linear.getObject("tensors");
  std::optional<int64_t> bits = linear.getInteger("bits"),
                         group = linear.getInteger("group_size");
  if (!tensors || !bits || !group || *bits < 1 || *bits > 8 || *group <= 0)
    return artifactError(piece.where + ": needs \"tensors\", \"bits\" (1-8) and "
                                       "\"group_size\"");
  quant::Scheme scheme;
  scheme.bits = unsigned(*bits);
  scheme.groupSize = *group == piece.cols ? 0 : *group;
  scheme.symmetric = linear.getBoolean("symmetric").value_or(false);
  if (const json::Array *groupBits = linear.getArray("group_bits"))
    for (const json::Value &b : *groupBits)
      scheme.groupBits.push_back(uint8_t(b.getAsInteger().value_or(0)));
  scheme.levelTable = tensors->getObject("levels") != nullptr;
  return scheme;
}

Error ArtifactExport::checkPiece(const Piece &piece) {
  for (const Piece &factor : piece.factors)
    if (Error err = checkPiece(factor))
      return err;
  if (!piece.factors.empty())
    return Error::success();
  Expected<quant::Scheme> scheme = schemeOf(piece);
  if (!scheme)
    return scheme.takeError();
  const json::Object *tensors = piece.linear->getObject("tensors");
  int64_t groupValues = piece.rows * scheme->numGroups(piece.cols);
  std::pair<StringRef, int64_t> expected[] = {
      {"qweight", piece.rows * scheme->wordsPerRow(piece.cols)},
      {"scales", scheme->levelTable ? 0 : groupValues},
      {"zeros", scheme->levelTable || scheme->symmetric ? 0 : groupValues},
      {"levels", scheme->levelTable ? groupValues * scheme->numLevels() : 0}};
  for (auto [key, count] : expected) {
    const json::Object *ref = tensors->getObject(key);
    if (!count)
      continue;
    if (!ref)
      return artifactError(piece.where + ": no \"" + key + "\" tensor");
    auto found = tensor(*ref, piece.where + " " + key);
    if (!found)
      return found.takeError();
    io::DType dtype = found->second->dtype;
    if (key == "qweight" ? dtype != io::DType::I32 : !io::isFloatingPoint(dtype))
      return artifactError(piece.where + ": " + key + " is " + io::dtypeName(dtype).str() +
                           (key == "qweight" ? ", expected I32" : ", expected a float type"));
    if (found->second->numElements() != count)
      return artifactError(llvm::formatv(
          "{0}: {1} has {2} values, expected {3} for [{4}, {5}] at {6} bits", piece.where, key,
          found->second->numElements(), count, piece.rows, piece.cols, scheme->bits));
  }
  return Error::success();
}

Expected<std::vector<uint32_t>> ArtifactExport::readWords(const Piece &piece) {
  const json::Object *ref = piece.linear->getObject("tensors")->getObject("qweight");
  auto qweight = tensor(*ref, piece.where + " qweight");
  if (!qweight)
    return qweight.takeError();
  llvm::ArrayRef<uint8_t> bytes = qweight->first->data(*qweight->second);
  std::vector<uint32_t> words(bytes.size() / 4);
  std::memcpy(words.data(), bytes.data(), words.size() * 4);
  return words;
}

Expected<std::vector<float>> ArtifactExport::readFloats(const Piece &piece, StringRef key) {
  const json::Object *ref = piece.linear->getObject("tensors")->getObject(key);
  if (!ref)
    return std::vector<float>();
  auto found = tensor(*ref, piece.where + " " + key);
  if (!found)
    return found.takeError();
  return found->first->readAsFloat(*found->second);
}

Expected<std::vector<float>> ArtifactExport::rebuildDelta(const Piece &piece) {
  Expected<std::vector<float>> base = dequantize(piece.factors[0]),
                               a = dequantize(piece.factors[1]),
                               b = dequantize(piece.factors[2]);
  if (!base)
    return base.takeError();
  if (!a)
    return a.takeError();
  if (!b)
    return b.takeError();
  // As the kernels compute it: a pruned base (D^2-MoE's --d2-prune) holds
  // the leading output channels (gate, up) or reads the leading input
  // channels (down).
  return compress::rebuildDeltaWeight(*base, piece.factors[0].rows, piece.factors[0].cols, *a,
                                      *b, piece.rows, piece.factors[1].cols, piece.cols);
}

Expected<std::vector<float>> ArtifactExport::dequantize(const Piece &piece) {
  if (!piece.factors.empty())
    return rebuildDelta(piece);
  Expected<quant::Scheme> scheme = schemeOf(piece);
  if (!scheme)
    return scheme.takeError();
  Expected<std::vector<uint32_t>> words = readWords(piece);
  if (!words)
    return words.takeError();
  Expected<std::vector<float>> scales = readFloats(piece, "scales"),
                               zeros = readFloats(piece, "zeros"),
                               levels = readFloats(piece, "levels");
  if (!scales)
    return scales.takeError();
  if (!zeros)
    return zeros.takeError();
  if (!levels)
    return levels.takeError();
  Expected<std::vector<float>> values =
      quant::dequantizeStored(piece.where, piece.rows, piece.cols, *scheme, *words,
                              std::move(*scales), std::move(*zeros), std::move(*levels));
  if (!values)
    return artifactError(llvm::toString(values.takeError()));
  return values;
}

Expected<std::vector<float>> ArtifactExport::build(const std::string &name,
                                                      const Target &target) {
  int64_t elements = 1;
  for (int64_t d : target.shape)
    elements *= d;
  std::vector<float> out(elements, 0.f);
  std::vector<bool> written(elements, false);
  int64_t matrixElements = target.rowsPerMatrix * target.pieces.front().cols;
  for (const Piece &p : target.pieces) {
    Expected<std::vector<float>> values = dequantize(p);
    if (!values)
      return values.takeError();
    const Selection &s = p.selection;
    int64_t base = std::max<int64_t>(s.index, 0) * matrixElements;
    for (int64_t r = 0; r < p.rows; ++r) {
      int64_t row = storedRow(s, r);
      for (int64_t c = 0; c < p.cols; ++c) {
        int64_t at = base + (s.transposed ? c * target.rowsPerMatrix + row : row * p.cols + c);
        if (written[at])
          return artifactError(p.where + " overlaps another piece of '" + name + "'");
        written[at] = true;
        out[at] = (*values)[r * p.cols + c];
      }
    }
  }
  int64_t covered = llvm::count(written, true);
  if (covered != elements)
    return artifactError(llvm::formatv("the quantized linears cover {0} of the {1} values "
                                       "of '{2}'",
                                       covered, elements, name));
  return out;
}

bool isExportEntry(StringRef name, bool isDirectory) {
  return !isDirectory && (name == "model.safetensors" ||
                          llvm::is_contained(hfFileNames(), name));
}

Error ArtifactExport::addLazyTensor(io::SafeTensorsWriter &writer, ExportSummary &summary,
                                    const std::string &name, io::DType dtype,
                                    std::vector<int64_t> shape, const Progress &progress,
                                    std::function<Expected<std::vector<uint8_t>>()> produce) {
  int64_t elements = 1;
  for (int64_t d : shape)
    elements *= d;
  summary.bytes += uint64_t(elements) * io::dtypeSize(dtype);
  ++summary.tensors;
  return writer.addTensor(
      name, dtype, shape,
      [this, name, progress, produce](llvm::raw_ostream &os) -> Error {
        if (progress)
          progress(name);
        Expected<std::vector<uint8_t>> bytes = produce();
        for (auto &entry : files)
          entry.second->releasePages();
        if (!bytes)
          return bytes.takeError();
        os.write(reinterpret_cast<const char *>(bytes->data()), bytes->size());
        return Error::success();
      });
}


Error ArtifactExport::addCopiedParams(io::SafeTensorsWriter &writer, ExportSummary &summary,
                                      const Progress &progress) {
  Expected<const io::SafeTensorsFile *> params = file("params.safetensors");
  if (!params)
    return params.takeError();
  for (const io::TensorInfo &info : (*params)->tensors()) {
    if (targets.count(info.name))
      continue; // (written from the quantized linears)
    // The fp8 block scales of tensors moeq decoded to float on import.
    if (dropQuantizationConfig && StringRef(info.name).ends_with("_scale_inv"))
      continue;
    const io::SafeTensorsFile *from = *params;
    const io::TensorInfo *tensorInfo = &info;
    if (Error err = writer.addTensor(
            info.name, info.dtype, info.shape,
            [from, tensorInfo, progress](llvm::raw_ostream &os) -> Error {
              if (progress)
                progress(tensorInfo->name);
              llvm::ArrayRef<uint8_t> bytes = from->data(*tensorInfo);
              os.write(reinterpret_cast<const char *>(bytes.data()), bytes.size());
              from->releasePages();
              return Error::success();
            }))
      return err;
    summary.bytes += info.numBytes();
    ++summary.tensors;
  }
  return Error::success();
}

Error ArtifactExport::addDequantized(io::SafeTensorsWriter &writer, ExportSummary &summary,
                                     const Progress &progress) {
  for (auto &[name, target] : targets) {
    const std::string *tensorName = &name;
    const Target *plan = &target;
    if (Error err = addLazyTensor(writer, summary, name, io::DType::F32, target.shape, progress,
                                  [this, tensorName, plan]() -> Expected<std::vector<uint8_t>> {
                                    Expected<std::vector<float>> values =
                                        build(*tensorName, *plan);
                                    if (!values)
                                      return values.takeError();
                                    return bytesOf(*values);
                                  }))
      return err;
    summary.dequantized += target.pieces.size();
  }
  return Error::success();
}

/// compressed-tensors packs `32 / bits` codes per int32 word, code i of a
/// run in bits [i * bits, (i + 1) * bits), the last word zero-padded
/// (pack_to_int32), along rows (`alongRows`: zero points) or columns.
std::vector<int32_t> packCompressedTensors(llvm::ArrayRef<uint8_t> codes, int64_t rows,
                                           int64_t cols, unsigned bits, bool alongRows) {
  int64_t perWord = 32 / bits;
  int64_t outRows = alongRows ? (rows + perWord - 1) / perWord : rows;
  int64_t outCols = alongRows ? cols : (cols + perWord - 1) / perWord;
  std::vector<uint32_t> words(outRows * outCols, 0);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) {
      int64_t word = alongRows ? (r / perWord) * outCols + c : r * outCols + c / perWord;
      int64_t slot = alongRows ? r % perWord : c % perWord;
      words[word] |= uint32_t(codes[r * cols + c]) << (slot * bits);
    }
  std::vector<int32_t> out(words.size());
  std::memcpy(out.data(), words.data(), words.size() * 4);
  return out;
}

Expected<CTScheme> ArtifactExport::compressedTensorsScheme(const std::string &name,
                                                           const Target &target) {
  const Piece &p = target.pieces.front();
  const Selection &s = p.selection;
  if (target.pieces.size() != 1 || s.index >= 0 || s.transposed || s.rowCount >= 0)
    return artifactError(p.where + ": '" + name + "' is a fused or stacked expert tensor; " +
                         "compressed-tensors quantizes the 2-D weights of nn.Linear modules " +
                         "only: export this model with --format dequantized");
  if (!StringRef(name).ends_with(".weight"))
    return artifactError(p.where + ": '" + name + "' is not the weight of a module");
  Expected<quant::Scheme> scheme = schemeOf(p);
  if (!scheme)
    return scheme.takeError();
  StringRef mangled = p.linear->getString("scheme").value_or("?");
  auto inexpressible = [&](const Twine &why) {
    return artifactError(p.where + ": scheme " + mangled + " has no compressed-tensors form (" +
                         why + "): export it with --format dequantized, or compile with " +
                         "other --schemes");
  };
  if (scheme->levelTable)
    return inexpressible("level tables");
  if (!scheme->groupBits.empty())
    return inexpressible("SliM-LLM group widths");
  // moeq's 1-bit groups are binarised around their mean: a fractional zero
  // point, where compressed-tensors' are integer codes.
  if (scheme->bits == 1)
    return inexpressible("1-bit binarised groups have fractional zero points");
  int64_t actBits = p.linear->getInteger("activation_bits").value_or(16);
  CTScheme ct{scheme->bits, scheme->groupSize, scheme->symmetric, actBits == 8};
  if (actBits == 8 && !(scheme->bits == 8 && scheme->symmetric && scheme->groupSize == 0))
    return inexpressible("int-quantized activations take 8-bit symmetric per-channel weights");
  if (actBits != 16 && actBits != 8)
    return inexpressible(Twine(actBits) + "-bit activations");
  return ct;
}

Error ArtifactExport::addCompressedTensors(io::SafeTensorsWriter &writer,
                                           ExportSummary &summary, const Progress &progress) {
  for (auto &[name, target] : targets) {
    Expected<CTScheme> ct = compressedTensorsScheme(name, target);
    if (!ct)
      return ct.takeError();
    const Piece *p = &target.pieces.front();
    std::string module = StringRef(name).drop_back(strlen(".weight")).str();
    ctGroups[*ct].push_back(module);
    // `<P>.<expert>.<proj>`: a routed expert's projection in its layer's experts.
    auto [rest, proj] = StringRef(module).rsplit('.');
    auto [prefix, expert] = rest.rsplit('.');
    if (p->expert >= 0 && !prefix.empty() && expert == std::to_string(p->expert))
      expertsPrefixOf[module] = prefix.str();
    unsigned bits = ct->bits;
    int64_t rows = p->rows, cols = p->cols;
    int64_t groups = ct->groupSize ? cols / ct->groupSize : 1;
    auto codes = [this, p]() -> Expected<std::vector<uint8_t>> {
      Expected<quant::Scheme> scheme = schemeOf(*p);
      Expected<std::vector<uint32_t>> words = readWords(*p);
      if (!scheme)
        return scheme.takeError();
      if (!words)
        return words.takeError();
      return quant::unpackCodes(*words, p->rows, p->cols, *scheme);
    };
    // Scales as the artifact stores them (f16): the values moeq's kernels use.
    auto scales = [this, p]() -> Expected<std::vector<uint8_t>> {
      Expected<std::vector<float>> values = readFloats(*p, "scales");
      if (!values)
        return values.takeError();
      std::vector<uint8_t> bytes;
      if (Error err = io::encodeFromFloat(io::DType::F16, *values, bytes))
        return std::move(err);
      return bytes;
    };
    Error err = Error::success();
    if (ct->int8Activations) {
      // int-quantized: the signed codes (moeq's symmetric zero is 128).
      err = addLazyTensor(writer, summary, module + ".weight", io::DType::I8, {rows, cols},
                          progress, [codes]() -> Expected<std::vector<uint8_t>> {
                            Expected<std::vector<uint8_t>> c = codes();
                            if (!c)
                              return c.takeError();
                            for (uint8_t &v : *c)
                              v = uint8_t(int(v) - 128);
                            return c;
                          });
    } else {
      // pack-quantized stores code + 2^(bits-1) for the signed code, i.e.
      // moeq's unsigned code itself; its zero point likewise.
      int64_t perWord = 32 / bits;
      err = addLazyTensor(writer, summary, module + ".weight_packed", io::DType::I32,
                          {rows, (cols + perWord - 1) / perWord}, progress,
                          [codes, rows, cols, bits]() -> Expected<std::vector<uint8_t>> {
                            Expected<std::vector<uint8_t>> c = codes();
                            if (!c)
                              return c.takeError();
                            return bytesOf(packCompressedTensors(*c, rows, cols, bits, false));
                          });
      if (!err)
        err = addLazyTensor(writer, summary, module + ".weight_shape", io::DType::I64, {2},
                            progress, [rows, cols]() -> Expected<std::vector<uint8_t>> {
                              return bytesOf(std::vector<int64_t>{rows, cols});
                            });
      if (!err && !ct->symmetric)
        err = addLazyTensor(
            writer, summary, module + ".weight_zero_point", io::DType::I32,
            {(rows + perWord - 1) / perWord, groups}, progress,
            [this, p, rows, groups, bits]() -> Expected<std::vector<uint8_t>> {
              Expected<std::vector<float>> zeros = readFloats(*p, "zeros");
              if (!zeros)
                return zeros.takeError();
              std::vector<uint8_t> codes(zeros->size());
              for (size_t i = 0; i < zeros->size(); ++i) {
                float z = (*zeros)[i];
                if (z != std::nearbyint(z) || z < 0 || z >= float(1u << bits))
                  return artifactError(p->where + ": zero point " + std::to_string(z) +
                                       " is not a " + Twine(bits) + "-bit code");
                codes[i] = uint8_t(z);
              }
              return bytesOf(packCompressedTensors(codes, rows, groups, bits, true));
            });
    }
    if (!err)
      err = addLazyTensor(writer, summary, module + ".weight_scale", io::DType::F16,
                          {rows, groups}, progress, scales);
    if (err)
      return err;
    ++summary.dequantized;
  }
  return Error::success();
}

/// The config-group targets of each scheme: exact module names, except
/// that the routed experts of a layer that all share one scheme become one
/// anchored regular expression, `re:^<P>\.\d+\.(<projs>)$` for the
/// experts `<P>.<e>.<proj>`, `<projs>` their projection names and vLLM's
/// (gate_proj, up_proj, down_proj): compressed-tensors and vLLM both match
/// `re:` targets with Python's re.match, and vLLM looks a fused-MoE layer's
/// scheme up under `<P>.0.gate_proj` whatever the checkpoint calls it
/// (Mixtral: w1/w2/w3). The names are listed, not `[^.]+`, so that the
/// experts' activation modules are not targeted. (It also keeps a
/// 256-expert layer to one target.) Fills `mixedLayers` with the prefixes
/// whose experts mix schemes.
std::map<CTScheme, std::vector<std::string>>
configTargets(const std::map<CTScheme, std::vector<std::string>> &groups,
              const std::map<std::string, std::string> &expertsPrefixOf,
              std::set<std::string> &mixedLayers) {
  std::map<std::string, std::set<CTScheme>> schemesOfPrefix;
  std::map<std::string, std::set<std::string>> projectionsOfPrefix;
  for (const auto &[scheme, modules] : groups)
    for (const std::string &module : modules)
      if (auto it = expertsPrefixOf.find(module); it != expertsPrefixOf.end()) {
        schemesOfPrefix[it->second].insert(scheme);
        projectionsOfPrefix[it->second].insert(StringRef(module).rsplit('.').second.str());
      }
  auto escape = [](StringRef text) {
    std::string escaped;
    for (char c : text) {
      if (!llvm::isAlnum(c) && c != '_')
        escaped += '\\';
      escaped += c;
    }
    return escaped;
  };
  std::map<CTScheme, std::vector<std::string>> targets;
  for (const auto &[scheme, modules] : groups) {
    std::set<std::string> collapsed;
    for (const std::string &module : modules) {
      auto it = expertsPrefixOf.find(module);
      if (it == expertsPrefixOf.end() || schemesOfPrefix[it->second].size() != 1) {
        targets[scheme].push_back(module);
        if (it != expertsPrefixOf.end())
          mixedLayers.insert(it->second);
        continue;
      }
      std::set<std::string> projections = projectionsOfPrefix[it->second];
      projections.insert({"gate_proj", "up_proj", "down_proj"});
      std::string alternatives;
      for (const std::string &projection : projections)
        alternatives += (alternatives.empty() ? "" : "|") + escape(projection);
      collapsed.insert("re:^" + escape(it->second) + "\\.\\d+\\.(" + alternatives + ")$");
    }
    llvm::append_range(targets[scheme], collapsed);
    llvm::sort(targets[scheme]);
  }
  return targets;
}

/// Whether vLLM serves the export: its fused MoE needs one servable scheme
/// per layer (whyNotVLLMFusedMoE), its dense layers (a shared expert) one of
/// the schemes its linear kernels take.
std::string vllmVerdict(const std::map<CTScheme, std::vector<std::string>> &groups,
                        const std::map<std::string, std::string> &expertsPrefixOf,
                        const std::set<std::string> &mixedLayers) {
  if (!mixedLayers.empty())
    return "vLLM: cannot serve it: the experts of " + *mixedLayers.begin() +
           " (and " + std::to_string(mixedLayers.size() - 1) +
           " more layers) mix schemes, and vLLM's fused MoE takes one per layer "
           "(compile with --serve vllm)";
  for (const auto &[scheme, modules] : groups) {
    bool routed = llvm::any_of(modules, [&](const std::string &m) {
      return expertsPrefixOf.count(m) != 0;
    });
    ServedScheme served{scheme.bits, scheme.int8Activations ? 8u : 16u, scheme.groupSize,
                        scheme.symmetric, false};
    std::string why = whyNotVLLMFusedMoE(served);
    if (routed && !why.empty())
      return "vLLM: cannot serve it: " + why + " (compile with --serve vllm)";
  }
  return "vLLM: its fused MoE serves every layer (one servable scheme per layer; vLLM's "
         "config reading and scheme lookup: bench/vllm_lookup.py)";
}

} // namespace mlir::moeq::artifact::detail

std::string mlir::moeq::artifact::whyNotVLLMFusedMoE(const ServedScheme &scheme) {
  if (scheme.levelTable)
    return "level tables have no vLLM kernel";
  if (scheme.actBits == 8)
    return scheme.weightBits == 8 && scheme.symmetric && scheme.groupSize == 0
               ? ""
               : "w8a8 needs 8-bit symmetric per-channel weights";
  if (scheme.actBits != 16)
    return std::to_string(scheme.actBits) + "-bit activations have no vLLM MoE kernel";
  if (scheme.weightBits != 4 && scheme.weightBits != 8)
    return std::to_string(scheme.weightBits) + "-bit weights (vLLM's MoE kernels take 4 or 8)";
  if (!scheme.symmetric)
    return "asymmetric weights (vLLM's MoE kernels take symmetric ones)";
  if (scheme.groupSize != 0 && scheme.groupSize != 128)
    return "groups of " + std::to_string(scheme.groupSize) +
           " (vLLM's MoE kernels take 128 or per channel)";
  return "";
}

namespace mlir::moeq::artifact::detail {

/// The `quantization_config` of a compressed-tensors checkpoint: one group
/// per scheme with its targets (configTargets).
json::Value compressedTensorsConfig(const std::map<CTScheme, std::vector<std::string>> &groups) {
  json::Object configGroups;
  std::set<StringRef> formats;
  unsigned index = 0;
  for (const auto &[scheme, modules] : groups) {
    json::Object weights{{"num_bits", int64_t(scheme.bits)},
                         {"type", "int"},
                         {"symmetric", scheme.symmetric},
                         {"strategy", scheme.groupSize ? "group" : "channel"},
                         {"group_size", scheme.groupSize ? json::Value(scheme.groupSize)
                                                         : json::Value(nullptr)},
                         {"dynamic", false},
                         {"actorder", nullptr}};
    json::Value activations = nullptr;
    if (scheme.int8Activations)
      activations = json::Object{{"num_bits", 8},       {"type", "int"},
                                 {"symmetric", true},   {"strategy", "token"},
                                 {"dynamic", true},     {"group_size", nullptr}};
    configGroups["group_" + std::to_string(index++)] = json::Object{
        {"targets", json::Array(modules)},
        {"weights", std::move(weights)},
        {"input_activations", std::move(activations)},
        {"output_activations", nullptr},
        {"format", scheme.format()}};
    formats.insert(scheme.format());
  }
  return json::Object{
      {"quant_method", "compressed-tensors"},
      {"format", formats.size() == 1 ? json::Value(*formats.begin()) : "mixed-precision"},
      {"quantization_status", "compressed"},
      {"config_groups", std::move(configGroups)},
      {"ignore", json::Array()},
      {"kv_cache_scheme", nullptr},
      {"global_compression_ratio", nullptr},
      {"sparsity_config", json::Object()},
      {"version", "0.14.0.1"}};
}

Error ArtifactExport::writeOutput(io::SafeTensorsWriter &writer, StringRef outDir,
                                  ExportSummary &summary) {
  if (Error err = io::checkReplaceableDirectory(outDir, isExportEntry, "a moeq export"))
    return err;
  Expected<io::AtomicOutputDirectory> out = io::AtomicOutputDirectory::create(outDir);
  if (!out)
    return out.takeError();
  if (Error err = writer.writeAtomically(out->pathFor("model.safetensors")))
    return err;
  json::Object &cfg = *config.getAsObject();
  bool rewriteConfig = dropQuantizationConfig || format == ExportFormat::CompressedTensors;
  if (dropQuantizationConfig)
    cfg.erase("quantization_config");
  if (format == ExportFormat::CompressedTensors) {
    std::set<std::string> mixedLayers;
    std::map<CTScheme, std::vector<std::string>> targets =
        configTargets(ctGroups, expertsPrefixOf, mixedLayers);
    cfg["quantization_config"] = compressedTensorsConfig(targets);
    unsigned index = 0;
    for (const auto &[scheme, modules] : ctGroups)
      summary.groups.push_back(llvm::formatv(
          "group_{0}: {1}, {2}-bit {3} {4}, {5} modules ({6} targets)", index++,
          scheme.format(), scheme.bits, scheme.symmetric ? "symmetric" : "asymmetric",
          scheme.groupSize ? "group " + std::to_string(scheme.groupSize) : "per channel",
          modules.size(), targets[scheme].size()));
    summary.groups.push_back("transformers + compressed-tensors: loads every group (tested)");
    summary.groups.push_back(vllmVerdict(ctGroups, expertsPrefixOf, mixedLayers));
  }
  for (StringRef name : hfFileNames()) {
    std::string from = path(Twine(kHFDirectory) + "/" + name);
    if (!llvm::sys::fs::is_regular_file(from))
      continue;
    summary.hfFiles.push_back(name.str());
    if (name == "config.json" && rewriteConfig) {
      std::error_code ec;
      llvm::raw_fd_ostream os(out->pathFor(name), ec);
      if (ec)
        return exportError("cannot write config.json: " + ec.message());
      os << llvm::formatv("{0:2}\n", config);
      continue;
    }
    if (std::error_code ec = llvm::sys::fs::copy_file(from, out->pathFor(name)))
      return exportError("cannot copy " + Twine(kHFDirectory) + "/" + name + ": " + ec.message());
  }
  return out->commit();
}

Expected<ExportSummary> ArtifactExport::run(StringRef outDir, Progress progress) {
  if (Error err = loadManifest())
    return std::move(err);
  if (Error err = loadConfig())
    return std::move(err);
  if (Error err = collectPieces())
    return std::move(err);
  if (targets.empty())
    return artifactError("no quantized linear to export");
  if (Error err = planTargets())
    return std::move(err);

  ExportSummary summary;
  if (format == ExportFormat::GGUF) {
    if (Error err = writeGGUF(outDir, summary, progress))
      return std::move(err);
    return summary;
  }
  io::SafeTensorsWriter writer;
  writer.setMetadata("format", "pt");
  bool ct = format == ExportFormat::CompressedTensors;
  writer.setMetadata("producer", ct ? "moeq-export --format compressed-tensors"
                                    : "moeq-export --format dequantized");
  if (Error err = ct ? addCompressedTensors(writer, summary, progress)
                     : addDequantized(writer, summary, progress))
    return std::move(err);
  if (Error err = addCopiedParams(writer, summary, progress))
    return std::move(err);
  if (Error err = writeOutput(writer, outDir, summary))
    return std::move(err);
  return summary;
}

} // namespace mlir::moeq::artifact::detail

Expected<ExportSummary>
mlir::moeq::artifact::exportArtifact(StringRef artifactDir, ExportFormat format,
                                     StringRef outDir, std::function<void(StringRef)> progress) {
  switch (format) {
  case ExportFormat::Dequantized:
  case ExportFormat::CompressedTensors:
  case ExportFormat::GGUF:
    return ArtifactExport(artifactDir, format).run(outDir, std::move(progress));
  }
  llvm_unreachable("unknown export format");
}
