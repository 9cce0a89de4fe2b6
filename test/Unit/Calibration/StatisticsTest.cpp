//===- StatisticsTest.cpp - calibration statistics vs brute force ---------===//
#include "moeq/Calibration/Statistics.h"
#include "moeq/IO/SafeTensors.h"

#include "llvm/Support/FileSystem.h"
#include "gtest/gtest.h"

#include <cmath>
#include <cstring>
#include <random>

using namespace mlir::moeq;
using namespace mlir::moeq::calib;

namespace {

/// A random batch with consistent routing: every token picks `topK`
/// distinct experts; rows sorted by expert, stable in slot order.
struct RandomBatch {
  int64_t tokens, topK, hidden, inter, experts;
  std::vector<float> x, weights, act, sharedAct, gate;
  std::vector<int32_t> indices, positions, offsets;

  RandomBatch(int64_t tokens, int64_t topK, int64_t hidden, int64_t inter, int64_t experts,
              int64_t shared, unsigned seed)
      : tokens(tokens), topK(topK), hidden(hidden), inter(inter), experts(experts) {
    std::mt19937 gen(seed);
    std::normal_distribution<float> normal;
    std::uniform_real_distribution<float> uniform(0.05f, 1.f);
    for (int64_t i = 0; i < tokens * hidden; ++i)
      x.push_back(normal(gen));
    for (int64_t t = 0; t < tokens; ++t) {
      std::vector<int32_t> perm(experts);
      for (int64_t e = 0; e < experts; ++e)
        perm[e] = e;
      std::shuffle(perm.begin(), perm.end(), gen);
      for (int64_t j = 0; j < topK; ++j) {
        indices.push_back(perm[j]);
        weights.push_back(uniform(gen));
      }
    }
    offsets.assign(experts + 1, 0);
    for (int32_t e : indices)
      ++offsets[e + 1];
    for (int64_t e = 0; e < experts; ++e)
      offsets[e + 1] += offsets[e];
    std::vector<int32_t> cursor(offsets.begin(), offsets.end() - 1);
    positions.assign(tokens * topK, 0);
    for (int64_t slot = 0; slot < tokens * topK; ++slot)
      positions[cursor[indices[slot]]++] = int32_t(slot);
    for (int64_t i = 0; i < tokens * topK * inter; ++i)
      act.push_back(normal(gen));
    for (int64_t i = 0; i < tokens * shared; ++i)
      sharedAct.push_back(normal(gen));
    for (int64_t i = 0; i < tokens; ++i)
      gate.push_back(normal(gen));
  }

