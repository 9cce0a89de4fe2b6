//===- ParameterArchives.cpp - resolving #moeq.param references -----------===//
#include "moeq/Passes/ParameterArchives.h"
#include "moeq/Dialect/MoEQ/IR/MoEQ.h"

#include "mlir/IR/BuiltinOps.h"

#include <cstring>

using namespace mlir;
using namespace mlir::moeq;

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
}

FailureOr<io::Checkpoint *> ParameterArchives::getArchive(Location loc,
                                                          StringRef scope) {
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

FailureOr<const io::TensorInfo *>
ParameterArchives::lookup(Location loc, ExternalParamAttr ref,
                          const io::SafeTensorsFile **file) {
  FailureOr<io::Checkpoint *> archive = getArchive(loc, ref.getScope().getValue());
  if (failed(archive))
    return failure();
  const io::TensorInfo *info = (*archive)->find(ref.getKey().getValue(), file);
  if (!info)
    return emitError(loc) << "tensor '" << ref.getKey().getValue()
                          << "' not found in archive '" << ref.getScope().getValue()
                          << "' (" << paths[ref.getScope().getValue()] << ")";
  return info;
}

FailureOr<ParameterArchives::View>
ParameterArchives::resolve(Location loc, ExternalParamAttr ref) {
  const io::SafeTensorsFile *file = nullptr;
  FailureOr<const io::TensorInfo *> found = lookup(loc, ref, &file);
  if (failed(found))
    return failure();
  const io::TensorInfo &info = **found;
  StringRef key = ref.getKey().getValue();
  View view{info.dtype, SmallVector<int64_t>(info.shape.begin(), info.shape.end()), file->data(info)};
  FailureOr<io::Checkpoint *> archive = getArchive(loc, ref.getScope().getValue());
  view.blockScaled = (*archive)->hasBlockScales(key);
  if (view.blockScaled && ref.isSliced())
    return emitError(loc) << "tensor '" << key
                          << "' has fp8 block scales and cannot be sliced";
  uint64_t elementSize = io::dtypeSize(info.dtype);
  if (ref.getIndex() >= 0) {
    if (view.shape.size() != 3 || ref.getIndex() >= view.shape[0])
      return emitError(loc) << "cannot select matrix " << ref.getIndex()
                            << " of tensor '" << key << "' (rank " << view.shape.size()
                            << ", " << (view.shape.empty() ? 0 : view.shape[0])
                            << " matrices)";
    uint64_t matrixBytes = elementSize * view.shape[1] * view.shape[2];
    view.bytes = view.bytes.slice(ref.getIndex() * matrixBytes, matrixBytes);
    view.shape.erase(view.shape.begin());
  }
  if (ref.getRowCount() >= 0) {
    if (view.shape.size() != 2 || ref.getRowOffset() + ref.getRowCount() > view.shape[0])
      return emitError(loc) << "rows [" << ref.getRowOffset() << ", "
                            << ref.getRowOffset() + ref.getRowCount()
                            << ") are out of range for tensor '" << key << "'";
    uint64_t rowBytes = elementSize * view.shape[1];
    view.bytes = view.bytes.slice(ref.getRowOffset() * rowBytes, ref.getRowCount() * rowBytes);
    view.shape[0] = ref.getRowCount();
  }
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
  if ((view->dtype != io::DType::F64 && view->dtype != io::DType::I64) ||
      ArrayRef<int64_t>(view->shape) != shape) {
    InFlightDiagnostic diag = emitError(loc) << "'" << ref.getKey().getValue()
                                             << "' must be F64 or I64 [";
    llvm::interleaveComma(shape, diag);
    return diag << "]";
  }
  std::vector<double> values(view->bytes.size() / 8);
  if (view->dtype == io::DType::F64) {
    std::memcpy(values.data(), view->bytes.data(), view->bytes.size());
  } else {
    std::vector<int64_t> integers(values.size());
    std::memcpy(integers.data(), view->bytes.data(), view->bytes.size());
    llvm::copy(integers, values.begin());
  }
  return values;
}

void ParameterArchives::releasePages() const {
  for (const auto &entry : opened)
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
