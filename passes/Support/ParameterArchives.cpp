//===- ParameterArchives.cpp - resolving #moeq.param references -----------===//
#include "moeq/Passes/ParameterArchives.h"
#include "moeq/IO/MatrixSelection.h"
#include "moeq/Calibration/StatisticsFiles.h"
#include "moeq/Dialect/MoEQ/IR/MoEQ.h"
#include "moeq/Runtime/MemoryLimit.h"

#include "mlir/IR/BuiltinOps.h"

#include <cstring>

using namespace mlir;
using namespace mlir::moeq;

ParameterArchives::ParameterArchives() = default;
ParameterArchives::ParameterArchives(ParameterArchives &&) = default;
ParameterArchives &ParameterArchives::operator=(ParameterArchives &&) = default;
ParameterArchives::~ParameterArchives() = default;

FailureOr<ParameterArchives> ParameterArchives::fromModule(ModuleOp module) {
  ParameterArchives archives;
  Attribute attr = module->getAttr(kArchivesAttrName);
  if (!attr)
    return archives;
  auto dict = dyn_cast<DictionaryAttr>(attr);
  if (!dict)
    return module.emitError() << "'" << kArchivesAttrName
                              << "' must be a dictionary of scope -> path";
  for (NamedAttribute entry : dict) {
    auto path = dyn_cast<StringAttr>(entry.getValue());
    if (!path)
      return module.emitError() << "archive scope '" << entry.getName().getValue()
                                << "' must map to a path string";
    archives.setPath(entry.getName().getValue(), path.getValue());
  }
  return archives;
}

void ParameterArchives::setPath(StringRef scope, StringRef path) {
  paths[scope] = path.str();
  opened.erase(scope);
  statistics.erase(scope);
}

FailureOr<calib::StatisticsReader *> ParameterArchives::getStatistics(Location loc,
                                                                     StringRef scope) {
  auto it = statistics.find(scope);
  if (it != statistics.end())
    return it->second.get();
  auto pathIt = paths.find(scope);
  std::unique_ptr<calib::StatisticsReader> reader;
  if (pathIt != paths.end() &&
      calib::StatisticsReader::isStatisticsDirectory(pathIt->second)) {
    auto read = calib::StatisticsReader::open(pathIt->second);
    if (!read)
      return emitError(loc) << llvm::toString(read.takeError());
    reader = std::move(*read);
  }
  calib::StatisticsReader *result = reader.get();
  statistics[scope] = std::move(reader);
  return result;
}

FailureOr<io::Checkpoint *> ParameterArchives::getArchive(Location loc,
                                                          StringRef scope) {
  FailureOr<calib::StatisticsReader *> stats = getStatistics(loc, scope);
  if (failed(stats))
    return failure();
  if (*stats)
    return emitError(loc) << "archive '" << scope << "' (" << paths[scope]
                          << ") is a statistics directory, not a checkpoint";
  auto it = opened.find(scope);
  if (it != opened.end())
    return it->second.get();
  auto pathIt = paths.find(scope);
  if (pathIt == paths.end())
    return emitError(loc) << "no archive for parameter scope '" << scope
                          << "' (module attribute '" << kArchivesAttrName << "')";
  auto checkpoint = io::Checkpoint::open(pathIt->second);
  if (!checkpoint)
    return emitError(loc) << llvm::toString(checkpoint.takeError());
  io::Checkpoint *result = checkpoint->get();
  opened[scope] = std::move(*checkpoint);
  return result;
}

FailureOr<ParameterArchives::Found> ParameterArchives::find(Location loc,
                                                           ExternalParamAttr ref) {
  StringRef scope = ref.getScope().getValue(), key = ref.getKey().getValue();
  FailureOr<calib::StatisticsReader *> stats = getStatistics(loc, scope);
  if (failed(stats))
    return failure();
  Found found;
  if (*stats) {
    // A statistics directory: opens the file of the layer the key names.
    auto info = (*stats)->find(key, &found.file);
    if (!info)
      return emitError(loc) << llvm::toString(info.takeError());
    found.info = *info;
    return found;
  }
  FailureOr<io::Checkpoint *> archive = getArchive(loc, scope);
  if (failed(archive))
    return failure();
  found.checkpoint = *archive;
  found.info = (*archive)->find(key, &found.file);
  return found;
}

FailureOr<bool> ParameterArchives::contains(Location loc, ExternalParamAttr ref) {
  FailureOr<Found> found = find(loc, ref);
  if (failed(found))
    return failure();
  return found->info != nullptr;
}

