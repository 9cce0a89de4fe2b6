//===- EmulatorTest.cpp - PTX warp-instruction semantics of the emulator --===//
//
// The emulator's mma.sync and ldmatrix against the fragment tables of the
// PTX ISA, restated here lane by lane (not derived from the emulator), and
// against naive matrix products: a layout error that the kernels and the
// emulator shared would otherwise cancel in the kernel checks.
//
//===----------------------------------------------------------------------===//
#include "moeq/GPUEmulator/Emulator.h"

#include "moeq/IO/Float16.h"

#include "gtest/gtest.h"

#include <random>

using namespace mlir::moeq;
using namespace mlir::moeq::emu;

namespace {

uint32_t halves(float lo, float hi) {
  return uint32_t(io::floatToHalf(lo)) | (uint32_t(io::floatToHalf(hi)) << 16);
}

// PTX ISA, "Matrix Fragments for mma.m16n8k16 with floating point type":
// a0,a1: (groupID, 2*tig + 0/1); a2,a3: (groupID + 8, ...); a4,a5:
// (groupID, 2*tig + 8 + 0/1); a6,a7: (groupID + 8, 2*tig + 8 + 0/1).
// b0,b1: (2*tig + 0/1, groupID); b2,b3: (2*tig + 8 + 0/1, groupID).
// c0,c1: (groupID, 2*tig + 0/1); c2,c3: (groupID + 8, 2*tig + 0/1).
TEST(GPUEmulator, MmaF16FollowsThePtxFragmentTables) {
  std::mt19937 rng(7);
  std::uniform_int_distribution<int> small(-8, 8);
  float a[16][16], b[16][8], c[16][8];
  for (auto &row : a)
    for (float &v : row)
      v = float(small(rng));
  for (auto &row : b)
    for (float &v : row)
      v = float(small(rng));
  for (auto &row : c)
    for (float &v : row)
      v = float(small(rng)) / 4;
  MmaFragments f;
  for (int lane = 0; lane < 32; ++lane) {
    int g = lane / 4, t = lane % 4;
    f.a[lane] = {halves(a[g][2 * t], a[g][2 * t + 1]),
                 halves(a[g + 8][2 * t], a[g + 8][2 * t + 1]),
                 halves(a[g][2 * t + 8], a[g][2 * t + 9]),
                 halves(a[g + 8][2 * t + 8], a[g + 8][2 * t + 9])};
    f.b[lane] = {halves(b[2 * t][g], b[2 * t + 1][g]), halves(b[2 * t + 8][g], b[2 * t + 9][g])};
    f.c[lane] = {io::floatToBits(c[g][2 * t]), io::floatToBits(c[g][2 * t + 1]),
                 io::floatToBits(c[g + 8][2 * t]), io::floatToBits(c[g + 8][2 * t + 1])};
  }
  executeMma(MmaKind::F16F32, f);
  for (int lane = 0; lane < 32; ++lane) {
    int g = lane / 4, t = lane % 4;
    int rows[4] = {g, g, g + 8, g + 8}, cols[4] = {2 * t, 2 * t + 1, 2 * t, 2 * t + 1};
    for (int r = 0; r < 4; ++r) {
      float expected = c[rows[r]][cols[r]];
      for (int k = 0; k < 16; ++k)
        expected += a[rows[r]][k] * b[k][cols[r]];
      EXPECT_EQ(io::bitsToFloat(f.d[lane][r]), expected) << "lane " << lane << " reg " << r;
    }
  }
}

/// D = A B + C for an integer MMA of K `k`, in the C/D fragment layout.
template <int K>
void expectIntegerProducts(const MmaFragments &f, const int (&a)[16][K], const int (&b)[K][8],
                           const std::array<int, 4> &c) {
  for (int lane = 0; lane < 32; ++lane) {
    int g = lane / 4, t = lane % 4;
    int rows[4] = {g, g, g + 8, g + 8}, cols[4] = {2 * t, 2 * t + 1, 2 * t, 2 * t + 1};
    for (int r = 0; r < 4; ++r) {
      int64_t expected = c[r];
      for (int k = 0; k < K; ++k)
        expected += a[rows[r]][k] * b[k][cols[r]];
      EXPECT_EQ(int32_t(f.d[lane][r]), expected) << "lane " << lane << " reg " << r;
    }
  }
}

template <int Rows, int Cols>
void fillRandom(int (&m)[Rows][Cols], std::mt19937 &rng, int lo, int hi) {
  std::uniform_int_distribution<int> range(lo, hi);
  for (auto &row : m)
    for (int &v : row)
      v = range(rng);
}

/// Integer fragments of A (16 x K) and B (K x 8) with `per` elements of
/// 32/per bits per register, low bits first (PTX ISA, m16n8k32 .s8 and
/// m16n8k64 .s4): A registers hold (groupID, per*tig + i),
/// (groupID + 8, per*tig + i), (groupID, per*tig + K/2 + i),
/// (groupID + 8, per*tig + K/2 + i); B registers (per*tig + i, groupID) and
/// (per*tig + K/2 + i, groupID).
template <int K>
MmaFragments integerFragments(const int (&a)[16][K], const int (&b)[K][8],
                              const std::array<int, 4> &c) {
  constexpr int per = K / 8, bits = 32 / per;
  auto pack = [](auto element) {
    uint32_t w = 0;
    for (int i = 0; i < per; ++i)
      w |= (uint32_t(element(i)) & ((1u << bits) - 1)) << (bits * i);
    return w;
  };
  MmaFragments f;
  for (int lane = 0; lane < 32; ++lane) {
    int g = lane / 4, t = lane % 4;
    auto aReg = [&](int row, int col) { return pack([&](int i) { return a[row][col + i]; }); };
    auto bReg = [&](int k) { return pack([&](int i) { return b[k + i][g]; }); };
    f.a[lane] = {aReg(g, per * t), aReg(g + 8, per * t), aReg(g, per * t + K / 2),
                 aReg(g + 8, per * t + K / 2)};
    f.b[lane] = {bReg(per * t), bReg(per * t + K / 2)};
    for (int r = 0; r < 4; ++r)
      f.c[lane][r] = uint32_t(c[r]);
  }
  return f;
}

TEST(GPUEmulator, MmaS8FollowsThePtxFragmentTables) {
  std::mt19937 rng(8);
  int a[16][32], b[32][8];
  fillRandom(a, rng, -128, 127);
  fillRandom(b, rng, -128, 127);
  MmaFragments f = integerFragments(a, b, {1, 2, 3, 4});
  executeMma(MmaKind::S8S32, f);
  expectIntegerProducts(f, a, b, {1, 2, 3, 4});
}

TEST(GPUEmulator, MmaS4FollowsThePtxFragmentTables) {
  std::mt19937 rng(9);
  int a[16][64], b[64][8];
  fillRandom(a, rng, -8, 7);
  fillRandom(b, rng, -8, 7);
  MmaFragments f = integerFragments(a, b, {0, -5, 7, 0});
  executeMma(MmaKind::S4S32, f);
  expectIntegerProducts(f, a, b, {0, -5, 7, 0});
}

// ldmatrix .m8n8 .x4 .b16: threads 8i..8i+7 address the rows of matrix i;
// thread l receives, in register i, row l/4 elements 2*(l%4) and +1 of
// matrix i (with .trans: column l/4, rows 2*(l%4) and +1).
TEST(GPUEmulator, LdMatrixFollowsThePtxLayout) {
  uint16_t m[4][8][8];
  for (int i = 0; i < 4; ++i)
    for (int r = 0; r < 8; ++r)
      for (int c = 0; c < 8; ++c)
        m[i][r][c] = uint16_t(1000 * i + 10 * r + c);
  std::array<const uint8_t *, 32> rows;
  for (int lane = 0; lane < 32; ++lane)
    rows[lane] = reinterpret_cast<const uint8_t *>(m[lane / 8][lane % 8]);
  std::array<std::array<uint32_t, 4>, 32> plain{}, transposed{};
  executeLdMatrix(4, false, rows, plain);
  executeLdMatrix(4, true, rows, transposed);
  for (int lane = 0; lane < 32; ++lane)
    for (int i = 0; i < 4; ++i) {
      int r = lane / 4, c = 2 * (lane % 4);
      EXPECT_EQ(plain[lane][i], uint32_t(m[i][r][c]) | (uint32_t(m[i][r][c + 1]) << 16));
      EXPECT_EQ(transposed[lane][i], uint32_t(m[i][c][r]) | (uint32_t(m[i][c + 1][r]) << 16));
    }
}

// A CTA whose threads never reach a common barrier is reported, not hung.
extern "C" void moeq_emu_barrier();
extern "C" uint32_t moeq_emu_sreg(int32_t);
void barrierForEvenThreads(void **) {
  if (moeq_emu_sreg(0) % 2 == 0)
    moeq_emu_barrier();
}
void barrierForAll(void **args) {
  auto *counter = static_cast<int *>(*static_cast<void **>(args[0]));
  ++*counter;
  moeq_emu_barrier();
  // Every thread sees all increments after the barrier.
  if (*counter != 64)
    *counter = -1000;
}

TEST(GPUEmulator, BarriersSynchroniseAndDeadlocksAreReported) {
  int counter = 0;
  void *counterPtr = &counter;
  std::vector<void *> args{&counterPtr};
  LaunchConfig config{{1, 1, 1}, {64, 1, 1}, 0};
  ASSERT_FALSE(bool(launch(barrierForAll, args, config)));
  EXPECT_EQ(counter, 64);
  llvm::Error error = launch(barrierForEvenThreads, {}, config);
  ASSERT_TRUE(bool(error));
  EXPECT_NE(llvm::toString(std::move(error)).find("deadlock"), std::string::npos);
}

// Shared memory starts as NaN poison, f16 halves (0x7e00) in even CTAs and
// all-ones words in odd ones, so that a kernel reading what it did not
// write fails its check.
extern "C" void *moeq_emu_shared();
void recordSharedWord(void **args) {
  auto *out = static_cast<uint32_t *>(*static_cast<void **>(args[0]));
  if (moeq_emu_sreg(0) == 0)
    out[moeq_emu_sreg(6)] = *static_cast<uint32_t *>(moeq_emu_shared());
}

TEST(GPUEmulator, SharedMemoryStartsPoisoned) {
  uint32_t seen[2] = {0, 0};
  void *seenPtr = seen;
  std::vector<void *> args{&seenPtr};
  LaunchConfig config{{2, 1, 1}, {32, 1, 1}, 64};
  ASSERT_FALSE(bool(launch(recordSharedWord, args, config)));
  EXPECT_EQ(seen[0], 0x7e007e00u);
  EXPECT_EQ(seen[1], 0xffffffffu);
  config.poison = SharedPoison::NaNHalves;
  ASSERT_FALSE(bool(launch(recordSharedWord, args, config)));
  EXPECT_EQ(seen[1], 0x7e007e00u);
}

// cp.async must be 4, 8 or 16 bytes between addresses aligned to its size,
// into the CTA's shared memory: the emulator fails the launch where the
// hardware would fault (a leading_inputs row stride of 391 halves made
// 16-byte copies from 2-byte aligned rows).
extern "C" void moeq_emu_cp_async(void *, const void *, int32_t, int32_t);
alignas(16) static uint8_t source[64];
void misalignedCopy(void **) {
  auto *shared = static_cast<uint8_t *>(moeq_emu_shared());
  moeq_emu_cp_async(shared, source + 2, 16, 16);
}
void copyPastTheEnd(void **) {
  auto *shared = static_cast<uint8_t *>(moeq_emu_shared());
  moeq_emu_cp_async(shared + 64, source, 16, 16);
}
void alignedCopies(void **) {
  auto *shared = static_cast<uint8_t *>(moeq_emu_shared());
  moeq_emu_cp_async(shared + 16, source + 16, 16, 5);
  moeq_emu_cp_async(shared + 8, source + 8, 8, 0);
  moeq_emu_cp_async(shared + 4, source + 4, 4, 4);
}

TEST(GPUEmulator, IllegalCopiesFailTheLaunch) {
  LaunchConfig config{{1, 1, 1}, {32, 1, 1}, 64};
  llvm::Error misaligned = launch(misalignedCopy, {}, config);
  ASSERT_TRUE(bool(misaligned));
  EXPECT_NE(llvm::toString(std::move(misaligned)).find("misaligned"), std::string::npos);
  llvm::Error outside = launch(copyPastTheEnd, {}, config);
  ASSERT_TRUE(bool(outside));
  EXPECT_NE(llvm::toString(std::move(outside)).find("outside the 64 bytes"), std::string::npos);
  EXPECT_FALSE(bool(launch(alignedCopies, {}, config)));
}

// An mma.sync register holds the elements the PTX fragment tables say;
// executeMma and the probes' packing share these positions.
TEST(GPUEmulator, MmaPositionsFollowThePtxTables) {
  // m16n8k32 s8: a0..a3 of register 0: (groupID, 4 * tig + 0..3); register
  // 3: (groupID + 8, 16 + 4 * tig + 0..3). b register 1: (16 + 4 * tig + i,
  // groupID).
  MatrixPosition a = mmaPositionA(MmaKind::S8S32, 13, 3, 2);
  EXPECT_EQ(a.row, 3 + 8);
  EXPECT_EQ(a.col, 16 + 4 * 1 + 2);
  MatrixPosition b = mmaPositionB(MmaKind::S4S32, 6, 1, 5);
  EXPECT_EQ(b.row, 32 + 8 * 2 + 5);
  EXPECT_EQ(b.col, 1);
  MatrixPosition c = mmaPositionC(31, 3);
  EXPECT_EQ(c.row, 7 + 8);
  EXPECT_EQ(c.col, 7);
}

} // namespace

