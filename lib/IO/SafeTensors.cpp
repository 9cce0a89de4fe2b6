//===- SafeTensors.cpp - safetensors reader and writer --------------------===//

#include "moeq/IO/SafeTensors.h"

#include "moeq/IO/AtomicOutput.h"
#include "moeq/IO/Float16.h"
#include "moeq/Runtime/MemoryLimit.h"

#include "llvm/ADT/STLExtras.h"
#include "llvm/ADT/ScopeExit.h"
#include "llvm/Support/Endian.h"
#include "llvm/Support/JSON.h"
#include "llvm/Support/MathExtras.h"
#include "llvm/Support/raw_ostream.h"

#include <sys/mman.h>
#include <unistd.h>
#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>

using namespace llvm;
using namespace mlir::moeq::io;

//===----------------------------------------------------------------------===//
// DType
//===----------------------------------------------------------------------===//

namespace {
struct DTypeDesc {
  DType Type;
  const char *Name;
  uint8_t Size;
  bool IsFloat;
};
} // namespace

// Indexed by the enum value (checked at compile time below).
static constexpr DTypeDesc DTypeTable[] = {
    {DType::BOOL, "BOOL", 1, false},      {DType::U8, "U8", 1, false},
    {DType::I8, "I8", 1, false},          {DType::F8_E4M3, "F8_E4M3", 1, true},
    {DType::F8_E5M2, "F8_E5M2", 1, true}, {DType::I16, "I16", 2, false},
    {DType::U16, "U16", 2, false},        {DType::F16, "F16", 2, true},
    {DType::BF16, "BF16", 2, true},       {DType::I32, "I32", 4, false},
    {DType::U32, "U32", 4, false},        {DType::F32, "F32", 4, true},
    {DType::F64, "F64", 8, true},         {DType::I64, "I64", 8, false},
    {DType::U64, "U64", 8, false},
};

static constexpr bool isIndexedByEnum() {
  for (size_t I = 0; I < std::size(DTypeTable); ++I)
    if (static_cast<size_t>(DTypeTable[I].Type) != I)
      return false;
  return true;
}
static_assert(isIndexedByEnum(), "DTypeTable out of sync with DType");

static const DTypeDesc &dtypeDesc(DType T) {
  return DTypeTable[static_cast<size_t>(T)];
}

size_t mlir::moeq::io::dtypeSize(DType T) { return dtypeDesc(T).Size; }
StringRef mlir::moeq::io::dtypeName(DType T) { return dtypeDesc(T).Name; }
bool mlir::moeq::io::isFloatingPoint(DType T) { return dtypeDesc(T).IsFloat; }

std::optional<DType> mlir::moeq::io::parseDType(StringRef Name) {
  for (const DTypeDesc &D : DTypeTable)
    if (Name == D.Name)
      return D.Type;
  return std::nullopt;
}

int64_t TensorInfo::numElements() const {
  int64_t N = 1;
  for (int64_t D : shape)
    N *= D;
  return N;
}

/// Product of \p Shape times \p ElemSize, or nullopt on a negative dimension
/// or overflow. Uses the same arithmetic for reading and writing so the two
/// agree on what is representable.
static std::optional<uint64_t> checkedByteSize(ArrayRef<int64_t> Shape,
                                               size_t ElemSize) {
  int64_t N = 1;
  for (int64_t D : Shape) {
    if (D < 0 || MulOverflow(N, D, N))
      return std::nullopt;
  }
  int64_t Bytes;
  if (MulOverflow(N, static_cast<int64_t>(ElemSize), Bytes))
    return std::nullopt;
  return static_cast<uint64_t>(Bytes);
}

static std::string shapeString(ArrayRef<int64_t> Shape) {
  std::string S = "[";
  raw_string_ostream OS(S);
  interleaveComma(Shape, OS);
  OS << "]";
  return S;
}

//===----------------------------------------------------------------------===//
// Float decoding
//===----------------------------------------------------------------------===//

template <typename Fn>
static Expected<std::vector<float>> decodeEach(ArrayRef<uint8_t> Bytes, size_t Size,
                                               StringRef Context, Fn Decode) {
  uint64_t Elements = Bytes.size() / Size;
  // Refused before the allocation fails (a shape the machine cannot hold).
  std::string TooLarge = ::moeq::checkAllocationSize(
      Elements * sizeof(float), (Context + ": decoding " + Twine(Elements) +
                                 " elements to f32").str());
  if (!TooLarge.empty())
    return createStringError(std::errc::not_enough_memory, "%s", TooLarge.c_str());
  std::vector<float> Out(Elements);
  const uint8_t *P = Bytes.data();
  for (float &V : Out) {
    V = Decode(P);
    P += Size;
  }
  return Out;
}

