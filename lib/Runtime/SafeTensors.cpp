//===- SafeTensors.cpp - bounds-checked safetensors for the runtime -------===//
#include "moeq/Runtime/SafeTensors.h"

#include "moeq/IO/Float16.h" // header-only bit conversions, no LLVM
#include "moeq/Runtime/MemoryLimit.h"

#include <nlohmann/json.hpp>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

using namespace moeq::runtime;
using json = nlohmann::json;
namespace bits = mlir::moeq::io;

namespace {

uint64_t readLittleEndian64(const uint8_t *bytes) {
  uint64_t value = 0;
  for (int i = 7; i >= 0; --i)
    value = (value << 8) | bytes[i];
  return value;
}

Status parseEntry(const std::string &name, const json &value, uint64_t dataSize,
                  TensorEntry &entry) {
  std::string where = "tensor '" + name + "'";
  if (!value.is_object())
    return Status::error(where + ": expected an object");
  auto dtype = value.find("dtype");
  auto shape = value.find("shape");
  auto offsets = value.find("data_offsets");
  if (dtype == value.end() || !dtype->is_string() || shape == value.end() ||
      !shape->is_array() || offsets == value.end() || !offsets->is_array() ||
      offsets->size() != 2)
    return Status::error(where + ": needs \"dtype\", \"shape\" and \"data_offsets\" [begin, end]");
  entry.name = name;
  entry.dtype = dtype->get<std::string>();
  entry.elementSize = safetensorsDTypeSize(entry.dtype);
  if (!entry.elementSize)
    return Status::error(where + ": unknown dtype \"" + entry.dtype + "\"");
  entry.elements = 1;
  for (const json &dim : *shape) {
    if (!dim.is_number_unsigned() || dim.get<uint64_t>() > uint64_t(INT64_MAX))
      return Status::error(where + ": the shape holds " + dim.dump() +
                           ", not a non-negative integer");
    int64_t size = dim.get<int64_t>();
    entry.shape.push_back(size);
    if (__builtin_mul_overflow(entry.elements, size, &entry.elements))
      return Status::error(where + ": the shape's element count overflows");
  }
  for (const json &offset : *offsets)
    if (!offset.is_number_unsigned())
      return Status::error(where + ": data_offsets must be non-negative integers");
  entry.begin = (*offsets)[0].get<uint64_t>();
  entry.end = (*offsets)[1].get<uint64_t>();
  if (entry.begin > entry.end || entry.end > dataSize)
    return Status::error(where + ": data_offsets [" + std::to_string(entry.begin) + ", " +
                         std::to_string(entry.end) + "] are outside the data section of " +
                         std::to_string(dataSize) + " bytes (truncated file?)");
  uint64_t bytes = 0;
  if (__builtin_mul_overflow(uint64_t(entry.elements), uint64_t(entry.elementSize), &bytes) ||
      bytes != entry.end - entry.begin)
    return Status::error(where + ": " + std::to_string(entry.end - entry.begin) +
                         " bytes of data for " + std::to_string(entry.elements) + " " +
                         entry.dtype + " elements");
  return Status();
}

template <typename Convert>
void convertEach(const uint8_t *source, size_t sourceSize, int64_t count, void *destination,
                 size_t destinationSize, Convert convert) {
  auto *out = static_cast<uint8_t *>(destination);
  for (int64_t i = 0; i < count; ++i)
    convert(source + i * sourceSize, out + i * destinationSize);
}

uint16_t load16(const uint8_t *p) {
  uint16_t v;
  std::memcpy(&v, p, 2);
  return v;
}

float loadF32(const uint8_t *p) {
  float v;
  std::memcpy(&v, p, 4);
  return v;
}

/// Decodes one float element of file dtype `from`.
float decodeFloat(const std::string &from, const uint8_t *p) {
  if (from == "F16")
    return bits::halfToFloat(load16(p));
  if (from == "BF16")
    return bits::bf16ToFloat(load16(p));
  return loadF32(p);
}

bool writeAll(int fd, const void *data, size_t size) {
  const auto *bytes = static_cast<const uint8_t *>(data);
  while (size > 0) {
    ssize_t written = ::write(fd, bytes, size);
    if (written < 0 && errno == EINTR)
      continue;
    if (written <= 0)
      return false;
    bytes += written;
    size -= size_t(written);
  }
  return true;
}

} // namespace

