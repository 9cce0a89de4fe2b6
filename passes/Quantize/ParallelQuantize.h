//===- ParallelQuantize.h - shared by the threaded quantizing passes -*- C++ -*-===//
//
// moeq-materialize-quantized-params and moeq-estimate-sensitivity quantize
// one weight (or one expert) per task of an llvm::ThreadPool. What they
// share: the pool's strategy from their `threads` option, and reading a
// weight while other tasks read theirs (ParameterArchives opens archives
// and statistics files lazily, so its lookups are serialised; the bytes are
// copied with pread and decoded outside the lock, without mapping the
// checkpoint: the address space and resident set hold what the tasks
// hold, not the files they read).
//
//===----------------------------------------------------------------------===//
#ifndef MOEQ_PASSES_QUANTIZE_PARALLELQUANTIZE_H
#define MOEQ_PASSES_QUANTIZE_PARALLELQUANTIZE_H

#include "moeq/Dialect/MoEQ/IR/MoEQ.h"
#include "moeq/IO/Float16.h"
#include "moeq/IO/MatrixSelection.h"
#include "moeq/IO/SafeTensors.h"
#include "moeq/Passes/ParameterArchives.h"
#include "moeq/Quant/GPTQ.h"

#include "mlir/IR/Diagnostics.h"
#include "llvm/ADT/ScopeExit.h"
#include "llvm/Support/Endian.h"
#include "llvm/Support/ThreadPool.h"
#include "llvm/Support/Threading.h"

#include <atomic>
#include <cstring>
#include <mutex>
#include <vector>

