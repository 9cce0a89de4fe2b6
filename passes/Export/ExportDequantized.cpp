//===- ExportDequantized.cpp - quantized weights as float checkpoints -----===//
//
// Writes every packed weight of a compiled module back as a float tensor
// under its original checkpoint name: (code - zero) * scale, exactly what
// the kernels compute. The result overrides the original tensors in any
// PyTorch evaluation of the model (e.g. the fixtures' eval_ppl.py
// --override), so quality is measured on the weights moeq ships.
//
//===----------------------------------------------------------------------===//
#include "moeq/Compress/DeltaDecomposition.h"
#include "moeq/Dialect/MoEQ/IR/MoEQ.h"
#include "moeq/IO/SafeTensors.h"
#include "moeq/Passes/Export.h"
#include "moeq/Passes/ExpertWeights.h"
#include "moeq/Passes/ParameterArchives.h"
#include "moeq/Quant/Quantizer.h"

#include "mlir/IR/BuiltinOps.h"

#include <cstring>
#include <set>

using namespace mlir;
using namespace mlir::moeq;

namespace {

/// The float values of the packed weight `param` (codes, scales, zeros from
/// its archive).
FailureOr<std::vector<float>> dequantizeParam(ParamOp param, ParameterArchives &archives) {
  auto type = cast<PackedWeightType>(param.getType());
  ExternalParamAttr ref = param.getRef();
  auto read = [&](StringRef suffix) -> FailureOr<ParameterArchives::View> {
    return archives.resolve(param.getLoc(), ref.withKeySuffix(suffix));
  };
  FailureOr<ParameterArchives::View> words = read(".qweight");
  if (failed(words))
    return failure();
  int64_t rows = type.getOutputDim(), cols = type.getInputDim();
  quant::Scheme scheme = toStorageScheme(type);
  if (words->dtype != io::DType::I32 || words->bytes.size() % 4)
    return param.emitError() << "packed codes of '" << ref.getKey().getValue()
                             << "' do not match " << type;
  std::vector<uint32_t> packed(words->bytes.size() / 4);
  std::memcpy(packed.data(), words->bytes.data(), words->bytes.size());
  // Companion tensor `suffix` as floats (absent for the scheme: empty).
  auto readFloats = [&](StringRef suffix) -> FailureOr<std::vector<float>> {
    if (!llvm::is_contained(type.getScheme().getStorageSuffixes(), suffix))
      return std::vector<float>();
    FailureOr<ParameterArchives::View> view = read(suffix);
    if (failed(view))
      return failure();
    auto values = io::decodeToFloat(view->dtype, view->bytes, ref.getKey().getValue());
    if (!values)
      return param.emitError() << llvm::toString(values.takeError());
    return std::move(*values);
  };
  FailureOr<std::vector<float>> scales = readFloats(".scales"), zeros = readFloats(".zeros"),
                                levels = readFloats(".levels");
  if (failed(scales) || failed(zeros) || failed(levels))
    return failure();
  llvm::Expected<std::vector<float>> values = quant::dequantizeStored(
      ref.getKey().getValue(), rows, cols, scheme, packed, std::move(*scales),
      std::move(*zeros), std::move(*levels));
  if (!values)
    return param.emitError() << llvm::toString(values.takeError()) << " (" << type << ")";
  return std::move(*values);
}

/// The float values of a weight operand: a float or packed parameter, or a
/// D^2-MoE delta_weight (pad(base) + a . b).
FailureOr<std::vector<float>> weightValues(Value weight, ParameterArchives &archives) {
  if (auto param = weight.getDefiningOp<ParamOp>()) {
    if (isa<PackedWeightType>(param.getType()))
      return dequantizeParam(param, archives);
    return archives.readAsFloat(param.getLoc(), param.getRef());
  }
  auto delta = weight.getDefiningOp<DeltaWeightOp>();
  if (!delta)
    return failure();
  FailureOr<std::vector<float>> base = weightValues(delta.getBase(), archives);
  FailureOr<std::vector<float>> a = weightValues(delta.getA(), archives);
  FailureOr<std::vector<float>> b = weightValues(delta.getB(), archives);
  if (failed(base) || failed(a) || failed(b))
    return failure();
  ArrayRef<int64_t> shape = delta.getType().getShape();
  ArrayRef<int64_t> baseShape = getWeightShape(delta.getBase().getType());
  return compress::rebuildDeltaWeight(*base, baseShape[0], baseShape[1], *a, *b, shape[0],
                                      getWeightShape(delta.getA().getType())[1], shape[1]);
}

/// Adds `weight`'s float values (weightValues) to `writer` as F32 `name`,
/// computed when the file is written; errors are emitted on `at`.
LogicalResult addRebuiltTensor(io::SafeTensorsWriter &writer, Operation *at, Value weight,
                               const std::string &name, ParameterArchives &archives) {
  ParameterArchives *store = &archives;
  llvm::Error err = writer.addTensor(
      name, io::DType::F32, getWeightShape(weight.getType()),
      [weight, store, name](llvm::raw_ostream &os) -> llvm::Error {
        FailureOr<std::vector<float>> values = weightValues(weight, *store);
        store->releasePages();
        if (failed(values))
          return llvm::createStringError("cannot rebuild '" + name + "'");
        os.write(reinterpret_cast<const char *>(values->data()), values->size() * 4);
        return llvm::Error::success();
      });
  if (err)
    return at->emitError() << llvm::toString(std::move(err));
  return success();
}

/// Parameters that only feed delta_weight ops (bases and factors) have no
/// checkpoint name of their own: the delta_weight's source is exported.
bool onlyFeedsDeltaWeights(ParamOp param) {
  return !param->use_empty() &&
         llvm::all_of(param->getUsers(), [](Operation *u) { return isa<DeltaWeightOp>(u); });
}

} // namespace

