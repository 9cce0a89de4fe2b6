//===- Checkpoint.cpp - Hugging Face safetensors checkpoints --------------===//

#include "moeq/IO/Checkpoint.h"

#include <cmath>
#include <limits>

#include "llvm/ADT/STLExtras.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/JSON.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/raw_ostream.h"

#include <set>

using namespace llvm;
using namespace mlir::moeq::io;

static Error pathError(StringRef Path, const Twine &Msg) {
  return createStringError(std::errc::invalid_argument, "%s: %s",
                           Path.str().c_str(), Msg.str().c_str());
}

Expected<std::unique_ptr<Checkpoint>> Checkpoint::open(StringRef Path) {
  sys::fs::file_status Status;
  if (std::error_code EC = sys::fs::status(Path, Status))
    return pathError(Path, "cannot open checkpoint: " + EC.message());

  std::unique_ptr<Checkpoint> Ckpt(new Checkpoint());
  Ckpt->Path = Path.str();

  if (sys::fs::is_regular_file(Status)) {
    StringRef Parent = sys::path::parent_path(Path);
    Ckpt->Directory = Parent.empty() ? "." : Parent.str();
    Expected<unsigned> Shard = Ckpt->openShard(Path);
    if (!Shard)
      return Shard.takeError();
    for (const TensorInfo &T : Ckpt->Shards[*Shard]->tensors())
      Ckpt->Index[T.name] = {*Shard, &T};
    return Ckpt;
  }
  if (!sys::fs::is_directory(Status))
    return pathError(Path, "not a directory or a .safetensors file");

  Ckpt->Directory = Path.str();
  SmallString<256> IndexPath(Path);
  sys::path::append(IndexPath, IndexFileName);
  Error E = sys::fs::exists(IndexPath) ? Ckpt->loadIndex(IndexPath)
                                       : Ckpt->loadAllShards();
  if (E)
    return std::move(E);
  return Ckpt;
}

Expected<unsigned> Checkpoint::openShard(StringRef ShardPath) {
  Expected<std::unique_ptr<SafeTensorsFile>> File =
      SafeTensorsFile::open(ShardPath);
  if (!File)
    return File.takeError();
  Shards.push_back(std::move(*File));
  return Shards.size() - 1;
}

/// Index entries are joined to the checkpoint directory, so a name that is
/// absolute or climbs out with ".." could make us map arbitrary files.
static bool isSafeShardName(StringRef Name) {
  if (Name.empty() || sys::path::is_absolute(Name) ||
      sys::path::is_absolute(Name, sys::path::Style::posix))
    return false;
  for (StringRef Component :
       make_range(sys::path::begin(Name), sys::path::end(Name)))
    if (Component == "..")
      return false;
  return true;
}

static std::string jsonToString(const json::Value &V) {
  if (std::optional<StringRef> S = V.getAsString())
    return S->str();
  std::string Out;
  raw_string_ostream(Out) << V;
  return Out;
}

