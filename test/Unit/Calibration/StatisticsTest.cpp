//===- StatisticsTest.cpp - calibration statistics vs brute force ---------===//
#include "moeq/Calibration/Statistics.h"
#include "moeq/Calibration/StatisticsFiles.h"
#include "moeq/IO/SafeTensors.h"

#include "llvm/Support/FileSystem.h"
#include "llvm/Support/Path.h"
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

/// A fresh temporary directory, removed with its files at the end.
struct TempDir {
  llvm::SmallString<128> path;
  TempDir() { EXPECT_FALSE(llvm::sys::fs::createUniqueDirectory("moeq-stats-test", path)); }
  ~TempDir() { llvm::sys::fs::remove_directories(path); }
  std::string operator/(llvm::StringRef name) const {
    llvm::SmallString<128> p(path);
    llvm::sys::path::append(p, name);
    return p.str().str();
  }
};

/// Statistics of one random layer (`seed`) for format tests.
llvm::Expected<LayerStatistics> randomLayer(const LayerShape &shape, unsigned seed) {
  RandomBatch batch(30, 2, shape.hidden, shape.intermediate, shape.experts,
                    shape.sharedIntermediate, seed);
  LayerStatistics stats(shape);
  if (llvm::Error err = stats.add(batch.view()))
    return std::move(err);
  return stats;
}

ModelDescription describe(const LayerShape &shape, std::vector<int64_t> moeLayers) {
  return {"mixtral", 8, shape.hidden, shape.intermediate, shape.sharedIntermediate,
          shape.experts, 2, std::move(moeLayers)};
}

std::string errorText(llvm::Error err) { return llvm::toString(std::move(err)); }

