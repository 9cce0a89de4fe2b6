//===- PlanExecutionTest.cpp - the plan interpreter on a recording device -===//
#include "moeq/Runtime/Artifact.h"

#include "RuntimeTestUtil.h"

#include "gtest/gtest.h"

#include <cstring>

using namespace moeq::runtime;
using namespace moeq::runtime::test;

namespace {

/// An artifact from `manifestText` on a FakeDevice whose "route" kernel
/// writes `counts` (3 i32) into its fourth argument, like a routing kernel
/// writing per-expert token counts.
class PlanExecution : public ::testing::Test {
protected:
  Status open(const std::string &manifestText) {
    writeTestArtifact(dir.path, manifestText);
    Manifest manifest;
    MOEQ_RETURN_IF_ERROR(loadManifest(dir.path, KernelFile::Ptx, manifest));
    DeviceParamSources params;
    MOEQ_RETURN_IF_ERROR(params.open(manifest));
    auto device = std::make_unique<FakeDevice>();
    fake = device.get();
    fake->onLaunch = [this](const RecordedLaunch &launch) {
      if (launch.kernel == "route")
        std::memcpy(reinterpret_cast<void *>(launch.args[3]), counts, sizeof(counts));
    };
    return Artifact::create(std::move(manifest), params, std::move(device), artifact);
  }

  Status run(int64_t tokens, int64_t layer = 1) {
    return artifact->runLayer(layer, address(x), address(y), tokens, nullptr);
  }

  static DeviceAddress address(const void *pointer) {
    return DeviceAddress(reinterpret_cast<uintptr_t>(pointer));
  }

