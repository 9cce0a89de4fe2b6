//===- allocation_bench.cpp - solve time of the per-layer allocation ------===//
//
// How long the exact MxMoE allocation takes for one layer of the size of
// DeepSeek-V2-Lite (64 routed experts, hidden 2048, expert intermediate
// 1408, top-6) with 9 candidate schemes (MxMoE's list: w8a8 and w4a4
// per channel, w4a4 g128, w8a16 and w4a16 per channel, w4/w3/w2/w1 a16
// g128). Kernel times come from the cost model (H100) at the expected
// tokens per expert; losses are synthetic (per-expert sensitivity
// log-normal, error falling 4x per bit, per-channel and quantized
// activations costing more), which is enough to time the solver: the
// MILPs see the real problem structure and sizes.
//
//   moeq-allocation-bench [--tokens N]... [--json]
//   moeq-allocation-bench --relaxation [--json]
//
// --relaxation compares DDQ's gradient relaxation (alloc::solveByRelaxation)
// with the exact optimum instead: objective gap and solve times on these
// layers and on 100 random instances (16-48 blocks, 4-9 options).
//
//===----------------------------------------------------------------------===//
#include "moeq/Allocation/Allocation.h"
#include "moeq/CostModel/CostModel.h"

#include "llvm/Support/CommandLine.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/InitLLVM.h"
#include "llvm/Support/JSON.h"
#include "llvm/Support/raw_ostream.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <random>

using namespace mlir::moeq;
namespace cl = llvm::cl;

static cl::list<int64_t> tokenCounts("tokens", cl::desc("tokens per step (repeatable)"));
static cl::opt<bool> asJson("json", cl::desc("one JSON object per line"), cl::init(false));
static cl::opt<bool> relaxation("relaxation",
                                cl::desc("gap of the gradient relaxation to the exact optimum"),
                                cl::init(false));

