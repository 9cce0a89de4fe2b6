//===- Checkpoint.cpp - Hugging Face safetensors checkpoints --------------===//

#include "moeq/IO/Checkpoint.h"

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

std::vector<StringRef> Checkpoint::tensorNames() const {
  std::vector<StringRef> Names;
  Names.reserve(Index.size());
  for (const auto &KV : Index)
    Names.push_back(KV.getKey());
  llvm::sort(Names);
  return Names;
}