size_t moeq::runtime::safetensorsDTypeSize(const std::string &dtype) {
  static const std::map<std::string, size_t> sizes = {
      {"BOOL", 1}, {"U8", 1},  {"I8", 1},  {"F8_E4M3", 1}, {"F8_E5M2", 1},
      {"I16", 2},  {"U16", 2}, {"F16", 2}, {"BF16", 2},    {"I32", 4},
      {"U32", 4},  {"F32", 4}, {"F64", 8}, {"I64", 8},     {"U64", 8}};
  auto it = sizes.find(dtype);
  return it == sizes.end() ? 0 : it->second;
}

SafeTensorsFile::~SafeTensorsFile() {
  if (mapping)
    munmap(mapping, mappingSize);
}

Status SafeTensorsFile::parseHeader(const uint8_t *image, size_t size) {
  if (size < 8)
    return Status::error(filePath + ": truncated safetensors file (" + std::to_string(size) +
                         " bytes, not even the 8-byte header length)");
  uint64_t headerBytes = readLittleEndian64(image);
  // The format's reference implementation refuses larger headers (its
  // MAX_HEADER_SIZE); so does moeq, before parsing one.
  if (headerBytes > ::moeq::kSafeTensorsMaxHeaderBytes && headerBytes <= size - 8)
    return Status::error(filePath + ": header of " + std::to_string(headerBytes) +
                         " bytes exceeds safetensors' limit of " +
                         std::to_string(::moeq::kSafeTensorsMaxHeaderBytes) + " bytes");
  if (headerBytes > size - 8)
    return Status::error(filePath + ": truncated or not a safetensors file (header of " +
                         std::to_string(headerBytes) + " bytes in a file of " +
                         std::to_string(size) + ")");
  json header;
  try {
    header = json::parse(image + 8, image + 8 + headerBytes);
  } catch (const json::exception &error) {
    return Status::error(filePath + ": invalid safetensors header: " + error.what());
  }
  if (!header.is_object())
    return Status::error(filePath + ": invalid safetensors header (not a JSON object)");
  dataSection = image + 8 + headerBytes;
  uint64_t dataSize = size - 8 - headerBytes;
  for (auto it = header.begin(); it != header.end(); ++it) {
    if (it.key() == "__metadata__")
      continue;
    TensorEntry entry;
    MOEQ_RETURN_IF_ERROR(parseEntry(it.key(), it.value(), dataSize, entry)
                             .prefixed(filePath + ": "));
    entries.emplace(it.key(), std::move(entry));
  }
  return Status();
}

Status SafeTensorsFile::open(const std::string &path, std::unique_ptr<SafeTensorsFile> &file) {
  std::unique_ptr<SafeTensorsFile> result(new SafeTensorsFile());
  result->filePath = path;
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return Status::error(path + ": cannot open: " + std::strerror(errno));
  struct stat info;
  if (fstat(fd, &info) != 0 || !S_ISREG(info.st_mode)) {
    ::close(fd);
    return Status::error(path + ": not a regular file");
  }
  result->mappingSize = size_t(info.st_size);
  if (result->mappingSize > 0) {
    void *mapped = mmap(nullptr, result->mappingSize, PROT_READ, MAP_PRIVATE, fd, 0);
    if (mapped == MAP_FAILED) {
      int error = errno;
      ::close(fd);
      return Status::error(path + ": cannot map: " + std::strerror(error));
    }
    result->mapping = mapped;
  }
  ::close(fd);
  MOEQ_RETURN_IF_ERROR(result->parseHeader(static_cast<const uint8_t *>(result->mapping),
                                           result->mappingSize));
  file = std::move(result);
  return Status();
}

Status SafeTensorsFile::parse(std::vector<uint8_t> image, const std::string &path,
                              std::unique_ptr<SafeTensorsFile> &file) {
  std::unique_ptr<SafeTensorsFile> result(new SafeTensorsFile());
  result->filePath = path;
  result->ownedImage = std::move(image);
  MOEQ_RETURN_IF_ERROR(
      result->parseHeader(result->ownedImage.data(), result->ownedImage.size()));
  file = std::move(result);
  return Status();
}