// PTX ISA, "Register Fragments and Shared Memory Matrix Layouts", wgmma
// .m64nNk16 accumulator D: warp w of the warpgroup owns rows 16w..16w+15;
// thread (lane) l holds, for each 8-column block j, d[4j], d[4j+1] at
// row 16w + l/4, columns 8j + 2(l%4) + 0/1, and d[4j+2], d[4j+3] at row
// 16w + l/4 + 8. Spot values from the figure, then: every element of
// the 64 x N result is held by exactly one (thread, register).
TEST(GPUEmulator, WgmmaAccumulatorsFollowThePtxLayout) {
  auto at = [](int thread, int reg) {
    MatrixPosition p = wgmmaPositionD(thread, reg);
    return std::make_pair(p.row, p.col);
  };
  EXPECT_EQ(at(0, 0), std::make_pair(0, 0));
  EXPECT_EQ(at(0, 1), std::make_pair(0, 1));
  EXPECT_EQ(at(0, 2), std::make_pair(8, 0));
  EXPECT_EQ(at(0, 3), std::make_pair(8, 1));
  EXPECT_EQ(at(0, 4), std::make_pair(0, 8));
  EXPECT_EQ(at(3, 0), std::make_pair(0, 6));
  EXPECT_EQ(at(4, 0), std::make_pair(1, 0));
  EXPECT_EQ(at(31, 3), std::make_pair(15, 7));
  EXPECT_EQ(at(32, 0), std::make_pair(16, 0));
  EXPECT_EQ(at(127, 127), std::make_pair(63, 255));
  for (int n : {8, 64, 256}) {
    std::vector<int> seen(64 * n, 0);
    for (int thread = 0; thread < 128; ++thread)
      for (int reg = 0; reg < n / 2; ++reg) {
        MatrixPosition p = wgmmaPositionD(thread, reg);
        ASSERT_TRUE(p.row >= 0 && p.row < 64 && p.col >= 0 && p.col < n);
        ++seen[p.row * n + p.col];
      }
    for (int count : seen)
      EXPECT_EQ(count, 1);
  }
}

