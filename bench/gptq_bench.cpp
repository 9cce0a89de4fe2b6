//===- gptq_bench.cpp - GPTQ speed against the machine's GEMM rate --------===//
//
//   moeq-gptq-bench [--shapes 4096x14336,14336x4096] [--bits 4] [--group 128]
//
// Measures the machine's single-precision GEMM rate (OpenBLAS sgemm, 2048^3,
// best of 3), then runs GPTQ on random weights of each shape (rows x cols,
// i.e. output x input features) with a random positive definite Hessian
// (X^T X of 2 * cols random tokens, not timed) and prints one JSON line per
// shape: seconds, the algorithm's floating-point work (Cholesky + inverse:
// cols^3; lazy block updates: 2 * rows * cols^2) and its rate as a fraction
// of the sgemm rate.
//
//===----------------------------------------------------------------------===//
#include "moeq/Quant/GPTQ.h"

#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/CommandLine.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/raw_ostream.h"

#include <cblas.h>

#include <chrono>
#include <random>

namespace cl = llvm::cl;
using namespace mlir::moeq::quant;

static cl::opt<std::string> shapes("shapes", cl::desc("comma-separated ROWSxCOLS"),
                                   cl::init("4096x14336,14336x4096"));
static cl::opt<unsigned> bits("bits", cl::desc("weight bits"), cl::init(4));
static cl::opt<int64_t> group("group", cl::desc("group size"), cl::init(128));

static double seconds(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

/// Best-of-3 sgemm rate in GFLOP/s on n x n x n.
static double sgemmRate(int n) {
  std::vector<float> a(size_t(n) * n, 1.0f), b(size_t(n) * n, 0.5f), c(size_t(n) * n);
  double best = 0;
  for (int trial = 0; trial < 3; ++trial) {
    auto start = std::chrono::steady_clock::now();
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, a.data(), n,
                b.data(), n, 0.0f, c.data(), n);
    best = std::max(best, 2.0 * n * n * double(n) / seconds(start) / 1e9);
  }
  return best;
}

int main(int argc, char **argv) {
  cl::ParseCommandLineOptions(argc, argv, "GPTQ speed benchmark\n");
  double rate = sgemmRate(2048);
  llvm::outs() << llvm::formatv("{{\"sgemm_gflops\": {0:F1}}\n", rate);
  llvm::SmallVector<llvm::StringRef> list;
  llvm::StringRef(shapes).split(list, ',');
  for (llvm::StringRef shape : list) {
    auto [r, c] = shape.split('x');
    int64_t rows = 0, cols = 0;
    if (r.getAsInteger(10, rows) || c.getAsInteger(10, cols)) {
      llvm::errs() << "moeq-gptq-bench: bad shape '" << shape << "'\n";
      return 1;
    }
    std::mt19937 gen(1);
    std::normal_distribution<float> normal;
    std::vector<float> weights(rows * cols);
    for (float &w : weights)
      w = normal(gen);
    int64_t tokens = 2 * cols;
    std::vector<double> x(tokens * cols), hessian(cols * cols, 0.0);
    for (double &v : x)
      v = normal(gen);
    cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, int(cols), int(tokens), 1.0, x.data(),
                int(cols), 0.0, hessian.data(), int(cols));
    for (int64_t i = 0; i < cols; ++i)
      for (int64_t j = 0; j < i; ++j)
        hessian[i * cols + j] = hessian[j * cols + i];
    x = {};
    auto start = std::chrono::steady_clock::now();
    auto q = quantizeGPTQ(weights, rows, cols, Scheme{bits, group, false}, hessian);
    double time = seconds(start);
    if (!q) {
      llvm::errs() << "moeq-gptq-bench: " << llvm::toString(q.takeError()) << "\n";
      return 1;
    }
    double flops = double(cols) * cols * cols + 2.0 * rows * double(cols) * cols;
    llvm::outs() << llvm::formatv(
        "{{\"rows\": {0}, \"cols\": {1}, \"bits\": {2}, \"group\": {3}, \"seconds\": {4:F2}, "
        "\"gflop\": {5:F0}, \"gflops\": {6:F1}, \"fraction_of_sgemm\": {7:F3}}\n",
        rows, cols, bits.getValue(), group.getValue(), time, flops / 1e9, flops / time / 1e9,
        flops / time / 1e9 / rate);
  }
  return 0;
}