Error Checkpoint::loadIndex(StringRef IndexPath) {
  ErrorOr<std::unique_ptr<MemoryBuffer>> Buf = MemoryBuffer::getFile(IndexPath);
  if (!Buf)
    return pathError(IndexPath, "cannot read: " + Buf.getError().message());
  Expected<json::Value> Root = json::parse((*Buf)->getBuffer());
  if (!Root)
    return pathError(IndexPath,
                     "not valid JSON: " + toString(Root.takeError()));
  const json::Object *O = Root->getAsObject();
  if (!O)
    return pathError(IndexPath, "not a JSON object");

  if (const json::Value *Meta = O->get("metadata"))
    if (const json::Object *MetaObj = Meta->getAsObject())
      for (const auto &KV : *MetaObj)
        IndexMetadata[KV.first.str()] = jsonToString(KV.second);

  const json::Value *MapV = O->get("weight_map");
  if (!MapV)
    return pathError(IndexPath, "missing 'weight_map'");
  const json::Object *Map = MapV->getAsObject();
  if (!Map)
    return pathError(IndexPath, "'weight_map' is not a JSON object");

  // Sort so that the first error reported does not depend on hash order.
  std::map<std::string, std::string> WeightMap;
  std::set<std::string> ShardNames;
  for (const auto &KV : *Map) {
    std::optional<StringRef> Shard = KV.second.getAsString();
    if (!Shard)
      return pathError(IndexPath, "tensor '" + KV.first.str() +
                                      "': shard name is not a string");
    if (!isSafeShardName(*Shard))
      return pathError(IndexPath, "tensor '" + KV.first.str() + "': shard '" +
                                      *Shard +
                                      "' is not a relative path inside the "
                                      "checkpoint directory");
    WeightMap[KV.first.str()] = Shard->str();
    ShardNames.insert(Shard->str());
  }

  StringMap<unsigned> ShardIndex;
  for (const std::string &Name : ShardNames) {
    SmallString<256> ShardPath(Directory);
    sys::path::append(ShardPath, Name);
    if (!sys::fs::exists(ShardPath))
      return pathError(IndexPath, "shard '" + Name + "' does not exist (" +
                                      ShardPath + ")");
    Expected<unsigned> Shard = openShard(ShardPath);
    if (!Shard)
      return Shard.takeError();
    ShardIndex[Name] = *Shard;
  }

  // Tensors a shard holds but the index does not list are ignored, as in
  // transformers: the index is authoritative.
  for (const auto &[Tensor, ShardName] : WeightMap) {
    unsigned Shard = ShardIndex.lookup(ShardName);
    const TensorInfo *Info = Shards[Shard]->find(Tensor);
    if (!Info)
      return pathError(IndexPath, "tensor '" + Tensor +
                                      "' is mapped to shard '" + ShardName +
                                      "', which does not contain it");
    Index[Tensor] = {Shard, Info};
  }
  return Error::success();
}

Error Checkpoint::loadAllShards() {
  std::vector<std::string> Files;
  std::error_code EC;
  for (sys::fs::directory_iterator It(Directory, EC), End; It != End && !EC;
       It.increment(EC)) {
    StringRef P = It->path();
    // is_regular_file follows symlinks, as in the Hugging Face cache layout.
    if (sys::path::extension(P) == ".safetensors" &&
        sys::fs::is_regular_file(P))
      Files.push_back(P.str());
  }
  if (EC)
    return pathError(Directory, "cannot list directory: " + EC.message());
  if (Files.empty())
    return pathError(Directory,
                     "no *.safetensors files and no " + IndexFileName);
  llvm::sort(Files);

  for (const std::string &File : Files) {
    Expected<unsigned> Shard = openShard(File);
    if (!Shard)
      return Shard.takeError();
    for (const TensorInfo &T : Shards[*Shard]->tensors()) {
      auto [It, Inserted] = Index.try_emplace(T.name, Location{*Shard, &T});
      if (!Inserted)
        return pathError(
            Directory,
            "tensor '" + T.name + "' appears in both '" +
                sys::path::filename(Shards[It->second.Shard]->path()) +
                "' and '" + sys::path::filename(File) + "'");
    }
  }
  return Error::success();
}

const TensorInfo *Checkpoint::find(StringRef Name,
                                   const SafeTensorsFile **File) const {
  auto It = Index.find(Name);
  if (It == Index.end())
    return nullptr;
  if (File)
    *File = Shards[It->second.Shard].get();
  return It->second.Info;
}

Expected<ArrayRef<uint8_t>> Checkpoint::data(StringRef Name) const {
  const SafeTensorsFile *File;
  const TensorInfo *Info = find(Name, &File);
  if (!Info)
    return pathError(Path, "no tensor named '" + Name + "'");
  return File->data(*Info);
}

Expected<std::vector<float>> Checkpoint::readAsFloat(StringRef Name) const {
  const SafeTensorsFile *File;
  const TensorInfo *Info = find(Name, &File);
  if (!Info)
    return pathError(Path, "no tensor named '" + Name + "'");
  return File->readAsFloat(*Info);
}

//===----------------------------------------------------------------------===//
// FP8 block scales
//===----------------------------------------------------------------------===//

static bool isFP8(DType T) {
  return T == DType::F8_E4M3 || T == DType::F8_E5M2;
}

std::string Checkpoint::scaleInvName(StringRef Name) {
  return (Name + "_scale_inv").str();
}

static std::string shapeString(ArrayRef<int64_t> Shape);

