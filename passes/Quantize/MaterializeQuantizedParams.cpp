//===- MaterializeQuantizedParams.cpp - run quantizers, write archive -----===//
//
// Folds moeq.quantize(moeq.param) into a moeq.param of the packed weight:
// the numerical work of the compiler happens here, in the IR-free
// quantization library, and the packed tensors go to a safetensors archive
// instead of the IR.
//
//===----------------------------------------------------------------------===//
#include "moeq/Dialect/MoEQ/IR/MoEQ.h"
#include "moeq/IO/SafeTensors.h"
#include "moeq/Passes/ParameterArchives.h"
#include "moeq/Passes/Passes.h"
#include "moeq/Quant/Quantizer.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/Threading.h"

namespace mlir::moeq {
#define GEN_PASS_DEF_MATERIALIZEQUANTIZEDPARAMS
#include "moeq/Passes/Passes.h.inc"
} // namespace mlir::moeq

using namespace mlir;
using namespace mlir::moeq;

namespace {

/// The packed tensors of one quantized weight.
struct PackedTensors {
  std::vector<uint32_t> codes;
  std::vector<float> scales, zeros;
};

/// The archive key of a packed weight: the source key, made unique for a
/// slice of a stacked tensor (`<key>.<index>[.rows_<offset>_<count>]`).
std::string packedKey(ExternalParamAttr source) {
  std::string key = source.getKey().getValue().str();
  if (source.getIndex() >= 0)
    key += "." + std::to_string(source.getIndex());
  if (source.getRowCount() >= 0)
    key += ".rows_" + std::to_string(source.getRowOffset()) + "_" +
           std::to_string(source.getRowCount());
  return key;
}

mlir::moeq::quant::Scheme toQuantScheme(SchemeAttr scheme) {
  return {scheme.getWeightBits(), scheme.getGroupSize(), scheme.getSymmetric()};
}

struct MaterializeQuantizedParamsPass
    : mlir::moeq::impl::MaterializeQuantizedParamsBase<MaterializeQuantizedParamsPass> {
  using Base::Base;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    SmallVector<QuantizeOp> work;
    module.walk([&](QuantizeOp op) {
      if (op.getInput().getDefiningOp<ParamOp>())
        work.push_back(op);
    });
    if (work.empty())
      return;
    if (outputPath.empty()) {
      module.emitError() << "moeq-materialize-quantized-params needs an "
                            "'output' archive path";
      return signalPassFailure();
    }
    FailureOr<ParameterArchives> archives = ParameterArchives::fromModule(module);
    if (failed(archives))
      return signalPassFailure();

    // Quantize in parallel; archives are read-only mmaps, one per scope,
    // opened up front so that the workers only read.
    for (QuantizeOp op : work)
      if (failed(archives->getArchive(
              op.getLoc(), op.getInput().getDefiningOp<ParamOp>().getRef()
                               .getScope().getValue())))
        return signalPassFailure();
    std::vector<PackedTensors> packed(work.size());
    LogicalResult status = failableParallelForEachN(
        &getContext(), 0, work.size(),
        [&](size_t i) { return quantizeOne(work[i], *archives, packed[i]); });
    if (failed(status))
      return signalPassFailure();

    io::SafeTensorsWriter writer;
    writer.setMetadata("producer", "moeq-materialize-quantized-params");
    for (auto [op, tensors] : llvm::zip(work, packed))
      if (failed(addToArchive(op, tensors, writer)))
        return signalPassFailure();
    if (llvm::Error err = writer.writeAtomically(outputPath)) {
      module.emitError() << "cannot write packed weights: "
                         << llvm::toString(std::move(err));
      return signalPassFailure();
    }
    for (QuantizeOp op : work)
      replaceWithPackedParam(op);
    registerOutputScope(module);
  }

  LogicalResult quantizeOne(QuantizeOp op, ParameterArchives &archives,
                            PackedTensors &out) {
    auto param = op.getInput().getDefiningOp<ParamOp>();
    PackedWeightType type = op.getResult().getType();
    FailureOr<std::vector<float>> weights =
        archives.readAsFloat(param.getLoc(), param.getRef());
    if (failed(weights))
      return failure();
    auto quantized = mlir::moeq::quant::quantizeRTN(*weights, type.getOutputDim(),
                                        type.getInputDim(),
                                        toQuantScheme(type.getScheme()));
    if (!quantized)
      return op.emitError() << "cannot quantize '"
                            << param.getRef().getKey().getValue()
                            << "': " << llvm::toString(quantized.takeError());
    out.codes = mlir::moeq::quant::packCodes(*quantized);
    out.scales = std::move(quantized->scales);
    out.zeros = std::move(quantized->zeros);
    return success();
  }

  LogicalResult addToArchive(QuantizeOp op, const PackedTensors &tensors,
                             io::SafeTensorsWriter &writer) {
    PackedWeightType type = op.getResult().getType();
    std::string key = packedKey(op.getInput().getDefiningOp<ParamOp>().getRef());
    int64_t rows = type.getOutputDim(), groups = type.getNumGroups();
    llvm::Error err = writer.addI32(key + ".qweight", {rows, type.getWordsPerRow()},
                                    llvm::ArrayRef<int32_t>(
                                        reinterpret_cast<const int32_t *>(
                                            tensors.codes.data()),
                                        tensors.codes.size()));
    if (!err)
      err = writer.addF16(key + ".scales", {rows, groups}, tensors.scales);
    if (!err && !type.getScheme().getSymmetric())
      err = writer.addF16(key + ".zeros", {rows, groups}, tensors.zeros);
    if (err)
      return op.emitError() << llvm::toString(std::move(err));
    return success();
  }

  void replaceWithPackedParam(QuantizeOp op) {
    auto source = op.getInput().getDefiningOp<ParamOp>();
    OpBuilder builder(op);
    auto ref = ExternalParamAttr::get(&getContext(), builder.getStringAttr(scope),
                                      builder.getStringAttr(packedKey(source.getRef())));
    auto packed = ParamOp::create(builder, op.getLoc(), op.getType(), ref);
    op.replaceAllUsesWith(packed.getResult());
    op.erase();
    if (source->use_empty())
      source.erase();
  }

  void registerOutputScope(ModuleOp module) {
    NamedAttrList entries;
    if (auto dict = module->getAttrOfType<DictionaryAttr>(kArchivesAttrName))
      entries.append(dict.getValue());
    entries.set(scope, StringAttr::get(&getContext(), outputPath));
    module->setAttr(kArchivesAttrName, entries.getDictionary(&getContext()));
  }
};

} // namespace
