//===- Probes.cpp - one-warp probes of the warp-level instructions --------===//
//
// One kernel per warp-level instruction the GEMM kernels use (ldmatrix
// x1/x2/x4, .trans, on f16 and on bytes; mma.sync m16n8k16 f16, m16n8k32
// s8, m16n8k64 s4; shfl.sync bfly/idx/up/down; cp.async of 4, 8 and 16
// bytes with zero fill), written with the same gpu/nvgpu ops and lowered
// through the same pipeline as the kernels, to PTX and to the emulator.
// Inputs are tagged (a value says where it came from) so that a layout
// error on a GPU shows which lane and element moved; the expected result
// is the emulator's.
//
//===----------------------------------------------------------------------===//
#include "Probes.h"

#include "Compile.h"
#include "KernelCase.h"

#include "moeq/IO/Float16.h"

#include "mlir/IR/BuiltinOps.h"
#include "mlir/Parser/Parser.h"

#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/raw_ostream.h"

#include <functional>
#include <random>

using namespace mlir;
using namespace mlir::moeq;
using namespace mlir::moeq::kcheck;

namespace {

constexpr const char *kGlobal = "#gpu.address_space<global>";
constexpr const char *kShared = "#gpu.address_space<workgroup>";

/// A probe module: one gpu.module/kernel `name` with `params`, whose body
/// (after the dynamic shared memory `%sm`, a `smemType` view of `smemBytes`
/// bytes, when smemBytes > 0) is `body`. Shared memory is declared as the
/// kernels declare it (KernelBuilders.h: an external zero-size global).
std::string probeModule(StringRef name, StringRef arch, StringRef params, int64_t smemBytes,
                        StringRef smemType, StringRef body) {
  std::string shared;
  if (smemBytes > 0)
    shared = llvm::formatv(R"mlir(
    %shp = llvm.mlir.addressof @__dynamic_shmem__moeq : !llvm.ptr<3>
    %d0 = llvm.mlir.poison : !llvm.struct<(ptr<3>, ptr<3>, i64, array<1 x i64>, array<1 x i64>)>
    %d1 = llvm.insertvalue %shp, %d0[0] : !llvm.struct<(ptr<3>, ptr<3>, i64, array<1 x i64>, array<1 x i64>)>
    %d2 = llvm.insertvalue %shp, %d1[1] : !llvm.struct<(ptr<3>, ptr<3>, i64, array<1 x i64>, array<1 x i64>)>
    %i64_0 = llvm.mlir.constant(0 : i64) : i64
    %d3 = llvm.insertvalue %i64_0, %d2[2] : !llvm.struct<(ptr<3>, ptr<3>, i64, array<1 x i64>, array<1 x i64>)>
    %bytes = llvm.mlir.constant({0} : i64) : i64
    %d4 = llvm.insertvalue %bytes, %d3[3, 0] : !llvm.struct<(ptr<3>, ptr<3>, i64, array<1 x i64>, array<1 x i64>)>
    %i64_1 = llvm.mlir.constant(1 : i64) : i64
    %d5 = llvm.insertvalue %i64_1, %d4[4, 0] : !llvm.struct<(ptr<3>, ptr<3>, i64, array<1 x i64>, array<1 x i64>)>
    %raw = builtin.unrealized_conversion_cast %d5 : !llvm.struct<(ptr<3>, ptr<3>, i64, array<1 x i64>, array<1 x i64>)> to memref<?xi8, {2}>
    %sm = memref.view %raw[%c0][] : memref<?xi8, {2}> to {1}
)mlir",
                           smemBytes, smemType, kShared)
                 .str();
  return llvm::formatv(R"mlir(module attributes {{gpu.container_module} {{
  gpu.module @{0} [#nvvm.target<O = 3, chip = "{1}">] {{
    llvm.mlir.global external @__dynamic_shmem__moeq() {{addr_space = 3 : i32, alignment = 16 : i64} : !llvm.array<0 x i8>
    gpu.func @{0}({2}) kernel attributes {{known_block_size = array<i32: 32, 1, 1>} {{
    %c0 = arith.constant 0 : index
    %c1 = arith.constant 1 : index
    %lane = gpu.thread_id x
{3}{4}
    gpu.return
    }
  }
})mlir",
                       name, arch, params, shared, body)
      .str();
}

/// What a probe needs besides its module: its inputs per run and outputs.
struct ProbeBuffer {
  std::string name;
  io::DType dtype;
  SmallVector<int64_t> shape;
};
struct ProbeRun {
  std::string name, note;
  std::map<std::string, std::vector<uint8_t>> inputs;
};
struct Probe {
  std::string name, description, source;
  int64_t sharedBytes = 0;
  std::vector<ProbeBuffer> inputs, outputs; // in argument order: inputs then outputs
  std::vector<ProbeRun> runs;
};

template <typename T>
std::vector<uint8_t> bytesOf(const std::vector<T> &values) {
  auto *p = reinterpret_cast<const uint8_t *>(values.data());
  return std::vector<uint8_t>(p, p + values.size() * sizeof(T));
}

//===----------------------------------------------------------------------===//
// ldmatrix
//===----------------------------------------------------------------------===//

/// ldmatrix.x`num`[.trans] from 32 rows of 24 b16 (48-byte rows, 16-byte
/// aligned); lane l points at row rows[l] (a permutation). Element (r, c)
/// of the source holds the f16 bits 0x1000 + 32 r + c. `bytes`: the
/// integer path's form (i8 elements, vector<4x4xi8>).
Probe ldmatrixProbe(StringRef arch, int num, bool transpose, bool bytes) {
  Probe p;
  p.name = llvm::formatv("probe_ldmatrix_x{0}{1}{2}", num, transpose ? "_trans" : "",
                         bytes ? "_b8" : "");
  p.description = llvm::formatv("ldmatrix.sync.aligned.m8n8.x{0}{1}.shared.b16{2}", num,
                                transpose ? ".trans" : "", bytes ? " (on i8 rows)" : "");
  std::string elem = bytes ? "i8" : "f16";
  int64_t rowElems = bytes ? 48 : 24;
  std::string srcType = llvm::formatv("memref<32x{0}x{1}, {2}>", rowElems, elem, kGlobal);
  std::string smType = llvm::formatv("memref<32x{0}x{1}, {2}>", rowElems, elem, kShared);
  std::string fragType = bytes ? llvm::formatv("vector<{0}x4xi8>", num).str()
                               : llvm::formatv("vector<{0}x2xf16>", num).str();
  std::string rowType = bytes ? "vector<4xi8>" : "vector<2xf16>";
  std::string body = llvm::formatv(R"mlir(
    %cols = arith.constant {0} : index
    scf.for %j = %c0 to %cols step %c1 {{
      %v = memref.load %src[%lane, %j] : {1}
      memref.store %v, %sm[%lane, %j] : {2}
    }
    gpu.barrier
    %r32 = memref.load %rows[%lane] : memref<32xi32, {3}>
    %r = arith.index_cast %r32 : i32 to index
    %frag = nvgpu.ldmatrix %sm[%r, %c0] {{numTiles = {4} : i32, transpose = {5}} : {2} -> {6}
)mlir",
                                   rowElems, srcType, smType, kGlobal, num,
                                   transpose ? "true" : "false", fragType)
                         .str();
  for (int i = 0; i < num; ++i)
    body += llvm::formatv(R"mlir(
    %e{0} = vector.extract %frag[{0}] : {1} from {2}
    %w{0} = vector.bitcast %e{0} : {1} to vector<1xi32>
    %s{0} = vector.extract %w{0}[0] : i32 from vector<1xi32>
    %i{0} = arith.constant {0} : index
    memref.store %s{0}, %out[%lane, %i{0}] : memref<32x{3}xi32, {4}>
)mlir",
                          i, rowType, fragType, num, kGlobal)
                .str();
  std::string params = llvm::formatv("%src: {0}, %rows: memref<32xi32, {1}>, %out: "
                                     "memref<32x{2}xi32, {1}>",
                                     srcType, kGlobal, num);
  p.sharedBytes = 32 * 48;
  p.source = probeModule(p.name, arch, params, p.sharedBytes, smType, body);
  p.inputs = {{"src", bytes ? io::DType::I8 : io::DType::F16, {32, rowElems}},
              {"rows", io::DType::I32, {32}}};
  p.outputs = {{"out", io::DType::I32, {32, num}}};
  std::vector<uint16_t> src(32 * 24);
  for (int r = 0; r < 32; ++r)
    for (int c = 0; c < 24; ++c)
      src[r * 24 + c] = uint16_t(0x1000 + 32 * r + c);
  // Matrix i's rows come from lanes 8i..8i+7; a permutation of the rows
  // shows that each lane's own address is used.
  std::vector<int32_t> identity(32), permuted(32);
  for (int l = 0; l < 32; ++l) {
    identity[l] = l;
    permuted[l] = (7 * l + 3) % 32;
  }
  p.runs.push_back({"rows_in_order", "element (r, c) = f16 bits 0x1000 + 32 r + c; lane l -> row l",
                    {{"src", bytesOf(src)}, {"rows", bytesOf(identity)}}});
  p.runs.push_back({"rows_permuted",
                    "element (r, c) = f16 bits 0x1000 + 32 r + c; lane l -> row (7 l + 3) % 32",
                    {{"src", bytesOf(src)}, {"rows", bytesOf(permuted)}}});
  return p;
}

//===----------------------------------------------------------------------===//
// mma.sync
//===----------------------------------------------------------------------===//

/// One mma.sync per lane-register input: A (4 words), B (2), C (4) -> D (4).
Probe mmaProbe(StringRef arch, emu::MmaKind kind) {
  Probe p;
  int k = emu::mmaK(kind), perReg = k / 8;
  StringRef elem = kind == emu::MmaKind::F16F32 ? "f16"
                   : kind == emu::MmaKind::S8S32 ? "i8"
                                                 : "i4";
  StringRef acc = kind == emu::MmaKind::F16F32 ? "f32" : "i32";
  p.name = llvm::formatv("probe_mma_m16n8k{0}_{1}", k,
                         kind == emu::MmaKind::F16F32 ? "f16" : elem == "i8" ? "s8" : "s4");
  p.description = llvm::formatv("mma.sync.aligned.m16n8k{0}.row.col {1}", k,
                                kind == emu::MmaKind::F16F32 ? ".f32.f16.f16.f32"
                                                             : ".s32 (satfinite) on s8/s4");
  std::string aType = llvm::formatv("vector<4x{0}x{1}>", perReg, elem);
  std::string bType = llvm::formatv("vector<2x{0}x{1}>", perReg, elem);
  std::string cType = llvm::formatv("vector<2x2x{0}>", acc);
  std::string rowType = llvm::formatv("vector<{0}x{1}>", perReg, elem);
  std::string body;
  auto loadOperand = [&](StringRef arg, int regs, StringRef type) {
    body += llvm::formatv("    %{0}_0 = ub.poison : {1}\n", arg, type);
    for (int r = 0; r < regs; ++r)
      body += llvm::formatv(R"mlir(
    %{0}_i{1} = arith.constant {1} : index
    %{0}_w{1} = memref.load %{0}[%lane, %{0}_i{1}] : memref<32x{2}xi32, {3}>
    %{0}_v{1} = vector.from_elements %{0}_w{1} : vector<1xi32>
    %{0}_r{1} = vector.bitcast %{0}_v{1} : vector<1xi32> to {4}
    %{0}_{5} = vector.insert %{0}_r{1}, %{0}_{1} [{1}] : {4} into {6}
)mlir",
                            arg, r, regs, kGlobal, rowType, r + 1, type)
                  .str();
  };
  loadOperand("a", 4, aType);
  loadOperand("b", 2, bType);
  // C: registers c0..c3 are elements [0][0], [0][1], [1][0], [1][1].
  std::string cElems;
  for (int r = 0; r < 4; ++r) {
    body += llvm::formatv(R"mlir(
    %c_i{0} = arith.constant {0} : index
    %c_w{0} = memref.load %c[%lane, %c_i{0}] : memref<32x4xi32, {1}>
)mlir",
                          r, kGlobal)
                .str();
    if (acc == "f32")
      body += llvm::formatv("    %c_e{0} = arith.bitcast %c_w{0} : i32 to f32\n", r).str();
    cElems += llvm::formatv("{0}%c_{1}{2}", r ? ", " : "", acc == "f32" ? "e" : "w", r).str();
  }
  body += llvm::formatv(R"mlir(
    %cm = vector.from_elements {0} : {1}
    %d = nvgpu.mma.sync(%a_4, %b_2, %cm) {{mmaShape = [16, 8, {2}]} : ({3}, {4}, {1}) -> {1}
)mlir",
                        cElems, cType, k, aType, bType)
              .str();
  for (int r = 0; r < 4; ++r) {
    body += llvm::formatv(R"mlir(
    %d_e{0} = vector.extract %d[{1}, {2}] : {3} from {4}
)mlir",
                          r, r / 2, r % 2, acc, cType)
                .str();
    if (acc == "f32")
      body += llvm::formatv("    %d_w{0} = arith.bitcast %d_e{0} : f32 to i32\n", r).str();
    body += llvm::formatv("    memref.store %d_{0}{1}, %d_out[%lane, %c_i{1}] : "
                          "memref<32x4xi32, {2}>\n",
                          acc == "f32" ? "w" : "e", r, kGlobal)
                .str();
  }
  std::string params = llvm::formatv("%a: memref<32x4xi32, {0}>, %b: memref<32x2xi32, {0}>, "
                                     "%c: memref<32x4xi32, {0}>, %d_out: memref<32x4xi32, {0}>",
                                     kGlobal);
  p.source = probeModule(p.name, arch, params, 0, "", body);
  p.inputs = {{"a", io::DType::I32, {32, 4}},
              {"b", io::DType::I32, {32, 2}},
              {"c", io::DType::I32, {32, 4}}};
  p.outputs = {{"d", io::DType::I32, {32, 4}}};

  // Dense operands -> lane registers (the PTX fragment tables).
  auto encode = [&](double v) -> uint32_t {
    if (kind == emu::MmaKind::F16F32)
      return io::floatToHalf(float(v));
    return uint32_t(int32_t(v)) & (kind == emu::MmaKind::S8S32 ? 0xffu : 0xfu);
  };
  int elemBits = 32 / perReg;
  auto pack = [&](const std::vector<double> &a, const std::vector<double> &b,
                  const std::vector<double> &c) {
    std::vector<uint32_t> ra(32 * 4), rb(32 * 2), rc(32 * 4);
    for (int lane = 0; lane < 32; ++lane) {
      for (int reg = 0; reg < 4; ++reg)
        for (int i = 0; i < perReg; ++i) {
          emu::MatrixPosition pos = emu::mmaPositionA(kind, lane, reg, i);
          ra[lane * 4 + reg] |= encode(a[pos.row * k + pos.col]) << (elemBits * i);
        }
      for (int reg = 0; reg < 2; ++reg)
        for (int i = 0; i < perReg; ++i) {
          emu::MatrixPosition pos = emu::mmaPositionB(kind, lane, reg, i);
          rb[lane * 2 + reg] |= encode(b[pos.row * 8 + pos.col]) << (elemBits * i);
        }
      for (int reg = 0; reg < 4; ++reg) {
        emu::MatrixPosition pos = emu::mmaPositionC(lane, reg);
        double v = c[pos.row * 8 + pos.col];
        rc[lane * 4 + reg] = kind == emu::MmaKind::F16F32 ? io::floatToBits(float(v))
                                                          : uint32_t(int32_t(v));
      }
    }
    return std::map<std::string, std::vector<uint8_t>>{
        {"a", bytesOf(ra)}, {"b", bytesOf(rb)}, {"c", bytesOf(rc)}};
  };
  int lo = kind == emu::MmaKind::S4S32 ? -8 : kind == emu::MmaKind::S8S32 ? -128 : -2048;
  int hi = -lo - 1;
  // A tags seen through B selecting K columns w*8 .. w*8+7: D[i][j] =
  // A[i][w*8 + j]. f16 and s8 tags are unique within a window; s4 ones
  // (16 values) are split into a row run and a column run.
  for (int w = 0; w < k / 8; ++w) {
    std::vector<std::pair<std::string, std::function<double(int, int)>>> tags;
    if (kind == emu::MmaKind::S4S32) {
      tags.push_back({"rows", [](int i, int) { return double(i - 8); }});
      tags.push_back({"cols", [](int, int c) { return double(c % 16 - 8); }});
    } else {
      tags.push_back({"", [&](int i, int c) {
                        return kind == emu::MmaKind::F16F32 ? double(i * k + c + 1)
                                                            : double(i * 8 + c % 8 - 64);
                      }});
    }
    for (auto &[suffix, tag] : tags) {
      std::vector<double> a(16 * k), b(k * 8, 0), c(16 * 8, 0);
      for (int i = 0; i < 16; ++i)
        for (int kk = 0; kk < k; ++kk)
          a[i * k + kk] = tag(i, kk);
      for (int j = 0; j < 8; ++j)
        b[(w * 8 + j) * 8 + j] = 1;
      p.runs.push_back({llvm::formatv("a_window{0}{1}{2}", w, suffix.empty() ? "" : "_",
                                      suffix),
                        llvm::formatv("D[i][j] = A[i][{0} + j]", w * 8).str(), pack(a, b, c)});
    }
  }
  // B tags through A selecting K rows w*16 + i: D[i][j] = B[w*16 + i][j].
  for (int w = 0; w < k / 16; ++w) {
    std::vector<double> a(16 * k, 0), b(k * 8), c(16 * 8, 0);
    for (int i = 0; i < 16; ++i)
      a[i * k + w * 16 + i] = 1;
    for (int kk = 0; kk < k; ++kk)
      for (int j = 0; j < 8; ++j)
        b[kk * 8 + j] = kind == emu::MmaKind::S4S32 ? double((kk + 3 * j) % 16 - 8)
                                                    : double((kk % 16) * 8 + j - 64);
    p.runs.push_back({llvm::formatv("b_window{0}", w),
                      llvm::formatv("D[i][j] = B[{0} + i][j]", w * 16).str(), pack(a, b, c)});
  }
  // C passes through (A = 0): D = C, tags 1000 + 8 i + j.
  {
    std::vector<double> a(16 * k, 0), b(k * 8, 0), c(16 * 8);
    for (int i = 0; i < 16; ++i)
      for (int j = 0; j < 8; ++j)
        c[i * 8 + j] = 1000 + 8 * i + j;
    p.runs.push_back({"c_tags", "D[i][j] = C[i][j] = 1000 + 8 i + j", pack(a, b, c)});
  }
  // Random operands over the whole range (exact sums in f32 for f16: small
  // integers), and a saturating one for the integer kinds.
  std::mt19937 rng(11);
  std::uniform_int_distribution<int> small(kind == emu::MmaKind::F16F32 ? -16 : lo,
                                           kind == emu::MmaKind::F16F32 ? 16 : hi);
  std::vector<double> a(16 * k), b(k * 8), c(16 * 8);
  for (double &v : a)
    v = small(rng);
  for (double &v : b)
    v = small(rng);
  for (double &v : c)
    v = small(rng) * (kind == emu::MmaKind::F16F32 ? 0.25 : 1000.0);
  p.runs.push_back({"random", "random operands", pack(a, b, c)});
  if (kind != emu::MmaKind::F16F32) {
    std::fill(a.begin(), a.end(), lo);
    std::fill(b.begin(), b.end(), lo);
    std::fill(c.begin(), c.end(), double(INT32_MAX) - 100);
    p.runs.push_back({"saturate", "C near INT32_MAX plus a positive sum: .satfinite clamps",
                      pack(a, b, c)});
  }
  return p;
}

