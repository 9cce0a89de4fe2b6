//===- Report.h - report.txt of a moeq artifact -----------------*- C++ -*-===//
//
// The human-readable report of an artifact, rendered from its manifest and
// from the few facts the manifest does not hold (the options' description,
// weight totals per layer, the assembler's verdicts). moeq-compile renders
// it; a partial artifact (moeq-compile --layers) keeps those facts in its
// manifest so that moeq-merge renders the report a single compile of the
// whole model would, byte for byte. IR-free: LLVM Support only.
//
//===----------------------------------------------------------------------===//
#ifndef MOEQ_ARTIFACT_REPORT_H
#define MOEQ_ARTIFACT_REPORT_H

#include "llvm/ADT/ArrayRef.h"
#include "llvm/ADT/STLFunctionalExtras.h"
#include "llvm/ADT/StringRef.h"
#include "llvm/Support/Error.h"
#include "llvm/Support/JSON.h"

#include <cstdint>
#include <optional>
#include <utility>
#include <string>
#include <vector>

namespace mlir::moeq::artifact {

/// Weight totals of one MoE layer.
struct LayerWeights {
  int64_t layer = -1;
  /// Quantized weights (routed experts; shared ones with --quantize-shared).
  int64_t quantized = 0;
  /// Their stored bits, scales, zeros and level tables included.
  double storedBits = 0;
  /// D^2-MoE: the original expert weights the layer's factors stand for.
  int64_t original = 0;
};

/// ptxas's verdict on one kernel.
struct AssembledKernel {
  std::string kernel;
  int64_t registers = 0, spillBytes = 0, stackBytes = 0;
};

/// What report.txt says beyond the manifest.
struct ReportData {
  /// The lines that describe the options ("model: ...\n" through
  /// "shared experts: ...\n").
  std::string header;
  /// --avg-bits: the allocation tables are printed.
  bool mixedPrecision = false;
  /// The cost model's tokens per step (--tokens).
  int64_t tokensPerStep = 0;
  /// In layer order: the totals are summed in this order, so a merged
  /// artifact gets the same floating-point sums as a single compile.
  std::vector<LayerWeights> layers;
  /// Whether ptxas checked the kernels (found, or given with --ptxas).
  bool ptxasRan = false;
  /// Its verdicts.
  std::vector<AssembledKernel> assembled;
};

llvm::json::Value toJSON(const ReportData &data);
/// Reads what toJSON() wrote; the error says which key is wrong.
llvm::Expected<ReportData> reportDataFromJSON(const llvm::json::Value &value);

/// A kernel's PTX file.
struct KernelFile {
  std::string name;
  uint64_t ptxBytes = 0;
};

/// The kernels in the report's order: expert GEMMs (entries with a tile or
/// persistent groups) in order of their first launch over the layers'
/// plans, then the other kernels by first launch, then any kernel no plan
/// launches, by name. A function of the manifest alone, so that slices
/// merged give the order of one compile.
std::vector<KernelFile> orderKernels(const llvm::json::Object &manifest,
                                     llvm::ArrayRef<KernelFile> kernels);

/// Calls `visit` with each linear object (a D^2-MoE linear as its outer
/// entry) of every routed expert of the manifest layer `layer`.
void forEachExpertLinear(const llvm::json::Object &layer,
                         llvm::function_ref<void(const llvm::json::Object &)> visit);

/// A manifest linear's "shape" as (rows, cols), or nullopt without one.
std::optional<std::pair<int64_t, int64_t>> linearShape(const llvm::json::Object &linear);

/// Sizes of the artifact's weight files on disk.
struct ArtifactSizes {
  uint64_t expertsBytes = 0; ///< experts.safetensors
  uint64_t paramsBytes = 0;  ///< params.safetensors
};

/// The sizes of the weight files in the artifact directory `dir` (0 for a
/// missing file).
ArtifactSizes artifactSizesIn(llvm::StringRef dir);

/// report.html: the report's facts as pictures in one self-contained page
/// (inline SVG, no script): the bit map (a <rect class="cell"> per layer,
/// expert and linear, coloured by bits), memory by component, the cost
/// model's predicted time per layer and, with --avg-bits, the allocation's
/// loss/time trade-off.
std::string renderReportHTML(const ReportData &data, const llvm::json::Object &manifest,
                             llvm::ArrayRef<KernelFile> kernels, const ArtifactSizes &sizes);

/// report.txt of the artifact with `manifest` and the PTX files `kernels`.
std::string renderReport(const ReportData &data, const llvm::json::Object &manifest,
                         llvm::ArrayRef<KernelFile> kernels);

} // namespace mlir::moeq::artifact

#endif // MOEQ_ARTIFACT_REPORT_H
