//===- SyntheticCheckpoint.cpp - deterministic test checkpoints -----------===//

#include "moeq/IO/SyntheticCheckpoint.h"

#include "moeq/IO/AtomicOutput.h"
#include "moeq/IO/Checkpoint.h"
#include "moeq/IO/Float16.h"

#include "llvm/ADT/STLExtras.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/Format.h"
#include "llvm/Support/JSON.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/raw_ostream.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <map>
#include <optional>

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

static constexpr double NormJitter = 0.1;
static constexpr double OutlierScale = 8.0;
/// Standard deviations of bias vectors: LayerNorm biases (phimoe),
/// attention q/k/v biases (qwen2_moe) and DeepSeek-V3's router selection
/// bias (added to sigmoid scores in (0, 1): enough to change some choices).
static constexpr double NormBiasStd = 0.02;
static constexpr double AttnBiasStd = 0.1;
static constexpr double ScoreBiasStd = 0.05;

static int64_t ceilDiv(int64_t A, int64_t B) { return (A + B - 1) / B; }

//===----------------------------------------------------------------------===//
// FP8
//===----------------------------------------------------------------------===//

/// DeepSeek-V3's block size and the largest finite F8_E4M3 value.
static constexpr int64_t FP8Block = 128;
static constexpr float FP8Max = 448.0f;

/// Rounds \p X to the nearest F8_E4M3 ("FN") code, ties to even, saturating
/// to +-448 like torch's clamp-then-cast; NaN gives the NaN code. Searching
/// the decoded table makes this correct by construction: the positive codes
/// 0x00..0x7e decode to increasing values, and "even" is the code's low bit.
static uint8_t floatToFloat8E4M3FN(float X) {
  static const std::vector<float> Table = [] {
    std::vector<float> T;
    for (unsigned Code = 0; Code <= 0x7e; ++Code)
      T.push_back(float8E4M3FNToFloat(uint8_t(Code)));
    return T;
  }();
  if (std::isnan(X))
    return 0x7f;
  uint8_t Sign = std::signbit(X) ? 0x80 : 0x00;
  float A = std::fabs(X);
  if (A >= FP8Max)
    return Sign | 0x7e;
  size_t Hi = std::lower_bound(Table.begin(), Table.end(), A) - Table.begin();
  if (Table[Hi] == A || Hi == 0)
    return Sign | uint8_t(Hi);
  size_t Lo = Hi - 1;
  float DLo = A - Table[Lo], DHi = Table[Hi] - A;
  size_t Code = DLo < DHi ? Lo : DHi < DLo ? Hi : (Lo % 2 == 0 ? Lo : Hi);
  return Sign | uint8_t(Code);
}

//===----------------------------------------------------------------------===//
// Tensor plan
//===----------------------------------------------------------------------===//

namespace {

/// A run of rows drawn from one random stream. A tensor is one part, except
/// stacked experts, which concatenate the parts the per-expert tensors
/// would be, so both layouts hold the same values.
struct Part {
  /// Names the stream (see tensorSeed): the tensor's own name, or the
  /// per-expert tensor's for a stacked one.
  std::string SeedName;
  int64_t Rows = 1;
  double Std = 0.0;
  /// Scale a few input columns up, as real checkpoints have, so that
  /// per-group quantization scales are not all alike.
  bool Outliers = false;
};

enum class Encoding {
  /// Values stored as TensorPlan::Type.
  Plain,
  /// F8_E4M3 codes of value / (block amax / 448).
  FP8Weight,
  /// The F32 block scales (amax / 448) of the FP8Weight with the same parts.
  FP8Scale,
};

struct TensorPlan {
  SyntheticTensorSpec Spec;
  /// Norm weights are 1 + Std * N(0,1); everything else Std * N(0,1).
  bool IsNorm = false;
  std::vector<Part> Parts;
  Encoding Enc = Encoding::Plain;
  /// The shape of the values the parts produce: Spec.shape, except for
  /// FP8Scale, where it is the weight's.
  std::vector<int64_t> ValueShape;
};

/// One family's names and layout.
struct FamilyInfo {
  StringRef Name;
  /// Prefix of the MoE block inside a layer, e.g. "mlp.".
  StringRef MoEPrefix;
  /// The expert linears as {gate, up, down}.
  StringRef Linears[3];
  bool SharedExperts = false;
  bool DenseLayers = false;
  bool Stackable = false;
};

} // namespace

