//===- moeq-gen-checkpoint.cpp - write a synthetic Mixtral checkpoint -----===//
//
// Writes a small Hugging Face Mixtral checkpoint (config.json +
// safetensors) with deterministic random weights, for tests and demos:
//
//   moeq-gen-checkpoint -o DIR [--layers N] [--hidden N] [--experts N] ...
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
      "moeq-gen-checkpoint: write a synthetic Hugging Face Mixtral "
      "checkpoint\n");

  SyntheticMixtralOptions Opts;
  Opts.layers = Layers;
  Opts.hidden = Hidden;
  Opts.intermediate = Intermediate;
  Opts.experts = Experts;
  Opts.topK = TopK;
  Opts.vocab = Vocab;
  Opts.heads = Heads;
  Opts.kvHeads = KVHeads;
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