//===----------------------------------------------------------------------===//
// shfl.sync
//===----------------------------------------------------------------------===//

/// Every lane's value through bfly 1..16, idx from a per-lane table, down 1,
/// up 3 and down 16 (values and the in-range predicate).
Probe shuffleProbe(StringRef arch) {
  Probe p;
  p.name = "probe_shfl";
  p.description = "shfl.sync.bfly/idx/down/up.b32 over the full warp (width 32)";
  std::string body = "    %v = memref.load %in[%lane] : memref<32xi32, " + std::string(kGlobal) +
                     ">\n    %width = arith.constant 32 : i32\n";
  int column = 0;
  auto store = [&](StringRef value) {
    body += llvm::formatv("    %col{0} = arith.constant {0} : index\n    memref.store {1}, "
                          "%out[%lane, %col{0}] : memref<32x12xi32, {2}>\n",
                          column, value, kGlobal)
                .str();
    ++column;
  };
  for (int offset : {1, 2, 4, 8, 16}) {
    body += llvm::formatv("    %o{0} = arith.constant {0} : i32\n    %x{0}, %xv{0} = "
                          "gpu.shuffle xor %v, %o{0}, %width : i32\n",
                          offset)
                .str();
    store(llvm::formatv("%x{0}", offset).str());
  }
  body += "    %src = memref.load %from[%lane] : memref<32xi32, " + std::string(kGlobal) +
          ">\n    %ix, %ixv = gpu.shuffle idx %v, %src, %width : i32\n";
  store("%ix");
  auto withValid = [&](StringRef mode, int offset) {
    body += llvm::formatv("    %{0}o{1} = arith.constant {1} : i32\n    %{0}{1}, %{0}v{1} = "
                          "gpu.shuffle {0} %v, %{0}o{1}, %width : i32\n    %{0}p{1} = "
                          "arith.extui %{0}v{1} : i1 to i32\n",
                          mode, offset)
                .str();
    store(llvm::formatv("%{0}{1}", mode, offset).str());
    store(llvm::formatv("%{0}p{1}", mode, offset).str());
  };
  withValid("down", 1);
  withValid("up", 3);
  withValid("down", 16);
  std::string params =
      llvm::formatv("%in: memref<32xi32, {0}>, %from: memref<32xi32, {0}>, %out: "
                    "memref<32x12xi32, {0}>",
                    kGlobal);
  p.source = probeModule(p.name, arch, params, 0, "", body);
  p.inputs = {{"in", io::DType::I32, {32}}, {"from", io::DType::I32, {32}}};
  p.outputs = {{"out", io::DType::I32, {32, 12}}};
  std::vector<int32_t> in(32), from(32);
  for (int l = 0; l < 32; ++l) {
    in[l] = 0x1000 * (l + 1) + l; // lane l's tag
    from[l] = (l * 13 + 5) % 32;
  }
  p.runs.push_back({"lane_tags",
                    "lane l holds 0x1000 (l + 1) + l; columns: bfly 1, 2, 4, 8, 16, idx "
                    "(13 l + 5) % 32, down 1 (+valid), up 3 (+valid), down 16 (+valid)",
                    {{"in", bytesOf(in)}, {"from", bytesOf(from)}}});
  return p;
}

