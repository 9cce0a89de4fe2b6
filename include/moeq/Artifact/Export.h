//===- Export.h - artifacts as checkpoints other tools load -----*- C++ -*-===//
//
// moeq-export: a compiled artifact (its manifest, packed weights, copied
// parameters and hf/ files, nothing else) written in formats other tools
// load. IR-free: LLVM Support, MoeqIO and MoeqQuant.
//
//===----------------------------------------------------------------------===//

#ifndef MOEQ_ARTIFACT_EXPORT_H
#define MOEQ_ARTIFACT_EXPORT_H

#include "llvm/ADT/StringRef.h"
#include "llvm/Support/Error.h"

#include <cstdint>
#include <functional>
#include <string>

namespace mlir::moeq::artifact {

enum class ExportFormat {
  /// A Hugging Face model directory (config, tokenizer, one
  /// model.safetensors) whose quantized weights are F32 dequantized values
  /// under their checkpoint names and layouts: the model moeq ships, for
  /// evaluation in PyTorch.
  Dequantized,
  /// A Hugging Face model directory in the compressed-tensors format
  /// (0.14): `pack-quantized` weight-only schemes, `int-quantized` w8a8,
  /// one config group per distinct scheme with its modules by exact name.
  /// Expert weights must be nn.Linear weights (not fused 3-D tensors);
  /// level tables and SliM-LLM group widths have no form in it.
  CompressedTensors,
  /// One GGUF file for llama.cpp (Mixtral-layout models: its `llama`
  /// architecture): each layer's experts stacked per projection, in the
  /// ggml type that reproduces the scheme exactly (symmetric 4/5/8-bit
  /// groups of 32: Q4_0, Q5_0, Q8_0; asymmetric 4/5-bit: Q4_1, Q5_1), so
  /// all experts of a layer and projection must share one scheme.
  GGUF,
};

struct ExportSummary {
  uint64_t tensors = 0;      ///< tensors written
  uint64_t dequantized = 0;  ///< quantized matrices written (as floats, or repacked)
  uint64_t bytes = 0;        ///< tensor bytes written
  std::vector<std::string> hfFiles; ///< config, tokenizer, ... copied
  /// compressed-tensors: one line per config group (format, scheme, modules,
  /// and which engines serve it).
  std::vector<std::string> groups;
};

/// A quantization scheme as serving engines see it.
struct ServedScheme {
  unsigned weightBits = 4;
  unsigned actBits = 16;
  int64_t groupSize = 0; ///< 0: per output channel
  bool symmetric = true;
  bool levelTable = false;
};

/// Why vLLM's fused-MoE kernels (compressed-tensors: WNA16 Marlin/Triton,
/// W8A8 int8) cannot serve `scheme`, or an empty string when they can:
/// 4- or 8-bit symmetric integer weights in groups of 128 or per channel
/// with 16-bit activations, or 8-bit symmetric per-channel weights with
/// dynamic per-token int8 activations. (One scheme per MoE layer is the
/// other condition: moeq-compile --serve vllm.)
std::string whyNotVLLMFusedMoE(const ServedScheme &scheme);

/// Writes `artifactDir` in `format` to `outDir`, atomically: nothing is left
/// at `outDir` unless the export succeeds (an existing `outDir` is replaced
/// only if it holds nothing but an earlier export's files). For GGUF
/// `outDir` is the file to write (`*.gguf`; an existing file is replaced
/// only if it is a GGUF file). `progress`
/// (may be empty) is called with each tensor's name as it is written.
llvm::Expected<ExportSummary>
exportArtifact(llvm::StringRef artifactDir, ExportFormat format, llvm::StringRef outDir,
               std::function<void(llvm::StringRef)> progress = {});

} // namespace mlir::moeq::artifact

#endif // MOEQ_ARTIFACT_EXPORT_H