static const FamilyInfo FamilyTable[] = {
    {"mixtral", "block_sparse_moe.", {"w1", "w3", "w2"}, false, false, false},
    {"phimoe", "block_sparse_moe.", {"w1", "w3", "w2"}, false, false, false},
    {"qwen2_moe",
     "mlp.",
     {"gate_proj", "up_proj", "down_proj"},
     true,
     true,
     true},
    {"qwen3_moe",
     "mlp.",
     {"gate_proj", "up_proj", "down_proj"},
     false,
     true,
     true},
    {"deepseek_v2",
     "mlp.",
     {"gate_proj", "up_proj", "down_proj"},
     true,
     true,
     true},
    {"deepseek_v3",
     "mlp.",
     {"gate_proj", "up_proj", "down_proj"},
     true,
     true,
     true},
    {"olmoe",
     "mlp.",
     {"gate_proj", "up_proj", "down_proj"},
     false,
     false,
     true},
};

static const FamilyInfo *findFamily(StringRef Name) {
  for (const FamilyInfo &F : FamilyTable)
    if (F.Name == Name)
      return &F;
  return nullptr;
}

std::vector<StringRef> mlir::moeq::io::syntheticFamilies() {
  std::vector<StringRef> Names;
  for (const FamilyInfo &F : FamilyTable)
    Names.push_back(F.Name);
  return Names;
}

static bool isDeepSeek(StringRef Family) {
  return Family == "deepseek_v2" || Family == "deepseek_v3";
}

static int64_t headDimOf(const SyntheticMixtralOptions &O) {
  return O.hidden / O.heads;
}

/// DeepSeek MLA dimensions, derived from the head size.
namespace {
struct MLADims {
  int64_t QKNope, QKRope, V, KVLoraRank;
};
} // namespace

static MLADims mlaDims(const SyntheticMixtralOptions &O) {
  int64_t HD = headDimOf(O);
  // The rotary part must be even.
  return {HD, std::max<int64_t>(2, (HD / 2) & ~int64_t(1)), HD,
          std::max<int64_t>(HD, O.hidden / 2)};
}

static int64_t sharedSizeOf(const SyntheticMixtralOptions &O) {
  return O.sharedIntermediate ? O.sharedIntermediate : 2 * O.intermediate;
}

static int64_t denseSizeOf(const SyntheticMixtralOptions &O) {
  return O.denseIntermediate ? O.denseIntermediate : 3 * O.intermediate;
}

