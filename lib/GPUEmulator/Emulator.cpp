//===- Emulator.cpp - run lowered GPU kernels on the CPU ------------------===//
#include "moeq/GPUEmulator/Emulator.h"

#include "moeq/IO/Float16.h"

#include "llvm/Support/FormatVariadic.h"

#include <cstring>
#include <deque>
#include <memory>
#include <ucontext.h>

using namespace mlir::moeq;
using namespace mlir::moeq::emu;

namespace {

constexpr size_t kFiberStackBytes = 256 * 1024;

/// Threads waiting at one barrier until `expected` of them arrived.
struct Barrier {
  int expected = 0, arrived = 0;
  std::vector<int> waiters;
};

/// Per-lane operands and results of the warp collective in progress.
struct WarpState {
  Barrier barrier;
  MmaFragments mma;
  MmaKind mmaKind = MmaKind::F16F32;
  std::array<const uint8_t *, 32> rowAddress{};
  std::array<std::array<uint32_t, 4>, 32> ldmatrix{};
  int ldmatrixNum = 0;
  bool ldmatrixTranspose = false;
  std::array<uint32_t, 32> shuffleIn{}, shuffleOut{};
  std::array<int32_t, 32> shuffleSource{};
};

struct Fiber {
  ucontext_t context;
  std::unique_ptr<char[]> stack;
  uint32_t tid[3] = {0, 0, 0};
  bool done = false;
};

/// One CTA in flight: its fibers, run queue, shared memory and barriers.
struct Cta {
  LaunchConfig config;
  uint32_t ctaid[3] = {0, 0, 0};
  PackedKernel kernel = nullptr;
  void **args = nullptr;
  std::vector<uint8_t> shared;
  std::vector<Fiber> fibers;
  std::deque<int> runnable;
  int current = -1;
  ucontext_t scheduler;
  Barrier ctaBarrier;
  std::vector<WarpState> warps;

  int lane() const { return current % 32; }
  WarpState &warp() { return warps[current / 32]; }

  /// Blocks the current fiber at `barrier`; the last arrival runs
  /// `onComplete` (with every participant's operands in place) and wakes
  /// the others.
  template <typename Fn>
  void arrive(Barrier &barrier, Fn onComplete) {
    if (++barrier.arrived == barrier.expected) {
      onComplete();
      barrier.arrived = 0;
      for (int waiter : barrier.waiters)
        runnable.push_back(waiter);
      barrier.waiters.clear();
      return;
    }
    barrier.waiters.push_back(current);
    swapcontext(&fibers[current].context, &scheduler);
  }
};

Cta *activeCta = nullptr;

void fiberEntry() {
  Cta &cta = *activeCta;
  cta.kernel(cta.args);
  cta.fibers[cta.current].done = true;
  // Returning resumes the scheduler through uc_link.
}

uint32_t halfBits(uint32_t word, int half) { return (word >> (16 * half)) & 0xffff; }

float halfOf(uint32_t word, int half) { return io::halfToFloat(uint16_t(halfBits(word, half))); }

int32_t signedByte(uint32_t word, int i) { return int8_t((word >> (8 * i)) & 0xff); }

int32_t signedNibble(uint32_t word, int i) {
  int32_t v = (word >> (4 * i)) & 0xf;
  return v >= 8 ? v - 16 : v;
}

} // namespace

//===----------------------------------------------------------------------===//
// Warp-level semantics (PTX ISA fragment layouts)
//===----------------------------------------------------------------------===//

void mlir::moeq::emu::executeMma(MmaKind kind, MmaFragments &f) {
  // Dense operands from the fragments: A is 16 x K (row), B is K x 8 (col),
  // C/D 16 x 8. groupID = lane / 4, threadID_in_group = lane % 4.
  int k = kind == MmaKind::F16F32 ? 16 : kind == MmaKind::S8S32 ? 32 : 64;
  std::vector<double> a(16 * k), b(k * 8);
  for (int lane = 0; lane < 32; ++lane) {
    int g = lane / 4, t = lane % 4;
    for (int reg = 0; reg < 4; ++reg) {
      // Registers 0 and 2 hold row g, 1 and 3 row g + 8; registers 2 and 3
      // the upper half of K.
      int row = g + 8 * (reg % 2);
      uint32_t word = f.a[lane][reg];
      if (kind == MmaKind::F16F32) {
        for (int h = 0; h < 2; ++h)
          a[row * k + 2 * t + h + 8 * (reg / 2)] = halfOf(word, h);
      } else if (kind == MmaKind::S8S32) {
        for (int i = 0; i < 4; ++i)
          a[row * k + 4 * t + i + 16 * (reg / 2)] = signedByte(word, i);
      } else {
        for (int i = 0; i < 8; ++i)
          a[row * k + 8 * t + i + 32 * (reg / 2)] = signedNibble(word, i);
      }
    }
    for (int reg = 0; reg < 2; ++reg) {
      uint32_t word = f.b[lane][reg];
      if (kind == MmaKind::F16F32) {
        for (int h = 0; h < 2; ++h)
          b[(2 * t + h + 8 * reg) * 8 + g] = halfOf(word, h);
      } else if (kind == MmaKind::S8S32) {
        for (int i = 0; i < 4; ++i)
          b[(4 * t + i + 16 * reg) * 8 + g] = signedByte(word, i);
      } else {
        for (int i = 0; i < 8; ++i)
          b[(8 * t + i + 32 * reg) * 8 + g] = signedNibble(word, i);
      }
    }
  }
  for (int lane = 0; lane < 32; ++lane) {
    int g = lane / 4, t = lane % 4;
    for (int reg = 0; reg < 4; ++reg) {
      int row = g + 8 * (reg / 2), col = 2 * t + reg % 2;
      double sum = 0;
      for (int kk = 0; kk < k; ++kk)
        sum += a[row * k + kk] * b[kk * 8 + col];
      uint32_t c = f.c[lane][reg];
      if (kind == MmaKind::F16F32) {
        f.d[lane][reg] = io::floatToBits(float(double(io::bitsToFloat(c)) + sum));
      } else {
        // .satfinite: clamp to the s32 range.
        double total = double(int32_t(c)) + sum;
        total = std::min(std::max(total, double(INT32_MIN)), double(INT32_MAX));
        f.d[lane][reg] = uint32_t(int32_t(total));
      }
    }
  }
}