namespace {

struct Candidate {
  const char *name;
  cost::WeightFormat format;
  double lossFactor; ///< relative error of this scheme at equal weight bits
};

const Candidate kCandidates[] = {
    {"w8a8pc", {8, 8, 0, true}, 1.5},     {"w4a4pc", {4, 4, 0, true}, 6.0},
    {"w4a4g128", {4, 4, 128, true}, 4.0}, {"w8a16pc", {8, 16, 0, false}, 1.0},
    {"w4a16pc", {4, 16, 0, false}, 2.0},  {"w4a16g128", {4, 16, 128, false}, 1.0},
    {"w3a16g128", {3, 16, 128, false}, 1.0}, {"w2a16g128", {2, 16, 128, false}, 1.2},
    {"w1a16g128", {1, 16, 128, false}, 1.6},
};

double bitsPerWeight(const cost::WeightFormat &f, int64_t k) {
  int64_t groups = f.groupSize ? k / f.groupSize : 1;
  return f.weightBits + groups * (f.symmetric ? 16.0 : 32.0) / k;
}

alloc::Problem makeLayer(int64_t tokens, bool expertGranularity, double r, double avgBits,
                         const cost::GpuSpec &gpu) {
  const int64_t experts = 64, hidden = 2048, inter = 1408, topK = 6;
  std::mt19937 gen(42);
  std::lognormal_distribution<double> sensitivity(0.0, 1.0);
  // Zipf-like routing shares summing to top_k.
  std::vector<double> share(experts);
  double norm = 0;
  for (int64_t e = 0; e < experts; ++e)
    norm += share[e] = 1.0 / std::pow(double(e + 1), 0.6);
  alloc::Problem p;
  p.r = r;
  double weights = 0;
  for (int64_t e = 0; e < experts; ++e) {
    int64_t m = int64_t(std::ceil(share[e] / norm * topK * tokens));
    double sens = sensitivity(gen);
    // (rows, cols) of the linears of a block: gate+up, down (or all three).
    std::vector<std::vector<std::pair<int64_t, int64_t>>> blocks;
    if (expertGranularity)
      blocks = {{{inter, hidden}, {inter, hidden}, {hidden, inter}}};
    else
      blocks = {{{inter, hidden}, {inter, hidden}}, {{hidden, inter}}};
    for (const auto &linears : blocks) {
      alloc::Block block;
      for (const Candidate &c : kCandidates) {
        alloc::Option o;
        for (auto [n, k] : linears) {
          o.loss += sens * n * k * std::pow(4.0, -double(c.format.weightBits)) * c.lossFactor;
          o.bits += double(n) * k * bitsPerWeight(c.format, k);
          o.seconds += cost::chooseKernel(gpu, m, n, k, c.format).cost.seconds;
        }
        block.options.push_back(o);
      }
      for (auto [n, k] : linears)
        weights += double(n) * k;
      p.blocks.push_back(block);
    }
  }
  p.budgetBits = avgBits * weights;
  return p;
}

struct GapRow {
  std::string instance;
  size_t blocks = 0;
  double exact = 0, relaxed = 0, exactSeconds = 0, relaxedSeconds = 0;
};

llvm::Expected<GapRow> compare(const std::string &name, const alloc::Problem &p) {
  GapRow row{name, p.blocks.size()};
  auto t0 = std::chrono::steady_clock::now();
  auto exact = alloc::solveAllocation(p);
  auto t1 = std::chrono::steady_clock::now();
  auto relaxed = alloc::solveByRelaxation(p);
  auto t2 = std::chrono::steady_clock::now();
  if (!exact)
    return exact.takeError();
  if (!relaxed)
    return relaxed.takeError();
  row.exact = exact->objective;
  row.relaxed = relaxed->objective;
  row.exactSeconds = std::chrono::duration<double>(t1 - t0).count();
  row.relaxedSeconds = std::chrono::duration<double>(t2 - t1).count();
  return row;
}

int runRelaxation(const cost::GpuSpec &gpu) {
  std::vector<GapRow> rows;
  for (double r : {1.0, 0.75})
    for (double avgBits : {2.5, 3.25}) {
      auto row = compare(llvm::formatv("DeepSeek-V2-Lite layer r={0} {1} bits", r, avgBits),
                         makeLayer(512, false, r, avgBits, gpu));
      if (!row) {
        llvm::errs() << llvm::toString(row.takeError()) << "\n";
        return 1;
      }
      rows.push_back(*row);
    }
  std::vector<double> gaps;
  double exactTotal = 0, relaxedTotal = 0;
  for (unsigned seed = 0; seed < 100; ++seed) {
    auto row = compare("random", alloc::randomProblem(1000 + seed, 16 + seed % 33, 4 + seed % 6,
                                               1.6 + 0.29 * (seed % 9),
                                               seed % 3 == 0 ? 1.0 : seed % 3 == 1 ? 0.75 : 0.5));
    if (!row) {
      llvm::errs() << llvm::toString(row.takeError()) << "\n";
      return 1;
    }
    gaps.push_back(row->relaxed - row->exact);
    exactTotal += row->exactSeconds;
    relaxedTotal += row->relaxedSeconds;
  }
  std::sort(gaps.begin(), gaps.end());
  double mean = 0;
  for (double g : gaps)
    mean += g / gaps.size();
  int optimal = std::count_if(gaps.begin(), gaps.end(), [](double g) { return g < 1e-9; });
  if (asJson) {
    for (const GapRow &row : rows)
      llvm::outs() << llvm::formatv("{0}\n", llvm::json::Value(llvm::json::Object{
                                                 {"instance", row.instance},
                                                 {"blocks", int64_t(row.blocks)},
                                                 {"exact", row.exact},
                                                 {"relaxed", row.relaxed},
                                                 {"gap", row.relaxed - row.exact},
                                                 {"exact_seconds", row.exactSeconds},
                                                 {"relaxed_seconds", row.relaxedSeconds}}));
    llvm::outs() << llvm::formatv("{0}\n", llvm::json::Value(llvm::json::Object{
                                               {"instance", "random x100"},
                                               {"optimal", optimal},
                                               {"mean_gap", mean},
                                               {"median_gap", gaps[gaps.size() / 2]},
                                               {"max_gap", gaps.back()},
                                               {"exact_seconds", exactTotal},
                                               {"relaxed_seconds", relaxedTotal}}));
    return 0;
  }
  llvm::outs() << "| instance | blocks | exact objective | relaxed objective | gap | exact (s) "
                  "| relaxed (s) |\n|---|---|---|---|---|---|---|\n";
  for (const GapRow &row : rows)
    llvm::outs() << llvm::formatv("| {0} | {1} | {2:F4} | {3:F4} | {4:E2} | {5:F3} | {6:F3} |\n",
                                  row.instance, row.blocks, row.exact, row.relaxed,
                                  row.relaxed - row.exact, row.exactSeconds, row.relaxedSeconds);
  llvm::outs() << llvm::formatv("| 100 random (16-48 blocks, 4-9 options) | - | - | - | optimal "
                                "{0}/100, mean {1:E2}, median {2:E2}, max {3:E2} | {4:F3} total "
                                "| {5:F3} total |\n",
                                optimal, mean, gaps[gaps.size() / 2], gaps.back(), exactTotal,
                                relaxedTotal);
  return 0;
}

} // namespace

