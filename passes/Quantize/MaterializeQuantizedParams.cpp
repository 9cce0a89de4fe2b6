//===- MaterializeQuantizedParams.cpp - run quantizers, write archive -----===//
//
// Folds moeq.quantize(moeq.param) into a moeq.param of the packed weight:
// the numerical work of the compiler happens here, in the IR-free
// quantization library, and the packed tensors go to a safetensors archive
// instead of the IR.
//
// The weights are quantized on an llvm::ThreadPool (`threads`), one task per
// weight, or per group of weights sharing a Hessian (an expert's gate and
// up: one GPTQ factorisation for both), BLAS single-threaded inside a task.
// Every packed tensor's shape is known from the IR, so the archive's header
// and each tensor's place are fixed before any weight is read: a task
// writes its tensors into the archive (a temporary file, renamed at the
// end) as soon as they are ready and keeps nothing. Memory is bounded by
// the weights in flight, not by the model; the bytes are those of the
// sequential writer whatever the thread count.
//
//===----------------------------------------------------------------------===//
#include "moeq/Dialect/MoEQ/IR/MoEQ.h"
#include "moeq/IO/SafeTensors.h"
#include "moeq/Passes/ExpertWeights.h"
#include "moeq/Passes/ParameterArchives.h"
#include "moeq/Passes/Passes.h"
#include "moeq/Quant/GPTQ.h"
#include "moeq/Quant/Quantizer.h"

#include "ParallelQuantize.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinOps.h"
#include "llvm/ADT/ScopeExit.h"
#include "llvm/Support/ThreadPool.h"

#include <atomic>
#include <map>
#include <mutex>
#include <optional>


namespace mlir::moeq {
#define GEN_PASS_DEF_MATERIALIZEQUANTIZEDPARAMS
#include "moeq/Passes/Passes.h.inc"
} // namespace mlir::moeq

using namespace mlir;
using namespace mlir::moeq;