Expected<std::vector<float>>
mlir::moeq::io::decodeToFloat(DType T, ArrayRef<uint8_t> Bytes, StringRef Context) {
  namespace endian = support::endian;
  if (Bytes.size() % dtypeSize(T) != 0)
    return createStringError(std::errc::invalid_argument,
                             "%s: %zu bytes is not a whole number of %s "
                             "elements",
                             Context.str().c_str(), Bytes.size(),
                             dtypeName(T).str().c_str());
  switch (T) {
  case DType::F32:
    return decodeEach(Bytes, 4, Context, [](const uint8_t *P) {
      return bitsToFloat(endian::read32le(P));
    });
  case DType::F64:
    return decodeEach(Bytes, 8, Context, [](const uint8_t *P) {
      uint64_t U = endian::read64le(P);
      double D;
      std::memcpy(&D, &U, sizeof(D));
      return static_cast<float>(D);
    });
  case DType::BF16:
    return decodeEach(Bytes, 2, Context, [](const uint8_t *P) {
      return bf16ToFloat(endian::read16le(P));
    });
  case DType::F16:
    return decodeEach(Bytes, 2, Context, [](const uint8_t *P) {
      return halfToFloat(endian::read16le(P));
    });
  case DType::F8_E4M3:
    return decodeEach(Bytes, 1, Context,
                      [](const uint8_t *P) { return float8E4M3FNToFloat(*P); });
  case DType::F8_E5M2:
    return decodeEach(Bytes, 1, Context,
                      [](const uint8_t *P) { return float8E5M2ToFloat(*P); });
  default:
    return createStringError(std::errc::invalid_argument,
                             "%s: dtype %s is not a floating-point type",
                             Context.str().c_str(), dtypeName(T).str().c_str());
  }
}

//===----------------------------------------------------------------------===//
// SafeTensorsFile
//===----------------------------------------------------------------------===//

static Error fileError(StringRef Path, const Twine &Msg) {
  return createStringError(std::errc::invalid_argument, "%s: %s",
                           Path.str().c_str(), Msg.str().c_str());
}

static Error tensorError(StringRef Path, StringRef Tensor, const Twine &Msg) {
  return fileError(Path, "tensor '" + Tensor + "': " + Msg);
}

SafeTensorsFile::~SafeTensorsFile() {
  if (FD >= 0)
    sys::fs::closeFile(FD);
}

/// pread until \p Out is full; an error names \p Path.
static Error preadAll(int FD, uint64_t Offset, MutableArrayRef<uint8_t> Out,
                      StringRef Path) {
  uint8_t *P = Out.data();
  size_t Left = Out.size();
  while (Left) {
    ssize_t Got = ::pread(FD, P, std::min<size_t>(Left, size_t(1) << 30), off_t(Offset));
    if (Got < 0 && errno == EINTR)
      continue;
    if (Got <= 0)
      return fileError(Path, Got < 0 ? "cannot read: " + Twine(std::strerror(errno))
                                     : Twine("unexpected end of file"));
    P += Got;
    Offset += uint64_t(Got);
    Left -= size_t(Got);
  }
  return Error::success();
}

Expected<std::unique_ptr<SafeTensorsFile>>
SafeTensorsFile::open(StringRef Path) {
  Expected<sys::fs::file_t> FD = sys::fs::openNativeFileForRead(Path);
  if (!FD)
    return fileError(Path, "cannot open: " + toString(FD.takeError()));
  // Kept open for the lazy mapping and readBytes(); closed on failure.
  scope_exit CloseFD([&] {
    if (*FD >= 0)
      sys::fs::closeFile(*FD);
  });

  sys::fs::file_status Status;
  if (std::error_code EC = sys::fs::status(*FD, Status))
    return fileError(Path, "cannot stat: " + EC.message());
  if (!sys::fs::is_regular_file(Status))
    return fileError(Path, "not a regular file");
  uint64_t Size = Status.getSize();
  if (Size < 8)
    return fileError(Path, "file is " + Twine(Size) +
                               " bytes, shorter than the 8-byte header "
                               "length prefix");
  uint8_t Prefix[8];
  if (Error E = preadAll(*FD, 0, Prefix, Path))
    return std::move(E);
  uint64_t HeaderLen = support::endian::read64le(Prefix);
  uint64_t Available = Size - 8;
  if (HeaderLen > Available)
    return fileError(Path, "header length " + Twine(HeaderLen) +
                               " exceeds the " + Twine(Available) +
                               " bytes after the length prefix");
  // The format's reference implementation refuses larger headers (its
  // MAX_HEADER_SIZE); so does moeq, before allocating one (a sparse file
  // can claim any length).
  if (HeaderLen > ::moeq::kSafeTensorsMaxHeaderBytes)
    return fileError(Path, "header length " + Twine(HeaderLen) + " exceeds safetensors' limit of " +
                               Twine(::moeq::kSafeTensorsMaxHeaderBytes) + " bytes");
  std::string Header(HeaderLen, '\0');
  if (Error E = preadAll(*FD, 8,
                         MutableArrayRef<uint8_t>(reinterpret_cast<uint8_t *>(Header.data()),
                                                  Header.size()),
                         Path))
    return std::move(E);

  std::unique_ptr<SafeTensorsFile> File(new SafeTensorsFile());
  File->Path = Path.str();
  File->DataStart = 8 + HeaderLen;
  File->FileSize = Size;
  if (Error E = File->parseHeader(Header, Available - HeaderLen))
    return std::move(E);
  File->FD = *FD;
  *FD = -1; // owned by File now
  return File;
}

