//===- moeq-gen-checkpoint.cpp - write a synthetic MoE checkpoint ---------===//
//
// Writes a small Hugging Face MoE checkpoint (config.json + safetensors)
// with deterministic random weights, for tests and demos:
//
//   moeq-gen-checkpoint -o DIR [--family F] [--layers N] [--experts N] ...
//
// --family picks the model family (mixtral, phimoe, qwen2_moe, qwen3_moe,
// deepseek_v2, deepseek_v3, olmoe) and so the tensor names and config.json
// keys; --shared-intermediate, --dense-layers, --n-group/--topk-group,
// --fp8 and --stacked-experts shape the families that have those features.
//
// --nan-tensor NAME [--nan-index N] plants one NaN, to test that consumers
// reject non-finite weights.
//
//===----------------------------------------------------------------------===//

#include "moeq/IO/SyntheticCheckpoint.h"

#include "llvm/Support/CommandLine.h"
#include "llvm/Support/InitLLVM.h"
#include "llvm/Support/WithColor.h"
#include "llvm/Support/raw_ostream.h"

using namespace llvm;
using namespace mlir::moeq::io;

static cl::OptionCategory Category("moeq-gen-checkpoint options");

static cl::opt<std::string> OutputDir("o", cl::desc("Output directory"),
                                      cl::value_desc("dir"), cl::Required,
                                      cl::cat(Category));

// Defaults come from SyntheticMixtralOptions so the tool and the library
// cannot disagree.
static const SyntheticMixtralOptions Defaults;

static cl::opt<std::string>
    Family("family", cl::value_desc("name"),
           cl::desc("Model family: mixtral (default), phimoe, qwen2_moe, "
                    "qwen3_moe, deepseek_v2, deepseek_v3, olmoe"),
           cl::init(Defaults.family), cl::cat(Category));
static cl::opt<int64_t> Layers("layers", cl::value_desc("N"),
                               cl::desc("Number of decoder layers"),
                               cl::init(Defaults.layers), cl::cat(Category));
static cl::opt<int64_t> Hidden("hidden", cl::value_desc("N"),
                               cl::desc("Hidden size"),
                               cl::init(Defaults.hidden), cl::cat(Category));
static cl::opt<int64_t> Intermediate("intermediate", cl::value_desc("N"),
                                     cl::desc("Expert intermediate size"),
                                     cl::init(Defaults.intermediate),
                                     cl::cat(Category));
static cl::opt<int64_t> Experts("experts", cl::value_desc("N"),
                                cl::desc("Routed experts per layer"),
                                cl::init(Defaults.experts), cl::cat(Category));
static cl::opt<int64_t> TopK("top-k", cl::value_desc("N"),
                             cl::desc("Experts selected per token"),
                             cl::init(Defaults.topK), cl::cat(Category));
static cl::opt<int64_t> Vocab("vocab", cl::value_desc("N"),
                              cl::desc("Vocabulary size"),
                              cl::init(Defaults.vocab), cl::cat(Category));
static cl::opt<int64_t> Heads("heads", cl::value_desc("N"),
                              cl::desc("Attention heads"),
                              cl::init(Defaults.heads), cl::cat(Category));
static cl::opt<int64_t> KVHeads("kv-heads", cl::value_desc("N"),
                                cl::desc("Key/value heads"),
                                cl::init(Defaults.kvHeads), cl::cat(Category));
static cl::opt<int64_t> SharedIntermediate(
    "shared-intermediate", cl::value_desc("N"),
    cl::desc("Total shared-expert intermediate size (qwen2_moe, deepseek; "
             "default 2 x intermediate; deepseek: a multiple of it)"),
    cl::init(Defaults.sharedIntermediate), cl::cat(Category));
static cl::opt<int64_t>
    DenseLayers("dense-layers", cl::value_desc("N"),
                cl::desc("Leading layers with a dense MLP (deepseek: "
                         "first_k_dense_replace; qwen: mlp_only_layers)"),
                cl::init(Defaults.denseLayers), cl::cat(Category));
