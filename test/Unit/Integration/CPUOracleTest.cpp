//===- CPUOracleTest.cpp - quantized MoE layer on CPU vs references -------===//
//
// Imports a generated Mixtral checkpoint, quantizes its experts with the
// compiler's passes, runs the layer through the CPU lowering and the MLIR
// ExecutionEngine, and compares with:
//  * an independent round-to-nearest computation of the dequantized
//    weights (this file, no moeq quantization code), bit-exact against the
//    packed tensors the compiler wrote;
//  * a plain double-precision MoE forward pass with those weights.
//
//===----------------------------------------------------------------------===//
#include "moeq/IO/Checkpoint.h"
#include "moeq/IO/SyntheticCheckpoint.h"
#include "moeq/Dialect/MoEQ/IR/MoEQ.h"
#include "moeq/Passes/CPURunner.h"
#include "moeq/Passes/Import.h"
#include "moeq/Passes/Passes.h"

#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/DialectRegistry.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/Pass/PassManager.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/Path.h"
#include "gtest/gtest.h"

#include <cmath>
#include <cstring>
#include <random>

using namespace mlir;

namespace {

constexpr int64_t kHidden = 128, kInter = 256, kExperts = 4, kTopK = 2, kTokens = 9;

/// A weight matrix in row-major f32 (widened from the checkpoint).
struct Matrix {
  int64_t rows = 0, cols = 0;
  std::vector<float> data;
  float at(int64_t r, int64_t c) const { return data[r * cols + c]; }
};

/// Decodes a BF16 tensor by hand: a bf16 is the high half of an f32.
Matrix readBF16(const mlir::moeq::io::Checkpoint &ckpt, const std::string &name) {
  const mlir::moeq::io::SafeTensorsFile *file = nullptr;
  const mlir::moeq::io::TensorInfo *info = ckpt.find(name, &file);
  EXPECT_NE(info, nullptr) << name;
  Matrix m{info->shape[0], info->shape[1], {}};
  llvm::ArrayRef<uint8_t> bytes = file->data(*info);
  m.data.resize(m.rows * m.cols);
  for (int64_t i = 0; i < m.rows * m.cols; ++i) {
    uint32_t bits = uint32_t(bytes[2 * i]) << 16 | uint32_t(bytes[2 * i + 1]) << 24;
    std::memcpy(&m.data[i], &bits, 4);
  }
  return m;
}

struct SchemeParam {
  unsigned bits;
  int64_t group; // 0 = per channel
  bool symmetric;
  unsigned actBits = 16; // 8 / 4: w8a8 / w4a4
};

/// Per-token symmetric activation quantization, from the definition: scale
/// max|v| / (2^(bits-1) - 1) in float, codes rounded half to even.
std::vector<double> quantizeToken(std::vector<double> v, unsigned bits) {
  if (bits >= 16)
    return v;
  float amax = 0.f, qmax = float((1 << (bits - 1)) - 1);
  for (double &x : v) {
    x = double(float(x)); // the oracle holds activations in float
    amax = std::max(amax, std::fabs(float(x)));
  }
  if (amax == 0.f)
    return v;
  float scale = amax / qmax;
  for (double &x : v)
    x = double(std::min(std::max(std::nearbyint(float(x) / scale), -qmax), qmax) * scale);
  return v;
}

/// Round-to-nearest written from the definition, independent of lib/Quant.
/// Returns the dequantized matrix; codes, f16 scales and zeros go to the
/// out-parameters for comparison with the packed archive.
Matrix referenceRTN(const Matrix &w, SchemeParam s, std::vector<uint32_t> *codes,
                    std::vector<float> *scales, std::vector<float> *zeros) {
  int64_t width = s.group ? s.group : w.cols, groups = w.cols / width;
  Matrix out{w.rows, w.cols, std::vector<float>(w.data.size())};
  float maxCode = float((1u << s.bits) - 1);
  for (int64_t r = 0; r < w.rows; ++r)
    for (int64_t g = 0; g < groups; ++g) {
      float lo = INFINITY, hi = -INFINITY, absMax = 0;
      for (int64_t c = g * width; c < (g + 1) * width; ++c) {
        lo = std::min(lo, w.at(r, c));
        hi = std::max(hi, w.at(r, c));
        absMax = std::max(absMax, std::fabs(w.at(r, c)));
      }
      float scale, zero;
      if (s.bits == 1 && !s.symmetric) {
        // Binarisation: code = [w >= mean], value = mean -+ mean|w - mean|.
        double mean = 0, dev = 0;
        for (int64_t c = g * width; c < (g + 1) * width; ++c)
          mean += w.at(r, c);
        mean /= double(width);
        for (int64_t c = g * width; c < (g + 1) * width; ++c)
          dev += std::fabs(double(w.at(r, c)) - mean);
        dev /= double(width);
        scale = dev > 0 ? float(_Float16(float(2 * dev))) : 1.f;
        zero = float(_Float16(float(dev > 0 ? 0.5 - mean / double(scale) : 1.0 - mean)));
        scales->push_back(scale);
        zeros->push_back(zero);
        for (int64_t c = g * width; c < (g + 1) * width; ++c) {
          float q = w.at(r, c) / scale + zero >= 0.5f ? 1.f : 0.f;
          codes->push_back(uint32_t(q));
          out.data[r * w.cols + c] = (q - zero) * scale;
        }
        continue;
      }
      if (s.symmetric) {
        scale = absMax / float((1u << (s.bits - 1)) - 1);
        zero = float(1u << (s.bits - 1));
      } else {
        scale = (hi - lo) / maxCode;
      }
      if (!(scale > 0))
        scale = 1;
      scale = float(_Float16(scale)); // stored as f16
      if (!s.symmetric)
        zero = std::nearbyint(-lo / scale);
      scales->push_back(scale);
      zeros->push_back(zero);
      for (int64_t c = g * width; c < (g + 1) * width; ++c) {
        float q = std::clamp(std::nearbyint(w.at(r, c) / scale) + zero, 0.f, maxCode);
        codes->push_back(uint32_t(q));
        out.data[r * w.cols + c] = (q - zero) * scale;
      }
    }
  return out;
}

/// Reads code `c` of row `r` from the compiler's packed bit stream.
uint32_t packedCode(llvm::ArrayRef<uint8_t> bytes, int64_t wordsPerRow, unsigned bits,
                    int64_t r, int64_t c) {
  uint32_t code = 0;
  for (unsigned b = 0; b < bits; ++b) {
    uint64_t bit = uint64_t(r) * wordsPerRow * 32 + uint64_t(c) * bits + b;
    code |= uint32_t((bytes[bit / 8] >> (bit % 8)) & 1) << b;
  }
  return code;
}

float readF16(llvm::ArrayRef<uint8_t> bytes, int64_t i) {
  _Float16 h;
  std::memcpy(&h, bytes.data() + 2 * i, 2);
  return float(h);
}

struct Expert {
  Matrix gate, up, down;
};

/// softmax -> top-k (lowest index wins ties) -> renormalise -> experts.
std::vector<double> referenceMoE(const std::vector<float> &x, const Matrix &router,
                                 const std::vector<Expert> &experts, double *minMargin,
                                 unsigned actBits = 16) {
  std::vector<double> y(kTokens * kHidden, 0.0);
  *minMargin = INFINITY;
  for (int64_t t = 0; t < kTokens; ++t) {
    const float *xt = &x[t * kHidden];
    std::vector<double> scores(kExperts);
    double maxLogit = -INFINITY, sum = 0;
    for (int64_t e = 0; e < kExperts; ++e) {
      double l = 0;
      for (int64_t h = 0; h < kHidden; ++h)
        l += double(xt[h]) * router.at(e, h);
      scores[e] = l;
      maxLogit = std::max(maxLogit, l);
    }
    for (double &s : scores)
      sum += (s = std::exp(s - maxLogit));
    for (double &s : scores)
      s /= sum;
    std::vector<int64_t> order(kExperts);
    for (int64_t e = 0; e < kExperts; ++e)
      order[e] = e;
    std::stable_sort(order.begin(), order.end(),
                     [&](int64_t a, int64_t b) { return scores[a] > scores[b]; });
    *minMargin = std::min(*minMargin, scores[order[kTopK - 1]] - scores[order[kTopK]]);
    double selected = 0;
    for (int64_t j = 0; j < kTopK; ++j)
      selected += scores[order[j]];
    for (int64_t j = 0; j < kTopK; ++j) {
      const Expert &ex = experts[order[j]];
      double weight = scores[order[j]] / selected;
      std::vector<double> in = quantizeToken(std::vector<double>(xt, xt + kHidden), actBits);
      std::vector<double> act(kInter);
      for (int64_t i = 0; i < kInter; ++i) {
        double g = 0, u = 0;
        for (int64_t h = 0; h < kHidden; ++h) {
          g += in[h] * ex.gate.at(i, h);
          u += in[h] * ex.up.at(i, h);
        }
        act[i] = g / (1 + std::exp(-g)) * u;
      }
      act = quantizeToken(act, actBits);
      for (int64_t h = 0; h < kHidden; ++h) {
        double d = 0;
        for (int64_t i = 0; i < kInter; ++i)
          d += act[i] * ex.down.at(h, i);
        y[t * kHidden + h] += weight * d;
      }
    }
  }
  return y;
}

class CPUOracleTest : public ::testing::TestWithParam<SchemeParam> {
protected:
  void SetUp() override {
    ASSERT_FALSE(llvm::sys::fs::createUniqueDirectory("moeq-oracle", tempDir));
    modelDir = (tempDir + "/model").str();
    mlir::moeq::io::SyntheticMixtralOptions options;
    options.layers = 1;
    options.hidden = kHidden;
    options.intermediate = kInter;
    options.experts = kExperts;
    options.topK = kTopK;
    options.seed = 7;
    llvm::Error err = mlir::moeq::io::writeSyntheticMixtral(modelDir, options);
    ASSERT_FALSE(bool(err)) << llvm::toString(std::move(err));
    moeq::registerAllMoEQDependencies(registry);
    std::mt19937 gen(11);
    std::normal_distribution<float> normal(0.f, 1.f);
    x.resize(kTokens * kHidden);
    for (float &v : x)
      v = normal(gen);
  }
  void TearDown() override { llvm::sys::fs::remove_directories(tempDir); }