void SafeTensorsFile::ensureMapped() const {
  if (FD < 0)
    return;
  std::call_once(MapOnce, [&] {
    std::error_code EC;
    sys::fs::mapped_file_region Region(FD, sys::fs::mapped_file_region::readonly, FileSize, 0,
                                       EC);
    if (EC)
      report_fatal_error(Twine(Path) + ": cannot mmap: " + EC.message());
    Image = ArrayRef<uint8_t>(reinterpret_cast<const uint8_t *>(Region.const_data()),
                              FileSize);
    Mapping = std::move(Region);
  });
}

Error SafeTensorsFile::readBytes(const TensorInfo &Info, uint64_t Offset,
                                 MutableArrayRef<uint8_t> Out) const {
  if (Offset > Info.numBytes() || Out.size() > Info.numBytes() - Offset)
    return tensorError(Path, Info.name,
                       "bytes [" + Twine(Offset) + ", " + Twine(Offset + Out.size()) +
                           ") are outside the tensor's " + Twine(Info.numBytes()));
  if (FD < 0) {
    std::memcpy(Out.data(), Image.data() + DataStart + Info.begin + Offset, Out.size());
    return Error::success();
  }
  return preadAll(FD, DataStart + Info.begin + Offset, Out, Path);
}

Error SafeTensorsFile::forEachChunk(
    const TensorInfo &Info, uint64_t Begin, uint64_t Size, uint64_t ChunkBytes,
    function_ref<Error(uint64_t, ArrayRef<uint8_t>)> Consume) const {
  std::vector<uint8_t> Chunk(std::min(Size, std::max<uint64_t>(ChunkBytes, 1)));
  for (uint64_t Done = 0; Done < Size;) {
    MutableArrayRef<uint8_t> Bytes(Chunk.data(), std::min<uint64_t>(Size - Done, Chunk.size()));
    if (Error E = readBytes(Info, Begin + Done, Bytes))
      return E;
    if (Error E = Consume(Done, Bytes))
      return E;
    Done += Bytes.size();
  }
  return Error::success();
}

void SafeTensorsFile::releasePages() const {
  if (!Mapping)
    return;
  // Not mapped_file_region::dontNeed(): it uses posix_madvise, whose
  // POSIX_MADV_DONTNEED glibc ignores on Linux. MADV_DONTNEED on a
  // read-only file mapping drops the pages from the resident set; reads
  // fault them back in from the page cache.
  ::madvise(const_cast<char *>(Mapping.const_data()), Mapping.size(), MADV_DONTNEED);
}

Expected<std::unique_ptr<SafeTensorsFile>>
SafeTensorsFile::parse(ArrayRef<uint8_t> Image, StringRef Path) {
  if (Image.size() < 8)
    return fileError(Path, "file is " + Twine(Image.size()) +
                               " bytes, shorter than the 8-byte header "
                               "length prefix");
  uint64_t HeaderLen = support::endian::read64le(Image.data());
  uint64_t Available = Image.size() - 8;
  if (HeaderLen > Available)
    return fileError(Path, "header length " + Twine(HeaderLen) +
                               " exceeds the " + Twine(Available) +
                               " bytes after the length prefix");

  std::unique_ptr<SafeTensorsFile> File(new SafeTensorsFile());
  File->Path = Path.str();
  File->Image = Image;
  File->FileSize = Image.size();
  File->DataStart = 8 + HeaderLen;
  StringRef Header(reinterpret_cast<const char *>(Image.data() + 8), HeaderLen);
  if (Error E = File->parseHeader(Header, Available - HeaderLen))
    return std::move(E);
  return File;
}

