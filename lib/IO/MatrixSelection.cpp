//===- MatrixSelection.cpp - transposed / strided views of a matrix -------===//
#include "moeq/IO/MatrixSelection.h"

#include <cstring>
#include <string>

using namespace mlir::moeq::io;

llvm::Error MatrixSelection::check() const {
  if (storedRows < 0 || storedCols < 0)
    return llvm::createStringError("negative matrix shape");
  if (rowCount < 0)
    return llvm::Error::success();
  if (rowOffset < 0 || rowStep < 1 ||
      rowOffset + (rowCount - 1) * rowStep >= logicalRows())
    return llvm::createStringError(
        "rows [" + std::to_string(rowOffset) + ", " + std::to_string(rowCount) + "] step " +
        std::to_string(rowStep) + " are out of range for a " + std::to_string(logicalRows()) +
        "-row " + (transposed ? "transposed " : "") + "matrix");
  return llvm::Error::success();
}

void MatrixSelection::gather(const uint8_t *stored, uint64_t elementSize, uint8_t *out,
                             int64_t firstRow, int64_t numRows) const {
  if (numRows < 0)
    numRows = selectedRows() - firstRow;
  int64_t cols = selectedCols();
  for (int64_t r = 0; r < numRows; ++r) {
    if (!transposed) {
      // One contiguous stored row.
      std::memcpy(out + r * cols * elementSize,
                  stored + storedIndex(firstRow + r, 0) * elementSize, cols * elementSize);
      continue;
    }
    for (int64_t c = 0; c < cols; ++c)
      std::memcpy(out + (r * cols + c) * elementSize,
                  stored + storedIndex(firstRow + r, c) * elementSize, elementSize);
  }
}
