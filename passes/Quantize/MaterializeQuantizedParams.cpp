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
#include "moeq/Passes/ExpertWeights.h"
#include "moeq/Passes/ParameterArchives.h"
#include "moeq/Passes/Passes.h"
#include "moeq/Quant/GPTQ.h"
#include "moeq/Quant/Quantizer.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinOps.h"


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
  std::vector<float> scales, zeros, levels;
  bool quantized = false;
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

    for (QuantizeOp op : work)
      if (failed(archives->getArchive(
              op.getLoc(), op.getInput().getDefiningOp<ParamOp>().getRef()
                               .getScope().getValue())) ||
          failed(checkHessian(op, *archives)))
        return signalPassFailure();

    // Stream the archive: each weight is read, quantized and packed when the
    // writer reaches its codes, so only one weight's floats are in memory at
    // a time. Codes (4-byte elements) are written before scales and zeros
    // (2-byte), which wait, 1/group of the weights in size.
    io::SafeTensorsWriter writer;
    writer.setMetadata("producer", "moeq-materialize-quantized-params");
    std::vector<PackedTensors> pending(work.size());
    for (auto [i, op] : llvm::enumerate(work))
      if (failed(addToArchive(op, *archives, pending[i], writer)))
        return signalPassFailure();
    if (llvm::Error err = writer.writeAtomically(outputPath)) {
      module.emitError() << "cannot write packed weights: "
                         << llvm::toString(std::move(err));
      return signalPassFailure();
    }
    for (QuantizeOp op : work)
      replaceWithPackedParam(op);
    ParameterArchives::registerInModule(module, scope, outputPath);
  }

  /// A Hessian reference must name a `K x K` F64 tensor (checked before any
  /// work, so that a wrong statistics file fails fast).
  LogicalResult checkHessian(QuantizeOp op, ParameterArchives &archives) {
    ExternalParamAttr ref = op.getHessianAttr();
    if (!ref)
      return success();
    FailureOr<ParameterArchives::View> view = archives.resolve(op.getLoc(), ref);
    if (failed(view))
      return failure();
    int64_t k = op.getResult().getType().getInputDim();
    if (view->dtype != io::DType::F64 ||
        ArrayRef<int64_t>(view->shape) != ArrayRef<int64_t>{k, k})
      return op.emitError() << "Hessian '" << ref.getKey().getValue()
                            << "' must be F64 [" << k << ", " << k << "] for this weight";
    return success();
  }

  /// The float64 Hessian of `op`, or an empty vector without one.
  FailureOr<std::vector<double>> readHessian(QuantizeOp op, ParameterArchives &archives) {
    ExternalParamAttr ref = op.getHessianAttr();
    if (!ref)
      return std::vector<double>();
    int64_t k = op.getResult().getType().getInputDim();
    return archives.readFloat64(op.getLoc(), ref, {k, k});
  }

  LogicalResult quantizeOne(QuantizeOp op, ParameterArchives &archives,
                            PackedTensors &out) {
    auto param = op.getInput().getDefiningOp<ParamOp>();
    PackedWeightType type = op.getResult().getType();
    FailureOr<std::vector<float>> weights =
        archives.readAsFloat(param.getLoc(), param.getRef());
    FailureOr<std::vector<double>> hessian = readHessian(op, archives);
    // The copies are all that is needed: drop the mapped pages read, so
    // that memory holds one weight at a time, not the whole checkpoint.
    archives.releasePages();
    if (failed(weights) || failed(hessian))
      return failure();
    quant::GPTQOptions options;
    options.actOrder = op.getActOrder();
    options.mseClip = op.getMseClip();
    options.salienceCalibration = op.getSalienceClip();
    // (The verifier allows a Hessian only with gptq/agq.)
    llvm::Expected<quant::QuantizedMatrix> quantized =
        quant::quantizeWeights(*weights, type.getOutputDim(), type.getInputDim(),
                               toStorageScheme(type), *hessian, options);
    if (!quantized)
      return op.emitError() << "cannot quantize '"
                            << param.getRef().getKey().getValue()
                            << "': " << llvm::toString(quantized.takeError());
    out.codes = mlir::moeq::quant::packCodes(*quantized);
    out.scales = std::move(quantized->scales);
    out.zeros = std::move(quantized->zeros);
    out.levels = std::move(quantized->levels);
    out.quantized = true;
    return success();
  }

  /// Registers the packed tensors of `op` with producers that quantize on
  /// demand (into `pending`, which keeps scales and zeros until written).
  LogicalResult addToArchive(QuantizeOp op, ParameterArchives &archives,
                             PackedTensors &pending, io::SafeTensorsWriter &writer) {
    PackedWeightType type = op.getResult().getType();
    std::string key = packedKey(op.getInput().getDefiningOp<ParamOp>().getRef());
    int64_t rows = type.getOutputDim();
    auto quantized = [&archives, op, &pending, key, this]() -> llvm::Error {
      if (pending.quantized)
        return llvm::Error::success();
      if (failed(quantizeOne(op, archives, pending)))
        return llvm::createStringError("cannot quantize '" + key + "'");
      return llvm::Error::success();
    };
    llvm::Error err = writer.addTensor(
        key + ".qweight", io::DType::I32, {rows, type.getWordsPerRow()},
        [quantized, &pending](llvm::raw_ostream &os) -> llvm::Error {
          if (llvm::Error err = quantized())
            return err;
          os.write(reinterpret_cast<const char *>(pending.codes.data()),
                   pending.codes.size() * sizeof(uint32_t));
          pending.codes = {};
          return llvm::Error::success();
        });
    auto halfTensor = [&](StringRef suffix, std::vector<float> PackedTensors::*member,
                          int64_t perRow) {
      return writer.addTensor(
          key + suffix.str(), io::DType::F16, {rows, perRow},
          [quantized, &pending, member](llvm::raw_ostream &os) -> llvm::Error {
            if (llvm::Error err = quantized())
              return err;
            std::vector<uint8_t> bytes;
            if (llvm::Error err =
                    io::encodeFromFloat(io::DType::F16, pending.*member, bytes))
              return err;
            os.write(reinterpret_cast<const char *>(bytes.data()), bytes.size());
            return llvm::Error::success();
          });
    };
    SchemeAttr scheme = type.getScheme();
    for (StringRef suffix : scheme.getStorageSuffixes()) {
      if (err || suffix == ".qweight")
        continue;
      err = halfTensor(suffix,
                       suffix == ".levels"   ? &PackedTensors::levels
                       : suffix == ".scales" ? &PackedTensors::scales
                                             : &PackedTensors::zeros,
                       type.getStorageRowLength(suffix));
    }
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
};

} // namespace