namespace mlir::moeq::parallel_quantize {

/// The pool strategy of a `threads` option (0: every core).
inline llvm::ThreadPoolStrategy strategy(unsigned threads) {
  return llvm::hardware_concurrency(threads);
}

/// Decodes little-endian `dtype` elements into floats (what
/// io::decodeToFloat does, without a temporary vector).
inline LogicalResult decodeInto(io::DType dtype, ArrayRef<uint8_t> bytes, float *out,
                                Location loc, StringRef key) {
  namespace endian = llvm::support::endian;
  size_t count = bytes.size() / io::dtypeSize(dtype);
  const uint8_t *p = bytes.data();
  switch (dtype) {
  case io::DType::BF16:
    for (size_t i = 0; i < count; ++i)
      out[i] = io::bf16ToFloat(endian::read16le(p + 2 * i));
    return success();
  case io::DType::F16:
    for (size_t i = 0; i < count; ++i)
      out[i] = io::halfToFloat(endian::read16le(p + 2 * i));
    return success();
  case io::DType::F32:
    std::memcpy(out, p, count * sizeof(float));
    return success();
  default: {
    auto values = io::decodeToFloat(dtype, bytes, key);
    if (!values)
      return emitError(loc) << llvm::toString(values.takeError());
    std::memcpy(out, values->data(), values->size() * sizeof(float));
    return success();
  }
  }
}

/// Rows [first, first + count) of a weight's (selected) matrix.
struct RowBlock {
  int64_t first = 0, count = -1; ///< count < 0: every row
  int64_t cols = 0;              ///< the matrix's columns
};

/// A transposed or strided selection (io::MatrixSelection) of matrix
/// `ref.index` of `info`: the stored matrix is read whole (with pread),
/// then the row block gathered and decoded.
inline LogicalResult readGatheredInto(const io::SafeTensorsFile &file,
                                      const io::TensorInfo &info, Location loc,
                                      ExternalParamAttr ref, RowBlock rows,
                                      std::vector<float> &values) {
  StringRef key = ref.getKey().getValue();
  if (!io::isFloatingPoint(info.dtype))
    return emitError(loc) << key << ": dtype " << io::dtypeName(info.dtype)
                          << " is not a floating-point type";
  size_t rank = info.shape.size();
  bool indexed = ref.getIndex() >= 0;
  if (rank != (indexed ? 3u : 2u) || (indexed && ref.getIndex() >= info.shape[0]))
    return emitError(loc) << "cannot select a " << (indexed ? "matrix of a 3-D" : "2-D")
                          << " tensor from '" << key << "' (rank " << rank << ")";
  uint64_t elementSize = io::dtypeSize(info.dtype);
  io::MatrixSelection selection{info.shape[rank - 2], info.shape[rank - 1],
                                ref.getTransposed(), ref.getRowOffset(), ref.getRowCount(),
                                ref.getRowStep()};
  if (llvm::Error err = selection.check())
    return emitError(loc) << "tensor '" << key << "': " << llvm::toString(std::move(err));
  int64_t first = rows.count < 0 ? 0 : rows.first;
  int64_t count = rows.count < 0 ? selection.selectedRows() : rows.count;
  if (first + count > selection.selectedRows())
    return emitError(loc) << "rows [" << first << ", " << first + count
                          << ") are out of range for tensor '" << key << "'";
  uint64_t matrixBytes = elementSize * selection.storedRows * selection.storedCols;
  std::vector<uint8_t> stored(matrixBytes), picked(count * selection.selectedCols() * elementSize);
  uint64_t offset = indexed ? ref.getIndex() * matrixBytes : 0;
  if (llvm::Error err = file.readBytes(info, offset, stored))
    return emitError(loc) << llvm::toString(std::move(err));
  selection.gather(stored.data(), elementSize, picked.data(), first, count);
  values.resize(picked.size() / elementSize);
  return decodeInto(info.dtype, picked, values.data(), loc, key);
}

/// The values a weight reference selects (the whole tensor, one matrix of
/// a stacked tensor, or a row range) as floats, read concurrently with
/// other tasks: the lookup under `mutex`, the bytes read in chunks with
/// pread and decoded outside it. fp8 tensors with block scales go through
/// ParameterArchives::readAsFloat (under the mutex). Errors are emitted at
/// `loc` (with an mlir::ParallelDiagnosticHandler, in task order).
/// `rows`, when given, narrows the selected matrix to rows [first,
/// first + count) (a row block of a weight streamed through a quantizer).
///
/// readWeightInto stores the values in `values` (resized; a buffer reused
/// from row block to row block of one size is neither reallocated nor
/// cleared: every element is overwritten).
inline LogicalResult readWeightInto(ParameterArchives &archives, std::mutex &mutex, Location loc,
                                    ExternalParamAttr ref, RowBlock rows,
                                    std::vector<float> &values) {
  const io::SafeTensorsFile *file = nullptr;
  const io::TensorInfo *info = nullptr;
  StringRef key = ref.getKey().getValue();
  {
    std::lock_guard<std::mutex> lock(mutex);
    FailureOr<io::Checkpoint *> archive = archives.getArchive(loc, ref.getScope().getValue());
    if (failed(archive))
      return failure();
    if ((*archive)->hasBlockScales(key) || !(*archive)->find(key)) {
      // (fp8 with 128 x 128 block scales, or MXFP4 (gpt-oss; a missing
      // tensor is reported by readAsFloat): decoded whole, then narrowed.)
      FailureOr<std::vector<float>> whole = archives.readAsFloat(loc, ref);
      if (failed(whole))
        return failure();
      if (rows.count < 0)
        values = std::move(*whole);
      else
        values.assign(whole->begin() + rows.first * rows.cols,
                      whole->begin() + (rows.first + rows.count) * rows.cols);
      return success();
    }
    FailureOr<const io::TensorInfo *> found = archives.lookup(loc, ref, &file);
    if (failed(found))
      return failure();
    info = *found;
  }
  if (!ref.isContiguous())
    return readGatheredInto(*file, *info, loc, ref, rows, values);
  // The byte range of the selection (ParameterArchives::resolve's rules).
  uint64_t elementSize = io::dtypeSize(info->dtype);
  SmallVector<int64_t> shape(info->shape.begin(), info->shape.end());
  uint64_t offset = 0, size = info->numBytes();
  if (ref.getIndex() >= 0) {
    if (shape.size() != 3 || ref.getIndex() >= shape[0])
      return emitError(loc) << "cannot select matrix " << ref.getIndex() << " of tensor '" << key
                            << "' (rank " << shape.size() << ", "
                            << (shape.empty() ? 0 : shape[0]) << " matrices)";
    size = elementSize * shape[1] * shape[2];
    offset = ref.getIndex() * size;
    shape.erase(shape.begin());
  }
  if (ref.getRowCount() >= 0) {
    if (shape.size() != 2 || ref.getRowOffset() + ref.getRowCount() > shape[0])
      return emitError(loc) << "rows [" << ref.getRowOffset() << ", "
                            << ref.getRowOffset() + ref.getRowCount()
                            << ") are out of range for tensor '" << key << "'";
    uint64_t rowBytes = elementSize * shape[1];
    offset += ref.getRowOffset() * rowBytes;
    size = ref.getRowCount() * rowBytes;
  }
  if (rows.count >= 0) {
    if (shape.size() != 2 || rows.first + rows.count > shape[0])
      return emitError(loc) << "rows [" << rows.first << ", " << rows.first + rows.count
                            << ") are out of range for tensor '" << key << "'";
    uint64_t rowBytes = elementSize * shape[1];
    offset += rows.first * rowBytes;
    size = rows.count * rowBytes;
  }
  if (!io::isFloatingPoint(info->dtype))
    return emitError(loc) << key << ": dtype " << io::dtypeName(info->dtype)
                          << " is not a floating-point type";
  values.resize(size / elementSize);
  // 4 MiB chunks: the raw bytes never exist whole next to the floats.
  bool decoded = true; // (decodeInto reports its own error)
  if (llvm::Error err = file->forEachChunk(
          *info, offset, size, uint64_t(4) << 20,
          [&](uint64_t done, ArrayRef<uint8_t> bytes) -> llvm::Error {
            decoded = succeeded(
                decodeInto(info->dtype, bytes, values.data() + done / elementSize, loc, key));
            return decoded ? llvm::Error::success()
                           : llvm::createStringError("cannot decode '" + key + "'");
          })) {
    std::string message = llvm::toString(std::move(err));
    if (decoded)
      return emitError(loc) << message;
    return failure();
  }
  return success();
}
inline FailureOr<std::vector<float>> readWeight(ParameterArchives &archives, std::mutex &mutex,
                                                Location loc, ExternalParamAttr ref,
                                                RowBlock rows = {}) {
  std::vector<float> values;
  if (failed(readWeightInto(archives, mutex, loc, ref, rows, values)))
    return failure();
  return values;
}

/// The float64 matrix a Hessian reference names, read under `mutex`
/// (statistics files are opened lazily); its mapped pages are dropped
/// afterwards.
inline FailureOr<std::vector<double>> readHessian(ParameterArchives &archives, std::mutex &mutex,
                                                  Location loc, ExternalParamAttr ref,
                                                  int64_t cols) {
  std::lock_guard<std::mutex> lock(mutex);
  FailureOr<std::vector<double>> hessian = archives.readFloat64(loc, ref, {cols, cols});
  // (Weights are read with pread, nothing of theirs is mapped: this drops
  // only the statistics' pages, which no other task reads outside the lock.)
  archives.releasePages();
  return hessian;
}

/// Runs `task(t)` for t in [0, count) on `threads` threads with BLAS
/// single-threaded inside each task (OpenBLAS's threaded factorisations
/// block differently, which would make the bits depend on the thread
/// count). Diagnostics come out in task order; after a failure no later
/// task starts, and the first failing task is always reported. Succeeds
/// iff every task did.
inline LogicalResult runOrderedTasks(MLIRContext *context, size_t count, unsigned threads,
                                     llvm::function_ref<LogicalResult(size_t)> task) {
  ParallelDiagnosticHandler diagnostics(context);
  std::atomic<size_t> firstFailure{count};
  quant::ScopedBLASThreads blas(1);
  llvm::DefaultThreadPool pool(strategy(threads));
  for (size_t t = 0; t < count; ++t)
    pool.async([&, t] {
      if (firstFailure.load() < t)
        return;
      diagnostics.setOrderIDForThread(t);
      llvm::scope_exit done([&] { diagnostics.eraseOrderIDForThread(); });
      if (failed(task(t))) {
        size_t seen = firstFailure.load();
        while (t < seen && !firstFailure.compare_exchange_weak(seen, t)) {
        }
      }
    });
  pool.wait();
  return success(firstFailure.load() == count);
}

} // namespace mlir::moeq::parallel_quantize

#endif // MOEQ_PASSES_QUANTIZE_PARALLELQUANTIZE_H