  /// Runs moe_layer_0 of `module` on the CPU.
  std::vector<float> runOnCPU(ModuleOp module) {
    auto runner = moeq::CPULayerRunner::create(module);
    EXPECT_TRUE(succeeded(runner));
    if (failed(runner))
      return {};
    auto y = (*runner)->run("moe_layer_0", x, kTokens);
    EXPECT_TRUE(succeeded(y));
    return succeeded(y) ? *y : std::vector<float>();
  }

  llvm::SmallString<128> tempDir;
  std::string modelDir;
  DialectRegistry registry;
  std::vector<float> x;
};

double maxAbsDiff(const std::vector<float> &a, const std::vector<double> &b) {
  double diff = 0;
  for (size_t i = 0; i < a.size(); ++i)
    diff = std::max(diff, std::fabs(double(a[i]) - b[i]));
  return diff;
}

TEST_P(CPUOracleTest, QuantizedLayerMatchesReference) {
  SchemeParam scheme = GetParam();
  MLIRContext context(registry);
  OwningOpRef<ModuleOp> module = moeq::importHFCheckpoint(modelDir, &context);
  ASSERT_TRUE(module);
  std::string packedPath = (tempDir + "/packed.safetensors").str();
  PassManager pm(&context);
  moeq::AssignUniformSchemeOptions assign;
  assign.weightBits = scheme.bits;
  assign.groupSize = scheme.group;
  assign.symmetric = scheme.symmetric;
  assign.actBits = scheme.actBits;
  pm.addPass(moeq::createAssignUniformScheme(assign));
  moeq::MaterializeQuantizedParamsOptions materialize;
  materialize.outputPath = packedPath;
  pm.addPass(moeq::createMaterializeQuantizedParams(materialize));
  ASSERT_TRUE(succeeded(pm.run(*module)));

  auto ckpt = mlir::moeq::io::Checkpoint::open(modelDir);
  ASSERT_TRUE(bool(ckpt));
  auto packed = mlir::moeq::io::Checkpoint::open(packedPath);
  ASSERT_TRUE(bool(packed));
  std::string prefix = "model.layers.0.block_sparse_moe.";
  Matrix router = readBF16(**ckpt, prefix + "gate.weight");
  std::vector<Expert> experts(kExperts), original(kExperts);
  int64_t mismatches = 0, checked = 0;
  for (int64_t e = 0; e < kExperts; ++e) {
    for (auto [linear, slot] : {std::pair<const char *, Matrix Expert::*>{"w1", &Expert::gate},
                                {"w3", &Expert::up},
                                {"w2", &Expert::down}}) {
      std::string name = prefix + "experts." + std::to_string(e) + "." + linear + ".weight";
      Matrix w = readBF16(**ckpt, name);
      original[e].*slot = w;
      std::vector<uint32_t> codes;
      std::vector<float> scales, zeros;
      experts[e].*slot = referenceRTN(w, scheme, &codes, &scales, &zeros);
      // The packed archive holds exactly these codes, scales and zeros.
      auto qweight = (*packed)->data(name + ".qweight");
      auto scaleBytes = (*packed)->data(name + ".scales");
      ASSERT_TRUE(bool(qweight) && bool(scaleBytes)) << name;
      int64_t wordsPerRow = w.cols * scheme.bits / 32;
      int64_t groups = int64_t(scales.size()) / w.rows;
      for (int64_t r = 0; r < w.rows; ++r)
        for (int64_t c = 0; c < w.cols; ++c, ++checked)
          mismatches += packedCode(*qweight, wordsPerRow, scheme.bits, r, c) !=
                        codes[r * w.cols + c];
      for (size_t i = 0; i < scales.size(); ++i)
        EXPECT_EQ(readF16(*scaleBytes, i), scales[i]) << name << " group " << i;
      if (!scheme.symmetric) {
        auto zeroBytes = (*packed)->data(name + ".zeros");
        ASSERT_TRUE(bool(zeroBytes)) << name;
        for (size_t i = 0; i < zeros.size(); ++i)
          EXPECT_EQ(readF16(*zeroBytes, i), zeros[i]) << name << " group " << i;
      } else {
        EXPECT_EQ((*packed)->find(name + ".zeros"), nullptr);
      }
      (void)groups;
    }
  }
  EXPECT_EQ(mismatches, 0) << "of " << checked << " codes";

  double margin;
  std::vector<double> reference = referenceMoE(x, router, experts, &margin, scheme.actBits);
  ASSERT_GT(margin, 1e-4) << "routing too close to a tie for a stable comparison";
  std::vector<float> y = runOnCPU(*module);
  ASSERT_EQ(y.size(), reference.size());
  double err = maxAbsDiff(y, reference);
  double scale = 0;
  for (double v : reference)
    scale = std::max(scale, std::fabs(v));
  // f32 accumulation over K <= 256 against double: ~1e-6 relative.
  EXPECT_LT(err, 1e-5 * std::max(1.0, scale))
      << "max |cpu - reference| = " << err << ", max |reference| = " << scale;
  // The layer really ran on the quantized weights: the float model's output
  // is far from it (quantization error >> numerical tolerance).
  double floatMargin;
  double quantEffect = maxAbsDiff(y, referenceMoE(x, router, original, &floatMargin));
  EXPECT_GT(quantEffect, 100 * err) << "quantization changed the output by only " << quantEffect;
  // Weight-activation schemes: the activations were quantized too (the
  // weight-only reference on the same quantized weights is far off).
  if (scheme.actBits < 16) {
    double weightOnlyMargin;
    double actEffect =
        maxAbsDiff(y, referenceMoE(x, router, experts, &weightOnlyMargin, /*actBits=*/16));
    EXPECT_GT(actEffect, 10 * err) << "activation quantization changed the output by only "
                                   << actEffect;
  }
  ::testing::Test::RecordProperty("max_abs_error", std::to_string(err));
  ::testing::Test::RecordProperty("quantization_effect", std::to_string(quantEffect));
}

INSTANTIATE_TEST_SUITE_P(Schemes, CPUOracleTest,
                         ::testing::Values(SchemeParam{4, 128, false},
                                           SchemeParam{3, 32, false},
                                           SchemeParam{2, 64, true},
                                           SchemeParam{8, 0, true},
                                           SchemeParam{1, 32, false},
                                           SchemeParam{8, 0, true, 8},
                                           SchemeParam{4, 128, true, 4}),
                         [](const auto &info) {
                           const SchemeParam &p = info.param;
                           return "w" + std::to_string(p.bits) + "a" + std::to_string(p.actBits) +
                                  "g" + std::to_string(p.group) +
                                  (p.symmetric ? "sym" : "asym");
                         });

/// Reference dequantization with group-wise widths (SliM-LLM): every
/// column group quantized alone at its width, by referenceRTN.
Matrix referenceGroupBits(const Matrix &w, int64_t group, const std::vector<unsigned> &bits) {
  Matrix out{w.rows, w.cols, std::vector<float>(w.data.size())};
  for (int64_t g = 0; g < int64_t(bits.size()); ++g) {
    Matrix slice{w.rows, group, {}};
    for (int64_t r = 0; r < w.rows; ++r)
      for (int64_t c = 0; c < group; ++c)
        slice.data.push_back(w.at(r, g * group + c));
    std::vector<uint32_t> codes;
    std::vector<float> scales, zeros;
    Matrix deq = referenceRTN(slice, SchemeParam{bits[g], group, false}, &codes, &scales, &zeros);
    for (int64_t r = 0; r < w.rows; ++r)
      for (int64_t c = 0; c < group; ++c)
        out.data[r * w.cols + g * group + c] = deq.at(r, c);
  }
  return out;
}

// Group-wise widths through the whole CPU path: 3-bit g32 weights whose
// groups get 2/4/3/3 (and 4/2/3/3) bits, packed by the materialization,
// unpacked by the oracle's dequantization.
TEST_F(CPUOracleTest, GroupBitsLayerMatchesReference) {
  MLIRContext context(registry);
  OwningOpRef<ModuleOp> module = moeq::importHFCheckpoint(modelDir, &context);
  ASSERT_TRUE(module);
  auto widthsFor = [](int64_t cols) {
    std::vector<unsigned> widths;
    for (int64_t g = 0; g < cols / 32; ++g)
      widths.push_back(std::vector<unsigned>{2, 4, 3, 3, 4, 2, 3, 3}[g % 8]);
    return widths;
  };
  PassManager pm(&context);
  moeq::AssignUniformSchemeOptions assign;
  assign.weightBits = 3;
  assign.groupSize = 32;
  pm.addPass(moeq::createAssignUniformScheme(assign));
  ASSERT_TRUE(succeeded(pm.run(*module)));
  module->walk([&](moeq::QuantizeOp op) {
    moeq::PackedWeightType type = op.getResult().getType();
    std::vector<unsigned> widths = widthsFor(type.getInputDim());
    SmallVector<int64_t> groupBits(widths.begin(), widths.end());
    op.getResult().setType(moeq::PackedWeightType::get(&context, type.getShape(),
                                                       type.getScheme(), groupBits));
  });
  PassManager materialize(&context);
  moeq::MaterializeQuantizedParamsOptions options;
  options.outputPath = (tempDir + "/packed.safetensors").str();
  materialize.addPass(moeq::createMaterializeQuantizedParams(options));
  ASSERT_TRUE(succeeded(materialize.run(*module)));

  auto ckpt = mlir::moeq::io::Checkpoint::open(modelDir);
  ASSERT_TRUE(bool(ckpt));
  std::string prefix = "model.layers.0.block_sparse_moe.";
  Matrix router = readBF16(**ckpt, prefix + "gate.weight");
  std::vector<Expert> mixed(kExperts), uniform(kExperts);
  for (int64_t e = 0; e < kExperts; ++e)
    for (auto [linear, slot] : {std::pair<const char *, Matrix Expert::*>{"w1", &Expert::gate},
                                {"w3", &Expert::up},
                                {"w2", &Expert::down}}) {
      Matrix w = readBF16(**ckpt, prefix + "experts." + std::to_string(e) + "." + linear +
                                      ".weight");
      mixed[e].*slot = referenceGroupBits(w, 32, widthsFor(w.cols));
      uniform[e].*slot = referenceGroupBits(w, 32, std::vector<unsigned>(w.cols / 32, 3));
    }
  double margin;
  std::vector<double> reference = referenceMoE(x, router, mixed, &margin);
  ASSERT_GT(margin, 1e-4);
  std::vector<float> y = runOnCPU(*module);
  ASSERT_EQ(y.size(), reference.size());
  double err = maxAbsDiff(y, reference), scale = 0;
  for (double v : reference)
    scale = std::max(scale, std::fabs(v));
  EXPECT_LT(err, 1e-5 * std::max(1.0, scale));
  // The widths mattered: uniform 3-bit weights give a visibly different output.
  double uniformMargin;
  EXPECT_GT(maxAbsDiff(y, referenceMoE(x, router, uniform, &uniformMargin)), 100 * err);
}

// Without quantization the layer equals the reference on the original
// weights, and quantization visibly changes the output.
TEST_F(CPUOracleTest, FloatLayerMatchesReference) {
  MLIRContext context(registry);
  OwningOpRef<ModuleOp> module = moeq::importHFCheckpoint(modelDir, &context);
  ASSERT_TRUE(module);
  auto ckpt = mlir::moeq::io::Checkpoint::open(modelDir);
  ASSERT_TRUE(bool(ckpt));
  std::string prefix = "model.layers.0.block_sparse_moe.";
  Matrix router = readBF16(**ckpt, prefix + "gate.weight");
  std::vector<Expert> experts(kExperts);
  for (int64_t e = 0; e < kExperts; ++e) {
    std::string base = prefix + "experts." + std::to_string(e) + ".";
    experts[e] = {readBF16(**ckpt, base + "w1.weight"), readBF16(**ckpt, base + "w3.weight"),
                  readBF16(**ckpt, base + "w2.weight")};
  }
  double margin;
  std::vector<double> reference = referenceMoE(x, router, experts, &margin);
  std::vector<float> y = runOnCPU(*module);
  ASSERT_EQ(y.size(), reference.size());
  EXPECT_LT(maxAbsDiff(y, reference), 1e-5);
}

} // namespace