/// Reads a JSON array of non-negative integers. JSON integers only: "2.0"
/// would be accepted by getAsInteger() but the reference implementation
/// rejects it, so we do too.
static Error readUIntArray(const json::Value *V, StringRef Key, StringRef Path,
                           StringRef Tensor, std::vector<uint64_t> &Out) {
  if (!V)
    return tensorError(Path, Tensor, "missing '" + Key + "'");
  const json::Array *A = V->getAsArray();
  if (!A)
    return tensorError(Path, Tensor, "'" + Key + "' is not an array");
  for (const json::Value &Elt : *A) {
    std::optional<uint64_t> U = Elt.getAsUINT64();
    if (!U) {
      std::optional<int64_t> I = Elt.getAsInteger();
      bool Negative =
          I ? *I < 0 : (Elt.getAsNumber() && *Elt.getAsNumber() < 0);
      return tensorError(Path, Tensor,
                         "'" + Key + "' contains a " +
                             (Negative ? "negative value" : "non-integer"));
    }
    Out.push_back(*U);
  }
  return Error::success();
}

static Expected<TensorInfo> parseEntry(StringRef Path, StringRef Name,
                                       const json::Value &V,
                                       uint64_t DataSize) {
  const json::Object *O = V.getAsObject();
  if (!O)
    return tensorError(Path, Name, "entry is not a JSON object");

  TensorInfo Info;
  Info.name = Name.str();

  const json::Value *DTypeV = O->get("dtype");
  if (!DTypeV)
    return tensorError(Path, Name, "missing 'dtype'");
  std::optional<StringRef> DTypeS = DTypeV->getAsString();
  if (!DTypeS)
    return tensorError(Path, Name, "'dtype' is not a string");
  std::optional<DType> T = parseDType(*DTypeS);
  if (!T)
    return tensorError(Path, Name, "unknown dtype '" + *DTypeS + "'");
  Info.dtype = *T;

  std::vector<uint64_t> Dims;
  if (Error E = readUIntArray(O->get("shape"), "shape", Path, Name, Dims))
    return std::move(E);
  for (uint64_t D : Dims) {
    if (D > uint64_t(std::numeric_limits<int64_t>::max()))
      return tensorError(Path, Name, "dimension " + Twine(D) + " too large");
    Info.shape.push_back(static_cast<int64_t>(D));
  }

  std::vector<uint64_t> Offsets;
  if (Error E = readUIntArray(O->get("data_offsets"), "data_offsets", Path,
                              Name, Offsets))
    return std::move(E);
  if (Offsets.size() != 2)
    return tensorError(Path, Name,
                       "'data_offsets' must have 2 elements, has " +
                           Twine(Offsets.size()));
  Info.begin = Offsets[0];
  Info.end = Offsets[1];
  if (Info.begin > Info.end)
    return tensorError(Path, Name,
                       "data_offsets begin " + Twine(Info.begin) +
                           " is greater than end " + Twine(Info.end));
  if (Info.end > DataSize)
    return tensorError(Path, Name,
                       "data_offsets end " + Twine(Info.end) +
                           " is beyond the data section (" + Twine(DataSize) +
                           " bytes)");

  std::optional<uint64_t> Expected =
      checkedByteSize(Info.shape, dtypeSize(Info.dtype));
  if (!Expected)
    return tensorError(Path, Name,
                       "shape " + shapeString(Info.shape) +
                           " overflows the addressable size");
  if (*Expected != Info.numBytes())
    return tensorError(Path, Name,
                       "shape " + shapeString(Info.shape) + " of " +
                           dtypeName(Info.dtype) + " needs " +
                           Twine(*Expected) + " bytes but data_offsets span " +
                           Twine(Info.numBytes()));
  return Info;
}

static Error parseMetadata(StringRef Path, const json::Value &V,
                           std::map<std::string, std::string> &Out) {
  const json::Object *O = V.getAsObject();
  if (!O)
    return fileError(Path, "'__metadata__' is not a JSON object");
  for (const auto &KV : *O) {
    std::optional<StringRef> S = KV.second.getAsString();
    if (!S)
      return fileError(Path, "'__metadata__' entry '" + KV.first.str() +
                                 "' is not a string");
    Out[KV.first.str()] = S->str();
  }
  return Error::success();
}