int main(int argc, char **argv) {
  llvm::InitLLVM init(argc, argv);
  cl::ParseCommandLineOptions(argc, argv, "moeq allocation solve-time benchmark\n");
  std::vector<int64_t> tokens(tokenCounts.begin(), tokenCounts.end());
  if (tokens.empty())
    tokens = {1, 512, 8192};
  const cost::GpuSpec &gpu = *cost::lookupGpu("h100");
  if (relaxation)
    return runRelaxation(gpu);
  if (!asJson)
    llvm::outs() << "| granularity | r | tokens/step | avg bits | blocks x schemes | solve (s) "
                    "| MILPs | hull points | gap | bits used |\n|---|---|---|---|---|---|---|---|---|---|\n";
  for (bool expert : {false, true})
    for (double r : {1.0, 0.75, 0.5})
      for (int64_t t : tokens)
        for (double avgBits : {2.5, 3.25}) {
          alloc::Problem p = makeLayer(t, expert, r, avgBits, gpu);
          auto start = std::chrono::steady_clock::now();
          auto s = alloc::solveAllocation(p);
          double seconds =
              std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
          if (!s) {
            llvm::errs() << llvm::toString(s.takeError()) << "\n";
            return 1;
          }
          double weights = p.budgetBits / avgBits;
          const char *gran = expert ? "expert" : "linear";
          if (asJson)
            llvm::outs() << llvm::formatv("{0}\n", llvm::json::Value(llvm::json::Object{
                                                      {"granularity", gran},
                                                      {"r", r},
                                                      {"tokens", t},
                                                      {"avg_bits", avgBits},
                                                      {"blocks", int64_t(p.blocks.size())},
                                                      {"schemes", 9},
                                                      {"seconds", seconds},
                                                      {"milp_solves", s->milpSolves},
                                                      {"hull_points", s->frontierPoints},
                                                      {"gap", s->gap()},
                                                      {"bits_used", s->bits / weights}}));
          else
            llvm::outs() << llvm::formatv("| {0} | {1} | {2} | {3} | {4} x 9 | {5:F3} | {6} | {7} "
                                          "| {8:E1} | {9:F3} |\n",
                                          gran, r, t, avgBits, p.blocks.size(), seconds,
                                          s->milpSolves, s->frontierPoints, s->gap(),
                                          s->bits / weights);
          llvm::outs().flush();
        }
  return 0;
}