TEST(CalibrationStatisticsTest, Format2DirectoryReadsOnlyTheLayersAsked) {
  LayerShape shape{12, 20, 3, 16, true};
  shape.samplesPerExpert = 4;
  TempDir tmp;
  std::string dir = tmp / "stats";
  Metadata index = indexMetadata(describe(shape, {4, 7}));
  ASSERT_FALSE(bool(writeStatisticsDirectory(
      dir, index, {{"producer", "test"}, {"tokens", "30"}}, shape, {4, 7},
      [&](int64_t layer) { return randomLayer(shape, unsigned(layer)); })));
  EXPECT_TRUE(llvm::sys::fs::exists(tmp / "stats/stats.json"));
  EXPECT_TRUE(llvm::sys::fs::exists(tmp / "stats/layer-004.safetensors"));
  EXPECT_TRUE(llvm::sys::fs::exists(tmp / "stats/layer-007.safetensors"));

  // The stored layout: F32 packed triangles, F32 samples, F64 weights.
  auto file = io::SafeTensorsFile::open(tmp / "stats/layer-004.safetensors");
  ASSERT_TRUE(bool(file)) << llvm::toString(file.takeError());
  const io::TensorInfo *gram = (*file)->find("layers.4.experts.2.gram_down");
  ASSERT_NE(gram, nullptr);
  EXPECT_EQ(gram->dtype, io::DType::F32);
  EXPECT_EQ(gram->shape, (std::vector<int64_t>{20 * 21 / 2}));
  EXPECT_EQ((*file)->find("layers.4.experts.0.samples")->dtype, io::DType::F32);
  EXPECT_EQ((*file)->find("layers.4.experts.0.sample_weights")->dtype, io::DType::F64);
  EXPECT_EQ((*file)->find("layers.4.shared.gram_in_weighted")->shape,
            (std::vector<int64_t>{12 * 13 / 2}));
  EXPECT_EQ((*file)->metadata().at("layer"), "4");
  EXPECT_EQ((*file)->metadata().at("hidden_size"), "12");
  EXPECT_EQ((*file)->metadata().at("producer"), "test");
  // The data section is what layerStatisticsBytes says.
  uint64_t size = 0;
  ASSERT_FALSE(llvm::sys::fs::file_size(tmp / "stats/layer-004.safetensors", size));
  EXPECT_EQ(size - (*file)->dataSectionOffset(), layerStatisticsBytes(shape, 2));

  // Opening reads the index only; a tensor opens its layer's file only.
  auto reader = StatisticsReader::open(dir);
  ASSERT_TRUE(bool(reader)) << llvm::toString(reader.takeError());
  EXPECT_EQ((*reader)->version(), 2);
  EXPECT_EQ((*reader)->openedFiles(), 0u);
  EXPECT_EQ((*reader)->availableLayers(), (std::vector<int64_t>{4, 7}));
  auto dense = (*reader)->readFloat64("layers.7.experts.1.gram_in_weighted", {12, 12});
  ASSERT_TRUE(bool(dense)) << llvm::toString(dense.takeError());
  EXPECT_EQ((*reader)->openedFiles(), 1u);
  // The values: the float64 sums rounded once to float, mirrored.
  llvm::Expected<LayerStatistics> layer7 = randomLayer(shape, 7);
  ASSERT_TRUE(bool(layer7));
  llvm::Expected<ExpertGrams> grams = layer7->expertGrams(1);
  ASSERT_TRUE(bool(grams));
  for (int i = 0; i < 144; ++i)
    EXPECT_EQ((*dense)[i], double(float(grams->inWeighted[i]))) << i;
  EXPECT_FALSE(bool((*reader)->readFloat64("layers.7.expert_counts", {3}).takeError()));
  EXPECT_EQ((*reader)->openedFiles(), 1u);

  // A missing layer file fails only when that layer is read, naming it.
  ASSERT_FALSE(llvm::sys::fs::remove(tmp / "stats/layer-004.safetensors"));
  auto fresh = StatisticsReader::open(dir);
  ASSERT_TRUE(bool(fresh));
  EXPECT_FALSE(bool((*fresh)->readFloat64("layers.7.gram_all", {12, 12}).takeError()));
  std::string missing = errorText((*fresh)->find("layers.4.gram_all").takeError());
  EXPECT_NE(missing.find("no statistics for layer 4"), std::string::npos) << missing;
  EXPECT_NE(missing.find("layer-004.safetensors does not exist (present: layers 7"),
            std::string::npos)
      << missing;
  EXPECT_EQ((*fresh)->openedFiles(), 1u);
  // A layer the model does not have as a MoE layer.
  std::string dense0 = errorText((*fresh)->find("layers.0.gram_all").takeError());
  EXPECT_NE(dense0.find("layer 0 is not a MoE layer"), std::string::npos) << dense0;
  // Another layer's file under this layer's name.
  ASSERT_FALSE(llvm::sys::fs::copy_file(tmp / "stats/layer-007.safetensors",
                                        tmp / "stats/layer-004.safetensors"));
  std::string swapped = errorText((*fresh)->find("layers.4.gram_all").takeError());
  EXPECT_NE(swapped.find("layer-004.safetensors holds the statistics of layer '7'"),
            std::string::npos)
      << swapped;
}