Expected<std::optional<std::vector<int64_t>>>
Checkpoint::mxfp4Shape(StringRef Name) const {
  const TensorInfo *Blocks = find(mxfp4BlocksName(Name));
  const TensorInfo *Scales = find(mxfp4ScalesName(Name));
  if (!Blocks || !Scales)
    return std::optional<std::vector<int64_t>>();
  const std::vector<int64_t> &B = Blocks->shape, &S = Scales->shape;
  bool Consistent = Blocks->dtype == DType::U8 && Scales->dtype == DType::U8 &&
                    B.size() >= 3 && B.back() == 16 && S.size() + 1 == B.size() &&
                    std::equal(S.begin(), S.end(), B.begin());
  if (!Consistent)
    return pathError(Path, "MXFP4 tensor '" + Name + "': '" + mxfp4BlocksName(Name) +
                               "' must be U8 [..., rows, blocks, 16] and '" +
                               mxfp4ScalesName(Name) + "' U8 [..., rows, blocks], got " +
                               dtypeName(Blocks->dtype) + " " + shapeString(B) + " and " +
                               dtypeName(Scales->dtype) + " " + shapeString(S));
  std::vector<int64_t> Shape(S.begin(), S.end());
  Shape.back() *= 32;
  return std::optional<std::vector<int64_t>>(std::move(Shape));
}

Expected<std::vector<float>> Checkpoint::readMXFP4(StringRef Name, int64_t Index) const {
  auto Shape = mxfp4Shape(Name);
  if (!Shape)
    return Shape.takeError();
  if (!*Shape)
    return pathError(Path, "no MXFP4 tensor '" + Name + "' ('" + mxfp4BlocksName(Name) +
                               "' and '" + mxfp4ScalesName(Name) + "')");
  const std::vector<int64_t> &Logical = **Shape;
  if (Index >= 0 && (Logical.size() < 3 || Index >= Logical[0]))
    return pathError(Path, "cannot select matrix " + Twine(Index) + " of MXFP4 tensor '" +
                               Name + "' " + shapeString(Logical));
  auto Blocks = data(mxfp4BlocksName(Name));
  auto Scales = data(mxfp4ScalesName(Name));
  if (!Blocks)
    return Blocks.takeError();
  if (!Scales)
    return Scales.takeError();
  // The OCP e2m1 values by code (bit 3: sign).
  static constexpr float E2M1[16] = {0.0f,  0.5f,  1.0f,  1.5f,  2.0f,  3.0f,  4.0f,  6.0f,
                                     -0.0f, -0.5f, -1.0f, -1.5f, -2.0f, -3.0f, -4.0f, -6.0f};
  int64_t Groups = 1;
  for (int64_t Dim : Logical)
    Groups *= Dim;
  Groups /= 32;
  int64_t First = 0;
  if (Index >= 0) {
    Groups /= Logical[0];
    First = Index * Groups;
  }
  std::vector<float> Out(Groups * 32);
  for (int64_t G = 0; G < Groups; ++G) {
    // 2^(s - 127) for s in [0, 255]: exact in f32 except s = 255 (NaN in
    // the OCP format) and the subnormal range, which ldexp handles.
    uint8_t S = (*Scales)[First + G];
    float Scale = S == 255 ? std::numeric_limits<float>::quiet_NaN() : std::ldexp(1.0f, S - 127);
    const uint8_t *Bytes = Blocks->data() + (First + G) * 16;
    for (int J = 0; J < 16; ++J) {
      Out[G * 32 + 2 * J] = E2M1[Bytes[J] & 15] * Scale;
      Out[G * 32 + 2 * J + 1] = E2M1[Bytes[J] >> 4] * Scale;
    }
  }
  return Out;
}

bool Checkpoint::hasBlockScales(StringRef Name) const {
  const TensorInfo *Info = find(Name);
  return Info && isFP8(Info->dtype) && find(scaleInvName(Name));
}

static int64_t ceilDiv(int64_t A, int64_t B) { return (A + B - 1) / B; }

/// The block extent along one dimension of \p Dim elements whose scale has
/// \p Extent entries; \p Given > 0 is checked rather than inferred. 0 if
/// none fits.
static int64_t blockExtent(int64_t Dim, int64_t Extent, int64_t Given) {
  if (Given > 0)
    return ceilDiv(Dim, Given) == Extent ? Given : 0;
  if (ceilDiv(Dim, 128) == Extent)
    return 128;
  if (Extent <= 0)
    return 0;
  int64_t B = ceilDiv(Dim, Extent);
  return ceilDiv(Dim, B) == Extent ? B : 0;
}