FailureOr<const io::TensorInfo *>
ParameterArchives::lookup(Location loc, ExternalParamAttr ref,
                          const io::SafeTensorsFile **file) {
  FailureOr<Found> found = find(loc, ref);
  if (failed(found))
    return failure();
  if (!found->info)
    return emitError(loc) << "tensor '" << ref.getKey().getValue()
                          << "' not found in archive '" << ref.getScope().getValue()
                          << "' ("
                          << (found->checkpoint || !found->file
                                  ? StringRef(paths[ref.getScope().getValue()])
                                  : found->file->path())
                          << ")";
  if (file)
    *file = found->file;
  return found->info;
}

/// An MXFP4 tensor's selected matrix (or the whole tensor), decoded to f32:
/// the View the selection then applies to (gathered: it owns the values).
static FailureOr<ParameterArchives::View> decodeMXFP4(Location loc, const io::Checkpoint &archive,
                                                      ExternalParamAttr ref,
                                                      ArrayRef<int64_t> logical) {
  StringRef key = ref.getKey().getValue();
  auto values = archive.readMXFP4(key, ref.getIndex());
  if (!values)
    return emitError(loc) << llvm::toString(values.takeError());
  auto bytes = std::make_shared<std::vector<uint8_t>>(values->size() * sizeof(float));
  std::memcpy(bytes->data(), values->data(), bytes->size());
  ParameterArchives::View view{io::DType::F32, SmallVector<int64_t>(logical), *bytes};
  view.gathered = std::move(bytes);
  if (ref.getIndex() >= 0)
    view.shape.erase(view.shape.begin());
  return view;
}

FailureOr<ParameterArchives::View>
ParameterArchives::resolve(Location loc, ExternalParamAttr ref) {
  FailureOr<Found> found = find(loc, ref);
  if (failed(found))
    return failure();
  StringRef key = ref.getKey().getValue();
  if (!found->info && found->checkpoint) {
    // gpt-oss's MXFP4 experts: `<key>_blocks` and `<key>_scales`.
    auto mxfp4 = found->checkpoint->mxfp4Shape(key);
    if (!mxfp4)
      return emitError(loc) << llvm::toString(mxfp4.takeError());
    if (*mxfp4) {
      FailureOr<View> view = decodeMXFP4(loc, *found->checkpoint, ref, **mxfp4);
      if (failed(view))
        return failure();
      return select(loc, ref, std::move(*view));
    }
  }
  if (!found->info) {
    (void)lookup(loc, ref, nullptr); // Emits the error.
    return failure();
  }
  const io::TensorInfo &info = *found->info;
  const io::SafeTensorsFile *file = found->file;
  View view{info.dtype, SmallVector<int64_t>(info.shape.begin(), info.shape.end()), file->data(info)};
  view.blockScaled = found->checkpoint && found->checkpoint->hasBlockScales(key);
  if (view.blockScaled && ref.isSliced())
    return emitError(loc) << "tensor '" << key
                          << "' has fp8 block scales and cannot be sliced";
  uint64_t elementSize = io::dtypeSize(info.dtype);
  if (ref.getIndex() >= 0) {
    // (The leading dimension of a rank-2 or rank-3 tensor: an expert's
    // matrix of a stacked tensor, or a row such as ERNIE's [1, E] bias.)
    if (view.shape.size() < 2 || view.shape.size() > 3 || ref.getIndex() >= view.shape[0])
      return emitError(loc) << "cannot select matrix " << ref.getIndex()
                            << " of tensor '" << key << "' (rank " << view.shape.size()
                            << ", " << (view.shape.empty() ? 0 : view.shape[0])
                            << " matrices)";
    uint64_t matrixBytes = elementSize;
    for (int64_t dim : ArrayRef<int64_t>(view.shape).drop_front())
      matrixBytes *= dim;
    view.bytes = view.bytes.slice(ref.getIndex() * matrixBytes, matrixBytes);
    view.shape.erase(view.shape.begin());
  }
  return select(loc, ref, std::move(view));
}

