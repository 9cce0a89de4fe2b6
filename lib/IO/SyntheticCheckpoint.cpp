//===- SyntheticCheckpoint.cpp - deterministic test checkpoints -----------===//

#include "moeq/IO/SyntheticCheckpoint.h"

#include "moeq/IO/AtomicOutput.h"
#include "moeq/IO/Checkpoint.h"

#include "llvm/ADT/STLExtras.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/Format.h"
#include "llvm/Support/JSON.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/raw_ostream.h"

#include <cmath>
#include <limits>

using namespace llvm;
using namespace mlir::moeq::io;

//===----------------------------------------------------------------------===//
// Random numbers
//===----------------------------------------------------------------------===//

namespace {

constexpr double Pi = 3.14159265358979323846;

/// SplitMix64 (Steele, Lea, Flood 2014): tiny, fast, well distributed, and
/// fully specified, so the stream is the same on every platform.
class SplitMix64 {
public:
  explicit SplitMix64(uint64_t Seed) : State(Seed) {}
  uint64_t next() {
    uint64_t Z = (State += 0x9e3779b97f4a7c15ULL);
    Z = (Z ^ (Z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    Z = (Z ^ (Z >> 27)) * 0x94d049bb133111ebULL;
    return Z ^ (Z >> 31);
  }
  /// Uniform in [0, 1) with 53 random bits.
  double uniform() { return double(next() >> 11) * 0x1.0p-53; }

private:
  uint64_t State;
};

/// Standard normal samples by the Box-Muller transform. Only sqrt/log/cos/
/// sin from libm are involved; any last-ulp libm difference between hosts
/// vanishes when the value is rounded to the stored 16-bit type.
class NormalSampler {
public:
  explicit NormalSampler(uint64_t Seed) : Rng(Seed) {}
  double next() {
    if (HasSpare) {
      HasSpare = false;
      return Spare;
    }
    // 1 - u is in (0, 1], so log() never sees zero.
    double U1 = 1.0 - Rng.uniform();
    double U2 = Rng.uniform();
    double R = std::sqrt(-2.0 * std::log(U1));
    double Theta = 2.0 * Pi * U2;
    Spare = R * std::sin(Theta);
    HasSpare = true;
    return R * std::cos(Theta);
  }
  SplitMix64 &rng() { return Rng; }

private:
  SplitMix64 Rng;
  bool HasSpare = false;
  double Spare = 0.0;
};

} // namespace

/// FNV-1a: a fixed, portable string hash (std::hash is not).
static uint64_t fnv1a(StringRef S) {
  uint64_t H = 0xcbf29ce484222325ULL;
  for (unsigned char C : S) {
    H ^= C;
    H *= 0x100000001b3ULL;
  }
  return H;
}

/// Each tensor gets its own stream derived from (seed, name), so its values
/// do not depend on which other tensors exist or the order of generation.
static uint64_t tensorSeed(uint64_t Seed, StringRef Name) {
  return SplitMix64(Seed).next() ^ fnv1a(Name);
}

//===----------------------------------------------------------------------===//
// Tensor plan
//===----------------------------------------------------------------------===//

namespace {
struct TensorPlan {
  SyntheticTensorSpec Spec;
  /// Norm weights are 1 + Std * N(0,1); everything else Std * N(0,1).
  bool IsNorm = false;
  double Std = 0.0;
  /// Scale a few input columns up, as real checkpoints have, so that
  /// per-group quantization scales are not all alike.
  bool Outliers = false;
};
} // namespace

static constexpr double NormJitter = 0.1;
static constexpr double OutlierScale = 8.0;

static std::vector<TensorPlan> planTensors(const SyntheticMixtralOptions &O) {
  std::vector<TensorPlan> Plan;
  auto Linear = [&](std::string Name, int64_t Out, int64_t In, double Std,
                    bool Outliers = false) {
    Plan.push_back({{std::move(Name), {Out, In}}, false, Std, Outliers});
  };
  auto Norm = [&](std::string Name) {
    Plan.push_back({{std::move(Name), {O.hidden}}, true, NormJitter, false});
  };
  const double InvSqrtHidden = 1.0 / std::sqrt(double(O.hidden));
  const double InvSqrtInter = 1.0 / std::sqrt(double(O.intermediate));
  const int64_t KVDim = O.kvHeads * (O.hidden / O.heads);

  // Embeddings feed an RMSNorm first, so unit scale is as good as any.
  Linear("model.embed_tokens.weight", O.vocab, O.hidden, 1.0);
  Linear("lm_head.weight", O.vocab, O.hidden, InvSqrtHidden);
  Norm("model.norm.weight");
  for (int64_t L = 0; L < O.layers; ++L) {
    std::string P = "model.layers." + std::to_string(L) + ".";
    Norm(P + "input_layernorm.weight");
    Norm(P + "post_attention_layernorm.weight");
    Linear(P + "self_attn.q_proj.weight", O.hidden, O.hidden, InvSqrtHidden);
    Linear(P + "self_attn.k_proj.weight", KVDim, O.hidden, InvSqrtHidden);
    Linear(P + "self_attn.v_proj.weight", KVDim, O.hidden, InvSqrtHidden);
    Linear(P + "self_attn.o_proj.weight", O.hidden, O.hidden, InvSqrtHidden);
    // A wider router makes the softmax peaked, so routing is non-uniform.
    Linear(P + "block_sparse_moe.gate.weight", O.experts, O.hidden,
           2.0 * InvSqrtHidden);
    for (int64_t E = 0; E < O.experts; ++E) {
      // Experts differ in scale (0.75x .. 1.25x), as trained ones do.
      double Scale =
          0.75 + 0.5 * double(E) / double(std::max<int64_t>(1, O.experts - 1));
      std::string EP =
          P + "block_sparse_moe.experts." + std::to_string(E) + ".";
      Linear(EP + "w1.weight", O.intermediate, O.hidden, Scale * InvSqrtHidden,
             true);
      Linear(EP + "w2.weight", O.hidden, O.intermediate, Scale * InvSqrtInter,
             true);
      Linear(EP + "w3.weight", O.intermediate, O.hidden, Scale * InvSqrtHidden,
             true);
    }
  }
  llvm::sort(Plan, [](const TensorPlan &A, const TensorPlan &B) {
    return A.Spec.name < B.Spec.name;
  });
  return Plan;
}

std::vector<SyntheticTensorSpec>
mlir::moeq::io::syntheticMixtralTensors(const SyntheticMixtralOptions &Opts) {
  std::vector<SyntheticTensorSpec> Specs;
  for (TensorPlan &P : planTensors(Opts))
    Specs.push_back(std::move(P.Spec));
  return Specs;
}

/// Streams one tensor row by row, so memory stays at one row however large
/// the checkpoint is. A non-negative \p NaNIndex (row-major) replaces that
/// element by a quiet NaN after sampling, so no other value changes.
static Error produceTensor(raw_ostream &OS, const TensorPlan &P, DType T,
                           uint64_t Seed, int64_t NaNIndex) {
  NormalSampler Normal(tensorSeed(Seed, P.Spec.name));
  const std::vector<int64_t> &Shape = P.Spec.shape;
  int64_t Rows = Shape.size() == 2 ? Shape[0] : 1;
  int64_t Cols = Shape.back();

  std::vector<double> ColScale(Cols, P.Std);
  if (P.Outliers) {
    int64_t Count = std::max<int64_t>(1, Cols / 64);
    for (int64_t I = 0; I < Count; ++I)
      ColScale[Normal.rng().next() % uint64_t(Cols)] = P.Std * OutlierScale;
  }

  std::vector<float> Row(Cols);
  std::vector<uint8_t> Bytes;
  for (int64_t R = 0; R < Rows; ++R) {
    for (int64_t C = 0; C < Cols; ++C) {
      double V = ColScale[C] * Normal.next();
      Row[C] = static_cast<float>(P.IsNorm ? 1.0 + V : V);
    }
    if (NaNIndex >= R * Cols && NaNIndex < (R + 1) * Cols)
      Row[NaNIndex - R * Cols] = std::numeric_limits<float>::quiet_NaN();
    Bytes.clear();
    if (Error E = encodeFromFloat(T, Row, Bytes))
      return E;
    OS.write(reinterpret_cast<const char *>(Bytes.data()), Bytes.size());
  }
  return Error::success();
}

//===----------------------------------------------------------------------===//
// Options and config.json
//===----------------------------------------------------------------------===//

static Error optionError(const Twine &Msg) {
  return createStringError(std::errc::invalid_argument, "%s",
                           Msg.str().c_str());
}

Error mlir::moeq::io::validateOptions(const SyntheticMixtralOptions &O) {
  std::pair<StringRef, int64_t> Positive[] = {{"layers", O.layers},
                                              {"hidden", O.hidden},
                                              {"intermediate", O.intermediate},
                                              {"experts", O.experts},
                                              {"vocab", O.vocab},
                                              {"heads", O.heads},
                                              {"kv-heads", O.kvHeads},
                                              {"shards", O.shards}};
  for (auto &[Name, Value] : Positive)
    if (Value <= 0)
      return optionError(Name + " must be positive, got " + Twine(Value));
  if (O.topK < 1 || O.topK > O.experts)
    return optionError("top-k must be between 1 and the number of experts (" +
                       Twine(O.experts) + "), got " + Twine(O.topK));
  if (O.hidden % O.heads != 0)
    return optionError("hidden (" + Twine(O.hidden) +
                       ") must be a multiple of heads (" + Twine(O.heads) +
                       ")");
  if (O.heads % O.kvHeads != 0)
    return optionError("heads (" + Twine(O.heads) +
                       ") must be a multiple of kv-heads (" + Twine(O.kvHeads) +
                       ")");
  if (O.dtype != DType::BF16 && O.dtype != DType::F16 && O.dtype != DType::F32)
    return optionError("dtype must be BF16, F16 or F32, got " +
                       dtypeName(O.dtype));
  size_t NumTensors = 3 + O.layers * (7 + 3 * O.experts);
  if (uint64_t(O.shards) > NumTensors)
    return optionError("shards (" + Twine(O.shards) +
                       ") exceeds the number of tensors (" + Twine(NumTensors) +
                       ")");
  if (O.nanTensor.empty()) {
    if (O.nanIndex != 0)
      return optionError("nan-index needs nan-tensor");
    return Error::success();
  }
  for (const TensorPlan &P : planTensors(O)) {
    if (P.Spec.name != O.nanTensor)
      continue;
    int64_t Elements = 1;
    for (int64_t D : P.Spec.shape)
      Elements *= D;
    if (O.nanIndex < 0 || O.nanIndex >= Elements)
      return optionError("nan-index " + Twine(O.nanIndex) +
                         " is out of range for tensor '" + O.nanTensor +
                         "', which has " + Twine(Elements) + " elements");
    return Error::success();
  }
  return optionError("nan-tensor '" + O.nanTensor +
                     "' is not a tensor of the checkpoint");
}

static StringRef torchDtypeName(DType T) {
  switch (T) {
  case DType::BF16:
    return "bfloat16";
  case DType::F16:
    return "float16";
  default:
    return "float32";
  }
}

std::string mlir::moeq::io::syntheticMixtralConfig(const SyntheticMixtralOptions &O) {
  std::string Text;
  raw_string_ostream OS(Text);
  json::OStream J(OS, /*IndentSize=*/2);
  // Floats go through rawValue: json::OStream would print 1e-5 as
  // 1.0000000000000001e-05. Keys are in sorted order, as transformers
  // writes them.
  auto Raw = [&](StringRef Key, StringRef Value) {
    J.attributeBegin(Key);
    J.rawValue(Value);
    J.attributeEnd();
  };
  J.object([&] {
    J.attributeArray("architectures", [&] { J.value("MixtralForCausalLM"); });
    Raw("attention_dropout", "0.0");
    J.attribute("bos_token_id", 1);
    J.attribute("eos_token_id", 2);
    J.attribute("head_dim", O.hidden / O.heads);
    J.attribute("hidden_act", "silu");
    J.attribute("hidden_size", O.hidden);
    Raw("initializer_range", "0.02");
    J.attribute("intermediate_size", O.intermediate);
    J.attribute("max_position_embeddings", 32768);
    J.attribute("model_type", "mixtral");
    J.attribute("num_attention_heads", O.heads);
    J.attribute("num_experts_per_tok", O.topK);
    J.attribute("num_hidden_layers", O.layers);
    J.attribute("num_key_value_heads", O.kvHeads);
    J.attribute("num_local_experts", O.experts);
    J.attribute("output_router_logits", false);
    Raw("rms_norm_eps", "1e-05");
    Raw("rope_theta", "1000000.0");
    Raw("router_aux_loss_coef", "0.02");
    Raw("router_jitter_noise", "0.0");
    J.attribute("sliding_window", nullptr);
    J.attribute("tie_word_embeddings", false);
    J.attribute("torch_dtype", torchDtypeName(O.dtype));
    J.attribute("use_cache", true);
    J.attribute("vocab_size", O.vocab);
  });
  OS << "\n";
  return Text;
}

//===----------------------------------------------------------------------===//
// Writing
//===----------------------------------------------------------------------===//

static bool isCheckpointFile(StringRef Name) {
  return Name == "config.json" || Name == Checkpoint::IndexFileName ||
         Name.ends_with(".safetensors");
}

/// AtomicOutputDirectory replaces whatever directory is at \p Dir; make sure
/// that is only ever an earlier checkpoint.
static Error checkReplaceable(StringRef Dir) {
  return checkReplaceableDirectory(
      Dir,
      [](StringRef Name, bool IsDirectory) {
        return !IsDirectory && isCheckpointFile(Name);
      },
      "a checkpoint");
}

static std::string shardName(int64_t Index, int64_t Count) {
  if (Count == 1)
    return "model.safetensors";
  std::string Name;
  raw_string_ostream(Name) << format("model-%05d-of-%05d.safetensors",
                                     int(Index + 1), int(Count));
  return Name;
}

/// Splits the (sorted) plan into \p Count contiguous, non-empty runs of
/// roughly equal byte size. Returns the index of the first tensor of each.
static std::vector<size_t> shardStarts(ArrayRef<uint64_t> Sizes,
                                       int64_t Count) {
  uint64_t Total = 0;
  for (uint64_t S : Sizes)
    Total += S;
  std::vector<size_t> Starts = {0};
  uint64_t Acc = 0;
  for (size_t I = 0; I < Sizes.size() && int64_t(Starts.size()) < Count; ++I) {
    Acc += Sizes[I];
    size_t Remaining = Sizes.size() - (I + 1);
    size_t ShardsLeft = Count - Starts.size();
    // Cut once this shard has its share, or when each remaining shard can
    // only get one tensor.
    if (Remaining == ShardsLeft ||
        (Remaining > ShardsLeft &&
         Acc * Count >= Total * uint64_t(Starts.size())))
      Starts.push_back(I + 1);
  }
  return Starts;
}

static std::string indexJSON(ArrayRef<TensorPlan> Plan,
                             ArrayRef<std::string> ShardOf,
                             uint64_t TotalSize) {
  std::string Text;
  raw_string_ostream OS(Text);
  json::OStream J(OS, /*IndentSize=*/2);
  J.object([&] {
    J.attributeObject("metadata",
                      [&] { J.attribute("total_size", TotalSize); });
    J.attributeObject("weight_map", [&] {
      for (size_t I = 0; I < Plan.size(); ++I)
        J.attribute(Plan[I].Spec.name, ShardOf[I]);
    });
  });
  OS << "\n";
  return Text;
}

Error mlir::moeq::io::writeSyntheticMixtral(StringRef Dir,
                                      const SyntheticMixtralOptions &Opts) {
  if (Error E = validateOptions(Opts))
    return E;
  if (Error E = checkReplaceable(Dir))
    return E;
  Expected<AtomicOutputDirectory> Out = AtomicOutputDirectory::create(Dir);
  if (!Out)
    return Out.takeError();

  if (Error E = writeFileAtomically(Out->pathFor("config.json"),
                                    syntheticMixtralConfig(Opts)))
    return E;

  std::vector<TensorPlan> Plan = planTensors(Opts);
  std::vector<uint64_t> Sizes;
  uint64_t TotalSize = 0;
  for (const TensorPlan &P : Plan) {
    uint64_t N = dtypeSize(Opts.dtype);
    for (int64_t D : P.Spec.shape)
      N *= uint64_t(D);
    Sizes.push_back(N);
    TotalSize += N;
  }
  std::vector<size_t> Starts = shardStarts(Sizes, Opts.shards);
  Starts.push_back(Plan.size());

  std::vector<std::string> ShardOf(Plan.size());
  for (size_t S = 0; S + 1 < Starts.size(); ++S) {
    std::string Name = shardName(S, Opts.shards);
    SafeTensorsWriter Writer;
    Writer.setMetadata("format", "pt"); // transformers refuses files without.
    for (size_t I = Starts[S]; I < Starts[S + 1]; ++I) {
      const TensorPlan &P = Plan[I];
      ShardOf[I] = Name;
      if (Error E = Writer.addTensor(P.Spec.name, Opts.dtype, P.Spec.shape,
                                     [&P, &Opts](raw_ostream &OS) {
                                       return produceTensor(
                                           OS, P, Opts.dtype, Opts.seed,
                                           P.Spec.name == Opts.nanTensor
                                               ? Opts.nanIndex
                                               : -1);
                                     }))
        return E;
    }
    if (Error E = Writer.writeAtomically(Out->pathFor(Name)))
      return E;
  }
  if (Opts.shards > 1)
    if (Error E = writeFileAtomically(Out->pathFor(Checkpoint::IndexFileName),
                                      indexJSON(Plan, ShardOf, TotalSize)))
      return E;
  return Out->commit();
}