Error SafeTensorsFile::parseHeader(StringRef HeaderText, uint64_t DataSize) {
  Expected<json::Value> Root = json::parse(HeaderText);
  if (!Root)
    return fileError(Path,
                     "header is not valid JSON: " + toString(Root.takeError()));
  const json::Object *O = Root->getAsObject();
  if (!O)
    return fileError(Path, "header is not a JSON object");

  for (const auto &KV : *O) {
    StringRef Key = KV.first;
    if (Key == "__metadata__") {
      if (Error E = parseMetadata(Path, KV.second, Metadata))
        return E;
      continue;
    }
    Expected<TensorInfo> Info = parseEntry(Path, Key, KV.second, DataSize);
    if (!Info)
      return Info.takeError();
    Tensors.push_back(std::move(*Info));
  }
  // json::Object is a hash map; sort for a stable, searchable order.
  llvm::sort(Tensors, [](const TensorInfo &A, const TensorInfo &B) {
    return A.name < B.name;
  });

  // Two tensors sharing bytes would let a write through one (e.g. in a
  // converted copy) corrupt the other; the format forbids it.
  std::vector<const TensorInfo *> ByOffset;
  for (const TensorInfo &T : Tensors)
    if (T.begin != T.end)
      ByOffset.push_back(&T);
  llvm::sort(ByOffset, [](const TensorInfo *A, const TensorInfo *B) {
    return std::tie(A->begin, A->end, A->name) <
           std::tie(B->begin, B->end, B->name);
  });
  for (size_t I = 1; I < ByOffset.size(); ++I) {
    const TensorInfo *Prev = ByOffset[I - 1], *Cur = ByOffset[I];
    if (Cur->begin < Prev->end)
      return tensorError(Path, Cur->name,
                         "data_offsets [" + Twine(Cur->begin) + ", " +
                             Twine(Cur->end) + ") overlap tensor '" +
                             Prev->name + "' [" + Twine(Prev->begin) + ", " +
                             Twine(Prev->end) + ")");
  }
  return Error::success();
}

const TensorInfo *SafeTensorsFile::find(StringRef Name) const {
  auto It = llvm::partition_point(
      Tensors, [&](const TensorInfo &T) { return StringRef(T.name) < Name; });
  if (It == Tensors.end() || It->name != Name)
    return nullptr;
  return &*It;
}

ArrayRef<uint8_t> SafeTensorsFile::data(const TensorInfo &Info) const {
  assert(&Info >= Tensors.data() && &Info < Tensors.data() + Tensors.size() &&
         "TensorInfo does not belong to this file");
  ensureMapped();
  return Image.slice(DataStart + Info.begin, Info.numBytes());
}

Expected<std::vector<float>>
SafeTensorsFile::readAsFloat(const TensorInfo &Info) const {
  return decodeToFloat(Info.dtype, data(Info),
                       Path + ": tensor '" + Info.name + "'");
}

Expected<std::vector<float>>
SafeTensorsFile::readAsFloat(StringRef Name) const {
  const TensorInfo *Info = find(Name);
  if (!Info)
    return tensorError(Path, Name, "no such tensor");
  return readAsFloat(*Info);
}

//===----------------------------------------------------------------------===//
// SafeTensorsWriter
//===----------------------------------------------------------------------===//

struct SafeTensorsWriter::Entry {
  std::string Name;
  DType Type;
  std::vector<int64_t> Shape;
  uint64_t NumBytes;
  std::vector<uint8_t> Owned; // Used when Produce is empty and !Declared.
  Producer Produce;
  bool Declared = false; // Bytes come through a StreamingFile.
};

SafeTensorsWriter::SafeTensorsWriter() = default;
SafeTensorsWriter::~SafeTensorsWriter() = default;
SafeTensorsWriter::SafeTensorsWriter(SafeTensorsWriter &&) = default;
SafeTensorsWriter &SafeTensorsWriter::operator=(SafeTensorsWriter &&) = default;

size_t SafeTensorsWriter::size() const { return Entries.size(); }

bool SafeTensorsWriter::contains(StringRef Name) const {
  return Entries.count(Name.str());
}

void SafeTensorsWriter::setMetadata(StringRef Key, StringRef Value) {
  Metadata[Key.str()] = Value.str();
}

static Error writerError(StringRef Name, const Twine &Msg) {
  return createStringError(std::errc::invalid_argument, "tensor '%s': %s",
                           Name.str().c_str(), Msg.str().c_str());
}

Error SafeTensorsWriter::checkNewTensor(StringRef Name, DType T,
                                        ArrayRef<int64_t> Shape,
                                        uint64_t &NumBytes) const {
  if (Name.empty())
    return writerError(Name, "empty tensor name");
  if (Name == "__metadata__")
    return writerError(Name, "name is reserved for the metadata map");
  if (contains(Name))
    return writerError(Name, "duplicate tensor name");
  std::optional<uint64_t> Bytes = checkedByteSize(Shape, dtypeSize(T));
  if (!Bytes)
    return writerError(Name, "invalid shape " + shapeString(Shape));
  NumBytes = *Bytes;
  return Error::success();
}

