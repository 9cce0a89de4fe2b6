//===- gptq_bench.cpp - GPTQ speed and accuracy against PyTorch -----------===//
//
//   moeq-gptq-bench [--shapes 4096x14336,14336x4096] [--bits 4] [--group 128]
//                   [--blas-threads N] [--tokens T] [--python PY] [--float64]
//                   [--factor-double] [--pool] [--json]
//
// Measures the machine's single-precision GEMM rate (OpenBLAS sgemm,
// 2048^3, best of 3, on --blas-threads threads), then for each shape (rows x
// cols = output x input features) quantizes one random weight with a random
// Hessian by
//   * moeq's GPTQ (float32 sweep and factorisation, the default path),
//   * optionally its float64 reference path (--float64) and the float32
//     sweep with a float64 factorisation (--factor-double),
//   * optionally --blas-threads GPTQs at once on an llvm::ThreadPool with BLAS
//     single-threaded (--pool): how moeq-materialize-quantized-params runs
//     them; the time per linear is the wall time / --blas-threads,
//   * the textbook PyTorch GPTQ of bench/gptq_reference.py (float32, the
//     same thread count), in a child process on the same weight and Hessian,
// and prints per method: seconds, the floating-point work it does, its rate
// and that rate as a fraction of sgemm, and the layer-output error
// tr(dW H dW^T) (dW = W - dequantized Q; the same H, undamped).
//
// The Hessian is X^T X of --tokens synthetic inputs (default: cols) whose
// features have log-normal scales, 1% of them outliers 20x larger, and a
// shared rank-32 component (correlated), as LLM activations have: far worse
// conditioned than X^T X of i.i.d. Gaussians.
//
//===----------------------------------------------------------------------===//
#include "moeq/Quant/GPTQ.h"

#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/CommandLine.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/JSON.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/Program.h"
#include "llvm/Support/ThreadPool.h"
#include "llvm/Support/Threading.h"
#include "llvm/Support/raw_ostream.h"

#include <cblas.h>

#include <chrono>
#include <cmath>
#include <cstring>
#include <random>

namespace cl = llvm::cl;
using namespace mlir::moeq::quant;

#ifndef MOEQ_BENCH_PYTHON
#define MOEQ_BENCH_PYTHON ""
#endif
#ifndef MOEQ_SOURCE_DIR
#define MOEQ_SOURCE_DIR "."
#endif

static cl::opt<std::string> shapes("shapes", cl::desc("comma-separated ROWSxCOLS"),
                                   cl::init("4096x14336,14336x4096"));
static cl::opt<unsigned> bits("bits", cl::desc("weight bits"), cl::init(4));
static cl::opt<int64_t> group("group", cl::desc("group size"), cl::init(128));
static cl::opt<unsigned> threads("blas-threads",
                                 cl::desc("threads of BLAS, of PyTorch and of --pool "
                                          "(0: all cores)"),
                                 cl::init(0));
static cl::opt<int64_t> tokensOpt("tokens",
                                  cl::desc("synthetic calibration tokens of the Hessian "
                                           "(0: as many as input features)"),
                                  cl::init(0));
static cl::opt<std::string> python("python",
                                   cl::desc("Python with torch for the reference ('' to skip)"),
                                   cl::init(MOEQ_BENCH_PYTHON));
static cl::opt<std::string> script("script", cl::desc("the reference GPTQ script"),
                                   cl::init(MOEQ_SOURCE_DIR "/bench/gptq_reference.py"));
static cl::opt<bool> float64("float64", cl::desc("also run moeq's float64 reference path"),
                             cl::init(false));
static cl::opt<bool> factorDouble(
    "factor-double", cl::desc("also run the float32 sweep with a float64 factorisation"),
    cl::init(false));
static cl::opt<bool> pool("pool",
                          cl::desc("also run --blas-threads GPTQs at once, BLAS single-threaded"),
                          cl::init(false));
static cl::opt<bool> jsonOnly("json", cl::desc("JSON lines only, no table"), cl::init(false));

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