//===----------------------------------------------------------------------===//
// cp.async
//===----------------------------------------------------------------------===//

/// Each lane copies `size` bytes from its source offset into its 16-byte
/// slot of shared memory (pre-filled with 0xAB) with a per-lane src-size:
/// 0 (all zero-filled), `size`, or partial; the 512 shared bytes are then
/// stored.
Probe cpAsyncProbe(StringRef arch, int size) {
  Probe p;
  p.name = llvm::formatv("probe_cp_async_{0}", size);
  p.description = llvm::formatv("cp.async.{0}.shared.global [dst], [src], {1}, src-size",
                                size == 16 ? "cg" : "ca", size);
  std::string smType = llvm::formatv("memref<512xi8, {0}>", kShared);
  std::string body = llvm::formatv(R"mlir(
    %c16 = arith.constant 16 : index
    %fill = arith.constant -85 : i8
    %slot = arith.muli %lane, %c16 : index
    scf.for %j = %c0 to %c16 step %c1 {{
      %at = arith.addi %slot, %j : index
      memref.store %fill, %sm[%at] : {0}
    }
    gpu.barrier
    %so32 = memref.load %src_offset[%lane] : memref<32xi32, {1}>
    %so = arith.index_cast %so32 : i32 to index
    %sb32 = memref.load %src_bytes[%lane] : memref<32xi32, {1}>
    %sb = arith.index_cast %sb32 : i32 to index
    %t = nvgpu.device_async_copy %src[%so], %sm[%slot], {2}, %sb{3} : memref<1024xi8, {1}> to {0}
    %g = nvgpu.device_async_create_group %t
    nvgpu.device_async_wait %g {{numGroups = 0 : i32}
    gpu.barrier
    scf.for %j = %c0 to %c16 step %c1 {{
      %at = arith.addi %slot, %j : index
      %v = memref.load %sm[%at] : {0}
      memref.store %v, %out[%at] : memref<512xi8, {1}>
    }
)mlir",
                                   smType, kGlobal, size, size == 16 ? " {bypassL1}" : "")
                         .str();
  std::string params = llvm::formatv("%src: memref<1024xi8, {0}>, %src_offset: memref<32xi32, "
                                     "{0}>, %src_bytes: memref<32xi32, {0}>, %out: "
                                     "memref<512xi8, {0}>",
                                     kGlobal);
  p.sharedBytes = 512;
  p.source = probeModule(p.name, arch, params, p.sharedBytes, smType, body);
  p.inputs = {{"src", io::DType::U8, {1024}},
              {"src_offset", io::DType::I32, {32}},
              {"src_bytes", io::DType::I32, {32}}};
  p.outputs = {{"out", io::DType::U8, {512}}};
  std::vector<uint8_t> src(1024);
  for (int i = 0; i < 1024; ++i)
    src[i] = uint8_t((i * 37 + 11) & 0xff) | 1; // never 0 (zero fill shows)
  std::vector<int32_t> offsets(32), bytes(32);
  for (int l = 0; l < 32; ++l) {
    offsets[l] = ((l * 5) % 32) * 32; // aligned to 32 >= size
    int kindOf = l % 4;
    bytes[l] = kindOf == 0 ? 0 : kindOf == 1 ? size : kindOf == 2 ? size / 2 + 1 : size - 1;
  }
  p.runs.push_back({"zero_fill",
                    "lane l: src offset 32 ((5 l) % 32), src-size 0 / full / half + 1 / "
                    "full - 1 by l % 4; slots pre-filled with 0xAB",
                    {{"src", src}, {"src_offset", bytesOf(offsets)}, {"src_bytes", bytesOf(bytes)}}});
  return p;
}

std::vector<Probe> allProbes(StringRef arch) {
  std::vector<Probe> probes;
  for (int num : {1, 2, 4})
    probes.push_back(ldmatrixProbe(arch, num, false, false));
  probes.push_back(ldmatrixProbe(arch, 4, true, false));
  probes.push_back(ldmatrixProbe(arch, 4, false, true));
  for (emu::MmaKind kind : {emu::MmaKind::F16F32, emu::MmaKind::S8S32, emu::MmaKind::S4S32})
    probes.push_back(mmaProbe(arch, kind));
  probes.push_back(shuffleProbe(arch));
  for (int size : {16, 8, 4})
    probes.push_back(cpAsyncProbe(arch, size));
  return probes;
}

/// Builds, runs (emulator) and records one probe.
bool runProbe(MLIRContext *context, const Probe &probe, StringRef saveDir, StringRef arch) {
  OwningOpRef<ModuleOp> module = parseSourceString<ModuleOp>(probe.source, context);
  if (!module)
    fail("cannot parse probe " + probe.name);
  PTXMap ptx;
  if (!saveDir.empty())
    ptx = compileToPTX(*module);
  lowerForEmulation(*module);
  std::unique_ptr<ExecutionEngine> engine = jitKernels(*module);
  emu::PackedKernel kernel = lookupKernel(*engine, probe.name);
  kcase::Case record("probe", probe.description, arch.str());
  for (auto &[name, text] : ptx)
    record.setKernelPTX(name, text);
  for (const ProbeRun &run : probe.runs) {
    kcase::Run &r = record.addRun(run.name);
    std::vector<kcase::Arg> args;
    std::vector<std::vector<uint8_t>> outputs;
    for (const ProbeBuffer &in : probe.inputs) {
      r.input(in.name, in.dtype, in.shape, run.inputs.at(in.name).data());
      args.push_back(kcase::Arg::of(in.name));
    }
    outputs.reserve(probe.outputs.size());
    for (const ProbeBuffer &out : probe.outputs) {
      outputs.emplace_back(kcase::byteSize(out.dtype, out.shape), 0xff);
      r.output(out.name, out.dtype, out.shape, outputs.back().data(), out.shape[0],
               kcase::Compare::Bitwise, kcase::Poison::Ones);
      args.push_back(kcase::Arg::of(out.name));
    }
    emu::LaunchConfig config{{1, 1, 1}, {32, 1, 1}, uint64_t(probe.sharedBytes)};
    check(r.launch(probe.name, kernel, config, args));
    r.finish();
  }
  record.set("notes", [&] {
    llvm::json::Object notes;
    for (const ProbeRun &run : probe.runs)
      notes[run.name] = run.note;
    return notes;
  }());
  llvm::outs() << "probe " << probe.name << ": " << probe.runs.size() << " runs on the emulator\n";
  if (!saveDir.empty())
    check(record.write((saveDir + "/" + probe.name).str()));
  return true;
}

} // namespace

int kcheck::runProbes(MLIRContext *context, StringRef name, StringRef saveDir, StringRef arch) {
  bool found = false;
  for (const Probe &probe : allProbes(arch)) {
    if (name != "all" && name != probe.name)
      continue;
    found = true;
    runProbe(context, probe, saveDir, arch);
  }
  if (!found)
    fail("no probe '" + name + "' (probe_ldmatrix_x1, ..., or all)");
  return 0;
}