void mlir::moeq::emu::executeLdMatrix(int num, bool transpose,
                                      const std::array<const uint8_t *, 32> &rowAddress,
                                      std::array<std::array<uint32_t, 4>, 32> &result) {
  // Matrix i has rows rowAddress[8i .. 8i+7], each 8 b16 elements. Lane l
  // receives row l / 4, elements 2(l%4) and 2(l%4)+1 (transposed: column
  // l / 4 of rows 2(l%4) and 2(l%4)+1).
  auto element = [&](int matrix, int row, int col) {
    uint16_t v;
    std::memcpy(&v, rowAddress[8 * matrix + row] + 2 * col, 2);
    return uint32_t(v);
  };
  for (int lane = 0; lane < 32; ++lane)
    for (int i = 0; i < num; ++i) {
      int r = lane / 4, c = 2 * (lane % 4);
      uint32_t lo = transpose ? element(i, c, r) : element(i, r, c);
      uint32_t hi = transpose ? element(i, c + 1, r) : element(i, r, c + 1);
      result[lane][i] = lo | (hi << 16);
    }
}

//===----------------------------------------------------------------------===//
// Runtime called by the rewritten kernels
//===----------------------------------------------------------------------===//

extern "C" {

uint32_t moeq_emu_sreg(int32_t which) {
  Cta &cta = *activeCta;
  const Fiber &fiber = cta.fibers[cta.current];
  const LaunchConfig &c = cta.config;
  switch (which) {
  case 0: case 1: case 2: return fiber.tid[which];
  case 3: return c.block.x;
  case 4: return c.block.y;
  case 5: return c.block.z;
  case 6: case 7: case 8: return cta.ctaid[which - 6];
  case 9: return c.grid.x;
  case 10: return c.grid.y;
  case 11: return c.grid.z;
  case 12: return uint32_t(cta.lane());
  default: return 32;
  }
}

void moeq_emu_barrier() { activeCta->arrive(activeCta->ctaBarrier, [] {}); }

/// cp.async: copies complete immediately; the bytes past `srcBytes` are
/// zero-filled.
void moeq_emu_cp_async(void *dst, const void *src, int32_t bytes, int32_t srcBytes) {
  int32_t copied = std::min(bytes, srcBytes);
  if (copied > 0)
    std::memcpy(dst, src, size_t(copied));
  if (copied < bytes)
    std::memset(static_cast<char *>(dst) + std::max(copied, 0), 0, size_t(bytes - std::max(copied, 0)));
}

void moeq_emu_ldmatrix(const void *address, int32_t num, int32_t transpose, uint32_t *out) {
  Cta &cta = *activeCta;
  WarpState &warp = cta.warp();
  int lane = cta.lane();
  warp.rowAddress[lane] = static_cast<const uint8_t *>(address);
  warp.ldmatrixNum = num;
  warp.ldmatrixTranspose = transpose != 0;
  cta.arrive(warp.barrier, [&] {
    executeLdMatrix(warp.ldmatrixNum, warp.ldmatrixTranspose, warp.rowAddress, warp.ldmatrix);
  });
  for (int i = 0; i < num; ++i)
    out[i] = warp.ldmatrix[lane][i];
}

void moeq_emu_mma(int32_t kind, const uint32_t *a, const uint32_t *b, const uint32_t *c,
                  uint32_t *d) {
  Cta &cta = *activeCta;
  WarpState &warp = cta.warp();
  int lane = cta.lane();
  for (int i = 0; i < 4; ++i) {
    warp.mma.a[lane][i] = a[i];
    warp.mma.c[lane][i] = c[i];
  }
  warp.mma.b[lane] = {b[0], b[1]};
  warp.mmaKind = MmaKind(kind);
  cta.arrive(warp.barrier, [&] { executeMma(warp.mmaKind, warp.mma); });
  for (int i = 0; i < 4; ++i)
    d[i] = warp.mma.d[lane][i];
}

/// shfl.sync with mode 0 = up, 1 = down, 2 = bfly, 3 = idx, over the
/// whole warp (clamp 31, full member mask).
uint32_t moeq_emu_shfl(int32_t mode, uint32_t value, int32_t offset) {
  Cta &cta = *activeCta;
  WarpState &warp = cta.warp();
  int lane = cta.lane();
  int source = mode == 0 ? lane - offset : mode == 1 ? lane + offset
               : mode == 2 ? (lane ^ offset) : offset;
  if (source < 0 || source > 31)
    source = lane;
  warp.shuffleIn[lane] = value;
  warp.shuffleSource[lane] = source;
  cta.arrive(warp.barrier, [&] {
    for (int l = 0; l < 32; ++l)
      warp.shuffleOut[l] = warp.shuffleIn[warp.shuffleSource[l]];
  });
  return warp.shuffleOut[lane];
}

void *moeq_emu_shared() { return activeCta->shared.data(); }

} // extern "C"