static cl::opt<int64_t> DenseIntermediate(
    "dense-intermediate", cl::value_desc("N"),
    cl::desc("Dense MLP intermediate size (qwen, deepseek; default 3 x "
             "intermediate)"),
    cl::init(Defaults.denseIntermediate), cl::cat(Category));
static cl::opt<int64_t> NGroup("n-group", cl::value_desc("N"),
                               cl::desc("DeepSeek expert groups (n_group)"),
                               cl::init(Defaults.nGroup), cl::cat(Category));
static cl::opt<int64_t>
    TopkGroup("topk-group", cl::value_desc("N"),
              cl::desc("DeepSeek groups kept per token (topk_group)"),
              cl::init(Defaults.topkGroup), cl::cat(Category));
static cl::opt<bool>
    FP8("fp8",
        cl::desc("deepseek_v3: store expert weights as F8_E4M3 with 128x128 "
                 "block scales (weight_scale_inv)"),
        cl::init(Defaults.fp8), cl::cat(Category));
static cl::opt<bool> StackedExperts(
    "stacked-experts",
    cl::desc("Write experts as stacked mlp.experts.gate_up_proj / down_proj "
             "(transformers v5 layout; not mixtral / phimoe)"),
    cl::init(Defaults.stackedExperts), cl::cat(Category));
static cl::opt<DType>
    Dtype("dtype", cl::desc("Weight element type"), cl::init(Defaults.dtype),
          cl::values(clEnumValN(DType::BF16, "bf16", "bfloat16 (default)"),
                     clEnumValN(DType::F16, "f16", "IEEE half"),
                     clEnumValN(DType::F32, "f32", "IEEE single")),
          cl::cat(Category));
static cl::opt<uint64_t> Seed("seed", cl::value_desc("N"),
                              cl::desc("Random seed"), cl::init(Defaults.seed),
                              cl::cat(Category));
static cl::opt<int64_t>
    Shards("shards", cl::value_desc("N"),
           cl::desc("Number of safetensors shards (>1 writes an index)"),
           cl::init(Defaults.shards), cl::cat(Category));
static cl::opt<std::string> NaNTensor(
    "nan-tensor", cl::value_desc("name"),
    cl::desc("Fault injection: write element --nan-index of this tensor "
             "(e.g. model.layers.0.block_sparse_moe.experts.0.w1.weight) as "
             "NaN; all other values are unchanged"),
    cl::cat(Category));
static cl::opt<int64_t>
    NaNIndex("nan-index", cl::value_desc("N"),
             cl::desc("Row-major element index for --nan-tensor (default 0)"),
             cl::init(Defaults.nanIndex), cl::cat(Category));

int main(int argc, char **argv) {
  InitLLVM X(argc, argv);
  cl::HideUnrelatedOptions(Category);
  cl::ParseCommandLineOptions(
      argc, argv,
      "moeq-gen-checkpoint: write a synthetic Hugging Face MoE checkpoint\n");

  SyntheticMixtralOptions Opts;
  Opts.family = Family;
  Opts.layers = Layers;
  Opts.hidden = Hidden;
  Opts.intermediate = Intermediate;
  Opts.experts = Experts;
  Opts.topK = TopK;
  Opts.vocab = Vocab;
  Opts.heads = Heads;
  Opts.kvHeads = KVHeads;
  Opts.sharedIntermediate = SharedIntermediate;
  Opts.denseLayers = DenseLayers;
  Opts.denseIntermediate = DenseIntermediate;
  Opts.nGroup = NGroup;
  Opts.topkGroup = TopkGroup;
  Opts.fp8 = FP8;
  Opts.stackedExperts = StackedExperts;
  Opts.dtype = Dtype;
  Opts.seed = Seed;
  Opts.shards = Shards;
  Opts.nanTensor = NaNTensor;
  Opts.nanIndex = NaNIndex;

  if (Error E = writeSyntheticMixtral(OutputDir, Opts)) {
    WithColor::error(errs(), "moeq-gen-checkpoint")
        << toString(std::move(E)) << "\n";
    return 1;
  }
  return 0;
}