  LayerBatch view() const {
    return {tokens, topK, x, indices, weights, positions, offsets, act, sharedAct, gate};
  }
};

/// The bytes LayerStatistics writes for tensor `name` (empty on error).
std::string written(LayerStatistics &stats, llvm::StringRef name) {
  std::string bytes;
  llvm::raw_string_ostream os(bytes);
  if (llvm::Error err = stats.writeTensor(name, os)) {
    ADD_FAILURE() << llvm::toString(std::move(err));
    return "";
  }
  return bytes;
}

TEST(CalibrationStatisticsTest, MatchesBruteForce) {
  LayerShape shape{12, 20, 5, 0, false};
  RandomBatch b1(40, 2, 12, 20, 5, 0, 1), b2(17, 2, 12, 20, 5, 0, 2);
  LayerStatistics stats(shape);
  ASSERT_FALSE(bool(stats.add(b1.view())));
  ASSERT_FALSE(bool(stats.add(b2.view())));
  EXPECT_EQ(stats.tokens(), 57);
  int64_t total = 0;
  for (int64_t c : stats.expertCounts())
    total += c;
  EXPECT_EQ(total, 57 * 2);

  // Brute force over (token, slot) pairs: sum c x x^T for slots choosing e,
  // and the same for the slot's down-projection input h.
  for (int64_t e = 0; e < 5; ++e) {
    std::vector<double> plain(144, 0.0), weighted(144, 0.0);
    std::vector<double> down(400, 0.0), downWeighted(400, 0.0);
    double affinity = 0;
    for (const RandomBatch *b : {&b1, &b2}) {
      for (int64_t slot = 0; slot < b->tokens * b->topK; ++slot) {
        if (b->indices[slot] != e)
          continue;
        double c = b->weights[slot];
        affinity += c;
        const float *xt = &b->x[(slot / b->topK) * 12];
        for (int i = 0; i < 12; ++i)
          for (int j = 0; j < 12; ++j) {
            plain[i * 12 + j] += double(xt[i]) * xt[j];
            weighted[i * 12 + j] += c * double(xt[i]) * xt[j];
          }
      }
      // Sorted row r holds slot positions[r]'s activation.
      for (int64_t r = b->offsets[e]; r < b->offsets[e + 1]; ++r) {
        double c = b->weights[b->positions[r]];
        const float *hr = &b->act[r * 20];
        for (int i = 0; i < 20; ++i)
          for (int j = 0; j < 20; ++j) {
            down[i * 20 + j] += double(hr[i]) * hr[j];
            downWeighted[i * 20 + j] += c * double(hr[i]) * hr[j];
          }
      }
    }
    llvm::Expected<ExpertGrams> grams = stats.expertGrams(e);
    ASSERT_TRUE(bool(grams)) << llvm::toString(grams.takeError());
    for (int i = 0; i < 144; ++i) {
      EXPECT_NEAR(grams->in[i], plain[i], 1e-9 * (1 + std::fabs(plain[i]))) << e << " " << i;
      EXPECT_NEAR(grams->inWeighted[i], weighted[i], 1e-9 * (1 + std::fabs(weighted[i])))
          << e << " " << i;
    }
    for (int i = 0; i < 400; ++i) {
      EXPECT_NEAR(grams->down[i], down[i], 1e-9 * (1 + std::fabs(down[i]))) << e << " " << i;
      EXPECT_NEAR(grams->downWeighted[i], downWeighted[i],
                  1e-9 * (1 + std::fabs(downWeighted[i])))
          << e << " " << i;
    }
    // The bytes the writer gets are the same matrices.
    std::string bytes = written(stats, "experts." + std::to_string(e) + ".gram_down_weighted");
    ASSERT_EQ(bytes.size(), 400 * sizeof(double));
    EXPECT_EQ(std::memcmp(bytes.data(), grams->downWeighted.data(), bytes.size()), 0);
    std::string sums = written(stats, "affinity_sum");
    ASSERT_EQ(sums.size(), 5 * sizeof(double));
    double got;
    std::memcpy(&got, sums.data() + e * sizeof(double), sizeof(double));
    EXPECT_NEAR(got, affinity, 1e-9 * (1 + affinity));
  }
  std::string ignored;
  llvm::raw_string_ostream os(ignored);
  EXPECT_EQ(llvm::toString(stats.writeTensor("experts.5.gram_in", os)),
            "no statistics tensor 'experts.5.gram_in'");
}

TEST(CalibrationStatisticsTest, ScratchDirectoryMustExist) {
  LayerShape shape{8, 16, 3, 0, false};
  RandomBatch batch(10, 1, 8, 16, 3, 0, 5);
  LayerStatistics stats(shape, "/nonexistent/moeq-scratch");
  llvm::Error err = stats.add(batch.view());
  ASSERT_TRUE(bool(err));
  EXPECT_NE(llvm::toString(std::move(err)).find("cannot create a scratch file in '/nonexistent/moeq-scratch'"),
            std::string::npos);
}

TEST(CalibrationStatisticsTest, WritesDocumentedTensors) {
  LayerShape shape{8, 16, 3, 24, true};
  RandomBatch batch(10, 1, 8, 16, 3, 24, 3);
  LayerStatistics stats(shape);
  ASSERT_FALSE(bool(stats.add(batch.view())));
  std::map<int64_t, LayerStatistics> layers;
  layers.emplace(4, std::move(stats));
  llvm::SmallString<128> path;
  ASSERT_FALSE(llvm::sys::fs::createTemporaryFile("stats", "safetensors", path));
  ASSERT_FALSE(bool(writeStatistics(path, {{"format", "moeq-calibration-stats"}}, layers)));
  auto file = io::SafeTensorsFile::open(path);
  ASSERT_TRUE(bool(file));
  for (const char *name :
       {"layers.4.tokens", "layers.4.expert_counts", "layers.4.affinity_sum",
        "layers.4.gram_all", "layers.4.experts.2.gram_in", "layers.4.experts.2.gram_down_weighted",
        "layers.4.shared.gram_down", "layers.4.shared.gram_in_weighted"})
    EXPECT_NE((*file)->find(name), nullptr) << name;
  const io::TensorInfo *down = (*file)->find("layers.4.shared.gram_down");
  ASSERT_NE(down, nullptr);
  EXPECT_EQ(down->shape, (std::vector<int64_t>{24, 24}));
  EXPECT_EQ(down->dtype, io::DType::F64);
  // Written matrices are symmetric.
  auto values = (*file)->readAsFloat("layers.4.gram_all");
  ASSERT_TRUE(bool(values));
  for (int i = 0; i < 8; ++i)
    for (int j = 0; j < 8; ++j)
      EXPECT_EQ((*values)[i * 8 + j], (*values)[j * 8 + i]);
  llvm::sys::fs::remove(path);
}

TEST(CalibrationStatisticsTest, RejectsInconsistentBatches) {
  LayerShape shape{8, 16, 3, 0, false};
  RandomBatch batch(10, 1, 8, 16, 3, 0, 4);
  LayerStatistics stats(shape);
  LayerBatch bad = batch.view();
  bad.offsets = llvm::ArrayRef<int32_t>(batch.offsets).drop_back();
  llvm::Error err = stats.add(bad);
  ASSERT_TRUE(bool(err));
  EXPECT_NE(llvm::toString(std::move(err)).find("offsets"), std::string::npos);
}

} // namespace