FailureOr<ParameterArchives::View>
ParameterArchives::select(Location loc, ExternalParamAttr ref, View view) {
  StringRef key = ref.getKey().getValue();
  uint64_t elementSize = io::dtypeSize(view.dtype);
  if (ref.isContiguous()) {
    if (ref.getRowCount() >= 0) {
      if (view.shape.empty() || view.shape.size() > 2 ||
          ref.getRowOffset() + ref.getRowCount() > view.shape[0])
        return emitError(loc) << "rows [" << ref.getRowOffset() << ", "
                              << ref.getRowOffset() + ref.getRowCount()
                              << ") are out of range for tensor '" << key << "'";
      uint64_t rowBytes = elementSize * (view.shape.size() == 2 ? view.shape[1] : 1);
      view.bytes = view.bytes.slice(ref.getRowOffset() * rowBytes, ref.getRowCount() * rowBytes);
      view.shape[0] = ref.getRowCount();
    }
    return view;
  }
  // Transposed and/or every step-th row (of a matrix, or element of a
  // vector: gpt-oss's interleaved biases): gathered element by element.
  bool vector = view.shape.size() == 1 && !ref.getTransposed();
  if (view.shape.size() != 2 && !vector)
    return emitError(loc) << "tensor '" << key << "' is not a matrix (rank "
                          << view.shape.size() << ") and cannot be transposed or strided";
  io::MatrixSelection selection{view.shape[0], vector ? 1 : view.shape[1], ref.getTransposed(),
                                ref.getRowOffset(), ref.getRowCount(), ref.getRowStep()};
  if (llvm::Error err = selection.check())
    return emitError(loc) << "tensor '" << key << "': " << llvm::toString(std::move(err));
  uint64_t gatheredBytes = selection.selectedRows() * selection.selectedCols() * elementSize;
  std::string tooLarge = ::moeq::checkAllocationSize(
      gatheredBytes, "gathering a selection of tensor '" + key.str() + "'");
  if (!tooLarge.empty())
    return emitError(loc) << tooLarge;
  auto gathered = std::make_shared<std::vector<uint8_t>>(gatheredBytes);
  selection.gather(view.bytes.data(), elementSize, gathered->data());
  view.shape = {selection.selectedRows(), selection.selectedCols()};
  if (vector)
    view.shape.pop_back();
  view.bytes = *gathered;
  view.gathered = std::move(gathered);
  return view;
}

FailureOr<std::vector<float>> ParameterArchives::readAsFloat(Location loc,
                                                             ExternalParamAttr ref) {
  FailureOr<View> view = resolve(loc, ref);
  if (failed(view))
    return failure();
  StringRef key = ref.getKey().getValue();
  if (view->blockScaled) {
    FailureOr<io::Checkpoint *> archive = getArchive(loc, ref.getScope().getValue());
    auto values = (*archive)->readDequantized(key);
    if (!values)
      return emitError(loc) << llvm::toString(values.takeError());
    return std::move(*values);
  }
  auto values = io::decodeToFloat(view->dtype, view->bytes, key);
  if (!values)
    return emitError(loc) << llvm::toString(values.takeError());
  return std::move(*values);
}

FailureOr<std::vector<double>> ParameterArchives::readFloat64(Location loc,
                                                             ExternalParamAttr ref,
                                                             ArrayRef<int64_t> shape) {
  FailureOr<View> view = resolve(loc, ref);
  if (failed(view))
    return failure();
  if (!isReadableAs(*view, shape)) {
    InFlightDiagnostic diag = emitError(loc) << "'" << ref.getKey().getValue()
                                             << "' must be F64 or I64 [";
    llvm::interleaveComma(shape, diag);
    diag << "]";
    if (shape.size() == 2 && shape[0] == shape[1])
      diag << " (or its packed upper triangle, F32 or F64 [" << calib::packedSize(shape[0])
           << "]: statistics format version 2)";
    diag << ", got " << io::dtypeName(view->dtype) << " [";
    llvm::interleaveComma(view->shape, diag);
    return diag << "]";
  }
  auto values = calib::decodeAsFloat64(view->dtype, view->shape, view->bytes, shape,
                                       ref.getKey().getValue());
  if (!values)
    return emitError(loc) << llvm::toString(values.takeError());
  return std::move(*values);
}

bool ParameterArchives::isReadableAs(const View &view, ArrayRef<int64_t> shape) {
  return !view.blockScaled && calib::isReadableAs(view.dtype, view.shape, shape);
}

void ParameterArchives::releasePages() const {
  for (const auto &entry : opened)
    entry.getValue()->releasePages();
  for (const auto &entry : statistics)
    if (entry.getValue())
      entry.getValue()->releasePages();
}

void ParameterArchives::registerInModule(ModuleOp module, StringRef scope, StringRef path) {
  MLIRContext *ctx = module.getContext();
  NamedAttrList entries;
  if (auto dict = module->getAttrOfType<DictionaryAttr>(kArchivesAttrName))
    entries.append(dict.getValue());
  entries.set(scope, StringAttr::get(ctx, path));
  module->setAttr(kArchivesAttrName, entries.getDictionary(ctx));
}