  TempDir dir;
  FakeDevice *fake = nullptr;
  std::unique_ptr<Artifact> artifact;
  int32_t counts[3] = {2, 1, 0};
  uint16_t x[400 * 4] = {}, y[400 * 4] = {};
};

TEST_F(PlanExecution, OpenUploadsParametersAndLoadsLaunchedKernels) {
  ASSERT_TRUE(open(kTestManifest).ok());
  // The unused kernel is not loaded.
  EXPECT_EQ(fake->log,
            (std::vector<std::string>{"allocate 48", "copyToDevice 48", "load route", "load expert"}));
}

TEST_F(PlanExecution, StepsRunInOrderWithTheirArguments) {
  Status status = open(kTestManifest);
  ASSERT_TRUE(status.ok()) << status.message();
  fake->log.clear();
  status = run(3);
  ASSERT_TRUE(status.ok()) << status.message();
  // Scratch: ids (24 bytes) at 0, sorted (48) at 256, counts (12) at 512;
  // the last expert launch has grid counts[2] = 0 and is skipped.
  EXPECT_EQ(fake->log, (std::vector<std::string>{"allocate 524", "launch route", "copyToHost 12",
                                                 "launch expert"}));
  ASSERT_EQ(fake->launches.size(), 2u);
  const RecordedLaunch &route = fake->launches[0];
  int64_t ids = route.args[2], param = route.args[1];
  EXPECT_EQ(route.grid.x, 3u);
  EXPECT_EQ(route.block.x, 32u);
  EXPECT_EQ(route.sharedBytes, 0u);
  EXPECT_EQ(route.args[0], int64_t(address(x)));
  EXPECT_EQ(route.args[3], ids + 512);
  EXPECT_EQ(route.args[4], 3);
  // device_params[0] holds gate: 0, 1, ..., 11 as f32.
  const float *gate = reinterpret_cast<const float *>(param);
  EXPECT_EQ(gate[0], 0.0f);
  EXPECT_EQ(gate[11], 11.0f);

  const RecordedLaunch &expert = fake->launches[1];
  EXPECT_EQ(expert.kernel, "expert");
  EXPECT_EQ(expert.grid.x, 2u); // counts[0]
  EXPECT_EQ(expert.block.x, 64u);
  EXPECT_EQ(expert.sharedBytes, 64u); // the kernel's
  EXPECT_EQ(expert.args[0], ids + 256 + 1 * 4 * 2); // sorted + counts[1] * 4 f16
  EXPECT_EQ(expert.args[1], int64_t(address(y)));
  EXPECT_EQ(expert.args[2], 0); // counts[2]
}

TEST_F(PlanExecution, NonEmptyGridsLaunch) {
  ASSERT_TRUE(open(kTestManifest).ok());
  counts[2] = 5;
  ASSERT_TRUE(run(3).ok());
  ASSERT_EQ(fake->launches.size(), 3u);
  const RecordedLaunch &last = fake->launches[2];
  EXPECT_EQ(last.grid.x, 5u);
  EXPECT_EQ(last.grid.y, 2u);
  EXPECT_EQ(last.sharedBytes, 128u); // the step's own
  EXPECT_EQ(last.args[0], fake->launches[0].args[2] + 256);
  EXPECT_EQ(last.args[1], int64_t(address(y)) + 4 * 2);
  EXPECT_EQ(last.args[2], 7);
}

TEST_F(PlanExecution, ZeroTokensDoNothing) {
  ASSERT_TRUE(open(kTestManifest).ok());
  fake->log.clear();
  ASSERT_TRUE(run(0).ok());
  EXPECT_TRUE(fake->log.empty());
  EXPECT_EQ(artifact->deviceArenaBytes(), 0u);
}

TEST_F(PlanExecution, TheArenaGrowsAndIsReused) {
  ASSERT_TRUE(open(kTestManifest).ok());
  size_t uploads = fake->allocations;
  ASSERT_TRUE(run(3).ok());
  EXPECT_EQ(fake->allocations, uploads + 1);
  EXPECT_EQ(artifact->deviceArenaBytes(), 524u);
  ASSERT_TRUE(run(3).ok());
  ASSERT_TRUE(run(2).ok());
  EXPECT_EQ(fake->allocations, uploads + 1); // reused
  // T = 100: ids 800 bytes, sorted 1600 at 1024, counts 12 at 2816.
  ASSERT_TRUE(run(100).ok());
  EXPECT_EQ(fake->allocations, uploads + 2);
  EXPECT_EQ(fake->releases, 1u);
  EXPECT_EQ(artifact->deviceArenaBytes(), 2828u);
  ASSERT_TRUE(run(3).ok());
  EXPECT_EQ(fake->allocations, uploads + 2);
}

TEST_F(PlanExecution, TheSameInputsGiveTheSameLaunches) {
  ASSERT_TRUE(open(kTestManifest).ok());
  ASSERT_TRUE(run(7).ok());
  std::vector<RecordedLaunch> first = fake->launches;
  fake->launches.clear();
  ASSERT_TRUE(run(7).ok());
  ASSERT_EQ(first.size(), fake->launches.size());
  for (size_t i = 0; i < first.size(); ++i)
    EXPECT_EQ(first[i].args, fake->launches[i].args);
}

TEST_F(PlanExecution, UnknownLayer) {
  ASSERT_TRUE(open(kTestManifest).ok());
  EXPECT_EQ(run(3, 0).message(),
            "layer 0 is not a MoE layer of " + dir.path + " (MoE layers: 1)");
}

TEST_F(PlanExecution, OutOfRangeOffsetIsAnError) {
  ASSERT_TRUE(open(kTestManifest).ok());
  counts[1] = 100;
  EXPECT_EQ(run(3).message(), "layer 1 step 2 (launch of 'expert'): args[0]: offset 400 is "
                              "outside 'sorted' (24 elements)");
}

TEST_F(PlanExecution, OutOfRangeLoadIsAnError) {
  ASSERT_TRUE(open(replaced(kTestManifest, R"({"load": "counts_host", "index": 0})",
                            R"({"load": "counts_host", "index": "T"})"))
                  .ok());
  EXPECT_EQ(run(3).message(), "layer 1 step 2 (launch of 'expert'): grid[0]: load from "
                              "'counts_host': index 3 is outside its 3 elements");
}

TEST_F(PlanExecution, I32ArgumentsMustFit) {
  ASSERT_TRUE(open(replaced(kTestManifest, R"({"i32": 7})", R"({"i32": 3000000000})")).ok());
  counts[2] = 1;
  EXPECT_EQ(run(3).message(), "layer 1 step 3 (launch of 'expert'): args[2]: i32 value "
                              "3000000000 does not fit in 32 bits");
}

TEST_F(PlanExecution, CopiesNeedEqualSizes) {
  ASSERT_TRUE(open(replaced(kTestManifest, R"("shape": [3], "host": true)",
                            R"("shape": [4], "host": true)"))
                  .ok());
  EXPECT_EQ(run(3).message(), "layer 1 step 1 (copy of 'counts'): 'counts' has 12 bytes, "
                              "'counts_host' 16: a copy needs equal sizes");
}

TEST_F(PlanExecution, NegativeGridIsAnError) {
  ASSERT_TRUE(open(replaced(kTestManifest, R"("grid": ["T", 1, 1])",
                            R"("grid": [{"sub": [0, "T"]}, 1, 1])"))
                  .ok());
  EXPECT_EQ(run(3).message(), "layer 1 step 0 (launch of 'route'): grid[0] is -3");
}

TEST_F(PlanExecution, NegativeTokensAreAnError) {
  ASSERT_TRUE(open(kTestManifest).ok());
  EXPECT_EQ(run(-1).message(), "negative token count -1");
}

} // namespace

TEST_F(PlanExecution, AddressTablesHoldTheTensorsAddresses) {
  const std::string tensor =
      R"({"file": "params.safetensors", "tensor": "gate", "dtype": "f32", "shape": [3, 4]})";
  // Row 0: the tensor twice; row 1: empty (zero-padded).
  Status status = open(replaced(kTestManifest, tensor,
                                tensor + R"(, {"addresses": [[0, 0], []], "dtype": "u64",
                                              "shape": [2, 3]})"));
  ASSERT_TRUE(status.ok()) << status.message();
  // The tensor first, then the table built from its address.
  EXPECT_EQ(fake->log, (std::vector<std::string>{"allocate 48", "copyToDevice 48", "allocate 48",
                                                 "copyToDevice 48", "load route",
                                                 "load expert"}));
  ASSERT_EQ(fake->allocated.size(), 2u);
  uint64_t words[6];
  std::memcpy(words, reinterpret_cast<const void *>(fake->allocated[1]), sizeof(words));
  EXPECT_EQ(words[0], fake->allocated[0]);
  EXPECT_EQ(words[1], fake->allocated[0]);
  for (int i : {2, 3, 4, 5})
    EXPECT_EQ(words[i], 0u);
}