Error SafeTensorsWriter::addTensor(StringRef Name, DType T,
                                   ArrayRef<int64_t> Shape,
                                   std::vector<uint8_t> &&Bytes) {
  uint64_t NumBytes;
  if (Error E = checkNewTensor(Name, T, Shape, NumBytes))
    return E;
  if (Bytes.size() != NumBytes)
    return writerError(Name, "shape " + shapeString(Shape) + " of " +
                                 dtypeName(T) + " needs " + Twine(NumBytes) +
                                 " bytes, got " + Twine(Bytes.size()));
  auto E = std::make_unique<Entry>(
      Entry{Name.str(), T, Shape.vec(), NumBytes, std::move(Bytes), nullptr});
  Entries.emplace(Name.str(), std::move(E));
  return Error::success();
}

Error SafeTensorsWriter::addTensor(StringRef Name, DType T,
                                   ArrayRef<int64_t> Shape,
                                   ArrayRef<uint8_t> Bytes) {
  return addTensor(Name, T, Shape,
                   std::vector<uint8_t>(Bytes.begin(), Bytes.end()));
}

Error SafeTensorsWriter::addTensor(StringRef Name, DType T,
                                   ArrayRef<int64_t> Shape, Producer Produce) {
  uint64_t NumBytes;
  if (Error E = checkNewTensor(Name, T, Shape, NumBytes))
    return E;
  if (!Produce)
    return writerError(Name, "null producer");
  auto E = std::make_unique<Entry>(
      Entry{Name.str(), T, Shape.vec(), NumBytes, {}, std::move(Produce)});
  Entries.emplace(Name.str(), std::move(E));
  return Error::success();
}

Error SafeTensorsWriter::declareTensor(StringRef Name, DType T,
                                       ArrayRef<int64_t> Shape) {
  uint64_t NumBytes;
  if (Error E = checkNewTensor(Name, T, Shape, NumBytes))
    return E;
  auto E = std::make_unique<Entry>(
      Entry{Name.str(), T, Shape.vec(), NumBytes, {}, nullptr, true});
  Entries.emplace(Name.str(), std::move(E));
  return Error::success();
}

/// Appends \p Values little-endian with \p Encode producing each element.
template <typename T, typename Fn>
static void pack(ArrayRef<T> Values, size_t Size, std::vector<uint8_t> &Out,
                 Fn Encode) {
  size_t Start = Out.size();
  Out.resize(Start + Values.size() * Size);
  uint8_t *P = Out.data() + Start;
  for (const T &V : Values) {
    Encode(P, V);
    P += Size;
  }
}

Error mlir::moeq::io::encodeFromFloat(DType T, ArrayRef<float> Values,
                                std::vector<uint8_t> &Out) {
  namespace endian = support::endian;
  switch (T) {
  case DType::F32:
    pack(Values, 4, Out,
         [](uint8_t *P, float V) { endian::write32le(P, floatToBits(V)); });
    return Error::success();
  case DType::F64:
    pack(Values, 8, Out, [](uint8_t *P, float V) {
      double D = V;
      uint64_t U;
      std::memcpy(&U, &D, sizeof(U));
      endian::write64le(P, U);
    });
    return Error::success();
  case DType::F16:
    pack(Values, 2, Out,
         [](uint8_t *P, float V) { endian::write16le(P, floatToHalf(V)); });
    return Error::success();
  case DType::BF16:
    pack(Values, 2, Out,
         [](uint8_t *P, float V) { endian::write16le(P, floatToBF16(V)); });
    return Error::success();
  default:
    return createStringError(std::errc::invalid_argument,
                             "cannot encode floats as %s",
                             dtypeName(T).str().c_str());
  }
}

Error SafeTensorsWriter::addFloats(StringRef Name, DType T,
                                   ArrayRef<int64_t> Shape,
                                   ArrayRef<float> Values) {
  std::vector<uint8_t> Bytes;
  if (Error E = encodeFromFloat(T, Values, Bytes))
    return writerError(Name, toString(std::move(E)));
  return addTensor(Name, T, Shape, std::move(Bytes));
}

Error SafeTensorsWriter::addF32(StringRef Name, ArrayRef<int64_t> Shape,
                                ArrayRef<float> Values) {
  return addFloats(Name, DType::F32, Shape, Values);
}

Error SafeTensorsWriter::addF16(StringRef Name, ArrayRef<int64_t> Shape,
                                ArrayRef<float> Values) {
  return addFloats(Name, DType::F16, Shape, Values);
}

