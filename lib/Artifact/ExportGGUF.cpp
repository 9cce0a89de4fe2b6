//===- ExportGGUF.cpp - an artifact as a llama.cpp GGUF file --------------===//
//
// Mixtral as llama.cpp's `llama` architecture, Qwen1.5/2-MoE as `qwen2moe`
// (with its gated shared expert) and Qwen3-MoE as `qwen3moe`, named and laid
// out as llama.cpp's convert_hf_to_gguf.py writes them:
//  - each layer's experts stacked per projection (blk.L.ffn_{gate,up,down}
//    _exps.weight, [experts, out, in]) in the ggml block type whose values
//    are exactly moeq's (code - zero) * scale (io::packGGMLBlocks); one
//    type per stacked tensor, so the experts of a layer and projection must
//    share a scheme, and a scheme without an exact type is refused (never
//    requantized);
//  - attention, norms, router, embeddings (and an unquantized shared
//    expert) from params.safetensors: 2-D tensors in their stored float
//    type, 1-D as F32; for `llama` q/k rows permuted from transformers'
//    rotary layout (halves) to ggml's (interleaved pairs; the qwen
//    architectures rotate halves, as transformers does);
//  - a quantized shared expert as three 2-D tensors of exact types;
//  - the hyperparameters from hf/config.json; the vocabulary from
//    hf/tokenizer.model (SentencePiece, as Mixtral ships it) or, for a model
//    without tokenizer files and at most 256 tokens, a byte vocabulary.
//
//===----------------------------------------------------------------------===//
#include "ArtifactExport.h"

#include "moeq/Artifact/HFFiles.h"
#include "moeq/IO/GGUF.h"

#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/raw_ostream.h"

#include <cstring>