// PTX ISA, "Matrix Descriptor Format": bits 0-13 start address >> 4,
// 16-29 leading dimension byte offset >> 4, 32-45 stride dimension byte
// offset >> 4, 49-51 base offset, 62-63 swizzle (0: none).
TEST(GPUEmulator, MatrixDescriptorFields) {
  uint64_t descriptor = 0x1234 | (uint64_t(8) << 16) | (uint64_t(32) << 32) |
                        (uint64_t(5) << 49) | (uint64_t(1) << 62);
  MatrixDescriptor d = decodeMatrixDescriptor(descriptor);
  EXPECT_EQ(d.start, 0x12340u);
  EXPECT_EQ(d.leadingBytes, 128u);
  EXPECT_EQ(d.strideBytes, 512u);
  EXPECT_EQ(d.baseOffset, 5u);
  EXPECT_EQ(d.layout, 1u);
  // K-major, no swizzle: core matrices of 8 rows x 16 bytes, `leading`
  // apart along K, `stride` apart along the rows. (9, 10): core matrix
  // (1, 1), row 1, element 2.
  EXPECT_EQ(coreMatrixOffset(d, 0, 0), 0u);
  EXPECT_EQ(coreMatrixOffset(d, 1, 0), 16u);
  EXPECT_EQ(coreMatrixOffset(d, 0, 7), 14u);
  EXPECT_EQ(coreMatrixOffset(d, 0, 8), 128u);
  EXPECT_EQ(coreMatrixOffset(d, 8, 0), 512u);
  EXPECT_EQ(coreMatrixOffset(d, 9, 10), 512u + 128u + 16u + 4u);
}