std::vector<std::pair<const char *, void *>> mlir::moeq::emu::runtimeSymbols() {
  return {{"moeq_emu_sreg", reinterpret_cast<void *>(&moeq_emu_sreg)},
          {"moeq_emu_barrier", reinterpret_cast<void *>(&moeq_emu_barrier)},
          {"moeq_emu_cp_async", reinterpret_cast<void *>(&moeq_emu_cp_async)},
          {"moeq_emu_ldmatrix", reinterpret_cast<void *>(&moeq_emu_ldmatrix)},
          {"moeq_emu_mma", reinterpret_cast<void *>(&moeq_emu_mma)},
          {"moeq_emu_shfl", reinterpret_cast<void *>(&moeq_emu_shfl)},
          {"moeq_emu_shared", reinterpret_cast<void *>(&moeq_emu_shared)}};
}

//===----------------------------------------------------------------------===//
// Launch
//===----------------------------------------------------------------------===//

/// Prepares thread `t` of `cta` to run the kernel from the start. (Kept out
/// of launch's loops: getcontext there would make their variables liable to
/// clobbering.)
static void startFiber(Cta &cta, uint64_t t) {
  const Dim3 &block = cta.config.block;
  Fiber &fiber = cta.fibers[t];
  fiber.tid[0] = uint32_t(t % block.x);
  fiber.tid[1] = uint32_t((t / block.x) % block.y);
  fiber.tid[2] = uint32_t(t / (uint64_t(block.x) * block.y));
  fiber.stack.reset(new char[kFiberStackBytes]);
  getcontext(&fiber.context);
  fiber.context.uc_stack.ss_sp = fiber.stack.get();
  fiber.context.uc_stack.ss_size = kFiberStackBytes;
  fiber.context.uc_link = &cta.scheduler;
  makecontext(&fiber.context, fiberEntry, 0);
  cta.runnable.push_back(int(t));
}

llvm::Error mlir::moeq::emu::launch(PackedKernel kernel, llvm::ArrayRef<void *> args,
                                    const LaunchConfig &config) {
  uint64_t threads = config.block.count();
  if (threads == 0 || threads > 1024 || config.grid.count() == 0)
    return llvm::createStringError(llvm::formatv(
        "invalid launch: {0} threads per CTA, {1} CTAs", threads, config.grid.count()));
  std::vector<void *> argv(args.begin(), args.end());
  for (uint32_t bz = 0; bz < config.grid.z; ++bz)
    for (uint32_t by = 0; by < config.grid.y; ++by)
      for (uint32_t bx = 0; bx < config.grid.x; ++bx) {
        Cta cta;
        cta.config = config;
        cta.ctaid[0] = bx;
        cta.ctaid[1] = by;
        cta.ctaid[2] = bz;
        cta.kernel = kernel;
        cta.args = argv.data();
        // Poison shared memory: a kernel must not read what it did not write.
        cta.shared.assign(std::max<uint64_t>(config.sharedBytes, 16), 0xA5);
        cta.ctaBarrier.expected = int(threads);
        cta.warps.resize((threads + 31) / 32);
        for (size_t w = 0; w < cta.warps.size(); ++w)
          cta.warps[w].barrier.expected = int(std::min<uint64_t>(32, threads - 32 * w));
        cta.fibers.resize(threads);
        activeCta = &cta;
        for (uint64_t t = 0; t < threads; ++t)
          startFiber(cta, t);
        while (!cta.runnable.empty()) {
          cta.current = cta.runnable.front();
          cta.runnable.pop_front();
          swapcontext(&cta.scheduler, &cta.fibers[cta.current].context);
        }
        activeCta = nullptr;
        for (const Fiber &fiber : cta.fibers)
          if (!fiber.done)
            return llvm::createStringError(llvm::formatv(
                "deadlock in CTA ({0}, {1}, {2}): thread {3} waits at a barrier or warp "
                "collective that not every thread reaches",
                bx, by, bz, &fiber - cta.fibers.data()));
      }
  return llvm::Error::success();
}