namespace {

/// One weight to quantize, everything read from the IR up front (tasks
/// only read attributes, never create them).
struct Job {
  Location loc;
  ExternalParamAttr weight, hessian; ///< hessian: null without one
  int64_t rows = 0, cols = 0;
  quant::Scheme scheme;
  quant::GPTQOptions options;
  std::string key, name;             ///< packed key, source tensor name
  SmallVector<std::string, 3> suffixes; ///< storage tensors after .qweight
};

/// The archive key of a packed weight: the source key, made unique for a
/// slice of a stacked tensor
/// (`<key>.<index>[.t][.rows_<offset>_<count>[_step_<step>]]`).
std::string packedKey(ExternalParamAttr source) {
  std::string key = source.getKey().getValue().str();
  if (source.getIndex() >= 0)
    key += "." + std::to_string(source.getIndex());
  if (source.getTransposed())
    key += ".t";
  if (source.getRowCount() >= 0)
    key += ".rows_" + std::to_string(source.getRowOffset()) + "_" +
           std::to_string(source.getRowCount());
  if (source.getRowStep() > 1)
    key += "_step_" + std::to_string(source.getRowStep());
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

    // The archive's layout, fixed before any weight is read.
    io::SafeTensorsWriter writer;
    writer.setMetadata("producer", "moeq-materialize-quantized-params");
    std::vector<Job> jobs;
    jobs.reserve(work.size());
    for (QuantizeOp op : work) {
      ParamOp param = op.getInput().getDefiningOp<ParamOp>();
      PackedWeightType type = op.getResult().getType();
      Job job{op.getLoc(), param.getRef(), op.getHessianAttr(), type.getOutputDim(),
              type.getInputDim(), toStorageScheme(type), {}, packedKey(param.getRef()),
              param.getRef().getKey().getValue().str(), {}};
      job.options.actOrder = op.getActOrder();
      job.options.mseClip = op.getMseClip();
      job.options.salienceCalibration = op.getSalienceClip();
      llvm::Error err = writer.declareTensor(job.key + ".qweight", io::DType::I32,
                                             {job.rows, type.getWordsPerRow()});
      for (StringRef suffix : type.getScheme().getStorageSuffixes()) {
        if (err || suffix == ".qweight")
          continue;
        job.suffixes.push_back(suffix.str());
        err = writer.declareTensor(job.key + suffix.str(), io::DType::F16,
                                   {job.rows, type.getStorageRowLength(suffix)});
      }
      if (err) {
        op.emitError() << llvm::toString(std::move(err));
        return signalPassFailure();
      }
      jobs.push_back(std::move(job));
    }
    auto stream = writer.openStreaming(outputPath);
    if (!stream) {
      module.emitError() << "cannot write packed weights: "
                         << llvm::toString(stream.takeError());
      return signalPassFailure();
    }

    // Tasks: weights with the same Hessian (and act-order, which orders the
    // factor) share one factorisation; the others are one task each.
    std::vector<SmallVector<size_t, 2>> tasks;
    std::map<std::tuple<std::string, std::string, bool>, size_t> taskOfHessian;
    for (size_t i = 0; i < jobs.size(); ++i) {
      const Job &job = jobs[i];
      if (!job.hessian) {
        tasks.push_back({i});
        continue;
      }
      auto key = std::make_tuple(job.hessian.getScope().getValue().str(),
                                 job.hessian.getKey().getValue().str(), job.options.actOrder);
      auto [it, inserted] = taskOfHessian.try_emplace(key, tasks.size());
      if (inserted)
        tasks.emplace_back();
      tasks[it->second].push_back(i);
    }

    std::mutex archiveMutex;
    if (failed(parallel_quantize::runOrderedTasks(
            &getContext(), tasks.size(), threads, [&](size_t t) {
              return runTask(tasks[t], jobs, *archives, archiveMutex, **stream);
            })))
      return signalPassFailure(); // (the temporary archive is removed)
    if (llvm::Error err = (*stream)->commit()) {
      module.emitError() << "cannot write packed weights: " << llvm::toString(std::move(err));
      return signalPassFailure();
    }
    for (QuantizeOp op : work)
      replaceWithPackedParam(op);
    ParameterArchives::registerInModule(module, scope, outputPath);
  }

  /// Quantizes the weights of one task (sharing one Hessian, if any) and
  /// writes their packed tensors.
  LogicalResult runTask(ArrayRef<size_t> task, ArrayRef<Job> jobs, ParameterArchives &archives,
                        std::mutex &archiveMutex, io::SafeTensorsWriter::StreamingFile &stream) {
    const Job &first = jobs[task.front()];
    std::optional<quant::GPTQFactor> factor;
    if (first.hessian) {
      // (The verifier allows a Hessian only with gptq/agq.)
      FailureOr<std::vector<double>> hessian = parallel_quantize::readHessian(
          archives, archiveMutex, first.loc, first.hessian, first.cols);
      if (failed(hessian))
        return failure();
      auto computed = quant::GPTQFactor::compute(*hessian, first.cols, first.options);
      if (!computed)
        return emitError(first.loc) << "cannot quantize '" << first.name
                                    << "': " << llvm::toString(computed.takeError());
      factor = std::move(*computed);
    }
    for (size_t index : task)
      if (failed(quantizeOne(jobs[index], factor ? &*factor : nullptr, archives, archiveMutex,
                             stream)))
        return failure();
    return success();
  }

  /// Quantizes one weight and writes its packed tensors. GPTQ/AGQ (a
  /// factor) and SliM-LLM's salience calibration (statistics of the whole
  /// matrix) take the weight whole; round to nearest quantizes each group
  /// alone, so the weight streams through a row block at a time (about
  /// 1M values: the block stays in cache and nothing of the size of the
  /// weight is allocated), to the same bytes.
  LogicalResult quantizeOne(const Job &job, const quant::GPTQFactor *factor,
                            ParameterArchives &archives, std::mutex &archiveMutex,
                            io::SafeTensorsWriter::StreamingFile &stream) {
    bool rowIndependent = !factor && !job.options.salienceCalibration;
    int64_t block = rowIndependent ? std::max<int64_t>(1, (int64_t(1) << 20) / job.cols) : job.rows;
    std::vector<float> weights; // one row block, reused
    for (int64_t first = 0; first < job.rows; first += block)
      if (failed(quantizeRows(job, factor, {first, std::min(block, job.rows - first), job.cols},
                              archives, archiveMutex, weights, stream)))
        return failure();
    return success();
  }

