//===- MatrixSelectionTest.cpp - transposed / strided matrix views --------===//

#include "moeq/IO/MatrixSelection.h"

#include "gtest/gtest.h"

#include <vector>

using namespace mlir::moeq::io;

namespace {

/// Gathers int32 elements (one per index of a 3 x 4 matrix 0..11).
std::vector<int32_t> gatherAll(const MatrixSelection &S, int64_t FirstRow = 0,
                               int64_t NumRows = -1) {
  std::vector<int32_t> Stored(S.storedRows * S.storedCols);
  for (size_t I = 0; I < Stored.size(); ++I)
    Stored[I] = int32_t(I);
  int64_t Rows = NumRows < 0 ? S.selectedRows() - FirstRow : NumRows;
  std::vector<int32_t> Out(Rows * S.selectedCols(), -1);
  S.gather(reinterpret_cast<const uint8_t *>(Stored.data()), sizeof(int32_t),
           reinterpret_cast<uint8_t *>(Out.data()), FirstRow, NumRows);
  return Out;
}

TEST(MatrixSelectionTest, PlainRowsAndTheWholeMatrix) {
  MatrixSelection Whole{3, 4};
  EXPECT_TRUE(Whole.isContiguous());
  EXPECT_EQ(gatherAll(Whole), (std::vector<int32_t>{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11}));
  MatrixSelection Rows{3, 4, false, 1, 2, 1};
  EXPECT_TRUE(Rows.isContiguous());
  EXPECT_EQ(gatherAll(Rows), (std::vector<int32_t>{4, 5, 6, 7, 8, 9, 10, 11}));
}

// Llama 4's gate_up [H, 2I] read as [2I, H]: the up half is rows [I, 2I).
TEST(MatrixSelectionTest, TransposedHalves) {
  MatrixSelection T{3, 4, true};
  EXPECT_FALSE(T.isContiguous());
  EXPECT_EQ(T.selectedRows(), 4);
  EXPECT_EQ(T.selectedCols(), 3);
  EXPECT_EQ(gatherAll(T), (std::vector<int32_t>{0, 4, 8, 1, 5, 9, 2, 6, 10, 3, 7, 11}));
  MatrixSelection Up{3, 4, true, 2, 2, 1};
  EXPECT_EQ(gatherAll(Up), (std::vector<int32_t>{2, 6, 10, 3, 7, 11}));
}

// gpt-oss's interleaved gate/up: gate = transposed rows 0, 2, ...; up = 1, 3, ...
TEST(MatrixSelectionTest, InterleavedRowsAndRowBlocks) {
  MatrixSelection Gate{3, 4, true, 0, 2, 2}, Up{3, 4, true, 1, 2, 2};
  EXPECT_EQ(gatherAll(Gate), (std::vector<int32_t>{0, 4, 8, 2, 6, 10}));
  EXPECT_EQ(gatherAll(Up), (std::vector<int32_t>{1, 5, 9, 3, 7, 11}));
  // A row block of the selection (what a quantizer streams).
  EXPECT_EQ(gatherAll(Up, 1, 1), (std::vector<int32_t>{3, 7, 11}));
  MatrixSelection Strided{3, 4, false, 0, 2, 2};
  EXPECT_FALSE(Strided.isContiguous());
  EXPECT_EQ(gatherAll(Strided), (std::vector<int32_t>{0, 1, 2, 3, 8, 9, 10, 11}));
}

TEST(MatrixSelectionTest, OutOfRangeRowsAreAnError) {
  EXPECT_FALSE(bool(MatrixSelection({3, 4, true, 1, 2, 2}).check())); // rows 1, 3 of 4
  llvm::Error Err = MatrixSelection{3, 4, true, 1, 3, 2}.check();     // row 5 of 4
  ASSERT_TRUE(bool(Err));
  EXPECT_EQ(llvm::toString(std::move(Err)),
            "rows [1, 3] step 2 are out of range for a 4-row transposed matrix");
  llvm::Error Step0 = MatrixSelection{3, 4, false, 0, 1, 0}.check();
  EXPECT_TRUE(bool(Step0));
  llvm::consumeError(std::move(Step0));
}

} // namespace