static std::vector<TensorPlan> planTensors(const SyntheticMixtralOptions &O) {
  const FamilyInfo &F = *findFamily(O.family);
  const bool DeepSeek = isDeepSeek(O.family);
  std::vector<TensorPlan> Plan;
  auto Add = [&](std::string Name, std::vector<int64_t> Shape, double Std,
                 bool Outliers = false, DType T = DType::BF16,
                 bool IsNorm = false) -> TensorPlan & {
    TensorPlan P;
    int64_t Rows = 1;
    for (size_t I = 0; I + 1 < Shape.size(); ++I)
      Rows *= Shape[I];
    P.Parts.push_back({Name, Rows, Std, Outliers});
    P.Spec = {std::move(Name), Shape, T};
    P.IsNorm = IsNorm;
    P.ValueShape = std::move(Shape);
    Plan.push_back(std::move(P));
    return Plan.back();
  };
  auto Linear = [&](std::string Name, int64_t Out, int64_t In, double Std,
                    bool Outliers = false) {
    Add(std::move(Name), {Out, In}, Std, Outliers, O.dtype);
  };
  auto Vector = [&](std::string Name, int64_t Size, double Std, DType T) {
    Add(std::move(Name), {Size}, Std, false, T);
  };
  auto Norm = [&](std::string Name, int64_t Size = 0) {
    Add(std::move(Name), {Size ? Size : O.hidden}, NormJitter, false, O.dtype,
        /*IsNorm=*/true);
  };
  /// A weight that is FP8 with block scales under --fp8.
  auto QuantizableLinear = [&](std::string Name, int64_t Out, int64_t In,
                               double Std) {
    if (!O.fp8)
      return Linear(std::move(Name), Out, In, Std, true);
    TensorPlan &W =
        Add(Name, {Out, In}, Std, /*Outliers=*/true, DType::F8_E4M3);
    W.Enc = Encoding::FP8Weight;
    TensorPlan S = W; // Copied: W dangles once S is added.
    S.Spec.name = Checkpoint::scaleInvName(Name);
    S.Spec.shape = {ceilDiv(Out, FP8Block), ceilDiv(In, FP8Block)};
    S.Spec.dtype = DType::F32;
    S.Enc = Encoding::FP8Scale;
    Plan.push_back(std::move(S));
  };
  const double InvSqrtHidden = 1.0 / std::sqrt(double(O.hidden));
  auto InvSqrt = [](int64_t N) { return 1.0 / std::sqrt(double(N)); };
  const int64_t HeadDim = headDimOf(O);
  const int64_t KVDim = O.kvHeads * HeadDim;
  const bool PhiMoE = O.family == "phimoe";

  // Embeddings feed an RMSNorm first, so unit scale is as good as any.
  Linear("model.embed_tokens.weight", O.vocab, O.hidden, 1.0);
  Linear("lm_head.weight", O.vocab, O.hidden, InvSqrtHidden);
  Norm("model.norm.weight");
  // PhiMoE's norms are LayerNorms, with a bias.
  if (PhiMoE)
    Vector("model.norm.bias", O.hidden, NormBiasStd, O.dtype);
  for (int64_t L = 0; L < O.layers; ++L) {
    std::string P = "model.layers." + std::to_string(L) + ".";
    Norm(P + "input_layernorm.weight");
    Norm(P + "post_attention_layernorm.weight");
    if (PhiMoE) {
      Vector(P + "input_layernorm.bias", O.hidden, NormBiasStd, O.dtype);
      Vector(P + "post_attention_layernorm.bias", O.hidden, NormBiasStd,
             O.dtype);
    }

    // Attention.
    std::string A = P + "self_attn.";
    if (DeepSeek) {
      // MLA with q_lora_rank null (as DeepSeek-V2-Lite).
      MLADims D = mlaDims(O);
      Linear(A + "q_proj.weight", O.heads * (D.QKNope + D.QKRope), O.hidden,
             InvSqrtHidden);
      Linear(A + "kv_a_proj_with_mqa.weight", D.KVLoraRank + D.QKRope, O.hidden,
             InvSqrtHidden);
      Norm(A + "kv_a_layernorm.weight", D.KVLoraRank);
      Linear(A + "kv_b_proj.weight", O.heads * (D.QKNope + D.V), D.KVLoraRank,
             InvSqrt(D.KVLoraRank));
      Linear(A + "o_proj.weight", O.hidden, O.heads * D.V,
             InvSqrt(O.heads * D.V));
    } else {
      Linear(A + "q_proj.weight", O.hidden, O.hidden, InvSqrtHidden);
      Linear(A + "k_proj.weight", KVDim, O.hidden, InvSqrtHidden);
      Linear(A + "v_proj.weight", KVDim, O.hidden, InvSqrtHidden);
      Linear(A + "o_proj.weight", O.hidden, O.hidden, InvSqrtHidden);
      if (O.family == "qwen2_moe") { // qkv_bias
        Vector(A + "q_proj.bias", O.hidden, AttnBiasStd, O.dtype);
        Vector(A + "k_proj.bias", KVDim, AttnBiasStd, O.dtype);
        Vector(A + "v_proj.bias", KVDim, AttnBiasStd, O.dtype);
      } else if (O.family == "qwen3_moe") { // per-head q/k RMSNorm
        Norm(A + "q_norm.weight", HeadDim);
        Norm(A + "k_norm.weight", HeadDim);
      } else if (O.family == "olmoe") { // q/k RMSNorm over all heads
        Norm(A + "q_norm.weight", O.hidden);
        Norm(A + "k_norm.weight", KVDim);
      }
    }

    // Dense MLP layers.
    if (L < O.denseLayers) {
      int64_t D = denseSizeOf(O);
      Linear(P + "mlp.gate_proj.weight", D, O.hidden, InvSqrtHidden, true);
      Linear(P + "mlp.up_proj.weight", D, O.hidden, InvSqrtHidden, true);
      Linear(P + "mlp.down_proj.weight", O.hidden, D, InvSqrt(D), true);
      continue;
    }

    // Router. A wider router makes the softmax peaked, so routing is
    // non-uniform.
    std::string M = P + F.MoEPrefix.str();
    Linear(M + "gate.weight", O.experts, O.hidden, 2.0 * InvSqrtHidden);
    if (O.family == "deepseek_v3")
      Vector(M + "gate.e_score_correction_bias", O.experts, ScoreBiasStd,
             DType::F32);

    // Routed experts.
    const int64_t I = O.intermediate;
    // Which: 0 = gate, 1 = up, 2 = down.
    auto ExpertName = [&](int64_t E, int Which) {
      return M + "experts." + std::to_string(E) + "." + F.Linears[Which].str() +
             ".weight";
    };
    // Experts differ in scale (0.75x .. 1.25x), as trained ones do.
    auto ExpertScale = [&](int64_t E) {
      return 0.75 +
             0.5 * double(E) / double(std::max<int64_t>(1, O.experts - 1));
    };
    if (O.stackedExperts) {
      // Each stacked tensor concatenates the per-expert tensors' streams.
      std::vector<Part> GateUpParts, DownParts;
      for (int64_t E = 0; E < O.experts; ++E) {
        double S = ExpertScale(E);
        GateUpParts.push_back({ExpertName(E, 0), I, S * InvSqrtHidden, true});
        GateUpParts.push_back({ExpertName(E, 1), I, S * InvSqrtHidden, true});
        DownParts.push_back({ExpertName(E, 2), O.hidden, S * InvSqrt(I), true});
      }
      // (Add returns a reference into Plan, valid until the next Add.)
      Add(M + "experts.gate_up_proj", {O.experts, 2 * I, O.hidden}, 0.0, false,
          O.dtype)
          .Parts = std::move(GateUpParts);
      Add(M + "experts.down_proj", {O.experts, O.hidden, I}, 0.0, false,
          O.dtype)
          .Parts = std::move(DownParts);
    } else {
      for (int64_t E = 0; E < O.experts; ++E) {
        double S = ExpertScale(E);
        if (O.fp8) {
          QuantizableLinear(ExpertName(E, 0), I, O.hidden, S * InvSqrtHidden);
          QuantizableLinear(ExpertName(E, 1), I, O.hidden, S * InvSqrtHidden);
          QuantizableLinear(ExpertName(E, 2), O.hidden, I, S * InvSqrt(I));
          continue;
        }
        // Mixtral's historical order (w1, w2, w3) does not matter: the plan
        // is sorted below.
        Linear(ExpertName(E, 0), I, O.hidden, S * InvSqrtHidden, true);
        Linear(ExpertName(E, 2), O.hidden, I, S * InvSqrt(I), true);
        Linear(ExpertName(E, 1), I, O.hidden, S * InvSqrtHidden, true);
      }
    }

    // Shared experts.
    if (F.SharedExperts) {
      int64_t S = sharedSizeOf(O);
      std::string SP = M + (DeepSeek ? "shared_experts." : "shared_expert.");
      QuantizableLinear(SP + "gate_proj.weight", S, O.hidden, InvSqrtHidden);
      QuantizableLinear(SP + "up_proj.weight", S, O.hidden, InvSqrtHidden);
      QuantizableLinear(SP + "down_proj.weight", O.hidden, S, InvSqrt(S));
      if (O.family == "qwen2_moe")
        Linear(M + "shared_expert_gate.weight", 1, O.hidden, InvSqrtHidden);
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

namespace {
/// Produces a plan's values row by row (rows of the last dimension, across
/// all leading dimensions), switching streams at part boundaries. Each part
/// first draws its outlier columns, then its values row-major.
class RowSource {
public:
  RowSource(const TensorPlan &P, uint64_t Seed)
      : P(P), Seed(Seed), Cols(P.ValueShape.back()) {}

  void next(MutableArrayRef<float> Row) {
    while (!Normal || RowInPart == P.Parts[PartIndex].Rows)
      startPart(Normal ? PartIndex + 1 : 0);
    for (int64_t C = 0; C < Cols; ++C) {
      double V = ColScale[C] * Normal->next();
      Row[C] = static_cast<float>(P.IsNorm ? 1.0 + V : V);
    }
    ++RowInPart;
  }

private:
  void startPart(size_t Index) {
    assert(Index < P.Parts.size() && "read past the last part");
    const Part &Pt = P.Parts[Index];
    PartIndex = Index;
    RowInPart = 0;
    Normal.emplace(tensorSeed(Seed, Pt.SeedName));
    ColScale.assign(Cols, Pt.Std);
    if (Pt.Outliers) {
      int64_t Count = std::max<int64_t>(1, Cols / 64);
      for (int64_t I = 0; I < Count; ++I)
        ColScale[Normal->rng().next() % uint64_t(Cols)] = Pt.Std * OutlierScale;
    }
  }

  const TensorPlan &P;
  uint64_t Seed;
  int64_t Cols;
  std::optional<NormalSampler> Normal;
  size_t PartIndex = 0;
  int64_t RowInPart = 0;
  std::vector<double> ColScale;
};
} // namespace

static void writeBytes(raw_ostream &OS, ArrayRef<uint8_t> Bytes) {
  OS.write(reinterpret_cast<const char *>(Bytes.data()), Bytes.size());
}

/// Streams one tensor row by row, so memory stays at one row (128 rows for
/// FP8) however large the checkpoint is. A non-negative \p NaNIndex
/// (row-major, into the stored tensor) replaces that element by a NaN after
/// sampling (and quantization), so no other value changes.
static Error produceTensor(raw_ostream &OS, const TensorPlan &P, uint64_t Seed,
                           int64_t NaNIndex) {
  RowSource Source(P, Seed);
  const std::vector<int64_t> &Shape = P.ValueShape;
  const int64_t Cols = Shape.back();
  int64_t Rows = 1;
  for (size_t I = 0; I + 1 < Shape.size(); ++I)
    Rows *= Shape[I];
  std::vector<float> Row(Cols);
  std::vector<uint8_t> Bytes;

  if (P.Enc == Encoding::Plain) {
    for (int64_t R = 0; R < Rows; ++R) {
      Source.next(Row);
      if (NaNIndex >= R * Cols && NaNIndex < (R + 1) * Cols)
        Row[NaNIndex - R * Cols] = std::numeric_limits<float>::quiet_NaN();
      Bytes.clear();
      if (Error E = encodeFromFloat(P.Spec.dtype, Row, Bytes))
        return E;
      writeBytes(OS, Bytes);
    }
    return Error::success();
  }

  // FP8: each [MatRows, Cols] matrix in blocks of FP8Block x FP8Block.
  const int64_t MatRows = Shape.size() >= 2 ? Shape[Shape.size() - 2] : 1;
  const int64_t Batch = Rows / MatRows;
  const int64_t ScaleCols = ceilDiv(Cols, FP8Block);
  std::vector<float> Block;
  std::vector<float> Scales(ScaleCols);
  int64_t ScaleIndex = 0; // Flat index of the next scale written.
  for (int64_t B = 0; B < Batch; ++B)
    for (int64_t R0 = 0; R0 < MatRows; R0 += FP8Block) {
      int64_t NR = std::min(FP8Block, MatRows - R0);
      Block.resize(NR * Cols);
      for (int64_t R = 0; R < NR; ++R)
        Source.next(MutableArrayRef<float>(Block).slice(R * Cols, Cols));
      for (int64_t CB = 0; CB < ScaleCols; ++CB) {
        float Amax = 0.0f;
        for (int64_t R = 0; R < NR; ++R)
          for (int64_t C = CB * FP8Block;
               C < std::min(Cols, (CB + 1) * FP8Block); ++C)
            Amax = std::max(Amax, std::fabs(Block[R * Cols + C]));
        Scales[CB] = Amax > 0.0f ? Amax / FP8Max : 1.0f;
      }
      if (P.Enc == Encoding::FP8Scale) {
        std::vector<float> Out = Scales;
        if (NaNIndex >= ScaleIndex && NaNIndex < ScaleIndex + ScaleCols)
          Out[NaNIndex - ScaleIndex] = std::numeric_limits<float>::quiet_NaN();
        ScaleIndex += ScaleCols;
        Bytes.clear();
        if (Error E = encodeFromFloat(DType::F32, Out, Bytes))
          return E;
        writeBytes(OS, Bytes);
        continue;
      }
      Bytes.resize(Cols);
      for (int64_t R = 0; R < NR; ++R) {
        int64_t Flat = ((B * MatRows) + R0 + R) * Cols;
        for (int64_t C = 0; C < Cols; ++C)
          Bytes[C] =
              floatToFloat8E4M3FN(Block[R * Cols + C] / Scales[C / FP8Block]);
        if (NaNIndex >= Flat && NaNIndex < Flat + Cols)
          Bytes[NaNIndex - Flat] = 0x7f;
        writeBytes(OS, Bytes);
      }
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

/// The checks that depend on the family.
static Error validateFamilyOptions(const SyntheticMixtralOptions &O,
                                   const FamilyInfo &F) {
  if (O.sharedIntermediate < 0)
    return optionError("shared-intermediate must not be negative, got " +
                       Twine(O.sharedIntermediate));
  if (O.sharedIntermediate && !F.SharedExperts)
    return optionError("shared-intermediate: " + O.family +
                       " has no shared experts");
  if (O.sharedIntermediate && isDeepSeek(O.family) &&
      O.sharedIntermediate % O.intermediate != 0)
    return optionError("shared-intermediate (" + Twine(O.sharedIntermediate) +
                       ") must be a multiple of intermediate (" +
                       Twine(O.intermediate) + ") for " + O.family +
                       " (n_shared_experts experts of moe_intermediate_size)");
  if (O.denseLayers < 0 || O.denseLayers > O.layers)
    return optionError("dense-layers must be in [0, layers = " +
                       Twine(O.layers) + "], got " + Twine(O.denseLayers));
  if (O.denseLayers && !F.DenseLayers)
    return optionError("dense-layers: " + O.family + " has no dense layers");
  if (O.denseIntermediate < 0)
    return optionError("dense-intermediate must not be negative, got " +
                       Twine(O.denseIntermediate));
  if (O.family == "phimoe" && O.topK != 2)
    return optionError("top-k must be 2 for phimoe (sparsemixer routing), "
                       "got " +
                       Twine(O.topK));
  if (O.fp8 && O.family != "deepseek_v3")
    return optionError("fp8 is only supported for deepseek_v3, not " +
                       O.family);
  if (O.fp8 && O.stackedExperts)
    return optionError("fp8 and stacked-experts cannot be combined");
  if (O.stackedExperts && !F.Stackable)
    return optionError("stacked-experts is not supported for " + O.family);

  if (!isDeepSeek(O.family)) {
    if (O.nGroup != 1 || O.topkGroup != 1)
      return optionError("n-group / topk-group: " + O.family +
                         " has no group-limited routing");
    return Error::success();
  }
  if (O.nGroup < 1 || O.experts % O.nGroup != 0)
    return optionError("n-group (" + Twine(O.nGroup) +
                       ") must be positive and divide experts (" +
                       Twine(O.experts) + ")");
  if (O.topkGroup < 1 || O.topkGroup > O.nGroup)
    return optionError("topk-group must be in [1, n-group = " +
                       Twine(O.nGroup) + "], got " + Twine(O.topkGroup));
  int64_t PerGroup = O.experts / O.nGroup;
  if (O.family == "deepseek_v3" && PerGroup < 2)
    return optionError("deepseek_v3 (noaux_tc) needs at least 2 experts per "
                       "group, got experts / n-group = " +
                       Twine(PerGroup));
  if (O.topK > O.topkGroup * PerGroup)
    return optionError("top-k (" + Twine(O.topK) +
                       ") exceeds the experts of topk-group groups (" +
                       Twine(O.topkGroup) + " x " + Twine(PerGroup) + ")");
  return Error::success();
}

Error mlir::moeq::io::validateOptions(const SyntheticMixtralOptions &O) {
  const FamilyInfo *F = findFamily(O.family);
  if (!F) {
    std::string Known;
    for (StringRef N : syntheticFamilies())
      Known += (Known.empty() ? "" : ", ") + N.str();
    return optionError("unknown family '" + O.family +
                       "' (supported: " + Known + ")");
  }
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
  // DeepSeek (MLA) ignores kv-heads.
  if (!isDeepSeek(O.family) && O.heads % O.kvHeads != 0)
    return optionError("heads (" + Twine(O.heads) +
                       ") must be a multiple of kv-heads (" + Twine(O.kvHeads) +
                       ")");
  if (O.dtype != DType::BF16 && O.dtype != DType::F16 && O.dtype != DType::F32)
    return optionError("dtype must be BF16, F16 or F32, got " +
                       dtypeName(O.dtype));
  if (Error E = validateFamilyOptions(O, *F))
    return E;
  std::vector<TensorPlan> Plan = planTensors(O);
  if (uint64_t(O.shards) > Plan.size())
    return optionError("shards (" + Twine(O.shards) +
                       ") exceeds the number of tensors (" +
                       Twine(Plan.size()) + ")");
  if (O.nanTensor.empty()) {
    if (O.nanIndex != 0)
      return optionError("nan-index needs nan-tensor");
    return Error::success();
  }
  for (const TensorPlan &P : Plan) {
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

namespace {
/// A config.json object whose keys are emitted sorted, as transformers
/// writes them, whatever order they were set in.
class ConfigJSON {
public:
  using Emitter = std::function<void(json::OStream &)>;
  void integer(StringRef Key, int64_t V) {
    set(Key, [V](json::OStream &J) { J.value(V); });
  }
  void string(StringRef Key, StringRef V) {
    set(Key, [S = V.str()](json::OStream &J) { J.value(S); });
  }
  void boolean(StringRef Key, bool V) {
    set(Key, [V](json::OStream &J) { J.value(V); });
  }
  void null(StringRef Key) {
    set(Key, [](json::OStream &J) { J.value(nullptr); });
  }
  /// Floats go through rawValue: json::OStream would print 1e-5 as
  /// 1.0000000000000001e-05.
  void raw(StringRef Key, StringRef Text) {
    set(Key, [S = Text.str()](json::OStream &J) { J.rawValue(S); });
  }
  void set(StringRef Key, Emitter E) { Attrs[Key.str()] = std::move(E); }

  std::string str() const {
    std::string Text;
    raw_string_ostream OS(Text);
    json::OStream J(OS, /*IndentSize=*/2);
    J.object([&] {
      for (const auto &[Key, Emit] : Attrs) {
        J.attributeBegin(Key);
        Emit(J);
        J.attributeEnd();
      }
    });
    OS << "\n";
    return Text;
  }

private:
  std::map<std::string, Emitter> Attrs;
};
} // namespace

/// Keys every family's configuration class has, with common values.
static void commonConfig(ConfigJSON &C, const SyntheticMixtralOptions &O,
                         StringRef Architecture) {
  C.set("architectures", [A = Architecture.str()](json::OStream &J) {
    J.array([&] { J.value(A); });
  });
  C.raw("attention_dropout", "0.0");
  C.integer("bos_token_id", 1);
  C.integer("eos_token_id", 2);
  C.string("hidden_act", "silu");
  C.integer("hidden_size", O.hidden);
  C.raw("initializer_range", "0.02");
  C.string("model_type", O.family);
  C.integer("num_attention_heads", O.heads);
  C.integer("num_experts_per_tok", O.topK);
  C.integer("num_hidden_layers", O.layers);
  C.integer("num_key_value_heads", O.kvHeads);
  C.boolean("tie_word_embeddings", false);
  C.string("torch_dtype", torchDtypeName(O.dtype));
  C.boolean("use_cache", true);
  C.integer("vocab_size", O.vocab);
}

/// MixtralConfig. (The output is unchanged since the generator only knew
/// Mixtral.)
static void mixtralConfig(ConfigJSON &C, const SyntheticMixtralOptions &O) {
  commonConfig(C, O, "MixtralForCausalLM");
  C.integer("head_dim", headDimOf(O));
  C.integer("intermediate_size", O.intermediate);
  C.integer("max_position_embeddings", 32768);
  C.integer("num_local_experts", O.experts);
  C.boolean("output_router_logits", false);
  C.raw("rms_norm_eps", "1e-05");
  C.raw("rope_theta", "1000000.0");
  C.raw("router_aux_loss_coef", "0.02");
  C.raw("router_jitter_noise", "0.0");
  C.null("sliding_window");
}

/// PhimoeConfig, with Phi-3.5-MoE's values where they matter (no biases on
/// attention or lm_head: the class defaults).
static void phimoeConfig(ConfigJSON &C, const SyntheticMixtralOptions &O) {
  commonConfig(C, O, "PhimoeForCausalLM");
  C.boolean("attention_bias", false);
  C.raw("input_jitter_noise", "0.0");
  C.integer("intermediate_size", O.intermediate);
  C.boolean("lm_head_bias", false);
  C.integer("max_position_embeddings", 131072);
  C.integer("num_local_experts", O.experts);
  C.boolean("output_router_logits", false);
  C.raw("rms_norm_eps", "1e-05");
  C.null("rope_scaling");
  C.raw("rope_theta", "10000.0");
  C.raw("router_aux_loss_coef", "0.001");
  C.raw("router_jitter_noise", "0.01");
  C.null("sliding_window");
}

/// Qwen2MoeConfig / Qwen3MoeConfig.
static void qwenConfig(ConfigJSON &C, const SyntheticMixtralOptions &O) {
  bool Qwen2 = O.family == "qwen2_moe";
  commonConfig(C, O, Qwen2 ? "Qwen2MoeForCausalLM" : "Qwen3MoeForCausalLM");
  C.integer("decoder_sparse_step", 1);
  C.integer("intermediate_size", denseSizeOf(O));
  C.integer("max_position_embeddings", 32768);
  C.integer("max_window_layers", O.layers);
  C.set("mlp_only_layers", [N = O.denseLayers](json::OStream &J) {
    J.array([&] {
      for (int64_t L = 0; L < N; ++L)
        J.value(L);
    });
  });
  C.integer("moe_intermediate_size", O.intermediate);
  // As the released models: Qwen1.5-MoE false, Qwen3-MoE true.
  C.boolean("norm_topk_prob", !Qwen2);
  C.integer("num_experts", O.experts);
  C.boolean("output_router_logits", false);
  C.raw("rms_norm_eps", "1e-06");
  C.null("rope_scaling");
  C.raw("rope_theta", "1000000.0");
  C.raw("router_aux_loss_coef", "0.001");
  C.null("sliding_window");
  C.boolean("use_sliding_window", false);
  if (Qwen2) {
    C.boolean("qkv_bias", true);
    C.integer("shared_expert_intermediate_size", sharedSizeOf(O));
  } else {
    C.boolean("attention_bias", false);
    C.integer("head_dim", headDimOf(O));
  }
}

/// DeepseekV2Config / DeepseekV3Config plus the keys only the reference
/// modeling_deepseek.py reads (scoring_func, topk_method, moe_layer_freq),
/// which every released config.json has.
static void deepseekConfig(ConfigJSON &C, const SyntheticMixtralOptions &O) {
  bool V3 = O.family == "deepseek_v3";
  commonConfig(C, O, V3 ? "DeepseekV3ForCausalLM" : "DeepseekV2ForCausalLM");
  MLADims D = mlaDims(O);
  C.boolean("attention_bias", false);
  C.raw("aux_loss_alpha", "0.001");
  C.integer("first_k_dense_replace", O.denseLayers);
  C.integer("intermediate_size", denseSizeOf(O));
  C.integer("kv_lora_rank", D.KVLoraRank);
  C.integer("max_position_embeddings", 4096);
  C.integer("moe_intermediate_size", O.intermediate);
  C.integer("moe_layer_freq", 1);
  C.integer("n_group", O.nGroup);
  C.integer("n_routed_experts", O.experts);
  C.integer("n_shared_experts", sharedSizeOf(O) / O.intermediate);
  C.boolean("norm_topk_prob", V3);
  // MLA: every head has its own keys and values.
  C.integer("num_key_value_heads", O.heads);
  C.null("q_lora_rank");
  C.integer("qk_nope_head_dim", D.QKNope);
  C.integer("qk_rope_head_dim", D.QKRope);
  C.raw("rms_norm_eps", "1e-06");
  C.null("rope_scaling");
  C.raw("rope_theta", "10000.0");
  C.raw("routed_scaling_factor", V3 ? "2.5" : "1.0");
  C.string("scoring_func", V3 ? "sigmoid" : "softmax");
  C.boolean("seq_aux", true);
  C.integer("topk_group", O.topkGroup);
  C.string("topk_method", V3             ? "noaux_tc"
                          : O.nGroup > 1 ? "group_limited_greedy"
                                         : "greedy");
  C.integer("v_head_dim", D.V);
  if (V3) {
    C.boolean("rope_interleave", true);
  } else {
    C.boolean("mlp_bias", false);
  }
  if (O.fp8)
    C.set("quantization_config", [](json::OStream &J) {
      J.object([&] {
        J.attribute("activation_scheme", "dynamic");
        J.attribute("fmt", "e4m3");
        J.attribute("quant_method", "fp8");
        J.attributeArray("weight_block_size", [&] {
          J.value(FP8Block);
          J.value(FP8Block);
        });
      });
    });
}

/// OlmoeConfig, with OLMoE-1B-7B's values where they matter.
static void olmoeConfig(ConfigJSON &C, const SyntheticMixtralOptions &O) {
  commonConfig(C, O, "OlmoeForCausalLM");
  C.boolean("attention_bias", false);
  C.null("clip_qkv");
  C.integer("intermediate_size", O.intermediate);
  C.integer("max_position_embeddings", 4096);
  C.boolean("norm_topk_prob", false);
  C.integer("num_experts", O.experts);
  C.boolean("output_router_logits", false);
  C.raw("rms_norm_eps", "1e-05");
  C.null("rope_scaling");
  C.raw("rope_theta", "10000.0");
  C.raw("router_aux_loss_coef", "0.01");
}

std::string
mlir::moeq::io::syntheticMixtralConfig(const SyntheticMixtralOptions &O) {
  ConfigJSON C;
  if (O.family == "phimoe")
    phimoeConfig(C, O);
  else if (O.family == "qwen2_moe" || O.family == "qwen3_moe")
    qwenConfig(C, O);
  else if (isDeepSeek(O.family))
    deepseekConfig(C, O);
  else if (O.family == "olmoe")
    olmoeConfig(C, O);
  else
    mixtralConfig(C, O);
  return C.str();
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

Error mlir::moeq::io::writeSyntheticMixtral(
    StringRef Dir, const SyntheticMixtralOptions &Opts) {
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
    uint64_t N = dtypeSize(P.Spec.dtype);
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
      if (Error E = Writer.addTensor(
              P.Spec.name, P.Spec.dtype, P.Spec.shape,
              [&P, &Opts](raw_ostream &OS) {
                return produceTensor(
                    OS, P, Opts.seed,
                    P.Spec.name == Opts.nanTensor ? Opts.nanIndex : -1);
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