LogicalResult mlir::moeq::exportDequantized(ModuleOp module, StringRef path) {
  FailureOr<ParameterArchives> archives = ParameterArchives::fromModule(module);
  if (failed(archives))
    return failure();
  io::SafeTensorsWriter writer;
  writer.setMetadata("format", "pt");
  writer.setMetadata("producer", "moeq-translate --export-dequantized");
  std::set<std::string> written;
  WalkResult deltas = module.walk([&](DeltaWeightOp delta) {
    if (!delta.getSourceAttr())
      return WalkResult::advance();
    std::string name = delta.getSourceAttr().getKey().getValue().str();
    if (!written.insert(name).second)
      return WalkResult::advance();
    if (failed(addRebuiltTensor(writer, delta, delta.getResult(), name, *archives)))
      return WalkResult::interrupt();
    return WalkResult::advance();
  });
  if (deltas.wasInterrupted())
    return failure();
  WalkResult result = module.walk([&](ParamOp param) {
    auto type = dyn_cast<PackedWeightType>(param.getType());
    if (!type || onlyFeedsDeltaWeights(param))
      return WalkResult::advance();
    std::string name = param.getRef().getKey().getValue().str();
    if (!written.insert(name).second)
      return WalkResult::advance();
    // Slices of stacked 3-D expert tensors are packed as `<name>.<index>`:
    // writing them back would need the whole stacked tensor.
    if (param.getRef().getKey().getValue().contains(".experts.gate_up_proj") ||
        param.getRef().getKey().getValue().contains(".experts.down_proj")) {
      param.emitError() << "--export-dequantized does not support stacked expert "
                           "tensors yet ('"
                        << name << "')";
      return WalkResult::interrupt();
    }
    if (failed(addRebuiltTensor(writer, param, param.getResult(), name, *archives)))
      return WalkResult::interrupt();
    return WalkResult::advance();
  });
  if (result.wasInterrupted())
    return failure();
  if (written.empty())
    return module.emitError() << "--export-dequantized: the module has no quantized or "
                                 "delta-compressed weights (run "
                                 "moeq-materialize-quantized-params first)";
  if (llvm::Error err = writer.writeAtomically(path))
    return module.emitError() << "cannot write '" << path
                              << "': " << llvm::toString(std::move(err));
  return success();
}