TEST(CalibrationStatisticsTest, Format2RefusesAnotherModel) {
  LayerShape shape{8, 16, 3, 0, false};
  TempDir tmp;
  std::string dir = tmp / "stats";
  auto compute = [&](int64_t layer) { return randomLayer(shape, 1); };
  ASSERT_FALSE(bool(writeStatisticsDirectory(dir, indexMetadata(describe(shape, {1, 2})), {},
                                             shape, {1}, compute)));
  // A second slice of the same model goes into the same directory.
  ASSERT_FALSE(bool(writeStatisticsDirectory(dir, indexMetadata(describe(shape, {1, 2})), {},
                                             shape, {2}, compute)));
  auto reader = StatisticsReader::open(dir);
  ASSERT_TRUE(bool(reader));
  EXPECT_EQ((*reader)->availableLayers(), (std::vector<int64_t>{1, 2}));
  // Another model: refused before any work, naming the key.
  LayerShape wide = shape;
  wide.hidden = 10;
  bool computed = false;
  std::string other = errorText(writeStatisticsDirectory(
      dir, indexMetadata(describe(wide, {1, 2})), {}, wide, {1}, [&](int64_t) {
        computed = true;
        return randomLayer(wide, 1);
      }));
  EXPECT_FALSE(computed);
  EXPECT_NE(other.find("holds statistics of another model or format: hidden_size is '8'"),
            std::string::npos)
      << other;
  // The reader's model check names the directory and the key.
  std::string check = errorText((*reader)->checkModel(describe(wide, {1, 2}), "wide-model"));
  EXPECT_NE(check.find(dir + " was computed for another model: hidden_size is 8, wide-model "
                             "has 10"),
            std::string::npos)
      << check;
  EXPECT_NE(errorText((*reader)->checkModel(describe(shape, {1, 2, 3}), "m"))
                .find("moe_layers is 1,2, m has 1,2,3"),
            std::string::npos);
  EXPECT_FALSE(bool((*reader)->checkModel(describe(shape, {1, 2}), "m")));
  // A non-empty directory that is not a statistics directory, and a file.
  ASSERT_FALSE(llvm::sys::fs::create_directories(tmp / "other"));
  { std::error_code ec; llvm::raw_fd_ostream os(tmp / "other/notes.txt", ec); os << "x"; }
  EXPECT_NE(errorText(prepareStatisticsDirectory(tmp / "other", indexMetadata(describe(shape, {1}))))
                .find("non-empty directory without a statistics index"),
            std::string::npos);
  EXPECT_NE(errorText(prepareStatisticsDirectory(tmp / "other/notes.txt",
                                                 indexMetadata(describe(shape, {1}))))
                .find("exists and is not a directory"),
            std::string::npos);
}

TEST(CalibrationStatisticsTest, ConvertsFormat1) {
  LayerShape shape{8, 16, 3, 24, true};
  shape.samplesPerExpert = 3;
  TempDir tmp;
  std::map<int64_t, LayerStatistics> layers;
  for (int64_t layer : {1, 3}) {
    llvm::Expected<LayerStatistics> stats = randomLayer(shape, unsigned(layer));
    ASSERT_TRUE(bool(stats));
    layers.emplace(layer, std::move(*stats));
  }
  std::string v1Path = tmp / "v1.safetensors";
  Metadata v1Meta{{"format", "moeq-calibration-stats"}, {"version", "1"},
                  {"producer", "test"}, {"moe_layers", "1,3"}, {"hidden_size", "8"},
                  {"moe_intermediate_size", "16"}, {"num_experts", "3"}};
  ASSERT_FALSE(bool(writeStatistics(v1Path, v1Meta, layers)));
  uint64_t v1Size = 0;
  ASSERT_FALSE(llvm::sys::fs::file_size(v1Path, v1Size));
  auto v1 = StatisticsReader::open(v1Path);
  ASSERT_TRUE(bool(v1)) << llvm::toString(v1.takeError());
  EXPECT_EQ((*v1)->version(), 1);
  const io::SafeTensorsFile *v1File = nullptr;
  ASSERT_TRUE(bool((*v1)->find("layers.1.tokens", &v1File)));
  EXPECT_EQ(v1Size - v1File->dataSectionOffset(), 2 * layerStatisticsBytes(shape, 1));
  std::string dir = tmp / "v2";
  ASSERT_FALSE(bool(convertToDirectory(**v1, dir, indexMetadata(describe(shape, {1, 3})), {1, 3})));
  auto v2 = StatisticsReader::open(dir);
  ASSERT_TRUE(bool(v2)) << llvm::toString(v2.takeError());
  for (auto [name, shapeOf] : std::vector<std::pair<std::string, std::vector<int64_t>>>{
           {"layers.3.experts.2.gram_down", {16, 16}},
           {"layers.1.shared.gram_down_weighted", {24, 24}},
           {"layers.3.experts.0.samples", {3, 8}},
           {"layers.1.affinity_sum", {3}},
           {"layers.3.expert_counts", {3}}}) {
    auto a = (*v1)->readFloat64(name, shapeOf);
    auto b = (*v2)->readFloat64(name, shapeOf);
    ASSERT_TRUE(bool(a)) << llvm::toString(a.takeError());
    ASSERT_TRUE(bool(b)) << llvm::toString(b.takeError());
    ASSERT_EQ(a->size(), b->size());
    bool narrowed = llvm::StringRef(name).contains("gram") || llvm::StringRef(name).contains("samples");
    for (size_t i = 0; i < a->size(); ++i)
      EXPECT_EQ((*b)[i], narrowed ? double(float((*a)[i])) : (*a)[i]) << name << " " << i;
  }
  const io::SafeTensorsFile *layer1 = nullptr;
  ASSERT_TRUE(bool((*v2)->find("layers.1.tokens", &layer1)));
  EXPECT_EQ(layer1->metadata().at("producer"), "test (converted from version 1 by moeq-stats)");
  // A version 2 layer file given as if it were a version 1 file.
  EXPECT_NE(errorText(StatisticsReader::open(dir + "/layer-001.safetensors").takeError())
                .find("give its directory"),
            std::string::npos);
}