/// Writes a C-order float32 .npy file.
static bool writeNpy(llvm::StringRef path, const float *data, int64_t rows, int64_t cols) {
  std::error_code ec;
  llvm::raw_fd_ostream os(path, ec);
  if (ec)
    return false;
  std::string header = llvm::formatv("{{'descr': '<f4', 'fortran_order': False, 'shape': "
                                     "({0}, {1}), }",
                                     rows, cols)
                           .str();
  size_t total = 10 + header.size() + 1;
  header.append((64 - total % 64) % 64, ' ');
  header += '\n';
  os << "\x93NUMPY" << char(1) << char(0);
  uint16_t length = uint16_t(header.size());
  os.write(reinterpret_cast<const char *>(&length), 2);
  os << header;
  os.write(reinterpret_cast<const char *>(data), size_t(rows) * cols * sizeof(float));
  return !os.has_error();
}

/// Reads a C-order float32 .npy file of rows x cols.
static std::optional<std::vector<float>> readNpy(llvm::StringRef path, int64_t rows,
                                                 int64_t cols) {
  auto buffer = llvm::MemoryBuffer::getFile(path);
  if (!buffer)
    return std::nullopt;
  llvm::StringRef bytes = (*buffer)->getBuffer();
  if (bytes.size() < 10 || !bytes.starts_with("\x93NUMPY"))
    return std::nullopt;
  size_t length = uint8_t(bytes[8]) | (size_t(uint8_t(bytes[9])) << 8);
  llvm::StringRef header = bytes.substr(10, length);
  if (!header.contains("'<f4'") || header.contains("'fortran_order': True"))
    return std::nullopt;
  size_t need = size_t(rows) * cols * sizeof(float);
  if (bytes.size() != 10 + length + need)
    return std::nullopt;
  std::vector<float> values(size_t(rows) * cols);
  std::memcpy(values.data(), bytes.data() + 10 + length, need);
  return values;
}

/// tr((W - Q) H (W - Q)^T) in float32 products summed in float64.
static double outputError(const std::vector<float> &w, const std::vector<float> &deq,
                          const std::vector<float> &hf, int64_t rows, int64_t cols) {
  std::vector<float> delta(w.size()), product(w.size());
  for (size_t i = 0; i < w.size(); ++i)
    delta[i] = w[i] - deq[i];
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, int(rows), int(cols), int(cols), 1.0f,
              delta.data(), int(cols), hf.data(), int(cols), 0.0f, product.data(), int(cols));
  double loss = 0;
  for (size_t i = 0; i < w.size(); ++i)
    loss += double(delta[i]) * product[i];
  return loss;
}

struct Result {
  std::string method;
  double seconds = 0, gflop = 0, loss = 0;
  int blasThreads = 0;
};