Error SafeTensorsWriter::addBF16(StringRef Name, ArrayRef<int64_t> Shape,
                                 ArrayRef<float> Values) {
  return addFloats(Name, DType::BF16, Shape, Values);
}

Error SafeTensorsWriter::addI32(StringRef Name, ArrayRef<int64_t> Shape,
                                ArrayRef<int32_t> Values) {
  std::vector<uint8_t> Bytes;
  pack(Values, 4, Bytes, [](uint8_t *P, int32_t V) {
    support::endian::write32le(P, static_cast<uint32_t>(V));
  });
  return addTensor(Name, DType::I32, Shape, std::move(Bytes));
}

std::vector<const SafeTensorsWriter::Entry *>
SafeTensorsWriter::layoutOrder() const {
  std::vector<const Entry *> Order;
  for (const auto &KV : Entries)
    Order.push_back(KV.second.get());
  // Largest elements first keeps every tensor naturally aligned without
  // padding (all sizes are powers of two); stable_sort keeps name order
  // within one size because Entries iterates sorted by name.
  llvm::stable_sort(Order, [](const Entry *A, const Entry *B) {
    return dtypeSize(A->Type) > dtypeSize(B->Type);
  });
  return Order;
}

std::string SafeTensorsWriter::buildHeader() const {
  std::map<const Entry *, uint64_t> Begin;
  uint64_t Offset = 0;
  for (const Entry *E : layoutOrder()) {
    Begin[E] = Offset;
    Offset += E->NumBytes;
  }

  std::string Header;
  raw_string_ostream OS(Header);
  json::OStream J(OS);
  J.object([&] {
    if (!Metadata.empty())
      J.attributeObject("__metadata__", [&] {
        for (const auto &KV : Metadata)
          J.attribute(KV.first, KV.second);
      });
    for (const auto &KV : Entries) {
      const Entry &E = *KV.second;
      J.attributeObject(E.Name, [&] {
        J.attribute("dtype", dtypeName(E.Type));
        J.attributeArray("shape", [&] {
          for (int64_t D : E.Shape)
            J.value(D);
        });
        J.attributeArray("data_offsets", [&] {
          J.value(Begin[&E]);
          J.value(Begin[&E] + E.NumBytes);
        });
      });
    }
  });
  OS.flush();
  // Pad so the data section (at 8 + header size) starts 8-byte aligned,
  // which lets readers view F64/I64 tensors in place.
  Header.append((8 - Header.size() % 8) % 8, ' ');
  return Header;
}

Error SafeTensorsWriter::write(raw_ostream &OS) const {
  std::string Header = buildHeader();
  char Len[8];
  support::endian::write64le(Len, Header.size());
  OS.write(Len, sizeof(Len));
  OS << Header;
  for (const Entry *E : layoutOrder())
    if (E->Declared)
      return writerError(E->Name, "is declared for streaming; write the file "
                                  "through openStreaming()");
  for (const Entry *E : layoutOrder()) {
    if (!E->Produce) {
      OS.write(reinterpret_cast<const char *>(E->Owned.data()),
               E->Owned.size());
      continue;
    }
    uint64_t Start = OS.tell();
    if (Error Err = E->Produce(OS))
      return Err;
    uint64_t Written = OS.tell() - Start;
    // A short or long producer would silently shift every later tensor.
    if (Written != E->NumBytes)
      return writerError(E->Name, "producer wrote " + Twine(Written) +
                                      " bytes, expected " + Twine(E->NumBytes));
  }
  return Error::success();
}

Error SafeTensorsWriter::writeAtomically(StringRef Path) const {
  // I/O errors from writeFileAtomically already name the file; tensor
  // errors from write() do not.
  return writeFileAtomically(Path, [&](raw_ostream &OS) -> Error {
    if (Error E = write(OS))
      return fileError(Path, toString(std::move(E)));
    return Error::success();
  });
}

//===----------------------------------------------------------------------===//
// SafeTensorsWriter::StreamingFile
//===----------------------------------------------------------------------===//

struct SafeTensorsWriter::StreamingFile::Slot {
  uint64_t Begin = 0, Size = 0;
  bool Declared = false;
  std::atomic<uint64_t> BytesWritten{0};
  Slot() = default;
  Slot(Slot &&Other)
      : Begin(Other.Begin), Size(Other.Size), Declared(Other.Declared),
        BytesWritten(Other.BytesWritten.load()) {}
};

SafeTensorsWriter::StreamingFile::StreamingFile() = default;
SafeTensorsWriter::StreamingFile::~StreamingFile() = default;

