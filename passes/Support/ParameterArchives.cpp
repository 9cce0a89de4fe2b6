//===- ParameterArchives.cpp - resolving #moeq.param references -----------===//
#include "moeq/Passes/ParameterArchives.h"
#include "moeq/Dialect/MoEQ/IR/MoEQ.h"

#include "mlir/IR/BuiltinOps.h"

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

FailureOr<std::vector<float>> ParameterArchives::readAsFloat(Location loc,
                                                             ExternalParamAttr ref) {
  const io::SafeTensorsFile *file = nullptr;
  FailureOr<const io::TensorInfo *> info = lookup(loc, ref, &file);
  if (failed(info))
    return failure();
  auto values = file->readAsFloat(**info);
  if (!values)
    return emitError(loc) << llvm::toString(values.takeError());
  return std::move(*values);
}