  /// Quantizes rows [rows.first, rows.first + rows.count) of a weight and
  /// writes their part of each packed tensor (row-major: a row block is a
  /// contiguous byte range of every tensor). `weights` holds the rows
  /// read (a buffer reused between row blocks; a whole weight is released
  /// once quantized, before its packed form is built).
  LogicalResult quantizeRows(const Job &job, const quant::GPTQFactor *factor,
                             parallel_quantize::RowBlock rows, ParameterArchives &archives,
                             std::mutex &archiveMutex, std::vector<float> &weights,
                             io::SafeTensorsWriter::StreamingFile &stream) {
    bool whole = rows.first == 0 && rows.count == job.rows;
    if (failed(parallel_quantize::readWeightInto(archives, archiveMutex, job.loc, job.weight,
                                                 whole ? parallel_quantize::RowBlock() : rows,
                                                 weights)))
      return failure();
    quant::GPTQOptions options = job.options;
    options.firstRow = rows.first;
    llvm::Expected<quant::QuantizedMatrix> quantized =
        quant::quantizeWeights(weights, rows.count, job.cols, job.scheme, factor, options);
    if (whole)
      weights = {};
    if (!quantized)
      return emitError(job.loc) << "cannot quantize '" << job.name
                                << "': " << llvm::toString(quantized.takeError());
    std::vector<uint32_t> codes = quant::packCodes(*quantized);
    quantized->codes = {};
    // Each tensor has the same bytes per row: this block's part starts at
    // rows.first rows in.
    auto write = [&](StringRef suffix, ArrayRef<uint8_t> bytes) -> LogicalResult {
      uint64_t offset = bytes.size() / rows.count * rows.first;
      if (llvm::Error err = stream.writeTensorPart(job.key + suffix.str(), offset, bytes))
        return emitError(job.loc) << "cannot write packed weights: "
                                  << llvm::toString(std::move(err));
      return success();
    };
    if (failed(write(".qweight",
                     ArrayRef<uint8_t>(reinterpret_cast<const uint8_t *>(codes.data()),
                                       codes.size() * sizeof(uint32_t)))))
      return failure();
    for (const std::string &suffix : job.suffixes) {
      const std::vector<float> &values = suffix == ".levels"   ? quantized->levels
                                         : suffix == ".scales" ? quantized->scales
                                                               : quantized->zeros;
      std::vector<uint8_t> bytes;
      if (llvm::Error err = io::encodeFromFloat(io::DType::F16, values, bytes))
        return emitError(job.loc) << llvm::toString(std::move(err));
      if (failed(write(suffix, bytes)))
        return failure();
    }
    return success();
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
    if (!ParameterArchives::isReadableAs(*view, {k, k}))
      return op.emitError() << "Hessian '" << ref.getKey().getValue() << "' must be F64 [" << k
                            << ", " << k << "] (or, statistics version 2, its packed upper "
                            << "triangle) for this weight";
    return success();
  }

  void replaceWithPackedParam(QuantizeOp op) {
    auto source = op.getInput().getDefiningOp<ParamOp>();
    OpBuilder builder(op);
    auto ref = ExternalParamAttr::get(&getContext(), builder.getStringAttr(scope),
                                      builder.getStringAttr(packedKey(source.getRef())));
    auto packed = ParamOp::create(builder, op.getLoc(), op.getType(), ref, source.getRef());
    op.replaceAllUsesWith(packed.getResult());
    op.erase();
    if (source->use_empty())
      source.erase();
  }
};

} // namespace
