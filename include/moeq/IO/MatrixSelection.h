//===- MatrixSelection.h - transposed / strided views of a matrix -*- C++ -*-===//
//
// A weight reference may read a stored matrix as its transpose and take
// every `step`-th row of a row range (#moeq.param's `transposed`, `rows`,
// `step`; gpt-oss and Llama 4 store experts as [in, out] with gate and up
// interleaved or concatenated). This is the one definition of which stored
// element such a selection reads; the importer, the parameter readers and
// the quantizer's row streams use it.
//
//===----------------------------------------------------------------------===//
#ifndef MOEQ_IO_MATRIXSELECTION_H
#define MOEQ_IO_MATRIXSELECTION_H

#include "llvm/Support/Error.h"

#include <cstdint>

namespace mlir::moeq::io {

struct MatrixSelection {
  /// The stored matrix: `storedRows x storedCols`, row-major.
  int64_t storedRows = 0, storedCols = 0;
  /// Read the stored matrix as its transpose (before the row range).
  bool transposed = false;
  /// Rows `rowOffset + i * rowStep` for i < rowCount of the (transposed)
  /// matrix; rowCount < 0: every row (rowOffset and rowStep unused).
  int64_t rowOffset = -1, rowCount = -1, rowStep = 1;

  int64_t logicalRows() const { return transposed ? storedCols : storedRows; }
  int64_t selectedCols() const { return transposed ? storedRows : storedCols; }
  int64_t selectedRows() const { return rowCount < 0 ? logicalRows() : rowCount; }
  /// The stored element index of selected element (row, col).
  int64_t storedIndex(int64_t row, int64_t col) const {
    int64_t logicalRow = rowCount < 0 ? row : rowOffset + row * rowStep;
    return transposed ? col * storedCols + logicalRow : logicalRow * storedCols + col;
  }
  /// Whether the selection is one contiguous run of the stored matrix.
  bool isContiguous() const { return !transposed && (rowCount < 0 || rowStep == 1); }

  /// An error naming the bounds when the row range leaves the matrix.
  llvm::Error check() const;
  /// Copies selected rows [firstRow, firstRow + numRows) of elements of
  /// `elementSize` bytes from `stored` to `out` (row-major).
  void gather(const uint8_t *stored, uint64_t elementSize, uint8_t *out, int64_t firstRow = 0,
              int64_t numRows = -1) const;
};

} // namespace mlir::moeq::io

#endif // MOEQ_IO_MATRIXSELECTION_H