namespace mlir::moeq::artifact::detail {
namespace {

/// How a transformers family maps to a llama.cpp architecture.
struct GGUFFamily {
  StringRef modelType;   ///< transformers' model_type
  StringRef arch;        ///< llama.cpp's general.architecture
  StringRef moeBlock;    ///< the MoE block's module name in a decoder layer
  StringRef expertsKey;  ///< config key of the routed expert count
  bool permuteRotary;    ///< ggml's `llama` rotates interleaved pairs
  bool sharedExpert;     ///< qwen2moe: a sigmoid-gated shared expert
  bool expertWidth;      ///< writes expert_feed_forward_length
  /// Whether llama.cpp's graph renormalises the top-k routing weights (the
  /// config's norm_topk_prob must agree).
  bool normalizesTopK;
  /// llama.cpp's pre-tokenizer of the family's byte-level BPE tokenizer
  /// (tokenizer.ggml.pre; convert_hf_to_gguf.py identifies it by hashing
  /// the tokenization of a probe text, moeq by the family), empty: the
  /// family ships SentencePiece.
  StringRef bpePreTokenizer;
};

constexpr GGUFFamily kFamilies[] = {
    {"mixtral", "llama", "block_sparse_moe", "num_local_experts", true, false, false, true, ""},
    {"qwen2_moe", "qwen2moe", "mlp", "num_experts", false, true, true, false, "qwen2"},
    {"qwen3_moe", "qwen3moe", "mlp", "num_experts", false, false, true, true, "qwen2"},
};

const GGUFFamily *findFamily(StringRef modelType) {
  for (const GGUFFamily &family : kFamilies)
    if (family.modelType == modelType)
      return &family;
  return nullptr;
}

/// The hyperparameters llama.cpp's MoE architectures read.
struct LlamaParams {
  int64_t hidden = 0, intermediate = 0, layers = 0, heads = 0, kvHeads = 0, headDim = 0,
          experts = 0, expertsPerToken = 0, contextLength = 0, vocab = 0, expertWidth = 0,
          sharedWidth = 0;
  double rmsEps = 1e-5, ropeTheta = 1e6;
};

Expected<LlamaParams> readLlamaParams(const json::Object &config, const GGUFFamily &family) {
  LlamaParams p;
  auto integer = [&](StringRef key, int64_t &out, bool required) -> Error {
    std::optional<int64_t> value = config.getInteger(key);
    if (value && *value > 0)
      out = *value;
    else if (required)
      return exportError("hf/config.json: \"" + key + "\" must be a positive integer");
    return Error::success();
  };
  for (auto [key, out] : {std::pair<StringRef, int64_t *>{"hidden_size", &p.hidden},
                          {"intermediate_size", &p.intermediate},
                          {"num_hidden_layers", &p.layers},
                          {"num_attention_heads", &p.heads},
                          {family.expertsKey, &p.experts},
                          {"num_experts_per_tok", &p.expertsPerToken},
                          {"max_position_embeddings", &p.contextLength},
                          {"vocab_size", &p.vocab}})
    if (Error err = integer(key, *out, true))
      return std::move(err);
  p.kvHeads = p.heads;
  p.headDim = p.hidden / p.heads;
  if (Error err = integer("num_key_value_heads", p.kvHeads, false))
    return std::move(err);
  if (Error err = integer("head_dim", p.headDim, false))
    return std::move(err);
  if (family.expertWidth)
    if (Error err = integer("moe_intermediate_size", p.expertWidth, true))
      return std::move(err);
  if (family.sharedExpert)
    if (Error err = integer("shared_expert_intermediate_size", p.sharedWidth, true))
      return std::move(err);
  p.rmsEps = config.getNumber("rms_norm_eps").value_or(p.rmsEps);
  p.ropeTheta = config.getNumber("rope_theta").value_or(p.ropeTheta);
  if (p.heads % p.kvHeads || p.headDim % 2)
    return exportError("hf/config.json: heads, key/value heads and head_dim do not fit");
  // What llama.cpp's graph for the architecture computes, and the config
  // must agree with: every layer MoE, and its top-k renormalisation.
  if (family.modelType != "mixtral") {
    bool normalizes = config.getBoolean("norm_topk_prob").value_or(false);
    if (normalizes != family.normalizesTopK)
      return exportError(llvm::formatv("hf/config.json: norm_topk_prob is {0}, and llama.cpp's "
                                       "{1} architecture {2} the top-k routing weights",
                                       normalizes, family.arch,
                                       family.normalizesTopK ? "renormalises"
                                                             : "does not renormalise")
                             .str());
    const json::Array *dense = config.getArray("mlp_only_layers");
    if ((dense && !dense->empty()) || config.getInteger("decoder_sparse_step").value_or(1) != 1)
      return exportError("hf/config.json: dense layers (mlp_only_layers, decoder_sparse_step) "
                         "have no place in llama.cpp's " +
                         family.arch + " architecture, whose layers are all MoE");
  }
  return p;
}

/// llama.cpp's name of a transformers tensor of `family` ("" if none).
std::string ggufTensorName(StringRef name, const GGUFFamily &family) {
  static const std::pair<StringRef, StringRef> whole[] = {
      {"model.embed_tokens.weight", "token_embd.weight"},
      {"model.norm.weight", "output_norm.weight"},
      {"lm_head.weight", "output.weight"}};
  for (auto [from, to] : whole)
    if (name == from)
      return to.str();
  static const std::pair<StringRef, StringRef> perLayer[] = {
      {"input_layernorm.weight", "attn_norm.weight"},
      {"post_attention_layernorm.weight", "ffn_norm.weight"},
      {"self_attn.q_proj.weight", "attn_q.weight"},
      {"self_attn.k_proj.weight", "attn_k.weight"},
      {"self_attn.v_proj.weight", "attn_v.weight"},
      {"self_attn.o_proj.weight", "attn_output.weight"},
      {"self_attn.q_proj.bias", "attn_q.bias"},
      {"self_attn.k_proj.bias", "attn_k.bias"},
      {"self_attn.v_proj.bias", "attn_v.bias"},
      {"self_attn.q_norm.weight", "attn_q_norm.weight"},
      {"self_attn.k_norm.weight", "attn_k_norm.weight"},
      {".gate.weight", "ffn_gate_inp.weight"},
      {".shared_expert_gate.weight", "ffn_gate_inp_shexp.weight"},
      {".shared_expert.gate_proj.weight", "ffn_gate_shexp.weight"},
      {".shared_expert.up_proj.weight", "ffn_up_shexp.weight"},
      {".shared_expert.down_proj.weight", "ffn_down_shexp.weight"}};
  StringRef rest = name;
  unsigned layer;
  if (!rest.consume_front("model.layers.") || rest.consumeInteger(10, layer) ||
      !rest.consume_front("."))
    return "";
  for (auto [from, to] : perLayer) {
    StringRef local = rest;
    // (".gate.weight" and the shared expert's live in the MoE block.)
    if (from.starts_with(".") && !local.consume_front(family.moeBlock))
      continue;
    if (local == from)
      return llvm::formatv("blk.{0}.{1}", layer, to).str();
  }
  return "";
}

/// transformers keeps each head's rotary halves apart, ggml interleaves
/// them: row h*D + 2i + p of the result is row h*D + p*D/2 + i
/// (convert_hf_to_gguf.py's LlamaModel.permute).
std::vector<float> permuteRotaryRows(const std::vector<float> &w, int64_t rows, int64_t cols,
                                     int64_t heads) {
  std::vector<float> out(w.size());
  int64_t d = rows / heads, half = d / 2;
  for (int64_t h = 0; h < heads; ++h)
    for (int64_t i = 0; i < half; ++i)
      for (int64_t p = 0; p < 2; ++p)
        std::memcpy(&out[(h * d + 2 * i + p) * cols], &w[(h * d + p * half + i) * cols],
                    cols * sizeof(float));
  return out;
}

/// A SentencePiece model (tokenizer.model): ModelProto's repeated field 1,
/// SentencePiece {string piece = 1; float score = 2; Type type = 3}. The
/// protobuf wire format is read directly (no protobuf dependency for three
/// fields); the piece types are llama.cpp's token types.
struct Vocabulary {
  std::vector<std::string> tokens;
  std::vector<float> scores; ///< (SentencePiece only)
  std::vector<int32_t> types;
  std::vector<std::string> merges; ///< byte-level BPE: "left right", by rank
};

Expected<uint64_t> readVarint(StringRef &in) {
  uint64_t value = 0;
  for (unsigned shift = 0; shift < 64; shift += 7) {
    if (in.empty())
      return exportError("truncated varint");
    uint8_t byte = uint8_t(in.front());
    in = in.drop_front();
    value |= uint64_t(byte & 0x7f) << shift;
    if (!(byte & 0x80))
      return value;
  }
  return exportError("varint longer than 10 bytes");
}

/// Skips or reads one field; `bytes` receives a length-delimited payload.
Error readField(StringRef &in, uint64_t &field, uint64_t &wireType, uint64_t &varint,
                StringRef &bytes) {
  Expected<uint64_t> key = readVarint(in);
  if (!key)
    return key.takeError();
  field = *key >> 3;
  wireType = *key & 7;
  switch (wireType) {
  case 0: {
    Expected<uint64_t> v = readVarint(in);
    if (!v)
      return v.takeError();
    varint = *v;
    return Error::success();
  }
  case 1:
  case 5: {
    size_t size = wireType == 1 ? 8 : 4;
    if (in.size() < size)
      return exportError("truncated fixed-width field");
    bytes = in.take_front(size);
    in = in.drop_front(size);
    return Error::success();
  }
  case 2: {
    Expected<uint64_t> size = readVarint(in);
    if (!size)
      return size.takeError();
    if (*size > in.size())
      return exportError("a field runs past the end");
    bytes = in.take_front(*size);
    in = in.drop_front(*size);
    return Error::success();
  }
  default:
    return exportError(llvm::formatv("unsupported wire type {0}", wireType));
  }
}

Expected<Vocabulary> readSentencePiece(StringRef data) {
  Vocabulary vocab;
  while (!data.empty()) {
    uint64_t field, wireType, varint = 0;
    StringRef bytes;
    if (Error err = readField(data, field, wireType, varint, bytes))
      return std::move(err);
    if (field != 1 || wireType != 2)
      continue; // trainer and normalizer specs
    std::string piece;
    float score = 0;
    int32_t type = 1; // NORMAL
    while (!bytes.empty()) {
      uint64_t f, w, v = 0;
      StringRef b;
      if (Error err = readField(bytes, f, w, v, b))
        return std::move(err);
      if (f == 1 && w == 2)
        piece = b.str();
      else if (f == 2 && w == 5)
        std::memcpy(&score, b.data(), 4);
      else if (f == 3 && w == 0)
        type = int32_t(v);
    }
    if (type < 1 || type > 6)
      return exportError(llvm::formatv("piece {0} has type {1}", vocab.tokens.size(), type));
    vocab.tokens.push_back(std::move(piece));
    vocab.scores.push_back(score);
    vocab.types.push_back(type);
  }
  if (vocab.tokens.empty())
    return exportError("no pieces");
  return vocab;
}

/// A model without tokenizer files whose token ids are bytes (moeq's test
/// models, tools/python/moeq_eval.py --byte-tokens): SentencePiece byte
/// pieces, which llama.cpp maps to bytes.
Vocabulary byteVocabulary(int64_t size) {
  Vocabulary vocab;
  for (int64_t id = 0; id < size; ++id) {
    vocab.tokens.push_back(llvm::formatv("<0x{0:X-2}>", id).str());
    vocab.scores.push_back(0.f);
    vocab.types.push_back(6); // BYTE
  }
  return vocab;
}

/// A byte-level BPE tokenizer (hf/tokenizer.json, model.type "BPE") as
/// llama.cpp's `gpt2` vocabulary, the way convert_hf_to_gguf.py builds it:
/// id -> token from model.vocab and added_tokens ("[PAD<id>]", UNUSED, for
/// ids neither names), added tokens CONTROL when special else USER_DEFINED,
/// the rest NORMAL; the merges in rank order as "left right".
Expected<Vocabulary> readBPETokenizer(StringRef text, int64_t vocabSize) {
  Expected<json::Value> parsed = json::parse(text);
  if (!parsed)
    return exportError("not JSON: " + llvm::toString(parsed.takeError()));
  const json::Object *root = parsed->getAsObject();
  const json::Object *model = root ? root->getObject("model") : nullptr;
  if (!model || model->getString("type") != "BPE")
    return exportError("not a BPE tokenizer (model.type)");
  const json::Object *vocabulary = model->getObject("vocab");
  const json::Array *merges = model->getArray("merges");
  if (!vocabulary || !merges)
    return exportError("a BPE model needs \"vocab\" and \"merges\"");
  constexpr int32_t kNormal = 1, kControl = 3, kUserDefined = 4, kUnused = 5;
  Vocabulary vocab;
  vocab.tokens.resize(vocabSize);
  vocab.types.assign(vocabSize, 0);
  auto place = [&](int64_t id, StringRef token, int32_t type) -> Error {
    if (id < 0 || id >= vocabSize)
      return exportError(llvm::formatv("token '{0}' has id {1}, outside the model's {2} "
                                       "tokens",
                                       token, id, vocabSize)
                             .str());
    vocab.tokens[id] = token.str();
    vocab.types[id] = type;
    return Error::success();
  };
  for (const auto &[token, id] : *vocabulary)
    if (Error err = place(id.getAsInteger().value_or(-1), token, kNormal))
      return std::move(err);
  if (const json::Array *added = root->getArray("added_tokens"))
    for (const json::Value &value : *added) {
      const json::Object *token = value.getAsObject();
      if (!token || !token->getInteger("id") || !token->getString("content"))
        return exportError("an added token needs \"id\" and \"content\"");
      if (Error err = place(*token->getInteger("id"), *token->getString("content"),
                            token->getBoolean("special").value_or(false) ? kControl
                                                                         : kUserDefined))
        return std::move(err);
    }
  for (int64_t id = 0; id < vocabSize; ++id)
    if (!vocab.types[id]) {
      vocab.tokens[id] = llvm::formatv("[PAD{0}]", id).str();
      vocab.types[id] = kUnused;
    }
  for (const json::Value &merge : *merges) {
    if (std::optional<StringRef> pair = merge.getAsString()) {
      vocab.merges.push_back(pair->str());
      continue;
    }
    const json::Array *pair = merge.getAsArray();
    if (!pair || pair->size() != 2 || !(*pair)[0].getAsString() || !(*pair)[1].getAsString())
      return exportError("a merge is neither \"left right\" nor [left, right]");
    vocab.merges.push_back((*(*pair)[0].getAsString() + " " + *(*pair)[1].getAsString()).str());
  }
  return vocab;
}

/// The ggml type that stores `scheme` exactly, or why there is none.
Expected<io::GGMLType> exactGGMLType(const quant::Scheme &scheme, int64_t activationBits) {
  if (activationBits != 16)
    return exportError(llvm::formatv("{0}-bit activations (llama.cpp quantizes activations "
                                     "its own way)",
                                     activationBits));
  if (scheme.levelTable)
    return exportError("level tables");
  if (!scheme.groupBits.empty())
    return exportError("SliM-LLM group widths");
  if (scheme.groupSize != 32)
    return exportError("ggml's exact block types have groups of 32");
  switch (scheme.bits) {
  case 4:
    return scheme.symmetric ? io::GGMLType::Q4_0 : io::GGMLType::Q4_1;
  case 5:
    return scheme.symmetric ? io::GGMLType::Q5_0 : io::GGMLType::Q5_1;
  case 8:
    if (scheme.symmetric)
      return io::GGMLType::Q8_0;
    return exportError("asymmetric 8-bit");
  default:
    return exportError(llvm::formatv("{0}-bit codes (exact: symmetric 4, 5, 8 bits; "
                                     "asymmetric 4, 5 bits)",
                                     scheme.bits));
  }
}

io::GGMLType storedFloatType(io::DType dtype, size_t rank) {
  if (rank == 1)
    return io::GGMLType::F32; // llama.cpp's norms are F32
  switch (dtype) {
  case io::DType::F16:
    return io::GGMLType::F16;
  case io::DType::BF16:
    return io::GGMLType::BF16;
  default:
    return io::GGMLType::F32;
  }
}

io::DType safetensorsType(io::GGMLType type) {
  switch (type) {
  case io::GGMLType::F16:
    return io::DType::F16;
  case io::GGMLType::BF16:
    return io::DType::BF16;
  default:
    return io::DType::F32;
  }
}

/// An existing output must be a GGUF file (guards a mistyped -o).
Error checkReplaceableGGUF(StringRef path) {
  if (!llvm::sys::fs::exists(path))
    return Error::success();
  auto buffer = llvm::MemoryBuffer::getFileSlice(path, 4, 0);
  if (llvm::sys::fs::is_directory(path) || !buffer || (*buffer)->getBuffer() != "GGUF")
    return exportError("'" + path + "' exists and is not a GGUF file: not replacing it");
  return Error::success();
}

} // namespace

Error ArtifactExport::writeGGUF(StringRef outPath, ExportSummary &summary,
                                const Progress &progress) {
  if (!outPath.ends_with(".gguf"))
    return exportError("--format gguf writes one file: -o must name a *.gguf file, got '" +
                       outPath + "'");
  if (Error err = checkReplaceableGGUF(outPath))
    return err;
  const json::Object &cfg = *config.getAsObject();
  StringRef modelType = cfg.getString("model_type").value_or("");
  const GGUFFamily *family = findFamily(modelType);
  if (!family)
    return artifactError("GGUF export maps mixtral (llama.cpp's llama), qwen2_moe (qwen2moe) "
                         "and qwen3_moe (qwen3moe) models; model_type '" +
                         modelType +
                         "' has no mapping yet: export --format dequantized and convert "
                         "that with llama.cpp's convert_hf_to_gguf.py");
  Expected<LlamaParams> params = readLlamaParams(cfg, *family);
  if (!params)
    return artifactError(llvm::toString(params.takeError()));
  if (!keptLinears.empty())
    return artifactError(keptLinears.front().where +
                         " is kept in f16 while GGUF stores each layer's experts of a "
                         "projection as one tensor of one type");

  // Each layer's experts of one projection, in expert order.
  struct Stack {
    std::vector<const Piece *> experts;
    io::GGMLType type;
  };
  std::map<std::pair<int64_t, std::string>, Stack> stacks;
  // A quantized shared expert: one 2-D tensor per projection.
  std::map<std::pair<int64_t, std::string>, std::pair<const Piece *, io::GGMLType>> shared;
  for (auto &[name, target] : targets)
    for (const Piece &p : target.pieces) {
      if (p.expert < 0) {
        if (!family->sharedExpert)
          return artifactError(p.where + ": a shared expert has no place in llama.cpp's " +
                               family->arch + " architecture");
        Expected<quant::Scheme> scheme = schemeOf(p);
        if (!scheme)
          return scheme.takeError();
        Expected<io::GGMLType> type =
            exactGGMLType(*scheme, p.linear->getInteger("activation_bits").value_or(16));
        if (!type)
          return artifactError(p.where + ": scheme " +
                               p.linear->getString("scheme").value_or("?") +
                               " has no exact GGUF type (" + llvm::toString(type.takeError()) +
                               ")");
        shared[{p.layer, p.role}] = {&p, *type};
        continue;
      }
      Stack &stack = stacks[{p.layer, p.role}];
      if (int64_t(stack.experts.size()) <= p.expert)
        stack.experts.resize(p.expert + 1, nullptr);
      stack.experts[p.expert] = &p;
    }
  for (auto &[key, stack] : stacks) {
    std::string at = llvm::formatv("layer {0} {1}", key.first, key.second);
    if (int64_t(stack.experts.size()) != params->experts || llvm::is_contained(stack.experts, nullptr))
      return artifactError(at + ": the manifest does not have each of the " +
                           Twine(params->experts) + " experts once");
    const Piece *first = stack.experts.front();
    for (const Piece *p : stack.experts) {
      Expected<quant::Scheme> scheme = schemeOf(*p);
      if (!scheme)
        return scheme.takeError();
      Expected<io::GGMLType> type =
          exactGGMLType(*scheme, p->linear->getInteger("activation_bits").value_or(16));
      StringRef mangled = p->linear->getString("scheme").value_or("?");
      if (!type)
        return artifactError(p->where + ": scheme " + mangled + " has no exact GGUF type (" +
                             llvm::toString(type.takeError()) +
                             "); compile with e.g. --bits 4 --group-size 32 --symmetric "
                             "(Q4_0), or export --format dequantized");
      if (p == first)
        stack.type = *type;
      else if (*type != stack.type || p->rows != first->rows || p->cols != first->cols)
        return artifactError(
            at + ": experts " + Twine(first->expert) + " (" +
            first->linear->getString("scheme").value_or("?") + ") and " + Twine(p->expert) +
            " (" + mangled +
            ") differ, and GGUF stores a layer's experts of one projection as one tensor of "
            "one type: compile with one scheme per layer, or export --format dequantized");
    }
  }

  io::GGUFWriter gguf;
  std::string arch = family->arch.str();
  auto key = [&](StringRef name) { return arch + "." + name.str(); };
  gguf.addString("general.architecture", arch);
  gguf.addString("general.name", llvm::sys::path::filename(llvm::sys::path::parent_path(
                                     path("manifest.json"))));
  gguf.addString("general.quantized_by", "moeq");
  gguf.addUInt32(key("context_length"), uint32_t(params->contextLength));
  gguf.addUInt32(key("embedding_length"), uint32_t(params->hidden));
  gguf.addUInt32(key("feed_forward_length"), uint32_t(params->intermediate));
  gguf.addUInt32(key("block_count"), uint32_t(params->layers));
  gguf.addUInt32(key("attention.head_count"), uint32_t(params->heads));
  gguf.addUInt32(key("attention.head_count_kv"), uint32_t(params->kvHeads));
  gguf.addUInt32(key("attention.key_length"), uint32_t(params->headDim));
  gguf.addUInt32(key("attention.value_length"), uint32_t(params->headDim));
  gguf.addUInt32(key("rope.dimension_count"), uint32_t(params->headDim));
  gguf.addFloat32(key("rope.freq_base"), float(params->ropeTheta));
  gguf.addFloat32(key("attention.layer_norm_rms_epsilon"), float(params->rmsEps));
  gguf.addUInt32(key("expert_count"), uint32_t(params->experts));
  gguf.addUInt32(key("expert_used_count"), uint32_t(params->expertsPerToken));
  if (family->expertWidth)
    gguf.addUInt32(key("expert_feed_forward_length"), uint32_t(params->expertWidth));
  if (family->sharedExpert)
    gguf.addUInt32(key("expert_shared_feed_forward_length"), uint32_t(params->sharedWidth));
  gguf.addUInt32(key("vocab_size"), uint32_t(params->vocab));

  // The vocabulary.
  std::string spmPath = path(Twine(kHFDirectory) + "/tokenizer.model");
  std::string bpePath = path(Twine(kHFDirectory) + "/tokenizer.json");
  bool hasTokenizer = false;
  for (StringRef name : {"tokenizer.json", "tokenizer.model", "vocab.json", "vocab.txt"})
    hasTokenizer |= llvm::sys::fs::exists(path(Twine(kHFDirectory) + "/" + name));
  auto readHF = [&](const std::string &file) -> Expected<std::unique_ptr<llvm::MemoryBuffer>> {
    auto buffer = llvm::MemoryBuffer::getFile(file);
    if (!buffer)
      return artifactError("cannot read " + file + ": " + buffer.getError().message());
    return std::move(*buffer);
  };
  Vocabulary vocab;
  bool bpe = false;
  if (llvm::sys::fs::exists(spmPath)) {
    auto buffer = readHF(spmPath);
    if (!buffer)
      return buffer.takeError();
    Expected<Vocabulary> spm = readSentencePiece((*buffer)->getBuffer());
    if (!spm)
      return artifactError("hf/tokenizer.model: " + llvm::toString(spm.takeError()));
    vocab = std::move(*spm);
    summary.groups.push_back(llvm::formatv("vocabulary: {0} SentencePiece pieces from "
                                           "tokenizer.model",
                                           vocab.tokens.size()));
  } else if (llvm::sys::fs::exists(bpePath) && !family->bpePreTokenizer.empty()) {
    auto buffer = readHF(bpePath);
    if (!buffer)
      return buffer.takeError();
    Expected<Vocabulary> parsed = readBPETokenizer((*buffer)->getBuffer(), params->vocab);
    if (!parsed)
      return artifactError("hf/tokenizer.json: " + llvm::toString(parsed.takeError()));
    vocab = std::move(*parsed);
    bpe = true;
    summary.groups.push_back(llvm::formatv("vocabulary: byte-level BPE from tokenizer.json, "
                                           "{0} merges, pre-tokenizer {1}",
                                           vocab.merges.size(), family->bpePreTokenizer));
  } else if (!hasTokenizer && params->vocab <= 256) {
    vocab = byteVocabulary(params->vocab);
    summary.groups.push_back(llvm::formatv("vocabulary: {0} byte tokens (the model has no "
                                           "tokenizer files)",
                                           params->vocab));
  } else {
    return artifactError("GGUF export reads SentencePiece tokenizers (hf/tokenizer.model) and "
                         "the byte-level BPE of the qwen families (hf/tokenizer.json); this "
                         "model's tokenizer has no GGUF conversion in moeq yet: export "
                         "--format dequantized and convert that with llama.cpp's "
                         "convert_hf_to_gguf.py");
  }
  if (int64_t(vocab.tokens.size()) > params->vocab)
    return artifactError(llvm::formatv("the tokenizer has {0} tokens, the model {1}",
                                       vocab.tokens.size(), params->vocab));
  for (int64_t id = vocab.tokens.size(); id < params->vocab; ++id) {
    vocab.tokens.push_back(llvm::formatv("[PAD{0}]", id).str());
    vocab.scores.push_back(0.f);
    vocab.types.push_back(5); // UNUSED
  }
  gguf.addString("tokenizer.ggml.model", bpe ? "gpt2" : "llama");
  if (bpe)
    gguf.addString("tokenizer.ggml.pre", family->bpePreTokenizer);
  gguf.addStrings("tokenizer.ggml.tokens", vocab.tokens);
  if (!bpe)
    gguf.addFloat32s("tokenizer.ggml.scores", vocab.scores);
  gguf.addInt32s("tokenizer.ggml.token_type", vocab.types);
  if (bpe)
    gguf.addStrings("tokenizer.ggml.merges", vocab.merges);
  for (auto [hfKey, ggufKey] : {std::pair<StringRef, StringRef>{"bos_token_id",
                                                                "tokenizer.ggml.bos_token_id"},
                                {"eos_token_id", "tokenizer.ggml.eos_token_id"},
                                {"pad_token_id", "tokenizer.ggml.padding_token_id"}})
    if (std::optional<int64_t> id = cfg.getInteger(hfKey); id && *id >= 0 && *id < params->vocab)
      gguf.addUInt32(ggufKey, uint32_t(*id));
  if (!hasTokenizer) {
    // Byte ids as they are: no BOS and no SentencePiece space prefix.
    gguf.addBool("tokenizer.ggml.add_bos_token", false);
    gguf.addBool("tokenizer.ggml.add_space_prefix", false);
  } else if (bpe) {
    // As transformers tokenizes: tokenizer_config.json's add_bos_token
    // (absent: the qwen tokenizers add none).
    bool addBos = false;
    if (auto config = llvm::MemoryBuffer::getFile(
            path(Twine(kHFDirectory) + "/tokenizer_config.json")))
      if (Expected<json::Value> parsed = json::parse((*config)->getBuffer()))
        addBos = parsed->getAsObject() &&
                 parsed->getAsObject()->getBoolean("add_bos_token").value_or(false);
      else
        llvm::consumeError(parsed.takeError());
    gguf.addBool("tokenizer.ggml.add_bos_token", addBos);
  }

  // Unquantized tensors.
  Expected<const io::SafeTensorsFile *> paramsFile = file("params.safetensors");
  if (!paramsFile)
    return paramsFile.takeError();
  for (const io::TensorInfo &info : (*paramsFile)->tensors()) {
    if (targets.count(info.name))
      continue;
    std::string name = ggufTensorName(info.name, *family);
    if (name.empty())
      return artifactError("params.safetensors: '" + info.name +
                           "' has no place in llama.cpp's " + family->arch + " architecture");
    if (info.shape.empty() || info.shape.size() > 2 || !io::isFloatingPoint(info.dtype))
      return artifactError("params.safetensors: '" + info.name +
                           "' is not a 1-D or 2-D float tensor");
    io::GGMLType type = storedFloatType(info.dtype, info.shape.size());
    int64_t permuteHeads = !family->permuteRotary ? 0
                           : StringRef(info.name).ends_with("q_proj.weight") ? params->heads
                           : StringRef(info.name).ends_with("k_proj.weight") ? params->kvHeads
                                                                             : 0;
    if (permuteHeads && info.shape[0] != permuteHeads * params->headDim)
      return artifactError("params.safetensors: '" + info.name + "' has " +
                           Twine(info.shape[0]) + " rows, not heads x head_dim");
    const io::SafeTensorsFile *from = *paramsFile;
    const io::TensorInfo *tensorInfo = &info;
    std::string ggufName = name;
    if (Error err = gguf.addTensor(
            name, info.shape, type,
            [from, tensorInfo, type, permuteHeads, progress,
             ggufName](llvm::raw_ostream &os) -> Error {
              if (progress)
                progress(ggufName);
              Expected<std::vector<float>> values = from->readAsFloat(*tensorInfo);
              from->releasePages();
              if (!values)
                return values.takeError();
              if (permuteHeads)
                *values = permuteRotaryRows(*values, tensorInfo->shape[0],
                                            tensorInfo->shape[1], permuteHeads);
              std::vector<uint8_t> bytes;
              if (Error err = io::encodeFromFloat(safetensorsType(type), *values, bytes))
                return err;
              os.write(reinterpret_cast<const char *>(bytes.data()), bytes.size());
              return Error::success();
            }))
      return artifactError(llvm::toString(std::move(err)));
    ++summary.tensors;
  }

  // The stacked experts, and a quantized shared expert: ggml blocks of the
  // codes, scales and zeros as stored.
  auto writeBlocks = [this](const Piece *p, io::GGMLType type, llvm::raw_ostream &os) -> Error {
    Expected<quant::Scheme> scheme = schemeOf(*p);
    if (!scheme)
      return scheme.takeError();
    Expected<std::vector<uint32_t>> words = readWords(*p);
    if (!words)
      return words.takeError();
    Expected<std::vector<float>> scales = readFloats(*p, "scales"),
                                 zeros = readFloats(*p, "zeros");
    if (!scales)
      return scales.takeError();
    if (!zeros)
      return zeros.takeError();
    if (scheme->symmetric)
      zeros->assign(scales->size(), scheme->symmetricZero());
    std::vector<uint8_t> blocks;
    if (Error err = io::packGGMLBlocks(type, quant::unpackCodes(*words, p->rows, p->cols, *scheme),
                                       *scales, *zeros, blocks))
      return artifactError(p->where + ": " + llvm::toString(std::move(err)));
    os.write(reinterpret_cast<const char *>(blocks.data()), blocks.size());
    for (auto &entry : files)
      entry.second->releasePages();
    return Error::success();
  };
  std::map<io::GGMLType, int64_t> stacksOfType;
  for (auto &[key, stack] : stacks) {
    std::string name = llvm::formatv("blk.{0}.ffn_{1}_exps.weight", key.first, key.second);
    const Piece *first = stack.experts.front();
    std::vector<int64_t> shape{params->experts, first->rows, first->cols};
    const Stack *plan = &stack;
    if (Error err = gguf.addTensor(
            name, shape, stack.type,
            [plan, name, progress, writeBlocks](llvm::raw_ostream &os) -> Error {
              if (progress)
                progress(name);
              for (const Piece *p : plan->experts)
                if (Error err = writeBlocks(p, plan->type, os))
                  return err;
              return Error::success();
            }))
      return artifactError(llvm::toString(std::move(err)));
    ++summary.tensors;
    summary.dequantized += stack.experts.size();
    ++stacksOfType[stack.type];
  }
  for (auto &[key, entry] : shared) {
    std::string name = llvm::formatv("blk.{0}.ffn_{1}_shexp.weight", key.first, key.second);
    auto [piece, type] = entry;
    if (Error err = gguf.addTensor(
            name, {piece->rows, piece->cols}, type,
            [piece = piece, type = type, name, progress, writeBlocks](llvm::raw_ostream &os) {
              if (progress)
                progress(name);
              return writeBlocks(piece, type, os);
            }))
      return artifactError(llvm::toString(std::move(err)));
    ++summary.tensors;
    ++summary.dequantized;
  }
  if (!shared.empty())
    summary.groups.push_back(llvm::formatv("shared expert: {0} quantized tensors", shared.size()));
  for (auto [type, count] : stacksOfType)
    summary.groups.push_back(llvm::formatv("{0}: {1} stacked expert tensors", io::ggmlTypeName(type), count));
  summary.bytes = gguf.dataBytes();
  return gguf.writeAtomically(outPath);
}

} // namespace mlir::moeq::artifact::detail