TEST(CalibrationStatisticsTest, AccumulatesInFloat64StoresFloat32) {
  // One token of 4096 and 100000 tokens of 1 in a one-expert layer: a
  // float32 running sum stays at 4096^2 = 2^24 (each +1 is half an ulp and
  // rounds away); the float64 sum is exact and exactly representable.
  LayerShape shape{2, 2, 1, 0, false};
  LayerStatistics stats(shape);
  auto addTokens = [&](int64_t tokens, float value) {
    std::vector<float> x(tokens * 2, value), weights(tokens, 1.0f), act(tokens * 2, value);
    std::vector<int32_t> indices(tokens, 0), positions(tokens), offsets{0, int32_t(tokens)};
    for (int64_t t = 0; t < tokens; ++t)
      positions[t] = int32_t(t);
    LayerBatch batch{tokens, 1, x, indices, weights, positions, offsets, act, {}, {}};
    return stats.add(batch);
  };
  ASSERT_FALSE(bool(addTokens(1, 4096.0f)));
  for (int i = 0; i < 10; ++i)
    ASSERT_FALSE(bool(addTokens(10000, 1.0f)));
  std::string bytes;
  llvm::raw_string_ostream os(bytes);
  ASSERT_FALSE(bool(stats.writeTensor("experts.0.gram_in", os, /*version=*/2)));
  ASSERT_EQ(bytes.size(), 3 * sizeof(float)); // packed [3]: (0,0) (0,1) (1,1)
  float stored[3];
  std::memcpy(stored, bytes.data(), sizeof(stored));
  float running = 0;
  for (int i = 0; i < 100001; ++i)
    running += i == 0 ? 4096.0f * 4096.0f : 1.0f;
  EXPECT_EQ(running, 16777216.0f);
  for (float value : stored)
    EXPECT_EQ(value, 16877216.0f);
}