static std::string shapeString(ArrayRef<int64_t> Shape) {
  std::string S = "[";
  for (size_t I = 0; I < Shape.size(); ++I)
    S += (I ? ", " : "") + std::to_string(Shape[I]);
  return S + "]";
}

Expected<std::vector<float>>
Checkpoint::readDequantized(StringRef Name, int64_t BlockRows,
                            int64_t BlockCols) const {
  const TensorInfo *W = find(Name);
  if (!W)
    return pathError(Path, "no tensor named '" + Name + "'");
  if (!isFP8(W->dtype))
    return readAsFloat(Name);

  std::string ScaleName = scaleInvName(Name);
  const TensorInfo *S = find(ScaleName);
  auto Fail = [&](const Twine &Msg) {
    return pathError(Path, "tensor '" + Name + "': " + Msg);
  };
  if (!S)
    return Fail(dtypeName(W->dtype) + " tensor has no '" + ScaleName +
                "' block scales (other FP8 scale layouts are not supported)");
  if (S->dtype != DType::F32 && S->dtype != DType::BF16 &&
      S->dtype != DType::F16)
    return Fail("scale '" + ScaleName + "' must be F32, BF16 or F16, got " +
                dtypeName(S->dtype));

  const std::vector<int64_t> &WS = W->shape, &SS = S->shape;
  bool PerTensor = SS.empty() || (SS.size() == 1 && SS[0] == 1);
  int64_t Rows = 1, Cols = 1, Batch = 1, SRows = 1, SCols = 1;
  int64_t BR = 1, BC = 1;
  if (!PerTensor) {
    if (WS.size() < 2)
      return Fail("a block-scaled tensor must have at least 2 dimensions, "
                  "got " +
                  shapeString(WS));
    if (SS.size() != WS.size() ||
        !std::equal(WS.begin(), WS.end() - 2, SS.begin()))
      return Fail("scale '" + ScaleName + "' has shape " + shapeString(SS) +
                  ", which does not match the weight's " + shapeString(WS));
    Rows = WS[WS.size() - 2];
    Cols = WS.back();
    SRows = SS[SS.size() - 2];
    SCols = SS.back();
    for (size_t I = 0; I + 2 < WS.size(); ++I)
      Batch *= WS[I];
    BR = blockExtent(Rows, SRows, BlockRows);
    BC = blockExtent(Cols, SCols, BlockCols);
    if (!BR || !BC) {
      std::string Block = BlockRows > 0 || BlockCols > 0
                              ? " with " + std::to_string(BlockRows) + " x " +
                                    std::to_string(BlockCols) + " blocks"
                              : "";
      return Fail("scale '" + ScaleName + "' has shape " + shapeString(SS) +
                  ", which no block size fits for the weight's " +
                  shapeString(WS) + Block);
    }
  }

  Expected<std::vector<float>> Values = readAsFloat(Name);
  if (!Values)
    return Values.takeError();
  Expected<std::vector<float>> Scales = readAsFloat(ScaleName);
  if (!Scales)
    return Scales.takeError();
  std::vector<float> &V = *Values;
  if (PerTensor) {
    for (float &X : V)
      X *= (*Scales)[0];
    return std::move(V);
  }
  for (int64_t B = 0; B < Batch; ++B)
    for (int64_t R = 0; R < Rows; ++R) {
      float *Row = V.data() + (B * Rows + R) * Cols;
      const float *ScaleRow = Scales->data() + (B * SRows + R / BR) * SCols;
      for (int64_t C = 0; C < Cols; ++C)
        Row[C] *= ScaleRow[C / BC];
    }
  return std::move(V);
}

void Checkpoint::releasePages() const {
  for (const std::unique_ptr<SafeTensorsFile> &Shard : Shards)
    Shard->releasePages();
}

std::vector<StringRef> Checkpoint::tensorNames() const {
  std::vector<StringRef> Names;
  Names.reserve(Index.size());
  for (const auto &KV : Index)
    Names.push_back(KV.getKey());
  llvm::sort(Names);
  return Names;
}