const TensorEntry *SafeTensorsFile::find(const std::string &name) const {
  auto it = entries.find(name);
  return it == entries.end() ? nullptr : &it->second;
}

bool moeq::runtime::canConvert(const std::string &from, DType to) {
  bool floatSource = from == "F16" || from == "BF16" || from == "F32";
  return (floatSource && (to == DType::F16 || to == DType::F32)) ||
         (from == "I32" && to == DType::I32) || (from == "I8" && to == DType::I8);
}

Status moeq::runtime::convertElements(const std::string &from, const uint8_t *source,
                                      int64_t count, DType to, void *destination) {
  bool floatSource = from == "F16" || from == "BF16" || from == "F32";
  if (floatSource && to == DType::F16) {
    if (from == "F16") {
      std::memcpy(destination, source, size_t(count) * 2);
      return Status();
    }
    convertEach(source, safetensorsDTypeSize(from), count, destination, 2,
                [&](const uint8_t *in, uint8_t *out) {
                  uint16_t half = bits::floatToHalf(decodeFloat(from, in));
                  std::memcpy(out, &half, 2);
                });
    return Status();
  }
  if (floatSource && to == DType::F32) {
    // Every F16 and BF16 value is exactly representable in f32.
    convertEach(source, safetensorsDTypeSize(from), count, destination, 4,
                [&](const uint8_t *in, uint8_t *out) {
                  float value = decodeFloat(from, in);
                  std::memcpy(out, &value, 4);
                });
    return Status();
  }
  if ((from == "I32" && to == DType::I32) || (from == "I8" && to == DType::I8)) {
    std::memcpy(destination, source, size_t(count) * dtypeSize(to));
    return Status();
  }
  return Status::error(std::string("cannot convert ") + from + " to " + dtypeName(to) +
                       " (the runtime converts BF16/F16/F32 to f16/f32, I32 to i32 and I8 to i8)");
}

Status moeq::runtime::writeSafeTensors(const std::string &path,
                                       const std::vector<TensorToWrite> &tensors) {
  json header = json::object();
  uint64_t offset = 0;
  std::vector<uint64_t> sizes;
  for (const TensorToWrite &tensor : tensors) {
    size_t elementSize = safetensorsDTypeSize(tensor.dtype);
    if (!elementSize)
      return Status::error(path + ": tensor '" + tensor.name + "': unknown dtype " + tensor.dtype);
    uint64_t bytes = elementSize;
    for (int64_t dim : tensor.shape) {
      if (dim < 0 || __builtin_mul_overflow(bytes, uint64_t(dim), &bytes))
        return Status::error(path + ": tensor '" + tensor.name + "': bad shape");
    }
    header[tensor.name] = {{"dtype", tensor.dtype},
                           {"shape", tensor.shape},
                           {"data_offsets", {offset, offset + bytes}}};
    sizes.push_back(bytes);
    offset += bytes;
  }
  std::string headerText = header.dump();
  // Pad with spaces so the data section starts 8-byte aligned.
  headerText.append((8 - headerText.size() % 8) % 8, ' ');
  uint8_t length[8];
  for (int i = 0; i < 8; ++i)
    length[i] = uint8_t(uint64_t(headerText.size()) >> (8 * i));

  std::string temporary = path + ".tmp-XXXXXX";
  int fd = mkstemp(temporary.data());
  if (fd < 0)
    return Status::error(path + ": cannot create a temporary file next to it: " +
                         std::strerror(errno));
  // mkstemp creates the file 0600; an output is an ordinary file.
  bool ok = fchmod(fd, 0644) == 0 && writeAll(fd, length, 8) && writeAll(fd, headerText.data(), headerText.size());
  for (size_t i = 0; ok && i < tensors.size(); ++i)
    ok = writeAll(fd, tensors[i].data, sizes[i]);
  int writeError = errno;
  ok = (::close(fd) == 0) && ok;
  if (!ok || std::rename(temporary.c_str(), path.c_str()) != 0) {
    int error = ok ? errno : writeError;
    ::unlink(temporary.c_str());
    return Status::error(path + ": cannot write: " + std::strerror(error));
  }
  return Status();
}