TEST(CalibrationStatisticsTest, PackedReadsAndSizes) {
  // Packed [n(n+1)/2] reads as the full symmetric matrix.
  std::vector<float> packed{1, 2, 3, 4, 5, 6};
  llvm::ArrayRef<uint8_t> bytes(reinterpret_cast<const uint8_t *>(packed.data()), 24);
  auto full = decodeAsFloat64(io::DType::F32, {6}, bytes, {3, 3}, "g");
  ASSERT_TRUE(bool(full));
  EXPECT_EQ(*full, (std::vector<double>{1, 2, 3, 2, 4, 5, 3, 5, 6}));
  EXPECT_TRUE(isReadableAs(io::DType::F64, {4, 4}, {4, 4}));
  EXPECT_TRUE(isReadableAs(io::DType::F32, {10}, {4, 4}));
  EXPECT_FALSE(isReadableAs(io::DType::F32, {10}, {4, 5}));
  EXPECT_FALSE(isReadableAs(io::DType::I64, {10}, {4, 4}));
  EXPECT_FALSE(isReadableAs(io::DType::BF16, {4, 4}, {4, 4}));
  EXPECT_NE(errorText(decodeAsFloat64(io::DType::F32, {6}, bytes, {4, 4}, "g").takeError())
                .find("'g' is F32 [6], expected F64, F32 or I64 [4, 4] (or its packed upper "
                      "triangle [10])"),
            std::string::npos);
  // Corrupt values are refused, naming the tensor and the element.
  std::vector<float> corrupt{1, 2, 3, 4, std::nanf(""), 6};
  llvm::ArrayRef<uint8_t> corruptBytes(reinterpret_cast<const uint8_t *>(corrupt.data()), 24);
  EXPECT_NE(errorText(decodeAsFloat64(io::DType::F32, {6}, corruptBytes, {3, 3}, "g")
                          .takeError())
                .find("'g' holds NaN at element 4: the statistics are corrupt"),
            std::string::npos);
  corrupt[4] = INFINITY;
  EXPECT_NE(errorText(decodeAsFloat64(io::DType::F32, {6}, corruptBytes, {3, 3}, "g")
                          .takeError())
                .find("'g' holds an infinity at element 4"),
            std::string::npos);
  EXPECT_EQ(layerFileName(3), "layer-003.safetensors");
  EXPECT_EQ(layerFileName(1234), "layer-1234.safetensors");

  // The sizes docs/calibration-stats.md quotes (256 samples per expert).
  LayerShape mixtral{4096, 14336, 8, 0, false};
  mixtral.samplesPerExpert = 256;
  EXPECT_EQ(layerStatisticsBytes(mixtral, 1), 28655501448ull);
  EXPECT_EQ(layerStatisticsBytes(mixtral, 2), 7181262984ull);
  LayerShape deepseekV3{7168, 2048, 256, 2048, false};
  deepseekV3.samplesPerExpert = 256;
  // (With the shared expert's 256 samples: 8 * 256 * 7168 + 8 * 256 bytes
  // in format 1, 4 * 256 * 7168 + 8 * 256 in format 2.)
  EXPECT_EQ(layerStatisticsBytes(deepseekV3, 1), 231851169800ull);
  EXPECT_EQ(layerStatisticsBytes(deepseekV3, 2), 58915840008ull);
}

TEST(CalibrationStatisticsTest, LayerSelection) {
  auto parse = [](llvm::StringRef spec) {
    auto layers = parseLayerSelection(spec, 10);
    return layers ? *layers : std::vector<int64_t>{-1};
  };
  EXPECT_EQ(parse("2:5"), (std::vector<int64_t>{2, 3, 4}));
  EXPECT_EQ(parse("7,1:3, 8"), (std::vector<int64_t>{1, 2, 7, 8}));
  EXPECT_EQ(parse("8:"), (std::vector<int64_t>{8, 9}));
  EXPECT_EQ(parse(":2"), (std::vector<int64_t>{0, 1}));
  EXPECT_EQ(parse("3,3:5"), (std::vector<int64_t>{3, 4}));
  EXPECT_NE(errorText(parseLayerSelection("4:12", 10).takeError())
                .find("'4:12' is not a non-empty range of the model's layers 0..9"),
            std::string::npos);
  EXPECT_FALSE(bool(parseLayerSelection("5:5", 10)));
  EXPECT_FALSE(bool(parseLayerSelection("a", 10)));
  EXPECT_FALSE(bool(parseLayerSelection("", 10)));
}

} // namespace