int main(int argc, char **argv) {
  cl::ParseCommandLineOptions(argc, argv, "GPTQ speed and accuracy benchmark\n");
  unsigned count = threads ? threads.getValue() : llvm::hardware_concurrency().compute_thread_count();
  setBLASThreads(int(count));
  double rate = sgemmRate(2048);
  llvm::outs() << llvm::formatv("{{\"sgemm_gflops\": {0:F1}, \"threads\": {1}}\n", rate, count);
  llvm::SmallVector<llvm::StringRef> list;
  llvm::StringRef(shapes).split(list, ',');
  std::vector<std::pair<std::string, Result>> table;
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
    // Synthetic inputs: log-normal feature scales, 1% outlier features, a
    // shared rank-32 component; H = X^T X (float32 syrk, then widened, so
    // that moeq and PyTorch see the same values).
    int64_t tokens = tokensOpt ? tokensOpt.getValue() : cols, rank = 32;
    std::vector<float> scale(cols), low(tokens * rank), mix(rank * cols), x(tokens * cols);
    for (int64_t j = 0; j < cols; ++j)
      scale[j] = std::exp(normal(gen)) * (j % 100 == 37 ? 20.f : 1.f);
    for (float &v : low)
      v = normal(gen);
    for (float &v : mix)
      v = normal(gen) * 0.5f;
    for (float &v : x)
      v = normal(gen);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, int(tokens), int(cols), int(rank),
                1.0f, low.data(), int(rank), mix.data(), int(cols), 1.0f, x.data(), int(cols));
    for (int64_t t = 0; t < tokens; ++t)
      for (int64_t j = 0; j < cols; ++j)
        x[t * cols + j] *= scale[j];
    std::vector<float> hf(cols * cols, 0.f);
    cblas_ssyrk(CblasRowMajor, CblasUpper, CblasTrans, int(cols), int(tokens), 1.0f, x.data(),
                int(cols), 0.0f, hf.data(), int(cols));
    x = {};
    low = {};
    for (int64_t i = 0; i < cols; ++i)
      for (int64_t j = 0; j < i; ++j)
        hf[i * cols + j] = hf[j * cols + i];
    std::vector<double> hessian(hf.begin(), hf.end());

    double n = double(cols);
    double sweep = double(rows) * n * n + double(rows) * n * 128;
    std::vector<Result> results;
    auto runMoeq = [&](const char *method, GPTQOptions options, double factorFlop) -> bool {
      auto start = std::chrono::steady_clock::now();
      auto q = quantizeGPTQ(weights, rows, cols, Scheme{bits, group, false}, hessian, options);
      double time = seconds(start);
      if (!q) {
        llvm::errs() << "moeq-gptq-bench: " << llvm::toString(q.takeError()) << "\n";
        return false;
      }
      results.push_back({method, time, (factorFlop + sweep) / 1e9,
                         outputError(weights, dequantize(*q), hf, rows, cols), int(count)});
      return true;
    };
    GPTQOptions fast;
    if (!runMoeq("moeq float32", fast, 2.0 / 3.0 * n * n * n))
      return 1;
    if (factorDouble) {
      GPTQOptions mixed;
      mixed.factorPrecision = GPTQOptions::Precision::Float64;
      if (!runMoeq("moeq float32, float64 factor", mixed, 2.0 / 3.0 * n * n * n))
        return 1;
    }
    if (float64) {
      GPTQOptions reference;
      reference.precision = GPTQOptions::Precision::Float64;
      if (!runMoeq("moeq float64 (reference path)", reference, 4.0 / 3.0 * n * n * n))
        return 1;
    }
    if (pool && count > 1) {
      // The compiler's configuration: one GPTQ per pool thread, BLAS
      // single-threaded; the same weight in every task.
      ScopedBLASThreads single(1);
      llvm::DefaultThreadPool threadPool(llvm::hardware_concurrency(count));
      std::vector<double> losses(count, 0.0);
      std::atomic<bool> ok{true};
      auto start = std::chrono::steady_clock::now();
      for (unsigned t = 0; t < count; ++t)
        threadPool.async([&, t] {
          auto q = quantizeGPTQ(weights, rows, cols, Scheme{bits, group, false}, hessian, fast);
          if (!q) {
            llvm::consumeError(q.takeError());
            ok = false;
            return;
          }
          if (t == 0)
            losses[0] = outputError(weights, dequantize(*q), hf, rows, cols);
        });
      threadPool.wait();
      double time = seconds(start);
      if (!ok)
        return 1;
      // (The error of task 0 was measured inside the timed region; its
      // sgemm is small next to GPTQ, and is subtracted below.)
      auto lossStart = std::chrono::steady_clock::now();
      (void)outputError(weights, weights, hf, rows, cols);
      double lossTime = seconds(lossStart);
      results.push_back({llvm::formatv("moeq float32, {0} at once (per linear)", count).str(),
                         std::max(time - lossTime, 0.0) / count,
                         (2.0 / 3.0 * n * n * n + sweep) / 1e9, losses[0], 1});
    }
    if (!python.empty()) {
      llvm::SmallString<128> dir;
      if (auto ec = llvm::sys::fs::createUniqueDirectory("moeq-gptq-bench", dir)) {
        llvm::errs() << "moeq-gptq-bench: " << ec.message() << "\n";
        return 1;
      }
      std::string wPath = (dir + "/w.npy").str(), hPath = (dir + "/h.npy").str(),
                  qPath = (dir + "/q.npy").str(), outPath = (dir + "/out.json").str();
      if (!writeNpy(wPath, weights.data(), rows, cols) ||
          !writeNpy(hPath, hf.data(), cols, cols)) {
        llvm::errs() << "moeq-gptq-bench: cannot write the reference inputs in " << dir << "\n";
        return 1;
      }
      std::string bitsArg = std::to_string(bits), groupArg = std::to_string(group),
                  threadsArg = std::to_string(count);
      // The textbook (float32 scales), then with the scales rounded to f16
      // as stored for a kernel (what moeq quantizes with): the error to
      // compare moeq's with.
      for (bool f16Scales : {false, true}) {
        llvm::SmallVector<llvm::StringRef> args = {python,      script,    "--weights", wPath,
                                                   "--hessian", hPath,     "--bits",    bitsArg,
                                                   "--group",   groupArg,  "--threads", threadsArg,
                                                   "--out",     qPath};
        if (f16Scales)
          args.push_back("--f16-scales");
        std::optional<llvm::StringRef> redirects[] = {std::nullopt, llvm::StringRef(outPath),
                                                      std::nullopt};
        std::string message;
        int rc = llvm::sys::ExecuteAndWait(python, args, std::nullopt, redirects, 0, 0, &message);
        auto text = llvm::MemoryBuffer::getFile(outPath);
        std::optional<std::vector<float>> deq = readNpy(qPath, rows, cols);
        double refSeconds = 0;
        if (rc == 0 && text && deq) {
          if (auto parsed = llvm::json::parse((*text)->getBuffer().trim()))
            if (auto *object = parsed->getAsObject())
              refSeconds = object->getNumber("seconds").value_or(0);
        }
        if (rc != 0 || !deq || refSeconds <= 0) {
          llvm::sys::fs::remove_directories(dir);
          llvm::errs() << "moeq-gptq-bench: the PyTorch reference failed (" << rc << ") "
                       << message << "\n";
          return 1;
        }
        results.push_back({f16Scales ? "PyTorch textbook GPTQ, f16 scales"
                                     : "PyTorch textbook GPTQ (float32)",
                           refSeconds, (4.0 / 3.0 * n * n * n + sweep) / 1e9,
                           outputError(weights, *deq, hf, rows, cols), int(count)});
      }
      llvm::sys::fs::remove_directories(dir);
    }
    double reference = 0;
    for (const Result &res : results)
      if (llvm::StringRef(res.method) == "PyTorch textbook GPTQ (float32)")
        reference = res.seconds;
    for (const Result &res : results) {
      std::string speedup =
          reference > 0 ? llvm::formatv(", \"speedup_vs_pytorch\": {0:F2}", reference / res.seconds)
                              .str()
                        : "";
      llvm::outs() << llvm::formatv(
          "{{\"rows\": {0}, \"cols\": {1}, \"bits\": {2}, \"group\": {3}, \"tokens\": {4}, "
          "\"method\": \"{5}\", \"blas_threads\": {6}, \"seconds\": {7:F3}, \"gflop\": {8:F0}, "
          "\"gflops\": {9:F1}, \"fraction_of_sgemm\": {10:F3}, \"output_error\": {11:E6}{12}}\n",
          rows, cols, bits.getValue(), group.getValue(), tokens, res.method, res.blasThreads,
          res.seconds, res.gflop, res.gflop / res.seconds, res.gflop / res.seconds / rate,
          res.loss, speedup);
      table.push_back({shape.str(), res});
    }
    llvm::outs().flush();
  }
  if (jsonOnly)
    return 0;
  llvm::outs() << llvm::formatv("\nsgemm {0:F1} GFLOP/s on {1} threads\n\n", rate, count);
  llvm::outs() << "| shape (out x in) | method | s | GFLOP | GFLOP/s | of sgemm | "
                  "tr(dW H dW^T) |\n|---|---|---|---|---|---|---|\n";
  for (auto &[shape, res] : table)
    llvm::outs() << llvm::formatv("| {0} | {1} | {2:F2} | {3:F0} | {4:F1} | {5:F2} | {6:E4} |\n",
                                  shape, res.method, res.seconds, res.gflop,
                                  res.gflop / res.seconds, res.gflop / res.seconds / rate,
                                  res.loss);
  return 0;
}
