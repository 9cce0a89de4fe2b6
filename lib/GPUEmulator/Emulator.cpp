//===- Emulator.cpp - run lowered GPU kernels on the CPU ------------------===//
#include "moeq/GPUEmulator/Emulator.h"

#include "moeq/IO/Float16.h"

#include "llvm/ADT/ScopeExit.h"
#include "llvm/Support/FormatVariadic.h"

#include <csignal>
#include <cstring>
#include <deque>
#include <map>
#include <memory>
#include <string>
#include <sys/mman.h>
#include <ucontext.h>
#include <unistd.h>

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

/// The shared memory of the CTAs of one launch: `bytes` that end exactly
/// at a PROT_NONE page, so that a kernel addressing past its allocation
/// faults (reported by onGuardFault) instead of reading the next buffer.
class SharedArena {
public:
  explicit SharedArena(uint64_t bytes) : bytes(bytes) {
    size_t page = size_t(sysconf(_SC_PAGESIZE));
    size_t usable = (bytes + page - 1) / page * page;
    mapped = usable + page;
    region = static_cast<uint8_t *>(
        mmap(nullptr, mapped, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
    if (region == MAP_FAILED) {
      region = nullptr;
      return;
    }
    mprotect(region + usable, page, PROT_NONE);
    guardBegin = region + usable;
    guardEnd = guardBegin + page;
    // Ends at the guard page: 16-byte aligned, as bytes is a multiple of 16.
    base = region + usable - bytes;
  }
  ~SharedArena() {
    if (region)
      munmap(region, mapped);
  }
  SharedArena(const SharedArena &) = delete;
  SharedArena &operator=(const SharedArena &) = delete;

  uint8_t *data() const { return base; }
  uint64_t size() const { return bytes; }
  bool valid() const { return region != nullptr; }

  /// Fills the buffer with `poison`.
  void poison(SharedPoison poison) {
    if (poison == SharedPoison::AllOnes) {
      std::memset(base, 0xff, bytes);
      return;
    }
    for (uint64_t i = 0; i + 1 < bytes; i += 2) {
      base[i] = 0x00;
      base[i + 1] = 0x7e;
    }
  }

  static inline const uint8_t *guardBegin = nullptr, *guardEnd = nullptr;

private:
  uint64_t bytes;
  size_t mapped = 0;
  uint8_t *region = nullptr, *base = nullptr;
};

/// SIGSEGV in the guard page after shared memory: the kernel addressed
/// past its dynamic shared memory. Anything else: the default action.
void onGuardFault(int sig, siginfo_t *info, void *) {
  auto *address = static_cast<const uint8_t *>(info->si_addr);
  if (address >= SharedArena::guardBegin && address < SharedArena::guardEnd) {
    static const char message[] =
        "GPU emulator: shared-memory access past the CTA's dynamic shared memory\n";
    (void)!write(2, message, sizeof message - 1);
    _exit(3);
  }
  signal(sig, SIG_DFL);
  raise(sig);
}

/// An mbarrier object (PTX ISA, "Parallel Synchronization and
/// Communication Instructions: mbarrier"): the current phase completes
/// when its pending arrivals reach zero and its transaction count is zero
/// (the count may go negative between the two).
struct MBarrier {
  int expected = 0, pending = 0;
  int64_t transactions = 0;
  uint32_t phase = 0;
  std::vector<int> waiters; ///< threads waiting for the current phase
};

/// One CTA in flight: its fibers, run queue, shared memory and barriers.
struct Cta {
  LaunchConfig config;
  uint32_t ctaid[3] = {0, 0, 0};
  PackedKernel kernel = nullptr;
  void **args = nullptr;
  SharedArena *shared = nullptr;
  std::string fault; ///< the first illegal access (the launch fails)
  std::vector<Fiber> fibers;
  std::deque<int> runnable;
  int current = -1;
  ucontext_t scheduler;
  Barrier ctaBarrier;
  std::vector<WarpState> warps;
  std::map<const void *, MBarrier> mbarriers;

  int lane() const { return current % 32; }
  WarpState &warp() { return warps[current / 32]; }

  /// Records the first illegal access of the CTA; the launch fails with it.
  void report(const llvm::Twine &what) {
    if (fault.empty())
      fault = llvm::formatv("thread {0}: ", current).str() + what.str();
  }
  /// Whether [address, address + bytes) lies in the CTA's shared memory.
  bool inShared(const void *address, uint64_t bytes) const {
    auto *p = static_cast<const uint8_t *>(address);
    return p >= shared->data() && p + bytes <= shared->data() + shared->size();
  }

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

int mlir::moeq::emu::mmaK(MmaKind kind) {
  return kind == MmaKind::F16F32 ? 16 : kind == MmaKind::S8S32 ? 32 : 64;
}

// groupID = lane / 4, threadID_in_group = lane % 4. A: registers 0 and 2
// hold row g, 1 and 3 row g + 8; registers 2 and 3 the upper half of K;
// within a register, consecutive K. B: register r holds column g, K rows
// from (elements per register) * t + (K / 2) * r. C/D: registers 0 and 1
// row g, 2 and 3 row g + 8; columns 2t and 2t + 1.
MatrixPosition mlir::moeq::emu::mmaPositionA(MmaKind kind, int lane, int reg, int i) {
  int perReg = mmaK(kind) / 8;
  int g = lane / 4, t = lane % 4;
  return {g + 8 * (reg % 2), perReg * t + i + (mmaK(kind) / 2) * (reg / 2)};
}

MatrixPosition mlir::moeq::emu::mmaPositionB(MmaKind kind, int lane, int reg, int i) {
  int perReg = mmaK(kind) / 8;
  int g = lane / 4, t = lane % 4;
  return {perReg * t + i + (mmaK(kind) / 2) * reg, g};
}

MatrixPosition mlir::moeq::emu::mmaPositionC(int lane, int reg) {
  int g = lane / 4, t = lane % 4;
  return {g + 8 * (reg / 2), 2 * t + reg % 2};
}

/// Element `i` of a register of `kind`'s A/B operands.
static double operandElement(MmaKind kind, uint32_t word, int i) {
  if (kind == MmaKind::F16F32)
    return halfOf(word, i);
  return kind == MmaKind::S8S32 ? signedByte(word, i) : signedNibble(word, i);
}

void mlir::moeq::emu::executeMma(MmaKind kind, MmaFragments &f) {
  int k = mmaK(kind), perReg = k / 8;
  std::vector<double> a(16 * k), b(k * 8);
  for (int lane = 0; lane < 32; ++lane) {
    for (int reg = 0; reg < 4; ++reg)
      for (int i = 0; i < perReg; ++i) {
        MatrixPosition p = mmaPositionA(kind, lane, reg, i);
        a[p.row * k + p.col] = operandElement(kind, f.a[lane][reg], i);
      }
    for (int reg = 0; reg < 2; ++reg)
      for (int i = 0; i < perReg; ++i) {
        MatrixPosition p = mmaPositionB(kind, lane, reg, i);
        b[p.row * 8 + p.col] = operandElement(kind, f.b[lane][reg], i);
      }
  }
  for (int lane = 0; lane < 32; ++lane)
    for (int reg = 0; reg < 4; ++reg) {
      MatrixPosition p = mmaPositionC(lane, reg);
      double sum = 0;
      for (int kk = 0; kk < k; ++kk)
        sum += a[p.row * k + kk] * b[kk * 8 + p.col];
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

MatrixDescriptor mlir::moeq::emu::decodeMatrixDescriptor(uint64_t descriptor) {
  auto field = [&](int first, int bits) {
    return uint32_t((descriptor >> first) & ((uint64_t(1) << bits) - 1));
  };
  MatrixDescriptor d;
  d.start = field(0, 14) << 4;
  d.leadingBytes = field(16, 14) << 4;
  d.strideBytes = field(32, 14) << 4;
  d.baseOffset = field(49, 3);
  d.layout = field(62, 2);
  return d;
}

uint32_t mlir::moeq::emu::coreMatrixOffset(const MatrixDescriptor &d, int row, int k) {
  return uint32_t(row / 8) * d.strideBytes + uint32_t(k / 8) * d.leadingBytes +
         uint32_t(row % 8) * 16 + uint32_t(k % 8) * 2;
}

// PTX ISA, "Register Fragments and Shared Memory Matrix Layouts" for
// wgmma .m64nNk16 D: warp w of the warpgroup holds rows 16w..16w+15; in
// each 8-column block, registers 4j and 4j+1 row l/4, 4j+2 and 4j+3 row
// l/4 + 8, columns 8j + 2(l%4) and + 1.
MatrixPosition mlir::moeq::emu::wgmmaPositionD(int thread, int reg) {
  int warp = thread / 32, lane = thread % 32;
  return {16 * warp + lane / 4 + 8 * ((reg / 2) % 2), 8 * (reg / 4) + 2 * (lane % 4) + reg % 2};
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
/// zero-filled. The PTX rules are checked: cp-size 4, 8 or 16, src-size at
/// most cp-size, both addresses aligned to cp-size, the destination in the
/// CTA's shared memory.
void moeq_emu_cp_async(void *dst, const void *src, int32_t bytes, int32_t srcBytes) {
  Cta &cta = *activeCta;
  if (bytes != 4 && bytes != 8 && bytes != 16)
    cta.report(llvm::formatv("cp.async of {0} bytes (4, 8 or 16 only)", bytes));
  else if (srcBytes < 0 || srcBytes > bytes)
    cta.report(llvm::formatv("cp.async src-size {0} outside [0, {1}]", srcBytes, bytes));
  else if (reinterpret_cast<uintptr_t>(dst) % bytes || reinterpret_cast<uintptr_t>(src) % bytes)
    cta.report(llvm::formatv("cp.async of {0} bytes from a misaligned address (source offset "
                             "{1}, shared offset {2})",
                             bytes, reinterpret_cast<uintptr_t>(src) % bytes,
                             static_cast<uint8_t *>(dst) - cta.shared->data()));
  if (!cta.inShared(dst, uint64_t(std::max(bytes, 0)))) {
    cta.report(llvm::formatv("cp.async to shared offset {0} ({1} bytes) outside the {2} "
                             "bytes of dynamic shared memory",
                             static_cast<uint8_t *>(dst) - cta.shared->data(), bytes,
                             cta.shared->size()));
    return;
  }
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
  // Lanes 8i..8i+7 address matrix i's rows, 16 bytes each, 16-byte aligned.
  if (lane < 8 * num) {
    if (reinterpret_cast<uintptr_t>(address) % 16)
      cta.report("ldmatrix row address not 16-byte aligned");
    if (!cta.inShared(address, 16)) {
      cta.report(llvm::formatv("ldmatrix row at shared offset {0} outside the {1} bytes of "
                               "dynamic shared memory",
                               static_cast<const uint8_t *>(address) - cta.shared->data(),
                               cta.shared->size()));
      address = cta.shared->data(); // keep the collective going
    }
  }
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

/// The initialised mbarrier at `address`, or null after reporting why not.
static MBarrier *findMBarrier(Cta &cta, const void *address) {
  auto it = cta.mbarriers.find(address);
  if (it == cta.mbarriers.end()) {
    cta.report(llvm::formatv("mbarrier at shared offset {0} used before mbarrier.init",
                             static_cast<const uint8_t *>(address) - cta.shared->data()));
    return nullptr;
  }
  return &it->second;
}

/// Completes the current phase if nothing is pending and wakes its waiters.
static void completePhaseIfDone(Cta &cta, MBarrier &barrier) {
  if (barrier.pending != 0 || barrier.transactions != 0)
    return;
  ++barrier.phase;
  barrier.pending = barrier.expected;
  for (int waiter : barrier.waiters)
    cta.runnable.push_back(waiter);
  barrier.waiters.clear();
}

void moeq_emu_mbarrier_init(void *address, int32_t count) {
  Cta &cta = *activeCta;
  if (!cta.inShared(address, 8) || reinterpret_cast<uintptr_t>(address) % 8 != 0 || count < 1) {
    cta.report(llvm::formatv("mbarrier.init of {0} arrivals at shared offset {1}: not an "
                             "aligned 8-byte object of the CTA's shared memory",
                             count, static_cast<uint8_t *>(address) - cta.shared->data()));
    return;
  }
  MBarrier &barrier = cta.mbarriers[address];
  barrier = MBarrier();
  barrier.expected = barrier.pending = count;
}

void moeq_emu_mbarrier_arrive_expect_tx(void *address, int32_t bytes) {
  Cta &cta = *activeCta;
  MBarrier *barrier = findMBarrier(cta, address);
  if (!barrier)
    return;
  barrier->transactions += uint32_t(bytes);
  --barrier->pending;
  completePhaseIfDone(cta, *barrier);
}

/// mbarrier.try_wait.parity in its loop: returns once the phase of that
/// parity has completed (the current phase has the other parity); blocks
/// the fiber until then. A phase that never completes is a deadlock.
void moeq_emu_mbarrier_wait_parity(void *address, int32_t parity) {
  Cta &cta = *activeCta;
  MBarrier *barrier = findMBarrier(cta, address);
  while (barrier && (barrier->phase & 1) == uint32_t(parity & 1)) {
    barrier->waiters.push_back(cta.current);
    swapcontext(&cta.fibers[cta.current].context, &cta.scheduler);
  }
}

/// cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes (in
/// the CTA's own shared memory): the copy lands at once and completes its
/// bytes on the mbarrier. Sizes and both addresses must be multiples of
/// 16, the destination inside the CTA's shared memory.
void moeq_emu_cp_async_bulk(void *dst, const void *src, int32_t bytes, void *mbarrier) {
  Cta &cta = *activeCta;
  auto misaligned = [](const void *p) { return reinterpret_cast<uintptr_t>(p) % 16 != 0; };
  if (bytes <= 0 || bytes % 16 != 0 || misaligned(dst) || misaligned(src) ||
      !cta.inShared(dst, uint64_t(bytes))) {
    cta.report(llvm::formatv("cp.async.bulk of {0} bytes to shared offset {1} (of {2}): not "
                             "16-byte multiples at 16-byte aligned addresses inside the CTA's "
                             "shared memory",
                             bytes, static_cast<uint8_t *>(dst) - cta.shared->data(),
                             cta.shared->size()));
    return;
  }
  MBarrier *barrier = findMBarrier(cta, mbarrier);
  if (!barrier)
    return;
  std::memcpy(dst, src, size_t(bytes));
  barrier->transactions -= bytes;
  completePhaseIfDone(cta, *barrier);
}

/// wgmma.mma_async m64nNk16 .f32.f16.f16, A and B from shared-memory
/// descriptors (K-major, no swizzle), D += A B^T. Every thread computes its
/// own registers from shared memory (the operands are not in registers);
/// the descriptors are checked as the hardware reads them: no swizzle or
/// base offset, every element inside the CTA's shared memory. Completes
/// at once (commit and wait are no-ops).
void moeq_emu_wgmma(uint64_t descA, uint64_t descB, int32_t n, const uint32_t *c,
                    uint32_t *d) {
  Cta &cta = *activeCta;
  int thread = cta.current % 128;
  const uint8_t *base = cta.shared->data();
  // The descriptor holds the low 18 bits of the shared address.
  uint32_t window = uint32_t(reinterpret_cast<uintptr_t>(base) & 0x3FFFF);
  MatrixDescriptor a = decodeMatrixDescriptor(descA), b = decodeMatrixDescriptor(descB);
  for (const MatrixDescriptor *m : {&a, &b}) {
    if (m->layout != 0 || m->baseOffset != 0) {
      cta.report("wgmma descriptor with a swizzle or base offset (the emulator reads "
                 "no-swizzle operands only)");
      return;
    }
  }
  auto element = [&](const MatrixDescriptor &m, int row, int k, double &value) {
    uint32_t offset = ((m.start - window) & 0x3FFFF) + coreMatrixOffset(m, row, k);
    if (offset + 2 > cta.shared->size()) {
      cta.report(llvm::formatv("wgmma operand element at shared offset {0} outside the {1} "
                               "bytes of dynamic shared memory",
                               offset, cta.shared->size()));
      return false;
    }
    uint16_t bits;
    std::memcpy(&bits, base + offset, 2);
    value = halfOf(bits, 0);
    return true;
  };
  for (int reg = 0; reg < n / 2; ++reg) {
    MatrixPosition p = wgmmaPositionD(thread, reg);
    double sum = 0;
    for (int k = 0; k < 16; ++k) {
      double x, w;
      if (!element(a, p.row, k, x) || !element(b, p.col, k, w))
        return;
      sum += x * w;
    }
    d[reg] = io::floatToBits(float(double(io::bitsToFloat(c[reg])) + sum));
  }
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

void *moeq_emu_shared() { return activeCta->shared->data(); }

} // extern "C"

std::vector<std::pair<const char *, void *>> mlir::moeq::emu::runtimeSymbols() {
  return {{"moeq_emu_sreg", reinterpret_cast<void *>(&moeq_emu_sreg)},
          {"moeq_emu_barrier", reinterpret_cast<void *>(&moeq_emu_barrier)},
          {"moeq_emu_cp_async", reinterpret_cast<void *>(&moeq_emu_cp_async)},
          {"moeq_emu_ldmatrix", reinterpret_cast<void *>(&moeq_emu_ldmatrix)},
          {"moeq_emu_mma", reinterpret_cast<void *>(&moeq_emu_mma)},
          {"moeq_emu_wgmma", reinterpret_cast<void *>(&moeq_emu_wgmma)},
          {"moeq_emu_mbarrier_init", reinterpret_cast<void *>(&moeq_emu_mbarrier_init)},
          {"moeq_emu_mbarrier_arrive_expect_tx",
           reinterpret_cast<void *>(&moeq_emu_mbarrier_arrive_expect_tx)},
          {"moeq_emu_mbarrier_wait_parity",
           reinterpret_cast<void *>(&moeq_emu_mbarrier_wait_parity)},
          {"moeq_emu_cp_async_bulk", reinterpret_cast<void *>(&moeq_emu_cp_async_bulk)},
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
  // At least 16 bytes (kernels without shared memory still get a buffer),
  // a multiple of 16 so that the buffer starts 16-byte aligned.
  SharedArena shared((std::max<uint64_t>(config.sharedBytes, 16) + 15) / 16 * 16);
  if (!shared.valid())
    return llvm::createStringError("cannot map the emulated shared memory");
  struct sigaction onFault = {}, previous = {};
  onFault.sa_sigaction = onGuardFault;
  onFault.sa_flags = SA_SIGINFO;
  sigemptyset(&onFault.sa_mask);
  sigaction(SIGSEGV, &onFault, &previous);
  llvm::scope_exit restore([&] { sigaction(SIGSEGV, &previous, nullptr); });
  uint64_t linear = 0;
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
        SharedPoison poison = config.poison;
        if (poison == SharedPoison::Alternate)
          poison = linear++ % 2 ? SharedPoison::AllOnes : SharedPoison::NaNHalves;
        shared.poison(poison);
        cta.shared = &shared;
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
        if (!cta.fault.empty())
          return llvm::createStringError(
              llvm::formatv("illegal access in CTA ({0}, {1}, {2}), {3}", bx, by, bz, cta.fault));
        for (const Fiber &fiber : cta.fibers)
          if (!fiber.done)
            return llvm::createStringError(llvm::formatv(
                "deadlock in CTA ({0}, {1}, {2}): thread {3} waits at a barrier, mbarrier phase or warp "
                "collective that not every thread reaches",
                bx, by, bz, &fiber - cta.fibers.data()));
      }
  return llvm::Error::success();
}