Expected<std::unique_ptr<SafeTensorsWriter::StreamingFile>>
SafeTensorsWriter::openStreaming(StringRef Path) const {
  std::unique_ptr<StreamingFile> Stream(new StreamingFile());
  std::string Header = buildHeader();
  uint64_t DataStart = 8 + Header.size();
  std::vector<const Entry *> Order = layoutOrder();
  Stream->Slots.reserve(Order.size());
  uint64_t Offset = DataStart;
  for (const Entry *E : Order) {
    StreamingFile::Slot Slot;
    Slot.Begin = Offset;
    Slot.Size = E->NumBytes;
    Slot.Declared = E->Declared;
    Stream->SlotOf[E->Name] = Stream->Slots.size();
    Stream->Slots.push_back(std::move(Slot));
    Offset += E->NumBytes;
  }
  Stream->FileSize = Offset;

  Expected<std::unique_ptr<AtomicOutputFile>> File = AtomicOutputFile::create(Path);
  if (!File)
    return File.takeError();
  Stream->File = std::move(*File);
  AtomicOutputFile &Out = *Stream->File;
  if (Error E = Out.resize(Stream->FileSize))
    return std::move(E);
  char Len[8];
  support::endian::write64le(Len, Header.size());
  if (Error E = Out.writeAt(0, ArrayRef<uint8_t>(reinterpret_cast<const uint8_t *>(Len), 8)))
    return std::move(E);
  if (Error E = Out.writeAt(
          8, ArrayRef<uint8_t>(reinterpret_cast<const uint8_t *>(Header.data()), Header.size())))
    return std::move(E);
  // Tensors with bytes or a producer are written now, in place.
  for (const Entry *E : Order) {
    if (E->Declared)
      continue;
    StreamingFile::Slot &Slot = Stream->Slots[Stream->SlotOf[E->Name]];
    Error Err = Error::success();
    if (!E->Produce) {
      Err = Out.writeAt(Slot.Begin, E->Owned);
    } else {
      std::string Bytes;
      raw_string_ostream OS(Bytes);
      if (Error PE = E->Produce(OS))
        return fileError(Path, toString(std::move(PE)));
      OS.flush();
      if (Bytes.size() != E->NumBytes)
        return fileError(Path, toString(writerError(
                                   E->Name, "producer wrote " + Twine(Bytes.size()) +
                                                " bytes, expected " + Twine(E->NumBytes))));
      Err = Out.writeAt(Slot.Begin, ArrayRef<uint8_t>(
                                        reinterpret_cast<const uint8_t *>(Bytes.data()),
                                        Bytes.size()));
    }
    if (Err)
      return std::move(Err);
    Slot.BytesWritten = Slot.Size;
  }
  return Stream;
}

Error SafeTensorsWriter::StreamingFile::writeTensor(StringRef Name, ArrayRef<uint8_t> Bytes) {
  auto It = SlotOf.find(Name.str());
  if (It != SlotOf.end() && Slots[It->second].Declared && Bytes.size() != Slots[It->second].Size)
    return fileError(File->path(),
                     toString(writerError(Name, "needs " + Twine(Slots[It->second].Size) +
                                                    " bytes, got " + Twine(Bytes.size()))));
  return writeTensorPart(Name, 0, Bytes);
}

Error SafeTensorsWriter::StreamingFile::writeTensorPart(StringRef Name, uint64_t Offset,
                                                        ArrayRef<uint8_t> Bytes) {
  auto It = SlotOf.find(Name.str());
  if (It == SlotOf.end() || !Slots[It->second].Declared)
    return fileError(File->path(), toString(writerError(Name, "not declared for streaming")));
  Slot &S = Slots[It->second];
  if (Offset > S.Size || Bytes.size() > S.Size - Offset)
    return fileError(File->path(),
                     toString(writerError(Name, "bytes [" + Twine(Offset) + ", " +
                                                    Twine(Offset + Bytes.size()) +
                                                    ") are outside its " + Twine(S.Size))));
  // Counted only when accepted: a rejected piece leaves the count as it was.
  uint64_t Seen = S.BytesWritten.load();
  do {
    if (Seen + Bytes.size() > S.Size)
      return fileError(File->path(), toString(writerError(Name, "written twice")));
  } while (!S.BytesWritten.compare_exchange_weak(Seen, Seen + Bytes.size()));
  return File->writeAt(S.Begin + Offset, Bytes);
}

Error SafeTensorsWriter::StreamingFile::commit() {
  for (const auto &[Name, Index] : SlotOf)
    if (Slots[Index].BytesWritten != Slots[Index].Size)
      return fileError(File->path(),
                       toString(writerError(Name, Slots[Index].BytesWritten
                                                      ? "only partly written"
                                                      : "never written")));
  return File->commit();
}
